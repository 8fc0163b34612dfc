// A custom op defined outside libdl, with a CPU body and a CUDA body (dl/ops/custom.h): softplus with a
// slope beta, which libdl does not have,
//   y = log(1 + e^(beta x)) / beta,   dy/dx = sigmoid(beta x),
// and y = x where beta x > threshold (the log then equals beta x to float precision, and e^(beta x)
// would overflow). beta -> infinity approaches ReLU; beta = 1 is the usual softplus.
// softplus_beta.cpp holds the CPU body and the op's definition, softplus_beta.cuh the CUDA kernels (run
// by the tests under libdl's kernel emulation too), softplus_beta.cu their launches on libdl's stream.
#pragma once
#include <dl/config.h>
#include <dl/core/tensor.h>

#include <cstdint>

namespace example {

// The op's parameters, shared by both bodies, the backward and the tests.
struct SoftplusBetaParams {
  float beta = 1.f;
  float threshold = 20.f;  // beta x above it: y = x
};

// x: any shape, float32 (CPU or CUDA) or float64 (CPU: gradient checks); returns y of x's shape, dtype
// and device, and records the backward when x requires grad. Throws dl::Error for other dtypes, beta <= 0,
// and on CUDA in a libdl built without it.
dl::Tensor softplus_beta(const dl::Tensor& x, const SoftplusBetaParams& p = {});

// ---- the bodies, for the tests (contiguous arrays of n elements) ----
// CPU, T = float or double: y = softplus_beta(x); dx = dy sigmoid(beta x) (assigns).
template <typename T>
void softplus_beta_cpu_forward(const T* x, T* y, int64_t n, const SoftplusBetaParams& p);
template <typename T>
void softplus_beta_cpu_backward(const T* x, const T* dy, T* dx, int64_t n, const SoftplusBetaParams& p);

#if DL_WITH_CUDA
// CUDA, float32 device pointers of `device`, queued on dl::cuda::current_stream(device) (softplus_beta.cu).
void softplus_beta_cuda_forward(int device, const float* x, float* y, int64_t n, const SoftplusBetaParams& p);
void softplus_beta_cuda_backward(int device, const float* x, const float* dy, float* dx, int64_t n,
                                 const SoftplusBetaParams& p);
#endif

}  // namespace example
