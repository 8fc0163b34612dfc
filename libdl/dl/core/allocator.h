// The CPU caching allocator: 64-byte-aligned blocks (Eigen::Aligned64), kept in per-size free lists
// when released so that a training loop reuses the same blocks every step. Thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>

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

 private:
  CpuAllocator();
  struct Impl;
  Impl* impl_;
};

// Rounds a request up to the size class the allocator serves it from.
size_t allocation_size_class(size_t bytes);

}  // namespace dl
