// Note [caching allocator]: the one bookkeeping behind every device's caching allocator (CpuAllocator in
// core/allocator.cpp, CudaAllocator in backend/cuda/runtime.cpp). Requests are rounded up to a size
// class; a released block goes on its class's free list and serves the next request of that class, so a
// training loop that makes the same tensors every step reuses the same blocks without asking the system.
// The statistics (dl::AllocatorStats), the optional cap on the bytes held, the emptying of the cache and
// the one retry after an out-of-memory are the same for every device; only where blocks come from (a
// BlockSource) and how a request is rounded differ. Thread-safe.
// A large request (kBorrowMinBytes and up) with no free block of its own class borrows the smallest
// cached block of a larger class up to kBorrowMaxRatio times its size rather than asking the system for
// more: the classes of a training step peak at different moments (the forward's activations, the
// backward's gradients, the staging copies of a convolution), and exact-class reuse alone would hold
// the sum of those peaks. A borrowed block goes back to its own class.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "dl/core/allocator.h"

namespace dl {

// Where one device's blocks come from and go back to.
class BlockSource {
 public:
  virtual ~BlockSource() = default;
  // A block of `bytes` bytes (a size class), or nullptr when the device is out of memory; throws dl::Error
  // for any other failure.
  virtual void* obtain(size_t bytes) = 0;
  virtual void give_back(void* block, size_t bytes) noexcept = 0;
  // Throws dl::Error for a request that failed again after the cache was given back: `bytes` asked,
  // `size_class` tried, the statistics after emptying the cache and the cached bytes that were freed.
  [[noreturn]] virtual void out_of_memory(size_t bytes, size_t size_class, const AllocatorStats& stats,
                                          int64_t freed) = 0;
};

class BlockCache {
 public:
  static constexpr size_t kBorrowMinBytes = size_t{1} << 20;
  static constexpr double kBorrowMaxRatio = 1.5;
  using SizeClass = size_t (*)(size_t bytes);
  BlockCache(BlockSource& source, SizeClass size_class, const char* limit_setter)
      : source_(source), size_class_(size_class), limit_setter_(limit_setter) {}
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  // Never null for bytes > 0 (throws dl::Error); null for 0 bytes.
  void* allocate(size_t bytes);
  void release(void* block, size_t bytes);

  AllocatorStats stats() const;
  void reset_peak();
  void empty_cache();
  // Off: every release goes straight back to the source (for leak checkers and sanitizers).
  void set_caching(bool enabled);
  bool caching() const;
  // A cap on the bytes held from the source (in use plus cached); 0: none. An allocation that would go
  // over it first gives the cache back, then throws dl::Error if the bytes in use plus the request still
  // exceed it.
  void set_limit(int64_t bytes);
  int64_t limit() const;

 private:
  void release_cache_locked();  // gives every cached block back; the caller holds mu_

  BlockSource& source_;
  SizeClass size_class_;
  const char* limit_setter_;  // named in the over-the-limit message
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_blocks_;  // size class -> cached blocks
  std::unordered_map<void*, size_t> borrowed_;        // blocks in use lent from a larger class -> that class
  AllocatorStats stats_;
  bool caching_ = true;
  int64_t limit_ = 0;
};

}  // namespace dl
