// Validation of TrainingOptions.
#include "dl/train/options.h"

#include <cmath>

#include "dl/core/error.h"

namespace dl::train {

void TrainingOptions::validate() const {
  DL_CHECK(solver == "sgdm" || solver == "adam" || solver == "rmsprop",
           "TrainingOptions: solver must be sgdm, adam or rmsprop, got '", solver, "'");
  DL_CHECK(initial_learn_rate > 0 && std::isfinite(initial_learn_rate),
           "TrainingOptions: InitialLearnRate must be positive and finite, got ", initial_learn_rate);
  DL_CHECK(learn_rate_schedule == "none" || learn_rate_schedule == "piecewise",
           "TrainingOptions: LearnRateSchedule must be none or piecewise, got '", learn_rate_schedule, "'");
  DL_CHECK(learn_rate_drop_factor >= 0 && learn_rate_drop_factor <= 1,
           "TrainingOptions: LearnRateDropFactor must be in [0, 1], got ", learn_rate_drop_factor);
  DL_CHECK(learn_rate_drop_period >= 1, "TrainingOptions: LearnRateDropPeriod must be >= 1, got ",
           learn_rate_drop_period);
  DL_CHECK(max_epochs >= 1, "TrainingOptions: MaxEpochs must be >= 1, got ", max_epochs);
  DL_CHECK(mini_batch_size >= 1, "TrainingOptions: MiniBatchSize must be >= 1, got ", mini_batch_size);
  DL_CHECK(shuffle == "once" || shuffle == "every-epoch" || shuffle == "never",
           "TrainingOptions: Shuffle must be once, every-epoch or never, got '", shuffle, "'");
  DL_CHECK(validation_frequency >= 1, "TrainingOptions: ValidationFrequency must be >= 1, got ", validation_frequency);
  DL_CHECK(validation_patience >= 0, "TrainingOptions: ValidationPatience must be >= 0, got ", validation_patience);
  DL_CHECK(l2_regularization >= 0, "TrainingOptions: L2Regularization must be >= 0, got ", l2_regularization);
  DL_CHECK(momentum >= 0 && momentum < 1, "TrainingOptions: Momentum must be in [0, 1), got ", momentum);
  DL_CHECK(gradient_decay_factor >= 0 && gradient_decay_factor < 1,
           "TrainingOptions: GradientDecayFactor must be in [0, 1), got ", gradient_decay_factor);
  DL_CHECK(squared_gradient_decay_factor >= 0 && squared_gradient_decay_factor < 1,
           "TrainingOptions: SquaredGradientDecayFactor must be in [0, 1), got ", squared_gradient_decay_factor);
  DL_CHECK(epsilon > 0 && std::isfinite(epsilon), "TrainingOptions: Epsilon must be positive and finite, got ", epsilon);
  DL_CHECK(divergence_loss_factor >= 0 && std::isfinite(divergence_loss_factor),
           "TrainingOptions: divergence_loss_factor must be >= 0 and finite (0: off), got ", divergence_loss_factor);
  DL_CHECK(keep_checkpoints >= 0, "TrainingOptions: keep_checkpoints must be >= 0, got ", keep_checkpoints);
  DL_CHECK(gradient_threshold > 0, "TrainingOptions: GradientThreshold must be positive, got ", gradient_threshold);
  DL_CHECK(gradient_threshold_method == "l2norm" || gradient_threshold_method == "global-l2norm" ||
               gradient_threshold_method == "absolute-value",
           "TrainingOptions: GradientThresholdMethod must be l2norm, global-l2norm or absolute-value, got '",
           gradient_threshold_method, "'");
  DL_CHECK(verbose_frequency >= 1, "TrainingOptions: VerboseFrequency must be >= 1, got ", verbose_frequency);
  DL_CHECK(output_network == "last-iteration" || output_network == "best-validation-loss",
           "TrainingOptions: OutputNetwork must be last-iteration or best-validation-loss, got '", output_network, "'");
}

}  // namespace dl::train
