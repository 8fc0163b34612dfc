// Front ends of max, average and global average pooling.
#include "dl/ops/pooling.h"

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

Pool2dGeometry pool2d_geometry(const Shape& x, const Pool2dParams& p) {
  DL_CHECK(x.ndim() == 4, "pool2d: expected input N x C x H x W, got ", x.str());
  for (int i = 0; i < 2; ++i)
    DL_CHECK(p.kernel[i] >= 1 && p.stride[i] >= 1 && p.padding[i] >= 0 && 2 * p.padding[i] <= p.kernel[i],
             "pool2d: expected kernel >= 1, stride >= 1 and 0 <= padding <= kernel / 2, got kernel ", p.kernel[i],
             ", stride ", p.stride[i], ", padding ", p.padding[i]);
  Pool2dGeometry g{x[0], x[1], x[2], x[3], 0, 0, p};
  g.ho = window_output_size(g.h, p.kernel[0], p.stride[0], p.padding[0], 1);
  g.wo = window_output_size(g.w, p.kernel[1], p.stride[1], p.padding[1], 1);
  DL_CHECK(g.ho >= 1 && g.wo >= 1, "pool2d: input ", x.str(), " is smaller than the window ", p.kernel[0], "x",
           p.kernel[1]);
  return g;
}

Tensor max_pool2d(const Tensor& x, const Pool2dParams& p) {
  if (is_bf16(x) && !x.device().is_cpu()) return bf16_of(max_pool2d(float32_of(x), p));  // Note [bf16 activations]
  check_float_or_bf16(x, "max_pool2d", "x");
  Pool2dGeometry g = pool2d_geometry(x.shape(), p);
  // Channels-last (Note [memory format]) on the CPU by its own loops, on CUDA by cuDNN with NHWC descriptors.
  const MemoryFormat fmt = x.memory_format();
  const bool cl = fmt == MemoryFormat::kChannelsLast;
  g.channels_last = cl;
  Tensor y = Tensor::empty({g.n, g.c, g.ho, g.wo}, x.dtype(), x.device(), fmt);
  // The argmax lies as y does (N C Ho Wo or N Ho Wo C), held as a plain tensor.
  Tensor argmax = x.device().is_cpu() ? Tensor::empty({g.n, g.c, g.ho, g.wo}, DType::kInt32, x.device()) : Tensor();
  dispatch_with_bf16(
      x, "max_pool2d",
      [&](auto t) {
        using T = decltype(t);
        if (cl && y.is_channels_last())
          cpu::max_pool2d_forward_nhwc(g, x.data<T>(fmt), y.data<T>(fmt), argmax.data<int32_t>());
        else if (cl)  // a 1 x 1 output: either order
          cpu::max_pool2d_forward_nhwc(g, x.data<T>(fmt), y.data<T>(), argmax.data<int32_t>());
        else
          cpu::max_pool2d_forward(g, x.data<T>(), y.data<T>(), argmax.data<int32_t>());
      },
      [&](int dev) { DL_CUDA_BODY(cuda::max_pool2d_forward(dev, g, stored_f32(x), stored_f32(y))); });
  // The CPU backward routes by the argmax; cuDNN's finds the maximum again from x and y.
  const Tensor sx = x.device().is_cuda() ? x.detach() : Tensor(), sy = x.device().is_cuda() ? y.detach() : Tensor();
  if (auto* tr = active_tracer()) tr->record({"max_pool2d", {x}, y, TraceAttrs::of_pool(p)});
  const MemoryFormat fy = y.memory_format();
  return autograd::record(
      "max_pool2d", y, {x}, [g, argmax, sx, sy, fmt, fy](const Tensor& gy_in, const std::vector<bool>&) {
        const Tensor gy = to_memory_format(gy_in, fy);
        Tensor gx = Tensor::empty({g.n, g.c, g.h, g.w}, gy.dtype(), gy.device(), fmt);
        dispatch_with_bf16(
            gy, "max_pool2d_backward",
            [&](auto t) {
              using T = decltype(t);
              if (fmt == MemoryFormat::kChannelsLast)
                cpu::max_pool2d_backward_nhwc(g, gy.data<T>(fy), argmax.data<int32_t>(), gx.data<T>(fmt));
              else
                cpu::max_pool2d_backward(g, gy.data<T>(), argmax.data<int32_t>(), gx.data<T>());
            },
            [&](int dev) {
              DL_CUDA_BODY(
                  cuda::max_pool2d_backward(dev, g, stored_f32(sx), stored_f32(sy), stored_f32(gy), stored_f32(gx)));
            });
        return std::vector<Tensor>{gx};
      });
}

Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p) {
  if (is_bf16(x)) return bf16_of(avg_pool2d(float32_of(x), p));  // Note [bf16 activations]
  check_float(x, "avg_pool2d", "x");
  // Channels-last in NCHW between two reorders (the ASPP's image pooling reads a small map once).
  if (x.is_channels_last()) return channels_last(avg_pool2d(contiguous(x), p));
  const Pool2dGeometry g = pool2d_geometry(x.shape(), p);
  Tensor y = Tensor::empty({g.n, g.c, g.ho, g.wo}, x.dtype(), x.device());
  dispatch(
      x, "avg_pool2d",
      [&](auto t) {
        using T = decltype(t);
        cpu::avg_pool2d_forward(g, x.data<T>(), y.data<T>());
      },
      [&](int dev) { DL_CUDA_BODY(cuda::avg_pool2d_forward(dev, g, f32(x), f32(y))); });
  const Tensor sx = x.device().is_cuda() ? x.detach() : Tensor(), sy = x.device().is_cuda() ? y.detach() : Tensor();
  if (auto* tr = active_tracer()) tr->record({"avg_pool2d", {x}, y, TraceAttrs::of_pool(p)});
  return autograd::record("avg_pool2d", y, {x}, [g, sx, sy](const Tensor& gy, const std::vector<bool>&) {
    Tensor gx = Tensor::empty({g.n, g.c, g.h, g.w}, gy.dtype(), gy.device());
    dispatch(
        gy, "avg_pool2d_backward",
        [&](auto t) {
          using T = decltype(t);
          cpu::avg_pool2d_backward(g, gy.data<T>(), gx.data<T>());
        },
        [&](int dev) { DL_CUDA_BODY(cuda::avg_pool2d_backward(dev, g, f32(sx), f32(sy), f32(gy), f32(gx))); });
    return std::vector<Tensor>{gx};
  });
}

Tensor global_avg_pool2d(const Tensor& x) {
  if (is_bf16(x)) return bf16_of(global_avg_pool2d(float32_of(x)));  // Note [bf16 activations]
  check_float(x, "global_avg_pool2d", "x");
  check_dim(x, 4, "global_avg_pool2d", "x");
  const Pool2dParams p{{static_cast<int>(x.size(2)), static_cast<int>(x.size(3))},
                       {static_cast<int>(x.size(2)), static_cast<int>(x.size(3))},
                       {0, 0}};
  return avg_pool2d(x, p);
}

}  // namespace dl::ops
