// IDX files (the format of MNIST and Fashion-MNIST), plain or gzip-compressed.
//
// An IDX file is: two zero bytes, a type byte, a byte giving the number of dimensions, the
// dimensions as big-endian 32-bit integers, then the elements in row-major order, big-endian.
// read_idx decides between plain and gzip by the first two bytes (1f 8b), never by the name,
// reads the header first and allocates the data only once the header's size is possible for the file
// (exactly the rest of a plain file; no more than deflate can expand a gzip file to), then streams the
// data into it: a bad magic, an unknown type, a truncated file, trailing bytes or a corrupt gzip
// stream all throw dl::Error naming the file and saying what was expected and what was found.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dl/core/allocator.h"
#include "dl/core/tensor.h"

namespace dl::data {

// The element type byte of an IDX header.
enum class IdxType : uint8_t {
  kUInt8 = 0x08,
  kInt8 = 0x09,
  kInt16 = 0x0B,
  kInt32 = 0x0C,
  kFloat32 = 0x0D,
  kFloat64 = 0x0E,
};

const char* idx_type_name(IdxType t);  // "ubyte", "sbyte", "short", "int", "float", "double"
size_t idx_type_size(IdxType t);       // 1, 1, 2, 4, 4, 8

// The content of one IDX file. `bytes` holds the elements in row-major order, already converted
// to the host's byte order (so `as<int32_t>()` etc. can be read directly).
struct IdxArray {
  std::string path;  // the file it was read from (for messages)
  IdxType type = IdxType::kUInt8;
  std::vector<int64_t> dims;
  HostVector<uint8_t> bytes;  // through CpuAllocator: counted, and under its limit

  int64_t numel() const;
  std::string dims_str() const;  // "[60000, 28, 28]"

  // Typed view of the elements; throws unless T matches `type`
  // (uint8_t, int8_t, int16_t, int32_t, float, double).
  template <typename T>
  const T* as() const;

  // A CPU tensor of shape `dims` (at most kMaxDims dimensions): ubyte -> kUInt8,
  // sbyte/short/int -> kInt32, float -> kFloat32, double -> kFloat64.
  Tensor to_tensor() const;
};

// Reads a plain or gzip-compressed IDX file. Throws dl::Error (naming `path`) when the file is
// missing or unreadable, the gzip stream is corrupt or truncated, the magic is wrong, or the data
// size differs from the product of the dimensions times the element size.
IdxArray read_idx(const std::string& path);

// Writes an uncompressed ubyte IDX file (magic 00 00 08 <ndims>) atomically: to a temporary file
// in the same folder, then renamed over `path`. `bytes.size()` must equal the product of `dims`.
void write_idx_u8(const std::string& path, const std::vector<int64_t>& dims, const std::vector<uint8_t>& bytes);

}  // namespace dl::data
