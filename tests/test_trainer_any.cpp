// The Trainer with any model and any loss: a two-input model trained with a loss and a metric of its
// own (AdamW, a cosine schedule with warm-up, parameter groups), several inputs through the loader,
// evaluate with the user metric, predict against a forward by hand, checkpoints and resume, and the
// errors of a metric or loss of the wrong shape.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "dl/dl.h"

namespace {

namespace fs = std::filesystem;
using dl::Tensor;
using dl::data::Batch;

// Two towers whose features add up, then a head: y = head(relu(left(a) + right(b))).
class TwoTower : public dl::nn::Module {
 public:
  explicit TwoTower(uint64_t seed) : gen_(seed) {
    left = register_module("left", std::make_shared<dl::nn::Linear>(3, 16, true, dl::nn::Init::kGlorotUniform, gen_));
    right = register_module("right", std::make_shared<dl::nn::Linear>(2, 16, true, dl::nn::Init::kGlorotUniform, gen_));
    head = register_module("head", std::make_shared<dl::nn::Linear>(16, 1, true, dl::nn::Init::kGlorotUniform, gen_));
  }
  Tensor forward(const Tensor& a, const Tensor& b) {  // a: N x 3, b: N x 2 -> N x 1
    return (*head)(dl::ops::relu(dl::ops::add((*left)(a), (*right)(b))));
  }
  dl::Generator gen_;
  std::shared_ptr<dl::nn::Linear> left, right, head;
};

// y = a0 - 0.5 a1 + a2 b0 + |b1|: needs both inputs.
std::shared_ptr<dl::data::TensorDataset> regression_set(int64_t n, uint64_t seed) {
  dl::Generator gen(seed);
  const Tensor a = Tensor::uniform({n, 3}, -1, 1, gen);
  const Tensor b = Tensor::uniform({n, 2}, -1, 1, gen);
  std::vector<float> y(static_cast<size_t>(n));
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  for (int64_t i = 0; i < n; ++i)
    y[static_cast<size_t>(i)] = pa[3 * i] - 0.5f * pa[3 * i + 1] + pa[3 * i + 2] * pb[2 * i] + std::fabs(pb[2 * i + 1]);
  return std::make_shared<dl::data::TensorDataset>(std::vector<Tensor>{a, b}, Tensor::from_vector<float>({n, 1}, y));
}

Tensor two_input_forward(dl::nn::Module& m, const Batch& batch) {
  return static_cast<TwoTower&>(m).forward(batch.inputs, batch.input(1));
}

Tensor mse(const Tensor& y, const Batch& batch) {
  const Tensor d = dl::ops::sub(y, batch.targets);
  return dl::ops::mean(dl::ops::mul(d, d));
}

// The share of samples predicted within 0.25 of their target: {hits, samples}, on the output's device.
Tensor within_quarter(const Tensor& y, const Batch& batch) {
  const Tensor hits = dl::ops::lt(dl::ops::abs(dl::ops::sub(y, batch.targets)), 0.25).to(dl::DType::kFloat32);
  const Tensor n = Tensor::from_vector<float>({1}, {static_cast<float>(batch.size())}).to(y.device());
  return dl::ops::concat({dl::ops::sum(hits), n}, 0);
}

dl::train::TrainingOptions adamw_options(TwoTower& model) {
  dl::train::TrainingOptions o;
  o.solver = dl::train::Solver::kAdamW;
  o.initial_learn_rate = 0.02;
  o.weight_decay = 0.01;
  o.learn_rate_schedule = dl::train::LearnRateSchedule::kCosine;
  o.learn_rate_warmup_iterations = 8;
  o.max_epochs = 12;
  o.mini_batch_size = 32;
  o.shuffle = dl::train::Shuffle::kEveryEpoch;
  o.validation_frequency = 0;
  o.verbose = false;
  o.seed = 3;
  // The head learns at half the rate, without weight decay; the towers are in no group (the defaults).
  o.param_groups = {{.params = model.head->parameter_refs(), .learn_rate_factor = 0.5, .weight_decay = 0.0}};
  return o;
}

class Recorder : public dl::train::TrainingObserver {
 public:
  void on_start(const dl::train::FitStart& s) override { names = s.metric_names; }
  void on_iteration(const dl::train::IterationRecord& r) override { seen.push_back(r); }
  std::vector<std::string> names;
  std::vector<dl::train::IterationRecord> seen;
};

TEST(TrainerAny, TrainsATwoInputModelWithItsOwnLossAndMetric) {
  TwoTower model(7);
  const auto train = regression_set(512, 1);
  const auto test = regression_set(256, 2);
  dl::train::Trainer trainer(model, two_input_forward, mse, adamw_options(model));
  trainer.add_metric({"within 0.25", within_quarter});
  trainer.set_validation_data(test);
  Recorder rec;
  trainer.add_observer(rec);
  EXPECT_STREQ(trainer.optimizer().name(), "adamw");
  ASSERT_EQ(trainer.optimizer().params().size(), 6u);  // the head's group, then the towers'
  EXPECT_EQ(trainer.optimizer().params()[0].name, "weight");
  EXPECT_DOUBLE_EQ(trainer.optimizer().effective_learning_rate(0), 0.5 * trainer.optimizer().learning_rate());
  EXPECT_DOUBLE_EQ(trainer.optimizer().effective_learning_rate(2), trainer.optimizer().learning_rate());

  const dl::train::EvalResult before = trainer.evaluate(*test);
  EXPECT_GT(before.loss, 0.3);
  EXPECT_EQ(before.metric_names, std::vector<std::string>{"within 0.25"});
  const dl::train::TrainingReport report = trainer.fit(train);
  const dl::train::EvalResult after = trainer.evaluate(*test);
  EXPECT_LT(after.loss, 0.06) << "untrained: " << before.loss;
  EXPECT_LT(after.loss, before.loss / 5);
  EXPECT_GT(after.metric("within 0.25"), 0.6);
  EXPECT_GT(after.metric("within 0.25"), before.metric("within 0.25"));
  EXPECT_DOUBLE_EQ(after.accuracy, after.metric("within 0.25"));  // the first metric is the "accuracy"
  EXPECT_EQ(after.samples, 256);
  try {
    static_cast<void>(after.metric("missing"));
    ADD_FAILURE() << "a metric that is not there must throw";
  } catch (const dl::Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("no metric 'missing'; expected one of the evaluation's metrics ('within 0.25')"),
        std::string::npos)
        << e.what();
  }

  // The observers get the metric by name, every iteration, and the validations.
  EXPECT_EQ(rec.names, std::vector<std::string>{"within 0.25"});
  ASSERT_EQ(rec.seen.size(), 12u * 16u);
  for (const auto& r : rec.seen) {
    ASSERT_EQ(r.metrics.size(), 1u);
    EXPECT_DOUBLE_EQ(r.accuracy, r.metrics[0]);
  }
  EXPECT_EQ(rec.seen.back().validation_metrics.size(), 1u);
  EXPECT_DOUBLE_EQ(report.validation_loss, after.loss);
  // Cosine with warm-up: the rate rises over the first 8 iterations, then falls to the end.
  EXPECT_LT(rec.seen[0].learn_rate, rec.seen[7].learn_rate);
  EXPECT_GT(rec.seen[7].learn_rate, rec.seen.back().learn_rate);
  EXPECT_LT(report.history.back().loss, report.history.front().loss);
}

// An optimiser of one's own (dl::optim) in place of the options' solver and groups: the same run.
TEST(TrainerAny, AnOptimiserOfOnesOwnTrainsAsTheOptionsDescribingIt) {
  const auto set = regression_set(96, 5);
  TwoTower a(13), b(13);
  dl::train::TrainingOptions oa = adamw_options(a);
  oa.max_epochs = 3;
  dl::train::Trainer ta(a, two_input_forward, mse, oa);
  ta.fit(set);

  dl::train::TrainingOptions ob = oa;
  ob.solver = dl::train::Solver::kSgdm;
  ob.param_groups.clear();
  ob.initial_learn_rate = 1;  // replaced by the optimiser's
  dl::train::Trainer tb(b, two_input_forward, mse, ob);
  std::vector<dl::optim::ParamGroup> groups = {
      {.params = b.head->parameter_refs(), .learn_rate_factor = 0.5, .weight_decay = 0.0},
      {.params = b.left->parameter_refs()}};
  for (const auto& p : b.right->parameter_refs()) groups[1].params.push_back(p);
  tb.set_optimizer(std::make_unique<dl::optim::AdamW>(groups, dl::optim::AdamWOptions{.learning_rate = 0.02}));
  tb.fit(set);
  EXPECT_STREQ(tb.optimizer().name(), "adamw");
  const auto sa = a.state(), sb = b.state();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i)
    EXPECT_EQ(sa[i].second.to_vector_f32(), sb[i].second.to_vector_f32()) << sa[i].first;
  EXPECT_THROW(tb.set_optimizer(std::make_unique<dl::optim::AdamW>(b.parameter_refs(), dl::optim::AdamWOptions{})),
               dl::Error);  // after the first step
}

// Early stopping on a metric of one's own, as an observer.
class StopAtMetric : public dl::train::TrainingObserver {
 public:
  explicit StopAtMetric(double target) : target_(target) {}
  bool needs_values_at(int64_t) override { return true; }  // each step read at once: stops at the step
  void on_iteration(const dl::train::IterationRecord& r) override {
    if (!r.validation_metrics.empty() && r.validation_metrics[0] >= target_) reached = r.iteration;
  }
  std::string stop_reason() override { return reached ? "validation metric reached" : ""; }
  int64_t reached = 0;

 private:
  double target_;
};

TEST(TrainerAny, AnObserverStopsTrainingEarly) {
  TwoTower model(7);
  dl::train::TrainingOptions o = adamw_options(model);
  o.validation_frequency = 4;
  dl::train::Trainer trainer(model, two_input_forward, mse, o);
  trainer.add_metric({"within 0.25", within_quarter});
  trainer.set_validation_data(regression_set(128, 2));
  StopAtMetric stop(0.3);
  trainer.add_observer(stop);
  const dl::train::TrainingReport r = trainer.fit(regression_set(512, 1));
  ASSERT_GT(stop.reached, 0);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(r.stop_reason, "validation metric reached");
  EXPECT_EQ(r.iterations, stop.reached);
  EXPECT_LT(r.iterations, 12 * 16);
}

TEST(TrainerAny, PredictIsTheForwardInEvalModeConcatenated) {
  TwoTower model(9);
  dl::train::TrainingOptions o;
  o.verbose = false;
  dl::train::Trainer trainer(model, two_input_forward, mse, o);
  const auto set = regression_set(70, 4);
  model.train();
  const Tensor predicted = trainer.predict(*set, 32);  // batches of 32, 32 and 6
  EXPECT_TRUE(model.is_training());                    // the train flag restored
  model.eval();
  const Tensor by_hand = model.forward(set->inputs(), set->extra_inputs()[0]);
  model.train();
  ASSERT_EQ(predicted.shape(), by_hand.shape());
  EXPECT_EQ(predicted.to_vector_f32(), by_hand.to_vector_f32());
  EXPECT_FALSE(predicted.requires_grad());
  // From tensors: the same, with no targets in the batches.
  const Tensor from_tensors = trainer.predict({set->inputs(), set->extra_inputs()[0]}, 16);
  EXPECT_EQ(from_tensors.to_vector_f32(), by_hand.to_vector_f32());
  EXPECT_THROW(trainer.predict(std::vector<Tensor>{set->inputs(), set->extra_inputs()[0].slice(0, 3)}), dl::Error);
}

TEST(TrainerAny, AMetricOrLossOfTheWrongShapeIsAClearError) {
  TwoTower model(5);
  dl::train::TrainingOptions o;
  o.verbose = false;
  o.max_epochs = 1;
  o.mini_batch_size = 16;
  const auto set = regression_set(32, 6);
  {
    dl::train::Trainer trainer(model, two_input_forward, mse, o);
    trainer.add_metric({"bad", [](const Tensor& y, const Batch&) { return dl::ops::sum(y); }});
    try {
      trainer.fit(set);
      FAIL() << "a metric of one element must throw";
    } catch (const dl::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("metric 'bad'"), std::string::npos) << what;
      EXPECT_NE(what.find("two elements"), std::string::npos) << what;
      EXPECT_NE(what.find("[1]"), std::string::npos) << what;
    }
    EXPECT_THROW(trainer.evaluate(*set), dl::Error);
    EXPECT_THROW(trainer.add_metric({"bad", within_quarter}), dl::Error);  // the name is taken
    EXPECT_THROW(trainer.add_metric({"", within_quarter}), dl::Error);
    EXPECT_THROW(trainer.set_loss_options({}), dl::Error);  // cross-entropy's, not this loss's
  }
  {
    dl::train::Trainer trainer(
        model, two_input_forward, [](const Tensor& y, const Batch&) { return y; }, o);
    try {
      trainer.fit(set);
      FAIL() << "a loss of 16 elements must throw";
    } catch (const dl::Error& e) {
      EXPECT_NE(std::string(e.what()).find("loss to be a tensor of one element, got one of shape [16, 1]"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(dl::train::Trainer(model, dl::train::ForwardFn{}, mse, o), dl::Error);
}

TEST(TrainerAny, SeveralInputsAreGatheredAndShardedTogether) {
  const auto set = regression_set(10, 8);
  dl::data::DataLoader loader(set, {.batch_size = 4, .shuffle = true, .shard_index = 1, .shard_count = 2, .seed = 2});
  loader.start_epoch();
  Batch b;
  while (loader.next(b)) {
    ASSERT_EQ(b.input_count(), 2u);
    ASSERT_EQ(b.input(1).size(0), b.size());
    ASSERT_EQ(b.targets.size(0), b.size());
    // Each row of the second input belongs to the sample of the same row of the first.
    const std::vector<float> a = b.inputs.to_vector_f32(), x = b.input(1).to_vector_f32();
    const std::vector<float> all_a = set->inputs().to_vector_f32(), all_x = set->extra_inputs()[0].to_vector_f32();
    for (int64_t i = 0; i < b.size(); ++i) {
      int64_t j = 0;
      while (j < set->size() && all_a[static_cast<size_t>(3 * j)] != a[static_cast<size_t>(3 * i)]) ++j;
      ASSERT_LT(j, set->size()) << "row " << i;
      EXPECT_EQ(all_x[static_cast<size_t>(2 * j)], x[static_cast<size_t>(2 * i)]) << "row " << i;
    }
  }
  EXPECT_THROW(b.input(2), dl::Error);
  EXPECT_THROW(dl::data::TensorDataset({set->inputs(), set->extra_inputs()[0].slice(0, 9)}, set->targets()), dl::Error);
}

// A run stopped after 2 epochs and resumed from its checkpoint ends as the one never stopped.
TEST(TrainerAny, ResumesFromACheckpointBitForBit) {
  const fs::path dir = fs::temp_directory_path() / ("libdl_test_" + std::to_string(::getpid()) + "_trainer_any");
  fs::remove_all(dir);
  const auto set = regression_set(96, 3);
  auto options = [&](TwoTower& m) {
    dl::train::TrainingOptions o = adamw_options(m);
    o.max_epochs = 4;
    o.validation_frequency = 50;
    return o;
  };
  TwoTower whole(11);
  dl::train::Trainer a(whole, two_input_forward, mse, options(whole));
  a.fit(set);

  TwoTower first(11);
  dl::train::TrainingOptions o = options(first);
  o.max_epochs = 2;
  o.checkpoint_path = dir.string();
  dl::train::Trainer b(first, two_input_forward, mse, o);
  b.fit(set);
  TwoTower resumed(12);  // other weights: the checkpoint's replace them
  dl::train::Trainer c(resumed, two_input_forward, mse, options(resumed));
  c.load_checkpoint((dir / "checkpoint_epoch2.dlck").string());
  c.fit(set);
  const auto sa = whole.state(), sc = resumed.state();
  ASSERT_EQ(sa.size(), sc.size());
  for (size_t i = 0; i < sa.size(); ++i)
    EXPECT_EQ(sa[i].second.to_vector_f32(), sc[i].second.to_vector_f32()) << sa[i].first;
  fs::remove_all(dir);
}

// Checkpoints are an observer: one made from the options and one added by hand write each epoch's
// state, the second keeping only the newest; both write after the divergence check, so a run whose
// weights turn non-finite leaves no checkpoint of that epoch in either folder.
TEST(TrainerAny, CheckpointsAreObserversThatWriteOnlyCheckedStates) {
  const fs::path dir = fs::temp_directory_path() / ("libdl_test_" + std::to_string(::getpid()) + "_ckpt_obs");
  fs::remove_all(dir);
  const auto set = regression_set(48, 4);
  TwoTower model(13);
  dl::train::TrainingOptions o = adamw_options(model);
  o.max_epochs = 3;
  o.checkpoint_path = (dir / "all").string();
  dl::train::Trainer t(model, two_input_forward, mse, o);
  dl::train::CheckpointObserver newest(t, (dir / "newest").string(), /*keep=*/1);
  t.add_observer(newest);
  t.fit(set);
  for (int e = 1; e <= 3; ++e)
    EXPECT_TRUE(fs::exists(dir / "all" / ("checkpoint_epoch" + std::to_string(e) + ".dlck")));
  std::vector<std::string> kept;
  for (const auto& f : fs::directory_iterator(dir / "newest")) kept.push_back(f.path().filename().string());
  EXPECT_EQ(kept, std::vector<std::string>{"checkpoint_epoch3.dlck"});
  TwoTower other(14);
  dl::train::Trainer r(other, two_input_forward, mse, adamw_options(other));
  r.load_checkpoint((dir / "newest" / "checkpoint_epoch3.dlck").string());
  EXPECT_EQ(r.epoch(), 3);

  // A gradient hook that poisons a weight at the last step of epoch 4: that step's loss is still finite,
  // so only the state check at the epoch's end sees it, and it runs before any observer writes.
  const int64_t per_epoch = r.iteration() / 3;
  dl::train::TrainingOptions bad = o;
  bad.max_epochs = 5;
  dl::train::Trainer d(model, two_input_forward, mse, bad);
  dl::train::CheckpointObserver more(d, (dir / "newest").string(), 1);
  d.add_observer(more);
  d.load_checkpoint((dir / "all" / "checkpoint_epoch3.dlck").string());
  int64_t calls = 0;
  d.set_gradient_hook([&calls, per_epoch](const std::vector<dl::nn::ParamRef>& params) {
    if (++calls == per_epoch) params[0].tensor.grad().fill_(std::numeric_limits<double>::quiet_NaN());
  });
  try {
    d.fit(set);
    ADD_FAILURE() << "no error";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("training diverged between iterations"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "all" / "checkpoint_epoch4.dlck"));
  EXPECT_TRUE(fs::exists(dir / "newest" / "checkpoint_epoch3.dlck"));
  EXPECT_FALSE(fs::exists(dir / "newest" / "checkpoint_epoch4.dlck"));
  fs::remove_all(dir);
}

// The classifier's trainer keeps its one metric, "accuracy"; others join it by name.
TEST(TrainerAny, TheClassifierObjectiveNamesItsAccuracy) {
  dl::nn::Linear model(4, 3);
  dl::train::TrainingOptions o;
  o.verbose = false;
  dl::train::Trainer trainer(model, o);
  EXPECT_EQ(trainer.metric_names(), std::vector<std::string>{"accuracy"});
  EXPECT_THROW(trainer.add_metric(dl::train::accuracy_metric()), dl::Error);  // the name is taken
  dl::train::Metric top1 = dl::train::accuracy_metric();
  top1.name = "top-1";
  trainer.add_metric(top1);
  dl::Generator gen(4);
  std::vector<int32_t> labels(16);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 3);
  const dl::data::TensorDataset set(Tensor::randn({16, 4}, gen), Tensor::from_vector<int32_t>({16}, labels));
  const dl::train::EvalResult r = trainer.evaluate(set, 5);
  EXPECT_EQ(r.metric_names, (std::vector<std::string>{"accuracy", "top-1"}));
  EXPECT_DOUBLE_EQ(r.metric("top-1"), r.accuracy);
  EXPECT_EQ(trainer.predict(set).shape(), dl::Shape({16, 3}));
}

// A metric of more than two sums: the mean IoU from its summed confusion matrix, as the segmentation
// metrics pool it, whatever the batches; through training steps and evaluation.
TEST(TrainerAny, TheMeanIouMetricPoolsItsConfusionMatrixOverTheBatches) {
  dl::Generator gen(21);
  dl::nn::Conv2d model({.in_channels = 2, .out_channels = 3, .kernel = {1, 1}}, gen);
  std::vector<int32_t> labels(7 * 4 * 4);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(gen.below(3));
  const auto set = std::make_shared<dl::data::TensorDataset>(Tensor::randn({7, 2, 4, 4}, gen),
                                                             Tensor::from_vector<int32_t>({7, 4, 4}, labels));
  dl::train::TrainingOptions o;
  o.verbose = false;
  o.max_epochs = 1;
  o.mini_batch_size = 3;
  dl::train::Trainer trainer(model, o);
  trainer.add_metric(dl::train::mean_iou_metric(3));
  dl::metrics::SegmentationEvaluator ev(3);
  ev.add(dl::ops::argmax(trainer.predict(*set), 1), set->targets());
  const dl::train::EvalResult r = trainer.evaluate(*set, 2);
  EXPECT_NEAR(r.metric("mean IoU"), ev.result().mean_iou, 1e-12);
  EXPECT_GT(r.metric("mean IoU"), 0);
  trainer.add_metric(dl::train::mean_bf_score_metric(3));  // MATLAB's MeanBFScore, over batches of 2
  const double bf = trainer.evaluate(*set, 2).metric("mean BF score");
  EXPECT_NEAR(bf, ev.result().mean_bf_score, 1e-12);
  EXPECT_GT(bf, 0);
  const dl::train::TrainingReport report = trainer.fit(set);
  ASSERT_EQ(report.history.size(), 3u);
  EXPECT_EQ(report.history[0].metrics.size(), 3u);
  dl::train::Metric wrong = dl::train::mean_iou_metric(3);
  wrong.name = "wrong";
  wrong.size = 4;
  trainer.add_metric(wrong);
  try {
    static_cast<void>(trainer.evaluate(*set));
    ADD_FAILURE() << "9 sums for a metric of 4 must throw";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("metric 'wrong': expected a tensor of 4 elements (Metric::size), got one of "
                                         "shape [9]"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
