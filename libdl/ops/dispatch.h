// Front-end helpers shared by the ops: argument checks with messages that name the op, the argument,
// what was expected and what came, and dispatch on dtype and device.
#pragma once
#include <initializer_list>
#include <utility>

#include "backend/cuda/cuda_ops.h"
#include "dl/autograd/engine.h"
#include "dl/config.h"
#include "dl/core/precision.h"
#include "dl/core/tensor.h"

// The CUDA body of an op, compiled only when libdl is built with CUDA (the cuda:: functions exist
// then); otherwise a throw, unreachable in practice since no CUDA tensor can be made.
#if DL_WITH_CUDA
#define DL_CUDA_BODY(...) __VA_ARGS__
#else
#define DL_CUDA_BODY(...) ::dl::ops::detail::no_cuda_body()
#endif

namespace dl::ops::detail {

// The precision convolution and linear compute in for `x` (dl/core/precision.h): the thread's autocast
// precision for float32 tensors, resolved for x's device (tf32 is float32 on the CPU); throws, naming
// `op`, where the device cannot (bf16 on a CPU without AVX-512 BF16 or oneDNN, fp16 on the CPU).
Precision math_precision(const Tensor& x, const char* op);

// Note [bf16 activations] (ops/precision.cpp): a bfloat16 tensor on the CPU is an activation stored in bf16.
inline bool is_bf16(const Tensor& t) { return t.defined() && t.dtype() == DType::kBFloat16; }
// t as float32 when it is bfloat16 (a differentiable cast), else t: for an op without a bf16 body.
Tensor float32_of(const Tensor& t);
// y back in bfloat16 (differentiable), for such an op whose output keeps its input's dtype.
Tensor bf16_of(const Tensor& y);

inline void check_defined(const Tensor& t, const char* op, const char* arg) {
  DL_CHECK(t.defined(), op, ": argument '", arg, "' is an undefined tensor");
}

inline void check_float(const Tensor& t, const char* op, const char* arg) {
  check_defined(t, op, arg);
  DL_CHECK(is_floating(t.dtype()), op, ": expected '", arg, "' to be float32 or float64, got ", dtype_name(t.dtype()));
}

inline void check_dim(const Tensor& t, int ndim, const char* op, const char* arg) {
  DL_CHECK(t.dim() == ndim, op, ": expected '", arg, "' to have ", ndim, " dimensions, got shape ", t.shape().str());
}

inline void check_shape(const Tensor& t, const Shape& s, const char* op, const char* arg) {
  DL_CHECK(t.shape() == s, op, ": expected '", arg, "' of shape ", s.str(), ", got ", t.shape().str());
}

// All defined tensors share the first one's dtype and device.
inline void check_same(std::initializer_list<std::pair<const char*, const Tensor*>> args, const char* op) {
  const Tensor* first = nullptr;
  const char* first_name = nullptr;
  for (const auto& [name, t] : args) {
    if (!t->defined()) continue;
    if (!first) {
      first = t;
      first_name = name;
      continue;
    }
    DL_CHECK(t->dtype() == first->dtype(), op, ": '", name, "' is ", dtype_name(t->dtype()), " but '", first_name,
             "' is ", dtype_name(first->dtype()));
    DL_CHECK(t->device() == first->device(), op, ": '", name, "' is on ", t->device().str(), " but '", first_name,
             "' is on ", first->device().str());
  }
}

// Calls f(T{}) with T = float or double per the dtype, for ops with a CPU body only; throws for any
// other device (never a silent fallback).
template <typename F>
decltype(auto) dispatch(const Tensor& t, const char* op, F&& f) {
  DL_CHECK(t.device().is_cpu(), op, ": no body for device ", t.device().str());
  switch (t.dtype()) {
    case DType::kFloat32:
      return f(float{});
    case DType::kFloat64:
      return f(double{});
    default:
      DL_THROW(op, ": expected float32 or float64, got ", dtype_name(t.dtype()));
  }
}

// Note [element-wise formats]: an element-wise op treats every element alike, so it runs over the storage
// order of operands that share one memory format (Note [memory format] in dl/core/tensor.h) and gives its
// output that format: storage(t) is t seen as a contiguous tensor of its storage order, empty_like(t) a new
// tensor in t's format.
inline Tensor storage(const Tensor& t) { return t.defined() ? t.storage_order_view() : t; }
inline Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device(), t.memory_format()); }

[[noreturn]] inline void no_cuda_body() { DL_THROW("libdl was built without its CUDA backend"); }

// Calls cpu(T{}) with T = float or double on the CPU, or cuda(device index) for a float32 tensor on a
// CUDA device (the CUDA backend computes in float32). Never falls back from one device to the other.
template <typename C, typename G>
void dispatch(const Tensor& t, const char* op, C&& cpu, G&& cuda) {
  if (t.device().is_cuda()) {
    DL_CHECK(t.dtype() == DType::kFloat32, op, ": the CUDA backend computes in float32, got ", dtype_name(t.dtype()),
             " on ", t.device().str());
    cuda(t.device().index);
    return;
  }
  dispatch(t, op, std::forward<C>(cpu));
}

// dispatch() that also takes a bfloat16 tensor on the CPU, calling cpu(BFloat16{}): for the ops with bf16
// bodies (Note [bf16 activations] in ops/precision.cpp).
template <typename C, typename G>
void dispatch_with_bf16(const Tensor& t, const char* op, C&& cpu, G&& cuda) {
  if (t.device().is_cpu() && t.dtype() == DType::kBFloat16) {
    cpu(BFloat16{});
    return;
  }
  dispatch(t, op, std::forward<C>(cpu), std::forward<G>(cuda));
}

// float32, float64, or bfloat16 on the CPU.
inline void check_float_or_bf16(const Tensor& t, const char* op, const char* arg) {
  check_defined(t, op, arg);
  DL_CHECK(is_floating(t.dtype()) || (t.dtype() == DType::kBFloat16 && t.device().is_cpu()), op, ": expected '", arg,
           "' to be float32, float64 or (on the CPU) bfloat16, got ", dtype_name(t.dtype()), " on ", t.device().str());
}

// Labels as the int32 that the bodies read: int32 as they are; int64 (PyTorch's label type) converted,
// each value checked to fit (a copy through the host: labels are small beside the images).
inline Tensor int32_labels(const Tensor& labels, const char* op) {
  if (!labels.defined() || labels.dtype() != DType::kInt64) return labels;
  const Tensor host = labels.to(Device::cpu());
  const int64_t* p = host.data<int64_t>();
  for (int64_t i = 0; i < host.numel(); ++i)
    DL_CHECK(p[i] >= INT32_MIN && p[i] <= INT32_MAX, op, ": int64 label ", p[i], " at index ", i,
             " does not fit the int32 that labels are read as");
  return host.to(DType::kInt32).to(labels.device());
}

// Typed pointer or null for an undefined tensor.
template <typename T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <typename T>
T* out_or_null(Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
// A float32 tensor's buffer in its own memory format (channels-last included), for a body that knows it.
inline float* stored_f32(const Tensor& t) {
  return t.defined() ? static_cast<float*>(t.raw_data(t.memory_format())) : nullptr;
}
inline float* f32(Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }
inline const float* f32(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace dl::ops::detail
