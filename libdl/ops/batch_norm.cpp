// Front end of batch norm. Training: batch statistics, running statistics updated in place,
// backward through the statistics. Inference: the running statistics, an affine map per channel.
#include "dl/ops/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "dl/ops/elementwise.h"
#include "dl/ops/shape_ops.h"
#include "dl/ops/trace.h"
#include "ops/dispatch.h"
#include "ops/unary.h"

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
  return relu_mask(gy, sy);
}

// Note [synchronised batch norm] (dl/ops/batch_norm.h): the statistics of every process's batch, from
// per-channel sums all-reduced by opt.sync; then the inference bodies with those statistics, and in the
// backward the part of dx that comes through the shared statistics.

// The shared statistics from the all-reduced sums (sum x, sum x², count per channel, float64 on the
// host): the mean and biased variance for normalising, and the running statistics updated in place
// (the variance unbiased).
void synced_statistics(const Tensor& sums, int64_t c, double momentum, std::vector<double>& mean,
                       std::vector<double>& var, Tensor& running_mean, Tensor& running_var) {
  const double* a = sums.data<double>();
  const double count = a[2 * c];
  DL_CHECK(count > 1,
           "batch_norm: the synchronised batch norm needs more than one value per channel over every "
           "process, got ",
           count);
  Tensor rm = running_mean.to(Device::cpu()).to(DType::kFloat64),
         rv = running_var.to(Device::cpu()).to(DType::kFloat64);
  mean.resize(static_cast<size_t>(c));
  var.resize(static_cast<size_t>(c));
  for (int64_t i = 0; i < c; ++i) {
    mean[i] = a[i] / count;
    var[i] = std::max(0.0, a[c + i] / count - mean[i] * mean[i]);
    rm.data<double>()[i] = (1 - momentum) * rm.data<double>()[i] + momentum * mean[i];
    rv.data<double>()[i] = (1 - momentum) * rv.data<double>()[i] + momentum * var[i] * count / (count - 1);
  }
  running_mean.copy_(rm.to(running_mean.dtype()));
  running_var.copy_(rv.to(running_var.dtype()));
}

// A float32 tensor of C values on `device`.
Tensor channel_vector(const std::vector<double>& v, Device device) {
  std::vector<float> f(v.begin(), v.end());
  return Tensor::from_vector<float>({static_cast<int64_t>(f.size())}, f).to(device);
}

// The CUDA body, composed of the backend's batch-norm calls: the local sums from cuDNN's training
// statistics, the normalisation with the shared statistics by the inference call, and the backward's
// correction (an affine map per channel) by the inference call again with chosen parameters. The C
// values per channel cross to the host and back (the all-reduce is MPI's on the host anyway).
Tensor batch_norm_synced_cuda(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                              Tensor& running_var, const BatchNormOptions& opt, int64_t n, int64_t c, int64_t s) {
  DL_CHECK(x.dtype() == DType::kFloat32, "batch_norm: the synchronised batch norm on CUDA takes float32, got ",
           dtype_name(x.dtype()));
  const Device dev = x.device();
  const double eps = opt.eps, local = static_cast<double>(n * s);
  Tensor sums = Tensor::zeros({3, c}, DType::kFloat64);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);  // written here, overwritten by the normalisation below
  {
    Tensor m = Tensor::empty({c}, x.dtype(), dev), is = Tensor::empty({c}, x.dtype(), dev),
           vu = Tensor::empty({c}, x.dtype(), dev);
    DL_CUDA_BODY(cuda::batch_norm_forward_train(dev.index, f32(x), f32(gamma), f32(beta), n, c, s, eps, f32(y), f32(m),
                                                f32(is), f32(vu)));
    const std::vector<float> mh = m.to_vector_f32(), vh = vu.to_vector_f32();
    double* a = sums.data<double>();
    for (int64_t i = 0; i < c; ++i) {
      const double mu = mh[i], v = local > 1 ? vh[i] * (local - 1) / local : 0.0;
      a[i] = mu * local;
      a[c + i] = (v + mu * mu) * local;
      a[2 * c + i] = local;
    }
  }
  opt.sync(sums);
  const double count = sums.data<double>()[2 * c];
  std::vector<double> mean_h, var_h;
  synced_statistics(sums, c, opt.momentum, mean_h, var_h, running_mean, running_var);
  const Tensor mean = channel_vector(mean_h, dev), var = channel_vector(var_h, dev);
  const bool relu = opt.relu;
  DL_CUDA_BODY(cuda::batch_norm_forward_infer(dev.index, f32(x), f32(gamma), f32(beta), f32(mean), f32(var), n, c, s,
                                              eps, f32(y));
               if (relu) cuda::relu_forward(dev.index, f32(y), f32(y), y.numel()));
  Tensor sx = x.detach(), sg = gamma.detach(), sy = relu ? y.detach() : Tensor();
  const auto sync = opt.sync;
  return autograd::record(
      relu ? "sync_batch_norm_relu" : "sync_batch_norm", y, {x, gamma, beta},
      [=](const Tensor& gy_in, const std::vector<bool>& needs) {
        const Tensor gy = relu_masked(gy_in, sy, relu);
        Tensor gx = Tensor::empty(sx.shape(), sx.dtype(), dev);
        Tensor gg = Tensor::empty({c}, sx.dtype(), dev), gb = Tensor::empty({c}, sx.dtype(), dev);
        DL_CUDA_BODY(cuda::batch_norm_backward_infer(dev.index, f32(sx), f32(sg), f32(gy), f32(mean), f32(var), n, c, s,
                                                     eps, f32(gx), f32(gg), f32(gb)));
        const std::vector<float> gbh = gb.to_vector_f32(), ggh = gg.to_vector_f32(), gam = sg.to_vector_f32();
        Tensor red = Tensor::empty({2, c}, DType::kFloat64);
        for (int64_t i = 0; i < c; ++i) red.data<double>()[i] = gbh[i], red.data<double>()[c + i] = ggh[i];
        sync(red);
        // dx -= gamma invstd (mean dy + xhat mean(dy xhat)) per channel: the inference call with the
        // shared statistics, scale -gamma invstd mean(dy xhat) and shift -gamma invstd mean dy gives it,
        // x - mean formed before the scaling (no cancellation where |mean| >> the deviation).
        std::vector<double> scale(static_cast<size_t>(c)), shift(static_cast<size_t>(c));
        for (int64_t i = 0; i < c; ++i) {
          const double k = gam[i] / std::sqrt(var_h[i] + eps);
          scale[i] = -k * red.data<double>()[c + i] / count;
          shift[i] = -k * red.data<double>()[i] / count;
        }
        const Tensor sc = channel_vector(scale, dev), sh = channel_vector(shift, dev);
        Tensor correction = Tensor::empty(sx.shape(), sx.dtype(), dev);
        DL_CUDA_BODY(cuda::batch_norm_forward_infer(dev.index, f32(sx), f32(sc), f32(sh), f32(mean), f32(var), n, c, s,
                                                    eps, f32(correction)));
        add_(gx, correction);
        return std::vector<Tensor>{needs[0] ? gx : Tensor(), needs[1] ? gg : Tensor(), needs[2] ? gb : Tensor()};
      });
}

template <typename T>
Tensor batch_norm_synced(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                         Tensor& running_var, const BatchNormOptions& opt, int64_t n, int64_t c, int64_t s) {
  if (!x.device().is_cpu()) return batch_norm_synced_cuda(x, gamma, beta, running_mean, running_var, opt, n, c, s);
  Tensor sums = Tensor::zeros({3, c}, DType::kFloat64);  // sum x, sum x², count
  double* a = sums.data<double>();
  cpu::batch_norm_sums(x.data<T>(), n, c, s, a, a + c);
  for (int64_t i = 0; i < c; ++i) a[2 * c + i] = static_cast<double>(n * s);
  opt.sync(sums);
  const double count = a[2 * c];
  std::vector<double> mean_h, var_h;
  synced_statistics(sums, c, opt.momentum, mean_h, var_h, running_mean, running_var);
  Tensor mean = Tensor::empty({c}, x.dtype()), var = Tensor::empty({c}, x.dtype());
  for (int64_t i = 0; i < c; ++i) {
    mean.data<T>()[i] = static_cast<T>(mean_h[static_cast<size_t>(i)]);
    var.data<T>()[i] = static_cast<T>(var_h[static_cast<size_t>(i)]);
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
  // Note [bf16 activations]: bfloat16 x and y on the CPU, float32 parameters and statistics; the CUDA body
  // and the synchronised batch norm compute in float32 between two casts.
  if (is_bf16(x) && (!x.device().is_cpu() || (opt.training && opt.sync)))
    return bf16_of(batch_norm(float32_of(x), gamma, beta, running_mean, running_var, opt));
  check_float_or_bf16(x, op, "x");
  DL_CHECK(x.dim() == 2 || x.dim() == 4, op, ": expected N x C or N x C x H x W, got ", x.shape().str());
  check_same({{is_bf16(x) ? "gamma" : "x", is_bf16(x) ? &gamma : &x},
              {"gamma", &gamma},
              {"beta", &beta},
              {"running_mean", &running_mean},
              {"running_var", &running_var}},
             op);
  DL_CHECK(!is_bf16(x) || (gamma.dtype() == DType::kFloat32 && gamma.device() == x.device()), op,
           ": a bfloat16 x takes float32 parameters on its device, got gamma ", dtype_name(gamma.dtype()), " on ",
           gamma.device().str());
  const DType pdt = is_bf16(x) ? DType::kFloat32 : x.dtype();  // parameters and statistics
  const int64_t n = x.size(0), c = x.size(1), s = x.numel() / std::max<int64_t>(n * c, 1);
  for (auto [name, t] :
       {std::pair{"gamma", &gamma}, {"beta", &beta}, {"running_mean", &running_mean}, {"running_var", &running_var}}) {
    check_defined(*t, op, name);
    check_shape(*t, {c}, op, name);
  }
  DL_CHECK(!opt.training || n * s > 1, op, ": training needs more than one value per channel, got input ",
           x.shape().str());

  // A channels-last x keeps its format (Note [memory format]): the CPU loops and cuDNN's training calls read
  // NHWC; the synchronised batch norm and CUDA's inference mode (whose backward is a hand-written NCHW
  // kernel) run in NCHW between two reorders.
  const MemoryFormat fmt = x.memory_format();
  const bool cl = fmt == MemoryFormat::kChannelsLast;
  if (cl && ((!x.device().is_cpu() && !opt.training) || (opt.training && opt.sync)))
    return channels_last(batch_norm(contiguous(x), gamma, beta, running_mean, running_var, opt));

  if (opt.training && opt.sync) {
    return x.dtype() == DType::kFloat64
               ? batch_norm_synced<double>(x, gamma, beta, running_mean, running_var, opt, n, c, s)
               : batch_norm_synced<float>(x, gamma, beta, running_mean, running_var, opt, n, c, s);
  }
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device(), fmt);
  const double eps = opt.eps;
  const bool relu = opt.relu;
  if (!opt.training) {
    dispatch_with_bf16(
        x, op,
        [&](auto t) {
          using T = decltype(t);
          using P = cpu::acc_t<T>;
          (cl ? cpu::batch_norm_forward_infer_nhwc<T>
              : cpu::batch_norm_forward_infer<T>)(x.data<T>(fmt), gamma.data<P>(), beta.data<P>(),
                                                  running_mean.data<P>(), running_var.data<P>(), n, c, s, eps,
                                                  y.data<T>(fmt), relu);
        },
        [&](int dev) {
          DL_CUDA_BODY(cuda::batch_norm_forward_infer(dev, f32(x), f32(gamma), f32(beta), f32(running_mean),
                                                      f32(running_var), n, c, s, eps, f32(y));
                       if (relu) cuda::relu_forward(dev, f32(y), f32(y), y.numel()));
        });
    if (auto* tr = active_tracer())
      tr->record({op, {x, gamma, beta, running_mean, running_var}, y, TraceAttrs::of_reals({eps}, relu)});
    if (!autograd::needs_record({x, gamma, beta})) return y;
    Tensor sx = x.detach(), sg = gamma.detach(), sm = running_mean.clone(), sv = running_var.clone();
    Tensor sy = relu ? y.detach() : Tensor();
    return autograd::record(
        relu ? "batch_norm_relu_infer" : "batch_norm_infer", y, {x, gamma, beta},
        [=](const Tensor& gy_in, const std::vector<bool>& needs) {
          const Tensor gy = relu_masked(to_memory_format(gy_in, fmt), sy, relu);
          Tensor gx = needs[0] ? Tensor::empty(sx.shape(), sx.dtype(), sx.device(), fmt) : Tensor();
          Tensor gg = Tensor::empty({c}, pdt, sx.device()), gb = Tensor::empty({c}, pdt, sx.device());
          dispatch_with_bf16(
              gy, "batch_norm_backward",
              [&](auto t) {
                using T = decltype(t);
                using P = cpu::acc_t<T>;
                (cl ? cpu::batch_norm_backward_infer_nhwc<T>
                    : cpu::batch_norm_backward_infer<T>)(sx.data<T>(fmt), sg.data<P>(), gy.data<T>(fmt), sm.data<P>(),
                                                         sv.data<P>(), n, c, s, eps,
                                                         gx.defined() ? gx.data<T>(fmt) : nullptr, gg.data<P>(),
                                                         gb.data<P>(), sy.defined() ? sy.data<T>(fmt) : nullptr);
              },
              [&](int dev) {
                DL_CUDA_BODY(cuda::batch_norm_backward_infer(dev, f32(sx), f32(sg), f32(gy), f32(sm), f32(sv), n, c, s,
                                                             eps, f32(gx), f32(gg), f32(gb)));
              });
          return std::vector<Tensor>{gx, needs[1] ? gg : Tensor(), needs[2] ? gb : Tensor()};
        });
  }

  Tensor mean = Tensor::empty({c}, pdt, x.device());
  Tensor invstd = Tensor::empty({c}, pdt, x.device());
  dispatch_with_bf16(
      x, op,
      [&](auto t) {
        using T = decltype(t);
        using P = cpu::acc_t<T>;
        Tensor var_unbiased = Tensor::empty({c}, pdt, x.device());
        (cl ? cpu::batch_norm_forward_train_nhwc<T>
            : cpu::batch_norm_forward_train<T>)(x.data<T>(fmt), gamma.data<P>(), beta.data<P>(), n, c, s, eps,
                                                y.data<T>(fmt), mean.data<P>(), invstd.data<P>(),
                                                var_unbiased.data<P>(), relu);
        P* rm = running_mean.data<P>();
        P* rv = running_var.data<P>();
        const P m = static_cast<P>(opt.momentum);
        for (int64_t i = 0; i < c; ++i) {
          rm[i] = (P(1) - m) * rm[i] + m * mean.data<P>()[i];
          rv[i] = (P(1) - m) * rv[i] + m * var_unbiased.data<P>()[i];
        }
      },
      [&](int dev) {
        // The running statistics are blended by cuDNN in the same call (no extra kernels).
        DL_CUDA_BODY(cuda::batch_norm_forward_train_running(dev, stored_f32(x), f32(gamma), f32(beta), n, c, s, eps,
                                                            opt.momentum, stored_f32(y), f32(mean), f32(invstd),
                                                            f32(running_mean), f32(running_var), cl);
                     if (relu) cuda::relu_forward(dev, stored_f32(y), stored_f32(y), y.numel()));
      });
  if (!autograd::needs_record({x, gamma, beta})) return y;
  Tensor sx = x.detach(), sg = gamma.detach(), sy = relu ? y.detach() : Tensor();
  return autograd::record(
      relu ? "batch_norm_relu" : "batch_norm", y, {x, gamma, beta},
      [=](const Tensor& gy_in, const std::vector<bool>& needs) {
        const Tensor gy = relu_masked(to_memory_format(gy_in, fmt), sy, relu);
        Tensor gx = needs[0] ? Tensor::empty(sx.shape(), sx.dtype(), sx.device(), fmt) : Tensor();
        Tensor gg = Tensor::empty({c}, pdt, sx.device()), gb = Tensor::empty({c}, pdt, sx.device());
        dispatch_with_bf16(
            gy, "batch_norm_backward",
            [&](auto t) {
              using T = decltype(t);
              using P = cpu::acc_t<T>;
              (cl ? cpu::batch_norm_backward_nhwc<T>
                  : cpu::batch_norm_backward<T>)(sx.data<T>(fmt), sg.data<P>(), gy.data<T>(fmt), mean.data<P>(),
                                                 invstd.data<P>(), n, c, s, gx.defined() ? gx.data<T>(fmt) : nullptr,
                                                 gg.data<P>(), gb.data<P>(), sy.defined() ? sy.data<T>(fmt) : nullptr);
            },
            [&](int dev) {
              DL_CUDA_BODY(cuda::batch_norm_backward(dev, stored_f32(sx), f32(sg), stored_f32(gy), f32(mean),
                                                     f32(invstd), n, c, s, eps, stored_f32(gx), f32(gg), f32(gb), cl));
            });
        return std::vector<Tensor>{gx, needs[1] ? gg : Tensor(), needs[2] ? gb : Tensor()};
      });
}

}  // namespace dl::ops
