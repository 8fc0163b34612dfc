// Weight initialisers. fan_in = C_in R S for a convolution weight K x C_in x R x S (IN for linear),
// fan_out = K R S (OUT for linear).
#pragma once
#include "dl/core/rng.h"
#include "dl/core/tensor.h"

namespace dl::nn::init {

int64_t fan_in(const Tensor& w);
int64_t fan_out(const Tensor& w);
// N(0, 2 / fan_in): He et al. for ReLU networks.
void he_normal_(Tensor& w, Generator& gen = default_generator());
// U(-a, a), a = sqrt(6 / (fan_in + fan_out)): Glorot and Bengio (MATLAB's default).
void glorot_uniform_(Tensor& w, Generator& gen = default_generator());

}  // namespace dl::nn::init
