// Front ends of reshape, flatten and concat along channels.
#include "dl/ops/shape_ops.h"

#include "backend/cpu/cpu_ops.h"
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
