// Saving and loading a module's weights (parameters and buffers) in the libdl tensor file.
#pragma once
#include <string>

#include "dl/core/serialize.h"
#include "dl/nn/module.h"

namespace dl::nn {

void save_weights(const Module& m, const std::string& path);
// Copies every named tensor of the file into the module. Throws dl::Error naming the first
// mismatch (a missing or extra name, another shape or dtype) before changing anything.
void load_weights(Module& m, const std::string& path);
// The same from tensors already read; `origin` names where they came from in messages.
void load_state(Module& m, const NamedTensors& tensors, const std::string& origin);

}  // namespace dl::nn
