// 2-D convolution (cross-correlation, as in PyTorch and cuDNN).
#pragma once
#include "dl/core/params.h"
#include "dl/core/tensor.h"

namespace dl::ops {

// x: N x C x H x W, weight: K x C/groups x R x S, bias: K or undefined; returns N x K x Ho x Wo
// with Ho = window_output_size(H, R, stride, padding, dilation) (and the same for W).
// float32 or float64, all on one device. float32 computes in the thread's autocast precision
// (dl/core/precision.h: bf16 operands, float32 accumulation and output), and so does its backward.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p = {});
// max(0, conv2d(x, weight, bias, p)) as one op: the ReLU is applied in the convolution's output pass
// (Note [fused conv relu] in ops/conv2d.cpp), and the graph holds one node.
Tensor conv2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p = {});

Conv2dGeometry conv2d_geometry(const Shape& x, const Shape& weight, const Conv2dParams& p);

// The transposed convolution (PyTorch's conv_transpose2d: the gradient of conv2d with respect to its
// input). x: N x C_in x H x W, weight: C_in x C_out/groups x R x S (PyTorch's layout), bias: C_out or
// undefined; returns N x C_out x Ho x Wo with Ho = (H - 1) stride - 2 padding + dilation (R - 1) +
// output_padding + 1 (and the same for W); output_padding < stride picks among the sizes that a strided
// convolution maps to the same H (PyTorch also allows stride <= output_padding < dilation; libdl refuses it). Runs on
// the convolution engines of both backends (their backward-data pass forward, their forward and weight-gradient passes
// backward).
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p = {},
                        std::array<int, 2> output_padding = {0, 0});

}  // namespace dl::ops

namespace dl {

// The engine of float32 convolutions on the CPU (CpuConvEngine, dl/core/params.h).
void set_cpu_conv_engine(CpuConvEngine e);
CpuConvEngine cpu_conv_engine();
bool cpu_onednn_available();  // whether this build has the oneDNN engine
// Whether this build and CPU compute bf16 convolution (Precision::kBf16) natively: oneDNN with AVX-512 BF16.
bool cpu_bf16_available();
// Throws dl::Error, naming `who`, when `device` cannot compute in `p` (dl/core/precision.h): fp16 on the
// CPU, bf16 on a CPU or build without native bf16.
void check_precision_usable(Precision p, Device device, const char* who);

}  // namespace dl
