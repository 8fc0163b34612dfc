// Memory of non-CPU devices as the core sees it: allocation from the device's caching allocator,
// copies between devices, fill. Implemented over the CUDA runtime when libdl is built with CUDA;
// otherwise every function throws dl::Error (no CUDA tensor can exist then anyway).
#pragma once
#include <cstddef>
#include <cstdint>

#include "dl/core/device.h"
#include "dl/core/dtype.h"

namespace dl::detail {

void* device_allocate(size_t bytes, Device device);
void device_release(void* ptr, size_t bytes, Device device) noexcept;
// Copies bytes between any two devices; returns when a copy to the host is complete (the caller reads
// it next), while copies to a device are ordered on that device's compute stream.
void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void device_fill(void* ptr, DType dtype, int64_t count, double value, Device device);

}  // namespace dl::detail
