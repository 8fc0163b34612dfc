// CPU max and average pooling, one N x C plane per parallel task (the CUDA backend pools with cuDNN).
#include <algorithm>
#include <cstring>
#include <limits>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/storage.h"

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

// Note [vectorised 2x2 pooling]: the common 2x2, stride-2, unpadded window over an even-sized plane,
// without bounds checks. The comparisons are written !(a <= b) ("greater, or unordered") because that is
// the form GCC turns into masked vector selects; written a > b | a != a it stays scalar and branchy, 4x
// slower on MNIST's planes. Without NaNs both forms pick the same element: the first of equal maxima.
// With a NaN they differ (a NaN on the left would lose), so a plane holding a NaN is left to the general
// loop below, which lets the last NaN in row-major order win; the NaN test is one vectorised OR over the plane.
// Every loop here is templated on the storage type and compares in its compute type (ld(), Note [bf16
// storage in the CPU kernels]); a maximum is one of the inputs, so it is stored back exactly.
template <typename T>
bool has_nan(const T* __restrict x, int64_t n) {
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= ld(x[i]) != ld(x[i]);
  return bad != 0;
}
inline bool has_nan(const BFloat16* __restrict x_in, int64_t n) {  // on the bits: exponent all ones, mantissa not 0
  const auto* __restrict x = reinterpret_cast<const uint16_t*>(x_in);
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= (x[i] & 0x7FFF) > 0x7F80;
  return bad != 0;
}

template <typename T, typename A = acc_t<T>>
void max_pool_2x2_row(const T* __restrict r0, const T* __restrict r1, T* __restrict o, int32_t* __restrict a,
                      int64_t wo, int32_t row, int32_t w) {
  for (int64_t ow = 0; ow < wo; ++ow) {
    const A v0 = ld(r0[2 * ow]), v1 = ld(r0[2 * ow + 1]), v2 = ld(r1[2 * ow]), v3 = ld(r1[2 * ow + 1]);
    const int t1 = !(v1 <= v0), t3 = !(v3 <= v2);
    const A m01 = t1 ? v1 : v0, m23 = t3 ? v3 : v2;
    const int second = !(m23 <= m01);
    o[ow] = st<T>(second ? m23 : m01);
    a[ow] = row + static_cast<int32_t>(2 * ow) + (second ? w + t3 : t1);
  }
}

// Backward of one output row of the 2x2 window: each input of the two rows is written once (the gradient
// where it was the window's argmax, else zero), so dx needs no separate zeroing pass.
template <typename T>
void max_pool_2x2_row_backward(const T* __restrict d, const int32_t* __restrict a, T* __restrict q0, T* __restrict q1,
                               int64_t wo, int32_t row, int32_t w) {
  for (int64_t ow = 0; ow < wo; ++ow) {
    const int32_t k = a[ow] - row - static_cast<int32_t>(2 * ow);  // 0, 1, w or w + 1
    const T g = d[ow];
    q0[2 * ow] = k == 0 ? g : T{};
    q0[2 * ow + 1] = k == 1 ? g : T{};
    q1[2 * ow] = k == w ? g : T{};
    q1[2 * ow + 1] = k == w + 1 ? g : T{};
  }
}

// The same two rows over bfloat16, on the bit patterns (the plane holds no NaN). A bf16 value's order key,
// its magnitude bits signed by its sign bit, orders as the value does (and -0 and +0 alike), so that the
// comparisons and selections are integer ones: the loop vectorises, and its remainder (MNIST's rows are 14
// outputs long) runs without branches, where float comparisons made a branchy scalar tail 2.5x slower than
// the float loop. Each window row's pair is one 32-bit load, the element at the lower address in its lower
// half (x86 and Arm are little endian).
using U32Pair = uint32_t __attribute__((aligned(2), may_alias));  // two bf16 values, at any even address
inline int32_t bf16_key(uint32_t bits) {
  const int32_t mag = static_cast<int32_t>(bits & 0x7FFFu);
  return (bits & 0x8000u) ? -mag : mag;
}
inline void max_pool_2x2_row(const BFloat16* __restrict r0_in, const BFloat16* __restrict r1_in,
                             BFloat16* __restrict o_out, int32_t* __restrict a, int64_t wo, int32_t row, int32_t w) {
  const auto* __restrict r0 = reinterpret_cast<const U32Pair*>(r0_in);
  const auto* __restrict r1 = reinterpret_cast<const U32Pair*>(r1_in);
  auto* __restrict o = reinterpret_cast<uint16_t*>(o_out);
  for (int64_t ow = 0; ow < wo; ++ow) {
    const uint32_t u0 = r0[ow], u1 = r1[ow];
    const uint32_t b0 = u0 & 0xFFFFu, b1 = u0 >> 16, b2 = u1 & 0xFFFFu, b3 = u1 >> 16;
    const int32_t k0 = bf16_key(b0), k1 = bf16_key(b1), k2 = bf16_key(b2), k3 = bf16_key(b3);
    const int t1 = k1 > k0, t3 = k3 > k2;  // the first of equal maxima is kept
    const int32_t m01 = t1 ? k1 : k0, m23 = t3 ? k3 : k2;
    const uint32_t c01 = t1 ? b1 : b0, c23 = t3 ? b3 : b2;
    const int second = m23 > m01;
    o[ow] = static_cast<uint16_t>(second ? c23 : c01);
    a[ow] = row + static_cast<int32_t>(2 * ow) + (second ? w + t3 : t1);
  }
}

// Its backward: each pair of dx written as one 32-bit store.
inline void max_pool_2x2_row_backward(const BFloat16* __restrict d_in, const int32_t* __restrict a,
                                      BFloat16* __restrict q0_out, BFloat16* __restrict q1_out, int64_t wo, int32_t row,
                                      int32_t w) {
  const auto* __restrict d = reinterpret_cast<const uint16_t*>(d_in);
  auto* __restrict q0 = reinterpret_cast<U32Pair*>(q0_out);
  auto* __restrict q1 = reinterpret_cast<U32Pair*>(q1_out);
  for (int64_t ow = 0; ow < wo; ++ow) {
    const int32_t k = a[ow] - row - static_cast<int32_t>(2 * ow);  // 0, 1, w or w + 1
    const uint32_t g = d[ow];
    q0[ow] = (k == 0 ? g : 0u) | (k == 1 ? g << 16 : 0u);
    q1[ow] = (k == w ? g : 0u) | (k == w + 1 ? g << 16 : 0u);
  }
}

// Returns false (nothing written) when the plane holds a NaN.
template <typename T>
bool max_pool_2x2(const Pool2dGeometry& g, const T* in, T* out, int32_t* arg) {
  if (has_nan(in, g.h * g.w)) return false;
  const int32_t w = static_cast<int32_t>(g.w);
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const T* r0 = in + 2 * oh * g.w;
    max_pool_2x2_row(r0, r0 + g.w, out + oh * g.wo, arg + oh * g.wo, g.wo, static_cast<int32_t>(2 * oh * g.w), w);
  }
  return true;
}

// One window position (kh, kw) across `count` outputs of a row: o[i] takes in[i * stride] where it is
// greater (the first of equal maxima is kept), a[i] its index base + i * stride. STRIDE is the column
// stride when known at compile time (1 or 2, so that the loads vectorise), else 0 and `stride` holds it.
template <int STRIDE, typename T>
void max_pool_tap(const T* __restrict in, T* __restrict o, int32_t* __restrict a, int64_t count, int stride,
                  int32_t base) {
  const int64_t st = STRIDE > 0 ? STRIDE : stride;
  for (int64_t i = 0; i < count; ++i) {
    const T v = in[i * st];
    const int t = !(ld(v) <= ld(o[i]));
    o[i] = t ? v : o[i];
    a[i] = t ? base + static_cast<int32_t>(i * st) : a[i];
  }
}

// Any window over a plane without NaNs (Note [vectorised 2x2 pooling]), visiting each window's inputs in
// row-major order as the general loop does, but one window position at a time across a whole output row,
// so that the inner loop runs over outputs and vectorises. Returns false (nothing written) on a NaN.
template <typename T>
bool max_pool_rows(const Pool2dGeometry& g, const T* in, T* out, int32_t* arg) {
  if (has_nan(in, g.h * g.w)) return false;
  const int sw = g.p.stride[1];
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    T* o = out + oh * g.wo;
    int32_t* a = arg + oh * g.wo;
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      const PoolWindow win = pool_window(g, oh, ow);
      o[ow] = st<T>(-std::numeric_limits<acc_t<T>>::infinity());
      a[ow] = static_cast<int32_t>(win.h0 * g.w + win.w0);
    }
    for (int64_t kh = 0; kh < g.p.kernel[0]; ++kh) {
      const int64_t ih = oh * g.p.stride[0] - g.p.padding[0] + kh;
      if (ih < 0 || ih >= g.h) continue;
      for (int64_t kw = 0; kw < g.p.kernel[1]; ++kw) {
        const int64_t off = kw - g.p.padding[1];  // input column of output ow: ow * sw + off
        const int64_t lo = std::min(g.wo, off >= 0 ? int64_t{0} : (-off + sw - 1) / sw);
        const int64_t hi = std::max(lo, std::min(g.wo, g.w - off <= 0 ? int64_t{0} : (g.w - off + sw - 1) / sw));
        if (hi <= lo) continue;
        const int64_t first = ih * g.w + lo * sw + off;  // the input of output lo
        const int32_t base = static_cast<int32_t>(first);
        if (sw == 1)
          max_pool_tap<1>(in + first, o + lo, a + lo, hi - lo, sw, base);
        else if (sw == 2)
          max_pool_tap<2>(in + first, o + lo, a + lo, hi - lo, sw, base);
        else
          max_pool_tap<0>(in + first, o + lo, a + lo, hi - lo, sw, base);
      }
    }
  }
  return true;
}

bool is_2x2(const Pool2dGeometry& g) {
  return g.p.kernel[0] == 2 && g.p.kernel[1] == 2 && g.p.stride[0] == 2 && g.p.stride[1] == 2 && g.p.padding[0] == 0 &&
         g.p.padding[1] == 0 && g.h >= 2 * g.ho && g.w >= 2 * g.wo;
}
}  // namespace

template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, int32_t* argmax) {
  const bool two_by_two = is_2x2(g);
  parallel_for(g.n * g.c, g.ho * g.wo * g.p.kernel[0] * g.p.kernel[1], [&](int64_t plane) {
    const T* in = x + plane * g.h * g.w;
    T* out = y + plane * g.ho * g.wo;
    int32_t* arg = argmax + plane * g.ho * g.wo;
    if (two_by_two ? max_pool_2x2(g, in, out, arg) : max_pool_rows(g, in, out, arg)) return;
    // A plane holding a NaN: the last NaN of a window in row-major order wins.
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const PoolWindow win = pool_window(g, oh, ow);
        acc_t<T> best = -std::numeric_limits<acc_t<T>>::infinity();
        int32_t best_i = static_cast<int32_t>(win.h0 * g.w + win.w0);
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) {
            const acc_t<T> v = ld(in[ih * g.w + iw]);
            if (v > best || v != v) {  // NaN propagates
              best = v;
              best_i = static_cast<int32_t>(ih * g.w + iw);
            }
          }
        out[oh * g.wo + ow] = st<T>(best);
        arg[oh * g.wo + ow] = best_i;
      }
  });
}

template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* dy, const int32_t* argmax, T* dx) {
  // With the 2x2 window over a plane whose size is exactly twice the output's, every input lies in one window.
  const bool two_by_two = is_2x2(g) && g.h == 2 * g.ho && g.w == 2 * g.wo;
  parallel_for(g.n * g.c, g.ho * g.wo + g.h * g.w, [&](int64_t plane) {
    T* out = dx + plane * g.h * g.w;
    const T* d = dy + plane * g.ho * g.wo;
    const int32_t* arg = argmax + plane * g.ho * g.wo;
    if (two_by_two) {
      const int32_t w = static_cast<int32_t>(g.w);
      for (int64_t oh = 0; oh < g.ho; ++oh) {
        T* q0 = out + 2 * oh * g.w;
        max_pool_2x2_row_backward(d + oh * g.wo, arg + oh * g.wo, q0, q0 + g.w, g.wo,
                                  static_cast<int32_t>(2 * oh * g.w), w);
      }
      return;
    }
    std::fill(out, out + g.h * g.w, T{});
    for (int64_t i = 0; i < g.ho * g.wo; ++i) out[arg[i]] = st<T>(ld(out[arg[i]]) + ld(d[i]));
  });
}

// Channels-last max pooling: each output pixel's C maxima side by side, the window visited in row-major
// order as above (the first of equal maxima wins, and the last NaN). argmax holds, per output element, the
// index ih W + iw of its maximum within the image plane, as the NCHW loops do; it lies N Ho Wo C.
template <typename T>
void max_pool2d_forward_nhwc(const Pool2dGeometry& g, const T* x, T* y, int32_t* argmax) {
  const int64_t c = g.c;
  parallel_for(g.n * g.ho, g.wo * c * g.p.kernel[0] * g.p.kernel[1], [&](int64_t row) {
    const int64_t n = row / g.ho, oh = row % g.ho;
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      const PoolWindow win = pool_window(g, oh, ow);
      T* __restrict o = y + (row * g.wo + ow) * c;
      int32_t* __restrict a = argmax + (row * g.wo + ow) * c;
      const int32_t first = static_cast<int32_t>(win.h0 * g.w + win.w0);
      for (int64_t ch = 0; ch < c; ++ch) o[ch] = st<T>(-std::numeric_limits<acc_t<T>>::infinity()), a[ch] = first;
      for (int64_t ih = win.h0; ih < win.h1; ++ih)
        for (int64_t iw = win.w0; iw < win.w1; ++iw) {
          const T* __restrict in = x + ((n * g.h + ih) * g.w + iw) * c;
          const int32_t idx = static_cast<int32_t>(ih * g.w + iw);
          for (int64_t ch = 0; ch < c; ++ch) {
            const acc_t<T> v = ld(in[ch]);
            const bool take = (v > ld(o[ch])) | (v != v);  // NaN propagates
            o[ch] = take ? in[ch] : o[ch];
            a[ch] = take ? idx : a[ch];
          }
        }
    }
  });
}

template <typename T>
void max_pool2d_backward_nhwc(const Pool2dGeometry& g, const T* dy, const int32_t* argmax, T* dx) {
  const int64_t c = g.c;
  parallel_for(g.n, g.h * g.w * c + g.ho * g.wo * c, [&](int64_t n) {  // windows overlap within an image only
    T* out = dx + n * g.h * g.w * c;
    std::fill(out, out + g.h * g.w * c, T{});
    const T* d = dy + n * g.ho * g.wo * c;
    const int32_t* arg = argmax + n * g.ho * g.wo * c;
    for (int64_t p = 0; p < g.ho * g.wo; ++p)
      for (int64_t ch = 0; ch < c; ++ch) {
        T& o = out[arg[p * c + ch] * c + ch];
        o = st<T>(ld(o) + ld(d[p * c + ch]));
      }
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

#define DL_INSTANTIATE_MAX(T)                                                                     \
  template void max_pool2d_forward<T>(const Pool2dGeometry&, const T*, T*, int32_t*);             \
  template void max_pool2d_forward_nhwc<T>(const Pool2dGeometry&, const T*, T*, int32_t*);        \
  template void max_pool2d_backward_nhwc<T>(const Pool2dGeometry&, const T*, const int32_t*, T*); \
  template void max_pool2d_backward<T>(const Pool2dGeometry&, const T*, const int32_t*, T*);
#define DL_INSTANTIATE(T)                                                   \
  DL_INSTANTIATE_MAX(T)                                                     \
  template void avg_pool2d_forward<T>(const Pool2dGeometry&, const T*, T*); \
  template void avg_pool2d_backward<T>(const Pool2dGeometry&, const T*, T*);
DL_INSTANTIATE(float)
DL_INSTANTIATE(double)
DL_INSTANTIATE_MAX(BFloat16)
#undef DL_INSTANTIATE
#undef DL_INSTANTIATE_MAX

}  // namespace dl::cpu
