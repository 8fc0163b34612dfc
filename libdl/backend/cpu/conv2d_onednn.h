// The optional oneDNN engine of CPU convolution (float32 tensors, float32 or bf16 math): the same computation as
// conv2d.cpp's im2col + GEMM path through oneDNN's direct convolution kernels (the ones PyTorch uses on the CPU), for
// large feature maps where a GEMM over an unfolded image cannot keep up. Built when oneDNN is found (DL_ONEDNN); chosen
// per call by conv2d_engine_for() in conv2d.cpp.
#pragma once
#include "dl/core/params.h"

namespace dl::cpu {

bool onednn_available();
// Whether oneDNN runs bf16 convolution natively here (AVX-512 BF16 or AMX; Note [bf16 convolution]).
bool onednn_bf16_available();
// Each returns false (doing nothing) when oneDNN is not built in.
bool onednn_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y);
// dx, dw, db may each be null (not wanted).
bool onednn_conv2d_backward(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx,
                            float* dw, float* db);

}  // namespace dl::cpu
