// Shape manipulation with autograd: reshape/flatten/squeeze/unsqueeze (views of the same storage);
// expand, permute, transpose, slice and select (contiguous copies: every op of libdl returns a
// contiguous tensor, so these copy, once, where PyTorch would return a strided view); concatenation and
// stacking. Any dtype; gradients for float32/float64.
#pragma once
#include <vector>

#include "dl/core/tensor.h"

namespace dl::ops {

// The same tensor in memory format `format` (Note [memory format] in dl/core/tensor.h): x itself when it
// is already, else a reordered copy; the gradient comes back in x's format. Any dtype, both devices.
Tensor to_memory_format(const Tensor& x, MemoryFormat format);
// x converted to `dtype` (x itself when it is already), in x's memory format; the gradient comes back in x's
// dtype. The casts of bf16 activations (Note [bf16 activations] in ops/precision.cpp): float32 <-> bfloat16.
Tensor to_dtype(const Tensor& x, DType dtype);
inline Tensor contiguous(const Tensor& x) { return to_memory_format(x, MemoryFormat::kContiguous); }
inline Tensor channels_last(const Tensor& x) { return to_memory_format(x, MemoryFormat::kChannelsLast); }

Tensor reshape(const Tensor& x, const Shape& shape);  // shares storage with x (a channels-last x: a copy)
Tensor flatten(const Tensor& x);                      // N x ... -> N x (product of the rest)
// x broadcast to `shape` (NumPy rules: x's sizes of 1 and missing leading dimensions stretch), copied;
// the backward sums back to x's shape. Any dtype; gradients for float32/float64.
Tensor expand(const Tensor& x, const Shape& shape);
// Output dimension i is x's dimension perm[i] (a permutation of 0..ndim-1; negative counts from the
// end), copied. Any dtype. permute(x, {0, 2, 3, 1}) turns N x C x H x W into N x H x W x C.
Tensor permute(const Tensor& x, const std::vector<int64_t>& perm);
// x with dimensions d0 and d1 swapped, copied.
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
// Dimension `dim` removed if its size is 1 (else x as it is); every dimension of size 1 removed.
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor squeeze(const Tensor& x);
// A dimension of size 1 inserted before dimension `dim` (in [-ndim - 1, ndim]; -1 appends).
Tensor unsqueeze(const Tensor& x, int64_t dim);
// x[start:end:step] along `dim`, with Python's rules: a negative start or end counts from the end, both
// are clamped to [0, size], an empty range gives size 0; step >= 1. The backward scatters dy back into
// zeros. slice(x, 1, 0, 3) is x[:, 0:3].
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
// x[..., index, ...] along `dim` (negative counts from the end), the dimension removed.
Tensor select(const Tensor& x, int64_t dim, int64_t index);
// Concatenates along dimension 1; every other dimension must agree (float32/float64; the kernel of the
// DeepLab decoder).
Tensor concat(const std::vector<Tensor>& xs);
// Concatenates along `dim`; every other dimension must agree; one dtype and device.
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
// The tensors, all of one shape, joined along a new dimension `dim` (in [-ndim - 1, ndim]).
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);

}  // namespace dl::ops
