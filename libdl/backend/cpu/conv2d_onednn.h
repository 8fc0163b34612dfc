// The optional oneDNN engine of CPU convolution (float32 or bfloat16 activations, float32 or bf16 math): the same
// computation as conv2d.cpp's im2col + GEMM path through oneDNN's direct convolution kernels (the ones PyTorch uses on
// the CPU), for large feature maps where a GEMM over an unfolded image cannot keep up. Built when oneDNN is found
// (DL_ONEDNN); chosen per call by conv2d_engine_for() in conv2d.cpp.
#pragma once
#include "dl/core/params.h"

namespace dl::cpu {

bool onednn_available();
// Whether oneDNN runs bf16 convolution natively here (AVX-512 BF16 or AMX; Note [bf16 convolution]).
bool onednn_bf16_available();
// Each returns false (doing nothing) when oneDNN is not built in. x and dx are float32, or bfloat16 with
// g.x_bf16; y and dy float32, or bfloat16 with g.y_bf16; the weight, its gradient and the bias float32.
bool onednn_conv2d_forward(const Conv2dGeometry& g, const void* x, const float* w, const float* b, void* y);
// dx, dw, db may each be null (not wanted).
bool onednn_conv2d_backward(const Conv2dGeometry& g, const void* x, const float* w, const void* dy, void* dx, float* dw,
                            float* db);

}  // namespace dl::cpu
