// Note [caching allocator]: the one bookkeeping behind every device's caching allocator (CpuAllocator in
// core/allocator.cpp, CudaAllocator in backend/cuda/runtime.cpp). Two pools:
// - Small requests (under kLargeMinBytes) are rounded up to the device's size class; a released block goes
//   on its class's free list and serves the next request of that class, so a training loop that makes
//   the same small tensors every step reuses the same blocks without asking the system.
// - Large requests are rounded up to kLargeAlign and served best fit from the free blocks of segments, each
//   segment one block obtained from the system (of the request's size, or what the device rounds it to). A free
//   block larger than the request by kLargeMinBytes or more is split and the rest stays free; a released
//   block merges with free neighbours of its segment. The tensors of a training step peak at different
//   moments (the forward's activations, the backward's gradients, a convolution's staging copies) and
//   come in many sizes: exact-class reuse held the sum of those peaks (829 MiB against 572 in use at the
//   peak of a bf16 DeepLabv3+ step), where splitting and merging let one segment serve them in turn.
// Only a whole free segment goes back to the system (empty_cache, the limit, the retry after an
// out-of-memory): a device's free takes the address the system gave. A source with an arena (the CPU's)
// gives adjacent segments, which link into one run of pieces that merge across segment borders; a free
// piece at the run's end grows in place when a request finds no fit; and any free piece of it can go back. The
// statistics (dl::AllocatorStats), the optional cap on the bytes held and the retry are the same for every device; only
// where segments come from (a BlockSource) and how a request is rounded differ. Thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
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
  // The large pool's segments. A source may serve them from an arena of reserved addresses (Note [host
  // arena] in core/allocator.cpp): then consecutive segments can be adjacent, `extend` grows the arena's
  // last segment in place, and any page-aligned piece of the arena can be given back on its own.
  virtual size_t segment_size(size_t bytes) const { return bytes; }  // for a large request of `bytes`
  virtual void* obtain_segment(size_t bytes) { return obtain(bytes); }
  virtual void give_back_segment(void* block, size_t bytes) noexcept { give_back(block, bytes); }
  // `bytes` more right after `end` (the end of the last segment obtained), or nullptr.
  virtual void* extend(void* /*end*/, size_t /*bytes*/) { return nullptr; }
  virtual bool in_arena(const void* /*p*/) const { return false; }
  // Throws dl::Error for a request that failed again after the cache was given back: `bytes` asked,
  // `size_class` tried, the statistics after emptying the cache and the cached bytes that were freed.
  [[noreturn]] virtual void out_of_memory(size_t bytes, size_t size_class, const AllocatorStats& stats,
                                          int64_t freed) = 0;
};

class BlockCache {
 public:
  static constexpr size_t kLargeMinBytes = size_t{1} << 20;
  static constexpr size_t kLargeAlign = 4096;
  using SizeClass = size_t (*)(size_t bytes);
  BlockCache(BlockSource& source, SizeClass size_class, const char* limit_setter)
      : source_(source), size_class_(size_class), limit_setter_(limit_setter) {}
  ~BlockCache();
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  // Never null for bytes > 0 (throws dl::Error); null for 0 bytes.
  void* allocate(size_t bytes);
  // `bytes` as asked of allocate.
  void release(void* block, size_t bytes);

  AllocatorStats stats() const;
  void reset_peak();
  void empty_cache();
  // Off: every release goes straight back to the source (for leak checkers and sanitizers).
  void set_caching(bool enabled);
  bool caching() const;
  // A cap on the bytes held from the source (in use plus cached); 0: none. An allocation that would go
  // over it first gives the cache back, then throws dl::Error if the bytes in use plus the request still
  // exceed it. Setting a limit below the bytes held gives the cache back.
  void set_limit(int64_t bytes);
  int64_t limit() const;

 private:
  // A piece of a segment; prev and next are its neighbours in the segment (null at the segment's ends).
  struct Block {
    char* ptr;
    size_t size;
    bool free;
    Block* prev;
    Block* next;
  };
  struct BySizeThenAddress {
    bool operator()(const Block* a, const Block* b) const {
      return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
    }
  };

  // Memory of `bytes` from the source (a segment when `segment`), under the limit and with the one retry;
  // counts it reserved.
  void* obtain_locked(size_t bytes, size_t asked, bool segment);
  void* allocate_large_locked(size_t bytes, size_t asked);
  void release_large_locked(Block* b);
  void release_cache_locked();  // gives every cached block and whole free segment back; the caller holds mu_
  void count_in_use(int64_t bytes);

  BlockSource& source_;
  SizeClass size_class_;
  const char* limit_setter_;  // named in the over-the-limit message
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_small_;  // size class -> cached small blocks
  std::set<Block*, BySizeThenAddress> free_large_;   // free pieces of segments, best fit first
  std::unordered_map<void*, Block*> live_large_;     // large blocks in use
  Block* top_ = nullptr;                             // the arena's highest piece, if any
  AllocatorStats stats_;
  bool caching_ = true;
  int64_t limit_ = 0;
};

}  // namespace dl
