// Front ends of gather, scatter_add and index_select (dl/ops/index.h) and of max/min along a dimension
// (dl/ops/reduce.h), which are a gather at the argmax: their gradient is the gather's.
#include "dl/ops/index.h"

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/reduce.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/broadcast.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

namespace {

// The gather along `dim` of x into an output of shape `out`, reading an index of shape `index_shape`
// (of out's rank) or, with `select`, a one-dimensional index that broadcasts along every other dimension.
kern::GatherIndex gather_index(const Shape& x, int dim, const Shape& out, const Shape& index_shape, bool select) {
  kern::GatherIndex g;
  g.ndim = out.ndim();
  g.dim = dim;
  const std::vector<int64_t> xs = contiguous_strides(x), os = contiguous_strides(out),
                             is = contiguous_strides(index_shape);
  for (int d = 0; d < out.ndim(); ++d) {
    g.size[d] = out[d];
    g.out_stride[d] = os[static_cast<size_t>(d)];
    g.x_stride[d] = xs[static_cast<size_t>(d)];
    g.i_stride[d] = select ? (d == dim ? 1 : 0) : is[static_cast<size_t>(d)];
  }
  return g;
}

int64_t check_index_dtype(const Tensor& index, const char* op) {
  check_defined(index, op, "index");
  DL_CHECK(index.dtype() == DType::kInt32 || index.dtype() == DType::kInt64, op,
           ": expected an int32 or int64 index, got ", dtype_name(index.dtype()));
  return static_cast<int64_t>(dtype_size(index.dtype()));
}

// Every index value in [0, size) (on CUDA read back to the host for the check).
void check_index_values(const Tensor& index, int64_t size, const char* op, int64_t dim, const Shape& x) {
  const Tensor host = index.device().is_cpu() ? index : index.to(Device::cpu());
  const int64_t n = host.numel();
  auto check = [&](auto* p) {
    for (int64_t i = 0; i < n; ++i)
      DL_CHECK(p[i] >= 0 && p[i] < size, op, ": index ", static_cast<int64_t>(p[i]), " at position ", i,
               " is out of range for dimension ", dim, " of ", x.str(), " (expected [0, ", size, "))");
  };
  if (host.dtype() == DType::kInt32) {
    check(host.data<int32_t>());
  } else {
    check(host.data<int64_t>());
  }
}

// y = the gather of x by index through g (index checked by the caller), no autograd.
Tensor gather_raw(const Tensor& x, const Tensor& index, const Shape& out, const kern::GatherIndex& g, const char* op) {
  Tensor y = Tensor::empty(out, x.dtype(), x.device());
  const bool wide = index.dtype() == DType::kInt64;
  dispatch(
      x, op,
      [&](auto t) {
        using T = decltype(t);
        if (wide) {
          cpu::gather(x.data<T>(), index.data<int64_t>(), y.data<T>(), y.numel(), g);
        } else {
          cpu::gather(x.data<T>(), index.data<int32_t>(), y.data<T>(), y.numel(), g);
        }
      },
      [&](int dev) {
        DL_CUDA_BODY(cuda::gather(dev, f32(x), index.raw_data(), dtype_size(index.dtype()), f32(y), y.numel(), g));
      });
  if (auto* tr = active_tracer()) tr->record({op, {x, index}, y});
  return y;
}

// into += the scatter of src by index through g, no autograd.
void scatter_add_raw(const Tensor& src, const Tensor& index, Tensor& into, const kern::GatherIndex& g, const char* op) {
  const bool wide = index.dtype() == DType::kInt64;
  dispatch(
      into, op,
      [&](auto t) {
        using T = decltype(t);
        if (wide) {
          cpu::scatter_add_acc(src.data<T>(), index.data<int64_t>(), into.data<T>(), g);
        } else {
          cpu::scatter_add_acc(src.data<T>(), index.data<int32_t>(), into.data<T>(), g);
        }
      },
      [&](int dev) {
        DL_CUDA_BODY(cuda::scatter_add_acc(dev, f32(src), index.raw_data(), dtype_size(index.dtype()), f32(into), g));
      });
}

// A gather whose index is known good, with its backward (the scatter-add into zeros).
Tensor gather_recorded(const Tensor& x, const Tensor& index, const Shape& out, const kern::GatherIndex& g,
                       const char* op) {
  Tensor y = gather_raw(x, index, out, g, op);
  const Shape in_shape = x.shape();
  return autograd::record(op, y, {x}, [in_shape, index, g](const Tensor& gy, const std::vector<bool>&) {
    Tensor gx = Tensor::zeros(in_shape, gy.dtype(), gy.device());
    scatter_add_raw(gy, index, gx, g, "gather_backward");
    return std::vector<Tensor>{gx};
  });
}

int wrap(int64_t dim, const Tensor& x, const char* op) {
  DL_CHECK(x.dim() >= 1, op, ": expected at least one dimension, got a scalar");
  DL_CHECK(dim >= -x.dim() && dim < x.dim(), op, ": dimension ", dim, " is out of range for shape ", x.shape().str(),
           " (expected [", -x.dim(), ", ", x.dim(), "))");
  return static_cast<int>(dim < 0 ? dim + x.dim() : dim);
}

// index of x's rank, index.size(d) <= x.size(d) off dim, on x's device.
void check_gather_shapes(const Tensor& x, int d, const Tensor& index, const char* op) {
  DL_CHECK(index.device() == x.device(), op, ": index on ", index.device().str(), ", x on ", x.device().str());
  bool fits = index.dim() == x.dim();
  for (int k = 0; fits && k < x.dim(); ++k) fits = k == d || index.size(k) <= x.size(k);
  DL_CHECK(fits, op, ": index of shape ", index.shape().str(), " does not fit x of shape ", x.shape().str(),
           " (expected ", x.dim(), " dimensions, each but dimension ", d, " at most x's size)");
}

Tensor pick(const Tensor& x, int64_t dim, bool keepdim, bool smallest, const char* op) {
  if (is_bf16(x)) return pick(float32_of(x), dim, keepdim, smallest, op);  // Note [bf16 activations]
  check_float(x, op, "x");
  const int d = wrap(dim, x, op);
  TracePause pause;  // traced as one reduction, not as the argmax and the gather below
  const Tensor index = smallest ? argmin(x, d, true) : argmax(x, d, true);
  Tensor y =
      gather_recorded(x, index, index.shape(), gather_index(x.shape(), d, index.shape(), index.shape(), false), op);
  if (!keepdim) y = squeeze(y, d);
  pause.resume();
  if (auto* tr = active_tracer()) tr->record({op, {x}, y, TraceAttrs::of_ints({d}, keepdim)});
  return y;
}

}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  if (is_bf16(x)) return gather(float32_of(x), dim, index);  // Note [bf16 activations]
  const char* op = "gather";
  check_float(x, op, "x");
  check_index_dtype(index, op);
  const int d = wrap(dim, x, op);
  check_gather_shapes(x, d, index, op);
  check_index_values(index, x.size(d), op, d, x.shape());
  return gather_recorded(x, index, index.shape(), gather_index(x.shape(), d, index.shape(), index.shape(), false), op);
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  if (is_bf16(x) || is_bf16(src))
    return scatter_add(float32_of(x), dim, index, float32_of(src));  // Note [bf16 activations]
  const char* op = "scatter_add";
  check_float(x, op, "x");
  check_float(src, op, "src");
  check_same({{"x", &x}, {"src", &src}}, op);
  check_index_dtype(index, op);
  const int d = wrap(dim, x, op);
  check_gather_shapes(x, d, index, op);
  DL_CHECK(src.shape() == index.shape(), op, ": src of shape ", src.shape().str(), " and index of shape ",
           index.shape().str(), " differ (expected one value per index)");
  check_index_values(index, x.size(d), op, d, x.shape());
  const kern::GatherIndex g = gather_index(x.shape(), d, index.shape(), index.shape(), false);
  Tensor y = x.clone();
  scatter_add_raw(src, index, y, g, op);
  return autograd::record(op, y, {x, src}, [index, g](const Tensor& gy, const std::vector<bool>& needs) {
    return std::vector<Tensor>{needs[0] ? gy : Tensor(),
                               needs[1] ? gather_raw(gy, index, index.shape(), g, "scatter_add_backward") : Tensor()};
  });
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  if (is_bf16(x)) return index_select(float32_of(x), dim, index);  // Note [bf16 activations]
  const char* op = "index_select";
  check_float(x, op, "x");
  check_index_dtype(index, op);
  const int d = wrap(dim, x, op);
  DL_CHECK(index.dim() == 1, op, ": expected a one-dimensional index, got shape ", index.shape().str());
  DL_CHECK(index.device() == x.device(), op, ": index on ", index.device().str(), ", x on ", x.device().str());
  check_index_values(index, x.size(d), op, d, x.shape());
  Shape out = x.shape();
  out[d] = index.numel();
  TracePause pause;  // traced with its dimension, not as the gather below
  Tensor y = gather_recorded(x, index, out, gather_index(x.shape(), d, out, index.shape(), true), op);
  pause.resume();
  if (auto* tr = active_tracer()) tr->record({op, {x, index}, y, TraceAttrs::of_ints({d})});
  return y;
}

Tensor max(const Tensor& x, int64_t dim, bool keepdim) { return pick(x, dim, keepdim, false, "max"); }
Tensor min(const Tensor& x, int64_t dim, bool keepdim) { return pick(x, dim, keepdim, true, "min"); }

}  // namespace dl::ops
