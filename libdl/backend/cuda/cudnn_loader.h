// cuDNN, opened on first use as cuBLAS is (cublas_loader.h): libdl does not link libcudnn, so that a
// program that uses libdl on the CPU alone needs no CUDA library at all, neither to link nor to run
// (README "Build options": the package of a CUDA build serves CPU-only machines). The first CUDA
// context opens libcudnn.so.<major of the headers> and takes the entry points listed here; every call
// site names one through DL_CUDNN(name), which reads the loaded table.
#pragma once
#include <cudnn.h>

// Every cuDNN function libdl calls. Adding a call: its name here, DL_CUDNN(name)(...) at the call site.
#define DL_CUDNN_FUNCTIONS(X)                       \
  X(cudnnActivationBackward)                        \
  X(cudnnActivationForward)                         \
  X(cudnnAddTensor)                                 \
  X(cudnnBatchNormalizationBackward)                \
  X(cudnnBatchNormalizationForwardInference)        \
  X(cudnnBatchNormalizationForwardTraining)         \
  X(cudnnConvolutionBackwardBias)                   \
  X(cudnnConvolutionBackwardData)                   \
  X(cudnnConvolutionBackwardFilter)                 \
  X(cudnnConvolutionBiasActivationForward)          \
  X(cudnnConvolutionForward)                        \
  X(cudnnCreate)                                    \
  X(cudnnCreateActivationDescriptor)                \
  X(cudnnCreateConvolutionDescriptor)               \
  X(cudnnCreateFilterDescriptor)                    \
  X(cudnnCreatePoolingDescriptor)                   \
  X(cudnnCreateTensorDescriptor)                    \
  X(cudnnDestroyActivationDescriptor)               \
  X(cudnnDestroyConvolutionDescriptor)              \
  X(cudnnDestroyFilterDescriptor)                   \
  X(cudnnDestroyPoolingDescriptor)                  \
  X(cudnnDestroyTensorDescriptor)                   \
  X(cudnnFindConvolutionBackwardDataAlgorithmEx)    \
  X(cudnnFindConvolutionBackwardFilterAlgorithmEx)  \
  X(cudnnFindConvolutionForwardAlgorithmEx)         \
  X(cudnnGetConvolutionBackwardDataAlgorithm_v7)    \
  X(cudnnGetConvolutionBackwardDataWorkspaceSize)   \
  X(cudnnGetConvolutionBackwardFilterAlgorithm_v7)  \
  X(cudnnGetConvolutionBackwardFilterWorkspaceSize) \
  X(cudnnGetConvolutionForwardAlgorithm_v7)         \
  X(cudnnGetConvolutionForwardWorkspaceSize)        \
  X(cudnnGetCudartVersion)                          \
  X(cudnnGetErrorString)                            \
  X(cudnnGetLastErrorString)                        \
  X(cudnnGetVersion)                                \
  X(cudnnPoolingBackward)                           \
  X(cudnnPoolingForward)                            \
  X(cudnnSetActivationDescriptor)                   \
  X(cudnnSetConvolution2dDescriptor)                \
  X(cudnnSetConvolutionGroupCount)                  \
  X(cudnnSetConvolutionMathType)                    \
  X(cudnnSetFilter4dDescriptor)                     \
  X(cudnnSetPooling2dDescriptor)                    \
  X(cudnnSetStream)                                 \
  X(cudnnSetTensor4dDescriptor)                     \
  X(cudnnSoftmaxBackward)                           \
  X(cudnnSoftmaxForward)

namespace dl::cuda {

// cuDNN 9 marks the fused convolution + bias + activation deprecated in favour of its graph API and
// still serves it: its type is taken here without the warning.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
struct CudnnApi {
#define DL_CUDNN_MEMBER(name) decltype(&::name) name = nullptr;
  DL_CUDNN_FUNCTIONS(DL_CUDNN_MEMBER)
#undef DL_CUDNN_MEMBER
};
#pragma GCC diagnostic pop

// The loaded table; the first call opens the library. Throws dl::Error naming the file, the loader's
// message and what to install when it cannot be opened or lacks an entry point.
const CudnnApi& cudnn_api();

}  // namespace dl::cuda

// A cuDNN function through the loaded table: DL_CUDNN(cudnnCreate)(&handle).
#define DL_CUDNN(name) (::dl::cuda::cudnn_api().name)
