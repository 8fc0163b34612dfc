// Bilinear resizing of the spatial dimensions of N x C x H x W tensors (align_corners = false).
#pragma once
#include <cstdint>

#include "dl/core/tensor.h"

namespace dl::ops {

// Returns N x C x out_h x out_w. Backward scatters each output gradient to its four taps.
Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace dl::ops
