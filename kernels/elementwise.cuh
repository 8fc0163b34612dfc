// Element-wise kernels of the CUDA backend (the ops that cuDNN does not cover) and the deterministic
// two-pass sum. Grid-stride loops: any grid size covers any length.
#pragma once
#include "compat.cuh"
#include "unary_ops.cuh"

namespace dl::kern::inline DL_KERN_ABI {

template <typename T>
DL_GLOBAL void fill_kernel(T* y, int64_t n, T value) {
  DL_GRID_STRIDE_LOOP(i, n) y[i] = value;
}

// The unary family: one kernel for every functor of unary_ops.cuh.
template <typename Op>
DL_GLOBAL void unary_forward_kernel(const float* x, float* y, int64_t n, Op op) {
  DL_GRID_STRIDE_LOOP(i, n) y[i] = op.forward(x[i]);
}

template <typename Op>
DL_GLOBAL void unary_backward_kernel(const float* x, const float* y, const float* dy, float* dx, int64_t n, Op op) {
  DL_GRID_STRIDE_LOOP(i, n) dx[i] = op.backward(x[i], y[i], dy[i]);
}

template <typename T>
DL_GLOBAL void scale_kernel(const T* a, T s, T* y, int64_t n) {
  DL_GRID_STRIDE_LOOP(i, n) y[i] = s * a[i];
}

template <typename T>
DL_GLOBAL void axpy_kernel(T alpha, const T* x, T* y, int64_t n) {
  DL_GRID_STRIDE_LOOP(i, n) y[i] += alpha * x[i];
}

// y = (1 - m) y + m x
template <typename T>
DL_GLOBAL void lerp_kernel(T* y, const T* x, T m, int64_t n) {
  DL_GRID_STRIDE_LOOP(i, n) y[i] = (T(1) - m) * y[i] + m * x[i];
}

// y[i] = s * x[0]: the scalar is read on the device, so no host round trip.
template <typename T>
DL_GLOBAL void broadcast_scalar_kernel(const T* x, T s, T* y, int64_t n) {
  DL_GRID_STRIDE_LOOP(i, n) y[i] = s * x[0];
}

// y[r][c] += b[c] over rows x cols, row-major.
template <typename T>
DL_GLOBAL void bias_add_kernel(T* y, const T* b, int64_t rows, int64_t cols) {
  DL_GRID_STRIDE_LOOP(i, rows * cols) y[i] += b[i % cols];
}

// First pass of the sum: partial[blockIdx.x] = sum over the items this block's threads visit, of the
// items or (square) of their squares, in double.
template <typename T>
DL_GLOBAL void sum_partial_kernel(const T* a, int64_t n, bool square, double* partial) {
  DL_SHARED(double, smem, kMaxBlock);
  double v = 0;
  DL_GRID_STRIDE_LOOP(i, n) {
    const double x = static_cast<double>(a[i]);
    v += square ? x * x : x;
  }
  const double total = block_reduce_sum(v, smem);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// Second pass, one block: out[0] = scale * sum of the m partials.
template <typename T>
DL_GLOBAL void sum_final_kernel(const double* partial, int64_t m, T scale, T* out) {
  DL_SHARED(double, smem, kMaxBlock);
  double v = 0;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) v += partial[i];
  const double total = block_reduce_sum(v, smem);
  if (threadIdx.x == 0) out[0] = static_cast<T>(scale * total);
}

// ---- launch sequences (Note [launchers]) ----
template <typename L, typename K, typename... A>
void launch_1d(L& l, K kernel, int64_t n, A... args) {
  if (n <= 0) return;
  const int block = l.block_size(256);
  l.launch(kernel, dim3(l.grid_size(n, block)), dim3(block), args...);
}

// y = op(x), and dx = op'(x) dy from the forward's input x and output y.
template <typename L, typename Op>
void run_unary_forward(L& l, const Op& op, const float* x, float* y, int64_t n) {
  launch_1d(l, unary_forward_kernel<Op>, n, x, y, n, op);
}
template <typename L, typename Op>
void run_unary_backward(L& l, const Op& op, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  launch_1d(l, unary_backward_kernel<Op>, n, x, y, dy, dx, n, op);
}

// out[0] = scale * sum(a[0..n)), or of a[i]^2 with square (out may be double: a gradient's squared norm);
// the order of the additions depends only on the launch shape.
template <typename L, typename T, typename O>
void run_sum(L& l, const T* a, int64_t n, O scale, O* out, bool square = false) {
  const int block = l.block_size(256);
  check_reduction_block(block, "sum");
  const unsigned grid = n > 0 ? l.grid_size(n, block) : 1u;
  auto partial = l.template scratch<double>(grid);
  l.launch(sum_partial_kernel<T>, dim3(grid), dim3(block), a, n, square, partial.get());
  l.launch(sum_final_kernel<O>, dim3(1), dim3(block), static_cast<const double*>(partial.get()),
           static_cast<int64_t>(grid), scale, out);
}

}  // namespace dl::kern::inline DL_KERN_ABI
