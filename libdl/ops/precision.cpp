// The precision an op computes in, resolved from the thread's autocast setting and the tensor's device.
#include "backend/cpu/conv2d_onednn.h"
#include "dl/ops/conv2d.h"
#include "ops/dispatch.h"

namespace dl::ops::detail {

Precision math_precision(const Tensor& x, const char* op) {
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
