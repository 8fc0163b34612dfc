// Front ends of the activations. ReLU's backward keeps the output (y > 0 decides the mask); the unary
// family of kernels/unary_ops.cuh keeps input and output, and its functor names the op to both backends.
#include "dl/ops/activation.h"

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/dispatch.h"
#include "ops/unary.h"

namespace dl::ops {

using namespace detail;

Tensor relu(const Tensor& x) {
  if (is_bf16(x) && !x.device().is_cpu()) return bf16_of(relu(float32_of(x)));  // Note [bf16 activations]
  check_float_or_bf16(x, "relu", "x");
  Tensor y = empty_like(x);  // Note [element-wise formats]
  {
    const Tensor xs = storage(x);
    Tensor ys = storage(y);
    dispatch_with_bf16(
        x, "relu",
        [&](auto t) {
          using T = decltype(t);
          cpu::relu_forward(xs.data<T>(), ys.data<T>(), x.numel());
        },
        [&](int dev) { DL_CUDA_BODY(cuda::relu_forward(dev, f32(xs), f32(ys), x.numel())); });
  }
  if (auto* tr = active_tracer()) tr->record({"relu", {x}, y});
  if (!autograd::needs_record({x})) return y;
  Tensor saved = y.detach();
  return autograd::record("relu", y, {x}, [saved](const Tensor& gy, const std::vector<bool>&) {
    return std::vector<Tensor>{relu_mask(gy, saved)};
  });
}

Tensor sigmoid(const Tensor& x) { return unary(x, "sigmoid", kern::SigmoidOp{}); }
Tensor tanh(const Tensor& x) { return unary(x, "tanh", kern::TanhOp{}); }
Tensor gelu(const Tensor& x) { return unary(x, "gelu", kern::GeluOp{}); }
Tensor silu(const Tensor& x) { return unary(x, "silu", kern::SiluOp{}); }
Tensor leaky_relu(const Tensor& x, double negative_slope) {
  return unary(x, "leaky_relu", kern::LeakyReluOp{static_cast<float>(negative_slope)});
}
Tensor elu(const Tensor& x, double alpha) { return unary(x, "elu", kern::EluOp{static_cast<float>(alpha)}); }

}  // namespace dl::ops
