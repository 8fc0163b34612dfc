// Module: a node of a model tree with named parameters, buffers and children, and a train/eval flag.
// Names are dotted paths in registration order ("conv1.weight", "bn1.running_mean"), the keys of
// state files. Layer adds the single-input forward that Sequential chains, called through
// operator(), which runs the layer's hooks and checks that the layers a forward calls are registered.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dl/core/error.h"
#include "dl/core/tensor.h"

namespace dl::nn {

// A parameter as optimisers see it: its full name, the tensor, and its L2 factor (MATLAB's
// WeightL2Factor / BiasL2Factor: 1 for weights and batch-norm scale and offset, 0 for biases).
struct ParamRef {
  std::string name;
  Tensor tensor;
  double l2_factor = 1.0;          // times the optimiser's L2 regularisation (MATLAB's L2Factor)
  double learn_rate_factor = 1.0;  // times the optimiser's learning rate (MATLAB's LearnRateFactor; 0 freezes)
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module;
class Layer;
struct LayerHooks;

// Hooks of a Layer (Layer::register_forward_pre_hook and friends). `input` and `output` are the
// tensor given to operator() and the one it returns; `grad_output` is the gradient of the loss with
// respect to that output (its shape), delivered while backward() runs through the layer.
using ForwardPreHook = std::function<void(Module& module, const Tensor& input)>;
using ForwardHook = std::function<void(Module& module, const Tensor& input, const Tensor& output)>;
using BackwardHook = std::function<void(Module& module, const Tensor& grad_output)>;

// What registering a hook returns: remove() takes the hook off its layer (once; again does nothing,
// nor does a remove() after the layer is gone). Dropping a handle leaves the hook in place; a
// ScopedHook removes it when it goes out of scope.
class HookHandle {
 public:
  HookHandle() = default;
  void remove();
  // True until remove() (or until the layer is destroyed).
  bool active() const;

 private:
  friend class Layer;
  HookHandle(std::weak_ptr<LayerHooks> hooks, uint64_t id) : hooks_(std::move(hooks)), id_(id) {}
  std::weak_ptr<LayerHooks> hooks_;
  uint64_t id_ = 0;
};

// A hook for the length of a scope: ScopedHook h(layer.register_forward_hook(...));
class ScopedHook {
 public:
  ScopedHook() = default;
  explicit ScopedHook(HookHandle handle) : handle_(std::move(handle)) {}
  ScopedHook(ScopedHook&& other) noexcept : handle_(std::exchange(other.handle_, HookHandle())) {}
  ScopedHook& operator=(ScopedHook&& other) noexcept {
    if (this != &other) handle_.remove(), handle_ = std::exchange(other.handle_, HookHandle());
    return *this;
  }
  ScopedHook(const ScopedHook&) = delete;
  ScopedHook& operator=(const ScopedHook&) = delete;
  ~ScopedHook() { handle_.remove(); }

 private:
  HookHandle handle_;
};

// A Module owns its parameters: copying one would alias every parameter of the copy with the original,
// so it does not compile (clone() makes an independent deep copy; move it, or build a second model and
// load_weights into it). Names are unique among a module's parameters, buffers and children, non-empty
// and without dots; registering one twice throws.
class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = default;
  Module& operator=(Module&&) = default;
  virtual ~Module() = default;

  std::vector<ParamRef> parameter_refs() const;
  std::vector<Tensor> parameters() const;
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  // Parameters then buffers: what a weights file holds.
  NamedTensors state() const;
  int64_t num_parameters() const;
  // True when this module or a descendant holds a parameter.
  bool has_parameters() const;

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  // Moves every parameter and buffer of the tree to `device`, in place (handles held by layers follow).
  void to(Device device);
  // The memory format the tree computes in (Note [memory format] in dl/core/tensor.h): with
  // kChannelsLast every layer of the tree takes its 4-D input channels-last (reordering one that is not,
  // which after the first layer is none), so its activations stay NHWC from the input to the output.
  // The parameters keep their layout: the convolutions read K x C x R x S weights with either format.
  void to(MemoryFormat format);
  MemoryFormat memory_format() const { return memory_format_; }
  // Calls f on this module and then on every descendant, depth first in registration order.
  void for_each_module(const std::function<void(Module&)>& f);
  // This module ("") and every descendant with its dotted path ("layer1.0.conv1"), depth first in
  // registration order; a module registered under two names is listed under both.
  std::vector<std::pair<std::string, Module*>> named_modules();
  std::vector<std::pair<std::string, const Module*>> named_modules() const;
  // The children, in registration order.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  // True when `m` is this module or registered anywhere below it.
  bool is_descendant(const Module& m) const;
  // The class of the module, demangled, without the "dl::nn::" of the library's own ("Conv2d").
  std::string type_name() const;

  // A deep copy of the tree: the same classes and settings (clone_empty), every parameter and buffer
  // copied by name into new storage on its device (with its dtype and requires_grad; not its grad),
  // and each module's train/eval flag (not hooks). Layers that one Sequential holds twice stay shared
  // in the copy.
  // Throws dl::Error naming the class when a module of the tree does not override clone_empty.
  std::shared_ptr<Module> clone() const;
  // A new module of this class with this one's configuration and the same tree of children (names,
  // classes, parameter shapes), its values not yet copied: what clone() fills in. Each concrete class
  // overrides it; building the copy must not draw from the default generator (use a local Generator
  // for initialisers whose values clone() overwrites). The default throws dl::Error naming the class.
  virtual std::shared_ptr<Module> clone_empty() const;

 protected:
  // Gives `copy` (of this class, from clone_empty) the settings that can change after construction
  // (BatchNorm2d's folded and sync, the bias fold_batch_norm adds to a Conv2d): clone() calls it on
  // every module of the tree before copying values, so that models rebuilt from their options keep
  // their layers' settings. The default copies nothing.
  virtual void copy_settings_to(Module& copy) const { (void)copy; }
  Tensor& register_parameter(const std::string& name, Tensor t, double l2_factor = 1.0);
  Tensor& register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    check_new_name(name, "register_module");
    DL_CHECK(m != nullptr, "register_module('", name, "'): expected a module, got nullptr");
    children_.emplace_back(name, m);
    return m;
  }

 private:
  // Throws dl::Error when `name` is empty, holds a dot, or is already a parameter, buffer or child here.
  void check_new_name(const std::string& name, const char* who) const;
  void collect(const std::string& prefix, std::vector<ParamRef>* params, NamedTensors* buffers) const;
  // Copies this module's own parameters, buffers and flag (not its children's) into `copy`.
  void copy_own_state_to(Module& copy) const;
  struct Param {
    std::string name;
    Tensor tensor;
    double l2_factor;
  };
  std::vector<Param> params_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  MemoryFormat memory_format_ = MemoryFormat::kContiguous;
};

// A module with one input and one output. Call a layer as layer(x), not layer.forward(x): operator()
// runs forward between the layer's hooks, and, when called inside another layer's forward, checks
// that the layer is registered in it (a layer with parameters that is not is a dl::Error: its
// parameters would be invisible to optimisers, to(Device), clone() and weight files).
class Layer : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x);

  // Hooks run in the order they were registered, on every operator() call: the pre-hooks before
  // forward, the forward hooks after it. A backward hook runs during backward() with the gradient of
  // this call's output; while one is registered, operator() returns its output through an identity
  // node that calls it (when grad mode is on and the output requires grad).
  HookHandle register_forward_pre_hook(ForwardPreHook hook);
  HookHandle register_forward_hook(ForwardHook hook);
  HookHandle register_backward_hook(BackwardHook hook);

 protected:
  // What operator() does around forward: layers with a second entry point (BatchNorm2d::forward_relu)
  // run it through here so that it is hooked and checked alike.
  Tensor call(const Tensor& x, const std::function<Tensor(const Tensor&)>& body);

 private:
  std::shared_ptr<LayerHooks> hooks_;  // null until a hook is registered
  LayerHooks& hooks();
};

// clone() with the copy's own class: auto copy = dl::nn::clone(model);
template <class M>
std::shared_ptr<M> clone(const M& m) {
  return std::static_pointer_cast<M>(m.clone());  // clone() checks that the copy's class is m's
}

}  // namespace dl::nn
