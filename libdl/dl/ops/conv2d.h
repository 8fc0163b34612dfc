// 2-D convolution (cross-correlation, as in PyTorch and cuDNN).
#pragma once
#include "dl/core/tensor.h"
#include "dl/ops/params.h"

namespace dl::ops {

// x: N x C x H x W, weight: K x C/groups x R x S, bias: K or undefined; returns N x K x Ho x Wo
// with Ho = window_output_size(H, R, stride, padding, dilation) (and the same for W).
// float32 or float64, all on one device.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p = {});

Conv2dGeometry conv2d_geometry(const Shape& x, const Shape& weight, const Conv2dParams& p);

}  // namespace dl::ops
