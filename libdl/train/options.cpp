// Validation of TrainingOptions, its summary by MATLAB's names, and MATLAB's names of its word-valued
// options.
#include "dl/train/options.h"

#include <array>
#include <cmath>
#include <sstream>
#include <utility>

#include "dl/core/error.h"

namespace dl::train {

namespace {

template <typename E>
struct Names;
template <>
struct Names<Solver> {
  static constexpr std::array<std::pair<Solver, std::string_view>, 4> kAll = {
      {{Solver::kSgdm, "sgdm"}, {Solver::kAdam, "adam"}, {Solver::kRmsProp, "rmsprop"}, {Solver::kAdamW, "adamw"}}};
};
template <>
struct Names<LearnRateSchedule> {
  static constexpr std::array<std::pair<LearnRateSchedule, std::string_view>, 6> kAll = {
      {{LearnRateSchedule::kNone, "none"},
       {LearnRateSchedule::kPiecewise, "piecewise"},
       {LearnRateSchedule::kExponential, "exponential"},
       {LearnRateSchedule::kPolynomial, "polynomial"},
       {LearnRateSchedule::kCosine, "cosine"},
       {LearnRateSchedule::kOneCycle, "one-cycle"}}};
};
template <>
struct Names<Shuffle> {
  static constexpr std::array<std::pair<Shuffle, std::string_view>, 3> kAll = {
      {{Shuffle::kOnce, "once"}, {Shuffle::kEveryEpoch, "every-epoch"}, {Shuffle::kNever, "never"}}};
};
template <>
struct Names<GradientThresholdMethod> {
  static constexpr std::array<std::pair<GradientThresholdMethod, std::string_view>, 3> kAll = {
      {{GradientThresholdMethod::kL2Norm, "l2norm"},
       {GradientThresholdMethod::kGlobalL2Norm, "global-l2norm"},
       {GradientThresholdMethod::kAbsoluteValue, "absolute-value"}}};
};
template <>
struct Names<OutputNetwork> {
  static constexpr std::array<std::pair<OutputNetwork, std::string_view>, 2> kAll = {
      {{OutputNetwork::kLastIteration, "last-iteration"},
       {OutputNetwork::kBestValidationLoss, "best-validation-loss"}}};
};

template <>
struct Names<Precision> {
  static constexpr auto kAll = kPrecisionNames;
};
template <>
struct Names<MemoryFormat> {
  static constexpr std::array<std::pair<MemoryFormat, std::string_view>, 2> kAll = {
      {{MemoryFormat::kContiguous, "contiguous"}, {MemoryFormat::kChannelsLast, "channels-last"}}};
};

template <typename E>
std::string_view name_of(E v) {
  for (const auto& [e, n] : Names<E>::kAll)
    if (e == v) return n;
  DL_THROW("TrainingOptions: an option holds the value ", static_cast<int>(v), ", which has no name");
}

}  // namespace

std::string_view option_name(Solver v) { return name_of(v); }
std::string_view option_name(LearnRateSchedule v) { return name_of(v); }
std::string_view option_name(Shuffle v) { return name_of(v); }
std::string_view option_name(GradientThresholdMethod v) { return name_of(v); }
std::string_view option_name(OutputNetwork v) { return name_of(v); }
std::string_view option_name(Precision v) { return name_of(v); }
std::string_view option_name(MemoryFormat v) { return name_of(v); }

template <typename E>
std::string option_names() {
  std::string s;
  const auto& all = Names<E>::kAll;
  for (size_t i = 0; i < all.size(); ++i) {
    if (i > 0) s += i + 1 == all.size() ? " or " : ", ";
    s += all[i].second;
  }
  return s;
}

template <typename E>
E parse_option(std::string_view text, std::string_view what) {
  for (const auto& [e, n] : Names<E>::kAll)
    if (n == text) return e;
  DL_THROW(what, what.empty() ? "" : ": ", "expected ", option_names<E>(), ", got '", text, "'");
}

#define DL_OPTION_ENUM(E)                 \
  template std::string option_names<E>(); \
  template E parse_option<E>(std::string_view, std::string_view);
DL_OPTION_ENUM(Solver)
DL_OPTION_ENUM(LearnRateSchedule)
DL_OPTION_ENUM(Shuffle)
DL_OPTION_ENUM(GradientThresholdMethod)
DL_OPTION_ENUM(OutputNetwork)
DL_OPTION_ENUM(Precision)
DL_OPTION_ENUM(MemoryFormat)
#undef DL_OPTION_ENUM

optim::Schedule TrainingOptions::resolved_schedule() const {
  if (schedule) return *schedule;
  optim::Schedule s = optim::Schedule::constant();
  switch (learn_rate_schedule) {
    case LearnRateSchedule::kNone:
      break;
    case LearnRateSchedule::kPiecewise:
      s = optim::Schedule::piecewise(learn_rate_drop_factor, learn_rate_drop_period);
      break;
    case LearnRateSchedule::kExponential:
      s = optim::Schedule::exponential(learn_rate_drop_factor);
      break;
    case LearnRateSchedule::kPolynomial:
      s = optim::Schedule::polynomial(0.9);
      break;
    case LearnRateSchedule::kCosine:
      s = optim::Schedule::cosine();
      break;
    case LearnRateSchedule::kOneCycle:
      s = optim::Schedule::one_cycle();
      break;
  }
  return learn_rate_warmup_iterations > 0 ? s.with_warmup(learn_rate_warmup_iterations) : s;
}

std::string TrainingOptions::summary() const {
  std::ostringstream s;
  s << "Solver " << option_name(solver) << ", InitialLearnRate " << initial_learn_rate;
  if (schedule)
    s << ", LearnRateSchedule (a schedule of its own)";
  else
    s << ", LearnRateSchedule " << option_name(learn_rate_schedule);
  if (!schedule && learn_rate_schedule == LearnRateSchedule::kPiecewise)
    s << ", LearnRateDropFactor " << learn_rate_drop_factor << ", LearnRateDropPeriod " << learn_rate_drop_period;
  if (learn_rate_warmup_iterations > 0) s << ", warm-up " << learn_rate_warmup_iterations << " iterations";
  s << ", MaxEpochs " << max_epochs << ", MiniBatchSize " << mini_batch_size << ", Shuffle " << option_name(shuffle)
    << ", L2Regularization " << l2_regularization;
  if (solver == Solver::kSgdm) s << ", Momentum " << momentum;
  if (solver == Solver::kAdam || solver == Solver::kAdamW)
    s << ", GradientDecayFactor " << gradient_decay_factor << ", SquaredGradientDecayFactor "
      << squared_gradient_decay_factor << ", Epsilon " << epsilon;
  if (solver == Solver::kAdamW) s << ", WeightDecay " << weight_decay;
  if (!param_groups.empty()) s << ", " << param_groups.size() << " parameter groups";
  s << ", GradientThreshold " << gradient_threshold << " (" << option_name(gradient_threshold_method) << ")"
    << ", ValidationFrequency " << validation_frequency << ", ValidationPatience ";
  if (validation_patience > 0)
    s << validation_patience;
  else
    s << "Inf";
  s << ", OutputNetwork " << option_name(output_network) << ", ExecutionEnvironment " << device.str() << ", Precision "
    << option_name(precision) << ", MemoryFormat " << option_name(memory_format);
  return s.str();
}

void TrainingOptions::validate() const {
  // The word-valued options: a value cast from an integer outside the enum has no name.
  (void)option_name(solver), (void)option_name(learn_rate_schedule), (void)option_name(shuffle);
  (void)option_name(gradient_threshold_method), (void)option_name(output_network), (void)option_name(precision);
  (void)option_name(memory_format);
  DL_CHECK(initial_learn_rate > 0 && std::isfinite(initial_learn_rate),
           "TrainingOptions: InitialLearnRate must be positive and finite, got ", initial_learn_rate);
  DL_CHECK(learn_rate_drop_factor >= 0 && learn_rate_drop_factor <= 1,
           "TrainingOptions: LearnRateDropFactor must be in [0, 1], got ", learn_rate_drop_factor);
  DL_CHECK(learn_rate_drop_period >= 1, "TrainingOptions: LearnRateDropPeriod must be >= 1, got ",
           learn_rate_drop_period);
  DL_CHECK(learn_rate_warmup_iterations >= 0, "TrainingOptions: learn_rate_warmup_iterations must be >= 0, got ",
           learn_rate_warmup_iterations);
  DL_CHECK(learn_rate_schedule != LearnRateSchedule::kExponential || learn_rate_drop_factor > 0,
           "TrainingOptions: the exponential schedule needs LearnRateDropFactor > 0, got ", learn_rate_drop_factor);
  DL_CHECK(max_epochs >= 1, "TrainingOptions: MaxEpochs must be >= 1, got ", max_epochs);
  DL_CHECK(mini_batch_size >= 1, "TrainingOptions: MiniBatchSize must be >= 1, got ", mini_batch_size);
  DL_CHECK(validation_frequency >= 0, "TrainingOptions: ValidationFrequency must be >= 0 (0: once per epoch), got ",
           validation_frequency);
  DL_CHECK(validation_patience >= 0, "TrainingOptions: ValidationPatience must be >= 0, got ", validation_patience);
  DL_CHECK(l2_regularization >= 0, "TrainingOptions: L2Regularization must be >= 0, got ", l2_regularization);
  DL_CHECK(momentum >= 0 && momentum < 1, "TrainingOptions: Momentum must be in [0, 1), got ", momentum);
  DL_CHECK(gradient_decay_factor >= 0 && gradient_decay_factor < 1,
           "TrainingOptions: GradientDecayFactor must be in [0, 1), got ", gradient_decay_factor);
  DL_CHECK(squared_gradient_decay_factor >= 0 && squared_gradient_decay_factor < 1,
           "TrainingOptions: SquaredGradientDecayFactor must be in [0, 1), got ", squared_gradient_decay_factor);
  DL_CHECK(epsilon > 0 && std::isfinite(epsilon), "TrainingOptions: Epsilon must be positive and finite, got ",
           epsilon);
  DL_CHECK(weight_decay >= 0 && std::isfinite(weight_decay),
           "TrainingOptions: weight_decay must be >= 0 and finite, got ", weight_decay);
  DL_CHECK(divergence_loss_factor >= 0 && std::isfinite(divergence_loss_factor),
           "TrainingOptions: divergence_loss_factor must be >= 0 and finite (0: off), got ", divergence_loss_factor);
  DL_CHECK(keep_checkpoints >= 0, "TrainingOptions: keep_checkpoints must be >= 0, got ", keep_checkpoints);
  DL_CHECK(gradient_threshold > 0, "TrainingOptions: GradientThreshold must be positive, got ", gradient_threshold);
  DL_CHECK(verbose_frequency >= 1, "TrainingOptions: VerboseFrequency must be >= 1, got ", verbose_frequency);
}

}  // namespace dl::train
