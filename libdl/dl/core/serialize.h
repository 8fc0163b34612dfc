// The libdl tensor file: named tensors and string metadata in one file with a checksum.
//
//   "DLTENSR1"                              8-byte magic
//   u32 version (1)
//   u64 number of metadata entries, each:   u32 key length, key, u32 value length, value
//   u64 number of tensors, each:            u32 name length, name, u8 dtype, u8 ndim, i64 dims[ndim],
//                                           u64 byte count, the bytes (little-endian, C order)
//   u32 CRC-32 (zlib) of everything before it
//
// Files are written to a temporary beside the target and renamed over it, so a crash never leaves
// a partial file under the final name.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dl/core/file_io.h"
#include "dl/core/tensor.h"

namespace dl {

struct TensorFile {
  std::map<std::string, std::string> metadata;
  std::vector<std::pair<std::string, Tensor>> tensors;  // CPU tensors, file order
  const Tensor* find(const std::string& name) const;
};

// Options of every tensor reader and writer (tensor files, safetensors, weights, checkpoints).
struct TensorIoOptions {
  // NaN or Inf in a float tensor is refused by name, on reading and on writing, unless allowed: a
  // model or checkpoint with non-finite weights is a diverged run, never something to train on.
  bool allow_non_finite = false;
};

// Writes atomically (see write_file_atomically in dl/core/file_io.h).
void save_tensor_file(const std::string& path, const TensorFile& file, const TensorIoOptions& o = {});
// Reads the file as a stream, once: every count and size is checked against what is left of the file
// before anything is allocated, the checksum at the end. Throws dl::Error naming the file on a missing
// or non-regular file, another format (named), a checksum mismatch, a truncated record or (unless
// allowed) a non-finite value.
TensorFile load_tensor_file(const std::string& path, const TensorIoOptions& o = {});

// The first NaN or Inf of a floating tensor (float32, float64, bfloat16, float16; on any device): its
// index and value.
std::optional<std::pair<int64_t, double>> first_non_finite(const Tensor& t);
// Throws dl::Error naming `origin` and `name` when a floating tensor holds NaN or Inf.
void check_all_finite(const Tensor& t, const std::string& origin, const std::string& name);
// Throws dl::Error naming `origin`, `name` and the element when a bool tensor read from a file holds a
// byte other than 0 or 1 (reading such a byte as a C++ bool is undefined behaviour).
void check_bool_bytes(const Tensor& t, const std::string& origin, const std::string& name);

}  // namespace dl
