// CPU batch normalisation over N x C x S, one channel per parallel task. The variance is computed
// around the mean (two passes) for accuracy; see Note [plane sums].
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "backend/cpu/parallel.h"
#include "backend/cpu/storage.h"

namespace dl::cpu {

// Note [plane sums]: a channel's statistics are sums over N planes of H W values. Each plane is
// summed in T with Eigen's vectorised reduction and the per-plane sums are added in double, which
// keeps float32 statistics accurate to about 1e-7 relative for the sizes of these networks while
// the inner loops stay vectorised.
namespace {
template <typename T>
using Arr = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using CArr = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// Note [fused relu backward]: under the fused ReLU, batch norm's backward reads dy masked by the
// output (y > 0). The mask is applied inside each loop rather than into a buffer, and the loops' sums are
// OpenMP simd reductions (vectorised without -ffast-math; the order is fixed by the code, and the planes
// lie at the same offsets of the tensors in every run, so results repeat bit for bit). Two passes over
// a plane: sum(dy) and sum(dy (x - mean)), then dx.
template <typename T, typename A = acc_t<T>>
void plane_backward_sums(const T* __restrict d, const T* __restrict r, const T* __restrict x, A mu, int64_t s,
                         A* sum_dy, A* sum_dy_xc) {
  A a = 0, b = 0;
  if (r) {
#pragma omp simd reduction(+ : a, b)
    for (int64_t j = 0; j < s; ++j) {
      const A dj = ld(r[j]) > A(0) ? ld(d[j]) : A(0);
      a += dj;
      b += dj * (ld(x[j]) - mu);
    }
  } else {
#pragma omp simd reduction(+ : a, b)
    for (int64_t j = 0; j < s; ++j) {
      a += ld(d[j]);
      b += ld(d[j]) * (ld(x[j]) - mu);
    }
  }
  *sum_dy = a;
  *sum_dy_xc = b;
}

// dx = k (dy - mdy - (x - mu) kx) over one plane, dy masked by the ReLU's output when r is given.
template <typename T, typename A = acc_t<T>>
void plane_backward_dx(const T* __restrict d, const T* __restrict r, const T* __restrict x, A mu, A k, A mdy, A kx,
                       int64_t s, T* __restrict dx) {
  if (r) {
#pragma omp simd
    for (int64_t j = 0; j < s; ++j)
      dx[j] = st<T>(k * ((ld(r[j]) > A(0) ? ld(d[j]) : A(0)) - mdy - (ld(x[j]) - mu) * kx));
  } else {
#pragma omp simd
    for (int64_t j = 0; j < s; ++j) dx[j] = st<T>(k * (ld(d[j]) - mdy - (ld(x[j]) - mu) * kx));
  }
}

// A plane's sum, and its sum of squared deviations from mu, in the compute type (Note [plane sums]):
// Eigen's vectorised reductions for float and double, an OpenMP simd reduction over bfloat16.
template <typename T, typename A = acc_t<T>>
A plane_sum(const T* __restrict x, int64_t s) {
  if constexpr (std::is_same_v<T, BFloat16>) {
    A a = 0;
#pragma omp simd reduction(+ : a)
    for (int64_t j = 0; j < s; ++j) a += ld(x[j]);
    return a;
  } else {
    return CArr<T>(x, s).sum();
  }
}
template <typename T, typename A = acc_t<T>>
A plane_sq_dev(const T* __restrict x, int64_t s, A mu) {
  if constexpr (std::is_same_v<T, BFloat16>) {
    A a = 0;
#pragma omp simd reduction(+ : a)
    for (int64_t j = 0; j < s; ++j) a += (ld(x[j]) - mu) * (ld(x[j]) - mu);
    return a;
  } else {
    return (CArr<T>(x, s) - mu).square().sum();
  }
}
// y = max?(x a + b) over a plane.
template <typename T, typename A = acc_t<T>>
void plane_affine(const T* __restrict x, T* __restrict y, int64_t s, A a, A b, bool relu) {
  if constexpr (std::is_same_v<T, BFloat16>) {
    if (relu) {
#pragma omp simd
      for (int64_t j = 0; j < s; ++j) y[j] = st<T>(std::max(ld(x[j]) * a + b, A(0)));
    } else {
#pragma omp simd
      for (int64_t j = 0; j < s; ++j) y[j] = st<T>(ld(x[j]) * a + b);
    }
  } else if (relu) {
    Arr<T>(y, s) = (CArr<T>(x, s) * a + b).max(T(0));
  } else {
    Arr<T>(y, s) = CArr<T>(x, s) * a + b;
  }
}
}  // namespace

template <typename T>
void batch_norm_forward_train(const T* x, const acc_t<T>* gamma, const acc_t<T>* beta, int64_t n, int64_t c, int64_t s,
                              double eps, T* y, acc_t<T>* mean, acc_t<T>* invstd, acc_t<T>* var_unbiased, bool relu) {
  using A = acc_t<T>;
  const int64_t m = n * s;
  parallel_for(c, m, [&](int64_t ch) {
    // Each plane is summed vectorised in A, the planes in double (Note [plane sums]).
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += plane_sum(x + (i * c + ch) * s, s);
    const double mu = acc / static_cast<double>(m);
    double sq = 0;
    for (int64_t i = 0; i < n; ++i) sq += plane_sq_dev(x + (i * c + ch) * s, s, static_cast<A>(mu));
    const double var = sq / static_cast<double>(m);
    const double is = 1.0 / std::sqrt(var + eps);
    mean[ch] = static_cast<A>(mu);
    invstd[ch] = static_cast<A>(is);
    var_unbiased[ch] = static_cast<A>(m > 1 ? sq / static_cast<double>(m - 1) : var);
    const A a = static_cast<A>(gamma[ch] * is);
    const A b = static_cast<A>(beta[ch] - mu * gamma[ch] * is);
    for (int64_t i = 0; i < n; ++i) plane_affine(x + (i * c + ch) * s, y + (i * c + ch) * s, s, a, b, relu);
  });
}

template <typename T>
void batch_norm_forward_infer(const T* x, const acc_t<T>* gamma, const acc_t<T>* beta, const acc_t<T>* mean,
                              const acc_t<T>* var, int64_t n, int64_t c, int64_t s, double eps, T* y, bool relu) {
  using A = acc_t<T>;
  parallel_for(n * c, s, [&](int64_t row) {
    const int64_t ch = row % c;
    const double is = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
    const A a = static_cast<A>(gamma[ch] * is);
    const A b = static_cast<A>(beta[ch] - mean[ch] * gamma[ch] * is);
    const T* p = x + row * s;
    T* q = y + row * s;
    if (relu)
      for (int64_t j = 0; j < s; ++j) q[j] = st<T>(std::max(ld(p[j]) * a + b, A(0)));
    else
      for (int64_t j = 0; j < s; ++j) q[j] = st<T>(ld(p[j]) * a + b);
  });
}

template <typename T>
void batch_norm_backward(const T* x, const acc_t<T>* gamma, const T* dy, const acc_t<T>* mean, const acc_t<T>* invstd,
                         int64_t n, int64_t c, int64_t s, T* dx, acc_t<T>* dgamma, acc_t<T>* dbeta, const T* relu_out) {
  using A = acc_t<T>;
  const int64_t m = n * s;
  parallel_for(c, m, [&](int64_t ch) {
    const A mu = mean[ch];
    const double is = invstd[ch];
    double sum_dy = 0, sum_dy_xc = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t o = (i * c + ch) * s;
      A a, b;
      plane_backward_sums(dy + o, relu_out ? relu_out + o : nullptr, x + o, mu, s, &a, &b);
      sum_dy += a;
      sum_dy_xc += b;
    }
    const double sum_dy_xhat = sum_dy_xc * is;
    if (dgamma) dgamma[ch] = static_cast<A>(sum_dy_xhat);
    if (dbeta) dbeta[ch] = static_cast<A>(sum_dy);
    if (!dx) return;
    // dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)), xhat = (x - mu) invstd
    const A k = static_cast<A>(gamma[ch] * is);
    const A mdy = static_cast<A>(sum_dy / static_cast<double>(m));
    const A kx = static_cast<A>(is * sum_dy_xhat / static_cast<double>(m));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t o = (i * c + ch) * s;
      plane_backward_dx(dy + o, relu_out ? relu_out + o : nullptr, x + o, mu, k, mdy, kx, s, dx + o);
    }
  });
}

template <typename T>
void batch_norm_backward_infer(const T* x, const acc_t<T>* gamma, const T* dy, const acc_t<T>* mean,
                               const acc_t<T>* var, int64_t n, int64_t c, int64_t s, double eps, T* dx,
                               acc_t<T>* dgamma, acc_t<T>* dbeta, const T* relu_out) {
  using A = acc_t<T>;
  parallel_for(c, n * s, [&](int64_t ch) {
    const double is = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* p = x + (i * c + ch) * s;
      const T* d = dy + (i * c + ch) * s;
      T* q = dx ? dx + (i * c + ch) * s : nullptr;
      const T* r = relu_out ? relu_out + (i * c + ch) * s : nullptr;
      for (int64_t j = 0; j < s; ++j) {
        const A dj = !r || ld(r[j]) > A(0) ? ld(d[j]) : A(0);
        sum_dy += dj;
        sum_dy_xhat += dj * (ld(p[j]) - mean[ch]) * is;
        if (q) q[j] = st<T>(static_cast<A>(dj * gamma[ch] * is));
      }
    }
    if (dgamma) dgamma[ch] = static_cast<A>(sum_dy_xhat);
    if (dbeta) dbeta[ch] = static_cast<A>(sum_dy);
  });
}

template <typename T>
void batch_norm_sums(const T* x, int64_t n, int64_t c, int64_t s, double* sum, double* sum_sq) {
  parallel_for(c, n * s, [&](int64_t ch) {
    double a = 0, b = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* p = x + (i * c + ch) * s;
      for (int64_t j = 0; j < s; ++j) a += p[j], b += static_cast<double>(p[j]) * p[j];
    }
    sum[ch] = a;
    sum_sq[ch] = b;
  });
}

template <typename T>
void batch_norm_sync_backward_correct(const T* x, const T* gamma, const T* mean, const T* var, int64_t n, int64_t c,
                                      int64_t s, double eps, const double* sum_dy, const double* sum_dy_xhat,
                                      double count, T* dx) {
  parallel_for(c, n * s, [&](int64_t ch) {
    const double is = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
    const double k = gamma[ch] * is, mean_dy = sum_dy[ch] / count, mean_dy_xhat = sum_dy_xhat[ch] / count;
    for (int64_t i = 0; i < n; ++i) {
      const T* p = x + (i * c + ch) * s;
      T* q = dx + (i * c + ch) * s;
      for (int64_t j = 0; j < s; ++j)
        q[j] = static_cast<T>(q[j] - k * (mean_dy + (p[j] - mean[ch]) * is * mean_dy_xhat));
    }
  });
}

#define DL_INSTANTIATE_STORAGE(T)                                                                                      \
  template void batch_norm_forward_train<T>(const T*, const acc_t<T>*, const acc_t<T>*, int64_t, int64_t, int64_t,     \
                                            double, T*, acc_t<T>*, acc_t<T>*, acc_t<T>*, bool);                        \
  template void batch_norm_forward_infer<T>(const T*, const acc_t<T>*, const acc_t<T>*, const acc_t<T>*,               \
                                            const acc_t<T>*, int64_t, int64_t, int64_t, double, T*, bool);             \
  template void batch_norm_backward<T>(const T*, const acc_t<T>*, const T*, const acc_t<T>*, const acc_t<T>*, int64_t, \
                                       int64_t, int64_t, T*, acc_t<T>*, acc_t<T>*, const T*);                          \
  template void batch_norm_backward_infer<T>(const T*, const acc_t<T>*, const T*, const acc_t<T>*, const acc_t<T>*,    \
                                             int64_t, int64_t, int64_t, double, T*, acc_t<T>*, acc_t<T>*, const T*);
#define DL_INSTANTIATE(T)                                                                                              \
  DL_INSTANTIATE_STORAGE(T)                                                                                            \
  template void batch_norm_sums<T>(const T*, int64_t, int64_t, int64_t, double*, double*);                             \
  template void batch_norm_sync_backward_correct<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, \
                                                    double, const double*, const double*, double, T*);
DL_INSTANTIATE(float)
DL_INSTANTIATE(double)
DL_INSTANTIATE_STORAGE(BFloat16)
#undef DL_INSTANTIATE
#undef DL_INSTANTIATE_STORAGE

}  // namespace dl::cpu
