// Concatenation along dim 1 of tensors viewed as N x C_i x S, and its backward (the split), for up to
// kMaxConcat inputs. The pointers and channel counts travel by value in the kernel's parameters.
#pragma once
#include <stdexcept>
#include <string>

#include "compat.cuh"
#include "elementwise.cuh"

namespace dl::kern::inline DL_KERN_ABI {

constexpr int kMaxConcat = 8;

template <typename Ptr>
struct ConcatArgs {
  Ptr parts[kMaxConcat];
  int64_t channels[kMaxConcat];
  int count;
  int64_t total_channels;
};

// The part that channel ch of the output belongs to, and the channel within it.
template <typename Ptr>
DL_HD int find_part(const ConcatArgs<Ptr>& a, int64_t ch, int64_t* local) {
  int k = 0;
  while (k + 1 < a.count && ch >= a.channels[k]) {
    ch -= a.channels[k];
    ++k;
  }
  *local = ch;
  return k;
}

template <typename T>
DL_GLOBAL void concat_kernel(ConcatArgs<const T*> a, int64_t n, int64_t s, T* y) {
  DL_GRID_STRIDE_LOOP(i, n * a.total_channels * s) {
    const int64_t j = i % s, ch = i / s % a.total_channels, b = i / (s * a.total_channels);
    int64_t local = 0;
    const int k = find_part(a, ch, &local);
    y[i] = a.parts[k][(b * a.channels[k] + local) * s + j];
  }
}

// Parts whose pointer is null are not wanted and not written.
template <typename T>
DL_GLOBAL void split_kernel(const T* y, ConcatArgs<T*> a, int64_t n, int64_t s) {
  DL_GRID_STRIDE_LOOP(i, n * a.total_channels * s) {
    const int64_t j = i % s, ch = i / s % a.total_channels, b = i / (s * a.total_channels);
    int64_t local = 0;
    const int k = find_part(a, ch, &local);
    if (a.parts[k]) a.parts[k][(b * a.channels[k] + local) * s + j] = y[i];
  }
}

template <typename Ptr>
ConcatArgs<Ptr> make_concat_args(const Ptr* parts, const int64_t* cs, int count) {
  if (count < 1 || count > kMaxConcat)
    throw std::invalid_argument("concat kernel: expected 1 to " + std::to_string(kMaxConcat) + " inputs, got " +
                                std::to_string(count));
  ConcatArgs<Ptr> a{};
  a.count = count;
  for (int k = 0; k < count; ++k) {
    a.parts[k] = parts[k];
    a.channels[k] = cs[k];
    a.total_channels += cs[k];
  }
  return a;
}

// ---- launch sequences (Note [launchers]) ----
template <typename L, typename T>
void run_concat(L& l, const T* const* xs, const int64_t* cs, int count, int64_t n, int64_t s, T* y) {
  const ConcatArgs<const T*> a = make_concat_args<const T*>(xs, cs, count);
  launch_1d(l, concat_kernel<T>, n * a.total_channels * s, a, n, s, y);
}

template <typename L, typename T>
void run_split(L& l, const T* y, const int64_t* cs, int count, int64_t n, int64_t s, T* const* dxs) {
  const ConcatArgs<T*> a = make_concat_args<T*>(dxs, cs, count);
  launch_1d(l, split_kernel<T>, n * a.total_channels * s, y, a, n, s);
}

}  // namespace dl::kern::inline DL_KERN_ABI
