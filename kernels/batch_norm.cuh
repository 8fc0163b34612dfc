// Backward of batch norm in inference mode (an affine map per channel with the running statistics),
// which cuDNN does not provide: one block per channel (grid-stride over channels) reduces
// sum(dy) and sum(dy * xhat) over N x S and writes dx = dy * gamma * invstd, as the CPU backend does.
#pragma once
#include "compat.cuh"
#include "elementwise.cuh"

namespace dl::kern::inline DL_KERN_ABI {

template <typename T>
DL_GLOBAL void batch_norm_backward_infer_kernel(const T* x, const T* gamma, const T* dy, const T* mean, const T* var,
                                                int64_t n, int64_t c, int64_t s, double eps, T* dx, T* dgamma,
                                                T* dbeta) {
  DL_SHARED(double, smem, kMaxBlock);
  for (int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    const double is = 1.0 / sqrt(static_cast<double>(var[ch]) + eps);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t e = threadIdx.x; e < n * s; e += blockDim.x) {
      const int64_t idx = (e / s * c + ch) * s + e % s;
      const double d = static_cast<double>(dy[idx]);
      sum_dy += d;
      sum_dy_xhat += d * (static_cast<double>(x[idx]) - static_cast<double>(mean[ch])) * is;
      if (dx) dx[idx] = static_cast<T>(d * static_cast<double>(gamma[ch]) * is);
    }
    const double total_dy = block_reduce_sum(sum_dy, smem);
    const double total_dy_xhat = block_reduce_sum(sum_dy_xhat, smem);
    if (threadIdx.x == 0) {
      if (dgamma) dgamma[ch] = static_cast<T>(total_dy_xhat);
      if (dbeta) dbeta[ch] = static_cast<T>(total_dy);
    }
  }
}

// ---- launch sequence (Note [launchers]) ----
template <typename L, typename T>
void run_batch_norm_backward_infer(L& l, const T* x, const T* gamma, const T* dy, const T* mean, const T* var,
                                   int64_t n, int64_t c, int64_t s, double eps, T* dx, T* dgamma, T* dbeta) {
  if (c <= 0) return;
  const int block = l.block_size(256);
  check_reduction_block(block, "batch_norm_backward_infer");
  l.launch(batch_norm_backward_infer_kernel<T>, dim3(l.grid_size(c * block, block)), dim3(block), x, gamma, dy, mean,
           var, n, c, s, eps, dx, dgamma, dbeta);
}

}  // namespace dl::kern::inline DL_KERN_ABI
