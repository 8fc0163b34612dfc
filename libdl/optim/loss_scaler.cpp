// Dynamic loss scaling (dl/optim/loss_scaler.h).
#include "dl/optim/loss_scaler.h"

#include <cmath>
#include <limits>
#include <vector>

#include "dl/autograd/engine.h"
#include "dl/core/error.h"
#include "dl/ops/elementwise.h"

namespace dl::optim {

LossScaler::LossScaler(const LossScalerOptions& o) : o_(o), scale_(o.initial_scale) {
  DL_CHECK(o.initial_scale > 0 && std::isfinite(o.initial_scale),
           "LossScaler: initial_scale must be positive and finite, got ", o.initial_scale);
  DL_CHECK(o.growth_factor > 1 && std::isfinite(o.growth_factor), "LossScaler: growth_factor must be > 1, got ",
           o.growth_factor);
  DL_CHECK(o.backoff_factor > 0 && o.backoff_factor < 1, "LossScaler: backoff_factor must be in (0, 1), got ",
           o.backoff_factor);
  DL_CHECK(o.growth_interval >= 1, "LossScaler: growth_interval must be >= 1, got ", o.growth_interval);
}

Tensor LossScaler::scale(const Tensor& loss) const { return ops::scale(loss, scale_); }

bool LossScaler::unscale(const std::vector<nn::ParamRef>& params) const {
  autograd::NoGradGuard no_grad;
  std::vector<Tensor> unscaled;
  for (const auto& p : params) {
    const Tensor g = p.tensor.grad();
    if (!g.defined()) continue;
    unscaled.push_back(ops::scale(g, 1.0 / scale_));
    Tensor param = p.tensor;  // a handle to the same parameter
    param.set_grad(unscaled.back());
  }
  // The sum of squares, in double, is inf or NaN when any gradient holds one. On a GPU: one read a step
  // for all the gradients (Note [blocking calls] in dl/core/cuda.h).
  return std::isfinite(ops::squared_norm(unscaled));
}

void LossScaler::update(bool found_inf) {
  if (found_inf) {
    // Never below the smallest normal double: a model that overflows at every scale stays diagnosable.
    scale_ = std::max(scale_ * o_.backoff_factor, std::numeric_limits<double>::min());
    growth_tracker_ = 0;
    ++skipped_;
    return;
  }
  if (++growth_tracker_ >= o_.growth_interval) {
    const double grown = scale_ * o_.growth_factor;
    if (std::isfinite(grown)) scale_ = grown;
    growth_tracker_ = 0;
  }
}

void LossScaler::set_state(double scale, int growth_tracker, int64_t skipped_steps) {
  DL_CHECK(scale > 0 && std::isfinite(scale), "LossScaler: a scale must be positive and finite, got ", scale);
  DL_CHECK(growth_tracker >= 0 && skipped_steps >= 0, "LossScaler: expected counts >= 0, got growth tracker ",
           growth_tracker, " and skipped steps ", skipped_steps);
  scale_ = scale;
  growth_tracker_ = growth_tracker;
  skipped_ = skipped_steps;
}

}  // namespace dl::optim
