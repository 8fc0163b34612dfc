// Fused, in-place parameter updates (one pass over w, g and the moments), the bodies behind the
// optimisers. L2 regularisation is folded in: g' = g + l2 w. No autograd history.
#pragma once
#include <cstdint>

#include "dl/core/tensor.h"

namespace dl::ops {

// MATLAB's SGDM: v = momentum v - lr g'; w += v.
void sgdm_update_(Tensor& w, const Tensor& g, Tensor& v, double lr, double momentum, double l2);

// Adam with bias correction at step t >= 1: m = b1 m + (1 - b1) g'; v = b2 v + (1 - b2) g'^2;
// w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
void adam_update_(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, double lr, double beta1, double beta2, double eps,
                  double l2, int64_t t);

// RMSProp: v = decay v + (1 - decay) g'^2; w -= lr g' / (sqrt(v) + eps).
void rmsprop_update_(Tensor& w, const Tensor& g, Tensor& v, double lr, double decay, double eps, double l2);

}  // namespace dl::ops
