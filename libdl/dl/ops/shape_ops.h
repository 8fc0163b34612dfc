// Shape manipulation with autograd: reshape/flatten (views of the same storage), expand, permute and
// transpose (contiguous copies: every op of libdl returns a contiguous tensor, so these copy, once,
// where PyTorch would return a strided view), and concatenation along channels.
#pragma once
#include <vector>

#include "dl/core/tensor.h"

namespace dl::ops {

Tensor reshape(const Tensor& x, const Shape& shape);  // shares storage with x
Tensor flatten(const Tensor& x);                      // N x ... -> N x (product of the rest)
// x broadcast to `shape` (NumPy rules: x's sizes of 1 and missing leading dimensions stretch), copied;
// the backward sums back to x's shape. Any dtype; gradients for float32/float64.
Tensor expand(const Tensor& x, const Shape& shape);
// Output dimension i is x's dimension perm[i] (a permutation of 0..ndim-1; negative counts from the
// end), copied. Any dtype. permute(x, {0, 2, 3, 1}) turns N x C x H x W into N x H x W x C.
Tensor permute(const Tensor& x, const std::vector<int64_t>& perm);
// x with dimensions d0 and d1 swapped, copied.
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
// Concatenates along dimension 1; every other dimension must agree.
Tensor concat(const std::vector<Tensor>& xs);

}  // namespace dl::ops
