// Shape manipulation with autograd: reshape/flatten (views) and concatenation along channels.
#pragma once
#include <vector>

#include "dl/core/tensor.h"

namespace dl::ops {

Tensor reshape(const Tensor& x, const Shape& shape);  // shares storage with x
Tensor flatten(const Tensor& x);                      // N x ... -> N x (product of the rest)
// Concatenates along dimension 1; every other dimension must agree.
Tensor concat(const std::vector<Tensor>& xs);

}  // namespace dl::ops
