// Optimisers over a model's parameters: SGD with momentum (optionally Nesterov's), Adam, AdamW and
// RMSProp (MATLAB's sgdm, adam and rmsprop). Each parameter's learning rate is the optimiser's times its
// group's and its own learn_rate_factor; coupled L2 regularisation (added to the gradient, MATLAB's
// L2Regularization) is scaled by its l2_factor; decoupled weight decay (AdamW's, applied to the weight
// before the update) is per group. step() reads each parameter's grad() (a parameter without a gradient
// is left alone, and a step in which no parameter has one warns once) and updates in place.
#pragma once
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dl/nn/module.h"

namespace dl::optim {

// Parameters that share settings: their own learning-rate factor, coupled L2 and decoupled weight decay
// (unset: the optimiser's). A parameter may be in one group only.
struct ParamGroup {
  std::vector<nn::ParamRef> params{};
  double learn_rate_factor = 1.0;
  std::optional<double> l2{};
  std::optional<double> weight_decay{};
};

class Optimizer {
 public:
  Optimizer(std::vector<nn::ParamRef> params, double learning_rate, double l2, double weight_decay = 0.0);
  Optimizer(std::vector<ParamGroup> groups, double learning_rate, double l2, double weight_decay = 0.0);
  virtual ~Optimizer() = default;

  void step();
  void zero_grad();
  // The base learning rate (a schedule sets it each step); parameter i steps with effective_learning_rate(i).
  double learning_rate() const { return lr_; }
  void set_learning_rate(double lr);
  double effective_learning_rate(size_t i) const { return lr_ * lr_factor_[i]; }
  int64_t steps() const { return steps_; }
  const std::vector<nn::ParamRef>& params() const { return params_; }

  // Optimiser state for checkpoints: the moments, named "<slot>.<parameter name>", and the step count.
  nn::NamedTensors state() const;
  void load_state(const nn::NamedTensors& tensors, int64_t steps, const std::string& origin);
  virtual const char* name() const = 0;

 protected:
  virtual void update(size_t i, Tensor& w, const Tensor& g) = 0;
  // Adds a zero-initialised moment slot (one tensor per parameter).
  std::vector<Tensor>& add_slot(const std::string& slot);
  double lr(size_t i) const { return effective_learning_rate(i); }
  double l2(size_t i) const { return l2_[i]; }

  std::vector<nn::ParamRef> params_;
  double lr_;
  int64_t steps_ = 0;

 private:
  std::vector<double> lr_factor_, l2_, weight_decay_;  // per parameter, from its group and its own factors
  bool warned_no_gradients_ = false;
  std::deque<std::pair<std::string, std::vector<Tensor>>> slots_;  // deque: add_slot references stay valid
};

struct SgdmOptions {
  double learning_rate = 0.01, momentum = 0.9, l2 = 0.0, weight_decay = 0.0;
  bool nesterov = false;  // w += momentum * v_new - lr * g (PyTorch's SGD with nesterov=True)
};
class Sgdm : public Optimizer {
 public:
  Sgdm(std::vector<nn::ParamRef> params, const SgdmOptions& o);
  Sgdm(std::vector<ParamGroup> groups, const SgdmOptions& o);
  const char* name() const override { return "sgdm"; }

 protected:
  void update(size_t i, Tensor& w, const Tensor& g) override;

 private:
  SgdmOptions o_;
  std::vector<Tensor>& velocity_;
};

struct AdamOptions {
  double learning_rate = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, l2 = 0.0, weight_decay = 0.0;
};
class Adam : public Optimizer {
 public:
  Adam(std::vector<nn::ParamRef> params, const AdamOptions& o);
  Adam(std::vector<ParamGroup> groups, const AdamOptions& o);
  const char* name() const override { return "adam"; }

 protected:
  void update(size_t i, Tensor& w, const Tensor& g) override;

 private:
  AdamOptions o_;
  std::vector<Tensor>& m_;
  std::vector<Tensor>& v_;
};

// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, 0.01 by default as in PyTorch.
struct AdamWOptions {
  double learning_rate = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, weight_decay = 0.01;
};
class AdamW : public Adam {
 public:
  AdamW(std::vector<nn::ParamRef> params, const AdamWOptions& o);
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o);
  const char* name() const override { return "adamw"; }
};

struct RmsPropOptions {
  double learning_rate = 0.001, decay = 0.9, epsilon = 1e-8, l2 = 0.0, weight_decay = 0.0;
};
class RmsProp : public Optimizer {
 public:
  RmsProp(std::vector<nn::ParamRef> params, const RmsPropOptions& o);
  RmsProp(std::vector<ParamGroup> groups, const RmsPropOptions& o);
  const char* name() const override { return "rmsprop"; }

 protected:
  void update(size_t i, Tensor& w, const Tensor& g) override;

 private:
  RmsPropOptions o_;
  std::vector<Tensor>& v_;
};

// ---- gradient clipping (MATLAB's GradientThresholdMethod); each returns the norm before clipping ----
// Scales all gradients together so that their joint L2 norm is at most `threshold` (on a GPU: one read).
double clip_grad_global_norm(const std::vector<nn::ParamRef>& params, double threshold);
// Scales each parameter's gradient so that its own L2 norm is at most `threshold` (returns the max).
double clip_grad_norm_per_parameter(const std::vector<nn::ParamRef>& params, double threshold);
// Clamps every gradient element to [-threshold, threshold] (returns the max |g| seen).
double clip_grad_value(const std::vector<nn::ParamRef>& params, double threshold);

// ---- learning-rate schedules ----
// Piecewise: the rate is multiplied by drop_factor every drop_period epochs (epochs count from 1).
struct PiecewiseSchedule {
  double initial = 0.01, drop_factor = 0.1;
  int drop_period = 10;
  bool enabled = true;
  double rate(int epoch) const;
};

}  // namespace dl::optim
