// The predicted class of a pixel: the argmax over the classes of logits N x C x S (classes in the
// middle), the first maximum on ties. Shared by the CPU accuracy and the CUDA confusion/argmax kernels.
#pragma once
#include <cstdint>

#include "hostdevice.cuh"

namespace dl {

// The class with the largest logit at pixel p (of N S) of N x C x S logits; the first one on ties.
template <typename T>
DL_HD int32_t argmax_at(const T* logits, int64_t p, int64_t c, int64_t s) {
  const int64_t base = (p / s) * c * s + p % s;
  int32_t best = 0;
  T vmax = logits[base];
  for (int64_t k = 1; k < c; ++k)
    if (logits[base + k * s] > vmax) {
      vmax = logits[base + k * s];
      best = static_cast<int32_t>(k);
    }
  return best;
}

}  // namespace dl
