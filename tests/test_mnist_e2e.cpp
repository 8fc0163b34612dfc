// End to end: the MNIST CNN trained briefly on the digits of data/mnist (scripts/fetch_mnist.sh), or on
// generated ones when those were not fetched (tests/mnist_data.h), must classify the held-out digits well.
#include <gtest/gtest.h>

#include <filesystem>

#include "dl/dl.h"
#include "mnist_data.h"

TEST(MnistE2E, ThreeEpochsAtBatch128ReachNinetyFivePercent) {
  const std::string dir = dl::testing::mnist_dir();
  dl::manual_seed(0);
  auto train = dl::data::load_mnist(dir, true);
  auto test = dl::data::load_mnist(dir, false);
  dl::nn::MnistCnn model;
  dl::train::TrainingOptions o;
  o.solver = dl::train::Solver::kAdam;
  o.initial_learn_rate = 0.01;
  o.max_epochs = 3;
  o.mini_batch_size = 128;
  o.shuffle = dl::train::Shuffle::kEveryEpoch;
  o.verbose = false;
  dl::train::Trainer trainer(model, o);
  trainer.fit(std::make_shared<dl::data::TensorDataset>(train.images, train.labels));
  const auto r = trainer.evaluate(dl::data::TensorDataset(test.images, test.labels));
  EXPECT_GE(r.accuracy, 0.95) << "test loss " << r.loss;
}
