// CPU batch normalisation over N x C x S, one channel per parallel task. Statistics are accumulated
// in double; the variance is computed around the mean (two passes) for accuracy.
#include <cmath>

#include "backend/cpu/parallel.h"

namespace dl::cpu {

template <typename T>
void batch_norm_forward_train(const T* x, const T* gamma, const T* beta, int64_t n, int64_t c, int64_t s, double eps,
                              T* y, T* mean, T* invstd, T* var_unbiased) {
  const int64_t m = n * s;
  parallel_for(c, m, [&](int64_t ch) {
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* p = x + (i * c + ch) * s;
      for (int64_t j = 0; j < s; ++j) acc += p[j];
    }
    const double mu = acc / static_cast<double>(m);
    double sq = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* p = x + (i * c + ch) * s;
      for (int64_t j = 0; j < s; ++j) {
        const double d = p[j] - mu;
        sq += d * d;
      }
    }
    const double var = sq / static_cast<double>(m);
    const double is = 1.0 / std::sqrt(var + eps);
    mean[ch] = static_cast<T>(mu);
    invstd[ch] = static_cast<T>(is);
    var_unbiased[ch] = static_cast<T>(m > 1 ? sq / static_cast<double>(m - 1) : var);
    const T a = static_cast<T>(gamma[ch] * is);
    const T b = static_cast<T>(beta[ch] - mu * gamma[ch] * is);
    for (int64_t i = 0; i < n; ++i) {
      const T* p = x + (i * c + ch) * s;
      T* q = y + (i * c + ch) * s;
      for (int64_t j = 0; j < s; ++j) q[j] = p[j] * a + b;
    }
  });
}

template <typename T>
void batch_norm_forward_infer(const T* x, const T* gamma, const T* beta, const T* mean, const T* var, int64_t n,
                              int64_t c, int64_t s, double eps, T* y) {
  parallel_for(n * c, s, [&](int64_t row) {
    const int64_t ch = row % c;
    const double is = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
    const T a = static_cast<T>(gamma[ch] * is);
    const T b = static_cast<T>(beta[ch] - mean[ch] * gamma[ch] * is);
    const T* p = x + row * s;
    T* q = y + row * s;
    for (int64_t j = 0; j < s; ++j) q[j] = p[j] * a + b;
  });
}

template <typename T>
void batch_norm_backward(const T* x, const T* gamma, const T* dy, const T* mean, const T* invstd, int64_t n, int64_t c,
                         int64_t s, T* dx, T* dgamma, T* dbeta) {
  const int64_t m = n * s;
  parallel_for(c, m, [&](int64_t ch) {
    const double mu = mean[ch], is = invstd[ch];
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* p = x + (i * c + ch) * s;
      const T* d = dy + (i * c + ch) * s;
      for (int64_t j = 0; j < s; ++j) {
        sum_dy += d[j];
        sum_dy_xhat += d[j] * (p[j] - mu);
      }
    }
    sum_dy_xhat *= is;
    if (dgamma) dgamma[ch] = static_cast<T>(sum_dy_xhat);
    if (dbeta) dbeta[ch] = static_cast<T>(sum_dy);
    if (!dx) return;
    // dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat))
    const double k = gamma[ch] * is;
    const double mdy = sum_dy / static_cast<double>(m), mdx = sum_dy_xhat / static_cast<double>(m);
    for (int64_t i = 0; i < n; ++i) {
      const T* p = x + (i * c + ch) * s;
      const T* d = dy + (i * c + ch) * s;
      T* q = dx + (i * c + ch) * s;
      for (int64_t j = 0; j < s; ++j) q[j] = static_cast<T>(k * (d[j] - mdy - (p[j] - mu) * is * mdx));
    }
  });
}

template <typename T>
void batch_norm_backward_infer(const T* x, const T* gamma, const T* dy, const T* mean, const T* var, int64_t n,
                               int64_t c, int64_t s, double eps, T* dx, T* dgamma, T* dbeta) {
  parallel_for(c, n * s, [&](int64_t ch) {
    const double is = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* p = x + (i * c + ch) * s;
      const T* d = dy + (i * c + ch) * s;
      T* q = dx ? dx + (i * c + ch) * s : nullptr;
      for (int64_t j = 0; j < s; ++j) {
        sum_dy += d[j];
        sum_dy_xhat += d[j] * (p[j] - mean[ch]) * is;
        if (q) q[j] = static_cast<T>(d[j] * gamma[ch] * is);
      }
    }
    if (dgamma) dgamma[ch] = static_cast<T>(sum_dy_xhat);
    if (dbeta) dbeta[ch] = static_cast<T>(sum_dy);
  });
}

#define DL_INSTANTIATE(T)                                                                                        \
  template void batch_norm_forward_train<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, double, T*, \
                                            T*, T*, T*);                                                         \
  template void batch_norm_forward_infer<T>(const T*, const T*, const T*, const T*, const T*, int64_t, int64_t,  \
                                            int64_t, double, T*);                                                \
  template void batch_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, int64_t, int64_t,       \
                                       int64_t, T*, T*, T*);                                                     \
  template void batch_norm_backward_infer<T>(const T*, const T*, const T*, const T*, const T*, int64_t, int64_t, \
                                             int64_t, double, T*, T*, T*);
DL_INSTANTIATE(float)
DL_INSTANTIATE(double)
#undef DL_INSTANTIATE

}  // namespace dl::cpu
