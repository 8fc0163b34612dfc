// The precision policy: in what precision convolution and linear compute while master weights,
// optimiser state, batch-norm statistics, losses, reductions and metrics stay float32. Under bf16 on the
// CPU the activations are stored in bfloat16: a convolution writes bf16, batch norm and ReLU read and
// write it, and the ops without a bf16 body compute in float32 between casts (Note [bf16 activations]
// in ops/precision.cpp). On CUDA the activations stay float32.
//   fp32  float32; on a GPU TF32 tensor cores are allowed for convolution and GEMM while
//         dl::cuda::allow_tf32() (on by default, as in PyTorch)
//   tf32  TF32 tensor cores on a GPU whatever the switch says; float32 on the CPU (no TF32 there)
//   bf16  bfloat16 operands with float32 accumulation: oneDNN's AVX-512 BF16 kernels on the CPU (an
//         error on a CPU without them), BF16 tensor cores on a GPU
//   fp16  half operands with float32 accumulation on a GPU, with dynamic loss scaling in the Trainer;
//         an error on the CPU
// The precision is a per-thread setting that ops read when they run forward (dl::Autocast below, or
// TrainingOptions::precision in the Trainer); their backward runs in the precision of their forward.
// Only float32 tensors are affected: float64 (gradient checks) always computes in float64.
#pragma once
#include <array>
#include <cstdint>
#include <string_view>
#include <utility>

namespace dl {

enum class Precision : uint8_t { kFp32, kTf32, kBf16, kFp16 };

inline constexpr std::array<std::pair<Precision, std::string_view>, 4> kPrecisionNames = {
    {{Precision::kFp32, "fp32"}, {Precision::kTf32, "tf32"}, {Precision::kBf16, "bf16"}, {Precision::kFp16, "fp16"}}};

std::string_view precision_name(Precision p);
// "fp32", "tf32", "bf16" or "fp16"; throws dl::Error naming the choices and what came.
Precision parse_precision(std::string_view text);

// The precision ops of this thread compute in (kFp32 outside any Autocast).
Precision autocast_precision();

// Sets this thread's precision for its lifetime and restores the previous one after; nests.
//   { dl::Autocast bf16(dl::Precision::kBf16); loss = loss_fn(model(x), y); }  loss.backward();
class Autocast {
 public:
  explicit Autocast(Precision p);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  Precision previous_;
};

}  // namespace dl
