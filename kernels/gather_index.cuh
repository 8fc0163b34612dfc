// The index vocabulary of gathers along one dimension (gather, and index_select: a gather whose index
// broadcasts) and of their adjoint, the scatter-add: host/device code only, no CUDA vocabulary, so that
// the CPU backend (backend/cpu/index.cpp) runs the same code as the kernels of index.cuh.
//
// Note [scatter by lines]: a gather along `dim` reads, for each output element, x at the element's own
// coordinates with the one along `dim` replaced by the index. Output elements that differ in a coordinate
// other than `dim` therefore read different lines of x (a line: every element of x that shares all
// coordinates but the one along `dim`). The scatter-add (the gather's backward) gives each line to one
// thread, which adds that line's elements in order: no two threads write the same element, no atomics,
// and the sum is the same on every run and every launch shape, repeated indices included.
#pragma once
#include <cstdint>

#include "binary_ops.cuh"

namespace dl::kern {

// The geometry of a gather along `dim`: the output's sizes (the index's), the output's contiguous
// strides, and the strides of x and of the index (0 where the index broadcasts, as index_select's
// one-dimensional index does along every other dimension).
struct GatherIndex {
  int ndim = 0, dim = 0;
  int64_t size[kMaxIndexDims] = {};
  int64_t out_stride[kMaxIndexDims] = {};
  int64_t x_stride[kMaxIndexDims] = {};
  int64_t i_stride[kMaxIndexDims] = {};

  // Offsets in x (without the coordinate along dim) and in the index of output element i.
  DL_HD void offsets(int64_t i, int64_t& xo, int64_t& io) const {
    xo = 0;
    io = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t q = i / size[d];
      const int64_t r = i - q * size[d];
      if (d != dim) xo += r * x_stride[d];
      io += r * i_stride[d];
      i = q;
    }
  }
  // The number of lines (output elements with the coordinate along dim at 0).
  DL_HD int64_t lines() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d)
      if (d != dim) n *= size[d];
    return n;
  }
  // Offsets in x, the index and the output of the first element of line l.
  DL_HD void line_offsets(int64_t l, int64_t& xo, int64_t& io, int64_t& yo) const {
    xo = 0;
    io = 0;
    yo = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      if (d == dim) continue;
      const int64_t q = l / size[d];
      const int64_t r = l - q * size[d];
      xo += r * x_stride[d];
      io += r * i_stride[d];
      yo += r * out_stride[d];
      l = q;
    }
  }
};

// x[line's element index[j] along dim] += src[j-th element of the line], one thread per line
// (Note [scatter by lines]); src is output-shaped (contiguous), x is accumulated into.
template <typename T, typename I>
DL_HD void scatter_add_line(const T* src, const I* index, T* x, int64_t l, const GatherIndex& g) {
  int64_t xo = 0, io = 0, yo = 0;
  g.line_offsets(l, xo, io, yo);
  const int64_t len = g.size[g.dim], xs = g.x_stride[g.dim], is = g.i_stride[g.dim], ys = g.out_stride[g.dim];
  for (int64_t j = 0; j < len; ++j) x[xo + static_cast<int64_t>(index[io + j * is]) * xs] += src[yo + j * ys];
}

}  // namespace dl::kern
