// Bilinear resize (align_corners = false) over planes of h x w -> oh x ow, forward and backward, with
// the source-index math of bilinear.cuh (shared with the CPU backend).
//   forward:  one thread per output pixel, four taps.
//   backward: one thread per input pixel gathers from the output pixels whose taps reach it, so no
//             atomics and a result independent of scheduling. The output rows (columns) that can reach
//             input row i lie within a window around (i + 0.5) * oh / h - 0.5, widened by one on each
//             side and filtered exactly with bilinear_tap.
#pragma once
#include "bilinear.cuh"
#include "compat.cuh"
#include "elementwise.cuh"

namespace dl::kern::inline DL_KERN_ABI {

template <typename T>
DL_GLOBAL void resize_bilinear_forward_kernel(const T* x, T* y, int64_t planes, int64_t h, int64_t w, int64_t oh,
                                              int64_t ow) {
  DL_GRID_STRIDE_LOOP(i, planes * oh * ow) {
    const int64_t ox = i % ow, oy = i / ow % oh, p = i / (ow * oh);
    const LinearTap ty = bilinear_tap(oy, h, oh), tx = bilinear_tap(ox, w, ow);
    const T* src = x + p * h * w;
    y[i] = static_cast<T>(ty.l0 * (tx.l0 * src[ty.i0 * w + tx.i0] + tx.l1 * src[ty.i0 * w + tx.i1]) +
                          ty.l1 * (tx.l0 * src[ty.i1 * w + tx.i0] + tx.l1 * src[ty.i1 * w + tx.i1]));
  }
}

// The weight with which output position o of an axis (in -> out samples) reads input position i.
DL_HD float tap_weight(int64_t o, int64_t i, int64_t in, int64_t out) {
  const LinearTap t = bilinear_tap(o, in, out);
  return (t.i0 == i ? t.l0 : 0.f) + (t.i1 == i ? t.l1 : 0.f);
}

// The output positions [lo, hi) of an axis that may read input position i.
DL_HD void reaching_outputs(int64_t i, int64_t in, int64_t out, int64_t* lo, int64_t* hi) {
  const double scale = static_cast<double>(out) / static_cast<double>(in);
  int64_t a = static_cast<int64_t>((static_cast<double>(i) - 1.0 + 0.5) * scale - 0.5) - 1;
  int64_t b = static_cast<int64_t>((static_cast<double>(i) + 1.0 + 0.5) * scale - 0.5) + 2;
  if (i == 0) a = 0;         // clamped taps of the first rows read input 0
  if (i == in - 1) b = out;  // and of the last rows input in - 1
  *lo = a < 0 ? 0 : a;
  *hi = b > out ? out : b;
}

template <typename T>
DL_GLOBAL void resize_bilinear_backward_kernel(const T* dy, T* dx, int64_t planes, int64_t h, int64_t w, int64_t oh,
                                               int64_t ow) {
  DL_GRID_STRIDE_LOOP(i, planes * h * w) {
    const int64_t ix = i % w, iy = i / w % h, p = i / (w * h);
    int64_t y0, y1, x0, x1;
    reaching_outputs(iy, h, oh, &y0, &y1);
    reaching_outputs(ix, w, ow, &x0, &x1);
    const T* g = dy + p * oh * ow;
    double acc = 0;
    for (int64_t oy = y0; oy < y1; ++oy) {
      const float wy = tap_weight(oy, iy, h, oh);
      if (wy == 0.f) continue;
      for (int64_t ox = x0; ox < x1; ++ox) {
        const float wx = tap_weight(ox, ix, w, ow);
        if (wx != 0.f) acc += static_cast<double>(wy) * wx * g[oy * ow + ox];
      }
    }
    dx[i] = static_cast<T>(acc);
  }
}

// ---- launch sequences (Note [launchers]) ----
template <typename L, typename T>
void run_resize_bilinear_forward(L& l, const T* x, T* y, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  launch_1d(l, resize_bilinear_forward_kernel<T>, planes * oh * ow, x, y, planes, h, w, oh, ow);
}

template <typename L, typename T>
void run_resize_bilinear_backward(L& l, const T* dy, T* dx, int64_t planes, int64_t h, int64_t w, int64_t oh,
                                  int64_t ow) {
  launch_1d(l, resize_bilinear_backward_kernel<T>, planes * h * w, dy, dx, planes, h, w, oh, ow);
}

}  // namespace dl::kern::inline DL_KERN_ABI
