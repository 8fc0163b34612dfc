// cuBLAS fully connected layer over row-major float32 matrices: x N x I, w O x I, y N x O, on the device's compute
// stream, computed in the precision the front end resolved (Note [GEMM math]). Outputs are assigned (beta = 0),
// never accumulated; see Note [row-major GEMM].
#include <cublas_v2.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "backend/cuda/cublas_loader.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/cudnn_utils.h"
#include "backend/cuda/low_precision.h"
#include "backend/cuda/runtime.h"
#include "dl/core/cuda.h"

namespace dl::cuda {

// Note [row-major GEMM]
// cuBLAS is column-major. A row-major R x C matrix with leading dimension C is, read column-major, its
// transpose C x R with the same leading dimension. So each product is computed transposed, with the operands in
// swapped order, and every matrix keeps its own row length as leading dimension:
//   y = x w^T     ->  y^T (O x N)  = w^T (I x O, op T)   x^T (I x N)
//   dx = dy w     ->  dx^T (I x N) = w^T (I x O)         dy^T (O x N)
//   dw = dy^T x   ->  dw^T (I x O) = x^T (I x N)         dy^T (O x N, op T)
//   db = 1^T dy   ->  db (O)       = dy^T (O x N) 1 (N)  (a GEMV against a vector of ones)
// Scalars are host floats (the handle's default pointer mode).
//
// Note [GEMM math]
// The compute type is passed per call to cublasGemmEx, so that the shared handle's math mode is never changed:
//   kFp32  CUBLAS_COMPUTE_32F_FAST_TF32 while dl::cuda::allow_tf32(), else CUBLAS_COMPUTE_32F
//   kTf32  CUBLAS_COMPUTE_32F_FAST_TF32 whatever the switch says
//   kBf16, kFp16  A and B cast into 16-bit scratch (backend/cuda/low_precision.h) as CUDA_R_16BF / CUDA_R_16F,
//          C float32 (CUDA_R_32F, written directly: no rounding of the result), CUBLAS_COMPUTE_32F: products of
//          16-bit operands accumulated in float32.
// The bias and its gradient stay float32 (the gradient sums the float32 dy).

namespace {

// C (m x n, ldc = m, float32) = op(A) op(B), k the inner dimension; A and B in the data type of `math` (float32,
// or bf16 / half bits); with k = 0 the product is a sum of nothing.
void gemm(int device, const DeviceContext& ctx, Precision math, cublasOperation_t op_a, cublasOperation_t op_b, int m,
          int n, int k, const void* a, int lda, const void* b, int ldb, float* c) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    fill(device, c, static_cast<int64_t>(m) * n, 0.0f);
    return;
  }
  const bool tf32 = math == Precision::kTf32 || (math == Precision::kFp32 && allow_tf32());
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const cudaDataType ab = math == Precision::kBf16 ? CUDA_R_16BF : math == Precision::kFp16 ? CUDA_R_16F : CUDA_R_32F;
  DL_CUBLAS_CHECK(cublas().gemm_ex(ctx.cublas, op_a, op_b, m, n, k, &kOne, a, ab, lda, b, ab, ldb, &kZero, c,
                                   CUDA_R_32F, m, compute, CUBLAS_GEMM_DEFAULT));
}

// A vector of ones per device for the column sums of the bias gradient, grown on demand and never shrunk.
struct Ones {
  DeviceBuffer buffer;
  int64_t length = 0;
};

struct OnesCache {
  std::mutex mu;
  std::map<int, Ones> per_device;
};

// db (out) = column sums of dy (rows x out, row-major). The lock is held until the GEMV is queued, so the ones
// cannot be replaced under it; a replaced buffer returns to the caching allocator in stream order.
void column_sums(int device, const DeviceContext& ctx, const float* dy, float* db, int rows, int out) {
  if (out == 0) return;
  if (rows == 0) {
    fill(device, db, out, 0.0f);
    return;
  }
  // Never destroyed, like the allocator that owns its memory (Note [process-lifetime CUDA objects], runtime.cpp).
  static OnesCache* const cache = new OnesCache;
  std::lock_guard<std::mutex> lock(cache->mu);
  Ones& ones = cache->per_device[device];
  if (ones.length < rows) {
    const int64_t length = std::max<int64_t>(rows, 2 * ones.length);
    DeviceBuffer grown(static_cast<size_t>(length) * sizeof(float), device);
    fill(device, grown.as<float>(), length, 1.0f);  // queued before the GEMV below, on the same stream
    ones.buffer = std::move(grown);
    ones.length = length;
  }
  DL_CUBLAS_CHECK(
      cublas().sgemv(ctx.cublas, CUBLAS_OP_N, out, rows, &kOne, dy, out, ones.buffer.as<float>(), 1, &kZero, db, 1));
}

}  // namespace

// y (N x O) = x (N x I) w^T (+ b broadcast over rows), Note [row-major GEMM], in `math` (Note [GEMM math]).
void linear_forward(int device, const float* x, const float* w, const float* b, float* y, int64_t n, int64_t in,
                    int64_t out, Precision math) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  const int rows = to_int(n, "linear N"), ni = to_int(in, "linear in features"),
            no = to_int(out, "linear out features");
  if (rows == 0 || no == 0) return;  // nothing to write
  check_math_supported(ctx, math, "linear");
  const bool product = ni > 0;  // without input features the product is zeros: nothing to cast
  const MathInput xm(device, math, product ? x : nullptr, n * in), wm(device, math, product ? w : nullptr, out * in);
  gemm(device, ctx, math, CUBLAS_OP_T, CUBLAS_OP_N, no, rows, ni, wm.get(), ni, xm.get(), ni, y);
  if (b != nullptr) bias_add_acc(device, y, b, n, out);
}

// Row-major C = A B is column-major C^T = B^T A^T: cuBLAS multiplies b (m x k, ld m) by a (k x n, ld k) into
// c (m x n, ld m), batch by batch at fixed strides.
void batched_matmul(int device, const float* a, const float* b, float* c, int64_t batch, int64_t n, int64_t k,
                    int64_t m) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  const int nb = to_int(batch, "matmul batch"), rows = to_int(n, "matmul rows"), inner = to_int(k, "matmul inner"),
            cols = to_int(m, "matmul columns");
  if (nb == 0 || rows == 0 || cols == 0) return;
  if (inner == 0) {
    fill(device, c, batch * n * m, 0.0f);
    return;
  }
  const cublasComputeType_t compute = allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  DL_CUBLAS_CHECK(cublas().gemm_strided_batched_ex(ctx.cublas, CUBLAS_OP_N, CUBLAS_OP_N, cols, rows, inner, &kOne, b,
                                                   CUDA_R_32F, cols, k * m, a, CUDA_R_32F, inner, n * k, &kZero, c,
                                                   CUDA_R_32F, cols, n * m, nb, compute, CUBLAS_GEMM_DEFAULT));
}

// dx (N x I) = dy w, dw (O x I) = dy^T x, db (O) = column sums of dy; each may be null (not wanted). In `math`
// (Note [GEMM math]): dy is cast once for both products, w for dx, x for dw.
void linear_backward(int device, const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                     int64_t n, int64_t in, int64_t out, Precision math) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  const int rows = to_int(n, "linear N"), ni = to_int(in, "linear in features"),
            no = to_int(out, "linear out features");
  check_math_supported(ctx, math, "linear backward");
  const bool products = (dx != nullptr || dw != nullptr) && rows > 0 && ni > 0 && no > 0;
  const MathInput dym(device, math, products ? dy : nullptr, n * out);
  if (dx != nullptr) {
    const MathInput wm(device, math, products ? w : nullptr, out * in);
    gemm(device, ctx, math, CUBLAS_OP_N, CUBLAS_OP_N, ni, rows, no, wm.get(), ni, dym.get(), no, dx);
  }
  if (dw != nullptr) {
    const MathInput xm(device, math, products ? x : nullptr, n * in);
    gemm(device, ctx, math, CUBLAS_OP_N, CUBLAS_OP_T, ni, no, rows, xm.get(), ni, dym.get(), no, dw);
  }
  if (db != nullptr) column_sums(device, ctx, dy, db, rows, no);
}

}  // namespace dl::cuda
