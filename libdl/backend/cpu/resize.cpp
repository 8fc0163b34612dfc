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

// Channels-last: the same taps, each output pixel's C values computed side by side (x is N H W C, y N oh ow C).
template <typename T>
void resize_bilinear_forward_nhwc(const T* x, T* y, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh,
                                  int64_t ow) {
  std::vector<LinearTap> th(static_cast<size_t>(oh)), tw(static_cast<size_t>(ow));
  for (int64_t i = 0; i < oh; ++i) th[i] = bilinear_tap(i, h, oh);
  for (int64_t j = 0; j < ow; ++j) tw[j] = bilinear_tap(j, w, ow);
  parallel_for(n * oh, ow * c * 4, [&](int64_t row) {
    const int64_t img = row / oh, i = row % oh;
    const T* r0 = x + (img * h + th[i].i0) * w * c;
    const T* r1 = x + (img * h + th[i].i1) * w * c;
    const T a0 = static_cast<T>(th[i].l0), a1 = static_cast<T>(th[i].l1);
    for (int64_t j = 0; j < ow; ++j) {
      const LinearTap& t = tw[j];
      const T b0 = static_cast<T>(t.l0), b1 = static_cast<T>(t.l1);
      const T* __restrict p00 = r0 + t.i0 * c;
      const T* __restrict p01 = r0 + t.i1 * c;
      const T* __restrict p10 = r1 + t.i0 * c;
      const T* __restrict p11 = r1 + t.i1 * c;
      T* __restrict o = y + (row * ow + j) * c;
#pragma omp simd
      for (int64_t ch = 0; ch < c; ++ch)
        o[ch] = a0 * (b0 * p00[ch] + b1 * p01[ch]) + a1 * (b0 * p10[ch] + b1 * p11[ch]);
    }
  });
}

template <typename T>
void resize_bilinear_backward_nhwc(const T* dy, T* dx, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh,
                                   int64_t ow) {
  std::vector<LinearTap> th(static_cast<size_t>(oh)), tw(static_cast<size_t>(ow));
  for (int64_t i = 0; i < oh; ++i) th[i] = bilinear_tap(i, h, oh);
  for (int64_t j = 0; j < ow; ++j) tw[j] = bilinear_tap(j, w, ow);
  // One image per task: neighbouring output rows add into the same input rows.
  parallel_for(n, (oh * ow * 4 + h * w) * c, [&](int64_t img) {
    T* in = dx + img * h * w * c;
    std::fill(in, in + h * w * c, T(0));
    for (int64_t i = 0; i < oh; ++i) {
      T* r0 = in + th[i].i0 * w * c;
      T* r1 = in + th[i].i1 * w * c;
      const T a0 = static_cast<T>(th[i].l0), a1 = static_cast<T>(th[i].l1);
      for (int64_t j = 0; j < ow; ++j) {
        const LinearTap& t = tw[j];
        const T* __restrict g = dy + ((img * oh + i) * ow + j) * c;
        const T b0 = static_cast<T>(t.l0), b1 = static_cast<T>(t.l1);
        const T w00 = a0 * b0, w01 = a0 * b1, w10 = a1 * b0, w11 = a1 * b1;
        T* q00 = r0 + t.i0 * c;
        T* q01 = r0 + t.i1 * c;
        T* q10 = r1 + t.i0 * c;
        T* q11 = r1 + t.i1 * c;
        // The four targets may coincide (an edge tap, or a 1-pixel input): added one after another, as above.
        for (int64_t ch = 0; ch < c; ++ch) q00[ch] += w00 * g[ch];
        for (int64_t ch = 0; ch < c; ++ch) q01[ch] += w01 * g[ch];
        for (int64_t ch = 0; ch < c; ++ch) q10[ch] += w10 * g[ch];
        for (int64_t ch = 0; ch < c; ++ch) q11[ch] += w11 * g[ch];
      }
    }
  });
}

#define DL_INSTANTIATE(T)                                                                                            \
  template void resize_bilinear_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t);               \
  template void resize_bilinear_backward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t);              \
  template void resize_bilinear_forward_nhwc<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t); \
  template void resize_bilinear_backward_nhwc<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
DL_INSTANTIATE(float)
DL_INSTANTIATE(double)
#undef DL_INSTANTIATE

}  // namespace dl::cpu
