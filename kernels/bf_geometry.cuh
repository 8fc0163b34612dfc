// The matching distance of the boundary F1 score (Note [BF score] in dl/metrics/segmentation.h):
// theta = 0.75% of the image diagonal, as MATLAB's bfscore has it. Shared by the CPU metric and the
// CUDA kernels of bf_score.cuh, so that both match pixels at exactly the same distances.
#pragma once
#include <cmath>
#include <cstdint>

#include "hostdevice.cuh"

namespace dl {

// theta^2 for an h x w image.
DL_HD double bf_theta_squared(int64_t h, int64_t w) {
  const double theta = 0.0075 * sqrt(static_cast<double>(h * h + w * w));
  return theta * theta;
}

}  // namespace dl
