// The optimisers, clipping and schedules.
#include "dl/optim/optimizer.h"

#include <cmath>

#include "dl/ops/elementwise.h"
#include "dl/ops/optim_update.h"

namespace dl::optim {

Optimizer::Optimizer(std::vector<nn::ParamRef> params, double learning_rate, double l2)
    : params_(std::move(params)), lr_(learning_rate), l2_(l2) {
  DL_CHECK(learning_rate > 0 && std::isfinite(learning_rate), "optimiser: expected a positive learning rate, got ",
           learning_rate);
  DL_CHECK(l2 >= 0, "optimiser: expected L2 regularisation >= 0, got ", l2);
}

std::vector<Tensor>& Optimizer::add_slot(const std::string& slot) {
  std::vector<Tensor> tensors;
  for (const auto& p : params_) tensors.push_back(Tensor::zeros(p.tensor.shape(), p.tensor.dtype(), p.tensor.device()));
  slots_.emplace_back(slot, std::move(tensors));
  return slots_.back().second;
}

void Optimizer::step() {
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor g = params_[i].tensor.grad();
    if (!g.defined()) continue;
    update(i, params_[i].tensor, g);
  }
}

void Optimizer::zero_grad() {
  for (auto& p : params_) p.tensor.set_grad(Tensor());
}

nn::NamedTensors Optimizer::state() const {
  nn::NamedTensors out;
  for (const auto& [slot, tensors] : slots_)
    for (size_t i = 0; i < params_.size(); ++i) out.emplace_back(slot + "." + params_[i].name, tensors[i]);
  return out;
}

void Optimizer::load_state(const nn::NamedTensors& tensors, int64_t steps, const std::string& origin) {
  for (auto& [slot, mine] : slots_)
    for (size_t i = 0; i < params_.size(); ++i) {
      const std::string key = slot + "." + params_[i].name;
      const Tensor* src = nullptr;
      for (const auto& [n, t] : tensors)
        if (n == key) src = &t;
      DL_CHECK(src, origin, ": optimiser state '", key, "' of ", name(), " is missing");
      DL_CHECK(src->shape() == mine[i].shape() && src->dtype() == mine[i].dtype(), origin, ": optimiser state '", key,
               "' is ", src->shape().str(), ", expected ", mine[i].shape().str());
    }
  for (auto& [slot, mine] : slots_)
    for (size_t i = 0; i < params_.size(); ++i)
      for (const auto& [n, t] : tensors)
        if (n == slot + "." + params_[i].name) mine[i].copy_(t);
  steps_ = steps;
}

Sgdm::Sgdm(std::vector<nn::ParamRef> params, const SgdmOptions& o)
    : Optimizer(std::move(params), o.learning_rate, o.l2), momentum_(o.momentum), velocity_(add_slot("velocity")) {
  DL_CHECK(o.momentum >= 0 && o.momentum < 1, "sgdm: expected momentum in [0, 1), got ", o.momentum);
}
void Sgdm::update(size_t i, Tensor& w, const Tensor& g) {
  ops::sgdm_update_(w, g, velocity_[i], lr_, momentum_, l2_ * params_[i].l2_factor);
}

Adam::Adam(std::vector<nn::ParamRef> params, const AdamOptions& o)
    : Optimizer(std::move(params), o.learning_rate, o.l2), o_(o), m_(add_slot("adam_m")), v_(add_slot("adam_v")) {
  DL_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1 && o.epsilon > 0,
           "adam: expected decay rates in [0, 1) and epsilon > 0, got ", o.beta1, ", ", o.beta2, ", ", o.epsilon);
}
void Adam::update(size_t i, Tensor& w, const Tensor& g) {
  ops::adam_update_(w, g, m_[i], v_[i], lr_, o_.beta1, o_.beta2, o_.epsilon, l2_ * params_[i].l2_factor, steps_);
}

RmsProp::RmsProp(std::vector<nn::ParamRef> params, const RmsPropOptions& o)
    : Optimizer(std::move(params), o.learning_rate, o.l2), o_(o), v_(add_slot("rmsprop_v")) {
  DL_CHECK(o.decay >= 0 && o.decay < 1 && o.epsilon > 0, "rmsprop: expected decay in [0, 1) and epsilon > 0, got ",
           o.decay, ", ", o.epsilon);
}
void RmsProp::update(size_t i, Tensor& w, const Tensor& g) {
  ops::rmsprop_update_(w, g, v_[i], lr_, o_.decay, o_.epsilon, l2_ * params_[i].l2_factor);
}

namespace {
void scale_grad(const nn::ParamRef& p, double f) {
  Tensor g = p.tensor.grad();
  ops::add_(g, g, f - 1.0);  // g += (f - 1) g
}
}  // namespace

double clip_grad_global_norm(const std::vector<nn::ParamRef>& params, double threshold) {
  double total = 0;
  for (const auto& p : params)
    if (p.tensor.grad().defined()) total += ops::squared_norm(p.tensor.grad());
  const double norm = std::sqrt(total);
  if (norm > threshold)
    for (const auto& p : params)
      if (p.tensor.grad().defined()) scale_grad(p, threshold / norm);
  return norm;
}

double clip_grad_norm_per_parameter(const std::vector<nn::ParamRef>& params, double threshold) {
  double worst = 0;
  for (const auto& p : params) {
    if (!p.tensor.grad().defined()) continue;
    const double norm = std::sqrt(ops::squared_norm(p.tensor.grad()));
    worst = std::max(worst, norm);
    if (norm > threshold) scale_grad(p, threshold / norm);
  }
  return worst;
}

double clip_grad_value(const std::vector<nn::ParamRef>& params, double threshold) {
  double worst = 0;
  for (const auto& p : params) {
    Tensor grad = p.tensor.grad();
    if (!grad.defined()) continue;
    // Clipping by value is opt-in and rare: on a device the gradient makes a round trip through the host.
    Tensor g = grad.device().is_cpu() ? grad : grad.to(Device::cpu());
    auto clamp = [&](auto* d) {
      for (int64_t i = 0; i < g.numel(); ++i) {
        worst = std::max(worst, std::fabs(static_cast<double>(d[i])));
        d[i] = std::min(std::max(d[i], static_cast<std::remove_pointer_t<decltype(d)>>(-threshold)),
                        static_cast<std::remove_pointer_t<decltype(d)>>(threshold));
      }
    };
    if (g.dtype() == DType::kFloat32)
      clamp(g.data<float>());
    else
      clamp(g.data<double>());
    if (!grad.device().is_cpu()) grad.copy_(g);
  }
  return worst;
}

double PiecewiseSchedule::rate(int epoch) const {
  if (!enabled || drop_period <= 0) return initial;
  return initial * std::pow(drop_factor, (std::max(epoch, 1) - 1) / drop_period);
}

}  // namespace dl::optim
