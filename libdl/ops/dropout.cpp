// Front end of dropout: one draw from the generator seeds the counter-based mask of both backends
// (kernels/counter_rng.cuh); the backward applies the same mask to dy from the same seed.
#include "dl/ops/dropout.h"

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/shape_ops.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

namespace {
// The mask is drawn over the storage order (Note [element-wise formats]): a tensor and its gradient in one
// memory format get the same mask.
Tensor apply_mask(const Tensor& x, uint64_t seed, float p) {
  Tensor y = empty_like(x);
  const Tensor xs = storage(x);
  Tensor ys = storage(y);
  dispatch(
      x, "dropout",
      [&](auto t) {
        using T = decltype(t);
        cpu::dropout(xs.data<T>(), ys.data<T>(), x.numel(), seed, p);
      },
      [&](int dev) { DL_CUDA_BODY(cuda::dropout(dev, f32(xs), f32(ys), x.numel(), seed, p)); });
  return y;
}
}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  DL_CHECK(p >= 0 && p < 1, "dropout: expected a probability p in [0, 1), got ", p);
  if (is_bf16(x) && training && p > 0)
    return bf16_of(dropout(float32_of(x), p, training, gen));  // Note [bf16 activations]
  if (!is_bf16(x)) check_float(x, "dropout", "x");
  if (!training || p == 0) return x;
  const uint64_t seed = gen.next_u64();
  const float pf = static_cast<float>(p);
  Tensor y = apply_mask(x, seed, pf);
  return autograd::record("dropout", y, {x},
                          [seed, pf, fmt = x.memory_format()](const Tensor& gy, const std::vector<bool>&) {
                            return std::vector<Tensor>{apply_mask(to_memory_format(gy, fmt), seed, pf)};
                          });
}

}  // namespace dl::ops
