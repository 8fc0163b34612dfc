// CPU element-wise bodies and the backend's thread setting.
#include <Eigen/Core>
#include <algorithm>
#include <cstdlib>

#include "backend/cpu/parallel.h"

namespace dl::cpu {

namespace {
template <typename T> using Vec = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T> using CVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
constexpr int64_t kChunk = 1 << 15;

// Applies f(begin, length) over [0, n) in chunks, in parallel.
template <typename F> void chunked(int64_t n, F&& f) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, kChunk, [&](int64_t i) {
    const int64_t b = i * kChunk;
    f(b, std::min(kChunk, n - b));
  });
}
}  // namespace

template <typename T> void add(const T* a, const T* b, T* y, int64_t n) {
  chunked(n, [&](int64_t o, int64_t m) { Vec<T>(y + o, m) = CVec<T>(a + o, m) + CVec<T>(b + o, m); });
}
template <typename T> void sub(const T* a, const T* b, T* y, int64_t n) {
  chunked(n, [&](int64_t o, int64_t m) { Vec<T>(y + o, m) = CVec<T>(a + o, m) - CVec<T>(b + o, m); });
}
template <typename T> void mul(const T* a, const T* b, T* y, int64_t n) {
  chunked(n, [&](int64_t o, int64_t m) { Vec<T>(y + o, m) = CVec<T>(a + o, m) * CVec<T>(b + o, m); });
}
template <typename T> void scale(const T* a, T s, T* y, int64_t n) {
  chunked(n, [&](int64_t o, int64_t m) { Vec<T>(y + o, m) = CVec<T>(a + o, m) * s; });
}
template <typename T> void axpy_acc(T alpha, const T* x, T* y, int64_t n) {
  chunked(n, [&](int64_t o, int64_t m) { Vec<T>(y + o, m) += alpha * CVec<T>(x + o, m); });
}
template <typename T> T sum(const T* a, int64_t n) {
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

template <typename T> void relu_forward(const T* x, T* y, int64_t n) {
  chunked(n, [&](int64_t o, int64_t m) { Vec<T>(y + o, m) = CVec<T>(x + o, m).max(T(0)); });
}
template <typename T> void relu_backward(const T* y, const T* dy, T* dx, int64_t n) {
  chunked(n, [&](int64_t o, int64_t m) {
    Vec<T>(dx + o, m) = (CVec<T>(y + o, m) > T(0)).select(CVec<T>(dy + o, m), T(0));
  });
}

#define DL_INSTANTIATE(T)                                  \
  template void add<T>(const T*, const T*, T*, int64_t);   \
  template void sub<T>(const T*, const T*, T*, int64_t);   \
  template void mul<T>(const T*, const T*, T*, int64_t);   \
  template void scale<T>(const T*, T, T*, int64_t);        \
  template void axpy_acc<T>(T, const T*, T*, int64_t);     \
  template T sum<T>(const T*, int64_t);                    \
  template void relu_forward<T>(const T*, T*, int64_t);    \
  template void relu_backward<T>(const T*, const T*, T*, int64_t);
DL_INSTANTIATE(float)
DL_INSTANTIATE(double)
#undef DL_INSTANTIATE

}  // namespace dl::cpu
