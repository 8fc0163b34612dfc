// Process-wide switches of the GPU arithmetic: TF32 tensor cores for float32 convolution and GEMM, and
// deterministic algorithm choice. Both exist in every build (a build without CUDA just holds the flags)
// and may be changed at any time; an op reads them when it runs, and the cuDNN algorithm cache keys on
// them (Note [cudnn algorithm cache] in backend/cuda/cudnn_conv.cpp), so a change never reuses a choice
// made under the other setting.
//
// Below them, what a user's own CUDA code needs to run beside libdl's (the custom ops of
// dl/ops/custom.h, examples/custom_op): the stream libdl computes on and a device guard. These exist in
// every build too; without CUDA they throw dl::Error saying so.
#pragma once
#include <cstdint>

#include "dl/config.h"

namespace dl::cuda {

// Whether this libdl was built with its CUDA backend (dl/config.h's DL_WITH_CUDA, for `if constexpr`).
// A device may still be missing at run time: dl::cuda_available() (dl/core/device.h) asks both.
inline constexpr bool kBuiltWithCuda = DL_WITH_CUDA != 0;

// TF32 tensor-core math (10-bit mantissa products, float32 accumulation) for float32 convolutions
// (cuDNN) and linear layers (cuBLAS) on GPUs of compute capability 8.0 and newer. On by default, as
// PyTorch does for cuDNN convolutions; DL_ALLOW_TF32=0 in the environment (read at the first use)
// turns it off. It governs Precision::kFp32 only: kTf32 (dl/core/precision.h) uses TF32 whatever this
// says, and kBf16 / kFp16 compute in their own formats.
void set_allow_tf32(bool on);
bool allow_tf32();

// Note [custom kernels on libdl's stream]: every op of libdl on CUDA device `device` runs on one
// stream, that device's compute stream, and a tensor's memory released to the caching allocator is
// handed to the next allocation at once, relying on that stream's order (no synchronisation). A user's
// kernel that reads or writes libdl tensors must therefore be launched on this stream too:
//   my_kernel<<<grid, block, 0, static_cast<cudaStream_t>(dl::cuda::current_stream(x.device().index))>>>(
//       x.data<float>(), y.data<float>(), n);
// On another stream it would race with libdl's own work and with the reuse of freed blocks.
// Tensor::data<T>() of a CUDA tensor is a device pointer (contiguous, row-major, the tensor's dtype),
// valid in kernels queued on this stream for as long as some handle of the tensor lives.
// The handle is a cudaStream_t (typed void* here, so that this header needs no CUDA headers); it is
// created on first use and lives as long as the process. Throws dl::Error when libdl was built without
// CUDA or `device` is not a usable CUDA device.
void* current_stream(int device);

// Makes `device` the calling thread's current CUDA device for the scope and restores the previous one
// (kernel launches and cudaMalloc go to the current device). The CUDA bodies of custom ops run under
// one already (dl/ops/custom.h). Throws dl::Error in a build without CUDA.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// Note [blocking calls]: the number of calls into the CUDA runtime, cuDNN included, that made the calling
// host thread wait for a device (or could have), since the thread started. Counted per host thread, so
// that a test or a profile of one training loop sees its own waits and none of another thread's (the data
// loader's workers, an evaluation running beside it). What counts, each in one place of the backend
// (dl::cuda::blocking in backend/cuda/runtime.h): stream, event and device synchronisation; copies the host
// waits for (every copy to the host, and every copy from pageable host memory onto a device); cudaFree and
// cudaFreeHost, which synchronise implicitly; cuDNN's timed algorithm search (cudnnFind*, once per
// convolution shape). Not counted: cudaMalloc and cudaMallocHost (they wait for no queued work), launches
// and other asynchronous calls, and a staging slot found already copied (only a real wait counts).
// A plain training step on a GPU makes none: the host waits when the Trainer reads its window of losses and
// metrics (Note [deferred scalars] in train/trainer.cpp, with the options that read every step). 0 without CUDA.
uint64_t blocking_calls();

}  // namespace dl::cuda

namespace dl {

// Deterministic algorithms: when on, CUDA convolutions use only cuDNN algorithms whose results are
// bitwise the same from run to run (cudnnDeterminism_t CUDNN_DETERMINISTIC), timed or heuristic search
// alike; a geometry with no such algorithm is an error. Off by default (the fastest algorithm wins,
// some of which accumulate with atomics). The CPU backend is deterministic for a given thread count
// either way.
void set_deterministic(bool on);
bool deterministic();

}  // namespace dl
