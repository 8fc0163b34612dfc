// The precision an op computes in, resolved from the thread's autocast setting and the tensor's device.
#include "backend/cpu/conv2d_onednn.h"
#include "ops/dispatch.h"

namespace dl::ops::detail {

Precision math_precision(const Tensor& x, const char* op) {
  if (x.dtype() != DType::kFloat32) return Precision::kFp32;
  const Precision p = autocast_precision();
  if (!x.device().is_cpu()) return p;
  switch (p) {
    case Precision::kFp32:
    case Precision::kTf32:  // TF32 is a tensor-core format: float32 on the CPU
      return Precision::kFp32;
    case Precision::kBf16:
      DL_CHECK(cpu::onednn_bf16_available(), op, ": bf16 on the CPU needs ",
               cpu::onednn_available() ? "a CPU with AVX-512 BF16 (this one has not)"
                                       : "libdl built with oneDNN (this build has not: install libdnnl-dev)",
               "; use fp32 here");
      return Precision::kBf16;
    case Precision::kFp16:
      DL_THROW(op, ": fp16 runs on a GPU only; on the CPU use bf16 (AVX-512 BF16) or fp32");
  }
  DL_THROW(op, ": unknown precision ", static_cast<int>(p));
}

}  // namespace dl::ops::detail
