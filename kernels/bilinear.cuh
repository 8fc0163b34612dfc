// Source-index math of bilinear resizing with align_corners = false (PyTorch's and MATLAB's
// imresize geometry for 'bilinear' without antialiasing), shared by the CPU backend and the CUDA
// kernels: output pixel o of an axis of out_size samples the input at
// src = (o + 0.5) * in_size / out_size - 0.5, clamped below at 0, between i0 = floor(src) and
// i1 = min(i0 + 1, in_size - 1) with weights (1 - l, l), l = src - i0.
#pragma once
#include <cstdint>

#include "hostdevice.cuh"

namespace dl {

struct LinearTap {
  int64_t i0, i1;
  float l0, l1;  // weights of i0 and i1
};

DL_HD LinearTap bilinear_tap(int64_t o, int64_t in_size, int64_t out_size) {
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  float src = (static_cast<float>(o) + 0.5f) * scale - 0.5f;
  if (src < 0.f) src = 0.f;
  int64_t i0 = static_cast<int64_t>(src);
  if (i0 > in_size - 1) i0 = in_size - 1;
  const int64_t i1 = i0 + 1 < in_size ? i0 + 1 : in_size - 1;
  const float l1 = src - static_cast<float>(i0);
  return {i0, i1, 1.f - l1, l1};
}

}  // namespace dl
