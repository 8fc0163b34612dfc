// Element types of a tensor. float32 is the working type; float64 serves gradient checks on the
// CPU; int32 holds labels (int64 labels, as PyTorch writes them, are accepted and read as int32);
// uint8 holds raw images and the masks of comparisons.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace dl {

enum class DType : uint8_t { kFloat32 = 0, kFloat64 = 1, kInt32 = 2, kUInt8 = 3, kInt64 = 4 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32:
      return 4;
    case DType::kFloat64:
      return 8;
    case DType::kInt32:
      return 4;
    case DType::kUInt8:
      return 1;
    case DType::kInt64:
      return 8;
  }
  return 0;
}

const char* dtype_name(DType t);
inline bool is_floating(DType t) { return t == DType::kFloat32 || t == DType::kFloat64; }

// The DType of a C++ element type; only these five exist (any other T is a compile error where a
// tensor's elements are named as T: data<T>(), from_vector<T>).
template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kFloat32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::kFloat64;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kInt32;
};
template <>
struct DTypeOf<uint8_t> {
  static constexpr DType value = DType::kUInt8;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::kInt64;
};
template <typename T>
concept TensorElement = requires {
  DTypeOf<T>::value;
};

}  // namespace dl
