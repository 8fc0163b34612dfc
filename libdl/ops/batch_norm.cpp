// Front end of batch norm. Training: batch statistics, running statistics updated in place,
// backward through the statistics. Inference: the running statistics, an affine map per channel.
#include "dl/ops/batch_norm.h"

#include "backend/cpu/cpu_ops.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

// Note [batch norm + ReLU]: with opt.relu the ReLU is applied in batch norm's own output pass, and the
// backward masks dy by the output (y > 0) inside batch norm's own passes: one tensor less written and
// read each way than batch_norm followed by relu, and the graph keeps x and y as the two ops would.
// cuDNN: its batch norm, then its activation in place on y (and a masked dy before its backward).

namespace {
// The CUDA body of the fused ReLU's backward: dy masked by y > 0 (nothing to do without the ReLU).
Tensor relu_masked(const Tensor& gy, const Tensor& sy, bool relu) {
  if (!relu || gy.device().is_cpu()) return gy;
  Tensor masked = Tensor::empty(gy.shape(), gy.dtype(), gy.device());
  DL_CUDA_BODY(cuda::relu_backward(gy.device().index, f32(sy), f32(gy), f32(masked), gy.numel()));
  return masked;
}
}  // namespace

namespace {
// Note [synchronised batch norm] (dl/ops/batch_norm.h): the statistics of every process's batch, from
// per-channel sums all-reduced by opt.sync; then the inference bodies with those statistics, and in the
// backward the part of dx that comes through the shared statistics.
template <typename T>
Tensor batch_norm_synced(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                         Tensor& running_var, const BatchNormOptions& opt, int64_t n, int64_t c, int64_t s) {
  DL_CHECK(x.device().is_cpu(), "batch_norm: the synchronised batch norm runs on the CPU only for now; x is on ",
           x.device().str());
  Tensor sums = Tensor::zeros({3, c}, DType::kFloat64);  // sum x, sum x², count
  double* a = sums.data<double>();
  cpu::batch_norm_sums(x.data<T>(), n, c, s, a, a + c);
  for (int64_t i = 0; i < c; ++i) a[2 * c + i] = static_cast<double>(n * s);
  opt.sync(sums);
  const double count = a[2 * c];
  DL_CHECK(count > 1,
           "batch_norm: the synchronised batch norm needs more than one value per channel over every "
           "process, got ",
           count);
  Tensor mean = Tensor::empty({c}, x.dtype()), var = Tensor::empty({c}, x.dtype());
  T* rm = running_mean.data<T>();
  T* rv = running_var.data<T>();
  const T m = static_cast<T>(opt.momentum);
  for (int64_t i = 0; i < c; ++i) {
    const double mu = a[i] / count, v = std::max(0.0, a[c + i] / count - mu * mu);
    mean.data<T>()[i] = static_cast<T>(mu);
    var.data<T>()[i] = static_cast<T>(v);
    rm[i] = (T(1) - m) * rm[i] + m * static_cast<T>(mu);
    rv[i] = (T(1) - m) * rv[i] + m * static_cast<T>(v * count / (count - 1));
  }
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  const double eps = opt.eps;
  cpu::batch_norm_forward_infer(x.data<T>(), gamma.data<T>(), beta.data<T>(), mean.data<T>(), var.data<T>(), n, c, s,
                                eps, y.data<T>(), opt.relu);
  Tensor sx = x.detach(), sg = gamma.detach(), sy = opt.relu ? y.detach() : Tensor();
  const auto sync = opt.sync;
  return autograd::record(
      opt.relu ? "sync_batch_norm_relu" : "sync_batch_norm", y, {x, gamma, beta},
      [=](const Tensor& gy, const std::vector<bool>& needs) {
        Tensor gx = Tensor::empty(sx.shape(), sx.dtype());
        Tensor gg = Tensor::empty({c}, sx.dtype()), gb = Tensor::empty({c}, sx.dtype());
        cpu::batch_norm_backward_infer(sx.data<T>(), sg.data<T>(), gy.data<T>(), mean.data<T>(), var.data<T>(), n, c, s,
                                       eps, gx.data<T>(), gg.data<T>(), gb.data<T>(), ptr_or_null<T>(sy));
        Tensor red = Tensor::empty({2, c}, DType::kFloat64);  // sum dy, sum dy x̂ over every process
        for (int64_t i = 0; i < c; ++i) {
          red.data<double>()[i] = gb.data<T>()[i];
          red.data<double>()[c + i] = gg.data<T>()[i];
        }
        sync(red);
        cpu::batch_norm_sync_backward_correct(sx.data<T>(), sg.data<T>(), mean.data<T>(), var.data<T>(), n, c, s, eps,
                                              red.data<double>(), red.data<double>() + c, count, gx.data<T>());
        return std::vector<Tensor>{needs[0] ? gx : Tensor(), needs[1] ? gg : Tensor(), needs[2] ? gb : Tensor()};
      });
}
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                  const BatchNormOptions& opt) {
  const char* op = "batch_norm";
  check_float(x, op, "x");
  DL_CHECK(x.dim() == 2 || x.dim() == 4, op, ": expected N x C or N x C x H x W, got ", x.shape().str());
  check_same(
      {{"x", &x}, {"gamma", &gamma}, {"beta", &beta}, {"running_mean", &running_mean}, {"running_var", &running_var}},
      op);
  const int64_t n = x.size(0), c = x.size(1), s = x.numel() / std::max<int64_t>(n * c, 1);
  for (auto [name, t] :
       {std::pair{"gamma", &gamma}, {"beta", &beta}, {"running_mean", &running_mean}, {"running_var", &running_var}}) {
    check_defined(*t, op, name);
    check_shape(*t, {c}, op, name);
  }
  DL_CHECK(!opt.training || n * s > 1, op, ": training needs more than one value per channel, got input ",
           x.shape().str());

  if (opt.training && opt.sync) {
    return x.dtype() == DType::kFloat64
               ? batch_norm_synced<double>(x, gamma, beta, running_mean, running_var, opt, n, c, s)
               : batch_norm_synced<float>(x, gamma, beta, running_mean, running_var, opt, n, c, s);
  }
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const double eps = opt.eps;
  const bool relu = opt.relu;
  if (!opt.training) {
    dispatch(
        x, op,
        [&](auto t) {
          using T = decltype(t);
          cpu::batch_norm_forward_infer(x.data<T>(), gamma.data<T>(), beta.data<T>(), running_mean.data<T>(),
                                        running_var.data<T>(), n, c, s, eps, y.data<T>(), relu);
        },
        [&](int dev) {
          DL_CUDA_BODY(cuda::batch_norm_forward_infer(dev, f32(x), f32(gamma), f32(beta), f32(running_mean),
                                                      f32(running_var), n, c, s, eps, f32(y));
                       if (relu) cuda::relu_forward(dev, f32(y), f32(y), y.numel()));
        });
    if (!autograd::needs_record({x, gamma, beta})) return y;
    Tensor sx = x.detach(), sg = gamma.detach(), sm = running_mean.clone(), sv = running_var.clone();
    Tensor sy = relu ? y.detach() : Tensor();
    return autograd::record(
        relu ? "batch_norm_relu_infer" : "batch_norm_infer", y, {x, gamma, beta},
        [=](const Tensor& gy_in, const std::vector<bool>& needs) {
          const Tensor gy = relu_masked(gy_in, sy, relu);
          Tensor gx = needs[0] ? Tensor::empty(sx.shape(), sx.dtype(), sx.device()) : Tensor();
          Tensor gg = Tensor::empty({c}, sx.dtype(), sx.device()), gb = Tensor::empty({c}, sx.dtype(), sx.device());
          dispatch(
              gy, "batch_norm_backward",
              [&](auto t) {
                using T = decltype(t);
                cpu::batch_norm_backward_infer(sx.data<T>(), sg.data<T>(), gy.data<T>(), sm.data<T>(), sv.data<T>(), n,
                                               c, s, eps, gx.defined() ? gx.data<T>() : nullptr, gg.data<T>(),
                                               gb.data<T>(), ptr_or_null<T>(sy));
              },
              [&](int dev) {
                DL_CUDA_BODY(cuda::batch_norm_backward_infer(dev, f32(sx), f32(sg), f32(gy), f32(sm), f32(sv), n, c, s,
                                                             eps, f32(gx), f32(gg), f32(gb)));
              });
          return std::vector<Tensor>{gx, needs[1] ? gg : Tensor(), needs[2] ? gb : Tensor()};
        });
  }

  Tensor mean = Tensor::empty({c}, x.dtype(), x.device());
  Tensor invstd = Tensor::empty({c}, x.dtype(), x.device());
  Tensor var_unbiased = Tensor::empty({c}, x.dtype(), x.device());
  dispatch(
      x, op,
      [&](auto t) {
        using T = decltype(t);
        cpu::batch_norm_forward_train(x.data<T>(), gamma.data<T>(), beta.data<T>(), n, c, s, eps, y.data<T>(),
                                      mean.data<T>(), invstd.data<T>(), var_unbiased.data<T>(), relu);
        T* rm = running_mean.data<T>();
        T* rv = running_var.data<T>();
        const T m = static_cast<T>(opt.momentum);
        for (int64_t i = 0; i < c; ++i) {
          rm[i] = (T(1) - m) * rm[i] + m * mean.data<T>()[i];
          rv[i] = (T(1) - m) * rv[i] + m * var_unbiased.data<T>()[i];
        }
      },
      [&](int dev) {
        DL_CUDA_BODY(cuda::batch_norm_forward_train(dev, f32(x), f32(gamma), f32(beta), n, c, s, eps, f32(y), f32(mean),
                                                    f32(invstd), f32(var_unbiased));
                     cuda::lerp_(dev, f32(running_mean), f32(mean), static_cast<float>(opt.momentum), c);
                     cuda::lerp_(dev, f32(running_var), f32(var_unbiased), static_cast<float>(opt.momentum), c);
                     if (relu) cuda::relu_forward(dev, f32(y), f32(y), y.numel()));
      });
  if (!autograd::needs_record({x, gamma, beta})) return y;
  Tensor sx = x.detach(), sg = gamma.detach(), sy = relu ? y.detach() : Tensor();
  return autograd::record(
      relu ? "batch_norm_relu" : "batch_norm", y, {x, gamma, beta},
      [=](const Tensor& gy_in, const std::vector<bool>& needs) {
        const Tensor gy = relu_masked(gy_in, sy, relu);
        Tensor gx = needs[0] ? Tensor::empty(sx.shape(), sx.dtype(), sx.device()) : Tensor();
        Tensor gg = Tensor::empty({c}, sx.dtype(), sx.device()), gb = Tensor::empty({c}, sx.dtype(), sx.device());
        dispatch(
            gy, "batch_norm_backward",
            [&](auto t) {
              using T = decltype(t);
              cpu::batch_norm_backward(sx.data<T>(), sg.data<T>(), gy.data<T>(), mean.data<T>(), invstd.data<T>(), n, c,
                                       s, gx.defined() ? gx.data<T>() : nullptr, gg.data<T>(), gb.data<T>(),
                                       ptr_or_null<T>(sy));
            },
            [&](int dev) {
              DL_CUDA_BODY(cuda::batch_norm_backward(dev, f32(sx), f32(sg), f32(gy), f32(mean), f32(invstd), n, c, s,
                                                     eps, f32(gx), f32(gg), f32(gb)));
            });
        return std::vector<Tensor>{gx, needs[1] ? gg : Tensor(), needs[2] ? gb : Tensor()};
      });
}

}  // namespace dl::ops
