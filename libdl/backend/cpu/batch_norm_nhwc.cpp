// CPU batch normalisation of channels-last tensors: x viewed as M = N H W rows of C channels (Note
// [memory format] in dl/core/tensor.h). The same statistics and formulas as batch_norm.cpp's NCHW
// loops, vectorised across the channels of a row instead of along a plane.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/parallel.h"
#include "backend/cpu/storage.h"

namespace dl::cpu {

namespace {
// Note [channels-last sums]: per-channel sums over the rows of an M x C matrix. Each thread takes a fixed
// range of rows (the split depends only on M and the thread count) and sums blocks of kRowBlock rows in A
// (the storage's compute type, Note [bf16 storage in the CPU kernels]), vectorised across the channels,
// into double; the threads' partial sums are added in thread order. So the result repeats bit for bit for a
// fixed thread count, as the NCHW loops' do (Note [plane sums]).
constexpr int64_t kRowBlock = 64;

// row(r, a, b) adds row r's terms into the block accumulators a[0..c) and b[0..c). s0, s1 get the sums.
template <typename A, typename Row>
void channel_sums(int64_t m, int64_t c, Row&& row, double* s0, double* s1) {
  const int64_t nt = m * c > 32768 ? std::max<int64_t>(1, std::min<int64_t>(num_threads(), m)) : 1;
  std::vector<double> part(static_cast<size_t>(2 * c * nt), 0.0);
  parallel_for(nt, m * c / nt, [&](int64_t t) {
    const int64_t r0 = m * t / nt, r1 = m * (t + 1) / nt;
    std::vector<A> a(static_cast<size_t>(c)), b(static_cast<size_t>(c));
    double* pa = part.data() + 2 * c * t;
    double* pb = pa + c;
    for (int64_t r = r0; r < r1; r += kRowBlock) {
      std::fill(a.begin(), a.end(), A(0));
      std::fill(b.begin(), b.end(), A(0));
      for (int64_t rr = r; rr < std::min(r1, r + kRowBlock); ++rr) row(rr, a.data(), b.data());
      for (int64_t ch = 0; ch < c; ++ch) pa[ch] += a[static_cast<size_t>(ch)], pb[ch] += b[static_cast<size_t>(ch)];
    }
  });
  std::fill(s0, s0 + c, 0.0);
  std::fill(s1, s1 + c, 0.0);
  for (int64_t t = 0; t < nt; ++t)
    for (int64_t ch = 0; ch < c; ++ch)
      s0[ch] += part[static_cast<size_t>(2 * c * t + ch)], s1[ch] += part[static_cast<size_t>(2 * c * t + c + ch)];
}

// y = max?(x a + b) row by row, a and b per channel.
template <typename T, typename A = acc_t<T>>
void affine_rows(const T* x, const A* a, const A* b, int64_t m, int64_t c, T* y, bool relu) {
  parallel_for(m, c, [&](int64_t r) {
    const T* __restrict p = x + r * c;
    T* __restrict q = y + r * c;
    if (relu) {
#pragma omp simd
      for (int64_t ch = 0; ch < c; ++ch) q[ch] = st<T>(std::max(ld(p[ch]) * a[ch] + b[ch], A(0)));
    } else {
#pragma omp simd
      for (int64_t ch = 0; ch < c; ++ch) q[ch] = st<T>(ld(p[ch]) * a[ch] + b[ch]);
    }
  });
}
}  // namespace

template <typename T>
void batch_norm_forward_train_nhwc(const T* x, const acc_t<T>* gamma, const acc_t<T>* beta, int64_t n, int64_t c,
                                   int64_t s, double eps, T* y, acc_t<T>* mean, acc_t<T>* invstd,
                                   acc_t<T>* var_unbiased, bool relu) {
  using A = acc_t<T>;
  const int64_t m = n * s;
  std::vector<double> sum(static_cast<size_t>(c)), unused(static_cast<size_t>(c)), sq(static_cast<size_t>(c));
  channel_sums<A>(
      m, c,
      [&](int64_t r, A* a, A*) {
        const T* __restrict p = x + r * c;
#pragma omp simd
        for (int64_t ch = 0; ch < c; ++ch) a[ch] += ld(p[ch]);
      },
      sum.data(), unused.data());
  std::vector<A> mu(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch) mu[static_cast<size_t>(ch)] = static_cast<A>(sum[static_cast<size_t>(ch)] / m);
  channel_sums<A>(
      m, c,
      [&](int64_t r, A* a, A*) {
        const T* __restrict p = x + r * c;
        const A* __restrict u = mu.data();
#pragma omp simd
        for (int64_t ch = 0; ch < c; ++ch) a[ch] += (ld(p[ch]) - u[ch]) * (ld(p[ch]) - u[ch]);
      },
      sq.data(), unused.data());
  std::vector<A> a(static_cast<size_t>(c)), b(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch) {
    const size_t i = static_cast<size_t>(ch);
    const double mu_d = sum[i] / static_cast<double>(m), var = sq[i] / static_cast<double>(m);
    const double is = 1.0 / std::sqrt(var + eps);
    mean[ch] = static_cast<A>(mu_d);
    invstd[ch] = static_cast<A>(is);
    var_unbiased[ch] = static_cast<A>(m > 1 ? sq[i] / static_cast<double>(m - 1) : var);
    a[i] = static_cast<A>(gamma[ch] * is);
    b[i] = static_cast<A>(beta[ch] - mu_d * gamma[ch] * is);
  }
  affine_rows(x, a.data(), b.data(), m, c, y, relu);
}

template <typename T>
void batch_norm_forward_infer_nhwc(const T* x, const acc_t<T>* gamma, const acc_t<T>* beta, const acc_t<T>* mean,
                                   const acc_t<T>* var, int64_t n, int64_t c, int64_t s, double eps, T* y, bool relu) {
  using A = acc_t<T>;
  std::vector<A> a(static_cast<size_t>(c)), b(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch) {
    const double is = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
    a[static_cast<size_t>(ch)] = static_cast<A>(gamma[ch] * is);
    b[static_cast<size_t>(ch)] = static_cast<A>(beta[ch] - mean[ch] * gamma[ch] * is);
  }
  affine_rows(x, a.data(), b.data(), n * s, c, y, relu);
}

template <typename T>
void batch_norm_backward_nhwc(const T* x, const acc_t<T>* gamma, const T* dy, const acc_t<T>* mean,
                              const acc_t<T>* invstd, int64_t n, int64_t c, int64_t s, T* dx, acc_t<T>* dgamma,
                              acc_t<T>* dbeta, const T* relu_out) {
  using A = acc_t<T>;
  const int64_t m = n * s;
  std::vector<double> sum_dy(static_cast<size_t>(c)), sum_dy_xc(static_cast<size_t>(c));
  channel_sums<A>(
      m, c,
      [&](int64_t r, A* a, A* b) {
        const T* __restrict d = dy + r * c;
        const T* __restrict p = x + r * c;
        if (relu_out) {
          const T* __restrict q = relu_out + r * c;
#pragma omp simd
          for (int64_t ch = 0; ch < c; ++ch) {
            const A dj = ld(q[ch]) > A(0) ? ld(d[ch]) : A(0);
            a[ch] += dj;
            b[ch] += dj * (ld(p[ch]) - mean[ch]);
          }
        } else {
#pragma omp simd
          for (int64_t ch = 0; ch < c; ++ch) {
            a[ch] += ld(d[ch]);
            b[ch] += ld(d[ch]) * (ld(p[ch]) - mean[ch]);
          }
        }
      },
      sum_dy.data(), sum_dy_xc.data());
  std::vector<A> k(static_cast<size_t>(c)), mdy(static_cast<size_t>(c)), kx(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch) {
    const size_t i = static_cast<size_t>(ch);
    const double is = invstd[ch], sum_dy_xhat = sum_dy_xc[i] * is;
    if (dgamma) dgamma[ch] = static_cast<A>(sum_dy_xhat);
    if (dbeta) dbeta[ch] = static_cast<A>(sum_dy[i]);
    k[i] = static_cast<A>(gamma[ch] * is);
    mdy[i] = static_cast<A>(sum_dy[i] / static_cast<double>(m));
    kx[i] = static_cast<A>(is * sum_dy_xhat / static_cast<double>(m));
  }
  if (!dx) return;
  // dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)), as the NCHW loops
  parallel_for(m, c, [&](int64_t r) {
    const T* __restrict d = dy + r * c;
    const T* __restrict p = x + r * c;
    const T* __restrict q = relu_out ? relu_out + r * c : nullptr;
    T* __restrict o = dx + r * c;
    if (q) {
#pragma omp simd
      for (int64_t ch = 0; ch < c; ++ch)
        o[ch] = st<T>(k[ch] * ((ld(q[ch]) > A(0) ? ld(d[ch]) : A(0)) - mdy[ch] - (ld(p[ch]) - mean[ch]) * kx[ch]));
    } else {
#pragma omp simd
      for (int64_t ch = 0; ch < c; ++ch) o[ch] = st<T>(k[ch] * (ld(d[ch]) - mdy[ch] - (ld(p[ch]) - mean[ch]) * kx[ch]));
    }
  });
}

template <typename T>
void batch_norm_backward_infer_nhwc(const T* x, const acc_t<T>* gamma, const T* dy, const acc_t<T>* mean,
                                    const acc_t<T>* var, int64_t n, int64_t c, int64_t s, double eps, T* dx,
                                    acc_t<T>* dgamma, acc_t<T>* dbeta, const T* relu_out) {
  using A = acc_t<T>;
  const int64_t m = n * s;
  std::vector<A> is(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch)
    is[static_cast<size_t>(ch)] = static_cast<A>(1.0 / std::sqrt(static_cast<double>(var[ch]) + eps));
  std::vector<double> sum_dy(static_cast<size_t>(c)), sum_dy_xhat(static_cast<size_t>(c));
  channel_sums<A>(
      m, c,
      [&](int64_t r, A* a, A* b) {
        const T* __restrict d = dy + r * c;
        const T* __restrict p = x + r * c;
        const T* __restrict q = relu_out ? relu_out + r * c : nullptr;
        for (int64_t ch = 0; ch < c; ++ch) {
          const A dj = !q || ld(q[ch]) > A(0) ? ld(d[ch]) : A(0);
          a[ch] += dj;
          b[ch] += dj * (ld(p[ch]) - mean[ch]) * is[static_cast<size_t>(ch)];
        }
      },
      sum_dy.data(), sum_dy_xhat.data());
  for (int64_t ch = 0; ch < c; ++ch) {
    if (dgamma) dgamma[ch] = static_cast<A>(sum_dy_xhat[static_cast<size_t>(ch)]);
    if (dbeta) dbeta[ch] = static_cast<A>(sum_dy[static_cast<size_t>(ch)]);
  }
  if (!dx) return;
  parallel_for(m, c, [&](int64_t r) {
    const T* d = dy + r * c;
    const T* q = relu_out ? relu_out + r * c : nullptr;
    T* o = dx + r * c;
    for (int64_t ch = 0; ch < c; ++ch)
      o[ch] = st<T>((!q || ld(q[ch]) > A(0) ? ld(d[ch]) : A(0)) * gamma[ch] * is[static_cast<size_t>(ch)]);
  });
}

#define DL_INSTANTIATE(T)                                                                                            \
  template void batch_norm_forward_train_nhwc<T>(const T*, const acc_t<T>*, const acc_t<T>*, int64_t, int64_t,       \
                                                 int64_t, double, T*, acc_t<T>*, acc_t<T>*, acc_t<T>*, bool);        \
  template void batch_norm_forward_infer_nhwc<T>(const T*, const acc_t<T>*, const acc_t<T>*, const acc_t<T>*,        \
                                                 const acc_t<T>*, int64_t, int64_t, int64_t, double, T*, bool);      \
  template void batch_norm_backward_nhwc<T>(const T*, const acc_t<T>*, const T*, const acc_t<T>*, const acc_t<T>*,   \
                                            int64_t, int64_t, int64_t, T*, acc_t<T>*, acc_t<T>*, const T*);          \
  template void batch_norm_backward_infer_nhwc<T>(const T*, const acc_t<T>*, const T*, const acc_t<T>*,              \
                                                  const acc_t<T>*, int64_t, int64_t, int64_t, double, T*, acc_t<T>*, \
                                                  acc_t<T>*, const T*);
DL_INSTANTIATE(float)
DL_INSTANTIATE(double)
DL_INSTANTIATE(BFloat16)
#undef DL_INSTANTIATE

}  // namespace dl::cpu
