// Front ends of the element-wise ops: the broadcasting binary family (functors of
// kernels/binary_ops.cuh over the strided indices of ops/broadcast.h), comparisons, where, the unary
// math ops (the unary family of ops/unary.h) and the sums, each with its backward beside it.
#include "dl/ops/elementwise.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/broadcast.h"
#include "ops/dispatch.h"
#include "ops/unary.h"

namespace dl::ops {

using namespace detail;

namespace {

// a's and b's shapes with b undefined (a scalar): the scalar's shape is [], which broadcasts to anything.
Shape shape_or_scalar(const Tensor& t) { return t.defined() ? t.shape() : Shape{}; }

// A scalar as a float32 operand: beyond float32's range it is +-infinity, as the float32 product would be
// (a loss scaler's huge scale must overflow, not be refused), never a cast out of range (undefined).
float to_float(double s) {
  constexpr double kMax = std::numeric_limits<float>::max();
  return s > kMax    ? std::numeric_limits<float>::infinity()
         : s < -kMax ? -std::numeric_limits<float>::infinity()
                     : static_cast<float>(s);
}
template <typename T>
T scalar_as(double s) {
  if constexpr (std::is_same_v<T, float>)
    return to_float(s);
  else
    return static_cast<T>(s);
}

// Checks a binary op's operands (b undefined: a scalar) and gives the output shape and the index.
std::pair<Shape, kern::StridedIndex<2>> operands(const char* name, const Tensor& a, const Tensor& b) {
  check_float(a, name, "a");
  Shape out = a.shape();
  if (b.defined()) {
    check_float(b, name, "b");
    check_same({{"a", &a}, {"b", &b}}, name);
    out = broadcast_shapes(a.shape(), b.shape(), name);
  }
  return {out, broadcast_index<2>(out, {a.shape(), shape_or_scalar(b)})};
}

// a + b, or a - b, of two bfloat16 tensors of one shape and memory format on the CPU, over their storage.
Tensor add_bf16(const char* name, bool subtract, const Tensor& a, const Tensor& b) {
  Tensor y = empty_like(a);
  const Tensor as = storage(a), bs = storage(b);
  Tensor ys = storage(y);
  const auto* pa = reinterpret_cast<const uint16_t*>(as.data<BFloat16>());
  const auto* pb = reinterpret_cast<const uint16_t*>(bs.data<BFloat16>());
  auto* py = reinterpret_cast<uint16_t*>(ys.data<BFloat16>());
  const int64_t n = a.numel();
  const float sign = subtract ? -1.0f : 1.0f;
#pragma omp parallel for simd if (n >= 65536)
  for (int64_t i = 0; i < n; ++i)
    py[i] = kern::float_to_bf16_bits(kern::bf16_bits_to_float(pa[i]) + sign * kern::bf16_bits_to_float(pb[i]));
  if (auto* tr = active_tracer()) tr->record({name, {a, b}, y, TraceAttrs::of_reals({0.0}, false)});
  const MemoryFormat f = a.memory_format();
  return autograd::record(name, y, {a, b}, [f, subtract](const Tensor& gy_in, const std::vector<bool>& needs) {
    const Tensor gy = to_memory_format(gy_in, f);
    return std::vector<Tensor>{needs[0] ? gy : Tensor(), needs[1] ? (subtract ? neg(gy) : gy) : Tensor()};
  });
}

// y = op(a, b) broadcast, or op(a, s) when b is undefined. The backward writes output-sized partials
// (none for add and sub, whose partials are dy and -dy) and sums each down to its operand's shape.
template <typename Op>
Tensor binary(const char* name, const Op& op, const Tensor& a, const Tensor& b, double s) {
  // Note [bf16 activations]: two bfloat16 operands of one shape and format on the CPU add (or subtract) as
  // they are, the residual connection's case; anything else is computed in float32, and gives bfloat16 back
  // when no operand is a float32 tensor.
  if constexpr (Op::kLinear) {
    if (is_bf16(a) && is_bf16(b) && a.device().is_cpu() && b.device().is_cpu() && a.shape() == b.shape() &&
        a.memory_format() == b.memory_format())
      return add_bf16(name, std::is_same_v<Op, kern::SubOp>, a, b);
  }
  if (is_bf16(a) || is_bf16(b)) {
    Tensor y = binary(name, op, float32_of(a), float32_of(b), s);
    return is_bf16(a) && (!b.defined() || is_bf16(b)) ? bf16_of(y) : y;
  }
  // Note [element-wise formats]: a channels-last a with a scalar or a same-shaped channels-last b runs over
  // the storage order; any other mix with a channels-last operand is computed in NCHW (and a channels-last
  // a keeps its format in the result).
  const bool a_cl = a.defined() && a.is_channels_last();
  if (a_cl || (b.defined() && b.is_channels_last())) {
    const bool same = a_cl && (!b.defined() || (b.is_channels_last() && b.shape() == a.shape()));
    if (!same) {
      Tensor y = binary(name, op, contiguous(a), b.defined() ? contiguous(b) : b, s);
      return a_cl && y.shape() == a.shape() ? channels_last(y) : y;
    }
  }
  const Tensor as = storage(a), bs = storage(b);
  const std::pair<Shape, kern::StridedIndex<2>> checked = operands(name, as, bs);
  const Shape out = checked.first;  // named copies: lambdas below capture them (clang 14 cannot capture bindings)
  const kern::StridedIndex<2> ix = checked.second;
  Tensor ys = Tensor::empty(out, a.dtype(), a.device());
  const Tensor y = a_cl ? Tensor::channels_last_view(ys) : ys;
  const int64_t n = ys.numel();
  dispatch(
      a, name,
      [&](auto t) {
        using T = decltype(t);
        cpu::broadcast_binary(op, as.data<T>(), ptr_or_null<T>(bs), scalar_as<T>(s), ys.data<T>(), n, ix);
      },
      [&](int dev) { DL_CUDA_BODY(cuda::broadcast_binary(dev, op, f32(as), f32(bs), to_float(s), f32(ys), n, ix)); });
  if (auto* tr = active_tracer()) tr->record({name, {a, b}, y, TraceAttrs::of_reals({s}, !b.defined())});
  if (!autograd::needs_record({a, b})) return y;
  // Note [saved for backward]: only what the wanted partials read (the functor's kGradA/kGradB) stays
  // alive with the graph; a scalar's partials for a read nothing but the scalar.
  const unsigned uses = (a.requires_grad() ? Op::kGradA : 0u) | (b.defined() && b.requires_grad() ? Op::kGradB : 0u);
  const Shape a_shape = as.shape(), b_shape = shape_or_scalar(bs);
  const Tensor sa = uses & kern::kUsesA ? as.detach() : Tensor();
  const Tensor sb = b.defined() && (uses & kern::kUsesB) ? bs.detach() : Tensor();
  const Tensor sy = uses & kern::kUsesY ? ys.detach() : Tensor();
  const MemoryFormat fy = y.memory_format();
  return autograd::record(name, y, {a, b}, [=](const Tensor& gy_in, const std::vector<bool>& needs) {
    const Tensor gy = storage(to_memory_format(gy_in, fy));
    const bool want_b = needs.size() > 1 && needs[1];
    Tensor ga, gb;
    if constexpr (Op::kLinear) {
      if (needs[0]) ga = gy;
      if (want_b) gb = std::is_same_v<Op, kern::SubOp> ? neg(gy) : gy;
    } else {
      if (needs[0]) ga = Tensor::empty(out, gy.dtype(), gy.device());
      if (want_b) gb = Tensor::empty(out, gy.dtype(), gy.device());
      dispatch(
          gy, name,
          [&](auto t) {
            using T = decltype(t);
            cpu::broadcast_binary_backward(op, ptr_or_null<T>(sa), ptr_or_null<T>(sb), scalar_as<T>(s),
                                           ptr_or_null<T>(sy), gy.data<T>(), out_or_null<T>(ga), out_or_null<T>(gb), n,
                                           ix);
          },
          [&](int dev) {
            DL_CUDA_BODY(cuda::broadcast_binary_backward(dev, op, f32(sa), f32(sb), to_float(s), f32(sy), f32(gy),
                                                         f32(ga), f32(gb), n, ix));
          });
    }
    // Back from the storage order (same-shaped operands: sum_to is the identity there).
    auto in_format = [a_cl](const Tensor& g) { return a_cl ? Tensor::channels_last_view(g) : g; };
    return std::vector<Tensor>{ga.defined() ? in_format(sum_to(ga, a_shape)) : Tensor(),
                               gb.defined() ? in_format(sum_to(gb, b_shape)) : Tensor()};
  });
}

bool is_index_dtype(DType t) { return t == DType::kInt32 || t == DType::kInt64; }

// A comparison of int32 / int64 tensors (class indices against labels): an int32 and an int64 operand
// compare as int64 (argmax's int32 classes against PyTorch's int64 labels); a scalar must be a whole
// number in the tensor's range, since rounding it would change the answer.
template <typename Op>
Tensor compare_indices(const char* name, const Op& op, Tensor a, Tensor b, double s) {
  if (b.defined()) {
    DL_CHECK(is_index_dtype(b.dtype()), name, ": 'a' is ", dtype_name(a.dtype()), " but 'b' is ", dtype_name(b.dtype()),
             "; integer tensors compare with int32 or int64 tensors");
    if (a.dtype() != b.dtype()) a = a.to(DType::kInt64), b = b.to(DType::kInt64);
    check_same({{"a", &a}, {"b", &b}}, name);
  } else {
    const double lo = a.dtype() == DType::kInt32 ? -2147483648.0 : -9223372036854775808.0;
    DL_CHECK(s == std::floor(s) && s >= lo && s < -lo, name, ": a ", dtype_name(a.dtype()),
             " tensor compares with a whole number in its range, got ", s);
  }
  const Shape out = b.defined() ? broadcast_shapes(a.shape(), b.shape(), name) : a.shape();
  const kern::StridedIndex<2> ix = broadcast_index<2>(out, {a.shape(), shape_or_scalar(b)});
  Tensor y = Tensor::empty(out, DType::kBool, a.device());
  auto* py = static_cast<uint8_t*>(y.raw_data());
  auto run = [&](auto t) {
    using T = decltype(t);
    if (a.device().is_cpu())
      cpu::compare(op, a.data<T>(), ptr_or_null<T>(b), static_cast<T>(s), py, y.numel(), ix);
    else
      DL_CUDA_BODY(
          cuda::compare(a.device().index, op, a.data<T>(), ptr_or_null<T>(b), static_cast<T>(s), py, y.numel(), ix));
  };
  if (a.dtype() == DType::kInt32)
    run(int32_t{});
  else
    run(int64_t{});
  if (auto* tr = active_tracer()) tr->record({name, {a, b}, y, TraceAttrs::of_reals({s}, !b.defined())});
  return y;
}

template <typename Op>
Tensor compare(const char* name, const Op& op, const Tensor& a, const Tensor& b, double s) {
  check_defined(a, name, "a");
  if (is_index_dtype(a.dtype())) return compare_indices(name, op, a, b, s);
  if (is_bf16(a) || is_bf16(b)) return compare(name, op, float32_of(a), float32_of(b), s);  // Note [bf16 activations]
  const std::pair<Shape, kern::StridedIndex<2>> checked = operands(name, a, b);
  const Shape out = checked.first;  // named copies: lambdas below capture them (clang 14 cannot capture bindings)
  const kern::StridedIndex<2> ix = checked.second;
  Tensor y = Tensor::empty(out, DType::kBool, a.device());
  auto* py = static_cast<uint8_t*>(y.raw_data());  // the kernels write 0 or 1 bytes: bools
  dispatch(
      a, name,
      [&](auto t) {
        using T = decltype(t);
        cpu::compare(op, a.data<T>(), ptr_or_null<T>(b), scalar_as<T>(s), py, y.numel(), ix);
      },
      [&](int dev) { DL_CUDA_BODY(cuda::compare(dev, op, f32(a), f32(b), to_float(s), py, y.numel(), ix)); });
  if (auto* tr = active_tracer()) tr->record({name, {a, b}, y, TraceAttrs::of_reals({s}, !b.defined())});
  return y;
}

// out = cond ? a : b over `out`, a or b undefined reading 0 (the backward routes dy this way).
Tensor select(const Tensor& cond, const Tensor& a, const Tensor& b, const Shape& out, DType dtype, Device device) {
  const kern::StridedIndex<3> ix = broadcast_index<3>(out, {cond.shape(), shape_or_scalar(a), shape_or_scalar(b)});
  Tensor y = Tensor::empty(out, dtype, device);
  const Tensor& any = a.defined() ? a : b;
  dispatch(
      any, "where",
      [&](auto t) {
        using T = decltype(t);
        cpu::where(static_cast<const uint8_t*>(cond.raw_data()), ptr_or_null<T>(a), ptr_or_null<T>(b), y.data<T>(),
                   y.numel(), ix);
      },
      [&](int dev) {
        DL_CUDA_BODY(
            cuda::where(dev, static_cast<const uint8_t*>(cond.raw_data()), f32(a), f32(b), f32(y), y.numel(), ix));
      });
  return y;
}

// The dimensions of `dims` as flags over x's dimensions (all of them when dims is empty); throws on a
// dimension out of range or named twice.
std::vector<bool> reduced_dims(const Shape& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<bool> reduce(static_cast<size_t>(x.ndim()), dims.empty());
  for (int64_t d : dims) {
    DL_CHECK(d >= -x.ndim() && d < x.ndim(), op, ": dimension ", d, " is out of range for shape ", x.str());
    const size_t k = static_cast<size_t>(d < 0 ? d + x.ndim() : d);
    DL_CHECK(!reduce[k], op, ": dimension ", d, " is named twice");
    reduce[k] = true;
  }
  return reduce;
}

// scale * the sum of x over the flagged dimensions, in the shape that keeps them as sizes of 1.
Tensor reduce(const Tensor& x, const std::vector<bool>& flags, double scale, const char* op) {
  std::vector<int64_t> kept = x.shape().vec();
  for (size_t d = 0; d < flags.size(); ++d)
    if (flags[d]) kept[d] = 1;
  const ReduceIndex r = reduce_index(x.shape(), flags);
  Tensor y = Tensor::empty(Shape(kept), x.dtype(), x.device());
  dispatch(
      x, op,
      [&](auto t) {
        using T = decltype(t);
        cpu::reduce_sum(x.data<T>(), y.data<T>(), r.n_out, r.kept, r.reduced, r.n_red, scale);
      },
      [&](int dev) {
        DL_CUDA_BODY(cuda::reduce_sum(dev, f32(x), f32(y), r.n_out, r.kept, r.reduced, r.n_red, scale));
      });
  return y;
}

// sum or mean over dims, with its backward (dy expanded back, times the mean's scale).
// The dimensions that `flags` marks, for a trace.
std::vector<int64_t> trace_dims(const std::vector<bool>& flags) {
  std::vector<int64_t> dims;
  for (size_t d = 0; d < flags.size(); ++d)
    if (flags[d]) dims.push_back(static_cast<int64_t>(d));
  return dims;
}

Tensor sum_over(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim, bool average, const char* op) {
  if (is_bf16(a)) return sum_over(float32_of(a), dims, keepdim, average, op);  // Note [bf16 activations]
  check_float(a, op, "a");
  // The reductions index NCHW: a channels-last a is reordered first (Note [memory format]).
  if (a.is_channels_last()) return sum_over(contiguous(a), dims, keepdim, average, op);
  const std::vector<bool> flags = reduced_dims(a.shape(), dims, op);
  int64_t count = 1;
  std::vector<int64_t> squeezed;
  for (int d = 0; d < a.dim(); ++d) {
    if (flags[static_cast<size_t>(d)])
      count *= a.shape()[d];
    else
      squeezed.push_back(a.shape()[d]);
  }
  const double scale = average ? 1.0 / static_cast<double>(count) : 1.0;
  DL_CHECK(!average || count > 0, op, ": the mean of no elements (shape ", a.shape().str(), ")");
  Tensor y = reduce(a, flags, scale, op);
  const Shape kept_shape = y.shape();
  if (!keepdim) y = y.view(squeezed.empty() ? Shape{1} : Shape(squeezed));
  if (auto* tr = active_tracer()) tr->record({op, {a}, y, TraceAttrs::of_ints(trace_dims(flags), keepdim)});
  const Shape shape = a.shape();
  return autograd::record(op, y, {a}, [=](const Tensor& gy, const std::vector<bool>&) {
    Tensor g = gy.view(kept_shape);
    if (average) g = mul(g, scale);
    return std::vector<Tensor>{expand(g, shape)};
  });
}

}  // namespace

// Each binary op and comparison in its two forms: with a tensor and with a scalar on the right.
#define DL_BINARY_FRONT_END(name, family, Op)                                                  \
  Tensor name(const Tensor& a, const Tensor& b) { return family(#name, kern::Op{}, a, b, 0); } \
  Tensor name(const Tensor& a, double s) { return family(#name, kern::Op{}, a, Tensor(), s); }
DL_BINARY_FRONT_END(add, binary, AddOp)
DL_BINARY_FRONT_END(sub, binary, SubOp)
DL_BINARY_FRONT_END(mul, binary, MulOp)
DL_BINARY_FRONT_END(div, binary, DivOp)
DL_BINARY_FRONT_END(pow, binary, PowOp)
DL_BINARY_FRONT_END(maximum, binary, MaximumOp)
DL_BINARY_FRONT_END(minimum, binary, MinimumOp)
DL_BINARY_FRONT_END(eq, compare, EqOp)
DL_BINARY_FRONT_END(ne, compare, NeOp)
DL_BINARY_FRONT_END(lt, compare, LtOp)
DL_BINARY_FRONT_END(le, compare, LeOp)
DL_BINARY_FRONT_END(gt, compare, GtOp)
DL_BINARY_FRONT_END(ge, compare, GeOp)
#undef DL_BINARY_FRONT_END
Tensor scale(const Tensor& a, double s) { return mul(a, s); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  if (is_bf16(a) || is_bf16(b)) {  // Note [bf16 activations]: bfloat16 back when both are
    const Tensor y = where(cond, float32_of(a), float32_of(b));
    return is_bf16(a) && is_bf16(b) ? bf16_of(y) : y;
  }
  check_defined(cond, "where", "cond");
  check_float(a, "where", "a");
  check_float(b, "where", "b");
  check_same({{"a", &a}, {"b", &b}}, "where");
  DL_CHECK(cond.dtype() == DType::kBool || cond.dtype() == DType::kUInt8,
           "where: expected 'cond' to be a bool mask (as the comparisons return) or uint8 (nonzero is true), got ",
           dtype_name(cond.dtype()));
  DL_CHECK(cond.device() == a.device(), "where: 'cond' is on ", cond.device().str(), " but 'a' is on ",
           a.device().str());
  const Shape out = broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  Tensor y = select(cond, a, b, out, a.dtype(), a.device());
  if (auto* tr = active_tracer()) tr->record({"where", {cond, a, b}, y});
  const Tensor sc = cond;
  const Shape sa = a.shape(), sb = b.shape();
  return autograd::record("where", y, {a, b}, [=](const Tensor& gy, const std::vector<bool>& needs) {
    return std::vector<Tensor>{
        needs[0] ? sum_to(select(sc, gy, Tensor(), out, gy.dtype(), gy.device()), sa) : Tensor(),
        needs[1] ? sum_to(select(sc, Tensor(), gy, out, gy.dtype(), gy.device()), sb) : Tensor()};
  });
}

Tensor exp(const Tensor& x) { return unary(x, "exp", kern::ExpOp{}); }
Tensor log(const Tensor& x) { return unary(x, "log", kern::LogOp{}); }
Tensor sqrt(const Tensor& x) { return unary(x, "sqrt", kern::SqrtOp{}); }
Tensor rsqrt(const Tensor& x) { return unary(x, "rsqrt", kern::RsqrtOp{}); }
Tensor abs(const Tensor& x) { return unary(x, "abs", kern::AbsOp{}); }
Tensor neg(const Tensor& x) { return unary(x, "neg", kern::NegOp{}); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  DL_CHECK(lo <= hi, "clamp: expected lo <= hi, got lo ", lo, " and hi ", hi);
  return unary(x, "clamp", kern::ClampOp{to_float(lo), to_float(hi)});  // beyond float32: +-infinity
}

void add_(Tensor& dst, const Tensor& src, double alpha) {
  check_float(dst, "add_", "dst");
  check_float(src, "add_", "src");
  check_same({{"dst", &dst}, {"src", &src}}, "add_");
  DL_CHECK(dst.shape() == src.shape(), "add_: shapes must match, got ", dst.shape().str(), " and ", src.shape().str());
  dispatch(
      dst, "add_",
      [&](auto t) {
        using T = decltype(t);
        cpu::axpy_acc(static_cast<T>(alpha), src.data<T>(), dst.data<T>(), dst.numel());
      },
      [&](int dev) { DL_CUDA_BODY(cuda::axpy_acc(dev, static_cast<float>(alpha), f32(src), f32(dst), dst.numel())); });
}

Tensor sum(const Tensor& a) {
  if (is_bf16(a)) return sum(float32_of(a));  // Note [bf16 activations]
  check_float(a, "sum", "a");
  Tensor y = Tensor::empty({1}, a.dtype(), a.device());
  const Tensor as = storage(a);  // every element once: either memory format
  dispatch(
      a, "sum",
      [&](auto t) {
        using T = decltype(t);
        y.data<T>()[0] = cpu::sum(as.data<T>(), a.numel());
      },
      [&](int dev) { DL_CUDA_BODY(cuda::sum(dev, f32(as), f32(y), a.numel())); });
  if (auto* tr = active_tracer()) tr->record({"sum", {a}, y});  // no dims: all of them, to shape [1]
  const Shape shape = a.shape();
  const MemoryFormat fmt = a.memory_format();
  return autograd::record("sum", y, {a}, [shape, fmt](const Tensor& gy, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(shape, gy.dtype(), gy.device(), fmt);
    if (gy.device().is_cuda()) {  // broadcast on the device: no read of gy by the host
      Tensor gxs = storage(gx);
      dispatch(
          gy, "sum_backward", [](auto) {},
          [&](int dev) { DL_CUDA_BODY(cuda::broadcast_scalar(dev, f32(gy), 1.f, f32(gxs), gx.numel())); });
      return std::vector<Tensor>{gx};
    }
    gx.fill_(gy.item<double>());
    return std::vector<Tensor>{gx};
  });
}

Tensor mean(const Tensor& a) {
  DL_CHECK(a.defined() && a.numel() > 0, "mean: expected a non-empty tensor");
  return scale(sum(a), 1.0 / static_cast<double>(a.numel()));
}

Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_over(a, dims, keepdim, false, "sum");
}
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_over(a, dims, keepdim, true, "mean");
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (is_bf16(x)) return x.shape() == shape ? x : bf16_of(sum_to(float32_of(x), shape));  // Note [bf16 activations]
  check_float(x, "sum_to", "x");
  if (x.shape() == shape) return x;
  if (x.is_channels_last()) return sum_to(contiguous(x), shape);  // the reduction indexes NCHW
  const Shape& s = x.shape();
  DL_CHECK(broadcast_shapes(s, shape, "sum_to") == s, "sum_to: shape ", shape.str(), " does not broadcast to ",
           s.str());
  const int lead = s.ndim() - shape.ndim();
  std::vector<bool> flags(static_cast<size_t>(s.ndim()));
  for (int d = 0; d < s.ndim(); ++d) flags[static_cast<size_t>(d)] = d < lead || (shape[d - lead] == 1 && s[d] != 1);
  Tensor y = reduce(x, flags, 1.0, "sum_to").view(shape);
  return autograd::record(
      "sum_to", y, {x}, [s](const Tensor& gy, const std::vector<bool>&) { return std::vector<Tensor>{expand(gy, s)}; });
}

double squared_norm(const Tensor& a) {
  if (is_bf16(a)) return squared_norm(float32_of(a));  // Note [bf16 activations]
  check_float(a, "squared_norm", "a");
  double result = 0;
  dispatch(
      a, "squared_norm",
      [&](auto t) {
        using T = decltype(t);
        const T* p = a.data<T>();
        for (int64_t i = 0; i < a.numel(); ++i) result += static_cast<double>(p[i]) * static_cast<double>(p[i]);
      },
      [&](int dev) {
        Tensor out = Tensor::empty({1}, DType::kFloat64, a.device());
        DL_CUDA_BODY(cuda::sum_squares(dev, f32(a), out.data<double>(), a.numel()));
        result = out.item<double>();
      });
  return result;
}

double squared_norm(const std::vector<Tensor>& tensors) {
  std::vector<const Tensor*> given;
  for (const Tensor& t : tensors)
    if (t.defined()) given.push_back(&t);
  if (given.empty()) return 0;
  const Device device = given[0]->device();
  for (const Tensor* t : given) {
    check_float(*t, "squared_norm", "tensors");
    DL_CHECK(t->device() == device, "squared_norm: expected tensors on one device, got ", device.str(), " and ",
             t->device().str());
  }
  double total = 0;
  if (device.is_cpu()) {
    for (const Tensor* t : given) total += squared_norm(*t);
    return total;
  }
  // Each tensor's sum into its own slot on the device, then one read of them all.
  Tensor parts = Tensor::empty({static_cast<int64_t>(given.size())}, DType::kFloat64, device);
  for (size_t i = 0; i < given.size(); ++i) {
    const Tensor& a = *given[i];
    dispatch(
        a, "squared_norm", [](auto) {},
        [&](int dev) { DL_CUDA_BODY(cuda::sum_squares(dev, f32(a), parts.data<double>() + i, a.numel())); });
  }
  const Tensor host = parts.to(Device::cpu());
  for (size_t i = 0; i < given.size(); ++i) total += host.data<double>()[i];
  return total;
}

}  // namespace dl::ops
