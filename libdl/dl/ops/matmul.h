// Matrix products with NumPy's (and PyTorch's) matmul rules, float32 or float64, on both devices.
#pragma once
#include "dl/core/tensor.h"

namespace dl::ops {

// a [..., n, k] times b [..., k, m] -> [..., n, m], the leading (batch) dimensions broadcast against each
// other; a 1-D a is a row [1, k] and a 1-D b a column [k, 1], whose added dimension is removed from the
// result (two 1-D operands give their dot product, shape [1]). One strided-batched GEMM per call on CUDA
// (cuBLAS; TF32 while dl::cuda::allow_tf32()), Eigen on the CPU; not under autocast. The backward
// multiplies by the transposes (copied), summed back over broadcast batch dimensions.
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace dl::ops
