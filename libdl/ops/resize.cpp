// Front ends of bilinear resizing and nearest-neighbour upsampling.
#include "dl/ops/resize.h"

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w) {
  if (is_bf16(x)) return bf16_of(resize_bilinear(float32_of(x), out_h, out_w));  // Note [bf16 activations]
  check_float(x, "resize_bilinear", "x");
  check_dim(x, 4, "resize_bilinear", "x");
  DL_CHECK(out_h >= 1 && out_w >= 1, "resize_bilinear: expected a positive output size, got ", out_h, "x", out_w);
  DL_CHECK(x.size(2) >= 1 && x.size(3) >= 1, "resize_bilinear: empty input ", x.shape().str());
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  // Channels-last on the CPU by its own loops (the output too, or NCHW when its two orders coincide); on CUDA
  // in NCHW between two reorders until an NHWC kernel lands.
  if (x.is_channels_last() && !x.device().is_cpu()) return channels_last(resize_bilinear(contiguous(x), out_h, out_w));
  const MemoryFormat fmt = x.memory_format();
  const bool cl = fmt == MemoryFormat::kChannelsLast;
  Tensor y = Tensor::empty({n, c, out_h, out_w}, x.dtype(), x.device(), fmt);
  dispatch(
      x, "resize_bilinear",
      [&](auto t) {
        using T = decltype(t);
        if (cl)
          cpu::resize_bilinear_forward_nhwc(x.data<T>(fmt), y.data<T>(y.memory_format()), n, c, h, w, out_h, out_w);
        else
          cpu::resize_bilinear_forward(x.data<T>(), y.data<T>(), n * c, h, w, out_h, out_w);
      },
      [&](int dev) { DL_CUDA_BODY(cuda::resize_bilinear_forward(dev, f32(x), f32(y), n * c, h, w, out_h, out_w)); });
  if (auto* tr = active_tracer()) tr->record({"resize_bilinear", {x}, y});
  const MemoryFormat fy = y.memory_format();
  return autograd::record("resize_bilinear", y, {x}, [=](const Tensor& gy_in, const std::vector<bool>&) {
    const Tensor gy = to_memory_format(gy_in, fy);
    Tensor gx = Tensor::empty({n, c, h, w}, gy.dtype(), gy.device(), fmt);
    dispatch(
        gy, "resize_bilinear_backward",
        [&](auto t) {
          using T = decltype(t);
          if (cl)
            cpu::resize_bilinear_backward_nhwc(gy.data<T>(fy), gx.data<T>(fmt), n, c, h, w, out_h, out_w);
          else
            cpu::resize_bilinear_backward(gy.data<T>(), gx.data<T>(), n * c, h, w, out_h, out_w);
        },
        [&](int dev) {
          DL_CUDA_BODY(cuda::resize_bilinear_backward(dev, f32(gy), f32(gx), n * c, h, w, out_h, out_w));
        });
    return std::vector<Tensor>{gx};
  });
}

// Each pixel as a 1 x 1 block expanded to scale_h x scale_w: the copy and its gradient (a sum over each
// block) are expand's.
Tensor upsample_nearest2d(const Tensor& x, int scale_h, int scale_w) {
  check_defined(x, "upsample_nearest2d", "x");
  check_dim(x, 4, "upsample_nearest2d", "x");
  DL_CHECK(scale_h >= 1 && scale_w >= 1, "upsample_nearest2d: expected positive integer factors, got ", scale_h, "x",
           scale_w);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  TracePause pause;  // traced as one nearest Resize, not as the reshapes and the expand
  const Tensor blocks = expand(reshape(x, {n, c, h, 1, w, 1}), {n, c, h, scale_h, w, scale_w});
  Tensor y = reshape(blocks, {n, c, h * scale_h, w * scale_w});
  pause.resume();
  if (auto* tr = active_tracer()) tr->record({"upsample_nearest2d", {x}, y, TraceAttrs::of_ints({scale_h, scale_w})});
  return y;
}

}  // namespace dl::ops
