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

// Note [memory format]: how a 4-D tensor [N, C, H, W] lies in memory. kContiguous stores it in that
// order (NCHW); kChannelsLast stores N, H, W, C (NHWC), each pixel's channels side by side, the layout
// that oneDNN's AVX-512 and AMX convolutions and cuDNN's tensor-core engines read without a reorder. The
// shape is always the logical [N, C, H, W]; only the order of the elements differs. Where the two orders
// coincide (C == 1 or H W == 1) a tensor is always kContiguous.
// Code that reads elements must know the order: raw_data() and data<T>() refuse a channels-last tensor
// (an op written for NCHW would silently read it wrong), and code that handles the order it is given asks
// for it by name with raw_data(format) / data<T>(format). The ops that accept channels-last keep it
// (convolution, batch norm, the element-wise ops between same-format operands, pooling, bilinear resize,
// concatenation along channels); the others refuse it with an error that says to convert first
// (ops::contiguous).
enum class MemoryFormat { kContiguous, kChannelsLast };
const char* memory_format_name(MemoryFormat f);
// The format a tensor of `shape` gets when asked for `f`: kChannelsLast only for a 4-D shape whose two
// orders differ.
MemoryFormat canonical_format(const Shape& shape, MemoryFormat f);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories (contiguous; `empty` leaves the memory uninitialised) ----
  static Tensor empty(const Shape& shape, DType dtype = DType::kFloat32, Device device = Device::cpu());
  // An uninitialised tensor in memory format `format` (Note [memory format]; canonical_format applies).
  static Tensor empty(const Shape& shape, DType dtype, Device device, MemoryFormat format);
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
  void* raw_data() const;  // refuses a channels-last tensor (Note [memory format])
  // The data of a tensor that must be in `format`: throws when it is in the other one.
  void* raw_data(MemoryFormat format) const;
  template <typename T>
  T* data(MemoryFormat format);
  template <typename T>
  const T* data(MemoryFormat format) const;
  MemoryFormat memory_format() const;
  bool is_channels_last() const { return memory_format() == MemoryFormat::kChannelsLast; }
  // The same elements seen as a contiguous tensor of their storage order's shape ([N, H, W, C] for a
  // channels-last [N, C, H, W]; *this for a contiguous tensor). Shares storage; no autograd.
  Tensor storage_order_view() const;
  // The inverse: a contiguous [N, H, W, C] tensor seen as the channels-last [N, C, H, W] it stores
  // (a contiguous tensor when the two orders coincide). Shares storage; no autograd.
  static Tensor channels_last_view(const Tensor& nhwc);
  // The value of a one-element tensor (on any device), converted to T.
  template <TensorElement T>
  T item() const;
  std::vector<float> to_vector_f32() const;

  // ---- views and copies (no autograd: use ops::reshape and friends inside a graph) ----
  Tensor slice(int64_t begin, int64_t end) const;  // rows [begin, end) of dim 0, shares storage
  Tensor view(const Shape& shape) const;           // same elements, another shape, shares storage
  Tensor clone() const;                            // a new copy on the same device, in the same memory format
  Tensor to(Device device) const;                  // returns *this when already there
  Tensor to(DType dtype) const;                    // converting copy; *this when already that dtype
  Tensor to(MemoryFormat format) const;            // reordering copy (no autograd: ops::to_memory_format)
  Tensor detach() const;                           // shares storage, no grad history
  void copy_(const Tensor& src);  // same shape and dtype; devices may differ; memory formats too (on the CPU)
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
  MemoryFormat format = MemoryFormat::kContiguous;
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
template <typename T>
T* Tensor::data(MemoryFormat format) {
  detail::check_dtype(*this, DTypeOf<T>::value);
  return static_cast<T*>(raw_data(format));
}
template <typename T>
const T* Tensor::data(MemoryFormat format) const {
  detail::check_dtype(*this, DTypeOf<T>::value);
  return static_cast<const T*>(raw_data(format));
}

}  // namespace dl
