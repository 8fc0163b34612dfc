// CPU element-wise bodies (arithmetic, ReLU and the unary family of kernels/unary_ops.cuh).
#include <Eigen/Core>
#include <algorithm>
#include <cstdlib>
#include <unsupported/Eigen/SpecialFunctions>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/parallel.h"
#include "counter_rng.cuh"
#include "unary_ops.cuh"

namespace dl::cpu {

namespace {
template <typename T>
using Vec = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using CVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
constexpr int64_t kChunk = 1 << 15;

// Applies f(begin, length) over [0, n) in chunks, in parallel.
template <typename F>
void chunked(int64_t n, F&& f) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, kChunk, [&](int64_t i) {
    const int64_t b = i * kChunk;
    f(b, std::min(kChunk, n - b));
  });
}
}  // namespace

template <typename T>
void scale(const T* a, T s, T* y, int64_t n) {
  chunked(n, [&](int64_t o, int64_t m) { Vec<T>(y + o, m) = CVec<T>(a + o, m) * s; });
}
template <typename T>
void axpy_acc(T alpha, const T* x, T* y, int64_t n) {
  chunked(n, [&](int64_t o, int64_t m) { Vec<T>(y + o, m) += alpha * CVec<T>(x + o, m); });
}
template <typename T>
T sum(const T* a, int64_t n) {
  // Fixed chunking and a serial combine: the same result for any thread count.
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  parallel_for(chunks, kChunk, [&](int64_t i) {
    const int64_t b = i * kChunk;
    // Each chunk summed vectorised in T, the chunks in double (see Note [plane sums]).
    partial[i] = static_cast<double>(CVec<T>(a + b, std::min(kChunk, n - b)).sum());
  });
  double s = 0;
  for (double p : partial) s += p;
  return static_cast<T>(s);
}

template <typename T>
void dropout(const T* x, T* y, int64_t n, uint64_t seed, float p) {
  const T scale = T(1) / (T(1) - T(p));
  chunked(n, [&](int64_t o, int64_t m) {
    for (int64_t i = o; i < o + m; ++i) y[i] = kern::dropout_uniform(seed, i) >= p ? x[i] * scale : T(0);
  });
}

template <typename T>
void relu_forward(const T* x, T* y, int64_t n) {
  if constexpr (std::is_same_v<T, BFloat16>) {  // a NaN passes through
    chunked(n, [&](int64_t o, int64_t m) {
      const T* __restrict p = x + o;
      T* __restrict q = y + o;
#pragma omp simd
      for (int64_t i = 0; i < m; ++i) q[i] = ld(p[i]) <= 0.0f ? T() : p[i];
    });
  } else {
    chunked(n, [&](int64_t o, int64_t m) { Vec<T>(y + o, m) = CVec<T>(x + o, m).max(T(0)); });
  }
}
template <typename T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n) {
  if constexpr (std::is_same_v<T, BFloat16>) {
    chunked(n, [&](int64_t o, int64_t m) {
      const T* __restrict p = y + o;
      const T* __restrict d = dy + o;
      T* __restrict q = dx + o;
#pragma omp simd
      for (int64_t i = 0; i < m; ++i) q[i] = ld(p[i]) > 0.0f ? d[i] : T();
    });
  } else {
    chunked(n, [&](int64_t o, int64_t m) {
      Vec<T>(dx + o, m) = (CVec<T>(y + o, m) > T(0)).select(CVec<T>(dy + o, m), T(0));
    });
  }
}

// The unary family: the math of each functor of kernels/unary_ops.cuh as an Eigen expression (vectorised,
// float and double). x, y, dy are the chunk's arrays; fwd gives y, bwd gives dx.
namespace {
template <typename T, typename X>
auto fwd(const kern::SigmoidOp&, const X& x) {
  return T(1) / (T(1) + (-x).exp());
}
template <typename T, typename X>
auto bwd(const kern::SigmoidOp&, const X&, const X& y, const X& dy) {
  return dy * y * (T(1) - y);
}
template <typename T, typename X>
auto fwd(const kern::TanhOp&, const X& x) {
  return x.tanh();
}
template <typename T, typename X>
auto bwd(const kern::TanhOp&, const X&, const X& y, const X& dy) {
  return dy * (T(1) - y.square());
}
template <typename T, typename X>
auto fwd(const kern::GeluOp&, const X& x) {
  return T(0.5) * x * (T(1) + (x * T(M_SQRT1_2)).erf());
}
template <typename T, typename X>
auto bwd(const kern::GeluOp&, const X& x, const X&, const X& dy) {
  return dy * (T(0.5) * (T(1) + (x * T(M_SQRT1_2)).erf()) + x * T(0.39894228040143268) * (T(-0.5) * x.square()).exp());
}
template <typename T, typename X>
auto fwd(const kern::SiluOp&, const X& x) {
  return x / (T(1) + (-x).exp());
}
template <typename T, typename X>
auto bwd(const kern::SiluOp&, const X& x, const X&, const X& dy) {
  const auto s = T(1) / (T(1) + (-x).exp());
  return dy * s * (T(1) + x * (T(1) - s));
}
template <typename T, typename X>
auto fwd(const kern::LeakyReluOp& op, const X& x) {
  return (x > T(0)).select(x, x * T(op.slope));
}
template <typename T, typename X>
auto bwd(const kern::LeakyReluOp& op, const X& x, const X&, const X& dy) {
  return (x > T(0)).select(dy, dy * T(op.slope));
}
template <typename T, typename X>
auto fwd(const kern::EluOp& op, const X& x) {
  return (x > T(0)).select(x, T(op.alpha) * x.expm1());
}
template <typename T, typename X>
auto bwd(const kern::EluOp& op, const X& x, const X& y, const X& dy) {
  return (x > T(0)).select(dy, dy * (y + T(op.alpha)));
}
template <typename T, typename X>
auto fwd(const kern::ExpOp&, const X& x) {
  return x.exp();
}
template <typename T, typename X>
auto bwd(const kern::ExpOp&, const X&, const X& y, const X& dy) {
  return dy * y;
}
template <typename T, typename X>
auto fwd(const kern::LogOp&, const X& x) {
  return x.log();
}
template <typename T, typename X>
auto bwd(const kern::LogOp&, const X& x, const X&, const X& dy) {
  return dy / x;
}
template <typename T, typename X>
auto fwd(const kern::SqrtOp&, const X& x) {
  return x.sqrt();
}
template <typename T, typename X>
auto bwd(const kern::SqrtOp&, const X&, const X& y, const X& dy) {
  return dy * T(0.5) / y;
}
template <typename T, typename X>
auto fwd(const kern::RsqrtOp&, const X& x) {
  return x.rsqrt();
}
template <typename T, typename X>
auto bwd(const kern::RsqrtOp&, const X&, const X& y, const X& dy) {
  return dy * T(-0.5) * y.cube();
}
template <typename T, typename X>
auto fwd(const kern::AbsOp&, const X& x) {
  return x.abs();
}
template <typename T, typename X>
auto bwd(const kern::AbsOp&, const X& x, const X&, const X& dy) {
  return dy * x.sign();
}
template <typename T, typename X>
auto fwd(const kern::NegOp&, const X& x) {
  return -x;
}
template <typename T, typename X>
auto bwd(const kern::NegOp&, const X&, const X&, const X& dy) {
  return -dy;
}
template <typename T, typename X>
auto fwd(const kern::ClampOp& op, const X& x) {
  return (x != x).select(x, x.max(T(op.lo)).min(T(op.hi)));  // NaN stays NaN, as on CUDA and in PyTorch
}
template <typename T, typename X>
auto bwd(const kern::ClampOp& op, const X& x, const X&, const X& dy) {
  return (x >= T(op.lo) && x <= T(op.hi)).select(dy, T(0));
}
}  // namespace

template <typename Op, typename T>
void unary_forward(const Op& op, const T* x, T* y, int64_t n) {
  chunked(n, [&](int64_t o, int64_t m) { Vec<T>(y + o, m) = fwd<T>(op, CVec<T>(x + o, m)); });
}
template <typename Op, typename T>
void unary_backward(const Op& op, const T* x, const T* y, const T* dy, T* dx, int64_t n) {
  chunked(n, [&](int64_t o, int64_t m) {
    Vec<T>(dx + o, m) = bwd<T>(op, CVec<T>(x + o, m), CVec<T>(y + o, m), CVec<T>(dy + o, m));
  });
}
#define DL_INSTANTIATE_UNARY(Op)                                                                                   \
  template void unary_forward<kern::Op, float>(const kern::Op&, const float*, float*, int64_t);                    \
  template void unary_forward<kern::Op, double>(const kern::Op&, const double*, double*, int64_t);                 \
  template void unary_backward<kern::Op, float>(const kern::Op&, const float*, const float*, const float*, float*, \
                                                int64_t);                                                          \
  template void unary_backward<kern::Op, double>(const kern::Op&, const double*, const double*, const double*,     \
                                                 double*, int64_t);
DL_UNARY_OPS(DL_INSTANTIATE_UNARY)
#undef DL_INSTANTIATE_UNARY

#define DL_INSTANTIATE(T)                                          \
  template void scale<T>(const T*, T, T*, int64_t);                \
  template void axpy_acc<T>(T, const T*, T*, int64_t);             \
  template T sum<T>(const T*, int64_t);                            \
  template void relu_forward<T>(const T*, T*, int64_t);            \
  template void relu_backward<T>(const T*, const T*, T*, int64_t); \
  template void dropout<T>(const T*, T*, int64_t, uint64_t, float);
DL_INSTANTIATE(float)
DL_INSTANTIATE(double)
#undef DL_INSTANTIATE
template void relu_forward<BFloat16>(const BFloat16*, BFloat16*, int64_t);
template void relu_backward<BFloat16>(const BFloat16*, const BFloat16*, BFloat16*, int64_t);

}  // namespace dl::cpu
