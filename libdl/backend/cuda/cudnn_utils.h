// RAII owners of the cuDNN descriptors the backend uses (tensor, filter, convolution, pooling, activation) and
// the helpers that set them for NCHW float32 (or bf16 / half): 4-d tensors, and N x C x S data viewed as N x C x S x 1.
// Every descriptor is created in a constructor that throws dl::Error on failure and destroyed in a destructor that
// never throws; the owners are move-only. Also the checked narrowing of int64 sizes to the int that cuDNN
// and cuBLAS take. Only compiled with CUDA (DL_WITH_CUDA); nothing here is public API.
#pragma once
#include <cudnn.h>

#include <cstdint>
#include <limits>
#include <utility>

#include "backend/cuda/cudnn_loader.h"
#include "backend/cuda/runtime.h"
#include "dl/core/error.h"
#include "dl/core/params.h"

namespace dl::cuda {

// The blend factors of cuDNN's "y = alpha op(x) + beta y" (float32 data takes float scalars, host memory).
inline constexpr float kOne = 1.0f;
inline constexpr float kZero = 0.0f;

// A size for a cuDNN or cuBLAS argument: throws dl::Error naming the value when it does not fit in an int.
inline int to_int(int64_t v, const char* what) {
  DL_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), "CUDA backend: ", what, " = ", v,
           " does not fit in the 32-bit int that cuDNN/cuBLAS take");
  return static_cast<int>(v);
}

// Owns one cuDNN descriptor: created on construction, destroyed on destruction, moved but never copied.
// kCreate and kDestroy name the entry points in the loaded table (cudnn_loader.h).
template <typename T, auto CudnnApi::*kCreate, auto CudnnApi::*kDestroy>
class CudnnDescriptor {
 public:
  CudnnDescriptor() { DL_CUDNN_CHECK((cudnn_api().*kCreate)(&desc_)); }
  ~CudnnDescriptor() { reset(); }
  CudnnDescriptor(CudnnDescriptor&& o) noexcept : desc_(std::exchange(o.desc_, nullptr)) {}
  CudnnDescriptor& operator=(CudnnDescriptor&& o) noexcept {
    if (this != &o) {
      reset();
      desc_ = std::exchange(o.desc_, nullptr);
    }
    return *this;
  }
  CudnnDescriptor(const CudnnDescriptor&) = delete;
  CudnnDescriptor& operator=(const CudnnDescriptor&) = delete;

  T get() const { return desc_; }

 private:
  // Destroying a valid descriptor only frees host memory; its status is dropped because a destructor must not
  // throw (and a moved-from owner holds nothing).
  void reset() noexcept {
    if (desc_ != nullptr) static_cast<void>((cudnn_api().*kDestroy)(desc_));
    desc_ = nullptr;
  }

  T desc_ = nullptr;
};

using TensorDescriptor = CudnnDescriptor<cudnnTensorDescriptor_t, &CudnnApi::cudnnCreateTensorDescriptor,
                                         &CudnnApi::cudnnDestroyTensorDescriptor>;
using FilterDescriptor = CudnnDescriptor<cudnnFilterDescriptor_t, &CudnnApi::cudnnCreateFilterDescriptor,
                                         &CudnnApi::cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor = CudnnDescriptor<cudnnConvolutionDescriptor_t, &CudnnApi::cudnnCreateConvolutionDescriptor,
                                              &CudnnApi::cudnnDestroyConvolutionDescriptor>;
using PoolingDescriptor = CudnnDescriptor<cudnnPoolingDescriptor_t, &CudnnApi::cudnnCreatePoolingDescriptor,
                                          &CudnnApi::cudnnDestroyPoolingDescriptor>;
using ActivationDescriptor = CudnnDescriptor<cudnnActivationDescriptor_t, &CudnnApi::cudnnCreateActivationDescriptor,
                                             &CudnnApi::cudnnDestroyActivationDescriptor>;

// A packed tensor n x c x h x w of float32 (or `type`: the bf16 / half operands of a convolution), NCHW or,
// with `nhwc`, channels-last (Note [memory format] in dl/core/tensor.h): the dimensions are the logical ones
// either way, and cuDNN's tensor-core engines read NHWC without a reorder.
inline TensorDescriptor tensor_4d(int64_t n, int64_t c, int64_t h, int64_t w, bool nhwc,
                                  cudnnDataType_t type = CUDNN_DATA_FLOAT) {
  TensorDescriptor d;
  DL_CUDNN_CHECK(DL_CUDNN(cudnnSetTensor4dDescriptor)(d.get(), nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, type,
                                                      to_int(n, "N"), to_int(c, "C"), to_int(h, "H"), to_int(w, "W")));
  return d;
}
inline TensorDescriptor tensor_nchw(int64_t n, int64_t c, int64_t h, int64_t w,
                                    cudnnDataType_t type = CUDNN_DATA_FLOAT) {
  return tensor_4d(n, c, h, w, false, type);
}

// N x C x S (channels in the middle, S contiguous) as the 4-d tensor N x C x S x 1.
inline TensorDescriptor tensor_ncs(int64_t n, int64_t c, int64_t s) { return tensor_nchw(n, c, s, 1); }

// A packed filter K x C x R x S (C is the input channels per group) of float32 (or `type`), laid out KCRS or,
// with `nhwc`, KRSC (the filter format cuDNN pairs with NHWC tensors).
inline FilterDescriptor filter_4d(int64_t k, int64_t c, int64_t r, int64_t s, bool nhwc,
                                  cudnnDataType_t type = CUDNN_DATA_FLOAT) {
  FilterDescriptor d;
  DL_CUDNN_CHECK(DL_CUDNN(cudnnSetFilter4dDescriptor)(d.get(), type, nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW,
                                                      to_int(k, "K"), to_int(c, "C / groups"), to_int(r, "R"),
                                                      to_int(s, "S")));
  return d;
}
inline FilterDescriptor filter_kcrs(int64_t k, int64_t c, int64_t r, int64_t s,
                                    cudnnDataType_t type = CUDNN_DATA_FLOAT) {
  return filter_4d(k, c, r, s, false, type);
}

// Cross-correlation (what the library calls convolution) with float32 accumulation (also for bf16 / half
// data: cuDNN's PSEUDO_BFLOAT16 and PSEUDO_HALF configurations); stride, padding, dilation and groups are cuDNN's own,
// so no path lowers a dilated or grouped convolution by hand.
inline ConvolutionDescriptor convolution_2d(const Conv2dParams& p, cudnnMathType_t math) {
  ConvolutionDescriptor d;
  DL_CUDNN_CHECK(DL_CUDNN(cudnnSetConvolution2dDescriptor)(d.get(), p.padding[0], p.padding[1], p.stride[0],
                                                           p.stride[1], p.dilation[0], p.dilation[1],
                                                           CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  DL_CUDNN_CHECK(DL_CUDNN(cudnnSetConvolutionGroupCount)(d.get(), p.groups));
  DL_CUDNN_CHECK(DL_CUDNN(cudnnSetConvolutionMathType)(d.get(), math));
  return d;
}

// A 2-D pooling window; NaN propagates through max pooling, as on the CPU.
inline PoolingDescriptor pooling_2d(const Pool2dParams& p, cudnnPoolingMode_t mode) {
  PoolingDescriptor d;
  DL_CUDNN_CHECK(DL_CUDNN(cudnnSetPooling2dDescriptor)(d.get(), mode, CUDNN_PROPAGATE_NAN, p.kernel[0], p.kernel[1],
                                                       p.padding[0], p.padding[1], p.stride[0], p.stride[1]));
  return d;
}

// An activation without a coefficient (ReLU, sigmoid, tanh); NaN propagates.
inline ActivationDescriptor activation(cudnnActivationMode_t mode) {
  ActivationDescriptor d;
  DL_CUDNN_CHECK(DL_CUDNN(cudnnSetActivationDescriptor)(d.get(), mode, CUDNN_PROPAGATE_NAN, /*coef=*/0.0));
  return d;
}

}  // namespace dl::cuda
