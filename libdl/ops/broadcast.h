// Front-end helpers of the broadcasting element-wise family: NumPy's broadcast of shapes and the strided
// indices (kernels/binary_ops.cuh) that both backends iterate, dimensions collapsed where the operands
// allow, so that same-shaped contiguous operands become one flat dimension.
#pragma once
#include <array>
#include <vector>

#include "binary_ops.cuh"
#include "dl/core/shape.h"

namespace dl::ops::detail {

// The shape both broadcast to (NumPy rules: aligned on the right, a size of 1 stretches); throws naming
// `op` and both shapes when they cannot.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Offsets of contiguous operands of shapes `ins` (each broadcastable to `out`) for every element of
// `out`, in row-major order of `out`.
template <int N>
kern::StridedIndex<N> broadcast_index(const Shape& out, const std::array<Shape, N>& ins);

// A sum of contiguous x over the dimensions marked in `reduce` (one flag per dimension of x): output o
// reads x at kept.offset(o) + reduced.offset(r) for r in [0, n_red).
struct ReduceIndex {
  kern::StridedIndex<1> kept, reduced;
  int64_t n_out = 1, n_red = 1;
};
ReduceIndex reduce_index(const Shape& x, const std::vector<bool>& reduce);

// Row-major strides of a contiguous tensor of shape s.
std::vector<int64_t> contiguous_strides(const Shape& s);

// The elements of a block of shape `part` inside a contiguous tensor of shape `whole`, its dimension
// `dim` walked with `step` (offsets from the block's first element): the view behind slicing and the
// parts of a concatenation.
kern::StridedIndex<1> part_index(const Shape& part, const Shape& whole, int dim, int64_t step);

// The copy of contiguous x into the order `perm` (output dimension i is x's dimension perm[i]).
kern::StridedIndex<1> permute_index(const Shape& x, const std::vector<int>& perm);

}  // namespace dl::ops::detail
