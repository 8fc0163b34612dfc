// Note [device interface]: the core layer knows a device other than the host only through the
// DeviceBackend its backend registers (backend/cuda/device.cpp for CUDA): storage, copies, fill,
// gradient accumulation, the caching allocator's statistics, synchronisation and the staging of host
// batches. Core never includes a backend; a build without a backend for a device type has nothing
// registered for it, and asking for such a device says so (check_device_usable).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dl/core/allocator.h"
#include "dl/core/device.h"
#include "dl/core/dtype.h"
#include "dl/core/tensor.h"

namespace dl {

// Copies sets of host tensors to a device while the device computes: `slots` sets of page-locked
// buffers, used in turn, each with the event of its last copies.
class DeviceUploader {
 public:
  virtual ~DeviceUploader() = default;  // waits for the copies in flight
  // Queues the copies of `host` (CPU tensors; undefined ones pass through) through slot `slot`, after
  // that slot's previous copies have finished; returns the tensors on the device.
  virtual std::vector<Tensor> upload(int slot, const std::vector<Tensor>& host) = 0;
  // Work queued on the device after this call runs after slot `slot`'s copies (no host wait).
  virtual void wait(int slot) = 0;
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  // The devices of this type on the machine; when there are none, `why` says why.
  virtual int device_count(std::string& why) = 0;
  virtual void* allocate(size_t bytes, int index) = 0;
  virtual void release(void* ptr, size_t bytes, int index) noexcept = 0;
  // Copies bytes between this backend's devices, or between one of them and the host. Returns when a
  // copy to the host is complete; copies to a device are ordered on its compute stream.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) = 0;
  virtual void fill(void* ptr, DType dtype, int64_t count, double value, int index) = 0;
  // dst += src, element-wise over `count` floating-point values (gradient accumulation).
  virtual void accumulate(void* dst, const void* src, DType dtype, int64_t count, int index) = 0;
  // dst = src converted from `from` to `to`, `count` elements on the device, ordered on its compute
  // stream; returns false (doing nothing) for a pair it has no kernel for, which Tensor::to then
  // converts through the host.
  virtual bool convert(const void* src, DType from, void* dst, DType to, int64_t count, int index) = 0;
  virtual AllocatorStats allocator_stats(int index) = 0;
  virtual void reset_allocator_peak(int index) = 0;
  // Returns when the work queued on the device so far has finished.
  virtual void synchronize(int index) = 0;
  virtual std::unique_ptr<DeviceUploader> make_uploader(int index, int slots) = 0;
};

// Called once per device type by its backend, at static initialisation.
void register_device_backend(DeviceType type, DeviceBackend& backend);
// The backend of a usable non-CPU device; throws dl::Error saying why the device cannot be used.
DeviceBackend& device_backend(Device device);

}  // namespace dl
