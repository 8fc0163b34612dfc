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

namespace dl {

// How float32 convolutions run on the CPU: kAuto (oneDNN's direct kernels when libdl was built
// with oneDNN and a group has at least 8 input channels, im2col + GEMM otherwise: Note [conv
// engines] in backend/cpu/conv2d.cpp), or one engine always. The environment variable DL_CPU_CONV=auto|im2col|onednn sets the initial choice.
enum class CpuConvEngine { kAuto, kIm2col, kOneDnn };
void set_cpu_conv_engine(CpuConvEngine e);
CpuConvEngine cpu_conv_engine();
bool cpu_onednn_available();  // whether this build has the oneDNN engine

}  // namespace dl
