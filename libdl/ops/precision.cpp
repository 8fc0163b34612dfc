// The precision an op computes in, resolved from the thread's autocast setting and the tensor's device.
#include "backend/cpu/conv2d_onednn.h"
#include "dl/ops/conv2d.h"
#include "dl/ops/shape_ops.h"
#include "ops/dispatch.h"

namespace dl::ops::detail {

// Note [bf16 activations]: under bf16 on the CPU, activations are stored in bfloat16, as PyTorch's autocast
// stores them: half the memory of float32 for what the backward keeps, half the traffic of the memory-bound
// ops between convolutions. The rule:
// - conv2d (and conv2d_relu) under bf16 on the CPU writes a bfloat16 y, whether x is float32 (the image) or
//   bfloat16; a bfloat16 x computes in bf16 whatever the autocast setting. The weight, the bias and their
//   gradients stay float32 (master weights); dx comes back in x's dtype, dy in y's.
// - Batch norm (NCHW and NHWC, its fused ReLU included), ReLU, max pooling, concatenation and the sum or
//   difference of two bf16 tensors of one shape and format (the residual connection) read and write
//   bfloat16 natively (Note [bf16 storage in the CPU kernels] in backend/cpu/storage.h), batch norm
//   computing and keeping its statistics in float32.
// - Every other op given a bfloat16 tensor computes in float32 through a differentiable cast (float32_of):
//   the other element-wise ops, dropout, average pooling and resizing give bfloat16 back (bf16_of)
//   when all their tensor operands are bf16; the reductions, softmax, the losses, the metrics, linear and
//   the rest give float32, as autocast's float32 ops do.
// - On CUDA activations stay float32 (the convolution converts its operands in and out, Note [convolution
//   math] in backend/cuda/cudnn_conv.cpp).
Tensor float32_of(const Tensor& t) { return is_bf16(t) ? to_dtype(t, DType::kFloat32) : t; }
Tensor bf16_of(const Tensor& y) { return to_dtype(y, DType::kBFloat16); }

Precision math_precision(const Tensor& x, const char* op) {
  if (x.dtype() == DType::kBFloat16 && x.device().is_cpu()) {
    check_precision_usable(Precision::kBf16, x.device(), op);
    return Precision::kBf16;
  }
  if (x.dtype() != DType::kFloat32) return Precision::kFp32;
  const Precision p = autocast_precision();
  if (!x.device().is_cpu()) return p;
  check_precision_usable(p, x.device(), op);
  return p == Precision::kTf32 ? Precision::kFp32 : p;  // TF32 is a tensor-core format: float32 on the CPU
}

}  // namespace dl::ops::detail

namespace dl {

void check_precision_usable(Precision p, Device device, const char* who) {
  (void)precision_name(p);  // a value outside the enum is refused
  if (!device.is_cpu()) return;
  DL_CHECK(p != Precision::kFp16, who, ": fp16 runs on a GPU only; on the CPU use bf16 (AVX-512 BF16) or fp32");
  DL_CHECK(p != Precision::kBf16 || cpu::onednn_bf16_available(), who, ": bf16 on the CPU needs ",
           cpu::onednn_available() ? "a CPU with AVX-512 BF16, and this one has not"
                                   : "libdl built with oneDNN (libdnnl-dev), and this build has not",
           "; use fp32 here");
}

}  // namespace dl
