// train_mnist: trains the seed's MNIST CNN with the seed's recipe (Adam, learn rate 0.01, x0.8 every
// 10 epochs, 50 epochs, batch 1024, validation every 10 iterations) on the MNIST IDX files of
// --data, prints MATLAB's progress table, the test accuracy, and the time and memory used.
//
// For the sweep tools (examples/sweep): --report-json writes a summary of the run (also when it
// fails), --memory-limit caps the CPU allocator, --probe-steps trains a few steps at one batch size
// (the fit probe), --estimate-memory measures the memory per batch element and exits.
#include <omp.h>
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "../common/flags.h"
#include "../common/run_report.h"
#include "../sweep/json.h"
#include "../sweep/units.h"
#include "dl/core/allocator.h"
#include "dl/data/dataset.h"
#include "dl/data/mnist.h"
#include "dl/dl.h"
#include "dl/nn/mnist_cnn.h"
#include "dl/nn/state.h"
#include "dl/train/progress.h"
#include "dl/train/resources.h"
#include "dl/train/trainer.h"

namespace {

using dl::sweep::Json;

std::string default_data_dir() {
  if (const char* env = std::getenv("DL_MNIST_DIR")) return env;
  return "data/mnist";
}

// The report of --report-json, filled as the run goes so that a failure still says what it was.
Json g_report = Json::object();
std::string g_report_path;

using dl::examples::first_n;
using dl::examples::write_json_file;

void write_report(const std::string& status, const std::string& error = "") {
  dl::examples::write_run_report(g_report_path, g_report, status, error);
}

// Allocator peak of one training step (forward, backward, optimiser step) at a few batch sizes in
// this process; a least-squares line through them gives the bytes per batch element (activations
// and workspace) and the fixed bytes (data, weights, gradients, optimiser state).
Json estimate_memory(std::shared_ptr<const dl::data::Dataset> train, dl::train::TrainingOptions o) {
  Json j = Json::object();
  j["method"] = "allocator peak of one training step at batch 1, 2, 4 and 8, fitted with a line";
  Json points = Json::array();
  std::vector<double> xs, ys;
  for (int64_t b : {1, 2, 4, 8}) {
    dl::nn::MnistCnn model;
    o.mini_batch_size = b;
    o.max_epochs = 1;
    o.verbose = false;
    o.log_csv.clear();
    o.checkpoint_path.clear();
    dl::train::Trainer trainer(model, o);
    trainer.set_output(nullptr);
    const dl::train::TrainingReport r = trainer.fit(first_n(train, b));
    Json p = Json::object();
    p["batch"] = b;
    p["allocator_peak_bytes"] = r.allocator_peak_bytes;
    points.push_back(p);
    xs.push_back(static_cast<double>(b));
    ys.push_back(static_cast<double>(r.allocator_peak_bytes));
  }
  const double n = static_cast<double>(xs.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    sx += xs[i];
    sy += ys[i];
    sxx += xs[i] * xs[i];
    sxy += xs[i] * ys[i];
  }
  const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  j["points"] = points;
  j["per_element_bytes"] = slope;
  j["fixed_bytes"] = (sy - slope * sx) / n;
  return j;
}

int run(int argc, char** argv) {
  dl::train::TrainingOptions o;
  o.solver = "adam";
  o.initial_learn_rate = 0.01;
  o.learn_rate_schedule = "piecewise";
  o.learn_rate_drop_factor = 0.8;
  o.learn_rate_drop_period = 10;
  o.max_epochs = 50;
  o.mini_batch_size = 1024;
  o.shuffle = "every-epoch";
  o.validation_frequency = 10;
  o.verbose_frequency = 10;
  o.l2_regularization = 1e-4;
  std::string data_dir = default_data_dir(), device = "cpu", save, resume;
  int threads = 0;
  uint64_t seed = 0;
  std::string report_json, memory_limit = "0", estimate_path, progress = "auto";
  int64_t train_subset = 0, test_subset = 0, probe_steps = 0;
  int image_size = 28;

  dl::examples::Flags f("train_mnist", "Trains the MNIST CNN (conv 8/16/32 + batch norm + ReLU + max pool, fc 10).");
  f.add({"solver"}, &o.solver, "sgdm, adam or rmsprop");
  f.add({"initial-learn-rate", "lr"}, &o.initial_learn_rate, "initial learning rate", 1e-12, 1e6);
  f.add({"learn-rate-schedule"}, &o.learn_rate_schedule, "none or piecewise");
  f.add({"learn-rate-drop-factor"}, &o.learn_rate_drop_factor, "factor of each piecewise drop", 0.0, 1.0);
  f.add({"learn-rate-drop-period"}, &o.learn_rate_drop_period, "epochs between drops", 1, 1000000);
  f.add({"max-epochs", "epochs"}, &o.max_epochs, "epochs to train", 1, 1000000);
  f.add({"mini-batch-size", "batch-size"}, &o.mini_batch_size, "mini-batch size", int64_t{1}, int64_t{1} << 31);
  f.add({"shuffle"}, &o.shuffle, "once, every-epoch or never");
  f.add({"validation-frequency"}, &o.validation_frequency, "iterations between validations", 1, 1000000000);
  f.add({"validation-patience"}, &o.validation_patience, "validations without improvement before stopping (0: never)", 0,
        1000000000);
  f.add({"l2-regularization"}, &o.l2_regularization, "L2 regularisation factor", 0.0, 1e6);
  f.add({"momentum"}, &o.momentum, "sgdm momentum", 0.0, 0.999999);
  f.add({"gradient-decay-factor"}, &o.gradient_decay_factor, "adam beta1", 0.0, 0.999999);
  f.add({"squared-gradient-decay-factor"}, &o.squared_gradient_decay_factor, "adam beta2 / rmsprop decay", 0.0, 0.999999);
  f.add({"epsilon"}, &o.epsilon, "adam / rmsprop epsilon", 1e-30, 1.0);
  f.add({"gradient-threshold"}, &o.gradient_threshold, "gradient clipping threshold (inf: off)", 1e-30,
        std::numeric_limits<double>::infinity());
  f.add({"gradient-threshold-method"}, &o.gradient_threshold_method, "l2norm, global-l2norm or absolute-value");
  f.add_switch({"verbose"}, &o.verbose, "print the progress table");
  f.add({"verbose-frequency"}, &o.verbose_frequency, "iterations between table rows", 1, 1000000000);
  f.add({"checkpoint-path"}, &o.checkpoint_path, "folder for a checkpoint per epoch (empty: none)");
  f.add({"keep-checkpoints"}, &o.keep_checkpoints, "keep only the newest N checkpoints of --checkpoint-path (0: all)", 0,
        1000000);
  f.add({"output-network"}, &o.output_network, "last-iteration or best-validation-loss");
  f.add({"log-csv"}, &o.log_csv, "CSV file with a row per iteration (empty: none)");
  f.add({"data"}, &data_dir, "folder with the four MNIST IDX files (plain or .gz)");
  f.add({"device"}, &device, "cpu or cuda");
  f.add({"threads"}, &threads, "CPU threads (0: all)", 0, 1024);
  f.add({"seed"}, &seed, "seed of initialisation and shuffling");
  f.add({"save"}, &save, "write the trained weights to this file");
  f.add({"resume"}, &resume, "continue from a checkpoint written with --checkpoint-path");
  f.add({"report-json"}, &report_json, "write a JSON summary of the run here (also when it fails)");
  f.add({"memory-limit"}, &memory_limit, "cap on the CPU allocator's bytes, e.g. 512MiB (0: none)");
  f.add({"train-subset"}, &train_subset, "train on the first N training images only (0: all)", int64_t{0},
        int64_t{1} << 40);
  f.add({"test-subset"}, &test_subset, "validate and test on the first N test images only (0: all)", int64_t{0},
        int64_t{1} << 40);
  f.add({"probe-steps"}, &probe_steps,
        "fit probe: train this many steps at the batch size on repeated training images, no validation (0: off)",
        int64_t{0}, int64_t{1} << 30);
  f.add({"estimate-memory"}, &estimate_path, "write the measured memory per batch element (JSON) here and exit");
  f.add({"image-size"}, &image_size, "input height and width (the MNIST CNN takes 28 only)");
  f.add({"progress"}, &progress, "progress line with ETA: auto, in-place, plain or off");
  if (!f.parse(argc, argv)) return 0;

  g_report_path = report_json;
  g_report["program"] = "train_mnist";
  g_report["libdl_version"] = DL_VERSION;
  Json& cfg = g_report["config"];
  cfg["device"] = device;
  cfg["solver"] = o.solver;
  cfg["initial_learn_rate"] = o.initial_learn_rate;
  cfg["max_epochs"] = o.max_epochs;
  cfg["mini_batch_size"] = o.mini_batch_size;
  cfg["image_size"] = image_size;
  cfg["seed"] = seed;
  cfg["probe_steps"] = probe_steps;
  cfg["log_csv"] = o.log_csv;
  g_report["status"] = "running";

  o.validate();  // every option checked before any arithmetic on it
  dl::check_output_paths({{save, "weights file"}, {report_json, "run report"}, {o.log_csv, "training log"},
                          {estimate_path, "memory estimate"}});
  DL_CHECK(image_size == 28, "train_mnist: the MNIST CNN takes 28x28 images, got --image-size ", image_size);
  dl::CpuAllocator::instance().set_limit(dl::examples::parse_memory_limit(memory_limit));
  const dl::train::ProgressMode progress_mode = dl::train::parse_progress_mode(progress);
  const dl::Device dev = dl::Device::parse(device);
  dl::examples::report_device() = dev;
  dl::check_device_usable(dev);
  o.device = dev;
  if (threads > 0) dl::set_num_threads(threads);
  dl::manual_seed(seed);
  o.seed = seed;
  cfg["threads"] = dl::num_threads();

  auto train = dl::data::load_mnist(data_dir, /*train=*/true);
  auto test = dl::data::load_mnist(data_dir, /*train=*/false);
  for (const auto* split : {&train, &test})
    DL_CHECK(split->images.size(2) == 28 && split->images.size(3) == 28, "train_mnist: the ",
             split == &train ? "training" : "test", " images of ", data_dir, " are ", split->images.size(2), " x ",
             split->images.size(3), " pixels; the MNIST CNN takes 28 x 28");
  std::printf("libdl %s | MNIST from %s: %lld training and %lld test images | %d threads\n", DL_VERSION,
              data_dir.c_str(), static_cast<long long>(train.images.size(0)),
              static_cast<long long>(test.images.size(0)), dl::num_threads());

  std::shared_ptr<const dl::data::Dataset> train_set =
      first_n(std::make_shared<dl::data::TensorDataset>(train.images, train.labels), train_subset);
  std::shared_ptr<const dl::data::Dataset> test_set =
      first_n(std::make_shared<dl::data::TensorDataset>(test.images, test.labels), test_subset);
  cfg["train_images"] = train_set->size();
  cfg["test_images"] = test_set->size();
  if (!estimate_path.empty()) {
    const Json e = estimate_memory(train_set, o);
    write_json_file(estimate_path, e);
    std::printf("Memory estimate: %.0f bytes per batch element + %.0f bytes fixed (written to %s)\n",
                e.number_at("per_element_bytes"), e.number_at("fixed_bytes"), estimate_path.c_str());
    write_report("ok");
    return 0;
  }
  if (probe_steps > 0) {
    // Exactly probe_steps full batches of the requested size, one epoch, nothing else.
    train_set = first_n(train_set, probe_steps * o.mini_batch_size);
    o.max_epochs = 1;
    cfg["max_epochs"] = 1;
  }

  dl::nn::MnistCnn model;
  dl::train::Trainer trainer(model, o);
  trainer.set_progress(progress_mode);
  if (probe_steps == 0) trainer.set_validation_data(test_set);
  if (!resume.empty()) {
    trainer.load_checkpoint(resume);
    std::printf("Resumed from %s after epoch %d (iteration %lld)\n", resume.c_str(), trainer.epoch(),
                static_cast<long long>(trainer.iteration()));
  }
  const dl::train::TrainingReport r = trainer.fit(train_set);
  g_report["training"] = dl::examples::training_json(r);
  if (probe_steps > 0) {
    std::printf("Probe: %lld steps at batch %lld fit; peak RSS %.1f MiB, allocator peak %.1f MiB\n",
                static_cast<long long>(r.iterations), static_cast<long long>(o.mini_batch_size),
                r.peak_rss_bytes / 1048576.0, r.allocator_peak_bytes / 1048576.0);
    write_report("ok");
    return 0;
  }
  const dl::train::EvalResult test_result = trainer.evaluate(*test_set);
  g_report["test"]["accuracy"] = test_result.accuracy;
  g_report["test"]["loss"] = test_result.loss;
  if (!save.empty()) dl::nn::save_weights(model, save);

  std::printf("\nTraining: %d epochs, %lld iterations, %s (%.1f s; %.2f s per epoch), %.0f images/s\n",
              r.epochs_completed, static_cast<long long>(r.iterations), dl::train::format_hms(r.total_seconds).c_str(),
              r.total_seconds, r.epoch_seconds.empty() ? 0.0 : r.total_seconds / r.epoch_seconds.size(),
              r.images_per_second);
  std::printf("Memory: peak RSS %.1f MiB, %s allocator peak %.1f MiB\n", r.peak_rss_bytes / 1048576.0,
              dev.str().c_str(), r.allocator_peak_bytes / 1048576.0);
  std::printf("Test loss: %.4f\nTest accuracy: %.4f\n", test_result.loss, test_result.accuracy);
  write_report("ok");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "train_mnist: error: %s\n", dl::examples::error_message(e).c_str());
    try {
      write_report("failed", dl::examples::error_message(e));
    } catch (const std::exception& e2) {
      std::fprintf(stderr, "train_mnist: error: cannot write the report: %s\n", dl::examples::error_message(e2).c_str());
    }
    return 1;
  }
}
