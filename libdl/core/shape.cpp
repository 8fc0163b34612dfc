// Shape and DType helpers.
#include "dl/core/shape.h"

#include "dl/core/dtype.h"
#include "dl/core/error.h"

namespace dl {

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::vector<int64_t>(dims)) {}

Shape::Shape(const std::vector<int64_t>& dims) {
  DL_CHECK(dims.size() <= static_cast<size_t>(kMaxDims), "a tensor has at most ", kMaxDims, " dimensions, got ",
           dims.size());
  ndim_ = static_cast<int>(dims.size());
  for (int i = 0; i < ndim_; ++i) {
    DL_CHECK(dims[i] >= 0, "tensor sizes must be non-negative, got ", dims[i], " in dimension ", i);
    dims_[i] = dims[i];
  }
  int64_t n = 1;
  bool zero = false, over = false;
  for (int i = 0; i < ndim_; ++i) {
    if (dims_[i] == 0)
      zero = true;
    else if (!over && (__builtin_mul_overflow(n, dims_[i], &n) || n > kMaxElements))
      over = true;
  }
  DL_CHECK(zero || !over, "a tensor of shape ", str(), " would have more than 2^56 elements");
}

uint64_t checked_byte_count(const std::vector<int64_t>& dims, size_t elem_size, const std::string& origin) {
  DL_CHECK(dims.size() <= static_cast<size_t>(kMaxDims), origin, ": a tensor has at most ", kMaxDims,
           " dimensions, got ", dims.size());
  int64_t n = 1;
  bool zero = false, over = false;
  for (size_t i = 0; i < dims.size(); ++i) {
    DL_CHECK(dims[i] >= 0, origin, ": tensor sizes must be non-negative, got ", dims[i], " in dimension ", i);
    if (dims[i] == 0)
      zero = true;
    else if (!over && (__builtin_mul_overflow(n, dims[i], &n) || n > kMaxElements))
      over = true;
  }
  if (zero) return 0;
  DL_CHECK(!over, origin, ": the sizes multiply to more than 2^56 elements, more than any tensor can hold");
  return static_cast<uint64_t>(n) * elem_size;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < ndim_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
  return s + "]";
}

bool Shape::operator==(const Shape& o) const {
  if (ndim_ != o.ndim_) return false;
  for (int i = 0; i < ndim_; ++i)
    if (dims_[i] != o.dims_[i]) return false;
  return true;
}

}  // namespace dl
