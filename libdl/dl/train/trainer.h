// Trainer: the training loop of a classifier (or a pixel classifier) driven by TrainingOptions:
// mini-batches from a DataLoader on the training device (DeviceBatches), softmax cross-entropy, one
// optimiser step per batch, a learning-rate schedule per epoch, validation with patience, a
// checkpoint per epoch, and a report of time and memory at the end. What happens is told to
// observers (dl/train/observer.h): MATLAB's verbose table, the progress line, a CSV row per iteration.
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

struct EvalResult {
  // The cross-entropy of the whole set (its counted labels, weighted by class, as one batch would give),
  // whatever the batch size; the accuracy over the counted labels.
  double loss = 0, accuracy = 0;
  int64_t samples = 0;
};

class Trainer {
 public:
  Trainer(nn::Layer& model, const TrainingOptions& options);
  ~Trainer();

  void set_validation_data(std::shared_ptr<const data::Dataset> validation);
  void set_loss_options(const ops::CrossEntropyOptions& loss);
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

  optim::Optimizer& optimizer() { return *optimizer_; }
  int epoch() const { return epoch_; }
  int64_t iteration() const { return iteration_; }

 private:
  struct Run;          // one fit() call: its loader, observers and report
  struct PendingStep;  // a step whose loss and accuracy are not read yet
  void prepare_checkpoint_folder();
  // One step on `batch`: its loss and accuracy join the run's window of unread steps.
  void step(Run& run, const data::Batch& batch);
  // Reads the window's losses and accuracies (one wait for a device), checks them for divergence in
  // order, validates after the last when `validate_last`, and tells the observers (Note [deferred
  // scalars] in trainer.cpp).
  void read_step_scalars(Run& run, bool validate_last);
  bool values_wanted(Run& run) const;  // an observer needs this iteration's numbers now
  // The forward and backward of a data-parallel step on this rank's share, the gradients averaged;
  // the whole batch's loss and counts (Note [gradient buckets]).
  void data_parallel_backward(const data::Batch& batch, Tensor& logits, double& loss_value, metrics::Counts& counts);
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
  // Removes all but the newest keep_checkpoints checkpoints of checkpoint_path.
  void prune_checkpoints() const;
  bool is_root() const { return !group_ || group_->rank() == 0; }
  // Runs `f` on every rank and agrees on its outcome: when it threw on any rank, it throws on every
  // rank (naming the rank), so that no rank is left waiting in the next collective.
  void on_every_rank(const char* what, const std::function<void()>& f) const;

  nn::Layer& model_;
  TrainingOptions o_;
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

}  // namespace dl::train
