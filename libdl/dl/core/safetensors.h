// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}},
// then the data. Reading follows all of the format's rules (Note [strict safetensors header] in
// core/safetensors.cpp): a header of at most 100 MB in strict JSON, every dtype, shape and offset
// checked and the offsets tiling the data exactly (no hole, overlap or trailing byte), all from the
// header before any data is read; the data is then read once, straight into the tensors. Every error
// names the file and the tensor. F32, F64, I32, I64, U8, BOOL, BF16 and F16 load as the dtype of the
// same name (a BOOL byte other than 0 or 1 is an error); load_weights converts floating dtypes into
// the model's.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "dl/core/serialize.h"
#include "dl/core/tensor.h"

namespace dl {

struct SafeTensors {
  std::vector<std::pair<std::string, Tensor>> tensors;  // in the order of their data offsets
  std::map<std::string, std::string> metadata;
};

// Throws dl::Error naming the file (and tensor) for anything the format does not allow, and for
// non-finite float values unless o.allow_non_finite.
SafeTensors load_safetensors(const std::string& path, const TensorIoOptions& o = {});
// Writes atomically; tensors are stored in the order given. Refuses non-finite values unless allowed.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {}, const TensorIoOptions& o = {});

}  // namespace dl
