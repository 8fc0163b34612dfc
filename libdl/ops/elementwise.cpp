// Front ends of the element-wise ops and their backward functions.
#include "dl/ops/elementwise.h"

#include "backend/cpu/cpu_ops.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

namespace {
// Runs y = f(a, b) for two same-shaped float tensors.
template <typename Body, typename CudaBody>
Tensor binary(const Tensor& a, const Tensor& b, const char* op, Body body, CudaBody cuda_body) {
  check_float(a, op, "a");
  check_float(b, op, "b");
  check_same({{"a", &a}, {"b", &b}}, op);
  DL_CHECK(a.shape() == b.shape(), op, ": shapes must match, got ", a.shape().str(), " and ", b.shape().str());
  Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
  dispatch(
      a, op,
      [&](auto t) {
        using T = decltype(t);
        body(a.data<T>(), b.data<T>(), y.data<T>(), a.numel());
      },
      [&](int dev) { cuda_body(dev, f32(a), f32(b), f32(y), a.numel()); });
  return y;
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = binary(
      a, b, "add", [](auto pa, auto pb, auto py, int64_t n) { cpu::add(pa, pb, py, n); },
      [](int dev, const float* pa, const float* pb, float* py, int64_t n) {
        DL_CUDA_BODY(cuda::add(dev, pa, pb, py, n));
      });
  return autograd::record("add", y, {a, b}, [](const Tensor& gy, const std::vector<bool>&) {
    return std::vector<Tensor>{gy, gy};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary(
      a, b, "sub", [](auto pa, auto pb, auto py, int64_t n) { cpu::sub(pa, pb, py, n); },
      [](int dev, const float* pa, const float* pb, float* py, int64_t n) {
        DL_CUDA_BODY(cuda::sub(dev, pa, pb, py, n));
      });
  return autograd::record("sub", y, {a, b}, [](const Tensor& gy, const std::vector<bool>& needs) {
    return std::vector<Tensor>{gy, needs[1] ? scale(gy, -1.0) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary(
      a, b, "mul", [](auto pa, auto pb, auto py, int64_t n) { cpu::mul(pa, pb, py, n); },
      [](int dev, const float* pa, const float* pb, float* py, int64_t n) {
        DL_CUDA_BODY(cuda::mul(dev, pa, pb, py, n));
      });
  Tensor sa = a.detach(), sb = b.detach();
  return autograd::record("mul", y, {a, b}, [sa, sb](const Tensor& gy, const std::vector<bool>& needs) {
    return std::vector<Tensor>{needs[0] ? mul(gy, sb) : Tensor(), needs[1] ? mul(gy, sa) : Tensor()};
  });
}

Tensor scale(const Tensor& a, double s) {
  check_float(a, "scale", "a");
  Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
  dispatch(
      a, "scale",
      [&](auto t) {
        using T = decltype(t);
        cpu::scale(a.data<T>(), static_cast<T>(s), y.data<T>(), a.numel());
      },
      [&](int dev) { DL_CUDA_BODY(cuda::scale(dev, f32(a), static_cast<float>(s), f32(y), a.numel())); });
  return autograd::record(
      "scale", y, {a}, [s](const Tensor& gy, const std::vector<bool>&) { return std::vector<Tensor>{scale(gy, s)}; });
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
  check_float(a, "sum", "a");
  Tensor y = Tensor::empty({1}, a.dtype(), a.device());
  dispatch(
      a, "sum",
      [&](auto t) {
        using T = decltype(t);
        y.data<T>()[0] = cpu::sum(a.data<T>(), a.numel());
      },
      [&](int dev) { DL_CUDA_BODY(cuda::sum(dev, f32(a), f32(y), a.numel())); });
  const Shape shape = a.shape();
  return autograd::record("sum", y, {a}, [shape](const Tensor& gy, const std::vector<bool>&) {
    if (gy.device().is_cuda()) {  // broadcast on the device: no read of gy by the host
      Tensor gx = Tensor::empty(shape, gy.dtype(), gy.device());
      dispatch(
          gy, "sum_backward", [](auto) {},
          [&](int dev) { DL_CUDA_BODY(cuda::broadcast_scalar(dev, f32(gy), 1.f, f32(gx), gx.numel())); });
      return std::vector<Tensor>{gx};
    }
    return std::vector<Tensor>{Tensor::full(shape, gy.item<double>(), gy.dtype(), gy.device())};
  });
}

double squared_norm(const Tensor& a) {
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

Tensor mean(const Tensor& a) {
  DL_CHECK(a.defined() && a.numel() > 0, "mean: expected a non-empty tensor");
  return scale(sum(a), 1.0 / static_cast<double>(a.numel()));
}

}  // namespace dl::ops
