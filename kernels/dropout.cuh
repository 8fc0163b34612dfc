// Dropout's kernel: element i of a call with seed s is kept when dropout_uniform(s, i) >= p (the
// counter-based draw of counter_rng.cuh). Nothing is stored between forward and backward (the backward
// recomputes the mask from the seed), no element depends on the launch shape, and the CPU body draws
// the same mask for the same seed, so a model trains the same way on either device.
#pragma once
#include <cstdint>

#include "compat.cuh"
#include "counter_rng.cuh"
#include "elementwise.cuh"

namespace dl::kern::inline DL_KERN_ABI {

// y = x / (1 - p) where kept, else 0; also the backward (x = dy).
template <typename T>
DL_GLOBAL void dropout_kernel(const T* x, T* y, int64_t n, uint64_t seed, float p) {
  const T scale = T(1) / (T(1) - T(p));
  DL_GRID_STRIDE_LOOP(i, n) y[i] = dropout_uniform(seed, i) >= p ? x[i] * scale : T(0);
}

template <typename L, typename T>
void run_dropout(L& l, const T* x, T* y, int64_t n, uint64_t seed, float p) {
  launch_1d(l, dropout_kernel<T>, n, x, y, n, seed, p);
}

}  // namespace dl::kern::inline DL_KERN_ABI
