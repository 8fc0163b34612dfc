// Front end of matmul: the operands made 2-D or more and expanded to one batch shape, one batched
// product with its backward beside it.
#include "dl/ops/matmul.h"

#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/broadcast.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

namespace {

// a [B..., n, k] b [B..., k, m] of the same batch dimensions -> [B..., n, m].
Tensor batched(const Tensor& a, const Tensor& b) {
  const int nd = a.dim();
  const int64_t n = a.size(-2), k = a.size(-1), m = b.size(-1);
  std::vector<int64_t> out = a.shape().vec();
  out[static_cast<size_t>(nd - 1)] = m;
  const int64_t batch = Shape(std::vector<int64_t>(out.begin(), out.end() - 2)).numel();
  Tensor y = Tensor::empty(Shape(out), a.dtype(), a.device());
  dispatch(
      a, "matmul",
      [&](auto t) {
        using T = decltype(t);
        cpu::batched_matmul(a.data<T>(), b.data<T>(), y.data<T>(), batch, n, k, m);
      },
      [&](int dev) { DL_CUDA_BODY(cuda::batched_matmul(dev, f32(a), f32(b), f32(y), batch, n, k, m)); });
  if (!autograd::needs_record({a, b})) return y;
  const Tensor sa = b.requires_grad() ? a.detach() : Tensor(), sb = a.requires_grad() ? b.detach() : Tensor();
  return autograd::record("matmul", y, {a, b}, [sa, sb](const Tensor& gy, const std::vector<bool>& needs) {
    return std::vector<Tensor>{needs[0] ? batched(gy, transpose(sb, -1, -2)) : Tensor(),
                               needs[1] ? batched(transpose(sa, -1, -2), gy) : Tensor()};
  });
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (is_bf16(a) || is_bf16(b)) return matmul(float32_of(a), float32_of(b));  // Note [bf16 activations]
  check_float(a, "matmul", "a");
  check_float(b, "matmul", "b");
  check_same({{"a", &a}, {"b", &b}}, "matmul");
  TracePause pause;  // traced as one MatMul, not as the reshapes and expands below
  DL_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: expected operands of at least one dimension, got ", a.shape().str(),
           " and ", b.shape().str());
  const Tensor a2 = a.dim() == 1 ? reshape(a, {1, a.size(0)}) : a;
  const Tensor b2 = b.dim() == 1 ? reshape(b, {b.size(0), 1}) : b;
  const int64_t n = a2.size(-2), k = a2.size(-1), m = b2.size(-1);
  DL_CHECK(b2.size(-2) == k, "matmul: ", a.shape().str(), " times ", b.shape().str(), ": the inner sizes ", k, " and ",
           b2.size(-2), " differ");
  const std::vector<int64_t> av = a2.shape().vec(), bv = b2.shape().vec();
  const Shape batch = broadcast_shapes(Shape(std::vector<int64_t>(av.begin(), av.end() - 2)),
                                       Shape(std::vector<int64_t>(bv.begin(), bv.end() - 2)), "matmul");
  std::vector<int64_t> sa = batch.vec(), sb = batch.vec();
  sa.insert(sa.end(), {n, k});
  sb.insert(sb.end(), {k, m});
  Tensor y = batched(expand(a2, Shape(sa)), expand(b2, Shape(sb)));
  // Remove the dimensions the 1-D operands were given.
  std::vector<int64_t> out = batch.vec();
  if (a.dim() > 1) out.push_back(n);
  if (b.dim() > 1) out.push_back(m);
  if (out.empty()) out.push_back(1);
  y = reshape(y, Shape(out));
  pause.resume();
  if (auto* tr = active_tracer()) tr->record({"matmul", {a, b}, y});
  return y;
}

}  // namespace dl::ops
