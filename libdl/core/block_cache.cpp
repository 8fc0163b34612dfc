// The caching allocators' bookkeeping (Note [caching allocator] in core/block_cache.h).
#include "core/block_cache.h"

#include <algorithm>

#include "dl/core/error.h"

namespace dl {

BlockCache::~BlockCache() {
  // Never reached for the process-wide allocators (they outlive every tensor); a local cache frees its nodes.
  for (Block* b : free_large_) delete b;
  for (auto& [p, b] : live_large_) delete b;
}

void BlockCache::count_in_use(int64_t bytes) {
  ++stats_.alloc_count;
  stats_.current_bytes += bytes;
  if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
}

void* BlockCache::obtain_locked(size_t bytes, size_t asked, bool segment) {
  const auto request = static_cast<int64_t>(bytes);
  if (limit_ > 0 && stats_.reserved_bytes + request > limit_) {
    release_cache_locked();
    // What is held after that (in use, and free pieces of segments in use, which only a device's whole
    // segments cannot give back) plus the request must fit.
    DL_CHECK(stats_.reserved_bytes + request <= limit_, "out of memory: asked for ", bytes, " bytes with ",
             stats_.current_bytes, " bytes in use and ", stats_.reserved_bytes, " held, over the limit of ", limit_,
             " bytes (", limit_setter_, ")");
  }
  auto get = [&] { return segment ? source_.obtain_segment(bytes) : source_.obtain(bytes); };
  void* p = get();
  if (!p) {
    // Give the cache back and try once more before reporting.
    const int64_t cached = stats_.reserved_bytes - stats_.current_bytes;
    release_cache_locked();
    p = get();
    if (!p) source_.out_of_memory(asked, bytes, stats_, cached);
  }
  stats_.reserved_bytes += request;
  return p;
}

void* BlockCache::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  if (!caching_) {  // one block of the system per request, given back on release
    const size_t cls = size_class_(bytes);
    void* p = obtain_locked(cls, bytes, false);
    count_in_use(static_cast<int64_t>(cls));
    return p;
  }
  if (bytes >= kLargeMinBytes) return allocate_large_locked(bytes, bytes);
  const size_t cls = size_class_(bytes);
  auto it = free_small_.find(cls);
  void* p = nullptr;
  if (it != free_small_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    ++stats_.cache_hits;
  } else {
    p = obtain_locked(cls, bytes, false);
  }
  count_in_use(static_cast<int64_t>(cls));
  return p;
}

void* BlockCache::allocate_large_locked(size_t bytes, size_t asked) {
  // No machine has 2^60 bytes: such a request goes to the source as it is (and is refused there).
  const size_t size = bytes > (size_t{1} << 60) ? bytes : (bytes + kLargeAlign - 1) / kLargeAlign * kLargeAlign;
  Block key{nullptr, size, true, nullptr, nullptr};
  Block* b = nullptr;
  if (auto it = free_large_.lower_bound(&key); it != free_large_.end()) {  // the best fit
    b = *it;
    free_large_.erase(it);
    ++stats_.cache_hits;
  } else if (top_ && top_->free &&
             (limit_ == 0 || stats_.reserved_bytes + static_cast<int64_t>(size - top_->size) <= limit_) &&
             source_.extend(top_->ptr + top_->size, size - top_->size)) {
    // The arena's last piece is free but too small: it grows by what it lacks.
    stats_.reserved_bytes += static_cast<int64_t>(size - top_->size);
    free_large_.erase(top_);
    top_->size = size;
    b = top_;
  } else {
    const size_t segment = std::max(size, source_.segment_size(size));
    b = new Block{static_cast<char*>(obtain_locked(segment, asked, true)), segment, true, nullptr, nullptr};
    if (source_.in_arena(b->ptr)) {
      if (top_ && top_->ptr + top_->size == b->ptr) {  // adjacent to the arena's last piece: one run
        b->prev = top_;
        top_->next = b;
      }
      if (!top_ || b->ptr > top_->ptr) top_ = b;
    }
  }
  if (b->size - size >= kLargeMinBytes) {  // split: the rest stays free
    auto* rest = new Block{b->ptr + size, b->size - size, true, b, b->next};
    if (b->next) b->next->prev = rest;
    b->next = rest;
    b->size = size;
    if (top_ == b) top_ = rest;
    free_large_.insert(rest);
  }
  b->free = false;
  live_large_.emplace(b->ptr, b);
  count_in_use(static_cast<int64_t>(b->size));
  return b->ptr;
}

void BlockCache::release(void* block, size_t bytes) {
  if (!block) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (bytes >= kLargeMinBytes) {
    if (auto it = live_large_.find(block); it != live_large_.end()) {
      Block* b = it->second;
      live_large_.erase(it);
      stats_.current_bytes -= static_cast<int64_t>(b->size);
      release_large_locked(b);
      return;
    }
  }
  // A small block, or one obtained with caching off.
  const size_t cls = size_class_(bytes);
  stats_.current_bytes -= static_cast<int64_t>(cls);
  if (caching_ && bytes < kLargeMinBytes) {
    free_small_[cls].push_back(block);
    return;
  }
  source_.give_back(block, cls);
  stats_.reserved_bytes -= static_cast<int64_t>(cls);
}

void BlockCache::release_large_locked(Block* b) {
  b->free = true;
  // Merge with free neighbours: the lower piece takes over the bytes of the higher.
  auto absorb = [this](Block* lo, Block* hi) {
    lo->size += hi->size;
    lo->next = hi->next;
    if (hi->next) hi->next->prev = lo;
    if (top_ == hi) top_ = lo;
    delete hi;
  };
  if (Block* n = b->next; n && n->free) {
    free_large_.erase(n);
    absorb(b, n);
  }
  if (Block* p = b->prev; p && p->free) {
    free_large_.erase(p);
    absorb(p, b);
    b = p;
  }
  free_large_.insert(b);
  if (!caching_) release_cache_locked();  // caching was turned off while this block was in use
}

void BlockCache::release_cache_locked() {
  for (auto& [cls, blocks] : free_small_)
    for (void* b : blocks) {
      source_.give_back(b, cls);
      stats_.reserved_bytes -= static_cast<int64_t>(cls);
    }
  free_small_.clear();
  for (auto it = free_large_.begin(); it != free_large_.end();) {
    Block* b = *it;
    // A whole segment, or any piece of the arena (its neighbours stay, no longer linked to it).
    if ((b->prev || b->next) && !source_.in_arena(b->ptr)) {
      ++it;
      continue;
    }
    if (b->prev) b->prev->next = nullptr;
    if (b->next) b->next->prev = nullptr;
    if (top_ == b) top_ = b->prev;
    source_.give_back_segment(b->ptr, b->size);
    stats_.reserved_bytes -= static_cast<int64_t>(b->size);
    delete b;
    it = free_large_.erase(it);
  }
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
  // The cache counts against the limit too: what it holds beyond the limit goes back now, so that no
  // cached block lets the bytes in use grow past the new limit.
  if (limit_ > 0 && stats_.reserved_bytes > limit_) release_cache_locked();
}

int64_t BlockCache::limit() const {
  std::lock_guard<std::mutex> lock(mu_);
  return limit_;
}

}  // namespace dl
