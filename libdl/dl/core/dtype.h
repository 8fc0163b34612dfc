// Element types of a tensor. float32 is the working type; float64 serves gradient checks on the
// CPU; int32 and int64 hold labels and indices (int64 labels, as PyTorch writes them, are read as
// int32 by the losses and metrics); uint8 holds raw images; bool holds the masks of comparisons.
// bfloat16 and float16 are storage types: tensors of them are made, converted (to(DType)), copied,
// sliced, concatenated, printed, saved, loaded and sent between processes, while the ops compute in
// float32 or float64 and name the dtype they refused (convert with .to(DType::kFloat32) first).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace dl {

enum class DType : uint8_t {
  kFloat32 = 0,
  kFloat64 = 1,
  kInt32 = 2,
  kUInt8 = 3,
  kInt64 = 4,
  kBool = 5,
  kBFloat16 = 6,
  kFloat16 = 7,
};
inline constexpr int kNumDTypes = 8;

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kFloat64:
    case DType::kInt64:
      return 8;
    case DType::kUInt8:
    case DType::kBool:
      return 1;
    case DType::kBFloat16:
    case DType::kFloat16:
      return 2;
  }
  return 0;
}

// "float32", "float64", "int32", "uint8", "int64", "bool", "bfloat16", "float16".
const char* dtype_name(DType t);
// The dtypes the ops compute in (float32, float64): what gradients and requires_grad need.
inline bool is_floating(DType t) { return t == DType::kFloat32 || t == DType::kFloat64; }
// bfloat16 or float16: floating storage that converts to float32 for computing.
inline bool is_float16(DType t) { return t == DType::kBFloat16 || t == DType::kFloat16; }
// Any floating dtype, as PyTorch's is_floating_point.
inline bool is_floating_point(DType t) { return is_floating(t) || is_float16(t); }

// The element types of bfloat16 and float16 tensors, as their bit patterns. Conversions from float
// round to nearest, ties to even (NaN stays NaN, overflow becomes infinity, as the GPUs convert);
// conversions to float are exact. Arithmetic goes through float:
//   dl::BFloat16 h(0.1f);  float f = h;  // 0.10009765625
template <bool kBrain>  // true: bfloat16 (8 exponent bits), false: IEEE half (5)
struct Float16Bits {
  uint16_t bits = 0;
  Float16Bits() = default;
  explicit Float16Bits(float f);
  operator float() const;
  static Float16Bits from_bits(uint16_t b) {
    Float16Bits h;
    h.bits = b;
    return h;
  }
};
using BFloat16 = Float16Bits<true>;
using Float16 = Float16Bits<false>;
// The conversions, one per format (core/dtype.cpp).
template <>
BFloat16::Float16Bits(float f);
template <>
BFloat16::operator float() const;
template <>
Float16::Float16Bits(float f);
template <>
Float16::operator float() const;
static_assert(sizeof(BFloat16) == 2 && sizeof(Float16) == 2 && sizeof(bool) == 1);

// The DType of a C++ element type; only these exist (any other T is a compile error where a tensor's
// elements are named as T: data<T>(), from_vector<T>, item<T>).
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
template <>
struct DTypeOf<bool> {
  static constexpr DType value = DType::kBool;
};
template <>
struct DTypeOf<BFloat16> {
  static constexpr DType value = DType::kBFloat16;
};
template <>
struct DTypeOf<Float16> {
  static constexpr DType value = DType::kFloat16;
};
template <typename T>
concept TensorElement = requires {
  DTypeOf<T>::value;
};

}  // namespace dl
