// The front end of the element-wise unary family (kernels/unary_ops.cuh), shared by the activations
// (ops/activation.cpp) and the math ops (ops/elementwise.cpp): one call per op.
#pragma once
#include "backend/cpu/cpu_ops.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/dispatch.h"
#include "unary_ops.cuh"

namespace dl::ops::detail {

// The parameters of a functor as its trace reports them (dl/ops/trace.h): slope, alpha, lo and hi.
template <typename Op>
std::vector<double> trace_reals(const Op&) {
  return {};
}
inline std::vector<double> trace_reals(const kern::LeakyReluOp& op) { return {op.slope}; }
inline std::vector<double> trace_reals(const kern::EluOp& op) { return {op.alpha}; }
inline std::vector<double> trace_reals(const kern::ClampOp& op) { return {op.lo, op.hi}; }

// The ReLU's backward: dy masked by y > 0, in y's memory format (Note [element-wise formats]). Shared by
// ops::relu, the fused convolution + ReLU and, on CUDA, batch norm's fused ReLU.
inline Tensor relu_mask(const Tensor& gy_in, const Tensor& y) {
  const Tensor gy = storage(to_memory_format(gy_in, y.memory_format()));
  Tensor gx = empty_like(y);
  const Tensor ys = storage(y);
  Tensor gxs = storage(gx);
  dispatch_with_bf16(
      gy, "relu_backward",
      [&](auto t) {
        using T = decltype(t);
        cpu::relu_backward(ys.data<T>(), gy.data<T>(), gxs.data<T>(), gy.numel());
      },
      [&](int dev) { DL_CUDA_BODY(cuda::relu_backward(dev, f32(ys), f32(gy), f32(gxs), gy.numel())); });
  return gx;
}

// y = op(x) for a functor of kernels/unary_ops.cuh; the backward computes dx from x, y and dy.
template <typename Op>
inline Tensor unary(const Tensor& x, const char* name, const Op& op) {
  if (is_bf16(x)) return bf16_of(unary(float32_of(x), name, op));  // Note [bf16 activations]
  check_float(x, name, "x");
  Tensor y = empty_like(x);  // Note [element-wise formats]
  {
    const Tensor xs = storage(x);
    Tensor ys = storage(y);
    dispatch(
        x, name,
        [&](auto t) {
          using T = decltype(t);
          cpu::unary_forward(op, xs.data<T>(), ys.data<T>(), x.numel());
        },
        [&](int dev) { DL_CUDA_BODY(cuda::unary_forward(dev, op, f32(xs), f32(ys), x.numel())); });
  }
  if (auto* tr = active_tracer()) tr->record({name, {x}, y, TraceAttrs::of_reals(trace_reals(op))});
  if (!autograd::needs_record({x})) return y;
  const Tensor sx = x.detach(), sy = y.detach();
  return autograd::record(name, y, {x}, [sx, sy, name, op](const Tensor& gy_in, const std::vector<bool>&) {
    const Tensor gy = storage(to_memory_format(gy_in, sx.memory_format()));
    Tensor gx = empty_like(sx);
    const Tensor xs = storage(sx), ys = storage(sy);
    Tensor gxs = storage(gx);
    dispatch(
        gy, name,
        [&](auto t) {
          using T = decltype(t);
          cpu::unary_backward(op, xs.data<T>(), ys.data<T>(), gy.data<T>(), gxs.data<T>(), gy.numel());
        },
        [&](int dev) { DL_CUDA_BODY(cuda::unary_backward(dev, op, f32(xs), f32(ys), f32(gy), f32(gxs), gy.numel())); });
    return std::vector<Tensor>{gx};
  });
}

}  // namespace dl::ops::detail
