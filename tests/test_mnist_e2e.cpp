// End to end: the MNIST CNN trained briefly on the digits of data/mnist (scripts/fetch_mnist.sh), or on
// generated ones when those were not fetched (tests/mnist_data.h), must classify the held-out digits well.
#include <gtest/gtest.h>

#include <filesystem>

#include "dl/dl.h"
#include "mnist_data.h"

namespace {
// The recipe of both tests: Adam at 0.01, 3 epochs at batch 128, shuffled every epoch.
dl::train::TrainingOptions recipe() {
  dl::train::TrainingOptions o;
  o.solver = dl::train::Solver::kAdam;
  o.initial_learn_rate = 0.01;
  o.max_epochs = 3;
  o.mini_batch_size = 128;
  o.shuffle = dl::train::Shuffle::kEveryEpoch;
  o.verbose = false;
  return o;
}

// Trains the MNIST CNN with `o` on the training digits and returns its accuracy on the held-out ones.
double trained_accuracy(const dl::train::TrainingOptions& o) {
  const std::string dir = dl::testing::mnist_dir();
  dl::manual_seed(0);
  auto train = dl::data::load_mnist(dir, true);
  auto test = dl::data::load_mnist(dir, false);
  dl::nn::MnistCnn model;
  dl::train::Trainer trainer(model, o);
  trainer.fit(std::make_shared<dl::data::TensorDataset>(train.images, train.labels));
  return trainer.evaluate(dl::data::TensorDataset(test.images, test.labels)).accuracy;
}
}  // namespace

TEST(MnistE2E, ThreeEpochsAtBatch128ReachNinetyFivePercent) { EXPECT_GE(trained_accuracy(recipe()), 0.95); }

// The same recipe in libdl's fastest CPU configuration: bf16 convolutions with bf16 activations (Note [bf16
// activations] in ops/precision.cpp) and channels-last layers. Where the CPU has no AVX-512 BF16 the Trainer
// must refuse, saying why.
TEST(MnistE2E, Bf16ChannelsLastTrainsAsWell) {
  dl::train::TrainingOptions o = recipe();
  o.precision = dl::Precision::kBf16;
  o.memory_format = dl::MemoryFormat::kChannelsLast;
  if (!dl::cpu_bf16_available()) {
    EXPECT_THROW(trained_accuracy(o), dl::Error);
    return;
  }
  EXPECT_GE(trained_accuracy(o), 0.95);
}
