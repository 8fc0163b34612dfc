// Observers of training: what a Trainer's fit() reports as it goes, and the reports built on it.
// The Trainer calls each observer at the start of fit(), for every iteration (with validation figures
// when it validated), at the end of every epoch and at the end of fit(). Iterations are told in order,
// but not always at once: the Trainer reads a step's loss and accuracy from the device only when
// something needs them (an observer's needs_values_at, a validation, the end of an epoch, or 64 steps
// unread), and then tells the observers every iteration read. Two observers ship:
//   ProgressTable  MATLAB's verbose table (a row every VerboseFrequency iterations and at each
//                  validation) and a progress line with ETA (dl/train/progress.h)
//   CsvLog         a CSV row per iteration, every write checked (a full disk stops training, naming
//                  the file); a resumed run appends to the file of the run it continues
// The Trainer makes these from TrainingOptions (verbose, log_csv) and its set_output/set_progress;
// add_observer adds others (a program's own report, a dashboard, a test's recorder).
#pragma once
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "dl/core/file_io.h"
#include "dl/train/progress.h"

namespace dl::train {

struct IterationRecord {
  int epoch = 0;
  int64_t iteration = 0;
  double seconds = 0;  // since fit() started
  double learn_rate = 0;
  double loss = 0, accuracy = 0;  // accuracy: the first metric's value (FitStart::metric_names), NaN without one
  double validation_loss = std::numeric_limits<double>::quiet_NaN();  // NaN: not validated here
  double validation_accuracy = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> metrics{};             // every metric's value, in the order of FitStart::metric_names
  std::vector<double> validation_metrics{};  // idem when validated here, else empty
};

struct TrainingReport {
  std::vector<IterationRecord> history;  // this fit() call's iterations
  std::vector<double> epoch_seconds;     // per epoch run in this call
  double total_seconds = 0;              // wall time of fit(), validation included
  double train_seconds = 0;              // the training steps alone
  double images_per_second = 0;          // training samples / train_seconds, every rank together
  int world_size = 1;                    // ranks of a data-parallel run (1: this process alone)
  int epochs_completed = 0;              // counting epochs before a resume
  int64_t iterations = 0;
  bool stopped_early = false;
  std::string stop_reason;
  double validation_loss = std::numeric_limits<double>::quiet_NaN();
  double validation_accuracy = std::numeric_limits<double>::quiet_NaN();
  int64_t peak_rss_bytes = 0;
  int64_t allocator_peak_bytes = 0;  // of the training device's caching allocator (the CPU's on the CPU)
  int64_t skipped_steps = 0;         // updates skipped by loss scaling (inf/NaN gradients), over the whole run
  // Times this fit() read its steps' losses and accuracies from where they were computed, each a window
  // of steps at once (one wait for a device); 0 in a data-parallel run, whose steps read theirs in
  // their collectives.
  int64_t scalar_reads = 0;
  double loss_scale = 0;  // the loss scale at the end (0: no loss scaling)
};

// Where a fit() call starts: a resumed one at the iteration and epoch of its checkpoint.
struct FitStart {
  int epoch = 0, max_epochs = 0;            // epochs completed before this call
  int64_t iteration = 0;                    // iterations completed before this call
  int64_t last_iteration = 0;               // max_epochs x batches per epoch
  std::vector<std::string> metric_names{};  // the Trainer's metrics ("accuracy" for a classifier)
};

class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual void on_start(const FitStart&) {}
  virtual void on_iteration(const IterationRecord&) {}
  // Whether this observer needs the numbers of `iteration` (just run) at once, to show them: the
  // Trainer then reads the steps not yet read. Asked after every step; false lets the steps run on.
  virtual bool needs_values_at(int64_t /*iteration*/) { return false; }
  // `last` is the epoch's last iteration; `seconds` the time since fit() started.
  virtual void on_epoch_end(const IterationRecord& /*last*/, double /*seconds*/) {}
  // A reason to stop training now (early stopping on a metric of one's own, a time budget), or empty to
  // go on. Asked after the iterations read are told (Note [deferred scalars]: the steps run meanwhile
  // stand); fit() then ends as validation patience ends it, with this reason in
  // TrainingReport::stop_reason. In a data-parallel run a stop on any rank stops every rank.
  virtual std::string stop_reason() { return {}; }
  virtual void on_end(const TrainingReport&) {}
};

class ProgressTable : public TrainingObserver {
 public:
  // `out` may be null (silent). A table only when `table`, a row every `frequency` iterations (and
  // at the first, the last and every validated one); the progress line as `progress` says.
  ProgressTable(std::ostream* out, bool table, int frequency, ProgressMode progress);
  void on_start(const FitStart& s) override;
  void on_iteration(const IterationRecord& r) override;
  bool needs_values_at(int64_t iteration) override;  // a row; the in-place line twice a second
  void on_epoch_end(const IterationRecord& last, double seconds) override;
  void on_end(const TrainingReport& r) override;

 private:
  void print_row(const IterationRecord& r);
  bool row_at(int64_t iteration) const;
  std::ostream* out_;
  bool table_;
  int frequency_;
  ProgressLine line_;
  FitStart start_;
  double validation_accuracy_ = std::numeric_limits<double>::quiet_NaN();  // the latest
  std::chrono::steady_clock::time_point line_drawn_{};                     // the in-place line's last values
};

class CsvLog : public TrainingObserver {
 public:
  explicit CsvLog(std::string path) : path_(std::move(path)) {}
  void on_start(const FitStart& s) override;
  void on_iteration(const IterationRecord& r) override;
  void on_end(const TrainingReport& r) override;

 private:
  std::string path_;
  CheckedAppendFile file_;
};

}  // namespace dl::train
