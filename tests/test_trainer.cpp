// DataLoader epochs and shards; the Trainer: learning, validation patience, CSV log, clear errors
// on bad data, checkpoints of another model, and resuming bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <set>
#include <sstream>

#include "dl/dl.h"
#include "quadrants.h"

namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("libdl_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

dl::nn::MnistCnnOptions small_cnn() {
  return {.filters = {4, 8}, .in_channels = 1, .height = 8, .width = 8, .num_classes = 4};
}

dl::train::TrainingOptions quick_options() {
  dl::train::TrainingOptions o;
  o.solver = dl::train::Solver::kAdam;
  o.initial_learn_rate = 0.01;
  o.max_epochs = 4;
  o.mini_batch_size = 32;
  o.shuffle = dl::train::Shuffle::kEveryEpoch;
  o.validation_frequency = 5;
  o.verbose = false;
  o.seed = 11;
  return o;
}

TEST(DataLoader, EveryIndexOncePerEpochWithPartialLastBatch) {
  auto ds =
      std::make_shared<dl::data::TensorDataset>(dl::Tensor::from_vector<float>({10, 1}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}),
                                                dl::Tensor::zeros({10}, dl::DType::kInt32));
  dl::data::DataLoader loader(ds, {.batch_size = 4, .shuffle = true, .seed = 5});
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  std::vector<std::vector<float>> epochs;
  for (int e = 0; e < 2; ++e) {
    loader.start_epoch();
    dl::data::Batch b;
    std::vector<float> seen;
    std::vector<int64_t> sizes;
    while (loader.next(b)) {
      sizes.push_back(b.size());
      for (float v : b.inputs.to_vector_f32()) seen.push_back(v);
    }
    EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2}));
    std::vector<float> sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    epochs.push_back(seen);
  }
  EXPECT_NE(epochs[0], epochs[1]) << "shuffled every epoch";
}

TEST(DataLoader, ShardsShareEachBatchOfTheSameEpoch) {
  auto ds = std::make_shared<dl::data::TensorDataset>(dl::Tensor::uniform({11, 2}, 0, 1),
                                                      dl::Tensor::zeros({11}, dl::DType::kInt32));
  // Unsharded: batches of 3, 3, 3 and 2 samples.
  dl::data::DataLoader whole(ds, {.batch_size = 3, .shuffle = true, .seed = 9});
  whole.start_epoch();
  std::vector<std::multiset<float>> expect;
  dl::data::Batch b;
  while (whole.next(b)) {
    const std::vector<float> v = b.inputs.to_vector_f32();
    expect.emplace_back(v.begin(), v.end());
    EXPECT_EQ(b.global_size, b.size());
  }
  ASSERT_EQ(expect.size(), 4u);
  // Three shards: each has every batch (the ranks step together), the shares of batch k together are
  // batch k, and the last batch's 2 samples leave one shard an empty share.
  std::vector<std::multiset<float>> got(expect.size());
  int64_t samples = 0;
  for (int s = 0; s < 3; ++s) {
    dl::data::DataLoader loader(ds, {.batch_size = 3, .shuffle = true, .shard_index = s, .shard_count = 3, .seed = 9});
    EXPECT_EQ(loader.batches_per_epoch(), 4);
    samples += loader.samples_per_epoch();
    loader.start_epoch();
    for (size_t k = 0; loader.next(b); ++k) {
      ASSERT_LT(k, got.size());
      EXPECT_EQ(b.global_size, k < 3 ? 3 : 2);
      EXPECT_LE(b.size(), 1);
      if (b.size() == 0) {
        EXPECT_FALSE(b.inputs.defined());
        continue;
      }
      for (float v : b.inputs.to_vector_f32()) got[k].insert(v);
    }
  }
  EXPECT_EQ(samples, 11);
  EXPECT_EQ(got, expect);
}

class ThrowingDataset : public dl::data::Dataset {
 public:
  int64_t size() const override { return 8; }
  dl::data::Batch get_batch(const std::vector<int64_t>&) const override { DL_THROW("broken.png: cannot decode"); }
};

TEST(DataLoader, BackgroundErrorsReachTheCaller) {
  dl::data::DataLoader loader(std::make_shared<ThrowingDataset>(), {.batch_size = 4});
  loader.start_epoch();
  dl::data::Batch b;
  EXPECT_THROW(loader.next(b), dl::Error);
}

TEST(Trainer, LearnsAndLogsEveryIteration) {
  dl::Generator gen(1);
  dl::nn::MnistCnn model(small_cnn(), gen);
  auto o = quick_options();
  const fs::path dir = temp_dir("log");
  o.log_csv = (dir / "log.csv").string();
  dl::train::Trainer trainer(model, o);
  auto val = quadrants(64, 2);
  trainer.set_validation_data(val);
  const auto before = trainer.evaluate(*val);
  const auto report = trainer.fit(quadrants(256, 1));
  const auto after = trainer.evaluate(*val);
  EXPECT_EQ(report.iterations, 4 * 8);
  EXPECT_GT(after.accuracy, 0.9) << "accuracy before training " << before.accuracy;
  EXPECT_LT(after.loss, before.loss);
  EXPECT_GT(report.peak_rss_bytes, 0);
  EXPECT_GT(report.allocator_peak_bytes, 0);
  std::ifstream csv(o.log_csv);
  std::string line;
  int lines = 0;
  while (std::getline(csv, line)) ++lines;
  EXPECT_EQ(lines, 1 + 32);
  fs::remove_all(dir);
}

TEST(Trainer, SameSeedSameThreadsSameRunBitForBit) {
  std::vector<dl::nn::NamedTensors> states;
  for (int run = 0; run < 2; ++run) {
    dl::Generator gen(5);
    auto model = std::make_shared<dl::nn::MnistCnn>(small_cnn(), gen);
    dl::train::Trainer trainer(*model, quick_options());
    trainer.fit(quadrants(128, 1));
    states.push_back(model->state());
  }
  for (size_t i = 0; i < states[0].size(); ++i)
    EXPECT_EQ(0,
              std::memcmp(states[0][i].second.raw_data(), states[1][i].second.raw_data(), states[0][i].second.nbytes()))
        << states[0][i].first;
}

TEST(Trainer, ValidationPatienceStopsEarly) {
  dl::Generator gen(1);
  dl::nn::MnistCnn model(small_cnn(), gen);
  auto o = quick_options();
  o.max_epochs = 50;
  o.validation_frequency = 1;
  o.validation_patience = 2;
  o.initial_learn_rate = 1e-9;  // nothing improves
  dl::train::Trainer trainer(model, o);
  trainer.set_validation_data(quadrants(64, 2));
  const auto report = trainer.fit(quadrants(64, 1));
  EXPECT_TRUE(report.stopped_early);
  EXPECT_LT(report.iterations, 50 * 2);
}

TEST(Trainer, LabelOutOfRangeNamesTheLabel) {
  dl::Generator gen(1);
  dl::nn::MnistCnn model(small_cnn(), gen);
  auto o = quick_options();
  o.mini_batch_size = 64;
  o.shuffle = dl::train::Shuffle::kNever;
  dl::train::Trainer trainer(model, o);
  try {
    trainer.fit(quadrants(64, 1, /*bad_label=*/7));
    FAIL() << "a label outside [0, 4) must throw";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 7"), std::string::npos) << e.what();
  }
}

TEST(Trainer, NanLossIsAClearError) {
  dl::Generator gen(1);
  dl::nn::MnistCnn model(small_cnn(), gen);
  auto data = quadrants(64, 1);
  const_cast<float*>(data->inputs().data<float>())[5] = std::nanf("");
  auto o = quick_options();
  o.shuffle = dl::train::Shuffle::kNever;
  dl::train::Trainer trainer(model, o);
  try {
    trainer.fit(data);
    FAIL() << "a NaN loss must throw";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("diverged"), std::string::npos) << e.what();
    // Read at the end of the epoch (Note [deferred scalars]): the error names where it happened and when
    // it was seen.
    EXPECT_NE(std::string(e.what()).find("iteration 1 "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("read at iteration 2"), std::string::npos) << e.what();
  }
}

// Records every iteration told; asks for the numbers at the iterations it is given.
class ValuesAt : public dl::train::TrainingObserver {
 public:
  explicit ValuesAt(std::function<bool(int64_t)> wants) : wants_(std::move(wants)) {}
  bool needs_values_at(int64_t iteration) override { return wants_(iteration); }
  void on_iteration(const dl::train::IterationRecord& r) override { seen.push_back(r); }
  std::vector<dl::train::IterationRecord> seen;

 private:
  std::function<bool(int64_t)> wants_;
};

// Note [deferred scalars]: a step's loss and accuracy are read only when a row, an observer, a validation,
// the end of an epoch or a full window of 64 steps needs them; every iteration still reaches the
// observers in order, with the same numbers as when each step is read at once.
TEST(Trainer, ReadsItsStepScalarsOnlyWhenSomethingNeedsThem) {
  struct Case {
    const char* what;
    int samples, epochs;
    bool table;
    bool validation;
    std::function<bool(int64_t)> wants;
    int64_t reads;
  };
  const std::vector<Case> cases = {
      // 10 iterations an epoch, 3 epochs: one read per epoch.
      {"an observer at every iteration", 320, 3, false, false, [](int64_t) { return true; }, 30},
      {"nothing needs them", 320, 3, false, false, [](int64_t) { return false; }, 3},
      {"an observer at 7 and 23", 320, 3, false, false, [](int64_t i) { return i == 7 || i == 23; }, 5},
      // Rows at 1, 4, 8, ..., 28 and the last, 30; epoch ends at 10 (20 and 30 have rows).
      {"the table every 4 iterations", 320, 3, true, false, [](int64_t) { return false; }, 10},
      // Validations at 1, 5, 10, ..., 30; the epoch ends coincide.
      {"validation every 5 iterations", 320, 3, false, true, [](int64_t) { return false; }, 7},
      // 100 iterations in one epoch: a full window at 64, then the end of the epoch.
      {"a window of 64", 3200, 1, false, false, [](int64_t) { return false; }, 2},
  };
  std::vector<dl::train::IterationRecord> every;  // the second case's records: each step read at once
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    dl::Generator gen(1);
    dl::nn::MnistCnn model(small_cnn(), gen);
    auto o = quick_options();
    o.max_epochs = c.epochs;
    o.shuffle = dl::train::Shuffle::kNever;
    o.verbose = c.table;
    o.verbose_frequency = 4;
    dl::train::Trainer trainer(model, o);
    std::ostringstream table;
    trainer.set_output(&table);
    if (c.validation) trainer.set_validation_data(quadrants(32, 2));
    ValuesAt observer(c.wants);
    trainer.add_observer(observer);
    const auto report = trainer.fit(quadrants(c.samples, 1));
    EXPECT_EQ(report.scalar_reads, c.reads);
    ASSERT_EQ(observer.seen.size(), static_cast<size_t>(c.samples / 32 * c.epochs));
    for (size_t i = 0; i < observer.seen.size(); ++i) {
      ASSERT_EQ(observer.seen[i].iteration, static_cast<int64_t>(i + 1));
      EXPECT_TRUE(std::isfinite(observer.seen[i].loss) && observer.seen[i].loss > 0) << "iteration " << i + 1;
      EXPECT_GE(observer.seen[i].accuracy, 0.0);
      EXPECT_LE(observer.seen[i].accuracy, 1.0);
    }
    if (every.empty()) every = observer.seen;  // the first case
    if (c.samples == 320)
      for (size_t i = 0; i < every.size(); ++i) {
        EXPECT_EQ(observer.seen[i].loss, every[i].loss) << "iteration " << i + 1;
        EXPECT_EQ(observer.seen[i].accuracy, every[i].accuracy) << "iteration " << i + 1;
      }
  }
  EXPECT_FALSE(every.empty());
  EXPECT_LT(every.back().loss, every.front().loss) << "the toy set is learnt";
}

// Note [blocking calls] (dl/core/cuda.h): the count exists in every build, and training on the CPU never
// waits for a GPU, with or without the CUDA backend built. (test_gpu_parity counts a GPU's steps: none
// between two reads of the Trainer's window.)
TEST(Trainer, CpuTrainingMakesNoBlockingCudaCall) {
  const uint64_t before = dl::cuda::blocking_calls();
  if (!dl::cuda::kBuiltWithCuda) {
    EXPECT_EQ(before, 0u) << "a build without CUDA has nothing to wait for";
  }
  dl::Generator gen(1);
  dl::nn::MnistCnn model(small_cnn(), gen);
  auto o = quick_options();
  o.max_epochs = 2;
  dl::train::Trainer trainer(model, o);
  trainer.set_validation_data(quadrants(32, 2));
  ValuesAt every_step([](int64_t) { return true; });
  trainer.add_observer(every_step);
  const auto report = trainer.fit(quadrants(128, 1));
  EXPECT_EQ(report.iterations, 8);
  EXPECT_EQ(report.scalar_reads, 8) << "every step read at once";
  EXPECT_EQ(dl::cuda::blocking_calls(), before) << "training on the CPU waited for a GPU";
}

TEST(Trainer, CheckLabelsNamesTheFirstBadOne) {
  const dl::Tensor labels = dl::Tensor::from_vector<int32_t>({6}, {0, 3, 255, 2, 9, -1});
  EXPECT_NO_THROW(dl::ops::check_labels(labels.slice(0, 4), 4, 255));
  try {
    dl::ops::check_labels(labels, 4, 255);
    FAIL() << "label 9 is out of range";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 9 at position 4"), std::string::npos) << e.what();
  }
  // Without an ignored label, 255 is a label like any other: out of range.
  EXPECT_THROW(dl::ops::check_labels(labels, 4, -1), dl::Error);
}

// Asking for a GPU that is not there stops before anything is trained, saying why; with one, the model
// moves there (and the gpu suite checks the rest).
TEST(Trainer, DeviceOptionMovesTheModelOrSaysWhyNot) {
  dl::Generator gen(1);
  dl::nn::MnistCnn model(small_cnn(), gen);
  auto o = quick_options();
  o.device = dl::Device::cuda(0);
  if (dl::cuda_available()) {
    dl::train::Trainer trainer(model, o);
    for (const auto& [name, t] : model.state()) EXPECT_TRUE(t.device().is_cuda()) << name;
    return;
  }
  try {
    dl::train::Trainer trainer(model, o);
    FAIL() << "training on a missing GPU must throw";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
  for (const auto& [name, t] : model.state()) EXPECT_TRUE(t.device().is_cpu()) << name << " moved anyway";
}

TEST(Trainer, DeviceStagerPassesCpuBatchesThroughInOrder) {
  dl::data::DeviceStager stager(dl::Device::cpu());
  EXPECT_THROW(stager.next(), dl::Error);
  for (int i = 0; i < 2; ++i)
    stager.prefetch({dl::Tensor::full({2, 3}, i), dl::Tensor::full({2}, i, dl::DType::kInt32)});
  EXPECT_THROW(stager.prefetch({dl::Tensor::zeros({1}), dl::Tensor()}), dl::Error);  // two slots only
  for (int i = 0; i < 2; ++i) EXPECT_EQ(stager.next().inputs.to_vector_f32()[0], static_cast<float>(i));
  EXPECT_EQ(stager.staged(), 0);
}

TEST(Trainer, ResumeIsBitForBitAndOtherModelsAreRejected) {
  const fs::path dir = temp_dir("resume");
  auto train = quadrants(200, 1);
  auto val = quadrants(40, 2);
  auto o = quick_options();
  o.checkpoint_path = dir.string();

  dl::Generator g1(1);
  dl::nn::MnistCnn straight(small_cnn(), g1);
  dl::train::Trainer t1(straight, o);
  t1.set_validation_data(val);
  t1.fit(train);
  ASSERT_TRUE(fs::exists(dir / "checkpoint_epoch2.dlck"));

  dl::Generator g2(99);  // another initialisation: the checkpoint must overwrite all of it
  dl::nn::MnistCnn resumed(small_cnn(), g2);
  auto o2 = o;
  o2.checkpoint_path.clear();
  dl::train::Trainer t2(resumed, o2);
  t2.set_validation_data(val);
  t2.load_checkpoint((dir / "checkpoint_epoch2.dlck").string());
  EXPECT_EQ(t2.epoch(), 2);
  const auto report = t2.fit(train);
  EXPECT_EQ(report.epochs_completed, 4);
  const auto a = straight.state(), b = resumed.state();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(0, std::memcmp(a[i].second.raw_data(), b[i].second.raw_data(), a[i].second.nbytes())) << a[i].first;

  dl::nn::MnistCnn other(dl::nn::MnistCnnOptions{.filters = {4, 16}, .height = 8, .width = 8, .num_classes = 4}, g2);
  dl::train::Trainer t3(other, o2);
  try {
    t3.load_checkpoint((dir / "checkpoint_epoch2.dlck").string());
    FAIL() << "a checkpoint of another model must throw";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv2.weight"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Trainer, ScheduleSetsEveryIterationsRateAndResumesWhereItStopped) {
  const fs::path dir = temp_dir("schedule");
  auto train = quadrants(200, 1);  // 7 batches of 32 per epoch, 28 iterations in 4 epochs
  auto o = quick_options();
  o.learn_rate_schedule = dl::train::LearnRateSchedule::kCosine;
  o.learn_rate_warmup_iterations = 3;
  o.checkpoint_path = dir.string();
  const dl::optim::Schedule expected = dl::optim::Schedule::cosine().with_warmup(3);
  auto rate = [&](int64_t it) {
    return 0.01 * expected.factor({.iteration = it, .iterations_per_epoch = 7, .total_iterations = 28});
  };
  dl::Generator g1(1);
  dl::nn::MnistCnn model(small_cnn(), g1);
  dl::train::Trainer t1(model, o);
  const auto full = t1.fit(train);
  ASSERT_EQ(full.history.size(), 28u);
  for (size_t k = 0; k < full.history.size(); ++k)
    EXPECT_NEAR(full.history[k].learn_rate, rate(static_cast<int64_t>(k)), 1e-15) << "iteration " << k + 1;
  EXPECT_EQ(full.history[0].learn_rate, 0.0);  // the warm-up starts from 0

  dl::Generator g2(2);
  dl::nn::MnistCnn resumed(small_cnn(), g2);
  auto o2 = o;
  o2.checkpoint_path.clear();
  dl::train::Trainer t2(resumed, o2);
  t2.load_checkpoint((dir / "checkpoint_epoch2.dlck").string());
  const auto rest = t2.fit(train);
  ASSERT_EQ(rest.history.size(), 14u);
  for (size_t k = 0; k < rest.history.size(); ++k)
    EXPECT_EQ(rest.history[k].learn_rate, full.history[14 + k].learn_rate) << "iteration " << 15 + k;

  auto bad = quick_options();
  bad.learn_rate_schedule = dl::train::LearnRateSchedule::kExponential;
  bad.learn_rate_drop_factor = 0;
  EXPECT_THROW(dl::train::Trainer(model, bad), dl::Error);
  fs::remove_all(dir);
}

}  // namespace

// The synchronised batch norm with a sync that adds nothing (one process) is the batch norm of this
// batch: output, gradients and running statistics (the two processes' case is tests/test_dist.cpp).
TEST(SyncBatchNorm, OneProcessIsThePlainBatchNorm) {
  dl::Generator gen(3);
  const dl::Tensor x = dl::Tensor::uniform({3, 4, 5, 6}, -1, 1, gen, dl::DType::kFloat64),
                   dy = dl::Tensor::uniform({3, 4, 5, 6}, -1, 1, gen, dl::DType::kFloat64),
                   gamma = dl::Tensor::uniform({4}, 0.5, 1.5, gen, dl::DType::kFloat64),
                   beta = dl::Tensor::uniform({4}, -1, 1, gen, dl::DType::kFloat64);
  for (const bool relu : {false, true}) {
    auto run = [&](bool synced) {
      dl::Tensor xv = x.clone().set_requires_grad(true), gv = gamma.clone().set_requires_grad(true),
                 bv = beta.clone().set_requires_grad(true);
      dl::Tensor rm = dl::Tensor::zeros({4}, dl::DType::kFloat64), rv = dl::Tensor::ones({4}, dl::DType::kFloat64);
      int calls = 0;
      dl::ops::BatchNormOptions o{.training = true, .momentum = 0.1, .eps = 1e-5, .relu = relu};
      if (synced) o.sync = [&calls](dl::Tensor&) { ++calls; };
      const dl::Tensor y = dl::ops::batch_norm(xv, gv, bv, rm, rv, o);
      dl::ops::sum(dl::ops::mul(y, dy)).backward();
      EXPECT_EQ(calls, synced ? 2 : 0) << "one sync in the forward, one in the backward";
      return std::vector<dl::Tensor>{y, xv.grad(), gv.grad(), bv.grad(), rm, rv};
    };
    const auto plain = run(false), synced = run(true);
    for (size_t i = 0; i < plain.size(); ++i) {
      const double* a = plain[i].data<double>();
      const double* b = synced[i].data<double>();
      for (int64_t k = 0; k < plain[i].numel(); ++k)
        ASSERT_NEAR(a[k], b[k], 1e-10) << "output " << i << " relu " << relu;
    }
  }
}
