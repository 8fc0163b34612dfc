// Casts between float32 and the 16-bit formats of kernels/round16.cuh (bf16, fp16): the operands of a
// bf16 / fp16 convolution or GEMM go in rounded to nearest even, its low-precision result comes back
// to float32 (exactly: every bf16 and fp16 value is a float). Grid-stride loops over n elements.
#pragma once
#include "compat.cuh"
#include "elementwise.cuh"
#include "round16.cuh"

namespace dl::kern::inline DL_KERN_ABI {

template <Format16 F>
DL_GLOBAL void float_to_16_kernel(const float* x, uint16_t* y, int64_t n) {
  DL_GRID_STRIDE_LOOP(i, n) y[i] = float_to_bits16(F, x[i]);
}

template <Format16 F>
DL_GLOBAL void from_16_to_float_kernel(const uint16_t* x, float* y, int64_t n) {
  DL_GRID_STRIDE_LOOP(i, n) y[i] = bits16_to_float(F, x[i]);
}

// ---- launch sequences (Note [launchers]) ----
// y (n 16-bit patterns of format f) = x (n floats) rounded to nearest even.
template <typename L>
void run_float_to_16(L& l, Format16 f, const float* x, uint16_t* y, int64_t n) {
  auto* kernel = f == Format16::kBf16 ? float_to_16_kernel<Format16::kBf16> : float_to_16_kernel<Format16::kFp16>;
  launch_1d(l, kernel, n, x, y, n);
}

// y (n floats) = x (n 16-bit patterns of format f), exactly.
template <typename L>
void run_16_to_float(L& l, Format16 f, const uint16_t* x, float* y, int64_t n) {
  auto* kernel =
      f == Format16::kBf16 ? from_16_to_float_kernel<Format16::kBf16> : from_16_to_float_kernel<Format16::kFp16>;
  launch_1d(l, kernel, n, x, y, n);
}

}  // namespace dl::kern::inline DL_KERN_ABI
