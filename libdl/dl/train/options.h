// TrainingOptions: the knobs of MATLAB's trainingOptions, in snake_case, with MATLAB's defaults
// except where noted.
#pragma once
#include <cstdint>
#include <limits>
#include <string>

#include "dl/core/device.h"

namespace dl::train {

struct TrainingOptions {
  std::string solver = "sgdm";                 // "sgdm", "adam" or "rmsprop"
  double initial_learn_rate = 0.01;
  std::string learn_rate_schedule = "none";    // "none" or "piecewise"
  double learn_rate_drop_factor = 0.1;
  int learn_rate_drop_period = 10;             // epochs
  int max_epochs = 30;
  int64_t mini_batch_size = 128;
  std::string shuffle = "once";                // "once", "every-epoch" or "never"
  int validation_frequency = 50;               // iterations
  int validation_patience = 0;                 // 0: never stop early (MATLAB's Inf)
  double l2_regularization = 1e-4;
  double momentum = 0.9;                       // sgdm
  double gradient_decay_factor = 0.9;          // adam beta1
  double squared_gradient_decay_factor = 0.999;  // adam beta2 (rmsprop uses 0.9 when left at 0.999)
  double epsilon = 1e-8;
  double gradient_threshold = std::numeric_limits<double>::infinity();
  std::string gradient_threshold_method = "l2norm";  // "l2norm", "global-l2norm" or "absolute-value"
  bool verbose = true;
  int verbose_frequency = 50;                  // iterations
  std::string checkpoint_path;                 // folder; a checkpoint per epoch when set
  int keep_checkpoints = 0;                    // keep the newest N checkpoints there (0: all)
  // Note [divergence]: training stops with "training diverged" when the mini-batch loss is not finite,
  // or exceeds this factor times max(1, the first mini-batch loss of the fit) (0: that test off), or a
  // parameter, batch-norm statistic or optimiser state holds NaN/Inf (checked at every validation and
  // before every checkpoint). An exploding but finite loss would otherwise "finish" with a useless model.
  double divergence_loss_factor = 1000;
  std::string output_network = "last-iteration";  // or "best-validation-loss"
  std::string log_csv;                         // a CSV row per iteration when set
  uint64_t seed = 0;                           // the shuffling generator's seed
  Device device = Device::cpu();               // MATLAB's ExecutionEnvironment: the Trainer moves the model
                                               // there when it is made, and it stays there

  // Throws dl::Error naming the first option out of range.
  void validate() const;
};

}  // namespace dl::train
