// CPU softmax, log-softmax and the weighted cross-entropy over N x C x S (classes in the middle).
#include <cmath>
#include <vector>

#include "backend/cpu/parallel.h"

namespace dl::cpu {

template <typename T>
void softmax_forward(const T* x, T* y, int64_t n, int64_t c, int64_t s, bool log) {
  parallel_for(n * s, c, [&](int64_t row) {
    const int64_t i = row / s, j = row % s;
    const T* in = x + i * c * s + j;
    T* out = y + i * c * s + j;
    T mx = in[0];
    for (int64_t k = 1; k < c; ++k) mx = std::max(mx, in[k * s]);
    double z = 0;
    for (int64_t k = 0; k < c; ++k) z += std::exp(static_cast<double>(in[k * s] - mx));
    if (log) {
      const T lz = static_cast<T>(std::log(z));
      for (int64_t k = 0; k < c; ++k) out[k * s] = in[k * s] - mx - lz;
    } else {
      const double inv = 1.0 / z;
      for (int64_t k = 0; k < c; ++k) out[k * s] = static_cast<T>(std::exp(static_cast<double>(in[k * s] - mx)) * inv);
    }
  });
}

template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, int64_t n, int64_t c, int64_t s, bool log) {
  parallel_for(n * s, c, [&](int64_t row) {
    const int64_t base = (row / s) * c * s + row % s;
    double acc = 0;
    if (log) {  // dx = dy - softmax * sum(dy)
      for (int64_t k = 0; k < c; ++k) acc += dy[base + k * s];
      for (int64_t k = 0; k < c; ++k)
        dx[base + k * s] = static_cast<T>(dy[base + k * s] - std::exp(static_cast<double>(y[base + k * s])) * acc);
    } else {  // dx = y (dy - sum(dy y))
      for (int64_t k = 0; k < c; ++k) acc += dy[base + k * s] * y[base + k * s];
      for (int64_t k = 0; k < c; ++k) dx[base + k * s] = static_cast<T>(y[base + k * s] * (dy[base + k * s] - acc));
    }
  });
}

template <typename T>
void cross_entropy_forward(const T* logits, const int32_t* labels, const T* weights, int64_t n, int64_t c, int64_t s,
                           int32_t ignore_index, T* log_probs, double* loss_sum, double* weight_sum) {
  softmax_forward(logits, log_probs, n, c, s, /*log=*/true);
  // Serial in a fixed order: the sum is the same for any thread count.
  double loss = 0, wsum = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < s; ++j) {
      const int32_t y = labels[i * s + j];
      if (y == ignore_index) continue;
      const double w = weights ? static_cast<double>(weights[y]) : 1.0;
      loss -= w * log_probs[(i * c + y) * s + j];
      wsum += w;
    }
  *loss_sum = loss;
  *weight_sum = wsum;
}

template <typename T>
void cross_entropy_backward(const T* log_probs, const int32_t* labels, const T* weights, int64_t n, int64_t c,
                            int64_t s, int32_t ignore_index, T scale, T* dlogits) {
  parallel_for(n * s, c, [&](int64_t row) {
    const int64_t i = row / s, j = row % s;
    const int32_t y = labels[row];
    const int64_t base = i * c * s + j;
    if (y == ignore_index) {
      for (int64_t k = 0; k < c; ++k) dlogits[base + k * s] = T(0);
      return;
    }
    const T f = scale * (weights ? weights[y] : T(1));
    for (int64_t k = 0; k < c; ++k) dlogits[base + k * s] = f * std::exp(log_probs[base + k * s]);
    dlogits[base + y * s] -= f;
  });
}

template <typename T>
void concat_channels(const T* const* xs, const int64_t* cs, int count, int64_t n, int64_t s, T* y) {
  int64_t ctot = 0;
  for (int k = 0; k < count; ++k) ctot += cs[k];
  parallel_for(n, ctot * s, [&](int64_t i) {
    T* out = y + i * ctot * s;
    for (int k = 0; k < count; ++k) {
      std::copy(xs[k] + i * cs[k] * s, xs[k] + (i + 1) * cs[k] * s, out);
      out += cs[k] * s;
    }
  });
}

template <typename T>
void split_channels(const T* y, const int64_t* cs, int count, int64_t n, int64_t s, T* const* dxs) {
  int64_t ctot = 0;
  for (int k = 0; k < count; ++k) ctot += cs[k];
  parallel_for(n, ctot * s, [&](int64_t i) {
    const T* in = y + i * ctot * s;
    for (int k = 0; k < count; ++k) {
      if (dxs[k]) std::copy(in, in + cs[k] * s, dxs[k] + i * cs[k] * s);
      in += cs[k] * s;
    }
  });
}

#define DL_INSTANTIATE(T)                                                                                            \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t, bool);                                   \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool);                        \
  template void cross_entropy_forward<T>(const T*, const int32_t*, const T*, int64_t, int64_t, int64_t, int32_t, T*, \
                                         double*, double*);                                                          \
  template void cross_entropy_backward<T>(const T*, const int32_t*, const T*, int64_t, int64_t, int64_t, int32_t, T, \
                                          T*);                                                                       \
  template void concat_channels<T>(const T* const*, const int64_t*, int, int64_t, int64_t, T*);                      \
  template void split_channels<T>(const T*, const int64_t*, int, int64_t, int64_t, T* const*);
DL_INSTANTIATE(float)
DL_INSTANTIATE(double)
#undef DL_INSTANTIATE
// bf16 activations are joined and split as they are (Note [bf16 activations] in ops/precision.cpp).
template void concat_channels<BFloat16>(const BFloat16* const*, const int64_t*, int, int64_t, int64_t, BFloat16*);
template void split_channels<BFloat16>(const BFloat16*, const int64_t*, int, int64_t, int64_t, BFloat16* const*);

}  // namespace dl::cpu
