// The predicted class of a pixel: the argmax over the classes of logits N x C x S (classes in the
// middle), the first maximum on ties (and the argmin of ops::argmin). Shared by the CPU accuracy and the CUDA
// confusion/argmax kernels.
#pragma once
#include <cstdint>

#include "hostdevice.cuh"

namespace dl {

// Whether v displaces the best so far: larger (smaller with kSmallest), or the first NaN, which then
// stays (PyTorch's argmax and max propagate NaN).
template <bool kSmallest, typename T>
DL_HD bool displaces(T v, T best) {
  if (v != v) return best == best;
  return kSmallest ? v < best : v > best;
}

// The class with the largest (kSmallest: smallest) logit at pixel p (of N S) of N x C x S logits; the
// first one on ties, the first NaN if any.
template <typename T, bool kSmallest = false>
DL_HD int32_t argmax_at(const T* logits, int64_t p, int64_t c, int64_t s) {
  const int64_t base = (p / s) * c * s + p % s;
  int32_t best = 0;
  T vbest = logits[base];
  for (int64_t k = 1; k < c; ++k)
    if (displaces<kSmallest>(logits[base + k * s], vbest)) {
      vbest = logits[base + k * s];
      best = static_cast<int32_t>(k);
    }
  return best;
}

}  // namespace dl
