// Layer and group normalisation, written with the broadcasting ops (dl/ops/elementwise.h), so they run
// and differentiate on both devices as those do. Statistics use the biased variance, as PyTorch.
#pragma once
#include <cstdint>

#include "dl/core/tensor.h"

namespace dl::ops {

// Normalises x over its last `normalized_dims` dimensions: (x - mean) / sqrt(var + eps), then
// * weight + bias when given (both of the shape of those dimensions; undefined: none).
Tensor layer_norm(const Tensor& x, int normalized_dims, const Tensor& weight = {}, const Tensor& bias = {},
                  double eps = 1e-5);

// x: N x C x ... with C divisible by `groups`; normalises each group of C / groups channels (over them and
// all the dimensions after C), then * weight + bias per channel (both C, or undefined).
Tensor group_norm(const Tensor& x, int groups, const Tensor& weight = {}, const Tensor& bias = {}, double eps = 1e-5);

}  // namespace dl::ops
