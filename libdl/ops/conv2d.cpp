// Front end of conv2d: checks, geometry, dispatch, and the backward beside the forward.
#include "dl/ops/conv2d.h"

#include "backend/cpu/conv2d_onednn.h"
#include "backend/cpu/cpu_ops.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

Conv2dGeometry conv2d_geometry(const Shape& x, const Shape& w, const Conv2dParams& p) {
  DL_CHECK(x.ndim() == 4, "conv2d: expected input N x C x H x W, got ", x.str());
  DL_CHECK(w.ndim() == 4, "conv2d: expected weight K x C/groups x R x S, got ", w.str());
  for (int i = 0; i < 2; ++i) {
    DL_CHECK(p.stride[i] >= 1 && p.dilation[i] >= 1 && p.padding[i] >= 0,
             "conv2d: expected stride >= 1, dilation >= 1 and padding >= 0, got stride ", p.stride[i], ", dilation ",
             p.dilation[i], ", padding ", p.padding[i]);
  }
  DL_CHECK(p.groups >= 1 && x[1] % p.groups == 0 && w[0] % p.groups == 0, "conv2d: groups ", p.groups,
           " must divide the input channels ", x[1], " and the output channels ", w[0]);
  DL_CHECK(w[1] * p.groups == x[1], "conv2d: weight ", w.str(), " expects ", w[1] * p.groups,
           " input channels, got input ", x.str());
  Conv2dGeometry g{x[0], x[1], x[2], x[3], w[0], w[2], w[3], 0, 0, p};
  g.ho = window_output_size(g.h, static_cast<int>(g.r), p.stride[0], p.padding[0], p.dilation[0]);
  g.wo = window_output_size(g.w, static_cast<int>(g.s), p.stride[1], p.padding[1], p.dilation[1]);
  DL_CHECK(g.ho >= 1 && g.wo >= 1, "conv2d: input ", x.str(), " is smaller than the dilated kernel ", w.str(),
           " with padding ", p.padding[0], "x", p.padding[1]);
  return g;
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  check_float(x, "conv2d", "x");
  check_float(weight, "conv2d", "weight");
  check_same({{"x", &x}, {"weight", &weight}, {"bias", &bias}}, "conv2d");
  Conv2dGeometry g = conv2d_geometry(x.shape(), weight.shape(), p);
  g.math = math_precision(x, "conv2d");  // captured for the backward too
  if (bias.defined()) check_shape(bias, {g.k}, "conv2d", "bias");

  Tensor y = Tensor::empty({g.n, g.k, g.ho, g.wo}, x.dtype(), x.device());
  dispatch(
      x, "conv2d",
      [&](auto t) {
        using T = decltype(t);
        cpu::conv2d_forward(g, x.data<T>(), weight.data<T>(), ptr_or_null<T>(bias), y.data<T>());
      },
      [&](int dev) { DL_CUDA_BODY(cuda::conv2d_forward(dev, g, f32(x), f32(weight), f32(bias), f32(y))); });
  if (!autograd::needs_record({x, weight, bias})) return y;
  Tensor sx = x.detach(), sw = weight.detach();
  const bool has_bias = bias.defined();
  return autograd::record(
      "conv2d", y, {x, weight, bias}, [sx, sw, g, has_bias](const Tensor& gy, const std::vector<bool>& needs) {
        Tensor gx = needs[0] ? Tensor::empty(sx.shape(), sx.dtype(), sx.device()) : Tensor();
        Tensor gw = needs[1] ? Tensor::empty(sw.shape(), sw.dtype(), sw.device()) : Tensor();
        Tensor gb = has_bias && needs[2] ? Tensor::empty({g.k}, sw.dtype(), sw.device()) : Tensor();
        dispatch(
            gy, "conv2d_backward",
            [&](auto t) {
              using T = decltype(t);
              auto out = [](Tensor& u) { return u.defined() ? u.data<T>() : nullptr; };
              cpu::conv2d_backward(g, sx.data<T>(), sw.data<T>(), gy.data<T>(), out(gx), out(gw), out(gb));
            },
            [&](int dev) {
              DL_CUDA_BODY(cuda::conv2d_backward(dev, g, f32(sx), f32(sw), f32(gy), f32(gx), f32(gw), f32(gb)));
            });
        return std::vector<Tensor>{gx, gw, gb};
      });
}

}  // namespace dl::ops

namespace dl {
void set_cpu_conv_engine(CpuConvEngine e) { cpu::set_conv_engine(e); }
CpuConvEngine cpu_conv_engine() { return cpu::conv_engine(); }
bool cpu_onednn_available() { return cpu::onednn_available(); }
bool cpu_bf16_available() { return cpu::onednn_bf16_available(); }
}  // namespace dl
