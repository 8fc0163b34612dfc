// Front ends of the metrics' device work: argmax (and argmin) and the segmentation counts.
#include "dl/ops/segmentation.h"

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/reduce.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

namespace {
Tensor arg_extreme(const Tensor& x, int64_t dim, bool keepdim, bool smallest, const char* op) {
  if (is_bf16(x)) return arg_extreme(float32_of(x), dim, keepdim, smallest, op);  // Note [bf16 activations]
  check_float(x, op, "x");
  if (x.is_channels_last()) return arg_extreme(contiguous(x.detach()), dim, keepdim, smallest, op);
  DL_CHECK(x.dim() >= 1 && dim >= -x.dim() && dim < x.dim(), op, ": expected a dimension in [", -x.dim(), ", ", x.dim(),
           ") for shape ", x.shape().str(), ", got ", dim);
  if (dim < 0) dim += x.dim();
  DL_CHECK(x.size(dim) >= 1, op, ": dimension ", dim, " of ", x.shape().str(), " is empty");
  std::vector<int64_t> out_dims;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d != dim) {
      out_dims.push_back(x.size(d));
    } else if (keepdim) {
      out_dims.push_back(1);
    }
    if (d < dim) outer *= x.size(d);
    if (d > dim) inner *= x.size(d);
  }
  const int64_t c = x.size(dim);
  Tensor y = Tensor::empty(Shape(out_dims), DType::kInt32, x.device());
  dispatch(
      x, op,
      [&](auto t) {
        using T = decltype(t);
        cpu::argmax_channels(x.data<T>(), outer, c, inner, y.data<int32_t>(), smallest);
      },
      [&](int dev) { DL_CUDA_BODY(cuda::argmax_channels(dev, f32(x), outer, c, inner, y.data<int32_t>(), smallest)); });
  if (auto* tr = active_tracer()) tr->record({op, {x}, y});
  return y;
}
}  // namespace

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) { return arg_extreme(x, dim, keepdim, false, "argmax"); }
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) { return arg_extreme(x, dim, keepdim, true, "argmin"); }

Tensor correct_counts(const Tensor& logits, const Tensor& given_labels, int32_t ignore_index) {
  if (is_bf16(logits))
    return correct_counts(float32_of(logits), given_labels, ignore_index);  // Note [bf16 activations]
  const char* op = "correct_counts";
  check_float(logits, op, "logits");
  if (logits.is_channels_last()) return correct_counts(contiguous(logits.detach()), given_labels, ignore_index);
  check_defined(given_labels, op, "labels");
  const Tensor labels = int32_labels(given_labels, op);
  DL_CHECK(logits.dim() >= 2, op, ": expected N x C logits (N x C x H x W for pixels), got ", logits.shape().str());
  const int64_t n = logits.size(0), c = logits.size(1), s = n * c != 0 ? logits.numel() / (n * c) : 0;
  DL_CHECK(labels.numel() == n * s, op, ": logits ", logits.shape().str(), " and labels ", labels.shape().str(),
           " disagree (expected one label per sample or pixel)");
  DL_CHECK(labels.dtype() == DType::kInt32, op, ": expected int32 labels, got ", dtype_name(labels.dtype()));
  DL_CHECK(labels.device() == logits.device(), op, ": the logits are on ", logits.device().str(), " but the labels on ",
           labels.device().str());
  Tensor counts = Tensor::empty({2}, DType::kFloat64, logits.device());
  dispatch(
      logits, op,
      [&](auto t) {
        using T = decltype(t);
        cpu::correct_counts(logits.data<T>(), labels.data<int32_t>(), n, c, s, ignore_index, counts.data<double>());
      },
      [&](int dev) {
        DL_CUDA_BODY(cuda::correct_counts(dev, f32(logits), labels.data<int32_t>(), n, c, s, ignore_index,
                                          counts.data<double>()));
      });
  return counts;
}

SegmentationCounts segmentation_counts(const Tensor& given_pred, const Tensor& given_truth, int num_classes,
                                       int32_t void_label) {
  const char* op = "segmentation_counts";
  check_defined(given_pred, op, "pred");
  check_defined(given_truth, op, "truth");
  const Tensor pred = int32_labels(given_pred, op), truth = int32_labels(given_truth, op);
  DL_CHECK(pred.shape() == truth.shape() && (pred.dim() == 2 || pred.dim() == 3), op,
           ": expected prediction and ground truth of one shape, H x W or N x H x W, got ", pred.shape().str(), " and ",
           truth.shape().str());
  for (const Tensor* t : {&pred, &truth})
    DL_CHECK(t->dtype() == DType::kInt32 || t->dtype() == DType::kUInt8, op, ": expected int32 or uint8 labels, got ",
             dtype_name(t->dtype()));
  DL_CHECK(pred.device() == truth.device(), op, ": the prediction is on ", pred.device().str(),
           " but the ground truth on ", truth.device().str());
  DL_CHECK(num_classes >= 1 && num_classes <= kMaxSegmentationClasses, op, ": expected 1 to ", kMaxSegmentationClasses,
           " classes, got ", num_classes);
  const Tensor p = pred.to(DType::kInt32), t = truth.to(DType::kInt32);
  SegmentationCounts out;
  out.images = pred.dim() == 3 ? pred.size(0) : 1;
  out.num_classes = num_classes;
  const int64_t h = pred.size(-2), w = pred.size(-1);
  if (pred.device().is_cuda()) {
    DL_CUDA_BODY(cuda::segmentation_counts(pred.device().index, p.data<int32_t>(), t.data<int32_t>(), out.images, h, w,
                                           num_classes, void_label, out.confusion, out.boundary));
  } else {
    cpu::segmentation_counts(p.data<int32_t>(), t.data<int32_t>(), out.images, h, w, num_classes, void_label,
                             out.confusion, out.boundary);
  }
  return out;
}

}  // namespace dl::ops
