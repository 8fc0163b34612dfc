// train_mnist: trains the seed's MNIST CNN with the seed's recipe (Adam, learn rate 0.01, x0.8 every
// 10 epochs, 50 epochs, batch 1024, validation every 10 iterations) on the MNIST IDX files of
// --data, prints MATLAB's progress table, the test accuracy, and the time and memory used.
//
// Every training option is a flag (--help lists them), and so are the flags every training program
// shares (dl/train/program.h: --device, --save, --resume, --report-json, --probe-steps, ...). Its
// own: --data, --train-subset/--test-subset (the first N images), --image-size (28 only) and
// --estimate-memory FILE (the memory per batch element, measured, for dl-sweep probe).
#include <cstdio>
#include <cstdlib>

#include "dl/config.h"
#include "dl/core/threads.h"
#include "dl/data/mnist.h"
#include "dl/nn/mnist_cnn.h"
#include "dl/nn/state.h"
#include "dl/train/program.h"

namespace {

// The seed's recipe, in MATLAB's trainingOptions.
dl::train::TrainingOptions recipe() {
  dl::train::TrainingOptions o;
  o.solver = dl::train::Solver::kAdam;
  o.initial_learn_rate = 0.01;
  o.learn_rate_schedule = dl::train::LearnRateSchedule::kPiecewise;
  o.learn_rate_drop_factor = 0.8;
  o.learn_rate_drop_period = 10;
  o.max_epochs = 50;
  o.mini_batch_size = 1024;
  o.shuffle = dl::train::Shuffle::kEveryEpoch;
  o.validation_frequency = 10;
  o.verbose_frequency = 10;
  o.l2_regularization = 1e-4;
  return o;
}

// MNIST's images and labels, checked to be the 28 x 28 the CNN takes.
std::shared_ptr<const dl::data::Dataset> load(const std::string& dir, bool train, int64_t first) {
  const dl::data::MnistSplit d = dl::data::load_mnist(dir, train);
  DL_CHECK(d.images.size(2) == 28 && d.images.size(3) == 28, "train_mnist: the ", train ? "training" : "test",
           " images of ", dir, " are ", d.images.size(2), " x ", d.images.size(3),
           " pixels; the MNIST CNN takes 28 x 28");
  return dl::train::first_n(std::make_shared<dl::data::TensorDataset>(d.images, d.labels), first);
}

}  // namespace

int main(int argc, char** argv) {
  dl::train::TrainingProgram p("train_mnist",
                               "Trains the MNIST CNN (conv 8/16/32 + batch norm + ReLU + max pool, fc 10).", recipe());
  std::string data_dir = std::getenv("DL_MNIST_DIR") ? std::getenv("DL_MNIST_DIR") : "data/mnist", estimate_path;
  int64_t train_subset = 0, test_subset = 0;
  int image_size = 28;
  p.flags().add({"data"}, &data_dir, "folder with the four MNIST IDX files (plain or .gz)");
  p.flags().add({"train-subset"}, &train_subset, "train on the first N training images only (0: all)", int64_t{0},
                int64_t{1} << 40);
  p.flags().add({"test-subset"}, &test_subset, "validate and test on the first N test images only (0: all)", int64_t{0},
                int64_t{1} << 40);
  p.flags().add({"image-size"}, &image_size, "input height and width (the MNIST CNN takes 28 only)");
  p.flags().add({"estimate-memory"}, &estimate_path,
                "write the measured memory per batch element (JSON) here and exit");
  return p.run(argc, argv, [&] {
    DL_CHECK(image_size == 28, "train_mnist: the MNIST CNN takes 28x28 images, got --image-size ", image_size);
    p.report().config()["image_size"] = image_size;
    const auto train_set = load(data_dir, /*train=*/true, train_subset);
    const auto test_set = load(data_dir, /*train=*/false, test_subset);
    std::printf("libdl %s | MNIST from %s: %lld training and %lld test images | %d threads\n", DL_VERSION,
                data_dir.c_str(), static_cast<long long>(train_set->size()), static_cast<long long>(test_set->size()),
                dl::num_threads());
    p.report().config()["train_images"] = train_set->size();
    p.report().config()["test_images"] = test_set->size();
    if (!estimate_path.empty())
      return p.estimate_memory(
          estimate_path, [] { return std::make_unique<dl::nn::MnistCnn>(); }, train_set);

    // The training: the README's tour of the API.
    dl::nn::MnistCnn model;
    dl::train::Trainer trainer(model, p.options());
    trainer.set_validation_data(test_set);
    p.resume(trainer);
    const dl::train::TrainingReport r = p.fit(trainer, train_set);  // + --progress, --probe-steps, the report
    if (p.probing()) return;
    const dl::train::EvalResult test = trainer.evaluate(*test_set);
    if (!p.save_path().empty()) dl::nn::save_weights(model, p.save_path());

    p.print_summary(r);
    std::printf("Test loss: %.4f\nTest accuracy: %.4f\n", test.loss, test.accuracy);
    p.report()["test"]["accuracy"] = test.accuracy;
    p.report()["test"]["loss"] = test.loss;
  });
}
