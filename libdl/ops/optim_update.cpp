// Front ends of the fused optimiser updates.
#include "dl/ops/optim_update.h"

#include "backend/cpu/optim_update.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

namespace {
void check_update(const char* op, const Tensor& w, const Tensor& g, std::initializer_list<const Tensor*> state) {
  check_float(w, op, "w");
  check_float(g, op, "g");
  check_same({{"w", &w}, {"g", &g}}, op);
  check_shape(g, w.shape(), op, "g");
  for (const Tensor* s : state) {
    check_same({{"w", &w}, {"state", s}}, op);
    check_shape(*s, w.shape(), op, "state");
  }
}
}  // namespace

void sgdm_update_(Tensor& w, const Tensor& g, Tensor& v, double lr, double momentum, double l2) {
  check_update("sgdm_update_", w, g, {&v});
  dispatch(
      w, "sgdm_update_",
      [&](auto t) {
        using T = decltype(t);
        cpu::sgdm_update(w.data<T>(), g.data<T>(), v.data<T>(), w.numel(), T(lr), T(momentum), T(l2));
      },
      [&](int dev) {
        DL_CUDA_BODY(cuda::sgdm_update(dev, f32(w), f32(g), f32(v), w.numel(), float(lr), float(momentum), float(l2)));
      });
}

void adam_update_(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, double lr, double beta1, double beta2, double eps,
                  double l2, int64_t t) {
  check_update("adam_update_", w, g, {&m, &v});
  DL_CHECK(t >= 1, "adam_update_: expected step t >= 1, got ", t);
  dispatch(
      w, "adam_update_",
      [&](auto tag) {
        using T = decltype(tag);
        cpu::adam_update(w.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), w.numel(), T(lr), T(beta1), T(beta2),
                         T(eps), T(l2), t);
      },
      [&](int dev) {
        DL_CUDA_BODY(cuda::adam_update(dev, f32(w), f32(g), f32(m), f32(v), w.numel(), float(lr), float(beta1),
                                       float(beta2), float(eps), float(l2), t));
      });
}

void rmsprop_update_(Tensor& w, const Tensor& g, Tensor& v, double lr, double decay, double eps, double l2) {
  check_update("rmsprop_update_", w, g, {&v});
  dispatch(
      w, "rmsprop_update_",
      [&](auto t) {
        using T = decltype(t);
        cpu::rmsprop_update(w.data<T>(), g.data<T>(), v.data<T>(), w.numel(), T(lr), T(decay), T(eps), T(l2));
      },
      [&](int dev) {
        DL_CUDA_BODY(cuda::rmsprop_update(dev, f32(w), f32(g), f32(v), w.numel(), float(lr), float(decay), float(eps),
                                          float(l2)));
      });
}

}  // namespace dl::ops
