// Optimisers over a model's parameters: SGD with momentum, Adam and RMSProp (MATLAB's sgdm, adam
// and rmsprop), each with L2 regularisation scaled per parameter by its l2_factor. step() reads
// each parameter's grad() (a parameter without a gradient is left alone) and updates in place.
#pragma once
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "dl/nn/module.h"

namespace dl::optim {

class Optimizer {
 public:
  Optimizer(std::vector<nn::ParamRef> params, double learning_rate, double l2);
  virtual ~Optimizer() = default;

  void step();
  void zero_grad();
  double learning_rate() const { return lr_; }
  void set_learning_rate(double lr) { lr_ = lr; }
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

  std::vector<nn::ParamRef> params_;
  double lr_, l2_;
  int64_t steps_ = 0;

 private:
  std::deque<std::pair<std::string, std::vector<Tensor>>> slots_;  // deque: add_slot references stay valid
};

struct SgdmOptions {
  double learning_rate = 0.01, momentum = 0.9, l2 = 0.0;
};
class Sgdm : public Optimizer {
 public:
  Sgdm(std::vector<nn::ParamRef> params, const SgdmOptions& o);
  const char* name() const override { return "sgdm"; }

 protected:
  void update(size_t i, Tensor& w, const Tensor& g) override;

 private:
  double momentum_;
  std::vector<Tensor>& velocity_;
};

struct AdamOptions {
  double learning_rate = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, l2 = 0.0;
};
class Adam : public Optimizer {
 public:
  Adam(std::vector<nn::ParamRef> params, const AdamOptions& o);
  const char* name() const override { return "adam"; }

 protected:
  void update(size_t i, Tensor& w, const Tensor& g) override;

 private:
  AdamOptions o_;
  std::vector<Tensor>& m_;
  std::vector<Tensor>& v_;
};

struct RmsPropOptions {
  double learning_rate = 0.001, decay = 0.9, epsilon = 1e-8, l2 = 0.0;
};
class RmsProp : public Optimizer {
 public:
  RmsProp(std::vector<nn::ParamRef> params, const RmsPropOptions& o);
  const char* name() const override { return "rmsprop"; }

 protected:
  void update(size_t i, Tensor& w, const Tensor& g) override;

 private:
  RmsPropOptions o_;
  std::vector<Tensor>& v_;
};

// ---- gradient clipping (MATLAB's GradientThresholdMethod); each returns the norm before clipping ----
// Scales all gradients together so that their joint L2 norm is at most `threshold`.
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
