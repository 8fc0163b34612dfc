// CPU fully connected layer: Eigen GEMMs over row-major maps (x N x I, w O x I), float32 or bf16 operands
// (Note [bf16 linear on the CPU]).
#include <Eigen/Core>
#include <algorithm>
#include <type_traits>

#include "backend/cpu/parallel.h"
#include "backend/cpu/scratch.h"
#include "dl/core/error.h"
#include "round16.cuh"

namespace dl::cpu {

// Note [bf16 linear on the CPU]
// Under Precision::kBf16 the float32 operands (x and w forward; dy, w and x backward) are rounded to the
// nearest bf16, ties to even (kernels/round16.cuh, the helper the CUDA cast kernel uses), into scratch, and
// the float32 GEMM runs on them. A product of two bf16 values is exact in float32, so this is what a bf16
// kernel with float32 accumulation computes, up to the order of the sums; outputs stay float32 and are not
// rounded. The bias and its gradient stay float32 (the gradient sums the float32 dy). kFp32 and kTf32 are
// float32 here (no TF32 on a CPU); fp16 is refused (the front end never sends it); float64 ignores `math`.

namespace {
template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Mat = Eigen::Map<RowMat<T>>;
template <typename T>
using CMat = Eigen::Map<const RowMat<T>>;
template <typename T>
using RowVec = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
template <typename T>
using CRowVec = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;

// Whether the operands of a T GEMM in `math` are rounded to bf16; throws for a precision the CPU lacks.
template <typename T>
bool rounds_to_bf16(Precision math, const char* op) {
  if constexpr (!std::is_same_v<T, float>) {
    return false;
  } else {
    DL_CHECK(math != Precision::kFp16, op, ": fp16 runs on a GPU only; on the CPU use bf16 or fp32");
    return math == Precision::kBf16;
  }
}

// The operand p (count elements) as the GEMM reads it: p itself, or its copy rounded to bf16 in `copy`.
template <typename T>
const T* operand(const T* p, int64_t count, bool bf16, Scratch<T>& copy) {
  if (!std::is_same_v<T, float> || !bf16 || p == nullptr || count == 0) return p;
  T* q = copy.ensure(static_cast<size_t>(count));
  if constexpr (std::is_same_v<T, float>) {
    constexpr int64_t kChunk = 4096;
    parallel_for((count + kChunk - 1) / kChunk, kChunk, [&](int64_t c) {
      const int64_t end = std::min(count, (c + 1) * kChunk);
      for (int64_t i = c * kChunk; i < end; ++i) q[i] = kern::round_to_bf16(p[i]);
    });
  }
  return q;
}
}  // namespace

template <typename T>
void linear_forward(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in, int64_t out, Precision math) {
  const bool bf16 = rounds_to_bf16<T>(math, "linear");
  Scratch<T> xs, ws;
  const T* xm = operand(x, n * in, bf16, xs);
  const T* wm = operand(w, out * in, bf16, ws);
  Mat<T> Y(y, n, out);
  Y.noalias() = CMat<T>(xm, n, in) * CMat<T>(wm, out, in).transpose();
  if (b) Y.rowwise() += CRowVec<T>(b, out);
}

template <typename T>
void linear_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, int64_t n, int64_t in, int64_t out,
                     Precision math) {
  const bool bf16 = rounds_to_bf16<T>(math, "linear backward");
  Scratch<T> dys, ws, xs;
  if (dx || dw) {
    CMat<T> dY(operand(dy, n * out, bf16, dys), n, out);
    if (dx) Mat<T>(dx, n, in).noalias() = dY * CMat<T>(operand(w, out * in, bf16, ws), out, in);
    if (dw) Mat<T>(dw, out, in).noalias() = dY.transpose() * CMat<T>(operand(x, n * in, bf16, xs), n, in);
  }
  if (db) RowVec<T>(db, out) = CMat<T>(dy, n, out).colwise().sum();
}

template <typename T>
void batched_matmul(const T* a, const T* b, T* c, int64_t batch, int64_t n, int64_t k, int64_t m) {
  if (batch == 0 || n == 0 || m == 0) return;
  if (k == 0) {
    std::fill(c, c + batch * n * m, T(0));
    return;
  }
  auto one = [&](int64_t i) {
    Mat<T>(c + i * n * m, n, m).noalias() = CMat<T>(a + i * n * k, n, k) * CMat<T>(b + i * k * m, k, m);
  };
  if (batch < num_threads()) {
    for (int64_t i = 0; i < batch; ++i) one(i);  // Eigen's own threads split each product
    return;
  }
  parallel_for(batch, std::max<int64_t>(1, n * k * m), one);  // a product per thread
}

template void linear_forward<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t,
                                    Precision);
template void linear_forward<double>(const double*, const double*, const double*, double*, int64_t, int64_t, int64_t,
                                     Precision);
template void linear_backward<float>(const float*, const float*, const float*, float*, float*, float*, int64_t, int64_t,
                                     int64_t, Precision);
template void batched_matmul<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t);
template void batched_matmul<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, int64_t);
template void linear_backward<double>(const double*, const double*, const double*, double*, double*, double*, int64_t,
                                      int64_t, int64_t, Precision);

}  // namespace dl::cpu
