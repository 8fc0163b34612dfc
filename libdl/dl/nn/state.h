// Saving and loading a module's weights (parameters and buffers) as safetensors (Note [one weights
// format] in nn/state.cpp): names as in state(), so a torchvision ResNet-18 state_dict saved with
// safetensors loads into nn::ResNet18 as it is, and a file libdl writes loads in PyTorch.
#pragma once
#include <string>

#include "dl/core/serialize.h"
#include "dl/nn/module.h"

namespace dl::nn {

struct LoadOptions {
  bool allow_unexpected = false;  // file tensors without a counterpart in the model are skipped
  bool allow_missing = false;     // model tensors absent from the file keep their values
  // Names ending so are always skipped (torchvision's batch-norm counters).
  std::vector<std::string> skip_suffixes{"num_batches_tracked"};
};

// Writes the module's state as a safetensors file, atomically.
void save_weights(const Module& m, const std::string& path);
// Copies every named tensor of the file (safetensors, or a libdl tensor file of an earlier libdl) into
// the module. Throws dl::Error naming the first mismatch (a missing or extra name, another shape or
// dtype) before changing anything.
void load_weights(Module& m, const std::string& path, const LoadOptions& o = {});
// The same from tensors already read; `origin` names where they came from in messages.
void load_state(Module& m, const NamedTensors& tensors, const std::string& origin, const LoadOptions& o = {});

}  // namespace dl::nn
