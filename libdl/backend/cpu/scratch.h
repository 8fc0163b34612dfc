// Scratch<T>: a thread's working buffer taken from the caching allocator, so that it is 64-byte
// aligned (Eigen's vectorised reductions then sum in the same order on every run: an address that
// varied would change the peeling and the rounding) and reused across calls instead of faulting in
// fresh pages.
#pragma once
#include <cstddef>

#include "dl/core/allocator.h"

namespace dl::cpu {

template <typename T>
class Scratch {
 public:
  Scratch() = default;
  ~Scratch() { reset(); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  Scratch(Scratch&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }

  bool empty() const { return data_ == nullptr; }
  // Makes room for n elements (contents undefined) unless already allocated.
  T* ensure(size_t n) {
    if (!data_) {
      data_ = static_cast<T*>(CpuAllocator::instance().allocate(n * sizeof(T)));
      size_ = n;
    }
    return data_;
  }
  // Allocates n zeroed elements unless already allocated.
  T* ensure_zeroed(size_t n) {
    if (data_) return data_;
    T* p = ensure(n);
    for (size_t i = 0; i < n; ++i) p[i] = T(0);
    return p;
  }
  T* data() const { return data_; }
  size_t size() const { return size_; }
  void reset() {
    if (data_) CpuAllocator::instance().release(data_, size_ * sizeof(T));
    data_ = nullptr;
    size_ = 0;
  }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace dl::cpu
