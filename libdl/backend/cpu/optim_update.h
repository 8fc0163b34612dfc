// CPU bodies of the fused optimiser updates (see dl/ops/optim_update.h for the formulas).
#pragma once
#include <cstdint>

namespace dl::cpu {
template <typename T>
void sgdm_update(T* w, const T* g, T* v, int64_t n, T lr, T momentum, T l2);
template <typename T>
void adam_update(T* w, const T* g, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T l2, int64_t t);
template <typename T>
void rmsprop_update(T* w, const T* g, T* v, int64_t n, T lr, T decay, T eps, T l2);
}  // namespace dl::cpu
