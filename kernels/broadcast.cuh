// The broadcasting element-wise kernel family of the CUDA backend: binary ops, comparisons and where
// over operands addressed by strides (a stride of 0 broadcasts), the strided copy behind expand and
// permute, and the sum over dimensions behind reductions and the backward of broadcasting. One kernel
// per family, a functor (binary_ops.cuh) per op. The front end collapses dimensions first
// (ops/broadcast.cpp), so that same-shaped operands arrive as one contiguous dimension: those take
// the packed kernel, four elements per load (Note [packed loads]).
#pragma once
#include "binary_ops.cuh"
#include "compat.cuh"

namespace dl::kern::inline DL_KERN_ABI {

// Note [packed loads]: contiguous operands are read and written four elements at a time through an
// aligned struct, which nvcc turns into one 128-bit access (float) per thread: the kernel is then
// bound by memory bandwidth, not by instructions. The launcher takes this path only when every
// pointer is aligned to the pack; the last n % 4 elements go through the scalar loop.
template <typename T>
struct alignas(4 * sizeof(T)) Pack4 {
  T v[4];
};

template <typename T>
DL_HD bool pack_aligned(const T* p) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % sizeof(Pack4<T>) == 0;
}

// y = op(a, b) over the first 4 packs elements of contiguous a, b (b null: the scalar bs), four at a time.
template <typename Op, typename T>
DL_GLOBAL void packed_binary_kernel(const T* a, const T* b, T bs, T* y, int64_t packs, Op op) {
  const Pack4<T>* pa = reinterpret_cast<const Pack4<T>*>(a);
  const Pack4<T>* pb = reinterpret_cast<const Pack4<T>*>(b);
  Pack4<T>* py = reinterpret_cast<Pack4<T>*>(y);
  DL_GRID_STRIDE_LOOP(i, packs) {
    const Pack4<T> va = pa[i];
    Pack4<T> vb;
    if (pb) {
      vb = pb[i];
    } else {
      for (int k = 0; k < 4; ++k) vb.v[k] = bs;
    }
    Pack4<T> out;
    for (int k = 0; k < 4; ++k) out.v[k] = op(va.v[k], vb.v[k]);
    py[i] = out;
  }
}

// y[i] = op(a[.], b[.]) with the operands' offsets from the index (b null: the scalar bs), i in [first, n).
template <typename Op, typename T>
DL_GLOBAL void broadcast_binary_kernel(const T* a, const T* b, T bs, T* y, int64_t first, int64_t n, StridedIndex<2> ix,
                                       Op op) {
  DL_GRID_STRIDE_LOOP(j, n - first) {
    const int64_t i = first + j;
    int64_t o[2];
    ix.offsets(i, o);
    y[i] = op(a[o[0]], b ? b[o[1]] : bs);
  }
}

// The partial derivatives at every output element: ga[i] = op.grad_a(a, b, y[i], dy[i]) (and gb), each
// written only where its pointer is set; ga and gb are output-sized (the front end sums them down to
// their operand's shape). a and y may be null where the wanted partials do not read them (kGradA/B).
template <typename Op, typename T>
DL_GLOBAL void broadcast_binary_backward_kernel(const T* a, const T* b, T bs, const T* y, const T* dy, T* ga, T* gb,
                                                int64_t n, StridedIndex<2> ix, Op op) {
  DL_GRID_STRIDE_LOOP(i, n) {
    int64_t o[2];
    ix.offsets(i, o);
    const T va = a ? a[o[0]] : T(0), vb = b ? b[o[1]] : bs, vy = y ? y[i] : T(0);
    if (ga) ga[i] = op.grad_a(va, vb, vy, dy[i]);
    if (gb) gb[i] = op.grad_b(va, vb, vy, dy[i]);
  }
}

// y[i] = op(a[.], b[.]) ? 1 : 0.
template <typename Op, typename T>
DL_GLOBAL void compare_kernel(const T* a, const T* b, T bs, uint8_t* y, int64_t n, StridedIndex<2> ix, Op op) {
  DL_GRID_STRIDE_LOOP(i, n) {
    int64_t o[2];
    ix.offsets(i, o);
    y[i] = op(a[o[0]], b ? b[o[1]] : bs) ? 1 : 0;
  }
}

// y[i] = cond[.] ? a[.] : b[.], a null reading 0 (and b): also the backward, routing dy to one side.
template <typename T>
DL_GLOBAL void where_kernel(const uint8_t* cond, const T* a, const T* b, T* y, int64_t n, StridedIndex<3> ix) {
  DL_GRID_STRIDE_LOOP(i, n) {
    int64_t o[3];
    ix.offsets(i, o);
    y[i] = cond[o[0]] ? (a ? a[o[1]] : T(0)) : (b ? b[o[2]] : T(0));
  }
}

// y[i] = x[offset(i)]: expand (stride 0 along broadcast dimensions) and permute (permuted strides).
template <typename T>
DL_GLOBAL void strided_copy_kernel(const T* x, T* y, int64_t n, StridedIndex<1> ix) {
  DL_GRID_STRIDE_LOOP(i, n) y[i] = x[ix.offset(i)];
}

// Sums over dimensions: output o reads x at kept.offset(o) + reduced.offset(r) for r in [0, n_red),
// adds in double and writes scale * total. One block per output when the reduced elements are
// contiguous (the threads of a block read neighbours), else one thread per output (neighbouring threads
// read neighbouring outputs' elements).
template <typename T>
DL_GLOBAL void reduce_sum_block_kernel(const T* x, T* y, int64_t n_out, StridedIndex<1> kept, StridedIndex<1> reduced,
                                       int64_t n_red, double scale) {
  DL_SHARED(double, smem, kMaxBlock);
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    const int64_t base = kept.offset(o);
    double v = 0;
    for (int64_t r = threadIdx.x; r < n_red; r += blockDim.x) v += static_cast<double>(x[base + reduced.offset(r)]);
    const double total = block_reduce_sum(v, smem);
    if (threadIdx.x == 0) y[o] = static_cast<T>(scale * total);
  }
}

template <typename T>
DL_GLOBAL void reduce_sum_thread_kernel(const T* x, T* y, int64_t n_out, StridedIndex<1> kept, StridedIndex<1> reduced,
                                        int64_t n_red, double scale) {
  DL_GRID_STRIDE_LOOP(o, n_out) {
    const int64_t base = kept.offset(o);
    double v = 0;
    for (int64_t r = 0; r < n_red; ++r) v += static_cast<double>(x[base + reduced.offset(r)]);
    y[o] = static_cast<T>(scale * v);
  }
}

// ---- launch sequences (Note [launchers]) ----

// y = op(a, b) over n outputs. A one-dimensional index with unit strides (same-shaped operands, or b
// the scalar) takes the packed kernel where the pointers allow; anything else the strided one.
template <typename L, typename Op, typename T>
void run_broadcast_binary(L& l, const Op& op, const T* a, const T* b, T bs, T* y, int64_t n,
                          const StridedIndex<2>& ix) {
  if (n <= 0) return;
  const int block = l.block_size(256);
  const bool flat = ix.ndim <= 1 && (ix.ndim == 0 ? n == 1 : ix.stride[0][0] == 1 && (!b || ix.stride[1][0] == 1));
  int64_t first = 0;
  if (flat && n >= 4 && pack_aligned(a) && pack_aligned(b) && pack_aligned<T>(y)) {
    const int64_t packs = n / 4;
    l.launch(packed_binary_kernel<Op, T>, dim3(l.grid_size(packs, block)), dim3(block), a, b, bs, y, packs, op);
    first = packs * 4;
    if (first == n) return;
  }
  l.launch(broadcast_binary_kernel<Op, T>, dim3(l.grid_size(n - first, block)), dim3(block), a, b, bs, y, first, n, ix,
           op);
}

template <typename L, typename Op, typename T>
void run_broadcast_binary_backward(L& l, const Op& op, const T* a, const T* b, T bs, const T* y, const T* dy, T* ga,
                                   T* gb, int64_t n, const StridedIndex<2>& ix) {
  if (n <= 0) return;
  const int block = l.block_size(256);
  l.launch(broadcast_binary_backward_kernel<Op, T>, dim3(l.grid_size(n, block)), dim3(block), a, b, bs, y, dy, ga, gb,
           n, ix, op);
}

template <typename L, typename Op, typename T>
void run_compare(L& l, const Op& op, const T* a, const T* b, T bs, uint8_t* y, int64_t n, const StridedIndex<2>& ix) {
  if (n <= 0) return;
  const int block = l.block_size(256);
  l.launch(compare_kernel<Op, T>, dim3(l.grid_size(n, block)), dim3(block), a, b, bs, y, n, ix, op);
}

template <typename L, typename T>
void run_where(L& l, const uint8_t* cond, const T* a, const T* b, T* y, int64_t n, const StridedIndex<3>& ix) {
  if (n <= 0) return;
  const int block = l.block_size(256);
  l.launch(where_kernel<T>, dim3(l.grid_size(n, block)), dim3(block), cond, a, b, y, n, ix);
}

template <typename L, typename T>
void run_strided_copy(L& l, const T* x, T* y, int64_t n, const StridedIndex<1>& ix) {
  if (n <= 0) return;
  const int block = l.block_size(256);
  l.launch(strided_copy_kernel<T>, dim3(l.grid_size(n, block)), dim3(block), x, y, n, ix);
}

// y[o] = scale * sum over r of x[kept.offset(o) + reduced.offset(r)], o in [0, n_out) (an empty
// reduction writes 0).
template <typename L, typename T>
void run_reduce_sum(L& l, const T* x, T* y, int64_t n_out, const StridedIndex<1>& kept, const StridedIndex<1>& reduced,
                    int64_t n_red, double scale) {
  if (n_out <= 0) return;
  const int block = l.block_size(256);
  const bool inner_reduced = reduced.ndim > 0 && reduced.stride[0][reduced.ndim - 1] == 1;
  if (inner_reduced && n_red >= 64) {
    check_reduction_block(block, "reduce_sum");
    const int64_t cap = l.grid_size(n_out * block, block);  // the launcher's cap on the grid
    l.launch(reduce_sum_block_kernel<T>, dim3(static_cast<unsigned>(cap)), dim3(block), x, y, n_out, kept, reduced,
             n_red, scale);
    return;
  }
  l.launch(reduce_sum_thread_kernel<T>, dim3(l.grid_size(n_out, block)), dim3(block), x, y, n_out, kept, reduced, n_red,
           scale);
}

}  // namespace dl::kern::inline DL_KERN_ABI
