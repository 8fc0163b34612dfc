// Indexing along one dimension with gradients: gather, its adjoint scatter_add, and index_select.
// Values float32 or float64 (float32 on CUDA); indices int32 or int64, every one checked against the size
// it indexes (on CUDA the index is read back to the host for the check: one wait). Outputs are new
// contiguous tensors. The backward of a gather is a scatter-add that gives each line of x to one thread
// (kernels/gather_index.cuh): deterministic, repeated indices included.
#pragma once
#include "dl/core/tensor.h"

namespace dl::ops {

// y[i_0, ..., i_dim, ...] = x[i_0, ..., index[i_0, ..., i_dim, ...], ...]: index has x's number of
// dimensions and index.size(d) <= x.size(d) for d != dim; y has index's shape (PyTorch's gather).
// Gradient: dx = scatter_add(zeros like x, dim, index, dy).
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);

// x with src added where index points along dim: out = x, then out[..., index[j], ...] += src[j] for
// every element j of src (index of src's shape, index.size(d) <= x.size(d) for d != dim; repeated
// indices add up). Gradients: dx = dy, dsrc = gather(dy, dim, index).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);

// The slices of x along dim that a one-dimensional index names, in its order (repeats allowed): the
// size along dim becomes index.numel(). Gradient: the slices of dy added back where they came from.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);

}  // namespace dl::ops
