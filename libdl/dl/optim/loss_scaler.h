// Dynamic loss scaling for fp16 training (dl/core/precision.h): the loss is multiplied by a scale
// before backward so that small gradients survive fp16's range, the gradients are divided by it
// again before the update, and a step whose gradients overflowed (inf or NaN anywhere) is skipped:
// no weight and no optimiser state changes, and the scale backs off. After growth_interval clean
// steps in a row the scale grows. (PyTorch's GradScaler follows the same rule.)
#pragma once
#include <cstdint>
#include <vector>

#include "dl/nn/module.h"

namespace dl::optim {

struct LossScalerOptions {
  double initial_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;      // after growth_interval clean steps
  double backoff_factor = 0.5;     // after a step with inf/NaN gradients
  int growth_interval = 2000;      // steps
};

class LossScaler {
 public:
  // Throws dl::Error naming the option out of range.
  explicit LossScaler(const LossScalerOptions& o = {});

  // loss times the current scale, recorded in the graph (backward from it gives scaled gradients).
  Tensor scale(const Tensor& loss) const;
  // Divides every defined gradient of `params` by the scale (new gradient tensors, no history) and
  // says whether all are finite (on a GPU: one read for them all); false means: skip this step's update.
  bool unscale(const std::vector<nn::ParamRef>& params) const;
  // The rule after a step: found_inf backs the scale off (and counts a skipped step), else one more
  // clean step, growing the scale after growth_interval of them.
  void update(bool found_inf);

  double scale_value() const { return scale_; }
  int growth_tracker() const { return growth_tracker_; }
  int64_t skipped_steps() const { return skipped_; }
  // For checkpoints: the three numbers above (checked: scale > 0 and finite, the others >= 0).
  void set_state(double scale, int growth_tracker, int64_t skipped_steps);

 private:
  LossScalerOptions o_;
  double scale_;
  int growth_tracker_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace dl::optim
