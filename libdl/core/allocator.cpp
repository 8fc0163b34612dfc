// The CPU caching allocator. Blocks are rounded up to a size class (multiples of 64 bytes below
// 4 KiB, then quarter powers of two) and kept on a free list per class when released.
#include "dl/core/allocator.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

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

struct CpuAllocator::Impl {
  mutable std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;
  AllocatorStats stats;
  bool caching = true;
  int64_t limit = 0;  // 0: none

  // Frees every cached block; the caller holds mu.
  void release_cache() {
    for (auto& [c, blocks] : free_blocks)
      for (void* b : blocks) {
        std::free(b);
        stats.reserved_bytes -= static_cast<int64_t>(c);
      }
    free_blocks.clear();
  }
};

CpuAllocator::CpuAllocator() : impl_(new Impl) {
  const char* env = std::getenv("DL_DISABLE_CACHING_ALLOCATOR");
  if (env && env[0] == '1') impl_->caching = false;
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
  const size_t cls = allocation_size_class(bytes);
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto& st = impl_->stats;
  void* p = nullptr;
  auto it = impl_->free_blocks.find(cls);
  if (it != impl_->free_blocks.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    ++st.cache_hits;
  } else {
    const int64_t request = static_cast<int64_t>(cls);
    if (impl_->limit > 0 && st.reserved_bytes + request > impl_->limit) {
      impl_->release_cache();
      DL_CHECK(st.current_bytes + request <= impl_->limit, "out of memory: asked for ", cls,
               " bytes with ", st.current_bytes, " bytes in use, over the limit of ", impl_->limit,
               " bytes (CpuAllocator::set_limit)");
    }
    p = std::aligned_alloc(kAlignment, cls);
    if (!p) {
      // Give the cache back and try once more before reporting.
      impl_->release_cache();
      p = std::aligned_alloc(kAlignment, cls);
    }
    DL_CHECK(p != nullptr, "out of host memory: asked for ", cls, " bytes; the allocator holds ",
             st.current_bytes, " bytes in use");
    st.reserved_bytes += static_cast<int64_t>(cls);
  }
  ++st.alloc_count;
  st.current_bytes += static_cast<int64_t>(cls);
  if (st.current_bytes > st.peak_bytes) st.peak_bytes = st.current_bytes;
  return p;
}

void CpuAllocator::release(void* ptr, size_t bytes) {
  if (!ptr) return;
  const size_t cls = allocation_size_class(bytes);
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->stats.current_bytes -= static_cast<int64_t>(cls);
  if (impl_->caching) {
    impl_->free_blocks[cls].push_back(ptr);
  } else {
    std::free(ptr);
    impl_->stats.reserved_bytes -= static_cast<int64_t>(cls);
  }
}

AllocatorStats CpuAllocator::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

void CpuAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->stats.peak_bytes = impl_->stats.current_bytes;
}

void CpuAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (auto& [cls, blocks] : impl_->free_blocks)
    for (void* b : blocks) {
      std::free(b);
      impl_->stats.reserved_bytes -= static_cast<int64_t>(cls);
    }
  impl_->free_blocks.clear();
}

void CpuAllocator::set_limit(int64_t bytes) {
  DL_CHECK(bytes >= 0, "CpuAllocator::set_limit: expected a byte count >= 0 (0: no limit), got ", bytes);
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->limit = bytes;
}

int64_t CpuAllocator::limit() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->limit;
}

void CpuAllocator::set_caching(bool enabled) {
  if (!enabled) empty_cache();
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->caching = enabled;
}

}  // namespace dl
