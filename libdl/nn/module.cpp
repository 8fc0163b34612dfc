// Module bookkeeping: registration, recursive collection of names, train/eval.
#include "dl/nn/module.h"

namespace dl::nn {

void Module::check_new_name(const std::string& name, const char* who) const {
  DL_CHECK(!name.empty() && name.find('.') == std::string::npos, who, "('", name,
           "'): expected a non-empty name without dots (dots join the names of a path)");
  auto taken = [&](const char* what) {
    DL_THROW(who, "('", name, "'): the name is already taken by a ", what,
             " of this module (names of parameters, buffers and children must be unique)");
  };
  for (const auto& p : params_)
    if (p.name == name) taken("parameter");
  for (const auto& b : buffers_)
    if (b.first == name) taken("buffer");
  for (const auto& c : children_)
    if (c.first == name) taken("child module");
}

Tensor& Module::register_parameter(const std::string& name, Tensor t, double l2_factor) {
  check_new_name(name, "register_parameter");
  DL_CHECK(t.defined(), "register_parameter('", name, "'): undefined tensor");
  t.set_requires_grad(true);
  params_.push_back({name, std::move(t), l2_factor});
  return params_.back().tensor;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name, "register_buffer");
  DL_CHECK(t.defined(), "register_buffer('", name, "'): undefined tensor");
  buffers_.emplace_back(name, std::move(t));
  return buffers_.back().second;
}

void Module::to(Device device) {
  for (auto& [name, t] : state()) t.move_to_(device);
}

void Module::for_each_module(const std::function<void(Module&)>& f) {
  f(*this);
  for (auto& [name, child] : children_) child->for_each_module(f);
}

void Module::collect(const std::string& prefix, std::vector<ParamRef>* params, NamedTensors* buffers) const {
  if (params)
    for (const auto& p : params_) params->push_back({prefix + p.name, p.tensor, p.l2_factor});
  if (buffers)
    for (const auto& [name, t] : buffers_) buffers->emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, buffers);
}

std::vector<ParamRef> Module::parameter_refs() const {
  std::vector<ParamRef> out;
  collect("", &out, nullptr);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& p : parameter_refs()) out.push_back(p.tensor);
  return out;
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  for (auto& p : parameter_refs()) out.emplace_back(p.name, p.tensor);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", nullptr, &out);
  return out;
}

NamedTensors Module::state() const {
  NamedTensors out = named_parameters();
  for (auto& b : named_buffers()) out.push_back(b);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& p : parameter_refs()) n += p.tensor.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& p : parameter_refs()) p.tensor.set_grad(Tensor());
}

}  // namespace dl::nn
