// Trainer: the training loop of a classifier (or a pixel classifier) driven by TrainingOptions:
// mini-batches from a DataLoader, softmax cross-entropy, one optimiser step per batch, a learning-
// rate schedule per epoch, validation with patience, MATLAB's verbose table, a CSV row per
// iteration, a checkpoint per epoch, and a report of time and memory at the end.
#pragma once
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "dl/data/dataset.h"
#include "dl/nn/module.h"
#include "dl/ops/loss.h"
#include "dl/optim/optimizer.h"
#include "dl/train/options.h"
#include "dl/train/progress.h"

namespace dl::train {

struct IterationRecord {
  int epoch = 0;
  int64_t iteration = 0;
  double seconds = 0;        // since training started
  double learn_rate = 0;
  double loss = 0, accuracy = 0;
  double validation_loss = std::numeric_limits<double>::quiet_NaN();
  double validation_accuracy = std::numeric_limits<double>::quiet_NaN();
};

struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t samples = 0;
};

struct TrainingReport {
  std::vector<IterationRecord> history;     // this fit() call's iterations
  std::vector<double> epoch_seconds;        // per epoch run in this call
  double total_seconds = 0;                 // wall time of fit(), validation included
  double train_seconds = 0;                 // the training steps alone
  double images_per_second = 0;             // training samples / train_seconds
  int epochs_completed = 0;                 // counting epochs before a resume
  int64_t iterations = 0;
  bool stopped_early = false;
  std::string stop_reason;
  double validation_loss = std::numeric_limits<double>::quiet_NaN();
  double validation_accuracy = std::numeric_limits<double>::quiet_NaN();
  int64_t peak_rss_bytes = 0;
  int64_t allocator_peak_bytes = 0;  // of the training device's caching allocator (the CPU's on the CPU)
};

class Trainer {
 public:
  Trainer(nn::Layer& model, const TrainingOptions& options);
  ~Trainer();

  void set_validation_data(std::shared_ptr<const data::Dataset> validation);
  void set_loss_options(const ops::CrossEntropyOptions& loss);
  // Runs between backward and the optimiser step with the parameters and their gradients: the one
  // place where data-parallel training all-reduces gradients.
  void set_gradient_hook(std::function<void(const std::vector<nn::ParamRef>&)> hook);
  void set_output(std::ostream* out);  // the verbose table; nullptr silences it
  // A progress line with ETA on the output stream (dl/train/progress.h), besides the verbose
  // table: redrawn in place on a terminal, a plain line per epoch elsewhere. Off by default.
  void set_progress(ProgressMode mode);

  TrainingReport fit(std::shared_ptr<const data::Dataset> train);
  EvalResult evaluate(const data::Dataset& d, int64_t batch_size = 0);

  // The full training state: weights, optimiser moments and step, epoch, iteration, the shuffling
  // generator, the best network so far and the patience count. Written atomically.
  void save_checkpoint(const std::string& path) const;
  // Restores a state written by save_checkpoint; the next fit() continues after its epoch and
  // gives, on the CPU with the same threads, the same result bit for bit as an uninterrupted run.
  void load_checkpoint(const std::string& path);

  optim::Optimizer& optimizer() { return *optimizer_; }
  int epoch() const { return epoch_; }
  int64_t iteration() const { return iteration_; }

 private:
  double learn_rate_for(int epoch) const;
  void clip_gradients();
  void print_header() const;
  void print_row(const IterationRecord& r) const;
  // Throws "training diverged ..." naming the first parameter, buffer (batch-norm statistics) or
  // optimiser state that holds NaN or Inf, and the iterations since the last check.
  void check_finite_state(int epoch);
  // Removes all but the newest keep_checkpoints checkpoints of checkpoint_path.
  void prune_checkpoints() const;

  nn::Layer& model_;
  TrainingOptions o_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::shared_ptr<const data::Dataset> validation_;
  ops::CrossEntropyOptions loss_;
  std::function<void(const std::vector<nn::ParamRef>&)> hook_;
  std::ostream* out_;
  ProgressMode progress_mode_ = ProgressMode::kOff;
  std::unique_ptr<ProgressLine> progress_;  // during fit()
  Generator shuffle_gen_;
  int epoch_ = 0;            // epochs completed
  int64_t iteration_ = 0;    // iterations completed
  double best_val_loss_ = std::numeric_limits<double>::infinity();
  int patience_count_ = 0;
  int64_t last_finite_check_ = 0;  // the iteration at which the state was last found finite
  nn::NamedTensors best_state_;  // clones of the weights at the best validation loss
};

std::string format_hms(double seconds);

}  // namespace dl::train
