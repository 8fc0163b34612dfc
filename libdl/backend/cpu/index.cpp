// CPU bodies of indexing along one dimension: the per-element code of kernels/gather_index.cuh, the
// gather over output elements and the scatter-add over lines of x (Note [scatter by lines]) in parallel.
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/parallel.h"

namespace dl::cpu {

template <typename T, typename I>
void gather(const T* x, const I* index, T* y, int64_t n, const kern::GatherIndex& g) {
  const int64_t xs = g.x_stride[g.dim];
  parallel_for(n, 4, [&](int64_t i) {
    int64_t xo = 0, io = 0;
    g.offsets(i, xo, io);
    y[i] = x[xo + static_cast<int64_t>(index[io]) * xs];
  });
}

template <typename T, typename I>
void scatter_add_acc(const T* src, const I* index, T* x, const kern::GatherIndex& g) {
  if (g.size[g.dim] <= 0) return;
  parallel_for(g.lines(), g.size[g.dim], [&](int64_t l) { kern::scatter_add_line(src, index, x, l, g); });
}

#define DL_INSTANTIATE(T, I)                                                             \
  template void gather<T, I>(const T*, const I*, T*, int64_t, const kern::GatherIndex&); \
  template void scatter_add_acc<T, I>(const T*, const I*, T*, const kern::GatherIndex&);
DL_INSTANTIATE(float, int32_t)
DL_INSTANTIATE(float, int64_t)
DL_INSTANTIATE(double, int32_t)
DL_INSTANTIATE(double, int64_t)
#undef DL_INSTANTIATE

}  // namespace dl::cpu
