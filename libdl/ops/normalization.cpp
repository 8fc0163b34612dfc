// Layer and group normalisation as compositions of the broadcasting ops: their gradients are those ops'.
#include "dl/ops/normalization.h"

#include <vector>

#include "dl/ops/elementwise.h"
#include "dl/ops/operators.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

namespace {
// (x - mean) / sqrt(var + eps) over the dimensions `dims` of x.
Tensor normalise(const Tensor& x, const std::vector<int64_t>& dims, double eps) {
  const Tensor centred = x - mean(x, dims, true);
  return centred * rsqrt(mean(centred * centred, dims, true) + eps);
}
}  // namespace

Tensor layer_norm(const Tensor& x, int normalized_dims, const Tensor& weight, const Tensor& bias, double eps) {
  if (is_bf16(x)) return layer_norm(float32_of(x), normalized_dims, weight, bias, eps);  // Note [bf16 activations]
  check_float(x, "layer_norm", "x");
  DL_CHECK(normalized_dims >= 1 && normalized_dims <= x.dim(), "layer_norm: expected 1 to ", x.dim(),
           " normalised dimensions for shape ", x.shape().str(), ", got ", normalized_dims);
  std::vector<int64_t> dims, tail;
  for (int d = x.dim() - normalized_dims; d < x.dim(); ++d) {
    dims.push_back(d);
    tail.push_back(x.shape()[d]);
  }
  Tensor y = normalise(x, dims, eps);
  if (weight.defined()) {
    check_shape(weight, Shape(tail), "layer_norm", "weight");
    y = y * weight;
  }
  if (bias.defined()) {
    check_shape(bias, Shape(tail), "layer_norm", "bias");
    y = y + bias;
  }
  return y;
}

Tensor group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, double eps) {
  if (is_bf16(x)) return group_norm(float32_of(x), groups, weight, bias, eps);  // Note [bf16 activations]
  check_float(x, "group_norm", "x");
  DL_CHECK(x.dim() >= 2, "group_norm: expected N x C x ..., got ", x.shape().str());
  const int64_t n = x.shape()[0], c = x.shape()[1];
  DL_CHECK(n > 0 && x.numel() > 0, "group_norm: expected a non-empty batch, got ", x.shape().str());
  DL_CHECK(groups >= 1 && c % groups == 0, "group_norm: ", groups, " groups must divide the ", c, " channels of ",
           x.shape().str());
  TracePause pause;  // traced as one op (an exporter's InstanceNormalization), not as its parts
  Tensor y = reshape(normalise(reshape(x, {n, groups, x.numel() / (n * groups)}), {2}, eps), x.shape());
  // Per-channel affine: C x 1 x ... x 1 broadcasts over N and the spatial dimensions.
  std::vector<int64_t> per_channel(static_cast<size_t>(x.dim() - 1), 1);
  per_channel[0] = c;
  if (weight.defined()) {
    check_shape(weight, {c}, "group_norm", "weight");
    y = y * reshape(weight, Shape(per_channel));
  }
  if (bias.defined()) {
    check_shape(bias, {c}, "group_norm", "bias");
    y = y + reshape(bias, Shape(per_channel));
  }
  pause.resume();
  if (auto* tr = active_tracer())
    tr->record({"group_norm", {x, weight, bias}, y, TraceAttrs::of_ints({groups}, false, {eps})});
  return y;
}

}  // namespace dl::ops
