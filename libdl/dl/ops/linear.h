// Fully connected layer.
#pragma once
#include "dl/core/tensor.h"

namespace dl::ops {

// x: N x IN, weight: OUT x IN (PyTorch's layout), bias: OUT or undefined; returns N x OUT = x W^T + b.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace dl::ops
