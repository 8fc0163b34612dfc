// The public CUDA access of dl/core/cuda.h (current_stream, DeviceGuard, blocking_calls) in a build without
// the CUDA backend: the first two say so, and no call ever blocks. With CUDA, backend/cuda/runtime.cpp
// defines them.
#include "dl/config.h"
#include "dl/core/cuda.h"
#include "dl/core/error.h"

#if !DL_WITH_CUDA
namespace dl::cuda {

void* current_stream(int device) {
  DL_THROW("dl::cuda::current_stream(", device, "): this libdl was built without CUDA (DL_CUDA=OFF or no nvcc/cuDNN ",
           "found at configure time), so there is no CUDA stream");
}

DeviceGuard::DeviceGuard(int device) {
  DL_THROW("dl::cuda::DeviceGuard(", device, "): this libdl was built without CUDA (DL_CUDA=OFF or no nvcc/cuDNN ",
           "found at configure time)");
}

DeviceGuard::~DeviceGuard() = default;

uint64_t blocking_calls() { return 0; }  // Note [blocking calls]: nothing to wait for

}  // namespace dl::cuda
#endif
