// Reductions along a dimension that pick rather than sum (max, min, argmax, argmin), and the variance.
// float32 or float64 on the CPU, float32 on CUDA. keepdim keeps the reduced dimension as a size of 1.
#pragma once
#include <vector>

#include "dl/core/tensor.h"

namespace dl::ops {

// The index of the largest value along `dim` (the first one on ties; a NaN counts as the largest, as
// in PyTorch), as int32 on x's device: for N x C x H x W logits and dim 1, the predicted class per
// pixel. Not differentiable. (int32, not PyTorch's int64: convert with .to(DType::kInt64) if needed;
// gather and index_select take either.)
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
// The index of the smallest value along `dim`, likewise (first on ties, NaN counts as the smallest).
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);

// The largest (smallest) value along `dim`, NaN if any is. Gradient: dy to the element that argmax
// (argmin) picks, the first of ties, as PyTorch's max(dim) and min(dim).
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor min(const Tensor& x, int64_t dim, bool keepdim = false);

// The variance over `dims` (all when empty; negative counts from the end): the sum of squared
// deviations from the mean divided by (count - correction), correction 1 the unbiased estimate (as
// PyTorch's var), 0 the population one; count <= correction gives inf or NaN as PyTorch does.
// Differentiable. std is its square root.
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction = 1, bool keepdim = false);

// How many argmax predictions of logits N x C (x S) equal their label, N (x S) int32 (ignore_index,
// when >= 0, counts nowhere), as a float64 tensor {correct, counted} on the logits' device, exact below
// 2^53. On a device nothing waits: read it when the numbers are needed (metrics::count_correct reads at
// once; the Trainer reads a window of steps together). A label out of range counts as wrong.
Tensor correct_counts(const Tensor& logits, const Tensor& labels, int32_t ignore_index = -1);

}  // namespace dl::ops
