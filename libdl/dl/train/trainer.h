// Trainer: the training loop of any model and any loss, driven by TrainingOptions: mini-batches from a
// DataLoader on the training device (DeviceBatches), the objective's forward and loss, one optimiser
// step per batch, a learning-rate schedule, validation with patience, a checkpoint per epoch, and a
// report of time and memory at the end. What happens is told to observers (dl/train/observer.h):
// MATLAB's verbose table, the progress line, a CSV row per iteration, one's own.
//
// The objective says what a step computes (Objective below). A classifier (an nn::Layer, a single
// input, called as model(batch.inputs)) gets MATLAB's: softmax cross-entropy (set_loss_options) and
// the accuracy. Any other model brings its forward (the model and a batch: several inputs are in
// Batch::extra_inputs) and its loss (a scalar tensor), and metrics as plug-ins:
//   dl::train::Trainer trainer(model,
//       [](nn::Module& m, const data::Batch& b) { return static_cast<Net&>(m).forward(b.inputs, b.input(1)); },
//       [](const Tensor& y, const data::Batch& b) { return ops::mean(ops::mul(y - b.targets, y - b.targets)); },
//       options);
//   trainer.add_metric({"within 0.25", within_quarter});  // (output, batch) -> {hits, samples} on the device
//   trainer.fit(train);
//   trainer.evaluate(*test).metric("within 0.25");
//   Tensor y = trainer.predict(*test);  // the outputs, in eval mode
// The first metric is the "accuracy" of the table, the log and the reports; every metric reaches the
// observers by name (FitStart::metric_names, IterationRecord::metrics), and an observer may stop
// training early (TrainingObserver::stop_reason). The optimiser is the options' (solver, param_groups:
// MATLAB's options keep MATLAB's defaults) or one's own (set_optimizer). Validation, divergence checks,
// checkpoints, resume and data-parallel runs work alike for every objective.
#pragma once
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dl/data/dataset.h"
#include "dl/dist/data_parallel.h"
#include "dl/metrics/accuracy.h"
#include "dl/nn/module.h"
#include "dl/ops/loss.h"
#include "dl/optim/loss_scaler.h"
#include "dl/optim/optimizer.h"
#include "dl/train/observer.h"
#include "dl/train/options.h"
#include "dl/train/progress.h"

namespace dl::train {

// A metric as a plug-in: per batch, its sums (a tensor on the output's device, float64 best; left there
// until the numbers are read, Note [deferred scalars] in trainer.cpp), added up over the batches of a
// step (and the ranks of a data-parallel one) or of an evaluation. Without `value` the sums are two,
// {numerator, denominator}, and the metric is their ratio (0 when the denominator is 0): the accuracy
// is {correct, counted}, a mean error {sum of errors, n}. With `value` they are `size` (a confusion
// matrix, say) and `value` makes the metric of their totals (a mean IoU).
using MetricFn = std::function<Tensor(const Tensor& output, const data::Batch& batch)>;
struct Metric {
  std::string name;  // in the reports and to the observers
  MetricFn sums;
  std::function<double(const std::vector<double>& totals)> value{};
  int64_t size = 2;  // the elements of `sums` when `value` is set
};
// The top-1 accuracy of class scores (B x C or B x C x H x W) over int32 labels, `ignore_index` not
// counted (ops::correct_counts).
Metric accuracy_metric(int ignore_index = -1);
// The mean IoU of label maps (MATLAB's MeanIoU, dl/metrics/segmentation.h: classes absent from truth
// and prediction skipped) from the arg-max of class scores (B x C x H x W) against int32 labels
// (B x H x W), `void_label` not counted: its sums are the C x C confusion matrix. Its counts come
// back to the host at each batch (ops::segmentation_counts): for evaluation more than for steps.
Metric mean_iou_metric(int num_classes, int32_t void_label = 255);
// MATLAB's MeanBFScore of the same label maps: each image's BF score averaged over the classes it
// scores (dl/metrics/segmentation.h, Note [BF score]), then over the images that score any; its sums
// are {sum of the images' scores, images scored}. Its counts come back to the host at each batch.
Metric mean_bf_score_metric(int num_classes, int32_t void_label = 255);

using ForwardFn = std::function<Tensor(nn::Module& model, const data::Batch& batch)>;
// The loss of a batch: a tensor of one element that backward() starts from.
using LossFn = std::function<Tensor(const Tensor& output, const data::Batch& batch)>;

// What a step computes. `loss_weight` weighs a batch's loss where losses are combined: the losses of an
// evaluation's batches, and of the ranks' shares of a data-parallel batch (each rank back-propagates
// its loss times its share of the weight). Unset: the samples of the batch, right for a loss that is
// a mean over samples.
struct Objective {
  ForwardFn forward;
  LossFn loss;
  std::function<double(const data::Batch& batch)> loss_weight{};
  std::vector<Metric> metrics{};
};

struct EvalResult {
  // The loss of the whole set whatever the batch size: the batches' losses weighed by
  // Objective::loss_weight (with cross-entropy, its counted labels weighted by class, as one batch
  // would give); the first metric's value (the accuracy over the counted labels with cross-entropy),
  // NaN without metrics; every metric's value, in the order of metric_names.
  double loss = 0, accuracy = 0;
  int64_t samples = 0;
  std::vector<std::string> metric_names{};
  std::vector<double> metrics{};
  // The value of the metric `name`; throws dl::Error naming the metrics there are when there is none.
  double metric(const std::string& name) const;
};

class Trainer {
 public:
  // A classifier: softmax cross-entropy of model(batch.inputs) against int32 labels, and the
  // accuracy (MATLAB's).
  Trainer(nn::Layer& model, const TrainingOptions& options);
  // Any model and any loss; metrics come with add_metric.
  Trainer(nn::Module& model, ForwardFn forward, LossFn loss, const TrainingOptions& options);
  Trainer(nn::Module& model, Objective objective, const TrainingOptions& options);
  ~Trainer();

  void set_validation_data(std::shared_ptr<const data::Dataset> validation);
  // The cross-entropy's class weights and ignored label; only for the classifier's objective.
  void set_loss_options(const ops::CrossEntropyOptions& loss);
  // Adds a metric after those there are (before fit()); throws dl::Error when its name is taken or empty.
  void add_metric(Metric metric);
  std::vector<std::string> metric_names() const;
  // Runs between backward and the optimiser step with the parameters and their gradients (averaged
  // over the ranks already in a data-parallel run).
  void set_gradient_hook(std::function<void(const std::vector<nn::ParamRef>&)> hook);
  void set_output(std::ostream* out);  // the verbose table; nullptr silences it
  // A progress line with ETA on the output stream (dl/train/progress.h), besides the verbose
  // table: redrawn in place on a terminal, a plain line per epoch elsewhere. Off by default.
  void set_progress(ProgressMode mode);
  // Tells `observer` (not owned: it must outlive fit()) what fit() does, after the observers made
  // from the options and the two setters above.
  void add_observer(TrainingObserver& observer);

  TrainingReport fit(std::shared_ptr<const data::Dataset> train);
  // In a data-parallel run every rank evaluates its part of `d` with rank 0's batch-norm statistics,
  // and every rank returns the result of the whole set.
  EvalResult evaluate(const data::Dataset& d, int64_t batch_size = 0);
  // The objective's forward of every sample of `d` in order, in eval mode without gradients (the train
  // flag restored), `batch_size` samples at a time (0: mini_batch_size): the outputs concatenated along
  // the first dimension, on the training device. Each output must have a row per sample of its batch.
  // In a data-parallel run every rank predicts the whole set on its own.
  Tensor predict(const data::Dataset& d, int64_t batch_size = 0);
  // The same for inputs held in tensors (a sample per row; several for a model with several inputs,
  // the first as Batch::inputs, the others as extra_inputs); the batches have no targets.
  Tensor predict(const Tensor& inputs, int64_t batch_size = 0);
  Tensor predict(const std::vector<Tensor>& inputs, int64_t batch_size = 0);

  // The full training state: weights, optimiser moments and step, epoch, iteration, the shuffling
  // generator, the best network so far and the patience count. Written atomically; in a data-parallel
  // run by rank 0 alone (the other ranks hold the same state).
  void save_checkpoint(const std::string& path) const;
  // Restores a state written by save_checkpoint; the next fit() continues after its epoch and
  // gives, on the CPU with the same threads, the same result bit for bit as an uninterrupted run. In a
  // data-parallel run every rank reads `path` (a folder every rank sees), and a rank that cannot is an
  // error on all of them.
  void load_checkpoint(const std::string& path);

  // The process group of a data-parallel run; null when this process trains alone.
  dist::ProcessGroup* process_group() const { return group_; }

  // Replaces the optimiser made from the options (solver, param_groups) by one's own, before the first
  // step: its parameters must be the model's on the training device (make it after the Trainer, which
  // moves the model there), and its learning rate becomes initial_learn_rate, which the schedule scales.
  void set_optimizer(std::unique_ptr<optim::Optimizer> optimizer);
  optim::Optimizer& optimizer() { return *optimizer_; }
  int epoch() const { return epoch_; }
  int64_t iteration() const { return iteration_; }

 private:
  struct Run;          // one fit() call: its loader, observers and report
  struct PendingStep;  // a step whose loss and accuracy are not read yet
  Trainer(nn::Module& model, Objective objective, const TrainingOptions& options, bool classifier);
  // The objective's loss of `output` (checked to be one element) and a metric's sums (checked against
  // Metric::size, flat, in float64), with errors naming what came.
  // The objective's forward in the options' memory format: the batch's 4-D inputs reordered to it, the
  // output back to NCHW (TrainingOptions::memory_format).
  Tensor forward(const data::Batch& batch);
  Tensor batch_loss(const Tensor& output, const data::Batch& batch) const;
  Tensor metric_sums(size_t k, const Tensor& output, const data::Batch& batch) const;
  int64_t metric_width() const;  // the sums of every metric, in turn
  // Every metric's sums of `output` on the host, into dst[0, metric_width()).
  void host_metric_sums(const Tensor& output, const data::Batch& batch, double* dst) const;
  std::vector<double> metric_values(const double* sums) const;  // from metric_width() sums
  double loss_weight(const data::Batch& batch) const;
  friend class CheckpointObserver;  // writes through save_checkpoint and agrees through on_every_rank
  // One step on `batch`: its loss and accuracy join the run's window of unread steps.
  void step(Run& run, const data::Batch& batch);
  // Reads the window's losses and accuracies (one wait for a device), checks them for divergence in
  // order, validates after the last when `validate_last`, and tells the observers (Note [deferred
  // scalars] in trainer.cpp).
  void read_step_scalars(Run& run, bool validate_last);
  bool values_wanted(Run& run) const;  // an observer needs this iteration's numbers now
  // The forward and backward of a data-parallel step on this rank's share, the gradients averaged;
  // the whole batch's loss and counts (Note [gradient buckets]).
  // `metric_sums` gets {numerator, denominator} per metric.
  void data_parallel_backward(const data::Batch& batch, Tensor& output, double& loss_value,
                              std::vector<double>& metric_sums);
  // Throws "training diverged ..." when a step's loss is not finite or exploded.
  void check_loss(Run& run, const PendingStep& step) const;
  bool validation_due(const Run& run) const;
  void validate(Run& run, IterationRecord& rec);
  void end_epoch(Run& run, double seconds);
  TrainingReport finish(Run& run);
  double learn_rate_at(const Run& run) const;
  void clip_gradients();
  // Throws "training diverged ..." naming the first parameter, buffer (batch-norm statistics) or
  // optimiser state that holds NaN or Inf, and the iterations since the last check.
  void check_finite_state(int epoch);
  bool is_root() const { return !group_ || group_->rank() == 0; }
  // Runs `f` on every rank and agrees on its outcome: when it threw on any rank, it throws on every
  // rank (naming the rank), so that no rank is left waiting in the next collective.
  void on_every_rank(const char* what, const std::function<void()>& f) const;

  nn::Module& model_;
  TrainingOptions o_;
  Objective objective_;
  bool classifier_;  // the cross-entropy objective: its labels are checked when its loss is not finite
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::optional<optim::LossScaler> scaler_;  // with fp16 or TrainingOptions::loss_scaling
  std::optional<optim::Schedule> schedule_;  // o_.resolved_schedule(), made once the options are validated
  std::shared_ptr<const data::Dataset> validation_;
  ops::CrossEntropyOptions loss_;
  std::function<void(const std::vector<nn::ParamRef>&)> hook_;
  std::ostream* out_;
  ProgressMode progress_mode_ = ProgressMode::kOff;
  std::vector<TrainingObserver*> observers_;  // added by add_observer
  Generator shuffle_gen_;
  int epoch_ = 0;          // epochs completed
  int64_t iteration_ = 0;  // iterations completed
  double best_val_loss_ = std::numeric_limits<double>::infinity();
  int patience_count_ = 0;
  int64_t last_finite_check_ = 0;                   // the iteration at which the state was last found finite
  nn::NamedTensors best_state_;                     // clones of the weights at the best validation loss
  dist::ProcessGroup* group_ = nullptr;             // data-parallel runs only
  std::unique_ptr<dist::GradientReducer> reducer_;  // idem
};

// The checkpoints of a run as an observer: at the end of each epoch, after the Trainer has checked
// the training state for divergence (no checkpoint ever holds a diverged state), it writes
// <folder>/checkpoint_epoch<N>.dlck (save_checkpoint: atomically, by rank 0 alone in a data-parallel
// run, an error on one rank thrown on all) and keeps the newest `keep` of them (0: all). The Trainer
// makes one from TrainingOptions::checkpoint_path and keep_checkpoints; add another by hand (on every
// rank) for a second folder: trainer.add_observer(more_checkpoints). At the start of fit() it creates
// the folder, checks that it can write there and removes the temporaries of a run killed while writing.
class CheckpointObserver : public TrainingObserver {
 public:
  CheckpointObserver(Trainer& trainer, std::string folder, int keep = 0);
  void on_start(const FitStart& start) override;
  void on_epoch_end(const IterationRecord& last, double seconds) override;

 private:
  Trainer& trainer_;
  std::string folder_;
  int keep_;
};

}  // namespace dl::train
