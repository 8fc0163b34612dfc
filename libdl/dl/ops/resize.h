// Resizing the spatial dimensions of N x C x H x W tensors: bilinear (align_corners = false) and
// nearest-neighbour upsampling by integer factors.
#pragma once
#include <cstdint>

#include "dl/core/tensor.h"

namespace dl::ops {

// Returns N x C x out_h x out_w. Backward scatters each output gradient to its four taps.
Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w);
// Returns N x C x (H scale_h) x (W scale_w), each input pixel repeated over a scale_h x scale_w block
// (PyTorch's nearest mode at integer factors). Any dtype; the backward sums each block.
Tensor upsample_nearest2d(const Tensor& x, int scale_h, int scale_w);

}  // namespace dl::ops
