// Reductions that pick rather than sum.
#pragma once
#include "dl/core/tensor.h"

namespace dl::ops {

// The index of the largest value along `dim` (the first one on ties), as int32 on x's device, with
// `dim` removed from the shape: for N x C x H x W logits and dim 1, the predicted class per pixel.
// float32 or float64 on the CPU, float32 on CUDA; not differentiable.
Tensor argmax(const Tensor& x, int64_t dim);

}  // namespace dl::ops
