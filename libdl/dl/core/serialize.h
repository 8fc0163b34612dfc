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
#include <string>
#include <utility>
#include <vector>

#include "dl/core/tensor.h"

namespace dl {

struct TensorFile {
  std::map<std::string, std::string> metadata;
  std::vector<std::pair<std::string, Tensor>> tensors;  // CPU tensors, file order
  const Tensor* find(const std::string& name) const;
};

void save_tensor_file(const std::string& path, const TensorFile& file);
// Throws dl::Error naming the file on a missing file, a bad magic, a checksum mismatch or a
// truncated record.
TensorFile load_tensor_file(const std::string& path);

// Writes bytes to `path` atomically: a temporary in the same folder, fsync, rename.
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace dl
