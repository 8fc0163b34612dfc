// Front ends of reshape, flatten, expand, permute, transpose and concat along channels.
#include "dl/ops/shape_ops.h"

#include <algorithm>

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/elementwise.h"
#include "dl/ops/trace.h"
#include "ops/broadcast.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

Tensor reshape(const Tensor& x, const Shape& shape) {
  check_defined(x, "reshape", "x");
  if (x.is_channels_last()) return reshape(contiguous(x), shape);  // the elements in [N, C, H, W] order
  Tensor y = x.view(shape);
  if (auto* tr = active_tracer()) tr->record({"reshape", {x}, y});
  const Shape in_shape = x.shape();
  return autograd::record("reshape", y, {x}, [in_shape](const Tensor& gy, const std::vector<bool>&) {
    return std::vector<Tensor>{gy.view(in_shape)};
  });
}

Tensor flatten(const Tensor& x) {
  check_defined(x, "flatten", "x");
  DL_CHECK(x.dim() >= 1, "flatten: expected at least one dimension, got a scalar");
  const int64_t n = x.size(0);
  return reshape(x, {n, n == 0 ? 0 : x.numel() / n});
}

namespace {
// y[i] = x[base + ix.offset(i)] into a new contiguous tensor of `shape`, for any dtype (a copy moves
// bytes: one body per element size).
Tensor strided_copy(const Tensor& x, int64_t base, const Shape& shape, const kern::StridedIndex<1>& ix,
                    const char* op) {
  Tensor y = Tensor::empty(shape, x.dtype(), x.device());
  const int64_t n = y.numel();
  const size_t es = dtype_size(x.dtype());
  const void* src = static_cast<const uint8_t*>(x.raw_data()) + base * static_cast<int64_t>(es);
  if (x.device().is_cuda()) {
    DL_CUDA_BODY(cuda::strided_copy(x.device().index, src, y.raw_data(), es, n, ix));
    return y;
  }
  DL_CHECK(x.device().is_cpu(), op, ": no body for device ", x.device().str());
  switch (es) {
    case 1:
      cpu::strided_copy(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(y.raw_data()), n, ix);
      break;
    case 2:
      cpu::strided_copy(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(y.raw_data()), n, ix);
      break;
    case 4:
      cpu::strided_copy(static_cast<const int32_t*>(src), static_cast<int32_t*>(y.raw_data()), n, ix);
      break;
    case 8:
      cpu::strided_copy(static_cast<const int64_t*>(src), static_cast<int64_t*>(y.raw_data()), n, ix);
      break;
    default:
      DL_THROW(op, ": no copy for elements of ", es, " bytes");
  }
  return y;
}
Tensor strided_copy(const Tensor& x, const Shape& shape, const kern::StridedIndex<1>& ix, const char* op) {
  return strided_copy(x, 0, shape, ix, op);
}

// into[base + ix.offset(i)] = y[i] for every element of contiguous y (offsets distinct), any dtype.
void strided_scatter(const Tensor& y, Tensor& into, int64_t base, const kern::StridedIndex<1>& ix) {
  const size_t es = dtype_size(y.dtype());
  void* dst = static_cast<uint8_t*>(into.raw_data()) + base * static_cast<int64_t>(es);
  if (into.device().is_cuda()) {
    DL_CUDA_BODY(cuda::strided_scatter(into.device().index, y.raw_data(), dst, es, y.numel(), ix));
    return;
  }
  cpu::strided_scatter(y.raw_data(), dst, es, y.numel(), ix);
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op, const Shape& s) {
  DL_CHECK(dim >= -ndim && dim < ndim, op, ": dimension ", dim, " is out of range for shape ", s.str(), " (expected [",
           -ndim, ", ", ndim, "))");
  return dim < 0 ? dim + ndim : dim;
}
}  // namespace

Tensor to_memory_format(const Tensor& x, MemoryFormat format) {
  check_defined(x, "to_memory_format", "x");
  const MemoryFormat want = canonical_format(x.shape(), format);
  if (want == x.memory_format()) return x;
  // One permuting copy of the storage order: [N, C, H, W] -> [N, H, W, C] or back.
  const Tensor src = x.storage_order_view();
  const bool to_nhwc = want == MemoryFormat::kChannelsLast;
  const std::vector<int> perm = to_nhwc ? std::vector<int>{0, 2, 3, 1} : std::vector<int>{0, 3, 1, 2};
  const Shape& s = src.shape();
  const Shape out{s[perm[0]], s[perm[1]], s[perm[2]], s[perm[3]]};
  Tensor moved = strided_copy(src, out, permute_index(s, perm), "to_memory_format");
  Tensor y = to_nhwc ? Tensor::channels_last_view(moved) : moved;
  if (auto* tr = active_tracer()) tr->record({"to_memory_format", {x}, y});  // the same values: an identity
  const MemoryFormat from = x.memory_format();
  return autograd::record("to_memory_format", y, {x}, [from](const Tensor& gy, const std::vector<bool>&) {
    return std::vector<Tensor>{to_memory_format(gy, from)};
  });
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  check_defined(x, "to_dtype", "x");
  if (x.dtype() == dtype) return x;
  Tensor y = x.to(dtype);
  if (auto* tr = active_tracer()) tr->record({"to_dtype", {x}, y});  // the values, rounded: an identity
  const DType from = x.dtype();
  return autograd::record("to_dtype", y, {x}, [from](const Tensor& gy, const std::vector<bool>&) {
    return std::vector<Tensor>{to_dtype(gy, from)};
  });
}

Tensor expand(const Tensor& x, const Shape& shape) {
  check_defined(x, "expand", "x");
  DL_CHECK(broadcast_shapes(x.shape(), shape, "expand") == shape, "expand: shape ", x.shape().str(),
           " does not broadcast to ", shape.str());
  if (x.shape() == shape) return x;
  Tensor y = strided_copy(x, shape, broadcast_index<1>(shape, {x.shape()}), "expand");
  if (auto* tr = active_tracer()) tr->record({"expand", {x}, y});
  const Shape in_shape = x.shape();
  return autograd::record("expand", y, {x}, [in_shape](const Tensor& gy, const std::vector<bool>&) {
    return std::vector<Tensor>{sum_to(gy, in_shape)};
  });
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& perm) {
  check_defined(x, "permute", "x");
  const int nd = x.dim();
  DL_CHECK(static_cast<int>(perm.size()) == nd, "permute: expected ", nd, " dimensions for shape ", x.shape().str(),
           ", got ", perm.size());
  std::vector<int> p(perm.size());
  std::vector<bool> seen(perm.size(), false);
  std::vector<int64_t> out(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    DL_CHECK(perm[i] >= -nd && perm[i] < nd, "permute: dimension ", perm[i], " is out of range for shape ",
             x.shape().str());
    p[i] = static_cast<int>(perm[i] < 0 ? perm[i] + nd : perm[i]);
    DL_CHECK(!seen[static_cast<size_t>(p[i])], "permute: dimension ", perm[i], " is named twice");
    seen[static_cast<size_t>(p[i])] = true;
    out[i] = x.shape()[p[i]];
  }
  Tensor y = strided_copy(x, Shape(out), permute_index(x.shape(), p), "permute");
  if (auto* tr = active_tracer())
    tr->record({"permute", {x}, y, TraceAttrs::of_ints(std::vector<int64_t>(p.begin(), p.end()))});
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < p.size(); ++i) inverse[static_cast<size_t>(p[i])] = static_cast<int64_t>(i);
  return autograd::record("permute", y, {x}, [inverse](const Tensor& gy, const std::vector<bool>&) {
    return std::vector<Tensor>{permute(gy, inverse)};
  });
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  check_defined(x, "transpose", "x");
  const int64_t nd = x.dim();
  DL_CHECK(d0 >= -nd && d0 < nd && d1 >= -nd && d1 < nd, "transpose: dimensions ", d0, " and ", d1,
           " are out of range for shape ", x.shape().str());
  std::vector<int64_t> perm(static_cast<size_t>(nd));
  for (int64_t i = 0; i < nd; ++i) perm[static_cast<size_t>(i)] = i;
  std::swap(perm[static_cast<size_t>(d0 < 0 ? d0 + nd : d0)], perm[static_cast<size_t>(d1 < 0 ? d1 + nd : d1)]);
  return permute(x, perm);
}

Tensor concat(const std::vector<Tensor>& xs_in) {
  DL_CHECK(!xs_in.empty(), "concat: expected at least one tensor");
  // Note [bf16 activations]: bfloat16 inputs on the CPU are joined as they are; a mix with float32 (or bf16
  // on CUDA) is joined in float32.
  const bool all_bf16 = std::all_of(xs_in.begin(), xs_in.end(), [](const Tensor& x) { return is_bf16(x); });
  if (std::any_of(xs_in.begin(), xs_in.end(), [](const Tensor& x) { return is_bf16(x); }) &&
      !(all_bf16 && xs_in[0].device().is_cpu())) {
    std::vector<Tensor> wide;
    for (const Tensor& x : xs_in) wide.push_back(float32_of(x));
    const Tensor y = concat(wide);
    return std::all_of(xs_in.begin(), xs_in.end(), [](const Tensor& x) { return is_bf16(x); }) ? bf16_of(y) : y;
  }
  // With a channels-last input the result is channels-last (Note [memory format]), the other inputs
  // reordered to it; in NHWC each pixel's channels are joined, which is the NCHW loop with N H W "images"
  // of one pixel each.
  bool cl = false;
  for (const Tensor& x : xs_in) cl = cl || (x.defined() && x.is_channels_last());
  std::vector<Tensor> xs = xs_in;
  if (cl)
    for (Tensor& x : xs) x = channels_last(x);
  const MemoryFormat fmt = cl ? MemoryFormat::kChannelsLast : MemoryFormat::kContiguous;
  const Tensor& first = xs[0];
  check_float_or_bf16(first, "concat", "xs[0]");
  DL_CHECK(first.dim() >= 2, "concat: expected N x C x ..., got ", first.shape().str());
  std::vector<int64_t> cs;
  int64_t ctot = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    check_same({{"xs[0]", &first}, {"xs[k]", &xs[k]}}, "concat");
    bool same = xs[k].dim() == first.dim();
    for (int d = 0; same && d < first.dim(); ++d) same = d == 1 || xs[k].size(d) == first.size(d);
    DL_CHECK(same, "concat: tensor ", k, " has shape ", xs[k].shape().str(), ", expected all but dimension 1 as in ",
             first.shape().str());
    cs.push_back(xs[k].size(1));
    ctot += xs[k].size(1);
  }
  Shape out = first.shape();
  out[1] = ctot;
  int64_t n = first.size(0);
  int64_t s = 1;
  for (int d = 2; d < first.dim(); ++d) s *= first.size(d);
  if (cl) n *= s, s = 1;  // N H W pixels of C_k channels each
  Tensor y = Tensor::empty(out, first.dtype(), first.device(), fmt);
  // A tensor whose two orders coincide (C_k == 1) stays contiguous: its own format reads the same bytes.
  std::vector<Tensor> stored;
  for (const Tensor& x : xs) stored.push_back(storage(x));
  Tensor ys = storage(y);
  dispatch_with_bf16(
      first, "concat",
      [&](auto t) {
        using T = decltype(t);
        std::vector<const T*> ptrs;
        for (const Tensor& x : stored) ptrs.push_back(x.data<T>());
        cpu::concat_channels(ptrs.data(), cs.data(), static_cast<int>(xs.size()), n, s, ys.data<T>());
      },
      [&](int dev) {
        DL_CHECK(xs.size() <= 8, "concat: the CUDA kernel joins at most 8 tensors, got ", xs.size());
        std::vector<const float*> ptrs;
        for (const Tensor& x : stored) ptrs.push_back(f32(x));
        DL_CUDA_BODY(cuda::concat_channels(dev, ptrs.data(), cs.data(), static_cast<int>(xs.size()), n, s, f32(ys)));
      });
  if (auto* tr = active_tracer()) tr->record({"concat", xs, y, TraceAttrs::of_ints({1})});
  std::vector<Shape> shapes;
  for (const Tensor& x : xs) shapes.push_back(x.shape());
  return autograd::record("concat", y, xs, [=](const Tensor& gy_in, const std::vector<bool>& needs) {
    const Tensor gy = storage(to_memory_format(gy_in, fmt));
    std::vector<Tensor> gxs(shapes.size()), gstored(shapes.size());
    for (size_t k = 0; k < shapes.size(); ++k)
      if (needs[k]) {
        gxs[k] = Tensor::empty(shapes[k], gy.dtype(), gy.device(), fmt);
        gstored[k] = storage(gxs[k]);
      }
    dispatch_with_bf16(
        gy, "concat_backward",
        [&](auto t) {
          using T = decltype(t);
          std::vector<T*> ptrs;
          for (Tensor& g : gstored) ptrs.push_back(g.defined() ? g.data<T>() : nullptr);
          cpu::split_channels(gy.data<T>(), cs.data(), static_cast<int>(cs.size()), n, s, ptrs.data());
        },
        [&](int dev) {
          std::vector<float*> ptrs;
          for (Tensor& g : gstored) ptrs.push_back(f32(g));
          DL_CUDA_BODY(cuda::split_channels(dev, f32(gy), cs.data(), static_cast<int>(cs.size()), n, s, ptrs.data()));
        });
    return gxs;
  });
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  check_defined(x, "squeeze", "x");
  const int64_t d = wrap_dim(dim, x.dim(), "squeeze", x.shape());
  if (x.size(d) != 1) return x;  // as PyTorch: a dimension of another size stays
  std::vector<int64_t> out = x.shape().vec();
  out.erase(out.begin() + d);
  return reshape(x, Shape(out));
}

Tensor squeeze(const Tensor& x) {
  check_defined(x, "squeeze", "x");
  std::vector<int64_t> out;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (x.size(d) != 1) out.push_back(x.size(d));
  return reshape(x, Shape(out));
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  check_defined(x, "unsqueeze", "x");
  DL_CHECK(x.dim() < kMaxDims, "unsqueeze: shape ", x.shape().str(), " already has the most dimensions, ", kMaxDims);
  const int64_t d = wrap_dim(dim, x.dim() + 1, "unsqueeze", x.shape());
  std::vector<int64_t> out = x.shape().vec();
  out.insert(out.begin() + d, 1);
  return reshape(x, Shape(out));
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  check_defined(x, "slice", "x");
  DL_CHECK(x.dim() >= 1, "slice: expected at least one dimension, got a scalar");
  const int d = static_cast<int>(wrap_dim(dim, x.dim(), "slice", x.shape()));
  DL_CHECK(step >= 1, "slice: expected a step of at least 1, got ", step);
  const int64_t size = x.size(d);
  auto clamp_end = [size](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + size : v, 0, size); };
  const int64_t lo = clamp_end(start), hi = clamp_end(end);
  const int64_t len = hi > lo ? (hi - lo + step - 1) / step : 0;
  Shape out = x.shape();
  out[d] = len;
  const Shape in_shape = x.shape();
  const int64_t base = lo * contiguous_strides(in_shape)[static_cast<size_t>(d)];
  const kern::StridedIndex<1> ix = part_index(out, in_shape, d, step);
  Tensor y = strided_copy(x, base, out, ix, "slice");
  if (auto* tr = active_tracer()) tr->record({"slice", {x}, y, TraceAttrs::of_ints({d, lo, hi, step})});
  return autograd::record("slice", y, {x}, [in_shape, base, ix](const Tensor& gy, const std::vector<bool>&) {
    Tensor gx = Tensor::zeros(in_shape, gy.dtype(), gy.device());
    strided_scatter(gy, gx, base, ix);
    return std::vector<Tensor>{gx};
  });
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  check_defined(x, "select", "x");
  DL_CHECK(x.dim() >= 1, "select: expected at least one dimension, got a scalar");
  const int64_t d = wrap_dim(dim, x.dim(), "select", x.shape());
  const int64_t size = x.size(d);
  DL_CHECK(index >= -size && index < size, "select: index ", index, " is out of range for dimension ", d, " of ",
           x.shape().str(), " (expected [", -size, ", ", size, "))");
  const int64_t i = index < 0 ? index + size : index;
  return squeeze(slice(x, d, i, i + 1), d);
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  DL_CHECK(!xs.empty(), "concat: expected at least one tensor");
  const Tensor& first = xs[0];
  check_defined(first, "concat", "xs[0]");
  DL_CHECK(first.dim() >= 1, "concat: expected tensors with at least one dimension, got a scalar");
  const int d = static_cast<int>(wrap_dim(dim, first.dim(), "concat", first.shape()));
  int64_t total = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    check_defined(xs[k], "concat", "xs[k]");
    DL_CHECK(xs[k].dtype() == first.dtype() && xs[k].device() == first.device(), "concat: tensor ", k, " is ",
             dtype_name(xs[k].dtype()), " on ", xs[k].device().str(), ", expected ", dtype_name(first.dtype()), " on ",
             first.device().str(), " as tensor 0");
    bool same = xs[k].dim() == first.dim();
    for (int j = 0; same && j < first.dim(); ++j) same = j == d || xs[k].size(j) == first.size(j);
    DL_CHECK(same, "concat: tensor ", k, " has shape ", xs[k].shape().str(), ", expected all but dimension ", d,
             " as in ", first.shape().str());
    total += xs[k].size(d);
  }
  Shape out = first.shape();
  out[d] = total;
  Tensor y = Tensor::empty(out, first.dtype(), first.device());
  const int64_t stride = contiguous_strides(out)[static_cast<size_t>(d)];
  std::vector<int64_t> bases;
  std::vector<kern::StridedIndex<1>> parts;
  int64_t offset = 0;
  for (const Tensor& x : xs) {
    bases.push_back(offset * stride);
    parts.push_back(part_index(x.shape(), out, d, 1));
    strided_scatter(x, y, bases.back(), parts.back());
    offset += x.size(d);
  }
  if (auto* tr = active_tracer()) tr->record({"concat", xs, y, TraceAttrs::of_ints({d})});
  std::vector<Shape> shapes;
  for (const Tensor& x : xs) shapes.push_back(x.shape());
  return autograd::record("concat", y, xs, [shapes, bases, parts](const Tensor& gy, const std::vector<bool>& needs) {
    std::vector<Tensor> gxs(shapes.size());
    for (size_t k = 0; k < shapes.size(); ++k)
      if (needs[k]) gxs[k] = strided_copy(gy, bases[k], shapes[k], parts[k], "concat_backward");
    return gxs;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  DL_CHECK(!xs.empty(), "stack: expected at least one tensor");
  check_defined(xs[0], "stack", "xs[0]");
  const int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack", xs[0].shape());
  std::vector<Tensor> parts;
  for (size_t k = 0; k < xs.size(); ++k) {
    check_defined(xs[k], "stack", "xs[k]");
    DL_CHECK(xs[k].shape() == xs[0].shape(), "stack: tensor ", k, " has shape ", xs[k].shape().str(), ", expected ",
             xs[0].shape().str(), " as tensor 0");
    parts.push_back(unsqueeze(xs[k], d));
  }
  return concat(parts, d);
}

}  // namespace dl::ops
