// Activations, element-wise over any shape, float32 or float64 (float32 on CUDA). Each returns a new
// tensor and records its backward, which assigns dx = f'(x) dy.
#pragma once
#include "dl/core/tensor.h"

namespace dl::ops {

// max(x, 0). Backward: dy where y > 0, else 0 (0 at the kink).
Tensor relu(const Tensor& x);
// 1 / (1 + e^-x).
Tensor sigmoid(const Tensor& x);
// tanh x.
Tensor tanh(const Tensor& x);
// x Phi(x) with Phi the standard normal distribution function, in its erf form (PyTorch's default GELU).
Tensor gelu(const Tensor& x);
// x sigmoid(x) (swish).
Tensor silu(const Tensor& x);
// x > 0 ? x : negative_slope x. Backward at 0: negative_slope, as PyTorch.
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
// x > 0 ? x : alpha (e^x - 1). Backward at 0: alpha, as PyTorch.
Tensor elu(const Tensor& x, double alpha = 1.0);

}  // namespace dl::ops
