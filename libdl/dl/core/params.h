// Typed parameter structs of the op families and the output-size math derived from them, shared by
// the front ends, both backends, the backward functions and the tests (core, so that the backends
// below the ops layer see them).
#pragma once
#include <array>
#include <cstdint>

#include "dl/core/precision.h"

namespace dl {

// 2-D convolution: stride, zero padding and dilation per axis (h, w); groups split the channels.
struct Conv2dParams {
  std::array<int, 2> stride{1, 1};
  std::array<int, 2> padding{0, 0};
  std::array<int, 2> dilation{1, 1};
  int groups = 1;
};

// 2-D pooling window: kernel, stride and zero padding per axis (h, w). Average pooling counts the
// padded zeros in the divisor (PyTorch's count_include_pad, MATLAB's default).
struct Pool2dParams {
  std::array<int, 2> kernel{2, 2};
  std::array<int, 2> stride{2, 2};
  std::array<int, 2> padding{0, 0};
};

// Output extent of a sliding window: floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1, or 0 when
// the dilated window does not fit in the padded input at all.
inline int64_t window_output_size(int64_t in, int k, int stride, int pad, int dilation) {
  const int64_t span = in + 2 * pad - static_cast<int64_t>(dilation) * (k - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

// Everything a convolution kernel needs to know, resolved once by the front end.
struct Conv2dGeometry {
  int64_t n, c, h, w;  // input  N x C x H x W
  int64_t k, r, s;     // weight K x (C / groups) x R x S
  int64_t ho, wo;      // output N x K x Ho x Wo
  Conv2dParams p;
  // What the operands are rounded to: the autocast precision the front end resolved for the device (kFp32,
  // kTf32 on CUDA; kBf16; kFp16 on CUDA). float64 is always kFp32.
  Precision math = Precision::kFp32;
  // The storage of x (and dx) and of y (and dy) when not float32: bfloat16 activations on the CPU (Note
  // [bf16 activations] in ops/precision.cpp). Only the oneDNN engine reads and writes them.
  bool x_bf16 = false;
  bool y_bf16 = false;
  // x and y (dx and dy) lie channels-last, NHWC (Note [memory format] in dl/core/tensor.h); the weight is
  // always K x C/groups x R x S.
  bool channels_last = false;
  // y = max(0, conv(x) + bias): the ReLU applied in the convolution's own output pass (oneDNN's eltwise post-op;
  // the im2col path's bias loop). The backward gets dy already masked by y > 0 from the front end.
  bool relu = false;
  int64_t c_per_group() const { return c / p.groups; }
  int64_t k_per_group() const { return k / p.groups; }
};

// How float32 convolutions run on the CPU: kAuto (oneDNN's direct kernels when libdl was built
// with oneDNN and a group has at least 8 input channels, im2col + GEMM otherwise: Note [conv
// engines] in backend/cpu/conv2d.cpp), or one engine always.
// The environment variable DL_CPU_CONV=auto|im2col|onednn sets the initial choice.
enum class CpuConvEngine { kAuto, kIm2col, kOneDnn };

struct Pool2dGeometry {
  int64_t n, c, h, w, ho, wo;
  Pool2dParams p;
  bool channels_last = false;  // x and y (dx and dy) lie NHWC: the cuDNN body's descriptors say so
};

}  // namespace dl
