// Element-wise arithmetic and reductions on floating tensors of equal shape (no broadcasting).
// All return new tensors and record autograd history, except add_ (in place, never recorded).
#pragma once
#include "dl/core/tensor.h"

namespace dl::ops {

Tensor add(const Tensor& a, const Tensor& b);                   // a + b
Tensor sub(const Tensor& a, const Tensor& b);                   // a - b
Tensor mul(const Tensor& a, const Tensor& b);                   // a * b (element-wise)
Tensor scale(const Tensor& a, double s);                        // s * a
void add_(Tensor& dst, const Tensor& src, double alpha = 1.0);  // dst += alpha * src, no history
Tensor sum(const Tensor& a);                                    // shape [1]: the sum of all elements
double squared_norm(const Tensor& a);                           // sum of squares, in double; no history
Tensor mean(const Tensor& a);                                   // shape [1]: the mean of all elements

}  // namespace dl::ops
