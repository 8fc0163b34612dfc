// Pooling-window bounds shared by the CPU backend and the CUDA kernels: the input rows [h0, h1)
// and columns [w0, w1) that output (oh, ow) covers, clipped to the image (padding contributes zeros
// to averages through the fixed divisor, and never wins a max).
#pragma once
#include <cstdint>

#include "dl/ops/params.h"

namespace dl {

struct PoolWindow {
  int64_t h0, h1, w0, w1;
};

DL_HD int64_t clamp_index(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

DL_HD PoolWindow pool_window(const Pool2dGeometry& g, int64_t oh, int64_t ow) {
  const int64_t hs = oh * g.p.stride[0] - g.p.padding[0];
  const int64_t ws = ow * g.p.stride[1] - g.p.padding[1];
  return {clamp_index(hs, 0, g.h), clamp_index(hs + g.p.kernel[0], 0, g.h), clamp_index(ws, 0, g.w),
          clamp_index(ws + g.p.kernel[1], 0, g.w)};
}

}  // namespace dl
