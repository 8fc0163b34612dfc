// Activations.
#pragma once
#include "dl/core/tensor.h"

namespace dl::ops {

// max(x, 0) element-wise, any shape. Backward: dy where y > 0, else 0 (0 at the kink).
Tensor relu(const Tensor& x);

}  // namespace dl::ops
