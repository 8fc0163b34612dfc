// train_mnist: trains the seed's MNIST CNN with the seed's recipe (Adam, learn rate 0.01, x0.8 every
// 10 epochs, 50 epochs, batch 1024, validation every 10 iterations) on the MNIST IDX files of
// --data, prints MATLAB's progress table, the test accuracy, and the time and memory used.
#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "../common/flags.h"
#include "dl/data/dataset.h"
#include "dl/data/mnist.h"
#include "dl/dl.h"
#include "dl/nn/mnist_cnn.h"
#include "dl/nn/state.h"
#include "dl/train/trainer.h"

namespace {

std::string default_data_dir() {
  if (const char* env = std::getenv("DL_MNIST_DIR")) return env;
  return "data/mnist";
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

  dl::examples::Flags f("train_mnist", "Trains the MNIST CNN (conv 8/16/32 + batch norm + ReLU + max pool, fc 10).");
  f.add({"solver"}, &o.solver, "sgdm, adam or rmsprop");
  f.add({"initial-learn-rate", "lr"}, &o.initial_learn_rate, "initial learning rate");
  f.add({"learn-rate-schedule"}, &o.learn_rate_schedule, "none or piecewise");
  f.add({"learn-rate-drop-factor"}, &o.learn_rate_drop_factor, "factor of each piecewise drop");
  f.add({"learn-rate-drop-period"}, &o.learn_rate_drop_period, "epochs between drops");
  f.add({"max-epochs", "epochs"}, &o.max_epochs, "epochs to train");
  f.add({"mini-batch-size", "batch-size"}, &o.mini_batch_size, "mini-batch size");
  f.add({"shuffle"}, &o.shuffle, "once, every-epoch or never");
  f.add({"validation-frequency"}, &o.validation_frequency, "iterations between validations");
  f.add({"validation-patience"}, &o.validation_patience, "validations without improvement before stopping (0: never)");
  f.add({"l2-regularization"}, &o.l2_regularization, "L2 regularisation factor");
  f.add({"momentum"}, &o.momentum, "sgdm momentum");
  f.add({"gradient-decay-factor"}, &o.gradient_decay_factor, "adam beta1");
  f.add({"squared-gradient-decay-factor"}, &o.squared_gradient_decay_factor, "adam beta2 / rmsprop decay");
  f.add({"epsilon"}, &o.epsilon, "adam / rmsprop epsilon");
  f.add({"gradient-threshold"}, &o.gradient_threshold, "gradient clipping threshold (inf: off)");
  f.add({"gradient-threshold-method"}, &o.gradient_threshold_method, "l2norm, global-l2norm or absolute-value");
  f.add_switch({"verbose"}, &o.verbose, "print the progress table");
  f.add({"verbose-frequency"}, &o.verbose_frequency, "iterations between table rows");
  f.add({"checkpoint-path"}, &o.checkpoint_path, "folder for a checkpoint per epoch (empty: none)");
  f.add({"output-network"}, &o.output_network, "last-iteration or best-validation-loss");
  f.add({"log-csv"}, &o.log_csv, "CSV file with a row per iteration (empty: none)");
  f.add({"data"}, &data_dir, "folder with the four MNIST IDX files (plain or .gz)");
  f.add({"device"}, &device, "cpu or cuda");
  f.add({"threads"}, &threads, "CPU threads (0: all)");
  f.add({"seed"}, &seed, "seed of initialisation and shuffling");
  f.add({"save"}, &save, "write the trained weights to this file");
  f.add({"resume"}, &resume, "continue from a checkpoint written with --checkpoint-path");
  if (!f.parse(argc, argv)) return 0;

  const dl::Device dev = dl::Device::parse(device);
  dl::check_device_usable(dev);
  if (threads > 0) dl::set_num_threads(threads);
  dl::manual_seed(seed);
  o.seed = seed;

  auto train = dl::data::load_mnist(data_dir, /*train=*/true);
  auto test = dl::data::load_mnist(data_dir, /*train=*/false);
  std::printf("libdl %s | MNIST from %s: %lld training and %lld test images | %d threads\n", DL_VERSION,
              data_dir.c_str(), static_cast<long long>(train.images.size(0)),
              static_cast<long long>(test.images.size(0)), dl::num_threads());

  dl::nn::MnistCnn model;
  auto train_set = std::make_shared<dl::data::TensorDataset>(train.images, train.labels);
  auto test_set = std::make_shared<dl::data::TensorDataset>(test.images, test.labels);
  dl::train::Trainer trainer(model, o);
  trainer.set_validation_data(test_set);
  if (!resume.empty()) {
    trainer.load_checkpoint(resume);
    std::printf("Resumed from %s after epoch %d (iteration %lld)\n", resume.c_str(), trainer.epoch(),
                static_cast<long long>(trainer.iteration()));
  }
  const dl::train::TrainingReport r = trainer.fit(train_set);
  const dl::train::EvalResult test_result = trainer.evaluate(*test_set);
  if (!save.empty()) dl::nn::save_weights(model, save);

  std::printf("\nTraining: %d epochs, %lld iterations, %s (%.1f s; %.2f s per epoch), %.0f images/s\n",
              r.epochs_completed, static_cast<long long>(r.iterations), dl::train::format_hms(r.total_seconds).c_str(),
              r.total_seconds, r.epoch_seconds.empty() ? 0.0 : r.total_seconds / r.epoch_seconds.size(),
              r.images_per_second);
  std::printf("Memory: peak RSS %.1f MiB, allocator peak %.1f MiB\n", r.peak_rss_bytes / 1048576.0,
              r.allocator_peak_bytes / 1048576.0);
  std::printf("Test loss: %.4f\nTest accuracy: %.4f\n", test_result.loss, test_result.accuracy);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const dl::Error& e) {
    std::fprintf(stderr, "train_mnist: error: %s\n", e.what());
    return 1;
  }
}
