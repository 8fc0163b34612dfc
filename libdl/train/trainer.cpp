// The training loop: steps, validation with patience, the schedule, checkpoints; reporting is the observers'.
#include "dl/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <numeric>

#include "dl/autograd/engine.h"
#include "dl/core/allocator.h"
#include "dl/core/file_io.h"
#include "dl/core/parse.h"
#include "dl/core/serialize.h"
#include "dl/data/dataloader.h"
#include "dl/data/device_stager.h"
#include "dl/metrics/accuracy.h"
#include "dl/metrics/segmentation.h"
#include "dl/nn/layers.h"
#include "dl/nn/state.h"
#include "dl/ops/conv2d.h"
#include "dl/ops/elementwise.h"
#include "dl/ops/reduce.h"
#include "dl/ops/segmentation.h"
#include "dl/ops/shape_ops.h"
#include "dl/train/observer.h"
#include "dl/train/resources.h"
#include "dl/train/run_report.h"

namespace dl::train {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// TrainingOptions::param_groups, then the model's parameters in none of them as one more group.
std::vector<optim::ParamGroup> param_groups(const nn::Module& model, const TrainingOptions& o) {
  std::vector<optim::ParamGroup> groups = o.param_groups;
  optim::ParamGroup rest;
  for (const nn::ParamRef& p : model.parameter_refs()) {
    bool grouped = false;
    for (const optim::ParamGroup& g : groups)
      for (const nn::ParamRef& q : g.params) grouped = grouped || q.tensor.raw_data() == p.tensor.raw_data();
    if (!grouped) rest.params.push_back(p);
  }
  if (!rest.params.empty() || groups.empty()) groups.push_back(std::move(rest));
  return groups;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const nn::Module& model, const TrainingOptions& o) {
  auto params = param_groups(model, o);
  switch (o.solver) {
    case Solver::kAdamW:
      return std::make_unique<optim::AdamW>(
          params, optim::AdamWOptions{o.initial_learn_rate, o.gradient_decay_factor, o.squared_gradient_decay_factor,
                                      o.epsilon, o.weight_decay});
    case Solver::kAdam:
      return std::make_unique<optim::Adam>(
          params, optim::AdamOptions{o.initial_learn_rate, o.gradient_decay_factor, o.squared_gradient_decay_factor,
                                     o.epsilon, o.l2_regularization});
    case Solver::kRmsProp: {
      // MATLAB's rmsprop default SquaredGradientDecayFactor is 0.9; 0.999 is Adam's.
      const double decay = o.squared_gradient_decay_factor == 0.999 ? 0.9 : o.squared_gradient_decay_factor;
      return std::make_unique<optim::RmsProp>(
          params, optim::RmsPropOptions{o.initial_learn_rate, decay, o.epsilon, o.l2_regularization});
    }
    case Solver::kSgdm:
      break;
  }
  return std::make_unique<optim::Sgdm>(params,
                                       optim::SgdmOptions{o.initial_learn_rate, o.momentum, o.l2_regularization});
}

std::string csv_num(double v) {
  if (std::isnan(v)) return "";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// The order of one epoch's samples: "once" shuffles a single time from the seed, so that a resumed
// run sees the same order; "every-epoch" is the loader's.
std::shared_ptr<const data::Dataset> epoch_source(std::shared_ptr<const data::Dataset> train,
                                                  const TrainingOptions& o) {
  if (o.shuffle != Shuffle::kOnce) return train;
  Generator once(o.seed ^ 0x9e3779b97f4a7c15ULL);
  return std::make_shared<data::SubsetDataset>(train, random_permutation(train->size(), once));
}

// The denominator of the cross-entropy of `targets` (dl/ops/loss.h): the sum of the class weights of
// the counted labels, their count without class weights.
double loss_denominator(const Tensor& targets, const ops::CrossEntropyOptions& o) {
  if (!o.class_weights.defined() && o.ignore_index < 0) return static_cast<double>(targets.numel());
  const Tensor labels = targets.to(Device::cpu());  // a device batch: one copy of its labels
  const std::vector<float> w = o.class_weights.defined() ? o.class_weights.to_vector_f32() : std::vector<float>{};
  const int32_t* y = labels.data<int32_t>();
  double sum = 0;
  for (int64_t i = 0; i < labels.numel(); ++i) {
    if (y[i] == o.ignore_index && o.ignore_index >= 0) continue;
    if (w.empty())
      sum += 1;
    else if (y[i] >= 0 && static_cast<size_t>(y[i]) < w.size())
      sum += w[static_cast<size_t>(y[i])];
  }
  return sum;
}

// A record's metrics; its accuracy is the first.
void set_metrics(IterationRecord& rec, std::vector<double> values) {
  rec.metrics = std::move(values);
  rec.accuracy = rec.metrics.empty() ? std::numeric_limits<double>::quiet_NaN() : rec.metrics[0];
}
}  // namespace

// Note [deferred scalars]: a step whose loss and accuracy are still where they were computed.
struct Trainer::PendingStep {
  IterationRecord rec;  // loss and metrics filled in when read (at once in a data-parallel run)
  Tensor targets;       // a classifier's on a device: to name a bad label when the loss is not finite
  int64_t classes = 0;
};

// One fit() call: the loader of its epochs on the training device, the observers, the report so far.
struct Trainer::Run {
  Run(Trainer& t, std::shared_ptr<const data::Dataset> train)
      : loader(epoch_source(train, t.o_), {.batch_size = t.o_.mini_batch_size,
                                           .shuffle = t.o_.shuffle == Shuffle::kEveryEpoch,
                                           .shard_index = t.group_ ? t.group_->rank() : 0,
                                           .shard_count = t.group_ ? t.group_->size() : 1}),
        batches(loader, t.o_.device),
        last_iteration(static_cast<int64_t>(t.o_.max_epochs) * loader.batches_per_epoch()),
        validate_every(t.o_.validation_frequency > 0 ? t.o_.validation_frequency : loader.batches_per_epoch()) {
    loader.generator().set_state(t.shuffle_gen_.state());
    // The table, the progress line and the log are rank 0's; the observers added by hand run everywhere.
    if (!t.o_.log_csv.empty() && t.is_root()) own.push_back(std::make_unique<CsvLog>(t.o_.log_csv));
    if ((t.o_.verbose || t.progress_mode_ != ProgressMode::kOff) && t.is_root())
      own.push_back(std::make_unique<ProgressTable>(t.out_, t.o_.verbose, t.o_.verbose_frequency, t.progress_mode_));
    // Every rank's: its writes and their errors are agreed on by all ranks.
    if (!t.o_.checkpoint_path.empty())
      own.push_back(std::make_unique<CheckpointObserver>(t, t.o_.checkpoint_path, t.o_.keep_checkpoints));
    for (auto& o : own) observers.push_back(o.get());
    observers.insert(observers.end(), t.observers_.begin(), t.observers_.end());
  }
  const Clock::time_point t0 = Clock::now();
  static constexpr size_t kMaxPending = 64;  // Note [deferred scalars]
  std::vector<PendingStep> pending;
  // kMaxPending losses (the loss's dtype), and kMaxPending x metrics {numerator, denominator} rows (float64)
  Tensor loss_log, count_log;
  data::DataLoader loader;
  data::DeviceBatches batches;
  std::vector<std::unique_ptr<TrainingObserver>> own;  // made from the options
  std::vector<TrainingObserver*> observers;
  TrainingReport report;
  const int64_t last_iteration;
  const int64_t validate_every;                                  // iterations
  int64_t images = 0;                                            // trained on, every rank together
  double first_loss = std::numeric_limits<double>::quiet_NaN();  // Note [divergence]
  bool stop = false;
};

Metric accuracy_metric(int ignore_index) {
  return {"accuracy", [ignore_index](const Tensor& output, const data::Batch& batch) {
            return ops::correct_counts(output, batch.targets, ignore_index);
          }};
}

Metric mean_iou_metric(int num_classes, int32_t void_label) {
  DL_CHECK(num_classes >= 1 && num_classes <= ops::kMaxSegmentationClasses,
           "mean_iou_metric: expected a number of classes in [1, ", ops::kMaxSegmentationClasses, "], got ",
           num_classes);
  Metric m{"mean IoU", [num_classes, void_label](const Tensor& scores, const data::Batch& batch) {
             const ops::SegmentationCounts counts =
                 ops::segmentation_counts(ops::argmax(scores, 1), batch.targets, num_classes, void_label);
             const std::vector<double> confusion(counts.confusion.begin(), counts.confusion.end());
             return Tensor::from_vector<double>({static_cast<int64_t>(confusion.size())}, confusion);
           }};
  m.size = static_cast<int64_t>(num_classes) * num_classes;
  m.value = [num_classes](const std::vector<double>& confusion) {
    return metrics::nan_mean(metrics::class_iou(confusion, num_classes));
  };
  return m;
}

Metric mean_bf_score_metric(int num_classes, int32_t void_label) {
  DL_CHECK(num_classes >= 1 && num_classes <= ops::kMaxSegmentationClasses,
           "mean_bf_score_metric: expected a number of classes in [1, ", ops::kMaxSegmentationClasses, "], got ",
           num_classes);
  return {"mean BF score", [num_classes, void_label](const Tensor& scores, const data::Batch& batch) {
            const ops::SegmentationCounts counts =
                ops::segmentation_counts(ops::argmax(scores, 1), batch.targets, num_classes, void_label);
            double sum = 0, scored = 0;
            for (int64_t i = 0; i < counts.images; ++i) {
              const double f = metrics::image_mean_bf_score(counts, i);
              if (!std::isnan(f)) sum += f, scored += 1;
            }
            return Tensor::from_vector<double>({2}, {sum, scored});
          }};
}

double EvalResult::metric(const std::string& name) const {
  std::string names;
  for (size_t k = 0; k < metric_names.size() && k < metrics.size(); ++k) {
    if (metric_names[k] == name) return metrics[k];
    names += (k ? ", '" : "'") + metric_names[k] + "'";
  }
  DL_THROW("EvalResult: no metric '", name, "'; expected one of the evaluation's metrics (",
           names.empty() ? "none" : names, ")");
}

Trainer::Trainer(nn::Layer& model, const TrainingOptions& options)
    : Trainer(model, Objective{}, options, /*classifier=*/true) {
  // The classifier's objective (Note [deferred scalars]: the accuracy's counts stay on the device).
  objective_.forward = [&model](nn::Module&, const data::Batch& batch) { return model(batch.inputs); };
  objective_.loss = [this](const Tensor& logits, const data::Batch& batch) {
    return ops::cross_entropy(logits, batch.targets, loss_);
  };
  objective_.loss_weight = [this](const data::Batch& batch) { return loss_denominator(batch.targets, loss_); };
  objective_.metrics.push_back({"accuracy", [this](const Tensor& logits, const data::Batch& batch) {
                                  return ops::correct_counts(logits, batch.targets, loss_.ignore_index);
                                }});
}

Trainer::Trainer(nn::Module& model, ForwardFn forward, LossFn loss, const TrainingOptions& options)
    : Trainer(model, Objective{std::move(forward), std::move(loss)}, options) {}

Trainer::Trainer(nn::Module& model, Objective objective, const TrainingOptions& options)
    : Trainer(model, std::move(objective), options, /*classifier=*/false) {
  DL_CHECK(objective_.forward && objective_.loss, "Trainer: expected an objective with a forward and a loss, got ",
           objective_.forward ? "no loss" : "no forward");
  const std::vector<Metric> metrics = std::move(objective_.metrics);
  objective_.metrics.clear();
  for (const Metric& m : metrics) add_metric(m);
}

Trainer::Trainer(nn::Module& model, Objective objective, const TrainingOptions& options, bool classifier)
    : model_(model),
      o_(options),
      objective_(std::move(objective)),
      classifier_(classifier),
      out_(&std::cout),
      shuffle_gen_(options.seed) {
  o_.validate();
  schedule_ = o_.resolved_schedule();
  check_device_usable(o_.device);
  check_precision_usable(o_.precision, o_.device, "TrainingOptions: precision");
  model_.to(o_.device);  // before the optimiser makes its state tensors beside the parameters
  // Every layer takes its input in the activations' format, so that a first layer whose output would be
  // NCHW (a one-channel image stays NCHW: Note [memory format]) does not turn the model back to NCHW.
  if (o_.memory_format != MemoryFormat::kContiguous) model_.to(o_.memory_format);
  optimizer_ = make_optimizer(model_, o_);
  if (o_.precision == Precision::kFp16 || o_.loss_scaling) scaler_.emplace(o_.loss_scaler);
  if (o_.distributed.value_or(dist::launch_info().size > 1)) {
    dist::ProcessGroup& world = dist::world();
    if (world.size() > 1) {
      group_ = &world;
      dist::broadcast_state(model_, world);  // every rank starts from rank 0's weights
      if (o_.sync_batch_norm) {
        const int layers =
            nn::set_batch_norm_sync(model_, [&world](Tensor& sums) { world.all_reduce_async(sums).wait(); });
        DL_CHECK(layers > 0, "TrainingOptions: sync_batch_norm is set, but the model has no BatchNorm2d layer");
      }
      reducer_ = std::make_unique<dist::GradientReducer>(optimizer_->params(), world, o_.gradient_reducer);
    }
  }
}

Trainer::~Trainer() = default;

void Trainer::set_validation_data(std::shared_ptr<const data::Dataset> validation) {
  validation_ = std::move(validation);
}
void Trainer::set_loss_options(const ops::CrossEntropyOptions& loss) {
  DL_CHECK(classifier_,
           "Trainer::set_loss_options: the cross-entropy's options are for a classifier's trainer "
           "(made from an nn::Layer alone); this one was given a loss of its own");
  loss_ = loss;
  if (loss_.class_weights.defined()) loss_.class_weights = loss_.class_weights.to(o_.device);
}
void Trainer::on_every_rank(const char* what, const std::function<void()>& f) const {
  if (!group_) return f();
  std::exception_ptr mine;
  std::string message;
  try {
    f();
  } catch (const std::exception& e) {
    mine = std::current_exception();
    message = error_message(e);
    if (message.empty()) message = "(no message)";
  }
  const std::vector<std::string> errors = group_->gather_errors(message);
  if (mine) std::rethrow_exception(mine);
  for (size_t r = 0; r < errors.size(); ++r)
    if (!errors[r].empty()) DL_THROW("rank ", r, " failed ", what, ": ", errors[r]);
}

void Trainer::add_metric(Metric metric) {
  DL_CHECK(!metric.name.empty() && metric.sums,
           "Trainer::add_metric: expected a metric with a name and a function, got ",
           metric.name.empty() ? "no name" : "no function", " (metric '", metric.name, "')");
  DL_CHECK(!metric.value || metric.size >= 1, "Trainer::add_metric: metric '", metric.name,
           "': expected a size >= 1, got ", metric.size);
  for (const Metric& m : objective_.metrics)
    DL_CHECK(m.name != metric.name, "Trainer::add_metric: expected a new name, got '", metric.name,
             "', a metric already there");
  objective_.metrics.push_back(std::move(metric));
}

std::vector<std::string> Trainer::metric_names() const {
  std::vector<std::string> names;
  for (const Metric& m : objective_.metrics) names.push_back(m.name);
  return names;
}

Tensor Trainer::batch_loss(const Tensor& output, const data::Batch& batch) const {
  const Tensor loss = objective_.loss(output, batch);
  DL_CHECK(loss.defined() && loss.numel() == 1, "Trainer: expected the loss to be a tensor of one element, got ",
           loss.defined() ? "one of shape " + loss.shape().str() : std::string("an undefined tensor"));
  return loss;
}

Tensor Trainer::metric_sums(size_t k, const Tensor& output, const data::Batch& batch) const {
  const Metric& m = objective_.metrics[k];
  Tensor sums = m.sums(output.detach(), batch);  // no graph: a metric is never back-propagated
  if (m.value)
    DL_CHECK(sums.defined() && sums.numel() == m.size, "Trainer: metric '", m.name, "': expected a tensor of ", m.size,
             " elements (Metric::size), got ",
             sums.defined() ? "one of shape " + sums.shape().str() : std::string("an undefined tensor"));
  else
    DL_CHECK(sums.defined() && sums.numel() == 2, "Trainer: metric '", m.name,
             "': expected a tensor of two elements {numerator, denominator}, got ",
             sums.defined() ? "one of shape " + sums.shape().str() : std::string("an undefined tensor"));
  return sums.detach().to(DType::kFloat64).view({sums.numel()});
}

int64_t Trainer::metric_width() const {
  int64_t w = 0;
  for (const Metric& m : objective_.metrics) w += m.value ? m.size : 2;
  return w;
}

void Trainer::host_metric_sums(const Tensor& output, const data::Batch& batch, double* dst) const {
  for (size_t k = 0; k < objective_.metrics.size(); ++k) {
    const Tensor t = metric_sums(k, output, batch).to(Device::cpu());
    std::copy(t.data<double>(), t.data<double>() + t.numel(), dst);
    dst += t.numel();
  }
}

std::vector<double> Trainer::metric_values(const double* sums) const {
  std::vector<double> values;
  for (const Metric& m : objective_.metrics) {
    if (m.value) {
      values.push_back(m.value(std::vector<double>(sums, sums + m.size)));
      sums += m.size;
    } else {
      values.push_back(sums[1] > 0 ? sums[0] / sums[1] : 0.0);
      sums += 2;
    }
  }
  return values;
}

double Trainer::loss_weight(const data::Batch& batch) const {
  if (!objective_.loss_weight) return static_cast<double>(batch.size());
  const double w = objective_.loss_weight(batch);
  DL_CHECK(w >= 0 && std::isfinite(w), "Trainer: expected a batch's loss weight >= 0 and finite, got ", w);
  return w;
}

void Trainer::set_optimizer(std::unique_ptr<optim::Optimizer> optimizer) {
  DL_CHECK(optimizer != nullptr, "Trainer::set_optimizer: expected an optimiser, got nullptr");
  DL_CHECK(iteration_ == 0 && optimizer_->steps() == 0,
           "Trainer::set_optimizer: expected to be called before the first step, got one after iteration ", iteration_);
  for (const nn::ParamRef& p : optimizer->params())
    DL_CHECK(p.tensor.device() == o_.device, "Trainer::set_optimizer: expected parameters on ", o_.device.str(),
             " (the training device), got '", p.name, "' on ", p.tensor.device().str(),
             "; make the optimiser after the Trainer, which moves the model there");
  o_.initial_learn_rate = optimizer->learning_rate();
  optimizer_ = std::move(optimizer);
  if (group_) reducer_ = std::make_unique<dist::GradientReducer>(optimizer_->params(), *group_, o_.gradient_reducer);
}

void Trainer::set_gradient_hook(std::function<void(const std::vector<nn::ParamRef>&)> hook) { hook_ = std::move(hook); }
void Trainer::set_output(std::ostream* out) { out_ = out; }
void Trainer::set_progress(ProgressMode mode) { progress_mode_ = mode; }
void Trainer::add_observer(TrainingObserver& observer) { observers_.push_back(&observer); }

// A function of the iteration alone, so that a resumed run continues the schedule where it stopped.
double Trainer::learn_rate_at(const Run& run) const {
  const optim::Progress p{.iteration = iteration_,
                          .iterations_per_epoch = run.loader.batches_per_epoch(),
                          .total_iterations = run.last_iteration};
  return o_.initial_learn_rate * schedule_->factor(p);
}

void Trainer::clip_gradients() {
  if (!std::isfinite(o_.gradient_threshold)) return;
  const auto& params = optimizer_->params();
  switch (o_.gradient_threshold_method) {
    case GradientThresholdMethod::kGlobalL2Norm:
      optim::clip_grad_global_norm(params, o_.gradient_threshold);
      break;
    case GradientThresholdMethod::kAbsoluteValue:
      optim::clip_grad_value(params, o_.gradient_threshold);
      break;
    case GradientThresholdMethod::kL2Norm:
      optim::clip_grad_norm_per_parameter(params, o_.gradient_threshold);
      break;
  }
}

EvalResult Trainer::evaluate(const data::Dataset& d, int64_t batch_size) {
  const bool was_training = model_.is_training();
  model_.eval();
  autograd::NoGradGuard no_grad;
  const Autocast autocast(o_.precision);
  EvalResult r;
  r.metric_names = metric_names();
  double loss_sum = 0, weight_sum = 0;  // the loss of the whole set: sum of loss x weight / sum of weights
  const size_t n_metrics = objective_.metrics.size();
  std::vector<double> sums(static_cast<size_t>(metric_width()), 0.0);  // every metric's sums, in turn
  // A data-parallel run: rank r evaluates the r-th part of the set with rank 0's batch-norm statistics.
  const std::shared_ptr<const data::Dataset> whole(std::shared_ptr<const data::Dataset>(), &d);  // not owned
  std::shared_ptr<const data::Dataset> part = whole;
  int64_t offset = 0;
  if (group_) {
    dist::broadcast_buffers(model_, *group_);
    const int64_t n = d.size(), rank = group_->rank(), size = group_->size();
    offset = n * rank / size;
    std::vector<int64_t> idx(static_cast<size_t>(n * (rank + 1) / size - offset));
    std::iota(idx.begin(), idx.end(), offset);
    part = std::make_shared<data::SubsetDataset>(whole, std::move(idx));
  }
  std::exception_ptr error;
  std::string message;
  try {
    if (part->size() > 0)
      data::for_each_batch(
          *part, batch_size > 0 ? batch_size : o_.mini_batch_size, o_.device,
          [&](const data::Batch& batch, int64_t first) {
            first += offset;
            const Tensor output = forward(batch);
            const double loss = batch_loss(output, batch).item<double>();
            std::vector<double> c(sums.size());
            host_metric_sums(output, batch, c.data());
            // On a device, labels are checked only when the loss says something is wrong (ops::cross_entropy
            // throws on the CPU); a batch whose labels are all ignored is an error there as on the CPU.
            if (classifier_ && n_metrics > 0 && !std::isfinite(loss) && !batch.targets.device().is_cpu()) {
              ops::check_labels(batch.targets, output.size(1), loss_.ignore_index);
              DL_CHECK(c[1] > 0, "evaluation: no sample counted (every label ignored) in the batch at sample ", first);
            }
            const double w = loss_weight(batch);
            loss_sum += loss * w;
            weight_sum += w;
            for (size_t i = 0; i < c.size(); ++i) sums[i] += c[i];
            r.samples += batch.size();
          });
  } catch (const std::exception& e) {
    if (!group_) throw;
    error = std::current_exception(), message = error_message(e);
  }
  model_.train(was_training);
  if (group_) {  // the sums of every rank's part, and whether a rank failed
    std::vector<double> all = {loss_sum, static_cast<double>(r.samples), error ? 1.0 : 0.0, weight_sum};
    all.insert(all.end(), sums.begin(), sums.end());
    Tensor t = Tensor::from_vector<double>({static_cast<int64_t>(all.size())}, all);
    group_->all_reduce(t);
    const double* v = t.data<double>();
    if (v[2] > 0) {
      const std::vector<std::string> errors = group_->gather_errors(message);
      if (error) std::rethrow_exception(error);
      for (size_t k = 0; k < errors.size(); ++k)
        if (!errors[k].empty()) DL_THROW("rank ", k, " failed in the evaluation: ", errors[k]);
    }
    loss_sum = v[0];
    r.samples = static_cast<int64_t>(v[1]);
    weight_sum = v[3];
    sums.assign(v + 4, v + 4 + sums.size());
  }
  r.loss = weight_sum > 0 ? loss_sum / weight_sum : std::numeric_limits<double>::quiet_NaN();
  r.metrics = metric_values(sums.data());
  r.accuracy = r.metrics.empty() ? std::numeric_limits<double>::quiet_NaN() : r.metrics[0];
  return r;
}

namespace {
// Inputs held in tensors as a dataset without targets (Trainer::predict).
class InputsDataset final : public data::Dataset {
 public:
  explicit InputsDataset(const std::vector<Tensor>& inputs) {
    DL_CHECK(!inputs.empty(), "Trainer::predict: expected at least one input tensor, got none");
    for (size_t i = 0; i < inputs.size(); ++i) {
      DL_CHECK(inputs[i].defined() && inputs[i].dim() >= 1, "Trainer::predict: expected input ", i,
               " with a sample dimension");
      DL_CHECK(inputs[i].size(0) == inputs[0].size(0), "Trainer::predict: expected ", inputs[0].size(0),
               " samples in input ", i, " (as in input 0), got ", inputs[i].size(0));
      inputs_.push_back(inputs[i].to(Device::cpu()));  // batches are gathered on the host, then staged
    }
  }
  int64_t size() const override { return inputs_[0].size(0); }
  data::Batch get_batch(const std::vector<int64_t>& indices) const override {
    data::Batch b;
    b.inputs = data::gather_rows(inputs_[0], indices);
    for (size_t i = 1; i < inputs_.size(); ++i) b.extra_inputs.push_back(data::gather_rows(inputs_[i], indices));
    return b;
  }

 private:
  std::vector<Tensor> inputs_;
};

// Eval mode for a scope, the train flag restored after it, whatever happens.
class EvalScope {
 public:
  explicit EvalScope(nn::Module& m) : m_(m), was_training_(m.is_training()) { m_.eval(); }
  ~EvalScope() { m_.train(was_training_); }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  nn::Module& m_;
  bool was_training_;
};
}  // namespace

Tensor Trainer::predict(const data::Dataset& d, int64_t batch_size) {
  DL_CHECK(d.size() > 0, "Trainer::predict: expected a set with samples, got an empty one");
  const EvalScope eval(model_);
  autograd::NoGradGuard no_grad;
  const Autocast autocast(o_.precision);
  Tensor out;
  data::for_each_batch(
      d, batch_size > 0 ? batch_size : o_.mini_batch_size, o_.device, [&](const data::Batch& batch, int64_t first) {
        const Tensor y = forward(batch).detach();
        DL_CHECK(y.defined() && y.dim() >= 1 && y.size(0) == batch.size(),
                 "Trainer::predict: expected an output with a row per sample (", batch.size(), "), got ",
                 y.defined() ? "shape " + y.shape().str() : std::string("none"));
        if (!out.defined()) {
          Shape s = y.shape();
          s[0] = d.size();
          out = Tensor::empty(s, y.dtype(), y.device());
        }
        Shape expected = out.shape();
        expected[0] = batch.size();
        DL_CHECK(y.shape() == expected && y.dtype() == out.dtype(),
                 "Trainer::predict: expected the output of the batch at sample ", first, " to be ", expected.str(), " ",
                 dtype_name(out.dtype()), " as the first batch's, got ", y.shape().str(), " ", dtype_name(y.dtype()));
        out.slice(first, first + batch.size()).copy_(y);
      });
  return out;
}

Tensor Trainer::predict(const Tensor& inputs, int64_t batch_size) {
  return predict(std::vector<Tensor>{inputs}, batch_size);
}

Tensor Trainer::predict(const std::vector<Tensor>& inputs, int64_t batch_size) {
  return predict(InputsDataset(inputs), batch_size);
}

TrainingReport Trainer::fit(std::shared_ptr<const data::Dataset> train) {
  DL_CHECK(train && train->size() > 0, "Trainer::fit: the training set is empty");
  reset_allocator_peak(o_.device);
  last_finite_check_ = iteration_;
  Run run(*this, std::move(train));
  if (o_.verbose && out_ && is_root()) *out_ << "Training with " << o_.summary() << "\n";
  for (auto* o : run.observers) o->on_start({epoch_, o_.max_epochs, iteration_, run.last_iteration, metric_names()});
  model_.train();
  while (epoch_ < o_.max_epochs && !run.stop) {
    const auto te = Clock::now();
    run.batches.start_epoch();
    data::Batch batch;
    try {
      while (!run.stop && run.batches.next(batch)) {
        // With the batch norm synchronised every rank needs samples: a last batch smaller than the ranks
        // is left out (on every rank alike).
        if (group_ && o_.sync_batch_norm && batch.global_size < group_->size()) continue;
        step(run, batch);
        const bool validate_now = validation_due(run);
        if (validate_now || group_ || run.pending.size() == Run::kMaxPending || values_wanted(run))
          read_step_scalars(run, validate_now);
      }
      read_step_scalars(run, false);
    } catch (...) {
      // The steps before the failure still reach the observers (a log keeps its rows); the first error stays.
      try {
        read_step_scalars(run, false);
      } catch (...) {
      }
      throw;
    }
    end_epoch(run, since(te));
  }
  return finish(run);
}

// Note [deferred scalars]: a step leaves its loss and its {correct, counted} pair where they were
// computed (copied, on the device's stream, into a window of kMaxPending slots) and the host reads the
// window in one go (two copies, one wait) only when something needs the numbers: a table row or another
// observer (TrainingObserver::needs_values_at), a validation, the end of an epoch, or a full window. So
// on a GPU the host queues step after step without waiting for one. The price is that a loss that is not
// finite, or that explodes, is seen at the next read, after the steps between have updated the weights:
// the error names the iteration where it happened and the one it was read at. Divergence is still caught
// before a checkpoint is written, since every checkpoint follows the epoch's read and the state check.
// A data-parallel step reads its numbers in its collectives anyway: it is told at once.
//
// What a step on a GPU still waits for (blocking calls, Note [blocking calls] in dl/core/cuda.h), each
// asked for by an option: loss scaling (LossScaler::unscale, one read of all the gradients' norms, to
// skip a step that overflowed), gradient clipping (the global norm: one read; per parameter: one each;
// by value: a round trip of each gradient through the host), int64 labels (made int32 through the host,
// ops/dispatch.h), metrics counted on the host (mean IoU and BF score: ops::segmentation_counts) and
// data parallelism (the loss and metrics are reduced at once). The first step of each convolution shape
// times cuDNN's algorithms (cudnnFind*), and the stager waits for a staging slot only when the host is
// more than two batches ahead of the device. Otherwise none: tests/test_gpu_parity.cpp counts them.
bool Trainer::values_wanted(Run& run) const {
  for (auto* o : run.observers)
    if (o->needs_values_at(iteration_)) return true;
  return false;
}

void Trainer::read_step_scalars(Run& run, bool validate_last) {
  if (run.pending.empty()) return;
  const auto tr = Clock::now();
  const size_t n = run.pending.size();
  if (!group_) {  // one read of the window
    const size_t m = static_cast<size_t>(metric_width());
    const Tensor losses = run.loss_log.slice(0, static_cast<int64_t>(n)).to(Device::cpu()).to(DType::kFloat64);
    const double* l = losses.data<double>();
    std::vector<double> c;
    if (m > 0) {
      const Tensor counts = run.count_log.slice(0, static_cast<int64_t>(n * m)).to(Device::cpu());
      c.assign(counts.data<double>(), counts.data<double>() + n * m);
    }
    for (size_t i = 0; i < n; ++i) {
      run.pending[i].rec.loss = l[i];
      set_metrics(run.pending[i].rec, metric_values(c.data() + i * m));
    }
    ++run.report.scalar_reads;
  }
  run.report.train_seconds += since(tr);  // on a device the wait for the steps' work is training time
  std::vector<PendingStep> window = std::move(run.pending);
  run.pending.clear();
  for (size_t i = 0; i < n; ++i) {
    IterationRecord& rec = window[i].rec;
    check_loss(run, window[i]);
    if (i + 1 == n && validate_last) {
      validate(run, rec);
      rec.seconds = since(run.t0);
    }
    run.report.history.push_back(rec);
    for (auto* o : run.observers) o->on_iteration(rec);
  }
  std::string reason;
  for (auto* o : run.observers)
    if (reason.empty()) reason = o->stop_reason();
  if (group_) {  // every rank stops together
    Tensor stop = Tensor::from_vector<double>({1}, {reason.empty() ? 0.0 : 1.0});
    group_->all_reduce(stop);
    if (stop.data<double>()[0] > 0 && reason.empty()) reason = "an observer on another rank asked to stop";
  }
  if (!reason.empty() && !run.stop) {
    run.stop = run.report.stopped_early = true;
    run.report.stop_reason = reason;
  }
}

namespace {
// Removes all but the newest `keep` checkpoints (checkpoint_epoch<N>.dlck) of `folder`; 0 keeps all.
void prune_checkpoints(const std::string& folder, int keep) {
  if (keep <= 0) return;
  std::vector<std::pair<int64_t, std::filesystem::path>> found;
  for (const auto& e : std::filesystem::directory_iterator(folder)) {
    const std::string name = e.path().filename().string();
    const std::string prefix = "checkpoint_epoch", suffix = ".dlck";
    if (!e.is_regular_file() || name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    found.emplace_back(std::stoll(digits), e.path());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = static_cast<size_t>(keep); i < found.size(); ++i) {
    std::error_code ec;
    std::filesystem::remove(found[i].second, ec);
    DL_CHECK(!ec, found[i].second.string(), ": cannot remove an old checkpoint (keep_checkpoints = ", keep,
             "): ", ec.message());
  }
}
}  // namespace

CheckpointObserver::CheckpointObserver(Trainer& trainer, std::string folder, int keep)
    : trainer_(trainer), folder_(std::move(folder)), keep_(keep) {
  DL_CHECK(!folder_.empty(), "CheckpointObserver: expected a folder, got an empty path");
  DL_CHECK(keep_ >= 0, "CheckpointObserver: expected keep >= 0 (0: all), got ", keep_);
}

void CheckpointObserver::on_start(const FitStart&) {
  trainer_.on_every_rank("preparing the checkpoint folder", [&] {
    if (!trainer_.is_root()) return;
    std::filesystem::create_directories(folder_);
    check_output_path(folder_ + "/checkpoint_epoch1.dlck", "checkpoint");
    remove_stale_temporaries(folder_);  // of a run killed while writing one
  });
}

void CheckpointObserver::on_epoch_end(const IterationRecord&, double) {
  trainer_.on_every_rank("writing the checkpoint", [&] {
    trainer_.save_checkpoint(folder_ + "/checkpoint_epoch" + std::to_string(trainer_.epoch()) + ".dlck");
    if (trainer_.is_root()) prune_checkpoints(folder_, keep_);
  });
}

Tensor Trainer::forward(const data::Batch& batch) {
  if (o_.memory_format == MemoryFormat::kContiguous) return objective_.forward(model_, batch);
  auto reordered = [this](const Tensor& t) {
    return t.defined() && t.dim() == 4 && is_floating(t.dtype()) ? ops::to_memory_format(t, o_.memory_format) : t;
  };
  data::Batch b = batch;  // tensor handles: nothing is copied
  b.inputs = reordered(b.inputs);
  for (Tensor& t : b.extra_inputs) t = reordered(t);
  const Tensor y = objective_.forward(model_, b);
  return y.defined() ? ops::contiguous(y) : y;
}

void Trainer::step(Run& run, const data::Batch& batch) {
  const auto ts = Clock::now();
  const Autocast autocast(o_.precision);  // the backward below runs in each op's forward precision
  optimizer_->zero_grad();  // before the forward: the last step's gradients are freed, not carried through it
  const int64_t n_global = batch.global_size > 0 ? batch.global_size : batch.size();
  PendingStep pending;
  pending.rec.epoch = epoch_ + 1;
  pending.rec.iteration = iteration_ + 1;
  if (!group_) {
    const Tensor output = forward(batch);
    const Tensor loss = batch_loss(output, batch);
    (scaler_ ? scaler_->scale(loss) : loss).backward();
    // Note [deferred scalars]: into the window, on the device's stream; nothing waits here.
    const int64_t slot = static_cast<int64_t>(run.pending.size());
    if (!run.loss_log.defined() || run.loss_log.dtype() != loss.dtype()) {
      DL_CHECK(slot == 0, "Trainer: the loss changed its dtype within a window of steps");
      run.loss_log = Tensor::empty({static_cast<int64_t>(Run::kMaxPending)}, loss.dtype(), loss.device());
      run.count_log = Tensor::empty({static_cast<int64_t>(Run::kMaxPending) * std::max<int64_t>(metric_width(), 1)},
                                    DType::kFloat64, loss.device());
    }
    run.loss_log.slice(slot, slot + 1).copy_(loss.detach().view({1}));
    int64_t at = slot * metric_width();
    for (size_t k = 0; k < objective_.metrics.size(); ++k) {
      const Tensor sums = metric_sums(k, output, batch);
      run.count_log.slice(at, at + sums.numel()).copy_(sums);
      at += sums.numel();
    }
    if (classifier_ && !batch.targets.device().is_cpu())
      pending.targets = batch.targets, pending.classes = output.size(1);
  } else {
    Tensor output;
    std::vector<double> sums;
    data_parallel_backward(batch, output, pending.rec.loss, sums);
    set_metrics(pending.rec, metric_values(sums.data()));
    if (classifier_ && output.defined() && !batch.targets.device().is_cpu())
      pending.targets = batch.targets, pending.classes = output.size(1);
  }
  // With loss scaling, gradients that overflowed skip this update (weights and optimiser state stay).
  const bool overflow = scaler_ && !scaler_->unscale(optimizer_->params());
  if (scaler_) scaler_->update(overflow);
  if (!overflow) {
    clip_gradients();
    if (hook_) hook_(optimizer_->params());
    optimizer_->set_learning_rate(learn_rate_at(run));
    optimizer_->step();
  }
  ++iteration_;
  run.images += n_global;
  run.report.train_seconds += since(ts);
  pending.rec.learn_rate = optimizer_->learning_rate();
  pending.rec.seconds = since(run.t0);
  run.pending.push_back(std::move(pending));
}

// Note [gradient buckets] (dl/dist/data_parallel.h): each rank's loss is the mean over its share, so it
// weighs in by its share of the batch's loss weight W (Objective::loss_weight: for the cross-entropy the
// counted labels, weighted by class; for a loss of one's own the samples, unless it says otherwise):
// rank r back-propagates loss_r W_r size / W, and the average over the ranks is the gradient of the
// loss of the whole batch; the loss reported is sum_r loss_r W_r / W, the whole batch's. An error on one
// rank finishes the reduction (every rank makes the same collectives), then is thrown on every rank.
void Trainer::data_parallel_backward(const data::Batch& batch, Tensor& output, double& loss_value,
                                     std::vector<double>& metric_sums_out) {
  const int64_t n = batch.size();
  std::vector<double> msums(static_cast<size_t>(metric_width()), 0.0);
  std::exception_ptr error;
  std::string message;
  double w = 0;
  try {
    w = n > 0 ? loss_weight(batch) : 0;
  } catch (const std::exception& e) {
    error = std::current_exception(), message = error_message(e);
  }
  Tensor total_w = Tensor::from_vector<double>({1}, {w});
  group_->all_reduce_async(total_w).wait();
  const double total = total_w.data<double>()[0];
  try {
    if (error) std::rethrow_exception(error);
    // A share with nothing counted still runs its forward and backward (zero gradients) when the batch
    // norm is synchronised: its collectives are part of every rank's.
    if (n > 0 && (w > 0 || o_.sync_batch_norm)) {
      output = forward(batch);
      Tensor objective;
      if (w > 0) {
        const Tensor loss = batch_loss(output, batch);
        objective = scaler_ ? scaler_->scale(loss) : loss;
        const double share = w * group_->size() / total;
        if (share != 1.0) objective = ops::scale(objective, share);
        reducer_->backward(objective);
        loss_value = loss.item<double>();
        host_metric_sums(output, batch, msums.data());
      } else {
        reducer_->backward(ops::scale(ops::sum(output), 0.0));
      }
    } else {
      reducer_->finish();  // an empty share, or nothing counted: this rank adds zeros
    }
  } catch (const std::exception& e) {
    if (!error) error = std::current_exception(), message = error_message(e);
    try {
      reducer_->finish();  // the buckets not started yet, so that the ranks' collectives pair up
    } catch (...) {
      std::rethrow_exception(error);  // the group itself failed: nothing to agree on
    }
  }
  // The loss and metrics of the whole mini-batch, and whether a rank failed: the same on every rank.
  std::vector<double> all = {loss_value * w, error ? 1.0 : 0.0};
  all.insert(all.end(), msums.begin(), msums.end());
  Tensor sums = Tensor::from_vector<double>({static_cast<int64_t>(all.size())}, all);
  group_->all_reduce_async(sums).wait();
  const double* v = sums.data<double>();
  if (v[1] > 0) {
    const std::vector<std::string> errors = group_->gather_errors(error ? message : "");
    if (error) std::rethrow_exception(error);
    for (size_t r = 0; r < errors.size(); ++r)
      if (!errors[r].empty()) DL_THROW("rank ", r, " failed in the training step: ", errors[r]);
  }
  // Nothing counted on any rank: NaN, which check_loss reports.
  loss_value = total > 0 ? v[0] / total : std::numeric_limits<double>::quiet_NaN();
  metric_sums_out.assign(v + 2, v + 2 + msums.size());
}

void Trainer::check_loss(Run& run, const PendingStep& step) const {
  const IterationRecord& r = step.rec;
  const double loss = r.loss;
  if (std::isfinite(loss) && std::isnan(run.first_loss)) run.first_loss = loss;
  // Note [deferred scalars]: the steps after this one have run already.
  const std::string read_at = r.iteration < iteration_
                                  ? " (read at iteration " + std::to_string(iteration_) +
                                        ": the weights are those after it; a checkpoint holds none of them)"
                                  : "";
  const double explosion = o_.divergence_loss_factor * std::max(1.0, std::isnan(run.first_loss) ? 1.0 : run.first_loss);
  if (std::isfinite(loss) && o_.divergence_loss_factor > 0 && loss > explosion)
    DL_THROW("training diverged: the mini-batch loss is ", loss, " at epoch ", r.epoch, ", iteration ", r.iteration,
             ", over ", o_.divergence_loss_factor, " times the first mini-batch loss ", run.first_loss, " (learn rate ",
             r.learn_rate, ")", read_at,
             "; lower InitialLearnRate or set GradientThreshold (TrainingOptions::divergence_loss_factor)");
  if (std::isfinite(loss)) return;
  // On a device, labels are checked only now (ops::cross_entropy); say so if one was out of range.
  const bool on_device = step.targets.defined();
  if (on_device) ops::check_labels(step.targets, step.classes, loss_.ignore_index);
  DL_THROW("training diverged: the mini-batch loss is ", loss, " at epoch ", r.epoch, ", iteration ", r.iteration,
           " (learn rate ", r.learn_rate, ")", read_at, "; lower InitialLearnRate or set GradientThreshold",
           on_device ? " (on a GPU a batch whose labels are all ignored gives NaN too)" : "");
}

bool Trainer::validation_due(const Run& run) const {
  return validation_ && (iteration_ == 1 || iteration_ % run.validate_every == 0 || iteration_ == run.last_iteration);
}

void Trainer::validate(Run& run, IterationRecord& rec) {
  on_every_rank("the check of the training state", [&] { check_finite_state(epoch_ + 1); });
  const EvalResult v = evaluate(*validation_);
  rec.validation_loss = run.report.validation_loss = v.loss;
  rec.validation_accuracy = run.report.validation_accuracy = v.accuracy;
  rec.validation_metrics = v.metrics;
  if (v.loss < best_val_loss_) {
    best_val_loss_ = v.loss;
    patience_count_ = 0;
    if (o_.output_network == OutputNetwork::kBestValidationLoss) {
      best_state_.clear();
      for (auto& [n, t] : model_.state()) best_state_.emplace_back(n, t.clone());
    }
  } else if (o_.validation_patience > 0 && ++patience_count_ >= o_.validation_patience) {
    run.stop = run.report.stopped_early = true;
    run.report.stop_reason =
        "validation loss did not improve for " + std::to_string(o_.validation_patience) + " validations";
  }
}

void Trainer::end_epoch(Run& run, double seconds) {
  ++epoch_;
  shuffle_gen_.set_state(run.loader.generator().state());
  run.report.epoch_seconds.push_back(seconds);
  const IterationRecord last = run.report.history.empty() ? IterationRecord{} : run.report.history.back();
  // Before any observer sees the epoch's end (the checkpoints among them): no checkpoint ever holds a
  // diverged state.
  on_every_rank("the check of the training state", [&] { check_finite_state(epoch_); });
  // Every rank continues with rank 0's batch-norm statistics, the ones a checkpoint holds, so that a
  // resumed data-parallel run is the one that was never stopped.
  if (group_) dist::broadcast_buffers(model_, *group_);
  for (auto* o : run.observers) o->on_epoch_end(last, since(run.t0));
}

TrainingReport Trainer::finish(Run& run) {
  if (o_.output_network == OutputNetwork::kBestValidationLoss && !best_state_.empty())
    nn::load_state(model_, best_state_, "the best-validation network");
  TrainingReport& r = run.report;
  r.epochs_completed = epoch_;
  r.iterations = iteration_;
  r.total_seconds = since(run.t0);
  r.images_per_second = r.train_seconds > 0 ? static_cast<double>(run.images) / r.train_seconds : 0;
  r.world_size = group_ ? group_->size() : 1;
  r.peak_rss_bytes = peak_rss_bytes();
  r.allocator_peak_bytes = allocator_stats(o_.device).peak_bytes;
  if (scaler_) r.skipped_steps = scaler_->skipped_steps(), r.loss_scale = scaler_->scale_value();
  for (auto* o : run.observers) o->on_end(r);
  return std::move(r);
}

void Trainer::check_finite_state(int epoch) {
  if (iteration_ == last_finite_check_) return;
  const auto check = [&](const std::string& kind, const nn::NamedTensors& tensors) {
    for (const auto& [name, t] : tensors)
      if (const auto bad = first_non_finite(t))
        DL_THROW("training diverged between iterations ", last_finite_check_ + 1, " and ", iteration_, " (epoch ",
                 epoch, ", learn rate ", optimizer_->learning_rate(), "): ", kind, " tensor '", name, "' ",
                 t.shape().str(), " holds ", bad->second, " at element ", bad->first,
                 "; lower InitialLearnRate or set GradientThreshold");
  };
  check("the model", model_.state());
  check("the optimiser state", optimizer_->state());
  last_finite_check_ = iteration_;
}

void Trainer::save_checkpoint(const std::string& path) const {
  if (!is_root()) return;
  TensorFile f;
  f.metadata["kind"] = "training-state";
  f.metadata["solver"] = optimizer_->name();
  f.metadata["epoch"] = std::to_string(epoch_);
  f.metadata["iteration"] = std::to_string(iteration_);
  f.metadata["optimizer_steps"] = std::to_string(optimizer_->steps());
  f.metadata["best_validation_loss"] = csv_num(best_val_loss_);
  f.metadata["patience_count"] = std::to_string(patience_count_);
  const Generator::State g = shuffle_gen_.state();
  std::string gs;
  for (uint64_t w : g) gs += std::to_string(w) + " ";
  f.metadata["shuffle_generator"] = gs;
  if (scaler_) {
    char scale[40];
    std::snprintf(scale, sizeof scale, "%.17g", scaler_->scale_value());  // exact: resume is bit for bit
    f.metadata["loss_scale"] = scale;
    f.metadata["loss_scale_growth_tracker"] = std::to_string(scaler_->growth_tracker());
    f.metadata["loss_scale_skipped_steps"] = std::to_string(scaler_->skipped_steps());
  }
  for (auto& [n, t] : model_.state()) f.tensors.emplace_back("model." + n, t);
  for (auto& [n, t] : optimizer_->state()) f.tensors.emplace_back("optimizer." + n, t);
  for (auto& [n, t] : best_state_) f.tensors.emplace_back("best." + n, t);
  save_tensor_file(path, f);
}

void Trainer::load_checkpoint(const std::string& path) {
  TensorFile f;
  on_every_rank("reading the checkpoint", [&] { f = load_tensor_file(path); });
  auto meta = [&](const char* key) {
    auto it = f.metadata.find(key);
    DL_CHECK(it != f.metadata.end(), path, ": not a training checkpoint (no '", key, "' entry)");
    return it->second;
  };
  DL_CHECK(meta("kind") == "training-state", path, ": expected a training checkpoint, got a '", meta("kind"), "' file");
  DL_CHECK(meta("solver") == optimizer_->name(), path, ": checkpoint of solver '", meta("solver"),
           "', this trainer uses '", optimizer_->name(), "'");
  nn::NamedTensors model, optim, best;
  for (const auto& [n, t] : f.tensors) {
    if (n.rfind("model.", 0) == 0) model.emplace_back(n.substr(6), t);
    if (n.rfind("optimizer.", 0) == 0) optim.emplace_back(n.substr(10), t);
    if (n.rfind("best.", 0) == 0) best.emplace_back(n.substr(5), t);
  }
  nn::load_state(model_, model, path);  // checks every name and shape before copying
  const auto int_meta = [&](const char* key, int64_t hi) {
    return parse_int(meta(key), 0, hi, path + ": checkpoint entry '" + key + "'");
  };
  const int64_t steps = int_meta("optimizer_steps", int64_t{1} << 62);
  const int64_t epoch = int_meta("epoch", std::numeric_limits<int>::max());
  const int64_t iteration = int_meta("iteration", int64_t{1} << 62);
  const int64_t patience = int_meta("patience_count", std::numeric_limits<int>::max());
  const std::string bv = meta("best_validation_loss");
  const double best_val = bv.empty()
                              ? std::numeric_limits<double>::infinity()
                              : parse_double(bv, 0, std::numeric_limits<double>::infinity(),
                                             path + ": checkpoint entry 'best_validation_loss'", /*allow_inf=*/true);
  optimizer_->load_state(optim, steps, path);
  best_state_ = best;
  epoch_ = static_cast<int>(epoch);
  iteration_ = iteration;
  best_val_loss_ = best_val;
  patience_count_ = static_cast<int>(patience);
  Generator::State g{};
  std::istringstream gs(meta("shuffle_generator"));
  for (auto& w : g) gs >> w;
  DL_CHECK(!gs.fail(), path, ": corrupt shuffle_generator entry");
  shuffle_gen_.set_state(g);
  if (scaler_ && f.metadata.count("loss_scale")) {
    scaler_->set_state(parse_double(meta("loss_scale"), 0, std::numeric_limits<double>::max(),
                                    path + ": checkpoint entry 'loss_scale'"),
                       static_cast<int>(int_meta("loss_scale_growth_tracker", std::numeric_limits<int>::max())),
                       int_meta("loss_scale_skipped_steps", int64_t{1} << 62));
  }
}

}  // namespace dl::train
