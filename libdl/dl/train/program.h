// TrainingProgram: what the training programs (examples/) share, so that each is a short use of the
// library: the flags of every TrainingOptions (dl/train/flags.h) with the program's recipe as their
// defaults, the program flags below, the run report (dl/train/run_report.h), the fit probe, the
// summary lines and the error handling of main.
//
//   --device cpu|cuda[:N]  the training device (parsed here; the Trainer checks it, once)
//   --threads N            CPU threads (0: all)        --seed S        initialisation and shuffling
//   --save FILE            the trained model            --resume FILE   a checkpoint of --checkpoint-path
//   --report-json FILE     the run report, also when the run fails
//   --memory-limit SIZE    cap on the CPU allocator ("512MiB"; 0: none)
//   --probe-steps N        the fit probe of dl-sweep: N full batches, one epoch, no validation
//   --progress MODE        the progress line with ETA: auto, in-place, plain or off
//
//   dl::train::TrainingProgram p("train_mnist", "Trains the MNIST CNN.", recipe);
//   p.flags().add({"data"}, &data_dir, "the MNIST folder");  // the program's own flags
//   return p.run(argc, argv, [&] { ... Trainer trainer(model, p.options()); p.fit(trainer, train); ... });
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dl/data/dataset.h"
#include "dl/nn/module.h"
#include "dl/train/flags.h"
#include "dl/train/run_report.h"
#include "dl/train/trainer.h"

namespace dl::train {

class TrainingProgram {
 public:
  TrainingProgram(std::string name, std::string summary, const TrainingOptions& recipe);

  Flags& flags() { return flags_; }
  TrainingOptions& options() { return o_; }  // the recipe, then the flags
  RunReport& report() { return report_; }
  bool probing() const { return probe_steps_ > 0; }
  const std::string& save_path() const { return save_; }

  // Parses the command line (0 after --help), sets the run up (options checked, allocator cap,
  // device, threads, seed; under --probe-steps one epoch without patience) and runs `body`. Writes the
  // report; returns 0, or 1 after printing "<name>: error: <message>" when anything threw.
  int run(int argc, char** argv, const std::function<void()>& body);

  // --resume: loads the checkpoint into `t` and says so; false without --resume.
  bool resume(Trainer& t) const;
  // Trains `t` as the flags say (progress line; under --probe-steps exactly probe_steps batches of
  // the training set's first samples and no validation), records the report's "training" section and
  // under --probe-steps prints the probe's line.
  TrainingReport fit(Trainer& t, std::shared_ptr<const data::Dataset> train);
  // "Training: N epochs, ..." and "Memory: peak RSS ..., allocator peak ...".
  void print_summary(const TrainingReport& r) const;
  // --estimate-memory: the allocator peak of one training step of make_model() at batch 1, 2, 4
  // and 8, fitted with a line (bytes per batch element and fixed bytes), written as JSON to `path`.
  void estimate_memory(const std::string& path, const std::function<std::unique_ptr<nn::Layer>()>& make_model,
                       std::shared_ptr<const data::Dataset> train);

 private:
  void set_up();

  std::string name_;
  Flags flags_;
  TrainingOptions o_;
  std::string device_ = "cpu", save_, resume_, report_json_, memory_limit_ = "0", progress_ = "auto";
  int threads_ = 0;
  int64_t probe_steps_ = 0;
  RunReport report_;
};

// main's frame for any program: runs `body`, returns 0, or prints "<name>: error: <message>", calls
// `on_error` with the message (a report of the failure) and returns 1.
int run_main(const std::string& name, const std::function<void()>& body,
             const std::function<void(const std::string&)>& on_error = nullptr);

// The first n samples of a data set, repeated when n exceeds its size (the probe's batches can be
// larger than the data set); the data set itself when n <= 0.
std::shared_ptr<const data::Dataset> first_n(std::shared_ptr<const data::Dataset> d, int64_t n);

}  // namespace dl::train
