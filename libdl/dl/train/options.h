// TrainingOptions: the knobs of MATLAB's trainingOptions, in snake_case, with MATLAB's defaults
// except where noted. The options that MATLAB spells as words are typed enums here; their names
// ("adam", "piecewise", "every-epoch", ...) are read at the edge by parse_option (a flag, a file) with
// an error that names the option, what was expected and what came.
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dl/core/device.h"
#include "dl/core/precision.h"
#include "dl/dist/data_parallel.h"
#include "dl/optim/loss_scaler.h"
#include "dl/optim/optimizer.h"
#include "dl/optim/schedule.h"

namespace dl::train {

// "sgdm", "adam", "rmsprop"; "adamw" (dl/optim/optimizer.h) is not MATLAB's
enum class Solver { kSgdm, kAdam, kRmsProp, kAdamW };
// "none", "piecewise", "exponential", "polynomial", "cosine", "one-cycle" (dl/optim/schedule.h)
enum class LearnRateSchedule { kNone, kPiecewise, kExponential, kPolynomial, kCosine, kOneCycle };
enum class Shuffle { kOnce, kEveryEpoch, kNever };  // "once", "every-epoch", "never"
enum class GradientThresholdMethod {
  kL2Norm,
  kGlobalL2Norm,
  kAbsoluteValue
};                                                                 // "l2norm", "global-l2norm", "absolute-value"
enum class OutputNetwork { kLastIteration, kBestValidationLoss };  // "last-iteration", "best-validation-loss"

// MATLAB's name of a value ("every-epoch"), and every name of the option's type ("once, every-epoch or never").
std::string_view option_name(Solver v);
std::string_view option_name(LearnRateSchedule v);
std::string_view option_name(Shuffle v);
std::string_view option_name(GradientThresholdMethod v);
std::string_view option_name(OutputNetwork v);
std::string_view option_name(Precision v);
std::string_view option_name(MemoryFormat v);  // "contiguous" or "channels-last"
template <typename E>
std::string option_names();

// Reads MATLAB's name of a value of E; throws dl::Error "<what>: expected sgdm, adam, rmsprop or adamw, got 'x'".
template <typename E>
E parse_option(std::string_view text, std::string_view what);

struct TrainingOptions {
  Solver solver = Solver::kSgdm;
  double initial_learn_rate = 0.01;
  // The rate at each iteration is initial_learn_rate times the schedule's factor there: piecewise drops by
  // learn_rate_drop_factor every learn_rate_drop_period epochs; exponential multiplies by
  // learn_rate_drop_factor every epoch; polynomial (power 0.9, DeepLab's "poly"), cosine and one-cycle
  // (peak at initial_learn_rate) run over all max_epochs. A linear warm-up of learn_rate_warmup_iterations
  // from 0 comes first when > 0. `schedule`, when set, replaces all of these (any dl::optim::Schedule).
  LearnRateSchedule learn_rate_schedule = LearnRateSchedule::kNone;
  double learn_rate_drop_factor = 0.1;
  int learn_rate_drop_period = 10;  // epochs
  int learn_rate_warmup_iterations = 0;
  std::optional<optim::Schedule> schedule{};
  int max_epochs = 30;
  int64_t mini_batch_size = 128;
  Shuffle shuffle = Shuffle::kOnce;
  int validation_frequency = 50;  // iterations (0: once per epoch)
  int validation_patience = 0;    // 0: never stop early (MATLAB's Inf)
  double l2_regularization = 1e-4;
  double momentum = 0.9;                         // sgdm
  double gradient_decay_factor = 0.9;            // adam beta1
  double squared_gradient_decay_factor = 0.999;  // adam beta2 (rmsprop uses 0.9 when left at 0.999)
  double epsilon = 1e-8;
  // adamw's decoupled weight decay (PyTorch's default); adamw takes no l2_regularization. Not MATLAB's.
  double weight_decay = 0.01;
  // Parameter groups of the model (optim::ParamGroup: a learn-rate factor, L2 or weight decay of their
  // own); the model's parameters in no group form one more group with the solver's settings. Empty:
  // every parameter in one group. Not MATLAB's (its per-layer factors are nn::ParamRef's).
  std::vector<optim::ParamGroup> param_groups{};
  double gradient_threshold = std::numeric_limits<double>::infinity();
  GradientThresholdMethod gradient_threshold_method = GradientThresholdMethod::kL2Norm;
  bool verbose = true;          // MATLAB's progress table (a ProgressTable observer, dl/train/observer.h)
  int verbose_frequency = 50;   // iterations
  std::string checkpoint_path;  // folder; a checkpoint per epoch when set
  int keep_checkpoints = 0;     // keep the newest N checkpoints there (0: all)
  // Note [divergence]: training stops with "training diverged" when the mini-batch loss is not finite,
  // or exceeds this factor times max(1, the first mini-batch loss of the fit) (0: that test off), or a
  // parameter, batch-norm statistic or optimiser state holds NaN/Inf (checked at every validation and
  // before every checkpoint). An exploding but finite loss would otherwise "finish" with a useless model.
  double divergence_loss_factor = 1000;
  OutputNetwork output_network = OutputNetwork::kLastIteration;
  std::string log_csv;            // a CSV row per iteration when set (a CsvLog observer)
  uint64_t seed = 0;              // the shuffling generator's seed
  Device device = Device::cpu();  // MATLAB's ExecutionEnvironment: the Trainer moves the model
                                  // there when it is made, and it stays there
  // "fp32", "tf32", "bf16" or "fp16" (dl/core/precision.h): what convolution and linear compute in
  // during the forward and backward of each step; weights, optimiser state, batch-norm statistics,
  // the loss and the metrics stay float32. Checked against the device when the Trainer is made.
  Precision precision = Precision::kFp32;
  // "contiguous" or "channels-last" (Note [memory format] in dl/core/tensor.h): the memory format of the
  // activations. With channels-last the Trainer sets the model to it (Module::to(MemoryFormat): every layer
  // takes its 4-D input NHWC), reorders each batch's 4-D input, and hands the output back in NCHW to the loss
  // and the metrics. The weights keep their layout. On CUDA the ops run in NCHW between reorders for now.
  MemoryFormat memory_format = MemoryFormat::kContiguous;
  // Dynamic loss scaling (dl/optim/loss_scaler.h): always on with fp16, on for any precision when set;
  // a step whose gradients overflow is skipped and counted in TrainingReport::skipped_steps.
  bool loss_scaling = false;
  optim::LossScalerOptions loss_scaler{};
  // Data-parallel training over dl::dist::world() (dl/dist/data_parallel.h), on by itself when the
  // launcher (mpirun, srun) started more than one rank; false keeps each process on its own. Each rank
  // trains on its share of every mini-batch (mini_batch_size stays the global size, as in MATLAB), the
  // gradients are averaged during backward, and rank 0 alone writes the table, logs and checkpoints.
  std::optional<bool> distributed{};
  // Batch-norm statistics of every rank's share together (the batch's), rather than per rank
  // (Note [synchronised batch norm] in dl/ops/batch_norm.h).
  bool sync_batch_norm = false;
  dist::GradientReducerOptions gradient_reducer{};

  // Throws dl::Error naming the first option out of range.
  void validate() const;
  // The schedule these options describe: `schedule` when set, else learn_rate_schedule with its warm-up.
  optim::Schedule resolved_schedule() const;
  // The options that shape a run, by MATLAB's names with their values, on one line ("Solver sgdm,
  // InitialLearnRate 0.01, ..."): what the Trainer prints once at the start of fit() when verbose,
  // so that a run's log says which defaults it trained with.
  std::string summary() const;
};

}  // namespace dl::train
