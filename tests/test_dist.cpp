// dl::dist under `mpirun -np 2` (ctest runs it so, label dist): each collective against what it must
// give; the gradient reducer against the average of each rank's own gradients; two ranks training on
// shares of each mini-batch against one process on the whole of it; checkpoint, stop and resume under
// two ranks against the run that was never stopped. (A lost rank: tests/dist_fault.cpp.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>

#include "dl/dl.h"
#include "quadrants.h"

namespace {

namespace fs = std::filesystem;

dl::dist::ProcessGroup& world() {
  dl::dist::ProcessGroup& w = dl::dist::world();
  // No test here passes in a world of one: run under mpirun -np 2 (ctest does).
  EXPECT_EQ(w.size(), 2) << "run test_dist under mpirun -np 2";
  return w;
}

// conv -> [batch norm] -> ReLU -> max pool -> linear: small, and without batch norm exactly data parallel
// (batch statistics per rank differ from those of the whole batch).
std::shared_ptr<dl::nn::Sequential> small_net(bool batch_norm, uint64_t seed) {
  dl::Generator gen(seed);
  auto net = std::make_shared<dl::nn::Sequential>();
  net->add("conv", std::make_shared<dl::nn::Conv2d>(
                       dl::nn::Conv2dOptions{.in_channels = 1, .out_channels = 4, .params = {.padding = {1, 1}}}, gen));
  if (batch_norm) net->add("bn", std::make_shared<dl::nn::BatchNorm2d>(4));
  net->add("relu", std::make_shared<dl::nn::ReLU>());
  net->add("pool", std::make_shared<dl::nn::MaxPool2d>());
  net->add("flat", std::make_shared<dl::nn::Flatten>());
  net->add("fc", std::make_shared<dl::nn::Linear>(4 * 4 * 4, 4, true, dl::nn::Init::kGlorotUniform, gen));
  return net;
}

dl::train::TrainingOptions options(bool distributed) {
  dl::train::TrainingOptions o;
  o.solver = dl::train::Solver::kSgdm;
  o.initial_learn_rate = 0.05;
  o.momentum = 0.9;
  o.l2_regularization = 1e-3;
  o.max_epochs = 3;
  o.mini_batch_size = 7;  // 15 samples: batches of 7, 7 and 1, shared 3/4, 3/4 and 0/1
  o.shuffle = dl::train::Shuffle::kEveryEpoch;
  o.verbose = false;
  o.seed = 3;
  o.distributed = distributed;
  return o;
}

void expect_close(const dl::nn::NamedTensors& a, const dl::nn::NamedTensors& b, double rel) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const std::vector<float> x = a[i].second.to_vector_f32(), y = b[i].second.to_vector_f32();
    ASSERT_EQ(x.size(), y.size()) << a[i].first;
    double diff = 0, scale = 0;
    for (size_t k = 0; k < x.size(); ++k) {
      diff = std::max(diff, static_cast<double>(std::fabs(x[k] - y[k])));
      scale = std::max(scale, static_cast<double>(std::fabs(y[k])));
    }
    // Relative, with a floor for tensors of rounding noise (a conv bias under batch norm: gradient 0).
    EXPECT_LE(diff, std::max(rel * scale, 1e-6))
        << a[i].first << " differs by " << diff << " (largest " << scale << ")";
  }
}

TEST(Collectives, AllReduceOfEveryOpAndDtype) {
  auto& w = world();
  const int r = w.rank();
  dl::Tensor f = dl::Tensor::from_vector<float>({3}, {1.0f + r, -2.0f * r, 0.5f});
  w.all_reduce(f);
  EXPECT_EQ(f.to_vector_f32(), (std::vector<float>{3.0f, -2.0f, 1.0f}));
  dl::Tensor d = dl::Tensor::from_vector<double>({2}, {1.0 + r, 10.0 * r});
  w.all_reduce(d, dl::dist::ReduceOp::kAverage);
  EXPECT_DOUBLE_EQ(d.data<double>()[0], 1.5);
  EXPECT_DOUBLE_EQ(d.data<double>()[1], 5.0);
  dl::Tensor i = dl::Tensor::from_vector<int32_t>({2}, {r, 7 - r});
  w.all_reduce(i, dl::dist::ReduceOp::kMax);
  EXPECT_EQ(i.data<int32_t>()[0], 1);
  EXPECT_EQ(i.data<int32_t>()[1], 7);
  dl::Tensor m = dl::Tensor::from_vector<float>({1}, {r == 0 ? 4.0f : -4.0f});
  w.all_reduce(m, dl::dist::ReduceOp::kMin);
  EXPECT_EQ(m.to_vector_f32()[0], -4.0f);
  // Large enough for the transport's segmented algorithms.
  dl::Tensor big = dl::Tensor::full({1 << 20}, r + 1.0);
  auto work = w.all_reduce_async(big, dl::dist::ReduceOp::kSum);
  work.wait();
  const float* b = big.data<float>();
  for (int k = 0; k < (1 << 20); k += 4099) ASSERT_EQ(b[k], 3.0f) << k;
  EXPECT_THROW(w.all_reduce(i, dl::dist::ReduceOp::kAverage), dl::Error) << "average of int32";
}

// bfloat16 and float16 reduce as NCCL reduces them (Note [16-bit reductions over MPI]): each pair in
// float, rounded back to nearest even; bools reduce by min (and) and max (or) and refuse a sum.
TEST(Collectives, AllReduceOfSixteenBitFloatsAndBools) {
  auto& w = world();
  const int r = w.rank();
  // 2 + 2^-7 lies half way between the bf16 neighbours 2 and 2 + 2^-6: it rounds to the even one, 2.
  dl::Tensor b =
      dl::Tensor::from_vector<float>({3}, {1.0f + 0.0078125f * r, r ? -3.0f : 0.5f, 256.0f}).to(dl::DType::kBFloat16);
  w.all_reduce(b);
  EXPECT_EQ(b.dtype(), dl::DType::kBFloat16);
  EXPECT_EQ(b.to_vector_f32(), (std::vector<float>{2.0f, -2.5f, 512.0f}));
  dl::Tensor h = dl::Tensor::from_vector<float>({2}, {60000.0f, r ? 2.0f : -7.0f}).to(dl::DType::kFloat16);
  dl::Tensor hmax = h.clone();
  w.all_reduce(h);  // 120000 is beyond float16: infinity, as on a GPU
  EXPECT_TRUE(std::isinf(h.to_vector_f32()[0]));
  EXPECT_EQ(h.to_vector_f32()[1], -5.0f);
  w.all_reduce(hmax, dl::dist::ReduceOp::kMax);
  EXPECT_EQ(hmax.to_vector_f32(), (std::vector<float>{60000.0f, 2.0f}));
  dl::Tensor bmin = dl::Tensor::from_vector<float>({1}, {r ? -1.5f : 4.0f}).to(dl::DType::kBFloat16);
  w.all_reduce(bmin, dl::dist::ReduceOp::kMin);
  EXPECT_EQ(bmin.to_vector_f32()[0], -1.5f);
  EXPECT_THROW(w.all_reduce(b, dl::dist::ReduceOp::kAverage), dl::Error) << "average of bfloat16";
  dl::Tensor any = dl::Tensor::from_vector<bool>({3}, {r == 1, false, true});
  dl::Tensor all = any.clone();
  w.all_reduce(any, dl::dist::ReduceOp::kMax);
  w.all_reduce(all, dl::dist::ReduceOp::kMin);
  EXPECT_EQ(any.to_vector_f32(), (std::vector<float>{1, 0, 1}));
  EXPECT_EQ(all.to_vector_f32(), (std::vector<float>{0, 0, 1}));
  EXPECT_THROW(w.all_reduce(any, dl::dist::ReduceOp::kSum), dl::Error) << "sum of bool";
  dl::Tensor g = w.all_gather(dl::Tensor::from_vector<float>({1}, {0.1f * (r + 1)}).to(dl::DType::kBFloat16));
  EXPECT_EQ(g.dtype(), dl::DType::kBFloat16);
  EXPECT_EQ(g.to_vector_f32(), (std::vector<float>{float(dl::BFloat16(0.1f)), float(dl::BFloat16(0.2f))}));
}

TEST(Collectives, BroadcastAndAllGather) {
  auto& w = world();
  const int r = w.rank();
  dl::Tensor t = dl::Tensor::full({2, 3}, r == 1 ? 9.0 : -1.0);
  w.broadcast(t, /*root=*/1);
  for (float v : t.to_vector_f32()) EXPECT_EQ(v, 9.0f);
  const dl::Tensor g = w.all_gather(dl::Tensor::from_vector<float>({2}, {float(r), float(10 + r)}));
  EXPECT_EQ(g.shape(), dl::Shape({2, 2}));
  EXPECT_EQ(g.to_vector_f32(), (std::vector<float>{0, 10, 1, 11}));
  w.barrier();
  const auto errors = w.gather_errors(r == 1 ? "disk full" : "");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "disk full");
}

TEST(Collectives, DifferentShapesAreAnErrorOnEveryRankAndTheGroupLivesOn) {
  auto& w = world();
  dl::Tensor t = dl::Tensor::zeros({w.rank() == 0 ? 3 : 4});
  try {
    w.all_reduce(t);
    ADD_FAILURE() << "no error";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("every rank must pass the same shape"), std::string::npos) << e.what();
  }
  dl::Tensor ok = dl::Tensor::ones({2});
  w.all_reduce(ok);
  EXPECT_EQ(ok.to_vector_f32(), (std::vector<float>{2, 2}));
}

TEST(DataParallel, ReducerAveragesEachRanksGradientsWithBucketsStartedDuringBackward) {
  auto& w = world();
  auto net = small_net(/*batch_norm=*/false, 4);
  dl::dist::broadcast_state(*net, w);
  const auto data = quadrants(8, 20 + static_cast<uint64_t>(w.rank()));  // each rank its own samples
  const dl::data::Batch batch = data->get_batch({0, 1, 2, 3, 4, 5, 6, 7});
  auto loss = [&] { return dl::ops::cross_entropy(net->forward(batch.inputs), batch.targets); };
  // The reference: this rank's own gradients, averaged by hand.
  loss().backward();
  std::vector<dl::Tensor> expected;
  for (auto& p : net->parameters()) {
    dl::Tensor g = p.grad().clone();
    w.all_reduce(g, dl::dist::ReduceOp::kAverage);
    expected.push_back(g);
  }
  for (auto& p : net->parameters()) p.set_grad(dl::Tensor());
  dl::dist::GradientReducer reducer(net->parameter_refs(), w, {.bucket_bytes = 300});  // several buckets
  EXPECT_GE(reducer.num_buckets(), 3);
  reducer.backward(loss());
  EXPECT_GE(reducer.started_during_backward(), 1) << "no bucket overlapped with the backward";
  const auto params = net->parameters();
  for (size_t k = 0; k < params.size(); ++k) {
    const std::vector<float> got = params[k].grad().to_vector_f32(), want = expected[k].to_vector_f32();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_FLOAT_EQ(got[i], want[i]) << "parameter " << k << " element " << i;
  }
  // A rank without samples adds zeros: the average is half of the other's gradient.
  for (auto& p : net->parameters()) p.set_grad(dl::Tensor());
  if (w.rank() == 0)
    reducer.backward(loss());
  else
    reducer.finish();
  dl::Tensor g0 = params[0].grad().clone();
  w.broadcast(g0, 0);
  EXPECT_EQ(params[0].grad().to_vector_f32(), g0.to_vector_f32()) << "every rank holds the same average";
}

// Two ranks against one process on the same data and options: the same losses, accuracies,
// validation results and weights. `tune` varies the recipe (clipping, loss scaling, Adam, validation).
void expect_two_ranks_follow_one_process(const std::function<void(dl::train::TrainingOptions&)>& tune,
                                         bool batch_norm = false, int samples = 15,
                                         const dl::ops::CrossEntropyOptions& loss = {}) {
  world();
  const auto data = quadrants(samples, 1), validation = quadrants(9, 5);
  auto o1 = options(/*distributed=*/false), o2 = options(/*distributed=*/true);
  tune(o1);
  tune(o2);
  auto single = small_net(batch_norm, 7);
  dl::train::Trainer t1(*single, o1);
  t1.set_loss_options(loss);
  t1.set_validation_data(validation);
  const auto r1 = t1.fit(data);
  auto dp = small_net(batch_norm, 7);
  dl::train::Trainer t2(*dp, o2);
  t2.set_loss_options(loss);
  t2.set_validation_data(validation);
  ASSERT_NE(t2.process_group(), nullptr);
  const auto r2 = t2.fit(data);
  EXPECT_EQ(r2.world_size, 2);
  ASSERT_EQ(r1.history.size(), r2.history.size());
  EXPECT_EQ(r1.history.size(), 3u * static_cast<size_t>((samples + 6) / 7)) << "3 epochs on every rank";
  for (size_t i = 0; i < r1.history.size(); ++i) {
    const auto &a = r1.history[i], &b = r2.history[i];
    EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::max(1.0, a.loss)) << "iteration " << i;
    EXPECT_EQ(a.accuracy, b.accuracy) << "iteration " << i;
    EXPECT_EQ(std::isnan(a.validation_loss), std::isnan(b.validation_loss)) << "iteration " << i;
    if (!std::isnan(a.validation_loss)) {
      EXPECT_NEAR(a.validation_loss, b.validation_loss, 1e-5) << "iteration " << i;
    }
  }
  expect_close(dp->state(), single->state(), 1e-5);
  EXPECT_EQ(r1.skipped_steps, r2.skipped_steps);
  // Evaluation: each rank its part, every rank the whole result.
  const auto e1 = t1.evaluate(*data, 4), e2 = t2.evaluate(*data, 4);
  EXPECT_NEAR(e1.loss, e2.loss, 1e-5);
  EXPECT_EQ(e1.accuracy, e2.accuracy);
  EXPECT_EQ(e2.samples, samples);
}

TEST(DataParallel, TwoRanksOnSharesOfEachBatchFollowOneProcessOnTheWholeBatch) {
  expect_two_ranks_follow_one_process([](dl::train::TrainingOptions&) {});
}

TEST(DataParallel, SynchronisedBatchNormFollowsOneProcessWithBatchNormOnTheWholeBatch) {
  // 14 samples: batches of 7 and 7, shared 3/4; the statistics of the whole batch on both ranks.
  expect_two_ranks_follow_one_process([](dl::train::TrainingOptions& o) { o.sync_batch_norm = true; },
                                      /*batch_norm=*/true, /*samples=*/14);
}

TEST(DataParallel, IgnoredLabelsAndClassWeightsWeighEachShareByItsCountedLabels) {
  // The shares' losses are means over different numbers (and weights) of counted labels.
  expect_two_ranks_follow_one_process(
      [](dl::train::TrainingOptions&) {}, false, 14,
      {.class_weights = dl::Tensor::from_vector<float>({4}, {0.5f, 2.0f, 1.0f, 3.0f}), .ignore_index = 2});
}

// A model of two inputs (the image through small_net, a side vector through a linear layer, added).
class ImageAndSide : public dl::nn::Module {
 public:
  explicit ImageAndSide(uint64_t seed) {
    dl::Generator gen(seed + 1);
    image = register_module("image", small_net(false, seed));
    side = register_module("side", std::make_shared<dl::nn::Linear>(3, 4, true, dl::nn::Init::kGlorotUniform, gen));
  }
  std::shared_ptr<dl::nn::Sequential> image;
  std::shared_ptr<dl::nn::Linear> side;
};

// With a loss of its own (a mean over samples), each rank's share weighs by its samples: two ranks
// follow one process, losses, the metric, weights and evaluation alike.
TEST(DataParallel, ATwoInputModelWithItsOwnLossAndMetricFollowsOneProcess) {
  world();
  const auto q = quadrants(15, 1);
  dl::Generator gen(9);
  const auto data = std::make_shared<dl::data::TensorDataset>(
      std::vector<dl::Tensor>{q->inputs(), dl::Tensor::uniform({15, 3}, -1, 1, gen)}, q->targets());
  const dl::train::ForwardFn forward = [](dl::nn::Module& m, const dl::data::Batch& b) {
    auto& net = static_cast<ImageAndSide&>(m);
    return dl::ops::add((*net.image)(b.inputs), (*net.side)(b.input(1)));
  };
  const dl::train::LossFn loss = [](const dl::Tensor& y, const dl::data::Batch& b) {
    return dl::ops::add(dl::ops::cross_entropy(y, b.targets), dl::ops::scale(dl::ops::mean(dl::ops::mul(y, y)), 0.01));
  };
  dl::train::Metric top1 = dl::train::accuracy_metric();
  top1.name = "top-1";
  ImageAndSide single(7), dp(7);
  dl::train::Trainer t1(single, forward, loss, options(/*distributed=*/false));
  dl::train::Trainer t2(dp, forward, loss, options(/*distributed=*/true));
  t1.add_metric(top1);
  t2.add_metric(top1);
  ASSERT_NE(t2.process_group(), nullptr);
  const auto r1 = t1.fit(data), r2 = t2.fit(data);
  ASSERT_EQ(r1.history.size(), r2.history.size());
  for (size_t i = 0; i < r1.history.size(); ++i) {
    EXPECT_NEAR(r1.history[i].loss, r2.history[i].loss, 1e-5 * std::max(1.0, r1.history[i].loss)) << "iteration " << i;
    EXPECT_EQ(r1.history[i].metrics, r2.history[i].metrics) << "iteration " << i;
  }
  expect_close(dp.state(), single.state(), 1e-5);
  const auto e1 = t1.evaluate(*data, 4), e2 = t2.evaluate(*data, 4);
  EXPECT_NEAR(e1.loss, e2.loss, 1e-5);
  EXPECT_EQ(e1.metric("top-1"), e2.metric("top-1"));
  EXPECT_EQ(e2.samples, 15);
}

TEST(DataParallel, ClippingLossScalingAndValidationAgreeWithOneProcess) {
  const auto tune = [](dl::train::TrainingOptions& o) {
    o.solver = dl::train::Solver::kAdam;
    o.initial_learn_rate = 0.01;
    o.gradient_threshold = 0.05;  // clips every step: the norm of the whole batch's gradient, not of a share's
    o.gradient_threshold_method = dl::train::GradientThresholdMethod::kGlobalL2Norm;
    o.loss_scaling = true;
    o.loss_scaler.initial_scale = 1024;
    o.validation_frequency = 2;
  };
  expect_two_ranks_follow_one_process(tune);
  // The clipping does act here (else the comparison above would not test where it is computed).
  std::vector<dl::nn::NamedTensors> states;
  for (const double threshold : {0.05, std::numeric_limits<double>::infinity()}) {
    auto o = options(/*distributed=*/false);
    tune(o);
    o.gradient_threshold = threshold;
    auto net = small_net(false, 7);
    dl::train::Trainer t(*net, o);
    t.fit(quadrants(15, 1));
    states.push_back(net->state());
  }
  double largest = 0;
  for (size_t i = 0; i < states[0].size(); ++i) {
    const std::vector<float> a = states[0][i].second.to_vector_f32(), b = states[1][i].second.to_vector_f32();
    for (size_t k = 0; k < a.size(); ++k) largest = std::max(largest, static_cast<double>(std::fabs(a[k] - b[k])));
  }
  EXPECT_GT(largest, 1e-4) << "gradient_threshold 0.05 did not change the run";
}

TEST(DataParallel, AnErrorInOneRanksShareIsThrownOnEveryRankAndTheGroupLivesOn) {
  auto& w = world();
  auto net = small_net(false, 7);
  dl::train::Trainer trainer(*net, options(true));
  // One label out of range (9 of 4 classes): in one rank's share of one batch.
  try {
    trainer.fit(quadrants(15, 1, /*bad_label=*/9));
    ADD_FAILURE() << "no error on rank " << w.rank();
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find('9'), std::string::npos) << "rank " << w.rank() << ": " << e.what();
  }
  // Every rank made the same collectives: the group works on.
  dl::Tensor t = dl::Tensor::ones({3});
  w.all_reduce(t);
  EXPECT_EQ(t.to_vector_f32(), (std::vector<float>{2, 2, 2}));
}

TEST(DataParallel, AParameterWithoutGradientOnEveryRankKeepsNone) {
  auto& w = world();
  auto net = small_net(false, 4);
  dl::nn::Linear unused(2, 2);
  std::vector<dl::nn::ParamRef> params = net->parameter_refs();
  params.push_back({"unused.weight", unused.weight});
  dl::dist::GradientReducer reducer(params, w);
  const auto data = quadrants(4, 3);
  const dl::data::Batch batch = data->get_batch({0, 1, 2, 3});
  reducer.backward(dl::ops::cross_entropy(net->forward(batch.inputs), batch.targets));
  EXPECT_FALSE(unused.weight.grad().defined())
      << "an optimiser would move it (momentum, L2) where one process does not";
  EXPECT_TRUE(net->parameters()[0].grad().defined());
}

TEST(DataParallel, CheckpointStopAndResumeGiveTheRunThatWasNeverStopped) {
  auto& w = world();
  // The same folder on both ranks (their parent is the same launcher process).
  const fs::path dir = fs::temp_directory_path() / ("libdl_test_dist_" + std::to_string(::getppid()));
  if (w.rank() == 0) fs::remove_all(dir);
  w.barrier();
  const auto data = quadrants(30, 2);
  auto o = options(true);
  o.mini_batch_size = 8;
  auto whole = small_net(/*batch_norm=*/true, 9);
  dl::train::Trainer t_whole(*whole, o);
  t_whole.fit(data);

  o.checkpoint_path = dir.string();
  o.max_epochs = 1;
  auto first = small_net(true, 9);
  dl::train::Trainer t_first(*first, o);
  t_first.fit(data);
  w.barrier();
  EXPECT_TRUE(fs::exists(dir / "checkpoint_epoch1.dlck"));

  o.max_epochs = 3;
  o.checkpoint_path.clear();
  auto resumed = small_net(true, 31);  // other initial weights: the checkpoint must replace them all
  dl::train::Trainer t_resumed(*resumed, o);
  t_resumed.load_checkpoint((dir / "checkpoint_epoch1.dlck").string());
  t_resumed.fit(data);
  const auto a = whole->state(), b = resumed->state();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(0, std::memcmp(a[i].second.raw_data(), b[i].second.raw_data(), a[i].second.nbytes()))
        << a[i].first << " on rank " << w.rank();
  // A checkpoint that one rank cannot read is an error on both.
  if (w.rank() == 1) fs::rename(dir / "checkpoint_epoch1.dlck", dir / "moved.dlck");
  w.barrier();
  try {
    t_resumed.load_checkpoint((dir / "checkpoint_epoch1.dlck").string());
    ADD_FAILURE() << "no error on rank " << w.rank();
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint_epoch1.dlck"), std::string::npos) << e.what();
  }
  w.barrier();
  if (w.rank() == 0) fs::remove_all(dir);
}

}  // namespace
