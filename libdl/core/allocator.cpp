// The CPU caching allocator: the common bookkeeping (Note [caching allocator] in core/block_cache.h)
// over aligned_alloc, with size classes of multiples of 64 bytes below 4 KiB, then quarter powers of two
// (a large request's segment: the pieces split from it are whole pages).
#include "dl/core/allocator.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>

#include "core/block_cache.h"
#include "dl/core/error.h"

namespace dl {

size_t allocation_size_class(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= 4096) return (bytes + 63) / 64 * 64;
  // No machine has 2^60 bytes: such a request is served (refused) as it is, never rounded past 2^64.
  if (bytes > (size_t{1} << 60)) return bytes;
  // Four classes per power of two: at most 25% slack.
  const size_t p = std::bit_ceil((bytes + 1) / 2);  // the power of two with p < bytes <= 2p
  const size_t step = std::max<size_t>(p, 4096) / 4;
  return (bytes + step - 1) / step * step;
}

int64_t host_memory_bytes() {
  static const int64_t bytes = [] {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : int64_t{0};
  }();
  return bytes;
}

// Note [host arena]: the large pool's segments come from one range of reserved addresses (an anonymous
// mapping with no swap reserved: the kernel backs a page when it is first touched), handed out in
// address order. Consecutive segments are adjacent, so the block cache links them into one run whose
// free pieces merge across segment borders, as a heap's do, and a free piece at the run's end grows in
// place (Note [caching allocator] in core/block_cache.h). A piece given back returns its pages to the
// kernel (MADV_DONTNEED) and leaves a hole in the range, except at the range's end, where the next segment
// takes its addresses again. Where the range cannot be mapped, or once it is used up, segments come from
// the C library like the small blocks; so they do under AddressSanitizer, whose guard zones around each
// of the library's blocks would not lie between two adjacent pieces.
class HostArena {
 public:
  HostArena() {
#if defined(__SANITIZE_ADDRESS__)
    return;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)  // clang before 2025 does not define __SANITIZE_ADDRESS__
    return;
#endif
#endif
    const int64_t machine = host_memory_bytes();
    // Twice the machine's memory (at least 16 GiB, at most 1 TiB) of addresses: holes may be left behind.
    size_t want =
        std::clamp<size_t>(machine > 0 ? 2 * static_cast<size_t>(machine) : 0, size_t{16} << 30, size_t{1} << 40);
    // Under a cap on the address space (ulimit -v) at most a quarter of it, so that the rest of the process
    // keeps room; no arena when that is under 1 GiB.
    rlimit as{};
    if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
      want = std::min<size_t>(want, static_cast<size_t>(as.rlim_cur) / 4);
      if (want < (size_t{1} << 30)) return;
    }
    void* p = ::mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
      base_ = static_cast<char*>(p);
      end_ = base_ + want;
      next_ = base_;
    }
  }
  bool contains(const void* p) const { return base_ && p >= base_ && p < end_; }
  // `bytes` (whole pages) at the range's next address, or nullptr when it is used up.
  void* take(size_t bytes) {
    if (!base_ || bytes > static_cast<size_t>(end_ - next_)) return nullptr;
    char* p = next_;
    next_ += bytes;
    return p;
  }
  void* extend(void* end, size_t bytes) { return end == next_ ? take(bytes) : nullptr; }
  void give_back(void* block, size_t bytes) noexcept {
    auto* p = static_cast<char*>(block);
    // The whole system pages inside the piece go back (reading them again gives zeros). Pieces are 4 KiB
    // aligned; where pages are larger (16 or 64 KiB kernels) a page shared with a neighbour stays.
    static const auto page = static_cast<uintptr_t>(std::max(4096L, ::sysconf(_SC_PAGESIZE)));
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + bytes) / page * page;
    if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
    if (p + bytes == next_) next_ = p;
  }

 private:
  char* base_ = nullptr;
  char* end_ = nullptr;
  char* next_ = nullptr;
};

// Blocks from the C library, 64-byte aligned; the large pool's segments from the arena.
class HostBlocks final : public BlockSource {
 public:
  void* obtain(size_t bytes) override { return std::aligned_alloc(CpuAllocator::kAlignment, bytes); }
  void give_back(void* block, size_t) noexcept override { std::free(block); }
  void* obtain_segment(size_t bytes) override {
    if (void* p = arena_.take(bytes)) return p;
    return obtain(bytes);
  }
  void give_back_segment(void* block, size_t bytes) noexcept override {
    if (arena_.contains(block))
      arena_.give_back(block, bytes);
    else
      give_back(block, bytes);
  }
  void* extend(void* end, size_t bytes) override { return arena_.extend(end, bytes); }
  bool in_arena(const void* p) const override { return arena_.contains(p); }
  [[noreturn]] void out_of_memory(size_t, size_t size_class, const AllocatorStats& stats, int64_t) override {
    DL_THROW("out of host memory: asked for ", size_class, " bytes; the allocator holds ", stats.current_bytes,
             " bytes in use");
  }

 private:
  HostArena arena_;
};

struct CpuAllocator::Impl {
  HostBlocks source;
  BlockCache cache{source, allocation_size_class, "CpuAllocator::set_limit"};
};

CpuAllocator::CpuAllocator() : impl_(new Impl) {
  const char* env = std::getenv("DL_DISABLE_CACHING_ALLOCATOR");
  if (env && env[0] == '1') impl_->cache.set_caching(false);
}

CpuAllocator& CpuAllocator::instance() {
  static CpuAllocator* allocator = new CpuAllocator();  // never destroyed: tensors may outlive main
  return *allocator;
}

void* CpuAllocator::allocate(size_t bytes) {
  // A request beyond the machine fails at once, with the size asked (never a minutes-long attempt).
  const int64_t machine = host_memory_bytes();
  DL_CHECK(machine <= 0 || bytes <= static_cast<size_t>(machine), "out of host memory: asked for ", bytes,
           " bytes, more than this machine's ", machine, " bytes of memory");
  return impl_->cache.allocate(bytes == 0 ? 1 : bytes);  // a real block even for nothing: never null
}

void CpuAllocator::release(void* ptr, size_t bytes) { impl_->cache.release(ptr, bytes == 0 ? 1 : bytes); }
AllocatorStats CpuAllocator::stats() const { return impl_->cache.stats(); }
void CpuAllocator::reset_peak() { impl_->cache.reset_peak(); }
void CpuAllocator::empty_cache() { impl_->cache.empty_cache(); }
void CpuAllocator::set_limit(int64_t bytes) { impl_->cache.set_limit(bytes); }
int64_t CpuAllocator::limit() const { return impl_->cache.limit(); }
void CpuAllocator::set_caching(bool enabled) { impl_->cache.set_caching(enabled); }

}  // namespace dl
