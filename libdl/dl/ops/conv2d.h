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

Conv2dGeometry conv2d_geometry(const Shape& x, const Shape& weight, const Conv2dParams& p);

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
