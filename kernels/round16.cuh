// The 16-bit float formats of the precision policy (dl/core/precision.h) as bit patterns, with the
// conversions from float32 rounding to nearest, ties to even, exactly as IEEE 754 and the GPUs' own
// conversion instructions do. One copy for the CUDA cast kernels (kernels/cast.cuh), their emulation
// and the CPU backend (bf16 linear). Values are carried as uint16_t in both builds, so that nothing here
// depends on cuda_bf16.h / cuda_fp16.h; cuDNN and cuBLAS read the same bits as bfloat16 / half.
//   bf16  1 sign, 8 exponent, 7 mantissa bits: float32's range, about 3 significant digits
//   fp16  1 sign, 5 exponent, 10 mantissa bits: largest finite 65504, subnormals down to 2^-24
#pragma once
#include <cstdint>
#if !defined(__CUDA_ARCH__)
#include <cstring>
#endif

#include "hostdevice.cuh"

namespace dl::kern {

enum class Format16 : uint8_t { kBf16, kFp16 };

DL_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

DL_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// Note [round to nearest even on the bits]: dropping the low d bits of a magnitude rounds up when they
// exceed half a unit of the kept part, or equal it and the kept part is odd. For bf16 (d = 16) adding
// 0x7FFF + (kept lsb) and truncating does exactly that, and a carry out of the mantissa moves to the
// next binade, the largest finite values rounding to infinity as they must. NaN is handled first: its
// payload may sit in the dropped bits only, and truncation would turn it into infinity.
DL_HD uint16_t float_to_bf16_bits(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN, sign kept
  const uint32_t lsb = (u >> 16) & 1u;
  return static_cast<uint16_t>((u + 0x7FFFu + lsb) >> 16);
}

DL_HD float bf16_bits_to_float(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

// f rounded to the nearest bf16 value, as a float (exact: every bf16 value is a float).
DL_HD float round_to_bf16(float f) { return bf16_bits_to_float(float_to_bf16_bits(f)); }

// q = m >> shift (shift in 1..31), rounded to nearest, ties to even (Note [round to nearest even on the bits]).
DL_HD uint32_t shift_right_rne(uint32_t m, uint32_t shift) {
  const uint32_t q = m >> shift, rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  return q + ((rest > half || (rest == half && (q & 1u))) ? 1u : 0u);
}

// float32 -> fp16: magnitudes from 65520 (half way between 65504 and the next binade) become infinity,
// below 2^-14 fp16 subnormals (multiples of 2^-24) or zero, NaN a quiet NaN with the sign and the top of
// the payload kept.
DL_HD uint16_t float_to_fp16_bits(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x03FFu));  // NaN
  if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // infinity, or rounds to it
  // Normal: rebias the exponent (127 -> 15) and round off 13 mantissa bits; below 65520 the result is
  // at most 0x7BFF (65504), a carry out of the mantissa moving to the next binade.
  if (a >= 0x38800000u) return static_cast<uint16_t>(sign | shift_right_rne(a - 0x38000000u, 13));
  const uint32_t e = a >> 23;  // below 2^-14: value = m 2^(e - 150), in units of 2^-24: m >> (126 - e)
  if (e < 102) return static_cast<uint16_t>(sign);  // below 2^-25: rounds to zero (float subnormals too)
  const uint32_t m = (a & 0x007FFFFFu) | 0x00800000u;
  return static_cast<uint16_t>(sign | shift_right_rne(m, 126u - e));  // may round up to 0x0400, the smallest normal
}

DL_HD float fp16_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x03FFu;
  if (e == 0x1Fu) return bits_float(sign | 0x7F800000u | (m << 13));  // infinity, NaN (payload kept)
  if (e == 0) {                                                       // zero, subnormal: m 2^-24, exact
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return sign != 0 ? -v : v;
  }
  return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

DL_HD uint16_t float_to_bits16(Format16 f, float x) {
  return f == Format16::kBf16 ? float_to_bf16_bits(x) : float_to_fp16_bits(x);
}
DL_HD float bits16_to_float(Format16 f, uint16_t h) {
  return f == Format16::kBf16 ? bf16_bits_to_float(h) : fp16_bits_to_float(h);
}

}  // namespace dl::kern
