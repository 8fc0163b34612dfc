// The operands of a convolution or GEMM computed in bf16 or fp16 (the precision policy,
// dl/core/precision.h) while the tensors stay float32: inputs are copied, rounded to nearest even, into
// 16-bit scratch (kernels/cast.cuh), the result lands in 16-bit scratch and is cast back into the float32
// output. For float32 math (kFp32, kTf32) the same objects hand the float32 pointers straight through, so
// the callers have one code path. Scratch comes from the caching allocator and goes back, in stream
// order, when the object goes out of scope. Only compiled with CUDA (DL_WITH_CUDA); not public API.
#pragma once
#include <cstdint>

#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/runtime.h"
#include "dl/core/error.h"
#include "dl/core/precision.h"

namespace dl::cuda {

inline bool is_16bit(Precision math) { return math == Precision::kBf16 || math == Precision::kFp16; }

// Throws dl::Error, naming `op`, when the device cannot compute in `math`: bf16 needs compute
// capability 8.0 (Ampere) or newer. (fp16 runs on every GPU that CUDA 12 and 13 support.)
inline void check_math_supported(const DeviceContext& ctx, Precision math, const char* op) {
  DL_CHECK(math != Precision::kBf16 || ctx.props.major >= 8, op, ": bf16 on cuda:", ctx.device,
           " needs a GPU of compute capability 8.0 (Ampere) or newer; this one (", ctx.props.name, ") is ",
           ctx.props.major, ".", ctx.props.minor, ": use fp16 or fp32 there");
}

// The float32 input p (count elements, may be null: not needed) as an operand in `math`.
class MathInput {
 public:
  MathInput(int device, Precision math, const float* p, int64_t count) : p_(p) {
    if (p == nullptr || !is_16bit(math) || count <= 0) return;
    copy_ = DeviceBuffer(static_cast<size_t>(count) * sizeof(uint16_t), device);
    cast_to_16(device, math, p, copy_.as<uint16_t>(), count);
  }
  // p itself (float32 math) or its bf16 / half copy.
  const void* get() const { return copy_.get() != nullptr ? copy_.get() : static_cast<const void*>(p_); }

 private:
  const float* p_;
  DeviceBuffer copy_;
};

// The float32 output p (count elements) of a computation in `math`: the computation writes get(), then
// finish() queues the cast of the 16-bit result into p (nothing to do for float32 math).
class MathOutput {
 public:
  MathOutput(int device, Precision math, float* p, int64_t count) : device_(device), math_(math), p_(p), count_(count) {
    if (p != nullptr && is_16bit(math) && count > 0)
      scratch_ = DeviceBuffer(static_cast<size_t>(count) * sizeof(uint16_t), device);
  }
  void* get() const { return scratch_.get() != nullptr ? scratch_.get() : static_cast<void*>(p_); }
  void finish() {
    if (scratch_.get() != nullptr) cast_from_16(device_, math_, scratch_.as<uint16_t>(), p_, count_);
  }

 private:
  int device_;
  Precision math_;
  float* p_;
  int64_t count_;
  DeviceBuffer scratch_;
};

}  // namespace dl::cuda
