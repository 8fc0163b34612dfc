// CPU bilinear resize, one N x C plane per parallel task; taps from kernels/bilinear.cuh.
#include <algorithm>
#include <vector>

#include "backend/cpu/parallel.h"
#include "bilinear.cuh"

namespace dl::cpu {

template <typename T>
void resize_bilinear_forward(const T* x, T* y, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  std::vector<LinearTap> th(static_cast<size_t>(oh)), tw(static_cast<size_t>(ow));
  for (int64_t i = 0; i < oh; ++i) th[i] = bilinear_tap(i, h, oh);
  for (int64_t j = 0; j < ow; ++j) tw[j] = bilinear_tap(j, w, ow);
  parallel_for(planes, oh * ow * 4, [&](int64_t p) {
    const T* in = x + p * h * w;
    T* out = y + p * oh * ow;
    for (int64_t i = 0; i < oh; ++i) {
      const T* r0 = in + th[i].i0 * w;
      const T* r1 = in + th[i].i1 * w;
      const T a0 = static_cast<T>(th[i].l0), a1 = static_cast<T>(th[i].l1);
      for (int64_t j = 0; j < ow; ++j) {
        const LinearTap& t = tw[j];
        const T b0 = static_cast<T>(t.l0), b1 = static_cast<T>(t.l1);
        out[i * ow + j] = a0 * (b0 * r0[t.i0] + b1 * r0[t.i1]) + a1 * (b0 * r1[t.i0] + b1 * r1[t.i1]);
      }
    }
  });
}

template <typename T>
void resize_bilinear_backward(const T* dy, T* dx, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  std::vector<LinearTap> th(static_cast<size_t>(oh)), tw(static_cast<size_t>(ow));
  for (int64_t i = 0; i < oh; ++i) th[i] = bilinear_tap(i, h, oh);
  for (int64_t j = 0; j < ow; ++j) tw[j] = bilinear_tap(j, w, ow);
  parallel_for(planes, oh * ow * 4 + h * w, [&](int64_t p) {
    T* in = dx + p * h * w;
    std::fill(in, in + h * w, T(0));
    const T* out = dy + p * oh * ow;
    for (int64_t i = 0; i < oh; ++i) {
      T* r0 = in + th[i].i0 * w;
      T* r1 = in + th[i].i1 * w;
      const T a0 = static_cast<T>(th[i].l0), a1 = static_cast<T>(th[i].l1);
      for (int64_t j = 0; j < ow; ++j) {
        const LinearTap& t = tw[j];
        const T g = out[i * ow + j];
        const T b0 = static_cast<T>(t.l0), b1 = static_cast<T>(t.l1);
        r0[t.i0] += a0 * b0 * g;
        r0[t.i1] += a0 * b1 * g;
        r1[t.i0] += a1 * b0 * g;
        r1[t.i1] += a1 * b1 * g;
      }
    }
  });
}

#define DL_INSTANTIATE(T)                                                                              \
  template void resize_bilinear_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t); \
  template void resize_bilinear_backward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t);
DL_INSTANTIATE(float)
DL_INSTANTIATE(double)
#undef DL_INSTANTIATE

}  // namespace dl::cpu
