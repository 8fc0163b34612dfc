// CPU bodies of the fused optimiser updates.
#include "backend/cpu/optim_update.h"

#include <cmath>

#include "backend/cpu/parallel.h"

namespace dl::cpu {

template <typename T>
void sgdm_update(T* w, const T* g, T* v, int64_t n, T lr, T momentum, T l2) {
  parallel_for(n, 4, [&](int64_t i) {
    const T gi = g[i] + l2 * w[i];
    v[i] = momentum * v[i] - lr * gi;
    w[i] += v[i];
  });
}

template <typename T>
void adam_update(T* w, const T* g, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T l2, int64_t t) {
  const T c1 = T(1) - static_cast<T>(std::pow(static_cast<double>(beta1), static_cast<double>(t)));
  const T c2 = T(1) - static_cast<T>(std::pow(static_cast<double>(beta2), static_cast<double>(t)));
  parallel_for(n, 8, [&](int64_t i) {
    const T gi = g[i] + l2 * w[i];
    m[i] = beta1 * m[i] + (T(1) - beta1) * gi;
    v[i] = beta2 * v[i] + (T(1) - beta2) * gi * gi;
    w[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
  });
}

template <typename T>
void rmsprop_update(T* w, const T* g, T* v, int64_t n, T lr, T decay, T eps, T l2) {
  parallel_for(n, 8, [&](int64_t i) {
    const T gi = g[i] + l2 * w[i];
    v[i] = decay * v[i] + (T(1) - decay) * gi * gi;
    w[i] -= lr * gi / (std::sqrt(v[i]) + eps);
  });
}

#define DL_INSTANTIATE(T)                                                              \
  template void sgdm_update<T>(T*, const T*, T*, int64_t, T, T, T);                    \
  template void adam_update<T>(T*, const T*, T*, T*, int64_t, T, T, T, T, T, int64_t); \
  template void rmsprop_update<T>(T*, const T*, T*, int64_t, T, T, T, T);
DL_INSTANTIATE(float)
DL_INSTANTIATE(double)
#undef DL_INSTANTIATE

}  // namespace dl::cpu
