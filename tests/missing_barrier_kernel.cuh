// A kernel with a deliberate bug for the tests of the emulation: a block tree reduction whose loop
// lacks the barrier between its steps, so thread t reads smem[t + stride] before its owner has added
// into it (or, with the shuffled fiber order, before it wrote it at all).
#pragma once
#include "compat.cuh"

namespace dl::test {

DL_GLOBAL void sum_missing_barrier_kernel(const float* a, int64_t n, double* out) {
  DL_SHARED(double, smem, dl::kern::kMaxBlock);
  double v = 0;
  DL_GRID_STRIDE_LOOP(i, n) v += a[i];
  smem[threadIdx.x] = v;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) smem[threadIdx.x] += smem[threadIdx.x + stride];
    // BUG (deliberate): no __syncthreads() here.
  }
  if (threadIdx.x == 0) out[0] = smem[0];
}

}  // namespace dl::test
