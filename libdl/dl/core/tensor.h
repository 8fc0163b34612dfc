// Tensor: a contiguous, typed, shaped view of a Storage on one device, with the autograd fields
// (requires_grad, grad, grad_fn). Copying a Tensor copies a handle; the data is shared.
// Views (slice along dim 0, view with another shape) share storage with their base.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <vector>

#include "dl/core/device.h"
#include "dl/core/dtype.h"
#include "dl/core/error.h"
#include "dl/core/rng.h"
#include "dl/core/shape.h"

namespace dl {

namespace autograd {
struct Node;
}

// Owns one allocation from the device's allocator.
class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories (contiguous; `empty` leaves the memory uninitialised) ----
  static Tensor empty(const Shape& shape, DType dtype = DType::kFloat32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::kFloat32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::kFloat32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::kFloat32, Device device = Device::cpu());
  template <TensorElement T>  // float, double, int32_t, int64_t, uint8_t, bool, BFloat16, Float16
  static Tensor from_vector(const Shape& shape, const std::vector<T>& values);
  static Tensor randn(const Shape& shape, Generator& gen = default_generator(), DType dtype = DType::kFloat32);
  static Tensor uniform(const Shape& shape, double low, double high, Generator& gen = default_generator(),
                        DType dtype = DType::kFloat32);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int dim() const { return shape().ndim(); }
  int64_t size(int d) const;  // negative d counts from the end
  int64_t numel() const { return shape().numel(); }
  DType dtype() const;
  Device device() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }

  // Typed access to the first element; throws when T is not the tensor's dtype.
  template <typename T>
  T* data();
  template <typename T>
  const T* data() const;
  void* raw_data() const;
  // The value of a one-element tensor (on any device), converted to T.
  template <TensorElement T>
  T item() const;
  std::vector<float> to_vector_f32() const;

  // ---- views and copies (no autograd: use ops::reshape and friends inside a graph) ----
  Tensor slice(int64_t begin, int64_t end) const;  // rows [begin, end) of dim 0, shares storage
  Tensor view(const Shape& shape) const;           // same elements, another shape, shares storage
  Tensor clone() const;                            // a new contiguous copy on the same device
  Tensor to(Device device) const;                  // returns *this when already there
  Tensor to(DType dtype) const;                    // converting copy; *this when already that dtype
  Tensor detach() const;                           // shares storage, no grad history
  void copy_(const Tensor& src);                   // same shape and dtype; devices may differ
  void fill_(double value);
  void zero_() { fill_(0.0); }
  bool shares_storage_with(const Tensor& other) const;
  // Moves the data to `device` in place: every handle of this tensor (and its grad) sees the new
  // storage. Used to move a model's parameters and buffers; views of the old storage keep the old data.
  void move_to_(Device device);

  // ---- autograd ----
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on);
  Tensor grad() const;  // undefined until a backward reaches this leaf
  void set_grad(const Tensor& g);
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  // Back-propagates from this one-element tensor; gradients accumulate into the leaves' grad().
  void backward() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  size_t offset = 0;  // bytes from the start of storage
  Shape shape;
  DType dtype = DType::kFloat32;
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<autograd::Node> grad_fn;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- inline typed access ----
namespace detail {
void check_dtype(const Tensor& t, DType expected);
}
template <typename T>
T* Tensor::data() {
  detail::check_dtype(*this, DTypeOf<T>::value);
  return static_cast<T*>(raw_data());
}
template <typename T>
const T* Tensor::data() const {
  detail::check_dtype(*this, DTypeOf<T>::value);
  return static_cast<const T*>(raw_data());
}

}  // namespace dl
