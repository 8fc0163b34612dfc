// Tensor factories, views, copies and conversions. CPU storage comes from the caching allocator.
#include "dl/core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ostream>
#include <type_traits>

#include "core/device_backend.h"
#include "dl/core/allocator.h"
#include "round16.cuh"

namespace dl {

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ =
      device.is_cpu() ? CpuAllocator::instance().allocate(bytes) : device_backend(device).allocate(bytes, device.index);
}

Storage::~Storage() {
  if (device_.is_cpu())
    CpuAllocator::instance().release(data_, bytes_);
  else
    device_backend(device_).release(data_, bytes_, device_.index);
}

namespace detail {
void check_dtype(const Tensor& t, DType expected) {
  DL_CHECK(t.defined(), "expected a defined tensor of dtype ", dtype_name(expected), ", got an undefined tensor");
  DL_CHECK(t.dtype() == expected, "expected dtype ", dtype_name(expected), ", got ", dtype_name(t.dtype()), " (shape ",
           t.shape().str(), ")");
}
}  // namespace detail

namespace {
const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  DL_CHECK(impl != nullptr, "operation on an undefined tensor");
  return *impl;
}

// Calls f(static_cast<T*>(ptr)) with T the C++ type of dtype.
template <typename F>
void visit_dtype(DType dtype, void* ptr, F&& f) {
  switch (dtype) {
    case DType::kFloat32:
      f(static_cast<float*>(ptr));
      break;
    case DType::kFloat64:
      f(static_cast<double*>(ptr));
      break;
    case DType::kInt32:
      f(static_cast<int32_t*>(ptr));
      break;
    case DType::kUInt8:
      f(static_cast<uint8_t*>(ptr));
      break;
    case DType::kInt64:
      f(static_cast<int64_t*>(ptr));
      break;
    case DType::kBool:
      f(static_cast<bool*>(ptr));
      break;
    case DType::kBFloat16:
      f(static_cast<BFloat16*>(ptr));
      break;
    case DType::kFloat16:
      f(static_cast<Float16*>(ptr));
      break;
  }
}

// dst = src converted element by element (C++'s conversions: to bool is "not zero"; to an integer
// truncates toward zero; to bfloat16 / float16 rounds to nearest even through float).
void convert_elements(DType from, const void* src, DType to, void* dst, int64_t n) {
  // float32 <-> bfloat16, the casts of bf16 activations (Note [bf16 activations] in ops/precision.cpp):
  // inline bit operations, vectorised and spread over the threads.
  if (from == DType::kFloat32 && to == DType::kBFloat16) {
    const auto* s = static_cast<const float*>(src);
    auto* d = static_cast<uint16_t*>(dst);
#pragma omp parallel for simd if (n >= 65536)
    for (int64_t i = 0; i < n; ++i) d[i] = kern::float_to_bf16_bits(s[i]);
    return;
  }
  if (from == DType::kBFloat16 && to == DType::kFloat32) {
    const auto* s = static_cast<const uint16_t*>(src);
    auto* d = static_cast<float*>(dst);
#pragma omp parallel for simd if (n >= 65536)
    for (int64_t i = 0; i < n; ++i) d[i] = kern::bf16_bits_to_float(s[i]);
    return;
  }
  visit_dtype(from, const_cast<void*>(src), [&](auto* s) {
    visit_dtype(to, dst, [&](auto* d) {
      using D = std::remove_pointer_t<decltype(d)>;
      using S = std::remove_pointer_t<decltype(s)>;
      for (int64_t i = 0; i < n; ++i) {
        if constexpr (std::is_same_v<D, bool> || !(std::is_same_v<S, BFloat16> || std::is_same_v<S, Float16>))
          d[i] = static_cast<D>(s[i]);
        else
          d[i] = static_cast<D>(static_cast<float>(s[i]));
      }
    });
  });
}
}  // namespace

const char* memory_format_name(MemoryFormat f) {
  return f == MemoryFormat::kChannelsLast ? "channels-last (NHWC)" : "contiguous (NCHW)";
}

MemoryFormat canonical_format(const Shape& shape, MemoryFormat f) {
  if (f == MemoryFormat::kContiguous) return f;
  DL_CHECK(shape.ndim() == 4, "channels-last: expected a 4-D [N, C, H, W] shape, got ", shape.str());
  return shape[1] == 1 || shape[2] * shape[3] == 1 ? MemoryFormat::kContiguous : f;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape.numel()) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, MemoryFormat format) {
  Tensor t = empty(shape, dtype, device);
  t.impl_->format = canonical_format(shape, format);
  return t;
}

MemoryFormat Tensor::memory_format() const { return checked(impl_).format; }

Tensor Tensor::storage_order_view() const {
  const TensorImpl& t = checked(impl_);
  if (t.format == MemoryFormat::kContiguous) return *this;
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage;
  impl->offset = t.offset;
  impl->shape = Shape{t.shape[0], t.shape[2], t.shape[3], t.shape[1]};
  impl->dtype = t.dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::channels_last_view(const Tensor& nhwc) {
  const TensorImpl& t = checked(nhwc.impl_);
  DL_CHECK(t.shape.ndim() == 4 && t.format == MemoryFormat::kContiguous,
           "channels_last_view: expected a contiguous 4-D [N, H, W, C] tensor, got ", t.shape.str(), " ",
           memory_format_name(t.format));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage;
  impl->offset = t.offset;
  impl->shape = Shape{t.shape[0], t.shape[3], t.shape[1], t.shape[2]};
  impl->dtype = t.dtype;
  impl->format = canonical_format(impl->shape, MemoryFormat::kChannelsLast);
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

template <TensorElement T>
Tensor Tensor::from_vector(const Shape& shape, const std::vector<T>& values) {
  DL_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "from_vector: shape ", shape.str(), " needs ",
           shape.numel(), " values, got ", values.size());
  Tensor t = empty(shape, DTypeOf<T>::value);
  if constexpr (std::is_same_v<T, bool>) {  // std::vector<bool> packs its bits: no data()
    bool* p = t.data<bool>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  } else if (!values.empty()) {
    std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  }
  return t;
}
template Tensor Tensor::from_vector(const Shape&, const std::vector<float>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<double>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<int32_t>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<uint8_t>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<int64_t>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<bool>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<BFloat16>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<Float16>&);

Tensor Tensor::randn(const Shape& shape, Generator& gen, DType dtype) {
  DL_CHECK(is_floating_point(dtype), "randn: expected a floating dtype, got ", dtype_name(dtype));
  Tensor t = empty(shape, dtype);
  visit_dtype(dtype, t.raw_data(), [&](auto* p) {
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<std::remove_pointer_t<decltype(p)>>(gen.normal());
  });
  return t;
}

Tensor Tensor::uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype) {
  DL_CHECK(is_floating_point(dtype), "uniform: expected a floating dtype, got ", dtype_name(dtype));
  Tensor t = empty(shape, dtype);
  visit_dtype(dtype, t.raw_data(), [&](auto* p) {
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i)
      p[i] = static_cast<std::remove_pointer_t<decltype(p)>>(low + (high - low) * gen.uniform());
  });
  return t;
}

const Shape& Tensor::shape() const { return checked(impl_).shape; }
DType Tensor::dtype() const { return checked(impl_).dtype; }
Device Tensor::device() const { return checked(impl_).storage->device(); }

int64_t Tensor::size(int d) const {
  const int n = dim();
  const int i = d < 0 ? d + n : d;
  DL_CHECK(i >= 0 && i < n, "size(", d, "): tensor of shape ", shape().str(), " has ", n, " dimensions");
  return shape()[i];
}

void* Tensor::raw_data() const {
  const TensorImpl& t = checked(impl_);
  DL_CHECK(t.format == MemoryFormat::kContiguous, "tensor of shape ", t.shape.str(),
           " is channels-last (NHWC) and this code reads NCHW: convert it first (ops::contiguous)");
  return static_cast<char*>(t.storage->data()) + t.offset;
}

void* Tensor::raw_data(MemoryFormat format) const {
  const TensorImpl& t = checked(impl_);
  DL_CHECK(t.format == format, "expected a ", memory_format_name(format), " tensor, got a ",
           memory_format_name(t.format), " one of shape ", t.shape.str());
  return static_cast<char*>(t.storage->data()) + t.offset;
}

namespace {
// Reorders the elements of a 4-D [N, C, H, W] tensor between NCHW and NHWC on the CPU, any element size.
void reorder_4d(const Shape& s, size_t es, const uint8_t* src, uint8_t* dst, bool to_nhwc) {
  const int64_t n = s[0], c = s[1], hw = s[2] * s[3];
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < hw; ++p) {
        const int64_t nchw = (i * c + ch) * hw + p, nhwc = (i * hw + p) * c + ch;
        std::memcpy(dst + es * static_cast<size_t>(to_nhwc ? nhwc : nchw),
                    src + es * static_cast<size_t>(to_nhwc ? nchw : nhwc), es);
      }
}
}  // namespace

Tensor Tensor::to(MemoryFormat format) const {
  const MemoryFormat want = canonical_format(shape(), format);
  if (want == memory_format()) return *this;
  if (!device().is_cpu()) return to(Device::cpu()).to(format).to(device());
  Tensor out = empty(shape(), dtype(), device(), want);
  reorder_4d(shape(), dtype_size(dtype()), static_cast<const uint8_t*>(raw_data(memory_format())),
             static_cast<uint8_t*>(out.raw_data(want)), want == MemoryFormat::kChannelsLast);
  return out;
}

template <TensorElement T>
T Tensor::item() const {
  DL_CHECK(numel() == 1, "item(): expected a tensor with one element, got shape ", shape().str());
  if (!device().is_cpu()) return to(Device::cpu()).item<T>();
  T out{};
  convert_elements(dtype(), raw_data(), DTypeOf<T>::value, &out, 1);
  return out;
}
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int32_t Tensor::item<int32_t>() const;
template int64_t Tensor::item<int64_t>() const;
template uint8_t Tensor::item<uint8_t>() const;
template bool Tensor::item<bool>() const;
template BFloat16 Tensor::item<BFloat16>() const;
template Float16 Tensor::item<Float16>() const;

std::vector<float> Tensor::to_vector_f32() const {
  if (!device().is_cpu()) return to(Device::cpu()).to_vector_f32();
  if (is_channels_last()) return to(MemoryFormat::kContiguous).to_vector_f32();  // in [N, C, H, W] order
  std::vector<float> out(static_cast<size_t>(numel()));
  convert_elements(dtype(), raw_data(), DType::kFloat32, out.data(), numel());
  return out;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  const TensorImpl& t = checked(impl_);
  DL_CHECK(t.shape.ndim() >= 1, "slice: expected at least one dimension, got a scalar");
  DL_CHECK(0 <= begin && begin <= end && end <= t.shape[0], "slice: expected 0 <= begin <= end <= ", t.shape[0],
           ", got [", begin, ", ", end, ")");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage;
  impl->shape = t.shape;
  impl->shape[0] = end - begin;
  impl->dtype = t.dtype;
  impl->format = t.format;  // N is outermost in both orders
  impl->offset = t.offset + static_cast<size_t>(begin * (t.shape.numel() / std::max<int64_t>(t.shape[0], 1))) *
                                dtype_size(t.dtype);
  return Tensor(std::move(impl));
}

Tensor Tensor::view(const Shape& shape) const {
  const TensorImpl& t = checked(impl_);
  DL_CHECK(shape.numel() == t.shape.numel(), "view: cannot view ", t.shape.str(), " (", t.shape.numel(),
           " elements) as ", shape.str(), " (", shape.numel(), " elements)");
  DL_CHECK(t.format == MemoryFormat::kContiguous, "view: tensor of shape ", t.shape.str(),
           " is channels-last (NHWC); convert it first (ops::contiguous)");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage;
  impl->offset = t.offset;
  impl->shape = shape;
  impl->dtype = t.dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device(), memory_format());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor out = empty(shape(), dtype(), device, memory_format());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == this->dtype()) return *this;
  const MemoryFormat f = memory_format();  // kept: the conversion is element by element
  Tensor out = empty(shape(), dtype, device(), f);
  if (device().is_cpu()) {
    convert_elements(this->dtype(), raw_data(f), dtype, out.raw_data(f), numel());
    return out;
  }
  // On a device: float32 to and from bfloat16 / float16 by the backend's own kernel, on its stream;
  // other conversions serve labels and checkpoints and go through the host.
  if (device_backend(device()).convert(raw_data(f), this->dtype(), out.raw_data(f), dtype, numel(), device().index))
    return out;
  return to(Device::cpu()).to(dtype).to(device());
}

Tensor Tensor::detach() const {
  const TensorImpl& t = checked(impl_);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage;
  impl->offset = t.offset;
  impl->shape = t.shape;
  impl->dtype = t.dtype;
  impl->format = t.format;
  return Tensor(std::move(impl));
}

void Tensor::copy_(const Tensor& src) {
  DL_CHECK(src.shape() == shape() && src.dtype() == dtype(), "copy_: expected ", shape().str(), " ",
           dtype_name(dtype()), ", got ", src.shape().str(), " ", dtype_name(src.dtype()));
  const MemoryFormat f = memory_format();
  if (src.memory_format() != f) return copy_(src.to(f));
  if (nbytes() == 0 || (raw_data(f) == src.raw_data(f) && device() == src.device())) return;
  if (device().is_cpu() && src.device().is_cpu())
    std::memmove(raw_data(f), src.raw_data(f), nbytes());
  else
    device_backend(device().is_cpu() ? src.device() : device())
        .copy(raw_data(f), device(), src.raw_data(f), src.device(), nbytes());
}

void Tensor::fill_(double value) {
  void* data = raw_data(memory_format());  // every element alike: either order
  if (!device().is_cpu()) return device_backend(device()).fill(data, dtype(), numel(), value, device().index);
  visit_dtype(dtype(), data, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    std::fill(p, p + numel(), static_cast<T>(value));
  });
}

void Tensor::move_to_(Device device) {
  checked(impl_);
  if (device == this->device()) return;
  TensorImpl& t = *impl_;
  const Tensor moved = to(device);
  t.storage = moved.impl()->storage;
  t.offset = moved.impl()->offset;
  if (t.grad.defined()) t.grad.move_to_(device);
}

bool Tensor::shares_storage_with(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

bool Tensor::requires_grad() const { return checked(impl_).requires_grad; }

Tensor& Tensor::set_requires_grad(bool on) {
  checked(impl_);
  DL_CHECK(!on || is_floating(dtype()), "requires_grad needs a floating dtype, got ", dtype_name(dtype()));
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return checked(impl_).grad; }
void Tensor::set_grad(const Tensor& g) {
  checked(impl_);
  impl_->grad = g;
}
const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const { return checked(impl_).grad_fn; }

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << "Tensor(" << t.shape().str() << ", " << dtype_name(t.dtype()) << ", " << t.device().str() << ")";
  if (t.numel() <= 16 && t.device().is_cpu()) {
    os << " {";
    const auto v = t.to_vector_f32();
    for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
    os << "}";
  }
  return os;
}

}  // namespace dl
