// cuDNN bodies of batch norm (spatial, over N x C x S), ReLU, max and average pooling (NCHW) and softmax over the
// channels of N x C x S, all float32 on the device's compute stream. Every output is assigned (beta = 0), with
// the same meaning as the CPU backend's (backend/cpu/batch_norm.cpp, pooling.cpp, softmax.cpp).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/cudnn_utils.h"
#include "backend/cuda/runtime.h"
#include "dl/core/error.h"

namespace dl::cuda {

namespace {

void check_bn_epsilon(double eps) {
  DL_CHECK(eps >= CUDNN_BN_MIN_EPSILON, "batch norm on CUDA: eps = ", eps,
           " is below cuDNN's CUDNN_BN_MIN_EPSILON = ", CUDNN_BN_MIN_EPSILON);
}

// Scratch for an output the caller does not want (cuDNN writes every output it is given).
float* or_scratch(float* p, DeviceBuffer& scratch, int64_t count, int device) {
  if (p != nullptr) return p;
  scratch = DeviceBuffer(static_cast<size_t>(count) * sizeof(float), device);
  return scratch.as<float>();
}

}  // namespace

// ---- batch norm ----

namespace {
// x, y, dy, dx as N x C x S x 1, NCHW or channels-last (N S C in memory, S = H W: Note [memory format]).
TensorDescriptor bn_data(int64_t n, int64_t c, int64_t s, bool channels_last) {
  return channels_last ? tensor_4d(n, c, s, 1, true) : tensor_ncs(n, c, s);
}

// cuDNN's training forward: running_* = (1 - factor) running_* + factor batch statistics (the variance
// unbiased); mean and invstd = 1 / sqrt(biased var + eps) are the saved statistics, which
// batch_norm_backward takes back.
void forward_training(int device, const float* x, const float* gamma, const float* beta, int64_t n, int64_t c,
                      int64_t s, double eps, double factor, float* y, float* running_mean, float* running_var,
                      float* mean, float* invstd, bool channels_last = false) {
  DeviceGuard guard(device);
  check_bn_epsilon(eps);
  const TensorDescriptor data = bn_data(n, c, s, channels_last);
  const TensorDescriptor param = tensor_nchw(1, c, 1, 1);
  DL_CUDNN_CHECK(DL_CUDNN(cudnnBatchNormalizationForwardTraining)(
      context(device).cudnn, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, data.get(), x, data.get(), y, param.get(), gamma,
      beta, factor, running_mean, running_var, eps, mean, invstd));
}
}  // namespace

// With factor 1 the running outputs receive exactly this batch's statistics, so resultRunningVariance is
// var_unbiased and the running mean (equal to the saved mean) goes to scratch. Both are zeroed first,
// since cuDNN blends them as running (1 - factor) + batch factor and 0 times a stale NaN would still be NaN.
void batch_norm_forward_train(int device, const float* x, const float* gamma, const float* beta, int64_t n, int64_t c,
                              int64_t s, double eps, float* y, float* mean, float* invstd, float* var_unbiased) {
  DeviceGuard guard(device);
  const size_t param_bytes = static_cast<size_t>(c) * sizeof(float);
  DeviceBuffer running_mean(param_bytes, device);  // not wanted, but cuDNN takes both running outputs or neither
  DeviceBuffer var_scratch;
  float* running_var = or_scratch(var_unbiased, var_scratch, c, device);
  DL_CUDA_CHECK(cudaMemsetAsync(running_mean.get(), 0, param_bytes, compute_stream(device)));
  DL_CUDA_CHECK(cudaMemsetAsync(running_var, 0, param_bytes, compute_stream(device)));
  forward_training(device, x, gamma, beta, n, c, s, eps, /*factor=*/1.0, y, running_mean.as<float>(), running_var, mean,
                   invstd);
}

// The running statistics blended by cuDNN in the same call (exponentialAverageFactor = momentum), as the
// CPU body does after its forward; no extra kernel and no scratch.
void batch_norm_forward_train_running(int device, const float* x, const float* gamma, const float* beta, int64_t n,
                                      int64_t c, int64_t s, double eps, double momentum, float* y, float* mean,
                                      float* invstd, float* running_mean, float* running_var, bool channels_last) {
  forward_training(device, x, gamma, beta, n, c, s, eps, momentum, y, running_mean, running_var, mean, invstd,
                   channels_last);
}

void batch_norm_forward_infer(int device, const float* x, const float* gamma, const float* beta, const float* mean,
                              const float* var, int64_t n, int64_t c, int64_t s, double eps, float* y,
                              bool channels_last) {
  if (n * c * s == 0) return;  // an empty batch (cuDNN rejects zero-sized descriptors)
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  check_bn_epsilon(eps);
  const TensorDescriptor data = bn_data(n, c, s, channels_last);
  const TensorDescriptor param = tensor_nchw(1, c, 1, 1);
  DL_CUDNN_CHECK(DL_CUDNN(cudnnBatchNormalizationForwardInference)(ctx.cudnn, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero,
                                                                   data.get(), x, data.get(), y, param.get(), gamma,
                                                                   beta, mean, var, eps));
}

// Takes the forward's saved mean and invstd; the outputs not wanted (null) are written to scratch.
void batch_norm_backward(int device, const float* x, const float* gamma, const float* dy, const float* mean,
                         const float* invstd, int64_t n, int64_t c, int64_t s, double eps, float* dx, float* dgamma,
                         float* dbeta, bool channels_last) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  check_bn_epsilon(eps);
  const TensorDescriptor data = bn_data(n, c, s, channels_last);
  const TensorDescriptor param = tensor_nchw(1, c, 1, 1);
  DeviceBuffer dx_scratch, dgamma_scratch, dbeta_scratch;
  float* dx_out = or_scratch(dx, dx_scratch, n * c * s, device);
  float* dgamma_out = or_scratch(dgamma, dgamma_scratch, c, device);
  float* dbeta_out = or_scratch(dbeta, dbeta_scratch, c, device);
  DL_CUDNN_CHECK(DL_CUDNN(cudnnBatchNormalizationBackward)(
      ctx.cudnn, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, &kOne, &kZero, data.get(), x, data.get(), dy, data.get(),
      dx_out, param.get(), gamma, dgamma_out, dbeta_out, eps, mean, invstd));
}

// ---- ReLU ----

namespace {
// Element-wise ops see a flat array as 1 x 1 x 1 x len tensors, in pieces that fit cuDNN's int dimensions.
constexpr int64_t kMaxFlat = int64_t{1} << 30;
}  // namespace

void relu_forward(int device, const float* x, float* y, int64_t n) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  const ActivationDescriptor relu = activation(CUDNN_ACTIVATION_RELU);
  for (int64_t offset = 0; offset < n; offset += kMaxFlat) {
    const TensorDescriptor flat = tensor_nchw(1, 1, 1, std::min(kMaxFlat, n - offset));
    DL_CUDNN_CHECK(DL_CUDNN(cudnnActivationForward)(ctx.cudnn, relu.get(), &kOne, flat.get(), x + offset, &kZero,
                                                    flat.get(), y + offset));
  }
}

// The library's ReLU backward has y and dy, while cuDNN's takes y, dy and x. For ReLU, x > 0 exactly where
// y > 0, so y stands in for x: dx = dy where y > 0, else 0 (as on the CPU).
void relu_backward(int device, const float* y, const float* dy, float* dx, int64_t n) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  const ActivationDescriptor relu = activation(CUDNN_ACTIVATION_RELU);
  for (int64_t offset = 0; offset < n; offset += kMaxFlat) {
    const TensorDescriptor flat = tensor_nchw(1, 1, 1, std::min(kMaxFlat, n - offset));
    DL_CUDNN_CHECK(DL_CUDNN(cudnnActivationBackward)(ctx.cudnn, relu.get(), &kOne, flat.get(), y + offset, flat.get(),
                                                     dy + offset, flat.get(), y + offset, &kZero, flat.get(),
                                                     dx + offset));
  }
}

// ---- pooling ----

namespace {

// Max pooling uses cuDNN's deterministic variant; average pooling divides by the whole window, padded zeros
// included (the library's definition, Pool2dParams).
void pool_forward(int device, const Pool2dGeometry& g, cudnnPoolingMode_t mode, const float* x, float* y) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  if (g.n * g.c * g.ho * g.wo == 0) return;  // nothing to write
  const PoolingDescriptor pool = pooling_2d(g.p, mode);
  const TensorDescriptor x_desc = tensor_4d(g.n, g.c, g.h, g.w, g.channels_last);
  const TensorDescriptor y_desc = tensor_4d(g.n, g.c, g.ho, g.wo, g.channels_last);
  DL_CUDNN_CHECK(DL_CUDNN(cudnnPoolingForward)(ctx.cudnn, pool.get(), &kOne, x_desc.get(), x, &kZero, y_desc.get(), y));
}

void pool_backward(int device, const Pool2dGeometry& g, cudnnPoolingMode_t mode, const float* x, const float* y,
                   const float* dy, float* dx) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  if (g.n * g.c * g.h * g.w == 0) return;  // nothing to write
  if (g.ho * g.wo == 0) {                  // no window: no gradient reaches x
    fill(device, dx, g.n * g.c * g.h * g.w, 0.0f);
    return;
  }
  const PoolingDescriptor pool = pooling_2d(g.p, mode);
  const TensorDescriptor x_desc = tensor_4d(g.n, g.c, g.h, g.w, g.channels_last);
  const TensorDescriptor y_desc = tensor_4d(g.n, g.c, g.ho, g.wo, g.channels_last);
  DL_CUDNN_CHECK(DL_CUDNN(cudnnPoolingBackward)(ctx.cudnn, pool.get(), &kOne, y_desc.get(), y, y_desc.get(), dy,
                                                x_desc.get(), x, &kZero, x_desc.get(), dx));
}

}  // namespace

void max_pool2d_forward(int device, const Pool2dGeometry& g, const float* x, float* y) {
  pool_forward(device, g, CUDNN_POOLING_MAX_DETERMINISTIC, x, y);
}
void max_pool2d_backward(int device, const Pool2dGeometry& g, const float* x, const float* y, const float* dy,
                         float* dx) {
  pool_backward(device, g, CUDNN_POOLING_MAX_DETERMINISTIC, x, y, dy, dx);
}
void avg_pool2d_forward(int device, const Pool2dGeometry& g, const float* x, float* y) {
  pool_forward(device, g, CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING, x, y);
}
void avg_pool2d_backward(int device, const Pool2dGeometry& g, const float* x, const float* y, const float* dy,
                         float* dx) {
  pool_backward(device, g, CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING, x, y, dy, dx);
}

// ---- softmax over the channels of N x C x S ----

namespace {
cudnnSoftmaxAlgorithm_t softmax_algorithm(bool log) { return log ? CUDNN_SOFTMAX_LOG : CUDNN_SOFTMAX_ACCURATE; }
}  // namespace

// y = softmax(x) (max subtracted first), or log-softmax when `log`.
void softmax_forward(int device, const float* x, float* y, int64_t n, int64_t c, int64_t s, bool log) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  if (n * c * s == 0) return;  // nothing to write
  const TensorDescriptor data = tensor_ncs(n, c, s);
  DL_CUDNN_CHECK(DL_CUDNN(cudnnSoftmaxForward)(ctx.cudnn, softmax_algorithm(log), CUDNN_SOFTMAX_MODE_CHANNEL, &kOne,
                                               data.get(), x, &kZero, data.get(), y));
}

// y is the forward's output. The same cuDNN algorithm computes the CPU's formulas: log: dx = dy - exp(y) sum(dy);
// otherwise dx = y (dy - sum(dy y)), sums over the channels.
void softmax_backward(int device, const float* y, const float* dy, float* dx, int64_t n, int64_t c, int64_t s,
                      bool log) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  if (n * c * s == 0) return;  // nothing to write
  const TensorDescriptor data = tensor_ncs(n, c, s);
  DL_CUDNN_CHECK(DL_CUDNN(cudnnSoftmaxBackward)(ctx.cudnn, softmax_algorithm(log), CUDNN_SOFTMAX_MODE_CHANNEL, &kOne,
                                                data.get(), y, data.get(), dy, &kZero, data.get(), dx));
}

}  // namespace dl::cuda
