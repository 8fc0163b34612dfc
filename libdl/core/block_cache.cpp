// The caching allocators' bookkeeping (Note [caching allocator] in core/block_cache.h).
#include "core/block_cache.h"

#include "dl/core/error.h"

namespace dl {

void* BlockCache::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t cls = size_class_(bytes);
  int64_t request = static_cast<int64_t>(cls);
  std::lock_guard<std::mutex> lock(mu_);
  void* p = nullptr;
  auto it = free_blocks_.find(cls);
  if ((it == free_blocks_.end() || it->second.empty()) && caching_ && cls >= kBorrowMinBytes) {
    // The smallest larger class with a free block, if it is not too large (Note [caching allocator]).
    it = free_blocks_.upper_bound(cls);
    while (it != free_blocks_.end() && it->second.empty()) ++it;
    if (it != free_blocks_.end() && static_cast<double>(it->first) > kBorrowMaxRatio * static_cast<double>(cls))
      it = free_blocks_.end();
  }
  if (it != free_blocks_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    if (it->first != cls) {
      borrowed_.emplace(p, it->first);
      request = static_cast<int64_t>(it->first);
    }
    ++stats_.cache_hits;
  } else {
    if (limit_ > 0 && stats_.reserved_bytes + request > limit_) {
      release_cache_locked();
      DL_CHECK(stats_.current_bytes + request <= limit_, "out of memory: asked for ", cls, " bytes with ",
               stats_.current_bytes, " bytes in use, over the limit of ", limit_, " bytes (", limit_setter_, ")");
    }
    p = source_.obtain(cls);
    if (!p) {
      // Give the cache back and try once more before reporting.
      const int64_t cached = stats_.reserved_bytes - stats_.current_bytes;
      release_cache_locked();
      p = source_.obtain(cls);
      if (!p) source_.out_of_memory(bytes, cls, stats_, cached);
    }
    stats_.reserved_bytes += request;
  }
  ++stats_.alloc_count;
  stats_.current_bytes += request;
  if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
  return p;
}

void BlockCache::release(void* block, size_t bytes) {
  if (!block) return;
  size_t cls = size_class_(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (cls >= kBorrowMinBytes && !borrowed_.empty()) {
    if (auto b = borrowed_.find(block); b != borrowed_.end()) {
      cls = b->second;
      borrowed_.erase(b);
    }
  }
  stats_.current_bytes -= static_cast<int64_t>(cls);
  if (caching_) {
    free_blocks_[cls].push_back(block);
    return;
  }
  source_.give_back(block, cls);
  stats_.reserved_bytes -= static_cast<int64_t>(cls);
}

void BlockCache::release_cache_locked() {
  for (auto& [cls, blocks] : free_blocks_)
    for (void* b : blocks) {
      source_.give_back(b, cls);
      stats_.reserved_bytes -= static_cast<int64_t>(cls);
    }
  free_blocks_.clear();
}

AllocatorStats BlockCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void BlockCache::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_bytes = stats_.current_bytes;
}

void BlockCache::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cache_locked();
}

void BlockCache::set_caching(bool enabled) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!enabled) release_cache_locked();
  caching_ = enabled;
}

bool BlockCache::caching() const {
  std::lock_guard<std::mutex> lock(mu_);
  return caching_;
}

void BlockCache::set_limit(int64_t bytes) {
  DL_CHECK(bytes >= 0, limit_setter_, ": expected a byte count >= 0 (0: no limit), got ", bytes);
  std::lock_guard<std::mutex> lock(mu_);
  limit_ = bytes;
}

int64_t BlockCache::limit() const {
  std::lock_guard<std::mutex> lock(mu_);
  return limit_;
}

}  // namespace dl
