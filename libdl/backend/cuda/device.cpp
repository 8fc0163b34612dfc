// The CUDA device as the core sees it (Note [device interface] in core/device_backend.h): storage from
// the caching allocator, copies, fill, gradient accumulation, statistics, synchronisation and the
// staging of host batches through page-locked buffers. Registered at static initialisation; the
// linker keeps this file in any program that links libdl (dl_cuda_backend_anchor, libdl/CMakeLists.txt).
#include <cuda_runtime_api.h>

#include <cstring>
#include <type_traits>
#include <vector>

#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/runtime.h"
#include "core/device_backend.h"

namespace dl::cuda {
namespace {

// One slot of the uploader: page-locked buffers for the tensors of a batch and the event of their copies.
struct UploadSlot {
  std::vector<PinnedBuffer> pinned;
  cudaEvent_t copied = nullptr;
};

class CudaUploader final : public DeviceUploader {
 public:
  CudaUploader(int device, int slots) : device_(device), slots_(static_cast<size_t>(slots)) {
    DeviceGuard guard(device_);
    for (UploadSlot& s : slots_) DL_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
  }
  ~CudaUploader() override {
    for (UploadSlot& s : slots_) {
      if (!s.copied) continue;
      // The pinned buffers, and the device blocks of batches never taken, must outlive their copies.
      static_cast<void>(blocking("cudaEventSynchronize (a staging slot's copies, at the end)",
                                 [&] { return cudaEventSynchronize(s.copied); }));
      static_cast<void>(cudaEventDestroy(s.copied));
    }
  }

  std::vector<Tensor> upload(int slot, const std::vector<Tensor>& host) override {
    UploadSlot& s = at(slot);
    wait_for_copies(s);
    if (s.pinned.size() < host.size()) s.pinned.resize(host.size());
    std::vector<Tensor> out;
    for (size_t i = 0; i < host.size(); ++i) {
      const Tensor& t = host[i];
      if (!t.defined()) {
        out.push_back(t);
        continue;
      }
      DL_CHECK(t.device().is_cpu(), "DeviceStager: expected a CPU tensor, got one on ", t.device().str());
      const size_t bytes = t.nbytes();
      if (s.pinned[i].bytes() < bytes) s.pinned[i] = PinnedBuffer(bytes);
      if (bytes > 0) std::memcpy(s.pinned[i].get(), t.raw_data(), bytes);
      Tensor d = Tensor::empty(t.shape(), t.dtype(), Device::cuda(device_));
      copy_to_device_async(d.raw_data(), s.pinned[i].get(), bytes, device_, s.copied);  // `copied` covers them all
      out.push_back(std::move(d));
    }
    return out;
  }

  void wait(int slot) override { compute_wait(device_, at(slot).copied); }

 private:
  // The slot's last copies were queued `slots` batches ago, behind the compute work queued then, and are
  // normally long finished: asked first, so that only a real wait is a blocking call (Note [blocking
  // calls]). One comes when the host runs more than `slots` batches ahead of the device, and is what
  // holds it there: the pinned buffers are about to be overwritten.
  static void wait_for_copies(const UploadSlot& s) {
    const cudaError_t done = cudaEventQuery(s.copied);
    if (done == cudaSuccess) return;
    if (done != cudaErrorNotReady) throw_cuda_error(done, "cudaEventQuery(s.copied)", __FILE__, __LINE__);
    static_cast<void>(cudaGetLastError());  // not an error: not ready yet
    DL_CUDA_CHECK(blocking("cudaEventSynchronize (a staging slot still copying: the host is ahead of the device)",
                           [&] { return cudaEventSynchronize(s.copied); }));
  }

  UploadSlot& at(int slot) {
    DL_CHECK(slot >= 0 && static_cast<size_t>(slot) < slots_.size(), "DeviceUploader: no slot ", slot, " of ",
             slots_.size());
    return slots_[static_cast<size_t>(slot)];
  }
  int device_;
  std::vector<UploadSlot> slots_;
};

class CudaDevice final : public DeviceBackend {
 public:
  int device_count(std::string& why) override {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      // Without a driver or device (cudaErrorInsufficientDriver, 35, on machines with no GPU) any error
      // here means "no CUDA device".
      static_cast<void>(cudaGetLastError());
      why = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(err) + " (error " +
            std::to_string(static_cast<int>(err)) + ")";
      return 0;
    }
    if (count == 0) why = "the CUDA runtime reports no devices";
    return count;
  }

  void* allocate(size_t bytes, int index) override { return CudaAllocator::instance().allocate(bytes, index); }

  void release(void* ptr, size_t bytes, int index) noexcept override {
    try {
      CudaAllocator::instance().release(ptr, bytes, index);
    } catch (...) {
      // A destructor must not throw; the allocator reports CUDA failures at its next checked call.
    }
  }

  void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) override {
    if (bytes == 0) return;
    if (dst_device.is_cuda() && dst_device == src_device) {
      copy_bytes(dst, src, bytes, cudaMemcpyDeviceToDevice, dst_device.index, /*wait=*/false);
    } else if (dst_device.is_cuda() && src_device.is_cuda()) {
      // Between two GPUs (peer access or staged by the driver): after the work that made `src`, and waited
      // for, since the source block may go back to its device's cache as soon as this returns.
      cuda::synchronize(src_device.index);
      DeviceGuard guard(dst_device.index);
      const cudaStream_t stream = compute_stream(dst_device.index);
      DL_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, bytes, stream));
      DL_CUDA_CHECK(
          blocking("cudaStreamSynchronize (a copy between two GPUs)", [&] { return cudaStreamSynchronize(stream); }));
    } else if (dst_device.is_cuda()) {
      // From pageable memory the caller may reuse at once: wait for the copy (Tensor::to, evaluation and
      // checkpoints; the training loop's batches go through the uploader's pinned buffers instead).
      copy_bytes(dst, src, bytes, cudaMemcpyHostToDevice, dst_device.index, /*wait=*/true);
    } else {
      copy_bytes(dst, src, bytes, cudaMemcpyDeviceToHost, src_device.index, /*wait=*/true);
    }
  }

  void fill(void* ptr, DType dtype, int64_t count, double value, int index) override {
    if (count == 0) return;
    if (value == 0.0) {
      DeviceGuard guard(index);
      DL_CUDA_CHECK(cudaMemsetAsync(ptr, 0, static_cast<size_t>(count) * dtype_size(dtype), compute_stream(index)));
      return;
    }
    if (dtype == DType::kFloat32) return cuda::fill(index, static_cast<float*>(ptr), count, static_cast<float>(value));
    // Other dtypes are rare on the device (labels): fill on the host, copy once, wait for it.
    std::vector<unsigned char> host(static_cast<size_t>(count) * dtype_size(dtype));
    auto fill_host = [&](auto* p) {
      for (int64_t i = 0; i < count; ++i) p[i] = static_cast<std::remove_pointer_t<decltype(p)>>(value);
    };
    switch (dtype) {
      case DType::kFloat64:
        fill_host(reinterpret_cast<double*>(host.data()));
        break;
      case DType::kInt32:
        fill_host(reinterpret_cast<int32_t*>(host.data()));
        break;
      case DType::kUInt8:
        fill_host(host.data());
        break;
      case DType::kInt64:
        fill_host(reinterpret_cast<int64_t*>(host.data()));
        break;
      case DType::kBool:
        fill_host(reinterpret_cast<bool*>(host.data()));
        break;
      case DType::kBFloat16:
        fill_host(reinterpret_cast<BFloat16*>(host.data()));
        break;
      case DType::kFloat16:
        fill_host(reinterpret_cast<Float16*>(host.data()));
        break;
      default:
        DL_THROW("fill on cuda:", index, ": unexpected dtype ", dtype_name(dtype));
    }
    copy_bytes(ptr, host.data(), host.size(), cudaMemcpyHostToDevice, index, /*wait=*/true);
  }

  void accumulate(void* dst, const void* src, DType dtype, int64_t count, int index) override {
    DL_CHECK(dtype == DType::kFloat32, "gradient accumulation on cuda:", index,
             ": the CUDA backend computes in float32, got ", dtype_name(dtype));
    axpy_acc(index, 1.f, static_cast<const float*>(src), static_cast<float*>(dst), count);
  }

  bool convert(const void* src, DType from, void* dst, DType to, int64_t count, int index) override {
    const auto format = [](DType t) { return t == DType::kBFloat16 ? Precision::kBf16 : Precision::kFp16; };
    if (from == DType::kFloat32 && is_float16(to)) {
      cuda::cast_to_16(index, format(to), static_cast<const float*>(src), static_cast<uint16_t*>(dst), count);
      return true;
    }
    if (is_float16(from) && to == DType::kFloat32) {
      cuda::cast_from_16(index, format(from), static_cast<const uint16_t*>(src), static_cast<float*>(dst), count);
      return true;
    }
    return false;
  }

  AllocatorStats allocator_stats(int index) override { return CudaAllocator::instance().stats(index); }
  void reset_allocator_peak(int index) override { CudaAllocator::instance().reset_peak(index); }
  void synchronize(int index) override { cuda::synchronize(index); }
  std::unique_ptr<DeviceUploader> make_uploader(int index, int slots) override {
    return std::make_unique<CudaUploader>(index, slots);
  }
};

CudaDevice g_device;
const bool g_registered = (register_device_backend(DeviceType::kCUDA, g_device), true);

}  // namespace
}  // namespace dl::cuda

// Named on the link line of every program that links libdl (libdl/CMakeLists.txt), so that the linker
// keeps this file, and with it the registration above, even from a static library.
extern "C" void dl_cuda_backend_anchor() {}
