// Batch normalisation over N, H, W per channel of an N x C x H x W (or N x C) tensor.
#pragma once
#include <functional>

#include "dl/core/tensor.h"

namespace dl::ops {

struct BatchNormOptions {
  bool training = true;   // batch statistics (and update the running ones) or the running ones
  double momentum = 0.1;  // running = (1 - momentum) running + momentum batch (PyTorch's convention)
  double eps = 1e-5;
  bool relu = false;  // y = max(0, batch_norm(x)) in one op (Note [batch norm + ReLU] in ops/batch_norm.cpp)
  // Note [synchronised batch norm]: when set (data-parallel training), training uses the statistics of
  // every process's batch together. `sync` sums a float64 tensor over the processes in place (an
  // all-reduce); every process calls it in the forward (the sums of x, x² and the count, per channel)
  // and in the backward (the sums of dy and dy x̂). The gradients of gamma and beta stay this process's
  // own (the data-parallel average adds them up). On CUDA (float32) it is composed of the backend's
  // batch-norm calls, with C values per channel crossing to the host and back twice per pass.
  std::function<void(Tensor&)> sync{};
};

// gamma, beta, running_mean, running_var: C. In training the running statistics are updated in place
// (the variance unbiased, N H W / (N H W - 1)); they are never part of the graph.
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                  const BatchNormOptions& opt);

}  // namespace dl::ops
