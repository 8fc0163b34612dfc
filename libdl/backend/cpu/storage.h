// Note [bf16 storage in the CPU kernels]: a kernel templated on its storage type T computes in acc_t<T>
// (float for bfloat16, T itself for float and double), reads an element with ld() (exact: every bf16 value
// is a float) and writes one with st<T>() (rounded to nearest, ties to even). Both are inline bit operations
// that vectorise, so a bf16 loop runs at the speed of the float32 one over half the bytes (Note [bf16
// activations] in ops/precision.cpp).
#pragma once
#include <type_traits>

#include "dl/core/dtype.h"
#include "round16.cuh"

namespace dl::cpu {

template <typename T>
struct Acc {
  using type = T;
};
template <>
struct Acc<BFloat16> {
  using type = float;
};
template <typename T>
using acc_t = typename Acc<T>::type;

inline float ld(BFloat16 v) { return kern::bf16_bits_to_float(v.bits); }
inline float ld(float v) { return v; }
inline double ld(double v) { return v; }

template <typename T>
inline T st(acc_t<T> v) {
  if constexpr (std::is_same_v<T, BFloat16>)
    return BFloat16::from_bits(kern::float_to_bf16_bits(v));
  else
    return v;
}

}  // namespace dl::cpu
