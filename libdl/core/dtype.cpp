// Names of the dtypes and the conversions of the 16-bit float element types, on the bit helpers that
// the CUDA cast kernels use (kernels/round16.cuh), so that a value converts the same on both devices.
#include "dl/core/dtype.h"

#include "round16.cuh"

namespace dl {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat64:
      return "float64";
    case DType::kInt32:
      return "int32";
    case DType::kUInt8:
      return "uint8";
    case DType::kInt64:
      return "int64";
    case DType::kBool:
      return "bool";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kFloat16:
      return "float16";
  }
  return "unknown";
}

template <>
BFloat16::Float16Bits(float f) : bits(kern::float_to_bf16_bits(f)) {}
template <>
BFloat16::operator float() const {
  return kern::bf16_bits_to_float(bits);
}
template <>
Float16::Float16Bits(float f) : bits(kern::float_to_fp16_bits(f)) {}
template <>
Float16::operator float() const {
  return kern::fp16_bits_to_float(bits);
}

}  // namespace dl
