// Front ends of bilinear resizing and nearest-neighbour upsampling.
#include "dl/ops/resize.h"

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w) {
  check_float(x, "resize_bilinear", "x");
  check_dim(x, 4, "resize_bilinear", "x");
  DL_CHECK(out_h >= 1 && out_w >= 1, "resize_bilinear: expected a positive output size, got ", out_h, "x", out_w);
  DL_CHECK(x.size(2) >= 1 && x.size(3) >= 1, "resize_bilinear: empty input ", x.shape().str());
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  Tensor y = Tensor::empty({n, c, out_h, out_w}, x.dtype(), x.device());
  dispatch(
      x, "resize_bilinear",
      [&](auto t) {
        using T = decltype(t);
        cpu::resize_bilinear_forward(x.data<T>(), y.data<T>(), n * c, h, w, out_h, out_w);
      },
      [&](int dev) { DL_CUDA_BODY(cuda::resize_bilinear_forward(dev, f32(x), f32(y), n * c, h, w, out_h, out_w)); });
  if (auto* tr = active_tracer()) tr->record({"resize_bilinear", {x}, y});
  return autograd::record("resize_bilinear", y, {x}, [=](const Tensor& gy, const std::vector<bool>&) {
    Tensor gx = Tensor::empty({n, c, h, w}, gy.dtype(), gy.device());
    dispatch(
        gy, "resize_bilinear_backward",
        [&](auto t) {
          using T = decltype(t);
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
