// Device memory for the core (see device_memory.h): the bridge from Storage and Tensor copies to the
// CUDA backend's caching allocator and streams.
#include "core/device_memory.h"

#include <vector>

#include "dl/config.h"
#include "dl/core/allocator.h"
#include "dl/core/error.h"
#if DL_WITH_CUDA
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/runtime.h"
#endif

namespace dl {

AllocatorStats allocator_stats(Device device) {
  if (device.is_cpu()) return CpuAllocator::instance().stats();
  check_device_usable(device);
#if DL_WITH_CUDA
  return cuda::CudaAllocator::instance().stats(device.index);
#else
  DL_THROW("unreachable: ", device.str(), " passed check_device_usable without CUDA");
#endif
}

void reset_allocator_peak(Device device) {
  if (device.is_cpu()) return CpuAllocator::instance().reset_peak();
  check_device_usable(device);
#if DL_WITH_CUDA
  cuda::CudaAllocator::instance().reset_peak(device.index);
#endif
}

}  // namespace dl

namespace dl::detail {

#if DL_WITH_CUDA

void* device_allocate(size_t bytes, Device device) {
  return cuda::CudaAllocator::instance().allocate(bytes, device.index);
}

void device_release(void* ptr, size_t bytes, Device device) noexcept {
  try {
    cuda::CudaAllocator::instance().release(ptr, bytes, device.index);
  } catch (...) {
    // A destructor must not throw; the allocator reports CUDA failures at its next checked call.
  }
}

void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device.is_cuda() && dst_device == src_device) {
    cuda::copy_bytes(dst, src, bytes, cudaMemcpyDeviceToDevice, dst_device.index, /*blocking=*/false);
  } else if (dst_device.is_cuda() && src_device.is_cuda()) {
    // Between two GPUs (peer access or staged by the driver): after the work that made `src`, and waited
    // for, since the source block may go back to its device's cache as soon as this returns.
    cuda::synchronize(src_device.index);
    cuda::DeviceGuard guard(dst_device.index);
    const cudaStream_t stream = cuda::compute_stream(dst_device.index);
    DL_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, bytes, stream));
    DL_CUDA_CHECK(cudaStreamSynchronize(stream));
  } else if (dst_device.is_cuda()) {
    // From pageable memory the caller may reuse at once: wait for the copy (Tensor::to, evaluation and
    // checkpoints; the training loop's batches go through DeviceStager's pinned buffers instead).
    cuda::copy_bytes(dst, src, bytes, cudaMemcpyHostToDevice, dst_device.index, /*blocking=*/true);
  } else {
    cuda::copy_bytes(dst, src, bytes, cudaMemcpyDeviceToHost, src_device.index, /*blocking=*/true);
  }
}

void device_fill(void* ptr, DType dtype, int64_t count, double value, Device device) {
  if (count == 0) return;
  if (value == 0.0) {
    cuda::DeviceGuard guard(device.index);
    DL_CUDA_CHECK(
        cudaMemsetAsync(ptr, 0, static_cast<size_t>(count) * dtype_size(dtype), cuda::compute_stream(device.index)));
  } else if (dtype == DType::kFloat32) {
    cuda::fill(device.index, static_cast<float*>(ptr), count, static_cast<float>(value));
  } else {
    // Other dtypes are rare on the device (labels): fill on the host, copy once, wait for it.
    std::vector<unsigned char> host(static_cast<size_t>(count) * dtype_size(dtype));
    for (int64_t i = 0; i < count; ++i) {
      switch (dtype) {
        case DType::kFloat64:
          reinterpret_cast<double*>(host.data())[i] = value;
          break;
        case DType::kInt32:
          reinterpret_cast<int32_t*>(host.data())[i] = static_cast<int32_t>(value);
          break;
        case DType::kUInt8:
          host[i] = static_cast<unsigned char>(value);
          break;
        case DType::kFloat32:
          break;
      }
    }
    cuda::copy_bytes(ptr, host.data(), host.size(), cudaMemcpyHostToDevice, device.index, /*blocking=*/true);
  }
}

#else

void* device_allocate(size_t, Device device) {
  DL_THROW("cannot allocate on ", device.str(), ": libdl was built without its CUDA backend");
}
void device_release(void*, size_t, Device) noexcept {}
void device_copy(void*, Device dst_device, const void*, Device src_device, size_t) {
  DL_THROW("cannot copy from ", src_device.str(), " to ", dst_device.str(), ": libdl was built without CUDA");
}
void device_fill(void*, DType, int64_t, double, Device device) {
  DL_THROW("cannot fill a tensor on ", device.str(), ": libdl was built without its CUDA backend");
}

#endif

}  // namespace dl::detail
