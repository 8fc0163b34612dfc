// Reductions that pick rather than sum.
#pragma once
#include "dl/core/tensor.h"

namespace dl::ops {

// The index of the largest value along `dim` (the first one on ties), as int32 on x's device, with
// `dim` removed from the shape: for N x C x H x W logits and dim 1, the predicted class per pixel.
// float32 or float64 on the CPU, float32 on CUDA; not differentiable.
Tensor argmax(const Tensor& x, int64_t dim);

// How many argmax predictions of logits N x C (x S) equal their label, N (x S) int32 (ignore_index,
// when >= 0, counts nowhere), as a float64 tensor {correct, counted} on the logits' device, exact below
// 2^53. On a device nothing waits: read it when the numbers are needed (metrics::count_correct reads at
// once; the Trainer reads a window of steps together). A label out of range counts as wrong.
Tensor correct_counts(const Tensor& logits, const Tensor& labels, int32_t ignore_index = -1);

}  // namespace dl::ops
