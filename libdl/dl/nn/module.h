// Module: a node of a model tree with named parameters, buffers and children, and a train/eval flag.
// Names are dotted paths in registration order ("conv1.weight", "bn1.running_mean"), the keys of
// state files. Layer adds the single-input forward that Sequential chains.
#pragma once
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

// A Module owns its parameters: copying one would alias every parameter of the copy with the original,
// so it does not compile (move it, or build a second model and load_weights into it). Names are unique
// among a module's parameters, buffers and children, non-empty and without dots; registering one twice
// throws.
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

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  // Moves every parameter and buffer of the tree to `device`, in place (handles held by layers follow).
  void to(Device device);
  // Calls f on this module and then on every descendant, depth first in registration order.
  void for_each_module(const std::function<void(Module&)>& f);

 protected:
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
  struct Param {
    std::string name;
    Tensor tensor;
    double l2_factor;
  };
  std::vector<Param> params_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

class Layer : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

}  // namespace dl::nn
