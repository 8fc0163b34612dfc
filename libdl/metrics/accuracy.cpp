// Argmax accuracy.
#include "dl/metrics/accuracy.h"

#include "argmax.cuh"
#include "dl/config.h"
#if DL_WITH_CUDA
#include "backend/cuda/cuda_ops.h"
#endif

namespace dl::metrics {

namespace {
template <typename T> Counts count(const T* x, const int32_t* y, int64_t n, int64_t c, int64_t s, int32_t ignore) {
  Counts k;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < s; ++j) {
      const int32_t label = y[i * s + j];
      if (ignore >= 0 && label == ignore) continue;
      k.correct += argmax_at(x, i * s + j, c, s) == label;
      ++k.total;
    }
  return k;
}
}  // namespace

Counts count_correct(const Tensor& logits, const Tensor& labels, int32_t ignore_index) {
  DL_CHECK(logits.defined() && labels.defined() && logits.dim() >= 2, "count_correct: expected N x C logits, got ",
           logits.defined() ? logits.shape().str() : "undefined");
  const int64_t n = logits.size(0), c = logits.size(1), s = n * c ? logits.numel() / (n * c) : 0;
  DL_CHECK(labels.numel() == n * s, "count_correct: logits ", logits.shape().str(), " and labels ",
           labels.shape().str(), " disagree");
#if DL_WITH_CUDA
  if (logits.device().is_cuda() && logits.dtype() == DType::kFloat32) {
    // The argmax runs on the device; the predicted classes (C times smaller than the logits) come back.
    Tensor pred = Tensor::empty({n * s}, DType::kInt32, logits.device());
    cuda::argmax_channels(logits.device().index, logits.data<float>(), n, c, s, pred.data<int32_t>());
    const Tensor p = pred.to(Device::cpu()), y = labels.to(Device::cpu());
    const int32_t* predicted = p.data<int32_t>();
    const int32_t* truth = y.data<int32_t>();
    Counts k;
    for (int64_t i = 0; i < n * s; ++i) {
      if (ignore_index >= 0 && truth[i] == ignore_index) continue;
      k.correct += predicted[i] == truth[i];
      ++k.total;
    }
    return k;
  }
#endif
  const Tensor x = logits.to(Device::cpu()), y = labels.to(Device::cpu());
  if (x.dtype() == DType::kFloat64) return count(x.data<double>(), y.data<int32_t>(), n, c, s, ignore_index);
  return count(x.data<float>(), y.data<int32_t>(), n, c, s, ignore_index);
}

}  // namespace dl::metrics
