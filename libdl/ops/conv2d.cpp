// Front end of conv2d: checks, geometry, dispatch, and the backward beside the forward.
#include "dl/ops/conv2d.h"

#include "backend/cpu/conv2d_onednn.h"
#include "backend/cpu/cpu_ops.h"
#include "dl/ops/elementwise.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/dispatch.h"
#include "ops/unary.h"

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

namespace {
// Note [fused conv relu]: conv2d_relu is one op in the graph: the forward applies the ReLU in the
// convolution's output pass (oneDNN's eltwise post-op, the im2col path's bias loop; on CUDA cuDNN's fused
// convolution + bias + activation, Note [fused conv relu on cuDNN]), the backward masks dy by y > 0 and runs the
// convolution's backward. It keeps y (for the mask) where conv2d keeps nothing of its output.
Tensor conv2d_impl(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p, bool relu) {
  if (is_bf16(x) && !x.device().is_cpu()) return conv2d_impl(float32_of(x), weight, bias, p, relu);
  check_float_or_bf16(x, "conv2d", "x");
  check_float(weight, "conv2d", "weight");
  if (is_bf16(x)) {  // float32 master weights (Note [bf16 activations] in ops/precision.cpp)
    check_same({{"weight", &weight}, {"bias", &bias}}, "conv2d");
    DL_CHECK(weight.dtype() == DType::kFloat32 && weight.device() == x.device(),
             "conv2d: a bfloat16 x takes a float32 weight on its device, got ", dtype_name(weight.dtype()), " on ",
             weight.device().str());
  } else {
    check_same({{"x", &x}, {"weight", &weight}, {"bias", &bias}}, "conv2d");
  }
  Conv2dGeometry g = conv2d_geometry(x.shape(), weight.shape(), p);
  g.math = math_precision(x, "conv2d");  // captured for the backward too
  if (bias.defined()) check_shape(bias, {g.k}, "conv2d", "bias");
  // Note [bf16 activations]: under bf16 on the CPU, y is stored in bfloat16, and oneDNN reads and writes the
  // bf16 buffers as they are.
  g.x_bf16 = is_bf16(x);
  g.y_bf16 = g.math == Precision::kBf16 && x.device().is_cpu();
  // A channels-last x gives a channels-last y (Note [memory format]). oneDNN and cuDNN read NHWC; where no
  // engine does (the im2col path of float64 and small float32 convolutions) the convolution runs in NCHW
  // between two reorders, with the same result.
  const MemoryFormat fmt = x.memory_format();
  if (fmt == MemoryFormat::kChannelsLast &&
      !((x.device().is_cpu() && (x.dtype() == DType::kFloat32 || g.x_bf16) && cpu::conv2d_takes_channels_last(g)) ||
        (x.device().is_cuda() && x.dtype() == DType::kFloat32)))
    return channels_last(conv2d_impl(contiguous(x), weight, bias, p, relu));
  g.channels_last = fmt == MemoryFormat::kChannelsLast;
  g.relu = relu;

  const bool bf16_storage = g.x_bf16 || g.y_bf16;  // oneDNN's buffers: either may be bfloat16
  Tensor y = Tensor::empty({g.n, g.k, g.ho, g.wo}, g.y_bf16 ? DType::kBFloat16 : x.dtype(), x.device(), fmt);
  dispatch_with_bf16(
      x, "conv2d",
      [&](auto t) {
        using T = decltype(t);
        if (bf16_storage) {
          DL_CHECK(cpu::onednn_conv2d_forward(g, x.raw_data(fmt), weight.data<float>(), ptr_or_null<float>(bias),
                                              y.raw_data(y.memory_format())),
                   "conv2d: bfloat16 activations need oneDNN (internal: the precision check passed)");
        } else if constexpr (!std::is_same_v<T, BFloat16>) {
          cpu::conv2d_forward(g, x.data<T>(fmt), weight.data<T>(), ptr_or_null<T>(bias), y.data<T>(y.memory_format()));
        }
      },
      [&](int dev) {
        // Note [cuDNN channels-last convolution]: NHWC x and y with the weight reordered to K R S C; NCHW ones
        // with the weight as K C R S, whatever format it is kept in. The reorder is the call's own business.
        const TracePause untraced;
        const Tensor w = to_memory_format(weight.detach(),
                                          g.channels_last ? MemoryFormat::kChannelsLast : MemoryFormat::kContiguous);
        DL_CUDA_BODY(cuda::conv2d_forward(dev, g, stored_f32(x), stored_f32(w), f32(bias), stored_f32(y)));
      });
  if (auto* tr = active_tracer()) {
    TraceAttrs attrs = TraceAttrs::of_conv(p);
    attrs.flag = relu;
    tr->record({"conv2d", {x, weight, bias}, y, attrs});
  }
  if (!autograd::needs_record({x, weight, bias})) return y;
  Tensor sx = x.detach(), sw = weight.detach(), sy = relu ? y.detach() : Tensor();
  const bool has_bias = bias.defined();
  return autograd::record(
      relu ? "conv2d_relu" : "conv2d", y, {x, weight, bias},
      [sx, sw, sy, g, has_bias, fy = y.memory_format()](const Tensor& gy_in, const std::vector<bool>& needs) {
        // dy masked by y > 0 under the fused ReLU (y's format is fy; dy comes in y's dtype).
        const Tensor gy = sy.defined() ? relu_mask(gy_in, sy) : to_memory_format(gy_in, fy);
        const MemoryFormat fx = sx.memory_format();
        Tensor gx = needs[0] ? Tensor::empty(sx.shape(), sx.dtype(), sx.device(), fx) : Tensor();
        Tensor gw = needs[1] ? Tensor::empty(sw.shape(), sw.dtype(), sw.device()) : Tensor();
        Tensor gb = has_bias && needs[2] ? Tensor::empty({g.k}, sw.dtype(), sw.device()) : Tensor();
        dispatch_with_bf16(
            gy, "conv2d_backward",
            [&](auto t) {
              using T = decltype(t);
              if (g.x_bf16 || g.y_bf16) {
                auto raw = [](Tensor& u) { return u.defined() ? u.raw_data(u.memory_format()) : nullptr; };
                auto f = [](Tensor& u) { return u.defined() ? u.data<float>() : nullptr; };
                DL_CHECK(cpu::onednn_conv2d_backward(g, sx.raw_data(fx), sw.data<float>(), gy.raw_data(fy), raw(gx),
                                                     f(gw), f(gb)),
                         "conv2d: bfloat16 activations need oneDNN (internal: the precision check passed)");
              } else if constexpr (!std::is_same_v<T, BFloat16>) {
                auto out = [](Tensor& u) { return u.defined() ? u.data<T>(u.memory_format()) : nullptr; };
                cpu::conv2d_backward(g, sx.data<T>(fx), sw.data<T>(), gy.data<T>(fy), out(gx), out(gw), out(gb));
              }
            },
            [&](int dev) {
              // Note [cuDNN channels-last convolution]: the weight in, and its gradient out, as K R S C.
              const MemoryFormat fw = g.channels_last ? MemoryFormat::kChannelsLast : MemoryFormat::kContiguous;
              const Tensor w = to_memory_format(sw, fw);
              Tensor gw_k =
                  gw.defined() && g.channels_last ? Tensor::empty(sw.shape(), sw.dtype(), sw.device(), fw) : gw;
              DL_CUDA_BODY(cuda::conv2d_backward(dev, g, stored_f32(sx), stored_f32(w), stored_f32(gy), stored_f32(gx),
                                                 stored_f32(gw_k), f32(gb)));
              if (gw.defined() && g.channels_last) gw = to_memory_format(gw_k, MemoryFormat::kContiguous);
            });
        return std::vector<Tensor>{gx, gw, gb};
      });
}
}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  return conv2d_impl(x, weight, bias, p, false);
}

Tensor conv2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  return conv2d_impl(x, weight, bias, p, true);
}

// Note [transposed convolution]: conv_transpose2d(x, w) is the input-gradient pass of the convolution
// whose input is the transposed one's output y (N x C_out x Ho x Wo), whose weight is w read as
// K = C_in by C_out/groups, and whose output is x. So the forward is that convolution's backward-data
// pass with dy = x; the backward is its forward pass for dx (= conv2d(dy_y, w)) and its weight-gradient
// pass with input dy_y and output gradient x for dw. The bias is a broadcast add.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p,
                        std::array<int, 2> output_padding) {
  if (is_bf16(x)) return conv_transpose2d(float32_of(x), weight, bias, p, output_padding);  // Note [bf16 activations]
  check_float(x, "conv_transpose2d", "x");
  check_float(weight, "conv_transpose2d", "weight");
  // No engine here reads NHWC for this op: a channels-last x runs in NCHW between two reorders.
  if (x.is_channels_last()) return channels_last(conv_transpose2d(contiguous(x), weight, bias, p, output_padding));
  check_same({{"x", &x}, {"weight", &weight}, {"bias", &bias}}, "conv_transpose2d");
  DL_CHECK(x.dim() == 4, "conv_transpose2d: expected input N x C_in x H x W, got ", x.shape().str());
  DL_CHECK(p.groups >= 1 && x.size(1) % p.groups == 0, "conv_transpose2d: groups ", p.groups,
           " must divide the input channels ", x.size(1));
  DL_CHECK(weight.dim() == 4 && weight.size(0) == x.size(1),
           "conv_transpose2d: expected weight C_in x C_out/groups x R x S with C_in = ", x.size(1), ", got ",
           weight.shape().str());
  int64_t out[2];
  for (int i = 0; i < 2; ++i) {
    // PyTorch also takes stride <= output_padding < dilation; the backward-data pass this op runs maps
    // such an output back to another input size, so it is refused here (Note [transposed convolution]).
    DL_CHECK(p.stride[i] >= 1 && p.dilation[i] >= 1 && p.padding[i] >= 0 && output_padding[i] >= 0 &&
                 output_padding[i] < p.stride[i],
             "conv_transpose2d: expected stride >= 1, dilation >= 1, padding >= 0 and 0 <= output_padding < "
             "stride, got stride ",
             p.stride[i], ", dilation ", p.dilation[i], ", padding ", p.padding[i], ", output_padding ",
             output_padding[i]);
    out[i] = (x.size(2 + i) - 1) * p.stride[i] - 2 * p.padding[i] + p.dilation[i] * (weight.size(2 + i) - 1) +
             output_padding[i] + 1;
  }
  DL_CHECK(out[0] >= 1 && out[1] >= 1, "conv_transpose2d: input ", x.shape().str(), " with weight ",
           weight.shape().str(), " and padding ", p.padding[0], "x", p.padding[1], " gives no output");
  const Shape y_shape{x.size(0), weight.size(1) * p.groups, out[0], out[1]};
  Conv2dGeometry g = conv2d_geometry(y_shape, weight.shape(), p);  // the convolution from y to x
  DL_CHECK(g.ho == x.size(2) && g.wo == x.size(3), "conv_transpose2d: internal geometry mismatch for input ",
           x.shape().str());
  g.math = math_precision(x, "conv_transpose2d");
  Tensor y = Tensor::empty(y_shape, x.dtype(), x.device());
  // The backward-data pass reads no convolution input: y (being written) stands in for it.
  dispatch(
      x, "conv_transpose2d",
      [&](auto t) {
        using T = decltype(t);
        cpu::conv2d_backward(g, y.data<T>(), weight.data<T>(), x.data<T>(), y.data<T>(), static_cast<T*>(nullptr),
                             static_cast<T*>(nullptr));
      },
      [&](int dev) {
        DL_CUDA_BODY(cuda::conv2d_backward(dev, g, f32(y), f32(weight), f32(x), f32(y), nullptr, nullptr));
      });
  if (auto* tr = active_tracer())
    tr->record({"conv_transpose2d", {x, weight}, y, TraceAttrs::of_conv(p, {output_padding[0], output_padding[1]})});
  if (autograd::needs_record({x, weight})) {
    const Tensor sx = x.detach(), sw = weight.detach();
    y = autograd::record(
        "conv_transpose2d", y, {x, weight}, [sx, sw, g](const Tensor& gy, const std::vector<bool>& needs) {
          Tensor gx = needs[0] ? Tensor::empty(sx.shape(), sx.dtype(), sx.device()) : Tensor();
          Tensor gw = needs[1] ? Tensor::empty(sw.shape(), sw.dtype(), sw.device()) : Tensor();
          dispatch(
              gy, "conv_transpose2d_backward",
              [&](auto t) {
                using T = decltype(t);
                if (gx.defined())
                  cpu::conv2d_forward(g, gy.data<T>(), sw.data<T>(), static_cast<const T*>(nullptr), gx.data<T>());
                if (gw.defined())
                  cpu::conv2d_backward(g, gy.data<T>(), sw.data<T>(), sx.data<T>(), static_cast<T*>(nullptr),
                                       gw.data<T>(), static_cast<T*>(nullptr));
              },
              [&](int dev) {
                if (gx.defined()) DL_CUDA_BODY(cuda::conv2d_forward(dev, g, f32(gy), f32(sw), nullptr, f32(gx)));
                if (gw.defined())
                  DL_CUDA_BODY(cuda::conv2d_backward(dev, g, f32(gy), f32(sw), f32(sx), nullptr, f32(gw), nullptr));
              });
          return std::vector<Tensor>{gx, gw};
        });
  }
  if (!bias.defined()) return y;
  check_shape(bias, {y_shape[1]}, "conv_transpose2d", "bias");
  return add(y, reshape(bias, {y_shape[1], 1, 1}));
}

}  // namespace dl::ops

namespace dl {
void set_cpu_conv_engine(CpuConvEngine e) { cpu::set_conv_engine(e); }
CpuConvEngine cpu_conv_engine() { return cpu::conv_engine(); }
bool cpu_onednn_available() { return cpu::onednn_available(); }
bool cpu_bf16_available() { return cpu::onednn_bf16_available(); }
}  // namespace dl
