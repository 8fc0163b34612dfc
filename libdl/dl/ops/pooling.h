// Pooling over the spatial dimensions of N x C x H x W tensors.
#pragma once
#include "dl/core/params.h"
#include "dl/core/tensor.h"

namespace dl::ops {

// Max over each window (padding never wins). Backward routes dy to the first maximum of each window.
Tensor max_pool2d(const Tensor& x, const Pool2dParams& p = {});
// Mean over each window, padded zeros counted.
Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p = {});
// Mean over H x W: returns N x C x 1 x 1.
Tensor global_avg_pool2d(const Tensor& x);

Pool2dGeometry pool2d_geometry(const Shape& x, const Pool2dParams& p);

}  // namespace dl::ops
