// The CUDA kernels of softplus_beta (softplus_beta.h), written in the vocabulary of libdl's kernels
// (kernels/compat.cuh: DL_GLOBAL, DL_GRID_STRIDE_LOOP, launches through a Launcher), so that this exact
// source is compiled by nvcc for the GPU (softplus_beta.cu) and by the host compiler for the CPU
// emulation that the tests run it under (tests/test_custom_op.cpp).
#pragma once
#include "compat.cuh"
#include "softplus_beta.h"

// The inline namespace differs between nvcc and the emulation, as for libdl's kernels (compat.cuh), so
// that a program holding both copies (the tests) never sees one name twice.
namespace example::inline DL_KERN_ABI {

// The math of one element, in float.
struct SoftplusBetaFn {
  float beta;
  float threshold;
  DL_HD float forward(float x) const {
    const float z = beta * x;
    return z > threshold ? x : log1pf(expf(z)) / beta;
  }
  DL_HD float backward(float x, float dy) const {
    const float z = beta * x;
    return z > threshold ? dy : dy / (1.f + expf(-z));
  }
};

DL_GLOBAL void softplus_beta_forward_kernel(const float* x, float* y, int64_t n, SoftplusBetaFn fn) {
  DL_GRID_STRIDE_LOOP(i, n) y[i] = fn.forward(x[i]);
}

DL_GLOBAL void softplus_beta_backward_kernel(const float* x, const float* dy, float* dx, int64_t n, SoftplusBetaFn fn) {
  DL_GRID_STRIDE_LOOP(i, n) dx[i] = fn.backward(x[i], dy[i]);
}

// ---- launch sequences over a Launcher L (Note [launchers] in compat.cuh) ----
template <typename L>
void run_softplus_beta_forward(L& l, const float* x, float* y, int64_t n, const SoftplusBetaParams& p) {
  if (n <= 0) return;
  const int block = l.block_size(256);
  l.launch(softplus_beta_forward_kernel, dim3(l.grid_size(n, block)), dim3(block), x, y, n,
           SoftplusBetaFn{p.beta, p.threshold});
}

template <typename L>
void run_softplus_beta_backward(L& l, const float* x, const float* dy, float* dx, int64_t n,
                                const SoftplusBetaParams& p) {
  if (n <= 0) return;
  const int block = l.block_size(256);
  l.launch(softplus_beta_backward_kernel, dim3(l.grid_size(n, block)), dim3(block), x, dy, dx, n,
           SoftplusBetaFn{p.beta, p.threshold});
}

}  // namespace example::inline DL_KERN_ABI
