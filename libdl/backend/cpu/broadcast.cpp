// CPU bodies of the broadcasting element-wise family: the functors of kernels/binary_ops.cuh over the
// strided indices of ops/broadcast.h. The innermost dimension runs as a plain loop over pointers with
// unit or zero steps (the compiler vectorises the same-shaped and scalar cases), the rows and chunks of
// it in parallel.
#include <Eigen/Core>
#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/parallel.h"
#include "dl/core/error.h"

namespace dl::cpu {

namespace {

constexpr int64_t kRunChunk = 1 << 14;

// Calls f(first, base, step, len) for runs of the innermost dimension of `ix` (n elements in all):
// output elements [first, first + len), operand k at base[k] + j * step[k] for j < len. Runs go in
// parallel; each output element is in exactly one run.
template <int N, typename F>
void for_each_run(const kern::StridedIndex<N>& ix, int64_t n, F&& f) {
  if (n <= 0) return;
  if (ix.ndim == 0) {
    const std::array<int64_t, N> zero{};
    f(int64_t{0}, zero, zero, int64_t{1});
    return;
  }
  const int last = ix.ndim - 1;
  const int64_t inner = ix.size[last];
  kern::StridedIndex<N> outer = ix;
  outer.ndim = last;
  std::array<int64_t, N> step{};
  for (int k = 0; k < N; ++k) step[k] = ix.stride[k][last];
  const int64_t per_row = (inner + kRunChunk - 1) / kRunChunk;
  const int64_t rows = n / inner;
  parallel_for(rows * per_row, std::min(inner, kRunChunk), [&](int64_t item) {
    const int64_t row = item / per_row, j0 = (item % per_row) * kRunChunk;
    int64_t o[N];
    outer.offsets(row, o);
    std::array<int64_t, N> base{};
    for (int k = 0; k < N; ++k) base[k] = o[k] + j0 * step[k];
    f(row * inner + j0, base, step, std::min(kRunChunk, inner - j0));
  });
}

}  // namespace

template <typename Op, typename T>
void broadcast_binary(const Op& op, const T* a, const T* b, T bs, T* y, int64_t n, const kern::StridedIndex<2>& ix) {
  for_each_run(ix, n,
               [&](int64_t first, const std::array<int64_t, 2>& base, const std::array<int64_t, 2>& step, int64_t len) {
                 const T* pa = a + base[0];
                 const T* pb = b ? b + base[1] : nullptr;
                 T* py = y + first;
                 const int64_t sa = step[0], sb = pb ? step[1] : 0;
                 if (sa == 1 && pb && sb == 1) {
                   for (int64_t j = 0; j < len; ++j) py[j] = op(pa[j], pb[j]);
                 } else if (sa == 1 && sb == 0) {
                   const T vb = pb ? *pb : bs;
                   for (int64_t j = 0; j < len; ++j) py[j] = op(pa[j], vb);
                 } else if (sa == 0 && pb && sb == 1) {
                   const T va = *pa;
                   for (int64_t j = 0; j < len; ++j) py[j] = op(va, pb[j]);
                 } else {
                   for (int64_t j = 0; j < len; ++j) py[j] = op(pa[j * sa], pb ? pb[j * sb] : bs);
                 }
               });
}

template <typename Op, typename T>
void broadcast_binary_backward(const Op& op, const T* a, const T* b, T bs, const T* y, const T* dy, T* ga, T* gb,
                               int64_t n, const kern::StridedIndex<2>& ix) {
  for_each_run(ix, n,
               [&](int64_t first, const std::array<int64_t, 2>& base, const std::array<int64_t, 2>& step, int64_t len) {
                 const T* pa = a ? a + base[0] : nullptr;
                 const T* pb = b ? b + base[1] : nullptr;
                 const int64_t sa = step[0], sb = pb ? step[1] : 0;
                 for (int64_t j = 0; j < len; ++j) {
                   const int64_t i = first + j;
                   const T va = pa ? pa[j * sa] : T(0), vb = pb ? pb[j * sb] : bs, vy = y ? y[i] : T(0);
                   if (ga) ga[i] = op.grad_a(va, vb, vy, dy[i]);
                   if (gb) gb[i] = op.grad_b(va, vb, vy, dy[i]);
                 }
               });
}

template <typename Op, typename T>
void compare(const Op& op, const T* a, const T* b, T bs, uint8_t* y, int64_t n, const kern::StridedIndex<2>& ix) {
  for_each_run(ix, n,
               [&](int64_t first, const std::array<int64_t, 2>& base, const std::array<int64_t, 2>& step, int64_t len) {
                 const T* pa = a + base[0];
                 const T* pb = b ? b + base[1] : nullptr;
                 const int64_t sa = step[0], sb = pb ? step[1] : 0;
                 for (int64_t j = 0; j < len; ++j) y[first + j] = op(pa[j * sa], pb ? pb[j * sb] : bs) ? 1 : 0;
               });
}

template <typename T>
void where(const uint8_t* cond, const T* a, const T* b, T* y, int64_t n, const kern::StridedIndex<3>& ix) {
  for_each_run(ix, n,
               [&](int64_t first, const std::array<int64_t, 3>& base, const std::array<int64_t, 3>& step, int64_t len) {
                 const uint8_t* pc = cond + base[0];
                 const T* pa = a ? a + base[1] : nullptr;
                 const T* pb = b ? b + base[2] : nullptr;
                 for (int64_t j = 0; j < len; ++j)
                   y[first + j] = pc[j * step[0]] ? (pa ? pa[j * step[1]] : T(0)) : (pb ? pb[j * step[2]] : T(0));
               });
}

template <typename T>
void strided_copy(const T* x, T* y, int64_t n, const kern::StridedIndex<1>& ix) {
  for_each_run(ix, n,
               [&](int64_t first, const std::array<int64_t, 1>& base, const std::array<int64_t, 1>& step, int64_t len) {
                 const T* px = x + base[0];
                 const int64_t s = step[0];
                 if (s == 1) {
                   std::copy(px, px + len, y + first);
                 } else {
                   for (int64_t j = 0; j < len; ++j) y[first + j] = px[j * s];
                 }
               });
}

namespace {
template <typename T>
void strided_scatter_as(const void* y, void* x, int64_t n, const kern::StridedIndex<1>& ix) {
  const T* py = static_cast<const T*>(y);
  T* px = static_cast<T*>(x);
  for_each_run(ix, n,
               [&](int64_t first, const std::array<int64_t, 1>& base, const std::array<int64_t, 1>& step, int64_t len) {
                 T* dst = px + base[0];
                 const int64_t s = step[0];
                 if (s == 1) {
                   std::copy(py + first, py + first + len, dst);
                 } else {
                   for (int64_t j = 0; j < len; ++j) dst[j * s] = py[first + j];
                 }
               });
}
}  // namespace

void strided_scatter(const void* y, void* x, size_t elem_size, int64_t n, const kern::StridedIndex<1>& ix) {
  switch (elem_size) {  // a copy moves bytes: one body per element size
    case 1:
      return strided_scatter_as<uint8_t>(y, x, n, ix);
    case 2:
      return strided_scatter_as<uint16_t>(y, x, n, ix);
    case 4:
      return strided_scatter_as<uint32_t>(y, x, n, ix);
    case 8:
      return strided_scatter_as<uint64_t>(y, x, n, ix);
    default:
      DL_THROW("strided_scatter: elements of 1, 2, 4 or 8 bytes, got ", elem_size);
  }
}

// Two orders (x is contiguous, so its innermost dimension is either kept or reduced): with the
// innermost reduced, each output sums contiguous runs (vectorised, in double); with it kept,
// each group of neighbouring outputs adds whole rows into double accumulators. Either way the order
// of the additions depends only on the shapes, never on the thread count.
template <typename T>
void reduce_sum(const T* x, T* y, int64_t n_out, const kern::StridedIndex<1>& kept,
                const kern::StridedIndex<1>& reduced, int64_t n_red, double scale) {
  if (n_out <= 0) return;
  if (n_red == 0) {  // a sum of nothing
    std::fill(y, y + n_out, T(0));
    return;
  }
  const bool inner_reduced = reduced.ndim > 0 && reduced.stride[0][reduced.ndim - 1] == 1;
  if (inner_reduced) {
    const int64_t inner = reduced.size[reduced.ndim - 1];
    kern::StridedIndex<1> outer = reduced;
    outer.ndim -= 1;
    const int64_t rows = n_red / inner;
    parallel_for(n_out, n_red, [&](int64_t o) {
      const int64_t base = kept.offset(o);
      double acc = 0;
      for (int64_t r = 0; r < rows; ++r)
        acc += Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(x + base + outer.offset(r), inner)
                   .template cast<double>()
                   .sum();
      y[o] = static_cast<T>(scale * acc);
    });
    return;
  }
  // The innermost dimension is kept (or x has none): groups of `run` neighbouring outputs, contiguous in x.
  const int64_t run = kept.ndim > 0 && kept.stride[0][kept.ndim - 1] == 1 ? kept.size[kept.ndim - 1] : 1;
  kern::StridedIndex<1> groups = kept;
  if (run > 1) groups.ndim -= 1;
  // Each group's run in column chunks, so that one long run (a bias gradient: [N, F] summed over N) still
  // splits over the threads; a column's additions stay in one order.
  constexpr int64_t kColumns = 2048;
  const int64_t chunks = (run + kColumns - 1) / kColumns;
  parallel_for(n_out / run * chunks, n_red * std::min(run, kColumns), [&](int64_t item) {
    const int64_t g = item / chunks, j0 = (item % chunks) * kColumns, len = std::min(kColumns, run - j0);
    double acc[kColumns] = {};
    const int64_t base = groups.offset(g) + j0;
    for (int64_t r = 0; r < n_red; ++r) {
      const T* px = x + base + reduced.offset(r);
      for (int64_t j = 0; j < len; ++j) acc[j] += static_cast<double>(px[j]);
    }
    for (int64_t j = 0; j < len; ++j) y[g * run + j0 + j] = static_cast<T>(scale * acc[j]);
  });
}

#define DL_INSTANTIATE_BINARY(Op)                                                                                      \
  template void broadcast_binary<kern::Op, float>(const kern::Op&, const float*, const float*, float, float*, int64_t, \
                                                  const kern::StridedIndex<2>&);                                       \
  template void broadcast_binary<kern::Op, double>(const kern::Op&, const double*, const double*, double, double*,     \
                                                   int64_t, const kern::StridedIndex<2>&);                             \
  template void broadcast_binary_backward<kern::Op, float>(const kern::Op&, const float*, const float*, float,         \
                                                           const float*, const float*, float*, float*, int64_t,        \
                                                           const kern::StridedIndex<2>&);                              \
  template void broadcast_binary_backward<kern::Op, double>(const kern::Op&, const double*, const double*, double,     \
                                                            const double*, const double*, double*, double*, int64_t,   \
                                                            const kern::StridedIndex<2>&);
DL_BINARY_OPS(DL_INSTANTIATE_BINARY)
#undef DL_INSTANTIATE_BINARY
#define DL_INSTANTIATE_COMPARE_T(Op, T)                                                         \
  template void compare<kern::Op, T>(const kern::Op&, const T*, const T*, T, uint8_t*, int64_t, \
                                     const kern::StridedIndex<2>&);
#define DL_INSTANTIATE_COMPARE(Op)    \
  DL_INSTANTIATE_COMPARE_T(Op, float) \
  DL_INSTANTIATE_COMPARE_T(Op, double) DL_INSTANTIATE_COMPARE_T(Op, int32_t) DL_INSTANTIATE_COMPARE_T(Op, int64_t)
DL_COMPARE_OPS(DL_INSTANTIATE_COMPARE)
#undef DL_INSTANTIATE_COMPARE
#undef DL_INSTANTIATE_COMPARE_T
#define DL_INSTANTIATE(T)                                                                                        \
  template void where<T>(const uint8_t*, const T*, const T*, T*, int64_t, const kern::StridedIndex<3>&);         \
  template void reduce_sum<T>(const T*, T*, int64_t, const kern::StridedIndex<1>&, const kern::StridedIndex<1>&, \
                              int64_t, double);
DL_INSTANTIATE(float)
DL_INSTANTIATE(double)
#undef DL_INSTANTIATE
template void strided_copy<float>(const float*, float*, int64_t, const kern::StridedIndex<1>&);
template void strided_copy<double>(const double*, double*, int64_t, const kern::StridedIndex<1>&);
template void strided_copy<int32_t>(const int32_t*, int32_t*, int64_t, const kern::StridedIndex<1>&);
template void strided_copy<uint8_t>(const uint8_t*, uint8_t*, int64_t, const kern::StridedIndex<1>&);
template void strided_copy<uint16_t>(const uint16_t*, uint16_t*, int64_t, const kern::StridedIndex<1>&);
template void strided_copy<int64_t>(const int64_t*, int64_t*, int64_t, const kern::StridedIndex<1>&);

}  // namespace dl::cpu
