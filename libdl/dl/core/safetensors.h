// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}},
// then the data. Reading checks the header length, every dtype, shape and offset against the file
// before touching data, and names the file and the tensor in every error. F32, F64, I32, U8 load
// as such; I64 (torchvision's num_batches_tracked) loads as int32 when in range.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "dl/core/tensor.h"

namespace dl {

struct SafeTensors {
  std::vector<std::pair<std::string, Tensor>> tensors;  // file order of data offsets
  std::map<std::string, std::string> metadata;
};

SafeTensors load_safetensors(const std::string& path);
// Writes atomically; tensors are stored in the order given.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace dl
