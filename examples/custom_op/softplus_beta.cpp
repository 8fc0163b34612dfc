// softplus_beta as a libdl custom op (dl/ops/custom.h): its CPU body (float32 and float64), its CUDA
// body (softplus_beta.cu, float32) and the backward of each, written beside the forwards.
#include "softplus_beta.h"

#include <dl/core/error.h>
#include <dl/ops/custom.h>

#include <cmath>
#include <vector>

namespace example {

// ---- the CPU body ----
template <typename T>
void softplus_beta_cpu_forward(const T* x, T* y, int64_t n, const SoftplusBetaParams& p) {
  const T beta = p.beta;
  for (int64_t i = 0; i < n; ++i) {
    const T z = beta * x[i];
    y[i] = z > T(p.threshold) ? x[i] : std::log1p(std::exp(z)) / beta;
  }
}

template <typename T>
void softplus_beta_cpu_backward(const T* x, const T* dy, T* dx, int64_t n, const SoftplusBetaParams& p) {
  const T beta = p.beta;
  for (int64_t i = 0; i < n; ++i) {
    const T z = beta * x[i];
    dx[i] = z > T(p.threshold) ? dy[i] : dy[i] / (T(1) + std::exp(-z));  // dy sigmoid(beta x)
  }
}

template void softplus_beta_cpu_forward<float>(const float*, float*, int64_t, const SoftplusBetaParams&);
template void softplus_beta_cpu_forward<double>(const double*, double*, int64_t, const SoftplusBetaParams&);
template void softplus_beta_cpu_backward<float>(const float*, const float*, float*, int64_t, const SoftplusBetaParams&);
template void softplus_beta_cpu_backward<double>(const double*, const double*, double*, int64_t,
                                                 const SoftplusBetaParams&);

namespace {

// The bodies take dl::Tensor and hand raw arrays to the functions above: a new output of x's shape,
// dtype and device (Tensor::data<T>() is a device pointer on CUDA).
dl::Tensor cpu_forward(const dl::Tensor& x, const SoftplusBetaParams& p) {
  dl::Tensor y = dl::Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.dtype() == dl::DType::kFloat64)
    softplus_beta_cpu_forward(x.data<double>(), y.data<double>(), x.numel(), p);
  else
    softplus_beta_cpu_forward(x.data<float>(), y.data<float>(), x.numel(), p);
  return y;
}

dl::Tensor cpu_backward(const dl::Tensor& x, const dl::Tensor& dy, const SoftplusBetaParams& p) {
  dl::Tensor dx = dl::Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.dtype() == dl::DType::kFloat64)
    softplus_beta_cpu_backward(x.data<double>(), dy.data<double>(), dx.data<double>(), x.numel(), p);
  else
    softplus_beta_cpu_backward(x.data<float>(), dy.data<float>(), dx.data<float>(), x.numel(), p);
  return dx;
}

#if DL_WITH_CUDA
dl::Tensor cuda_forward(const dl::Tensor& x, const SoftplusBetaParams& p) {
  DL_CHECK(x.dtype() == dl::DType::kFloat32, "softplus_beta: the CUDA body takes float32, got ",
           dl::dtype_name(x.dtype()));
  dl::Tensor y = dl::Tensor::empty(x.shape(), x.dtype(), x.device());
  softplus_beta_cuda_forward(x.device().index, x.data<float>(), y.data<float>(), x.numel(), p);
  return y;
}

dl::Tensor cuda_backward(const dl::Tensor& x, const dl::Tensor& dy, const SoftplusBetaParams& p) {
  dl::Tensor dx = dl::Tensor::empty(x.shape(), x.dtype(), x.device());
  softplus_beta_cuda_backward(x.device().index, x.data<float>(), dy.data<float>(), dx.data<float>(), x.numel(), p);
  return dx;
}
#endif

}  // namespace

dl::Tensor softplus_beta(const dl::Tensor& x, const SoftplusBetaParams& p) {
  DL_CHECK(x.defined() && (x.dtype() == dl::DType::kFloat32 || x.dtype() == dl::DType::kFloat64),
           "softplus_beta: expected a float32 or float64 tensor, got ",
           x.defined() ? dl::dtype_name(x.dtype()) : "an undefined one");
  DL_CHECK(p.beta > 0.f, "softplus_beta: expected beta > 0, got ", p.beta);
  // Each body reads what it needs from the inputs and output the op keeps for it: here x alone.
  using Inputs = std::vector<dl::Tensor>;
  dl::ops::CustomOp op("softplus_beta");
  op.cpu([p](const Inputs& in) { return cpu_forward(in[0], p); },
         [p](const Inputs& in, const dl::Tensor&, const dl::Tensor& dy, const std::vector<bool>&) {
           return Inputs{cpu_backward(in[0], dy, p)};
         });
#if DL_WITH_CUDA
  op.cuda([p](const Inputs& in) { return cuda_forward(in[0], p); },
          [p](const Inputs& in, const dl::Tensor&, const dl::Tensor& dy, const std::vector<bool>&) {
            return Inputs{cuda_backward(in[0], dy, p)};
          });
#endif
  return op({x});
}

}  // namespace example
