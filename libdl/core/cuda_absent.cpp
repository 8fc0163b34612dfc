// The public CUDA access of dl/core/cuda.h (current_stream, DeviceGuard) in a build without the CUDA
// backend: each says so. With CUDA, backend/cuda/runtime.cpp defines them.
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

}  // namespace dl::cuda
#endif
