// Front end of the fully connected layer. The forward resolves the precision it computes in (the thread's
// autocast setting, dl/core/precision.h) and the backward reuses it.
#include "dl/ops/linear.h"

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/trace.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  if (is_bf16(x)) return linear(float32_of(x), weight, bias);  // Note [bf16 activations]
  check_float(x, "linear", "x");
  check_float(weight, "linear", "weight");
  check_dim(x, 2, "linear", "x");
  check_dim(weight, 2, "linear", "weight");
  check_same({{"x", &x}, {"weight", &weight}, {"bias", &bias}}, "linear");
  const int64_t n = x.size(0), in = x.size(1), out = weight.size(0);
  DL_CHECK(weight.size(1) == in, "linear: weight ", weight.shape().str(), " expects ", weight.size(1),
           " input features, got x ", x.shape().str());
  if (bias.defined()) check_shape(bias, {out}, "linear", "bias");
  const Precision math = math_precision(x, "linear");  // captured for the backward too
  Tensor y = Tensor::empty({n, out}, x.dtype(), x.device());
  dispatch(
      x, "linear",
      [&](auto t) {
        using T = decltype(t);
        cpu::linear_forward(x.data<T>(), weight.data<T>(), ptr_or_null<T>(bias), y.data<T>(), n, in, out, math);
      },
      [&](int dev) {
        DL_CUDA_BODY(cuda::linear_forward(dev, f32(x), f32(weight), f32(bias), f32(y), n, in, out, math));
      });
  if (auto* tr = active_tracer()) tr->record({"linear", {x, weight, bias}, y});
  if (!autograd::needs_record({x, weight, bias})) return y;
  Tensor sx = x.detach(), sw = weight.detach();
  const bool has_bias = bias.defined();
  return autograd::record("linear", y, {x, weight, bias}, [=](const Tensor& gy, const std::vector<bool>& needs) {
    Tensor gx = needs[0] ? Tensor::empty(sx.shape(), sx.dtype(), sx.device()) : Tensor();
    Tensor gw = needs[1] ? Tensor::empty(sw.shape(), sw.dtype(), sw.device()) : Tensor();
    Tensor gb = has_bias && needs[2] ? Tensor::empty({out}, sw.dtype(), sw.device()) : Tensor();
    dispatch(
        gy, "linear_backward",
        [&](auto t) {
          using T = decltype(t);
          auto o = [](Tensor& u) { return u.defined() ? u.data<T>() : nullptr; };
          cpu::linear_backward(sx.data<T>(), sw.data<T>(), gy.data<T>(), o(gx), o(gw), o(gb), n, in, out, math);
        },
        [&](int dev) {
          DL_CUDA_BODY(
              cuda::linear_backward(dev, f32(sx), f32(sw), f32(gy), f32(gx), f32(gw), f32(gb), n, in, out, math));
        });
    return std::vector<Tensor>{gx, gw, gb};
  });
}

}  // namespace dl::ops
