// Module bookkeeping: registration, recursive collection of names, train/eval, deep copies; Layer's
// operator() with its hooks and the check that the layers a forward calls are registered.
#include "dl/nn/module.h"

#include <cxxabi.h>

#include <cstdlib>
#include <typeinfo>

#include "dl/autograd/engine.h"
#include "dl/ops/shape_ops.h"

namespace dl::nn {

struct LayerHooks {
  template <typename Fn>
  using List = std::vector<std::pair<uint64_t, Fn>>;
  List<ForwardPreHook> pre;
  List<ForwardHook> forward;
  List<BackwardHook> backward;
  uint64_t next_id = 1;
  Module* owner = nullptr;  // the layer whose operator() ran last (what backward hooks are given)
};

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

void Module::to(MemoryFormat format) {
  for_each_module([format](Module& m) { m.memory_format_ = format; });
}

void Module::for_each_module(const std::function<void(Module&)>& f) {
  f(*this);
  for (auto& [name, child] : children_) child->for_each_module(f);
}

namespace {
template <typename M, typename Out>
void walk_modules(M& m, const std::string& prefix, Out& out) {
  out.emplace_back(prefix, &m);
  for (const auto& [name, child] : m.named_children())
    walk_modules(static_cast<M&>(*child), prefix.empty() ? name : prefix + "." + name, out);
}
}  // namespace

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  walk_modules(*this, "", out);
  return out;
}

std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out;
  walk_modules(*this, "", out);
  return out;
}

bool Module::is_descendant(const Module& m) const {
  if (&m == this) return true;
  for (const auto& [name, child] : children_)
    if (child->is_descendant(m)) return true;
  return false;
}

bool Module::has_parameters() const {
  if (!params_.empty()) return true;
  for (const auto& [name, child] : children_)
    if (child->has_parameters()) return true;
  return false;
}

std::string Module::type_name() const {
  const char* mangled = typeid(*this).name();
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : mangled;
  std::free(demangled);
  const std::string ours = "dl::nn::";
  return name.rfind(ours, 0) == 0 ? name.substr(ours.size()) : name;
}

// ---- clone ----

std::shared_ptr<Module> Module::clone_empty() const {
  DL_THROW("clone: ", type_name(),
           " does not override clone_empty(), so it cannot be copied; give it "
           "std::shared_ptr<Module> clone_empty() const override, returning a new ",
           type_name(), " built with this one's configuration (clone() then copies the values)");
}

namespace {
// Points `dst` (a handle that layers hold) at a new copy of `src`'s data on `src`'s device.
void assign_copy(Tensor& dst, const Tensor& src, const std::string& what) {
  DL_CHECK(dst.shape() == src.shape(), what, ": the copy's tensor is ", dst.shape().str(), ", the original's ",
           src.shape().str(), " (clone_empty must build the same configuration)");
  const Tensor fresh = src.clone();
  TensorImpl& d = *dst.impl();
  d.storage = fresh.impl()->storage;
  d.offset = fresh.impl()->offset;
  d.dtype = src.dtype();
  d.format = fresh.impl()->format;
  d.requires_grad = src.requires_grad();
  d.grad = Tensor();
  d.grad_fn = nullptr;
}
}  // namespace

void Module::copy_own_state_to(Module& copy) const {
  const std::string who = "clone of " + type_name();
  DL_CHECK(copy.params_.size() == params_.size() && copy.buffers_.size() == buffers_.size(), who,
           ": clone_empty built ", copy.params_.size(), " parameters and ", copy.buffers_.size(), " buffers, expected ",
           params_.size(), " and ", buffers_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    DL_CHECK(copy.params_[i].name == params_[i].name, who, ": expected parameter '", params_[i].name, "', got '",
             copy.params_[i].name, "'");
    assign_copy(copy.params_[i].tensor, params_[i].tensor, who + " parameter '" + params_[i].name + "'");
    copy.params_[i].l2_factor = params_[i].l2_factor;
  }
  for (size_t i = 0; i < buffers_.size(); ++i) {
    DL_CHECK(copy.buffers_[i].first == buffers_[i].first, who, ": expected buffer '", buffers_[i].first, "', got '",
             copy.buffers_[i].first, "'");
    assign_copy(copy.buffers_[i].second, buffers_[i].second, who + " buffer '" + buffers_[i].first + "'");
  }
  copy.training_ = training_;
  copy.memory_format_ = memory_format_;
}

std::shared_ptr<Module> Module::clone() const {
  const std::shared_ptr<Module> copy = clone_empty();
  const auto from = named_modules();
  const auto to = copy ? copy->named_modules() : decltype(copy->named_modules())();
  DL_CHECK(from.size() == to.size(), "clone of ", type_name(), ": clone_empty built a tree of ", to.size(),
           " modules, expected ", from.size());
  for (size_t i = 0; i < from.size(); ++i) {
    const Module& a = *from[i].second;
    const Module& b = *to[i].second;
    const std::string where = from[i].first.empty() ? "" : " ('" + from[i].first + "')";
    // The copy of a class that inherits clone_empty without overriding it would be of the base class.
    DL_CHECK(typeid(a) == typeid(b) && from[i].first == to[i].first, "clone: ", a.type_name(), where,
             " does not override clone_empty() (its copy came out as ", b.type_name(),
             to[i].first == from[i].first ? "" : " '" + to[i].first + "'",
             "); give it std::shared_ptr<Module> clone_empty() const override");
    a.copy_settings_to(*to[i].second);
    a.copy_own_state_to(*to[i].second);
  }
  return copy;
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

// ---- Layer: operator(), hooks, the registration check ----

void HookHandle::remove() {
  if (const std::shared_ptr<LayerHooks> hooks = hooks_.lock()) {
    auto erase = [this](auto& list) { std::erase_if(list, [this](const auto& entry) { return entry.first == id_; }); };
    erase(hooks->pre);
    erase(hooks->forward);
    erase(hooks->backward);
  }
  hooks_.reset();
}

bool HookHandle::active() const { return !hooks_.expired(); }

LayerHooks& Layer::hooks() {
  if (!hooks_) hooks_ = std::make_shared<LayerHooks>();
  return *hooks_;
}

HookHandle Layer::register_forward_pre_hook(ForwardPreHook hook) {
  DL_CHECK(hook != nullptr, type_name(), "::register_forward_pre_hook: expected a function, got an empty one");
  LayerHooks& h = hooks();
  h.pre.emplace_back(h.next_id, std::move(hook));
  return {hooks_, h.next_id++};
}

HookHandle Layer::register_forward_hook(ForwardHook hook) {
  DL_CHECK(hook != nullptr, type_name(), "::register_forward_hook: expected a function, got an empty one");
  LayerHooks& h = hooks();
  h.forward.emplace_back(h.next_id, std::move(hook));
  return {hooks_, h.next_id++};
}

HookHandle Layer::register_backward_hook(BackwardHook hook) {
  DL_CHECK(hook != nullptr, type_name(), "::register_backward_hook: expected a function, got an empty one");
  LayerHooks& h = hooks();
  h.backward.emplace_back(h.next_id, std::move(hook));
  return {hooks_, h.next_id++};
}

namespace {

// The layers whose forward is running on this thread, innermost last.
thread_local std::vector<const Module*> t_in_forward;

class InForward {
 public:
  explicit InForward(const Module& m) { t_in_forward.push_back(&m); }
  ~InForward() { t_in_forward.pop_back(); }
  InForward(const InForward&) = delete;
  InForward& operator=(const InForward&) = delete;
};

// A layer with parameters called inside another layer's forward must be registered below one of the
// layers running (the innermost, as a rule; a layer of the model called from a sibling's forward is
// registered below their common parent): otherwise nothing else sees its parameters.
void check_registered(const Module& layer) {
  if (t_in_forward.empty() || !layer.has_parameters()) return;
  for (auto it = t_in_forward.rbegin(); it != t_in_forward.rend(); ++it)
    if ((*it)->is_descendant(layer)) return;
  const Module& parent = *t_in_forward.back();
  DL_THROW(layer.type_name(), " (with parameters) was called inside the forward of ", parent.type_name(),
           " but is not registered in it: its parameters are invisible to parameter_refs() and the optimisers, "
           "to(Device), clone() and weight files. Register it in ",
           parent.type_name(),
           "'s constructor: child_ = register_module(\"name\", child_) (to leave it out on purpose, "
           "a frozen teacher say, call its forward() directly)");
}

// Returns `y` through an identity node whose backward gives the gradient to the backward hooks.
Tensor with_backward_hooks(const Tensor& y, const std::shared_ptr<LayerHooks>& hooks) {
  const std::weak_ptr<LayerHooks> weak = hooks;
  return autograd::record("backward_hook", y.detach(), {y},
                          [weak](const Tensor& grad_output, const std::vector<bool>&) {
                            if (const std::shared_ptr<LayerHooks> h = weak.lock()) {
                              const auto list = h->backward;  // a hook may remove hooks
                              for (const auto& entry : list) entry.second(*h->owner, grad_output);
                            }
                            return std::vector<Tensor>{grad_output};
                          });
}

}  // namespace

Tensor Layer::operator()(const Tensor& x) {
  return call(x, [this](const Tensor& in) { return forward(in); });
}

Tensor Layer::call(const Tensor& x_in, const std::function<Tensor(const Tensor&)>& body) {
  check_registered(*this);
  const bool reorder = memory_format() == MemoryFormat::kChannelsLast && x_in.defined() && x_in.dim() == 4 &&
                       is_floating(x_in.dtype()) && !x_in.is_channels_last();
  const Tensor x = reorder ? ops::channels_last(x_in) : x_in;
  const std::shared_ptr<LayerHooks> hooks = hooks_;  // alive through the call, whatever the hooks remove
  if (hooks) {
    hooks->owner = this;
    const auto pre = hooks->pre;
    for (const auto& entry : pre) entry.second(*this, x);
  }
  Tensor y;
  {
    InForward in_forward(*this);
    y = body(x);
  }
  if (!hooks) return y;
  if (!hooks->backward.empty() && autograd::needs_record({y})) y = with_backward_hooks(y, hooks);
  const auto forward_hooks = hooks->forward;
  for (const auto& entry : forward_hooks) entry.second(*this, x, y);
  return y;
}

}  // namespace dl::nn
