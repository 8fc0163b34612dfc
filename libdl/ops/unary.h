// The front end of the element-wise unary family (kernels/unary_ops.cuh), shared by the activations
// (ops/activation.cpp) and the math ops (ops/elementwise.cpp): one call per op.
#pragma once
#include "backend/cpu/cpu_ops.h"
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

// y = op(x) for a functor of kernels/unary_ops.cuh; the backward computes dx from x, y and dy.
template <typename Op>
inline Tensor unary(const Tensor& x, const char* name, const Op& op) {
  check_float(x, name, "x");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch(
      x, name,
      [&](auto t) {
        using T = decltype(t);
        cpu::unary_forward(op, x.data<T>(), y.data<T>(), x.numel());
      },
      [&](int dev) { DL_CUDA_BODY(cuda::unary_forward(dev, op, f32(x), f32(y), x.numel())); });
  if (auto* tr = active_tracer()) tr->record({name, {x}, y, TraceAttrs::of_reals(trace_reals(op))});
  if (!autograd::needs_record({x})) return y;
  const Tensor sx = x.detach(), sy = y.detach();
  return autograd::record(name, y, {x}, [sx, sy, name, op](const Tensor& gy, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(gy.shape(), gy.dtype(), gy.device());
    dispatch(
        gy, name,
        [&](auto t) {
          using T = decltype(t);
          cpu::unary_backward(op, sx.data<T>(), sy.data<T>(), gy.data<T>(), gx.data<T>(), gy.numel());
        },
        [&](int dev) { DL_CUDA_BODY(cuda::unary_backward(dev, op, f32(sx), f32(sy), f32(gy), f32(gx), gy.numel())); });
    return std::vector<Tensor>{gx};
  });
}

}  // namespace dl::ops::detail
