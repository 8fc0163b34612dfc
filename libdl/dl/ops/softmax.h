// Softmax and log-softmax along dimension 1 (classes) of N x C or N x C x H x W tensors.
#pragma once
#include "dl/core/tensor.h"

namespace dl::ops {

Tensor softmax(const Tensor& x);
Tensor log_softmax(const Tensor& x);

}  // namespace dl::ops
