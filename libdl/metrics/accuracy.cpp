// Argmax accuracy: counted where the logits are (ops::correct_counts), two numbers back to the host.
#include "dl/metrics/accuracy.h"

#include "dl/core/error.h"
#include "dl/ops/reduce.h"

namespace dl::metrics {

Counts read_counts(const Tensor& counts) {
  DL_CHECK(counts.defined() && counts.dtype() == DType::kFloat64 && counts.numel() == 2,
           "read_counts: expected the float64 {correct, counted} of ops::correct_counts, got ",
           counts.defined() ? counts.shape().str() + " " + dtype_name(counts.dtype()) : "undefined");
  const Tensor host = counts.to(Device::cpu());
  const double* v = host.data<double>();
  return {static_cast<int64_t>(v[0]), static_cast<int64_t>(v[1])};
}

Counts count_correct(const Tensor& logits, const Tensor& labels, int32_t ignore_index) {
  DL_CHECK(logits.defined() && labels.defined() && logits.dim() >= 2, "count_correct: expected N x C logits, got ",
           logits.defined() ? logits.shape().str() : "undefined");
  return read_counts(ops::correct_counts(logits, labels, ignore_index));
}

}  // namespace dl::metrics
