// Front ends of reshape, flatten, expand, permute, transpose and concat along channels.
#include "dl/ops/shape_ops.h"

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/elementwise.h"
#include "ops/broadcast.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

Tensor reshape(const Tensor& x, const Shape& shape) {
  check_defined(x, "reshape", "x");
  Tensor y = x.view(shape);
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
// y[i] = x[ix.offset(i)] into a new contiguous tensor of `shape`, for any dtype.
Tensor strided_copy(const Tensor& x, const Shape& shape, const kern::StridedIndex<1>& ix, const char* op) {
  Tensor y = Tensor::empty(shape, x.dtype(), x.device());
  const int64_t n = y.numel();
  if (x.device().is_cuda()) {
    DL_CUDA_BODY(cuda::strided_copy(x.device().index, x.raw_data(), y.raw_data(), dtype_size(x.dtype()), n, ix));
    return y;
  }
  DL_CHECK(x.device().is_cpu(), op, ": no body for device ", x.device().str());
  switch (x.dtype()) {
    case DType::kFloat32:
      cpu::strided_copy(x.data<float>(), y.data<float>(), n, ix);
      break;
    case DType::kFloat64:
      cpu::strided_copy(x.data<double>(), y.data<double>(), n, ix);
      break;
    case DType::kInt32:
      cpu::strided_copy(x.data<int32_t>(), y.data<int32_t>(), n, ix);
      break;
    case DType::kUInt8:
      cpu::strided_copy(x.data<uint8_t>(), y.data<uint8_t>(), n, ix);
      break;
    case DType::kInt64:
      cpu::strided_copy(x.data<int64_t>(), y.data<int64_t>(), n, ix);
      break;
  }
  return y;
}
}  // namespace

Tensor expand(const Tensor& x, const Shape& shape) {
  check_defined(x, "expand", "x");
  DL_CHECK(broadcast_shapes(x.shape(), shape, "expand") == shape, "expand: shape ", x.shape().str(),
           " does not broadcast to ", shape.str());
  if (x.shape() == shape) return x;
  Tensor y = strided_copy(x, shape, broadcast_index<1>(shape, {x.shape()}), "expand");
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

Tensor concat(const std::vector<Tensor>& xs) {
  DL_CHECK(!xs.empty(), "concat: expected at least one tensor");
  const Tensor& first = xs[0];
  check_float(first, "concat", "xs[0]");
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
  const int64_t n = first.size(0);
  int64_t s = 1;
  for (int d = 2; d < first.dim(); ++d) s *= first.size(d);
  Tensor y = Tensor::empty(out, first.dtype(), first.device());
  dispatch(
      first, "concat",
      [&](auto t) {
        using T = decltype(t);
        std::vector<const T*> ptrs;
        for (const Tensor& x : xs) ptrs.push_back(x.data<T>());
        cpu::concat_channels(ptrs.data(), cs.data(), static_cast<int>(xs.size()), n, s, y.data<T>());
      },
      [&](int dev) {
        DL_CHECK(xs.size() <= 8, "concat: the CUDA kernel joins at most 8 tensors, got ", xs.size());
        std::vector<const float*> ptrs;
        for (const Tensor& x : xs) ptrs.push_back(f32(x));
        DL_CUDA_BODY(cuda::concat_channels(dev, ptrs.data(), cs.data(), static_cast<int>(xs.size()), n, s, f32(y)));
      });
  std::vector<Shape> shapes;
  for (const Tensor& x : xs) shapes.push_back(x.shape());
  return autograd::record("concat", y, xs, [=](const Tensor& gy, const std::vector<bool>& needs) {
    std::vector<Tensor> gxs(shapes.size());
    for (size_t k = 0; k < shapes.size(); ++k)
      if (needs[k]) gxs[k] = Tensor::empty(shapes[k], gy.dtype(), gy.device());
    dispatch(
        gy, "concat_backward",
        [&](auto t) {
          using T = decltype(t);
          std::vector<T*> ptrs;
          for (Tensor& g : gxs) ptrs.push_back(g.defined() ? g.data<T>() : nullptr);
          cpu::split_channels(gy.data<T>(), cs.data(), static_cast<int>(cs.size()), n, s, ptrs.data());
        },
        [&](int dev) {
          std::vector<float*> ptrs;
          for (Tensor& g : gxs) ptrs.push_back(f32(g));
          DL_CUDA_BODY(cuda::split_channels(dev, f32(gy), cs.data(), static_cast<int>(cs.size()), n, s, ptrs.data()));
        });
    return gxs;
  });
}

}  // namespace dl::ops
