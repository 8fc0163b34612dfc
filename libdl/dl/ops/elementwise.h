// Element-wise arithmetic, comparisons and sums, float32 or float64 (float32 on CUDA).
//
// Broadcasting follows NumPy (and PyTorch): shapes are aligned on their last dimensions and a size of 1
// (or a missing leading dimension) stretches to the other operand's size, so a [4, 16, 28, 28] tensor
// and a [16, 1, 1] bias add to [4, 16, 28, 28]. Mismatched sizes throw, naming both shapes. Every op
// returns a new contiguous tensor (no op here returns a view) and records its backward, which sums the
// gradient back down to each operand's own shape. The scalar forms (a double on the right) never copy
// the scalar to the device. Operators (+ - * / and unary -) on tensors and doubles: dl/ops/operators.h.
#pragma once
#include <vector>

#include "dl/core/tensor.h"

namespace dl::ops {

// ---- binary, broadcasting ----
Tensor add(const Tensor& a, const Tensor& b);      // a + b
Tensor sub(const Tensor& a, const Tensor& b);      // a - b
Tensor mul(const Tensor& a, const Tensor& b);      // a * b
Tensor div(const Tensor& a, const Tensor& b);      // a / b
Tensor pow(const Tensor& a, const Tensor& b);      // a^b (the gradients as PyTorch's at a == 0 and b == 0)
Tensor maximum(const Tensor& a, const Tensor& b);  // max(a, b), NaN if either is; a tie halves the gradient
Tensor minimum(const Tensor& a, const Tensor& b);  // min(a, b), likewise
// ... with a scalar on the right
Tensor add(const Tensor& a, double s);
Tensor sub(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor div(const Tensor& a, double s);
Tensor pow(const Tensor& a, double s);
Tensor maximum(const Tensor& a, double s);
Tensor minimum(const Tensor& a, double s);
Tensor scale(const Tensor& a, double s);                        // s * a (mul(a, s))
void add_(Tensor& dst, const Tensor& src, double alpha = 1.0);  // dst += alpha * src, same shapes, no history

// ---- comparisons (no gradient): a bool mask, true where the relation holds, broadcasting; NaN compares
// false but in ne. Float tensors compare with float tensors of their dtype; int32 and int64 tensors with
// each other (as int64 when they differ: argmax's classes against int64 labels) and with whole numbers.
//   const int64_t correct = ops::sum(ops::eq(ops::argmax(logits, 1), labels).to(DType::kFloat32)).item<float>();
// ----
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double s);
Tensor ne(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);
Tensor le(const Tensor& a, double s);
Tensor gt(const Tensor& a, double s);
Tensor ge(const Tensor& a, double s);
// cond ? a : b, element-wise, the three broadcast together; cond a bool mask (as the comparisons
// return) or uint8 (nonzero = true), on a's device. The gradient goes to a where cond holds, else to b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- unary ----
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);  // natural logarithm
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);  // 1 / sqrt(x)
Tensor abs(const Tensor& x);    // the gradient sign(x), 0 at 0
Tensor neg(const Tensor& x);
// min(max(x, lo), hi); the gradient passes where lo <= x <= hi. lo and hi are held in float32.
Tensor clamp(const Tensor& x, double lo, double hi);

// ---- sums ----
Tensor sum(const Tensor& a);   // shape [1]: the sum of all elements
Tensor mean(const Tensor& a);  // shape [1]: the mean of all elements
// Sums (means) over `dims` (negative counts from the end; each at most once; empty: every dimension),
// accumulated in double; keepdim keeps each as a size of 1, else it is removed (a result with no
// dimension left has shape [1]).
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim = false);
// x summed down to `shape`, which x's shape broadcasts from (the backward of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);
double squared_norm(const Tensor& a);  // sum of squares, in double; no history
// The sum of squared_norm over `tensors` (undefined ones skipped; the rest float, on one device), added in
// their order, in double; no history. On a GPU the host reads all of them at once: one blocking call
// (Note [blocking calls] in dl/core/cuda.h), where a squared_norm of each would wait once per tensor.
double squared_norm(const std::vector<Tensor>& tensors);

}  // namespace dl::ops
