// The CPU caching allocator: 64-byte-aligned blocks (Eigen::Aligned64), kept when released so that a
// training loop reuses the same memory every step: small blocks in per-size free lists, large ones as
// pieces of segments that split and merge (Note [caching allocator] in core/block_cache.h). Thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "dl/core/device.h"
#include "dl/core/error.h"

namespace dl {

struct AllocatorStats {
  int64_t current_bytes = 0;   // bytes handed out and not yet released
  int64_t peak_bytes = 0;      // maximum of current_bytes since the last reset_peak()
  int64_t reserved_bytes = 0;  // bytes held from the system: handed out plus cached
  int64_t alloc_count = 0;     // allocations served
  int64_t cache_hits = 0;      // allocations served from the cache
};

class CpuAllocator {
 public:
  static constexpr size_t kAlignment = 64;
  static CpuAllocator& instance();

  // Returns a block of at least `bytes` bytes aligned to kAlignment; never null (throws dl::Error).
  void* allocate(size_t bytes);
  void release(void* ptr, size_t bytes);

  AllocatorStats stats() const;
  void reset_peak();
  // Returns every cached block to the system.
  void empty_cache();
  // With caching off, every release goes straight back to the system (for leak checkers).
  void set_caching(bool enabled);
  // A cap on the bytes held from the system (reserved_bytes: in use plus cached), like a device's
  // memory size: an allocation that would take reserved_bytes over it first gives the cache back,
  // then throws dl::Error "out of memory: ... limit ..." if the bytes in use plus the request still
  // exceed it. 0 (the default) means no limit. Setting it below reserved_bytes gives the cache back;
  // below what is in use, it frees nothing more.
  void set_limit(int64_t bytes);
  int64_t limit() const;

 private:
  CpuAllocator();
  struct Impl;
  Impl* impl_;
};

// Rounds a request up to the size class the allocator serves it from.
size_t allocation_size_class(size_t bytes);
// The machine's physical memory in bytes (0 when the system does not say).
int64_t host_memory_bytes();

// A standard allocator over CpuAllocator, for the buffers of readers and data sets (decoded images,
// IDX contents): they count in the allocator's statistics and under its limit like tensors do.
template <typename T>
struct HostAllocator {
  using value_type = T;
  HostAllocator() = default;
  template <typename U>
  HostAllocator(const HostAllocator<U>&) {}
  T* allocate(size_t n) {
    DL_CHECK(n <= static_cast<size_t>(-1) / sizeof(T), "out of host memory: asked for ", n, " elements of ", sizeof(T),
             " bytes");
    return static_cast<T*>(CpuAllocator::instance().allocate(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) { CpuAllocator::instance().release(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const HostAllocator<U>&) const {
    return true;
  }
};
template <typename T>
using HostVector = std::vector<T, HostAllocator<T>>;

// The caching allocator of any device: the CPU allocator above for the CPU, the CUDA caching allocator
// for a GPU (its blocks, not the driver's or cuDNN's own memory). Throws dl::Error for a device this
// build or machine cannot use.
AllocatorStats allocator_stats(Device device);
void reset_allocator_peak(Device device);

}  // namespace dl
