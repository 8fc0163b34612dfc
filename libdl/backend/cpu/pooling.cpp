// CPU max and average pooling, one N x C plane per parallel task (the CUDA backend pools with cuDNN).
#include <algorithm>
#include <limits>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/parallel.h"

namespace dl::cpu {

namespace {
// The input rows [h0, h1) and columns [w0, w1) that output (oh, ow) covers, clipped to the image
// (padding contributes zeros to averages through the fixed divisor, and never wins a max).
struct PoolWindow {
  int64_t h0, h1, w0, w1;
};

int64_t clamp_index(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

PoolWindow pool_window(const Pool2dGeometry& g, int64_t oh, int64_t ow) {
  const int64_t hs = oh * g.p.stride[0] - g.p.padding[0];
  const int64_t ws = ow * g.p.stride[1] - g.p.padding[1];
  return {clamp_index(hs, 0, g.h), clamp_index(hs + g.p.kernel[0], 0, g.h), clamp_index(ws, 0, g.w),
          clamp_index(ws + g.p.kernel[1], 0, g.w)};
}

// The common 2x2, stride-2, unpadded window over an even-sized plane, without bounds checks, branch-free
// so that the compiler vectorises it. The same answer as the general loop below: the first of equal
// maxima, and a NaN wins (the last one in row-major order).
template <typename T>
void max_pool_2x2(const Pool2dGeometry& g, const T* in, T* out, int32_t* arg) {
  const int32_t w = static_cast<int32_t>(g.w);
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const T* r0 = in + 2 * oh * g.w;
    const T* r1 = r0 + g.w;
    T* o = out + oh * g.wo;
    int32_t* a = arg + oh * g.wo;
    const int32_t row = static_cast<int32_t>(2 * oh * g.w);
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      const T v0 = r0[2 * ow], v1 = r0[2 * ow + 1], v2 = r1[2 * ow], v3 = r1[2 * ow + 1];
      const bool t1 = (v1 > v0) | (v1 != v1), t3 = (v3 > v2) | (v3 != v3);  // | not ||: no branches
      const T m01 = t1 ? v1 : v0, m23 = t3 ? v3 : v2;
      const int32_t i01 = t1 ? 1 : 0, i23 = t3 ? w + 1 : w;
      const bool second = (m23 > m01) | (m23 != m23);
      o[ow] = second ? m23 : m01;
      a[ow] = row + static_cast<int32_t>(2 * ow) + (second ? i23 : i01);
    }
  }
}
bool is_2x2(const Pool2dGeometry& g) {
  return g.p.kernel[0] == 2 && g.p.kernel[1] == 2 && g.p.stride[0] == 2 && g.p.stride[1] == 2 && g.p.padding[0] == 0 &&
         g.p.padding[1] == 0 && g.h >= 2 * g.ho && g.w >= 2 * g.wo;
}
}  // namespace

template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, int32_t* argmax) {
  if (is_2x2(g)) {
    parallel_for(g.n * g.c, g.ho * g.wo * 4, [&](int64_t plane) {
      max_pool_2x2(g, x + plane * g.h * g.w, y + plane * g.ho * g.wo, argmax + plane * g.ho * g.wo);
    });
    return;
  }
  parallel_for(g.n * g.c, g.ho * g.wo * g.p.kernel[0] * g.p.kernel[1], [&](int64_t plane) {
    const T* in = x + plane * g.h * g.w;
    T* out = y + plane * g.ho * g.wo;
    int32_t* arg = argmax + plane * g.ho * g.wo;
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const PoolWindow win = pool_window(g, oh, ow);
        T best = -std::numeric_limits<T>::infinity();
        int32_t best_i = static_cast<int32_t>(win.h0 * g.w + win.w0);
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) {
            const T v = in[ih * g.w + iw];
            if (v > best || v != v) {  // NaN propagates
              best = v;
              best_i = static_cast<int32_t>(ih * g.w + iw);
            }
          }
        out[oh * g.wo + ow] = best;
        arg[oh * g.wo + ow] = best_i;
      }
  });
}

template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* dy, const int32_t* argmax, T* dx) {
  parallel_for(g.n * g.c, g.ho * g.wo + g.h * g.w, [&](int64_t plane) {
    T* out = dx + plane * g.h * g.w;
    std::fill(out, out + g.h * g.w, T(0));
    const T* d = dy + plane * g.ho * g.wo;
    const int32_t* arg = argmax + plane * g.ho * g.wo;
    for (int64_t i = 0; i < g.ho * g.wo; ++i) out[arg[i]] += d[i];
  });
}

template <typename T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y) {
  const T inv = T(1) / static_cast<T>(g.p.kernel[0] * g.p.kernel[1]);
  parallel_for(g.n * g.c, g.ho * g.wo * g.p.kernel[0] * g.p.kernel[1], [&](int64_t plane) {
    const T* in = x + plane * g.h * g.w;
    T* out = y + plane * g.ho * g.wo;
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const PoolWindow win = pool_window(g, oh, ow);
        T acc = 0;
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) acc += in[ih * g.w + iw];
        out[oh * g.wo + ow] = acc * inv;
      }
  });
}

template <typename T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* dy, T* dx) {
  const T inv = T(1) / static_cast<T>(g.p.kernel[0] * g.p.kernel[1]);
  parallel_for(g.n * g.c, g.ho * g.wo * g.p.kernel[0] * g.p.kernel[1], [&](int64_t plane) {
    T* out = dx + plane * g.h * g.w;
    std::fill(out, out + g.h * g.w, T(0));
    const T* d = dy + plane * g.ho * g.wo;
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const PoolWindow win = pool_window(g, oh, ow);
        const T v = d[oh * g.wo + ow] * inv;
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) out[ih * g.w + iw] += v;
      }
  });
}

#define DL_INSTANTIATE(T)                                                                    \
  template void max_pool2d_forward<T>(const Pool2dGeometry&, const T*, T*, int32_t*);        \
  template void max_pool2d_backward<T>(const Pool2dGeometry&, const T*, const int32_t*, T*); \
  template void avg_pool2d_forward<T>(const Pool2dGeometry&, const T*, T*);                  \
  template void avg_pool2d_backward<T>(const Pool2dGeometry&, const T*, T*);
DL_INSTANTIATE(float)
DL_INSTANTIATE(double)
#undef DL_INSTANTIATE

}  // namespace dl::cpu
