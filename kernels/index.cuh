// The CUDA kernels of indexing along one dimension: gather (and index_select, a gather whose index
// broadcasts), its adjoint scatter-add, and the strided scatter behind slicing's backward and
// concatenation along any dimension; run by the CUDA backend and by the emulation. The CPU backend
// (backend/cpu/index.cpp) runs the same per-element code from gather_index.cuh.
// The scatter-add gives each line of x to one thread: Note [scatter by lines] in gather_index.cuh.
#pragma once
#include "compat.cuh"
#include "elementwise.cuh"
#include "gather_index.cuh"

namespace dl::kern::inline DL_KERN_ABI {

// y[i] = x[the element of x at i's coordinates, index[i] along dim]. The front end has checked the
// index against x's size along dim.
template <typename T, typename I>
DL_GLOBAL void gather_kernel(const T* x, const I* index, T* y, int64_t n, GatherIndex g) {
  DL_GRID_STRIDE_LOOP(i, n) {
    int64_t xo = 0, io = 0;
    g.offsets(i, xo, io);
    y[i] = x[xo + static_cast<int64_t>(index[io]) * g.x_stride[g.dim]];
  }
}

template <typename T, typename I>
DL_GLOBAL void scatter_add_kernel(const T* src, const I* index, T* x, int64_t lines, GatherIndex g) {
  DL_GRID_STRIDE_LOOP(l, lines) scatter_add_line(src, index, x, l, g);
}

// x[ix.offset(i)] = y[i]: the adjoint of strided_copy_kernel for an index whose offsets are distinct
// (slicing with a positive step, a part of a concatenation).
template <typename T>
DL_GLOBAL void strided_scatter_kernel(const T* y, T* x, int64_t n, StridedIndex<1> ix) {
  DL_GRID_STRIDE_LOOP(i, n) x[ix.offset(i)] = y[i];
}

// ---- launch sequences (Note [launchers]) ----

template <typename L, typename T, typename I>
void run_gather(L& l, const T* x, const I* index, T* y, int64_t n, const GatherIndex& g) {
  launch_1d(l, gather_kernel<T, I>, n, x, index, y, n, g);
}

template <typename L, typename T, typename I>
void run_scatter_add(L& l, const T* src, const I* index, T* x, const GatherIndex& g) {
  if (g.size[g.dim] <= 0) return;
  const int64_t lines = g.lines();
  launch_1d(l, scatter_add_kernel<T, I>, lines, src, index, x, lines, g);
}

template <typename L, typename T>
void run_strided_scatter(L& l, const T* y, T* x, int64_t n, const StridedIndex<1>& ix) {
  launch_1d(l, strided_scatter_kernel<T>, n, y, x, n, ix);
}

}  // namespace dl::kern::inline DL_KERN_ABI
