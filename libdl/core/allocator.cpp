// The CPU caching allocator: the common bookkeeping (Note [caching allocator] in core/block_cache.h)
// over aligned_alloc, with size classes of multiples of 64 bytes below 4 KiB, then quarter powers of two.
#include "dl/core/allocator.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
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

// Blocks from the C library, 64-byte aligned.
class HostBlocks final : public BlockSource {
 public:
  void* obtain(size_t bytes) override { return std::aligned_alloc(CpuAllocator::kAlignment, bytes); }
  void give_back(void* block, size_t) noexcept override { std::free(block); }
  [[noreturn]] void out_of_memory(size_t, size_t size_class, const AllocatorStats& stats, int64_t) override {
    DL_THROW("out of host memory: asked for ", size_class, " bytes; the allocator holds ", stats.current_bytes,
             " bytes in use");
  }
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
