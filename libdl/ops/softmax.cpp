// Front ends of softmax, log-softmax and cross-entropy (classes along dimension 1).
#include "dl/ops/softmax.h"

#include <cmath>
#include <limits>
#include <string>

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/loss.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

namespace {
struct ClassLayout {
  int64_t n, c, s;
};
ClassLayout class_layout(const Tensor& x, const char* op) {
  DL_CHECK(x.dim() >= 2, op, ": expected N x C or N x C x ..., got ", x.shape().str());
  const int64_t n = x.size(0), c = x.size(1);
  DL_CHECK(c >= 1, op, ": expected at least one class, got ", x.shape().str());
  return {n, c, n * c == 0 ? 0 : x.numel() / (n * c)};
}

Tensor softmax_impl(const Tensor& x, bool log) {
  if (is_bf16(x)) return softmax_impl(float32_of(x), log);  // Note [bf16 activations]
  // Over the channels of NCHW (a channels-last x is reordered first; Note [memory format]).
  if (x.defined() && x.is_channels_last()) return softmax_impl(contiguous(x), log);
  const char* op = log ? "log_softmax" : "softmax";
  check_float(x, op, "x");
  const ClassLayout l = class_layout(x, op);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch(
      x, op,
      [&](auto t) {
        using T = decltype(t);
        cpu::softmax_forward(x.data<T>(), y.data<T>(), l.n, l.c, l.s, log);
      },
      [&](int dev) { DL_CUDA_BODY(cuda::softmax_forward(dev, f32(x), f32(y), l.n, l.c, l.s, log)); });
  if (auto* tr = active_tracer()) tr->record({op, {x}, y});
  if (!autograd::needs_record({x})) return y;
  Tensor sy = y.detach();
  return autograd::record(op, y, {x}, [sy, l, log](const Tensor& gy, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(gy.shape(), gy.dtype(), gy.device());
    dispatch(
        gy, "softmax_backward",
        [&](auto t) {
          using T = decltype(t);
          cpu::softmax_backward(sy.data<T>(), gy.data<T>(), gx.data<T>(), l.n, l.c, l.s, log);
        },
        [&](int dev) { DL_CUDA_BODY(cuda::softmax_backward(dev, f32(sy), f32(gy), f32(gx), l.n, l.c, l.s, log)); });
    return std::vector<Tensor>{gx};
  });
}
}  // namespace

Tensor softmax(const Tensor& x) { return softmax_impl(x, false); }
Tensor log_softmax(const Tensor& x) { return softmax_impl(x, true); }

void check_labels(const Tensor& given_labels, int64_t num_classes, int32_t ignore_index) {
  check_defined(given_labels, "check_labels", "labels");
  const Tensor labels = int32_labels(given_labels, "check_labels");
  DL_CHECK(labels.dtype() == DType::kInt32, "check_labels: expected int32 labels, got ", dtype_name(labels.dtype()));
  const int64_t count = labels.numel();
  int64_t pos = count;
  int32_t label = 0;
  if (labels.device().is_cuda()) {
    DL_CUDA_BODY(const auto [p, v] = cuda::first_bad_label(labels.device().index, labels.data<int32_t>(), count,
                                                           num_classes, ignore_index);
                 pos = p; label = v);
  } else {
    const int32_t* y = labels.data<int32_t>();
    for (int64_t i = 0; i < count && pos == count; ++i)
      if (!(ignore_index >= 0 && y[i] == ignore_index) && (y[i] < 0 || y[i] >= num_classes)) {
        pos = i;
        label = y[i];
      }
  }
  DL_CHECK(pos == count, "cross_entropy: label ", label, " at position ", pos, " is outside the class range [0, ",
           num_classes, ")", ignore_index >= 0 ? " and is not the ignored label " + std::to_string(ignore_index) : "");
}

Tensor cross_entropy(const Tensor& logits, const Tensor& given_labels, const CrossEntropyOptions& opt) {
  if (is_bf16(logits)) return cross_entropy(float32_of(logits), given_labels, opt);  // Note [bf16 activations]
  // The kernels read NCHW logits (a channels-last map is reordered first; Note [memory format]).
  if (logits.defined() && logits.is_channels_last()) return cross_entropy(contiguous(logits), given_labels, opt);
  const char* op = "cross_entropy";
  check_float(logits, op, "logits");
  check_defined(given_labels, op, "labels");
  const Tensor labels = int32_labels(given_labels, op);
  DL_CHECK(labels.dtype() == DType::kInt32, op, ": expected int32 labels, got ", dtype_name(labels.dtype()));
  const ClassLayout l = class_layout(logits, op);
  std::vector<int64_t> want = logits.shape().vec();
  want.erase(want.begin() + 1);
  DL_CHECK(labels.shape() == Shape(want), op, ": logits ", logits.shape().str(), " need labels of shape ",
           Shape(want).str(), ", got ", labels.shape().str());
  const Tensor& w = opt.class_weights;
  if (w.defined()) {
    check_same({{"logits", &logits}, {"class_weights", &w}}, op);
    check_shape(w, {l.c}, op, "class_weights");
  }
  DL_CHECK(labels.device() == logits.device(), op, ": labels on ", labels.device().str(), ", logits on ",
           logits.device().str());
  // Labels are validated here, once, so that no backend reads out of range.
  // On the CPU here; on CUDA inside the kernel (see loss.h).
  if (labels.device().is_cpu()) check_labels(labels, l.c, opt.ignore_index);

  Tensor log_probs = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  Tensor loss = Tensor::empty({1}, logits.dtype(), logits.device());
  double total = 0, wsum = 0;
  // On CUDA the denominator stays on the device for the backward; an all-ignored batch gives a NaN loss
  // there (no read back), which the trainer's NaN check reports.
  Tensor device_wsum = logits.device().is_cuda() ? Tensor::empty({1}, DType::kFloat64, logits.device()) : Tensor();
  dispatch(
      logits, op,
      [&](auto t) {
        using T = decltype(t);
        cpu::cross_entropy_forward(logits.data<T>(), labels.data<int32_t>(), ptr_or_null<T>(w), l.n, l.c, l.s,
                                   opt.ignore_index, log_probs.data<T>(), &total, &wsum);
        DL_CHECK(wsum > 0, op, ": no sample counted (every label ignored or of zero weight) in labels ",
                 labels.shape().str());
        loss.data<T>()[0] = static_cast<T>(total / wsum);
      },
      [&](int dev) {
        DL_CUDA_BODY(cuda::cross_entropy_forward(dev, f32(logits), labels.data<int32_t>(), f32(w), l.n, l.c, l.s,
                                                 opt.ignore_index, f32(log_probs), f32(loss),
                                                 device_wsum.data<double>()));
      });
  if (!autograd::needs_record({logits})) return loss;
  Tensor sw = w.defined() ? w.detach() : Tensor();
  const Tensor saved_labels = labels.clone();  // the caller may reuse its buffer before backward
  const int32_t ignore = opt.ignore_index;
  return autograd::record(op, loss, {logits}, [=](const Tensor& gy, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(log_probs.shape(), log_probs.dtype(), log_probs.device());
    dispatch(
        gy, "cross_entropy_backward",
        [&](auto t) {
          using T = decltype(t);
          const T scale = static_cast<T>(gy.item<double>() / wsum);
          cpu::cross_entropy_backward(log_probs.data<T>(), saved_labels.data<int32_t>(), ptr_or_null<T>(sw), l.n, l.c,
                                      l.s, ignore, scale, gx.data<T>());
        },
        [&](int dev) {
          DL_CUDA_BODY(cuda::cross_entropy_backward(dev, f32(log_probs), saved_labels.data<int32_t>(), f32(sw), l.n,
                                                    l.c, l.s, ignore, f32(gy), device_wsum.data<double>(), f32(gx)));
        });
    return std::vector<Tensor>{gx};
  });
}

}  // namespace dl::ops
