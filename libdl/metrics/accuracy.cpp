// Argmax accuracy: the argmax runs where the logits are (ops::argmax); the predicted classes, C times
// smaller than the logits, come back to be compared with the labels.
#include "dl/metrics/accuracy.h"

#include "dl/core/error.h"
#include "dl/ops/reduce.h"

namespace dl::metrics {

Counts count_correct(const Tensor& logits, const Tensor& labels, int32_t ignore_index) {
  DL_CHECK(logits.defined() && labels.defined() && logits.dim() >= 2, "count_correct: expected N x C logits, got ",
           logits.defined() ? logits.shape().str() : "undefined");
  const int64_t n = logits.size(0), c = logits.size(1), s = n * c != 0 ? logits.numel() / (n * c) : 0;
  DL_CHECK(labels.numel() == n * s, "count_correct: logits ", logits.shape().str(), " and labels ",
           labels.shape().str(), " disagree");
  DL_CHECK(labels.dtype() == DType::kInt32, "count_correct: expected int32 labels, got ", dtype_name(labels.dtype()));
  Counts k;
  if (n * s == 0) return k;
  const Tensor predicted = ops::argmax(logits, 1).to(Device::cpu()), truth = labels.to(Device::cpu());
  const int32_t* p = predicted.data<int32_t>();
  const int32_t* y = truth.data<int32_t>();
  for (int64_t i = 0; i < n * s; ++i) {
    if (ignore_index >= 0 && y[i] == ignore_index) continue;
    k.correct += p[i] == y[i];
    ++k.total;
  }
  return k;
}

}  // namespace dl::metrics
