// Shape: the sizes of a tensor, up to kMaxDims dimensions, stored inline.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace dl {

constexpr int kMaxDims = 8;
// The most elements a tensor may have: 2^56, so that every byte count (elements x 8) fits an int64.
constexpr int64_t kMaxElements = int64_t(1) << 56;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);

  int ndim() const { return ndim_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  // A size of 0 anywhere makes 0 before any product is formed: the other sizes may multiply past
  // int64 (the constructor bounds the product of non-zero sizes by kMaxElements).
  int64_t numel() const {
    for (int i = 0; i < ndim_; ++i)
      if (dims_[i] == 0) return 0;
    int64_t n = 1;
    for (int i = 0; i < ndim_; ++i) n *= dims_[i];
    return n;
  }
  std::vector<int64_t> vec() const { return {dims_.begin(), dims_.begin() + ndim_}; }
  std::string str() const;  // "[2, 3, 4]"
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }

 private:
  std::array<int64_t, kMaxDims> dims_{};
  int ndim_ = 0;
};

// The bytes that a tensor of `dims` with elements of `elem_size` bytes needs, computed without
// overflow. Throws dl::Error naming `origin` when a size is negative, there are more than kMaxDims
// dimensions or more than kMaxElements elements.
uint64_t checked_byte_count(const std::vector<int64_t>& dims, size_t elem_size, const std::string& origin);

}  // namespace dl
