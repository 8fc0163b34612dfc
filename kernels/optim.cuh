// Fused optimiser updates, one pass over the parameters (formulas of dl/ops/optim_update.h, the same
// arithmetic as the CPU backend). Adam's bias corrections c1 = 1 - beta1^t, c2 = 1 - beta2^t are
// computed once on the host in double, as the CPU does.
#pragma once
#include <cmath>

#include "compat.cuh"
#include "elementwise.cuh"

namespace dl::kern::inline DL_KERN_ABI {

template <typename T>
DL_GLOBAL void sgdm_kernel(T* w, const T* g, T* v, int64_t n, T lr, T momentum, T l2) {
  DL_GRID_STRIDE_LOOP(i, n) {
    const T gi = g[i] + l2 * w[i];
    v[i] = momentum * v[i] - lr * gi;
    w[i] += v[i];
  }
}

template <typename T>
DL_GLOBAL void adam_kernel(T* w, const T* g, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T l2, T c1, T c2) {
  DL_GRID_STRIDE_LOOP(i, n) {
    const T gi = g[i] + l2 * w[i];
    m[i] = beta1 * m[i] + (T(1) - beta1) * gi;
    v[i] = beta2 * v[i] + (T(1) - beta2) * gi * gi;
    w[i] -= lr * (m[i] / c1) / (sqrt(v[i] / c2) + eps);
  }
}

template <typename T>
DL_GLOBAL void rmsprop_kernel(T* w, const T* g, T* v, int64_t n, T lr, T decay, T eps, T l2) {
  DL_GRID_STRIDE_LOOP(i, n) {
    const T gi = g[i] + l2 * w[i];
    v[i] = decay * v[i] + (T(1) - decay) * gi * gi;
    w[i] -= lr * gi / (sqrt(v[i]) + eps);
  }
}

// ---- launch sequences (Note [launchers]) ----
template <typename L, typename T>
void run_sgdm(L& l, T* w, const T* g, T* v, int64_t n, T lr, T momentum, T l2) {
  launch_1d(l, sgdm_kernel<T>, n, w, g, v, n, lr, momentum, l2);
}

template <typename L, typename T>
void run_adam(L& l, T* w, const T* g, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T l2, int64_t t) {
  const T c1 = T(1) - static_cast<T>(std::pow(static_cast<double>(beta1), static_cast<double>(t)));
  const T c2 = T(1) - static_cast<T>(std::pow(static_cast<double>(beta2), static_cast<double>(t)));
  launch_1d(l, adam_kernel<T>, n, w, g, m, v, n, lr, beta1, beta2, eps, l2, c1, c2);
}

template <typename L, typename T>
void run_rmsprop(L& l, T* w, const T* g, T* v, int64_t n, T lr, T decay, T eps, T l2) {
  launch_1d(l, rmsprop_kernel<T>, n, w, g, v, n, lr, decay, eps, l2);
}

}  // namespace dl::kern::inline DL_KERN_ABI
