// The optimisers, clipping and schedules.
#include "dl/optim/optimizer.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "dl/ops/elementwise.h"
#include "dl/ops/optim_update.h"

namespace dl::optim {

namespace {

void check_rate(double v, const char* what) {
  DL_CHECK(v >= 0 && std::isfinite(v), "optimiser: expected ", what, " >= 0, got ", v);
}

}  // namespace

Optimizer::Optimizer(std::vector<nn::ParamRef> params, double learning_rate, double l2, double weight_decay)
    : Optimizer(std::vector<ParamGroup>{ParamGroup{.params = std::move(params)}}, learning_rate, l2, weight_decay) {}

Optimizer::Optimizer(std::vector<ParamGroup> groups, double learning_rate, double l2, double weight_decay)
    : lr_(learning_rate) {
  DL_CHECK(learning_rate > 0 && std::isfinite(learning_rate), "optimiser: expected a positive learning rate, got ",
           learning_rate);
  check_rate(l2, "L2 regularisation");
  check_rate(weight_decay, "weight decay");
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const ParamGroup& group = groups[gi];
    check_rate(group.learn_rate_factor, "a group's learn-rate factor");
    check_rate(group.l2.value_or(l2), "a group's L2 regularisation");
    check_rate(group.weight_decay.value_or(weight_decay), "a group's weight decay");
    for (const nn::ParamRef& p : group.params) {
      DL_CHECK(p.tensor.defined(), "optimiser: parameter '", p.name, "' of group ", gi, " is an undefined tensor");
      check_rate(p.learn_rate_factor, "a parameter's learn-rate factor");
      check_rate(p.l2_factor, "a parameter's L2 factor");
      for (const nn::ParamRef& q : params_)
        DL_CHECK(p.tensor.numel() == 0 || q.tensor.raw_data() != p.tensor.raw_data(), "optimiser: parameter '", p.name,
                 "' is given twice (a parameter may be in one group only; it is already there as '", q.name, "')");
      params_.push_back(p);
      lr_factor_.push_back(group.learn_rate_factor * p.learn_rate_factor);
      l2_.push_back(group.l2.value_or(l2) * p.l2_factor);
      weight_decay_.push_back(group.weight_decay.value_or(weight_decay));
    }
  }
}

void Optimizer::set_learning_rate(double lr) {
  DL_CHECK(lr >= 0 && std::isfinite(lr), "optimiser ", name(), ": expected a learning rate >= 0, got ", lr);
  lr_ = lr;
}

std::vector<Tensor>& Optimizer::add_slot(const std::string& slot) {
  std::vector<Tensor> tensors;
  for (const auto& p : params_) tensors.push_back(Tensor::zeros(p.tensor.shape(), p.tensor.dtype(), p.tensor.device()));
  slots_.emplace_back(slot, std::move(tensors));
  return slots_.back().second;
}

void Optimizer::step() {
  ++steps_;
  bool any = false;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor g = params_[i].tensor.grad();
    if (!g.defined()) continue;
    any = true;
    // Decoupled weight decay (AdamW): w *= 1 - lr * wd, before and apart from the gradient's update.
    if (weight_decay_[i] > 0) ops::add_(params_[i].tensor, params_[i].tensor, -lr(i) * weight_decay_[i]);
    update(i, params_[i].tensor, g);
  }
  if (!any && !params_.empty() && !warned_no_gradients_) {
    warned_no_gradients_ = true;
    std::fprintf(stderr,
                 "libdl: warning: optimiser %s stepped with no gradient on any of its %zu parameters (was backward() "
                 "called on a loss that depends on them?); said once\n",
                 name(), params_.size());
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
    : Sgdm(std::vector<ParamGroup>{ParamGroup{.params = std::move(params)}}, o) {}
Sgdm::Sgdm(std::vector<ParamGroup> groups, const SgdmOptions& o)
    : Optimizer(std::move(groups), o.learning_rate, o.l2, o.weight_decay), o_(o), velocity_(add_slot("velocity")) {
  DL_CHECK(o.momentum >= 0 && o.momentum < 1, "sgdm: expected momentum in [0, 1), got ", o.momentum);
}
void Sgdm::update(size_t i, Tensor& w, const Tensor& g) {
  if (!o_.nesterov) {
    ops::sgdm_update_(w, g, velocity_[i], lr(i), o_.momentum, l2(i));
    return;
  }
  // Nesterov: w_new = w + m v_new - lr g'. The fused update gives w + v_new with v_new = m v - lr g', so
  // lr g' = m v - v_new and w_new = (w + v_new) + m (v_new - v). Without L2 the update does not read w, so
  // w -= m v can come first and no copy of v is needed; with L2, g' = g + l2 w needs w unchanged.
  Tensor& v = velocity_[i];
  if (l2(i) == 0) {
    ops::add_(w, v, -o_.momentum);
    ops::sgdm_update_(w, g, v, lr(i), o_.momentum, 0.0);
    ops::add_(w, v, o_.momentum);
    return;
  }
  const Tensor v_old = v.clone();
  ops::sgdm_update_(w, g, v, lr(i), o_.momentum, l2(i));
  ops::add_(w, v, o_.momentum);
  ops::add_(w, v_old, -o_.momentum);
}

Adam::Adam(std::vector<nn::ParamRef> params, const AdamOptions& o)
    : Adam(std::vector<ParamGroup>{ParamGroup{.params = std::move(params)}}, o) {}
Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& o)
    : Optimizer(std::move(groups), o.learning_rate, o.l2, o.weight_decay),
      o_(o),
      m_(add_slot("adam_m")),
      v_(add_slot("adam_v")) {
  DL_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1 && o.epsilon > 0,
           "adam: expected decay rates in [0, 1) and epsilon > 0, got ", o.beta1, ", ", o.beta2, ", ", o.epsilon);
}
void Adam::update(size_t i, Tensor& w, const Tensor& g) {
  ops::adam_update_(w, g, m_[i], v_[i], lr(i), o_.beta1, o_.beta2, o_.epsilon, l2(i), steps_);
}

namespace {
AdamOptions adam_options(const AdamWOptions& o) {
  return {.learning_rate = o.learning_rate,
          .beta1 = o.beta1,
          .beta2 = o.beta2,
          .epsilon = o.epsilon,
          .l2 = 0.0,
          .weight_decay = o.weight_decay};
}
}  // namespace

AdamW::AdamW(std::vector<nn::ParamRef> params, const AdamWOptions& o) : Adam(std::move(params), adam_options(o)) {}
AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o) : Adam(std::move(groups), adam_options(o)) {}

RmsProp::RmsProp(std::vector<nn::ParamRef> params, const RmsPropOptions& o)
    : RmsProp(std::vector<ParamGroup>{ParamGroup{.params = std::move(params)}}, o) {}
RmsProp::RmsProp(std::vector<ParamGroup> groups, const RmsPropOptions& o)
    : Optimizer(std::move(groups), o.learning_rate, o.l2, o.weight_decay), o_(o), v_(add_slot("rmsprop_v")) {
  DL_CHECK(o.decay >= 0 && o.decay < 1 && o.epsilon > 0, "rmsprop: expected decay in [0, 1) and epsilon > 0, got ",
           o.decay, ", ", o.epsilon);
}
void RmsProp::update(size_t i, Tensor& w, const Tensor& g) {
  ops::rmsprop_update_(w, g, v_[i], lr(i), o_.decay, o_.epsilon, l2(i));
}

namespace {
void scale_grad(const nn::ParamRef& p, double f) {
  Tensor g = p.tensor.grad();
  ops::add_(g, g, f - 1.0);  // g += (f - 1) g
}
}  // namespace

double clip_grad_global_norm(const std::vector<nn::ParamRef>& params, double threshold) {
  std::vector<Tensor> grads;
  for (const auto& p : params) grads.push_back(p.tensor.grad());
  const double norm = std::sqrt(ops::squared_norm(grads));  // on a GPU one read for them all
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
