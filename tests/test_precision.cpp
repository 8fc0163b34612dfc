// The precision policy (dl/core/precision.h) on the CPU: names, the scoped Autocast, bf16 convolution
// through oneDNN against float32 within the documented tolerance (and visibly not float32), a backward
// that runs in its forward's precision, float64 untouched, and the errors where the CPU cannot.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <thread>
#include <tuple>

#include "backend/cpu/conv2d_onednn.h"
#include "dl/dl.h"

namespace {

using dl::Precision;

// max |a - b| / max |b|: the error relative to the scale of the reference.
double rel_to_max(const std::vector<float>& a, const std::vector<float>& b) {
  double scale = 1e-30, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
  }
  return diff / scale;
}

// Note [bf16 tolerance]: bf16 keeps 8 significant bits (a relative rounding of at most 2^-9 per
// operand); with float32 accumulation a convolution's outputs and gradients then differ from float32
// by about 2^-8 of their scale. The parity bound is 1e-2 of the largest magnitude, and the results
// must differ from float32 by more than 1e-5 (float32 itself agrees to ~1e-6), so that a path that
// quietly stayed in float32 fails.
constexpr double kBf16Tolerance = 1e-2;
constexpr double kNotFp32 = 1e-5;

TEST(Precision, NamesParseAndRoundTrip) {
  for (const auto& [p, name] : dl::kPrecisionNames) {
    EXPECT_EQ(dl::precision_name(p), name);
    EXPECT_EQ(dl::parse_precision(name), p);
  }
  try {
    dl::parse_precision("half");
    FAIL() << "parse_precision accepted 'half'";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected fp32, tf32, bf16 or fp16, got 'half'"), std::string::npos)
        << e.what();
  }
}

TEST(Precision, AutocastNestsAndRestoresPerThread) {
  EXPECT_EQ(dl::autocast_precision(), Precision::kFp32);
  {
    dl::Autocast a(Precision::kBf16);
    EXPECT_EQ(dl::autocast_precision(), Precision::kBf16);
    {
      dl::Autocast b(Precision::kFp32);
      EXPECT_EQ(dl::autocast_precision(), Precision::kFp32);
    }
    EXPECT_EQ(dl::autocast_precision(), Precision::kBf16);
    Precision other = Precision::kBf16;
    std::thread([&] { other = dl::autocast_precision(); }).join();
    EXPECT_EQ(other, Precision::kFp32);  // a setting of this thread only
  }
  EXPECT_EQ(dl::autocast_precision(), Precision::kFp32);
  EXPECT_THROW(dl::Autocast(static_cast<Precision>(9)), dl::Error);
}

TEST(Precision, Fp16OnTheCpuIsAnErrorThatSaysSo) {
  dl::Generator gen(1);
  const dl::Tensor x = dl::Tensor::randn({1, 8, 6, 6}, gen), w = dl::Tensor::randn({8, 8, 3, 3}, gen);
  dl::Autocast fp16(Precision::kFp16);
  try {
    dl::ops::conv2d(x, w, {});
    FAIL() << "fp16 convolution ran on the CPU";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv2d: fp16 runs on a GPU only"), std::string::npos) << e.what();
  }
}

TEST(Precision, Tf32IsFloat32OnTheCpu) {
  dl::Generator gen(2);
  const dl::Tensor x = dl::Tensor::randn({2, 8, 9, 9}, gen), w = dl::Tensor::randn({8, 8, 3, 3}, gen);
  const auto fp32 = dl::ops::conv2d(x, w, {}).to_vector_f32();
  dl::Autocast tf32(Precision::kTf32);
  EXPECT_EQ(dl::ops::conv2d(x, w, {}).to_vector_f32(), fp32);
}

struct Grads {
  std::vector<float> y, gx, gw, gb;
};

// conv2d forward and backward (loss = sum(y * r)) with the forward under `forward` and the backward
// under `backward`.
Grads conv_step(const dl::Tensor& x0, const dl::Tensor& w0, const dl::Tensor& b0, const dl::Tensor& r,
                const dl::Conv2dParams& p, Precision forward, Precision backward) {
  dl::Tensor x = x0.detach(), w = w0.detach(), b = b0.detach();
  x.set_requires_grad(true), w.set_requires_grad(true), b.set_requires_grad(true);
  dl::Tensor loss;
  {
    dl::Autocast a(forward);
    loss = dl::ops::sum(dl::ops::mul(dl::ops::conv2d(x, w, b, p), r));
  }
  const auto y = [&] {
    dl::autograd::NoGradGuard ng;
    dl::Autocast a(forward);
    return dl::ops::conv2d(x0, w0, b0, p).to_vector_f32();
  }();
  {
    dl::Autocast a(backward);
    loss.backward();
  }
  return {y, x.grad().to_vector_f32(), w.grad().to_vector_f32(), b.grad().to_vector_f32()};
}

TEST(Precision, Bf16ConvolutionMatchesFloat32WithinTheDocumentedTolerance) {
  dl::Generator gen(3);
  const dl::Conv2dParams p{.stride = {1, 2}, .padding = {2, 2}, .dilation = {2, 2}};
  const dl::Tensor x = dl::Tensor::randn({2, 16, 21, 19}, gen), w = dl::Tensor::randn({24, 16, 3, 3}, gen);
  const dl::Tensor b = dl::Tensor::randn({24}, gen);
  const dl::Conv2dGeometry g = dl::ops::conv2d_geometry(x.shape(), w.shape(), p);
  const dl::Tensor r = dl::Tensor::randn({2, 24, g.ho, g.wo}, gen);
  if (!dl::cpu_bf16_available()) {
    // Not a skip: where the CPU cannot, asking for bf16 must fail and say why.
    dl::Autocast bf16(Precision::kBf16);
    EXPECT_THROW(dl::ops::conv2d(x, w, b, p), dl::Error);
    return;
  }
  const Grads ref = conv_step(x, w, b, r, p, Precision::kFp32, Precision::kFp32);
  const Grads low = conv_step(x, w, b, r, p, Precision::kBf16, Precision::kFp32);
  for (const auto& [name, a, e] :
       {std::tuple{"y", &low.y, &ref.y}, std::tuple{"dx", &low.gx, &ref.gx}, std::tuple{"dw", &low.gw, &ref.gw}}) {
    const double err = rel_to_max(*a, *e);
    EXPECT_LE(err, kBf16Tolerance) << name;
    EXPECT_GT(err, kNotFp32) << name << " is float32's result: the bf16 path did not run";
  }
  // The bias gradient sums the bf16-rounded dy (in float32), as oneDNN does.
  EXPECT_LE(rel_to_max(low.gb, ref.gb), kBf16Tolerance);
}

TEST(Precision, BackwardRunsInItsForwardsPrecision) {
  if (!dl::cpu_bf16_available()) GTEST_SKIP() << "no bf16 on this CPU (the test above checks the error)";
  dl::Generator gen(4);
  const dl::Conv2dParams p{.padding = {1, 1}};
  const dl::Tensor x = dl::Tensor::randn({2, 8, 12, 12}, gen), w = dl::Tensor::randn({16, 8, 3, 3}, gen);
  const dl::Tensor b = dl::Tensor::randn({16}, gen), r = dl::Tensor::randn({2, 16, 12, 12}, gen);
  const Grads inside = conv_step(x, w, b, r, p, Precision::kBf16, Precision::kBf16);
  const Grads outside = conv_step(x, w, b, r, p, Precision::kBf16, Precision::kFp32);
  const Grads fp32_fwd = conv_step(x, w, b, r, p, Precision::kFp32, Precision::kBf16);
  const Grads fp32 = conv_step(x, w, b, r, p, Precision::kFp32, Precision::kFp32);
  EXPECT_EQ(inside.gx, outside.gx);
  EXPECT_EQ(inside.gw, outside.gw);
  EXPECT_EQ(fp32_fwd.gx, fp32.gx);  // an autocast around backward() alone changes nothing
  EXPECT_EQ(fp32_fwd.gw, fp32.gw);
  EXPECT_GT(rel_to_max(inside.gx, fp32.gx), kNotFp32);
}

TEST(Precision, Float64IgnoresAutocast) {
  dl::Generator gen(5);
  const dl::Tensor x = dl::Tensor::randn({1, 8, 10, 10}, gen).to(dl::DType::kFloat64);
  const dl::Tensor w = dl::Tensor::randn({8, 8, 3, 3}, gen).to(dl::DType::kFloat64);
  const auto ref = dl::ops::conv2d(x, w, {}).to_vector_f32();
  for (const auto& [p, name] : dl::kPrecisionNames) {
    dl::Autocast a(p);
    EXPECT_EQ(dl::ops::conv2d(x, w, {}).to_vector_f32(), ref) << name;
  }
}

TEST(Precision, Bf16OneDnnKernelsWriteEveryOutput) {
  // The backend itself, outputs pre-filled with NaN: a bf16 primitive that leaves anything unwritten fails.
  if (!dl::cpu_bf16_available()) GTEST_SKIP() << "no bf16 on this CPU (the op test above checks the error)";
  dl::Generator gen(6);
  dl::Conv2dGeometry g = dl::ops::conv2d_geometry({2, 12, 15, 17}, {20, 3, 3, 3}, {.padding = {1, 1}, .groups = 4});
  g.math = Precision::kBf16;
  const auto x = dl::Tensor::randn({2, 12, 15, 17}, gen).to_vector_f32();
  const auto w = dl::Tensor::randn({20, 3, 3, 3}, gen).to_vector_f32();
  const auto b = dl::Tensor::randn({20}, gen).to_vector_f32();
  const auto dy = dl::Tensor::randn({2, 20, g.ho, g.wo}, gen).to_vector_f32();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> y(dy.size(), nan), dx(x.size(), nan), dw(w.size(), nan), db(b.size(), nan);
  ASSERT_TRUE(dl::cpu::onednn_conv2d_forward(g, x.data(), w.data(), b.data(), y.data()));
  ASSERT_TRUE(dl::cpu::onednn_conv2d_backward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data()));
  for (const auto* v : {&y, &dx, &dw, &db})
    for (float f : *v) ASSERT_TRUE(std::isfinite(f));
  // Against the float32 primitives of the same geometry.
  dl::Conv2dGeometry g32 = g;
  g32.math = Precision::kFp32;
  std::vector<float> y32(y.size(), nan), dx32(x.size(), nan), dw32(w.size(), nan), db32(b.size(), nan);
  ASSERT_TRUE(dl::cpu::onednn_conv2d_forward(g32, x.data(), w.data(), b.data(), y32.data()));
  ASSERT_TRUE(
      dl::cpu::onednn_conv2d_backward(g32, x.data(), w.data(), dy.data(), dx32.data(), dw32.data(), db32.data()));
  EXPECT_LE(rel_to_max(y, y32), kBf16Tolerance);
  EXPECT_LE(rel_to_max(dx, dx32), kBf16Tolerance);
  EXPECT_LE(rel_to_max(dw, dw32), kBf16Tolerance);
  EXPECT_LE(rel_to_max(db, db32), kBf16Tolerance);
}

TEST(Precision, TrainerRefusesWhatTheCpuCannot) {
  dl::Generator gen(7);
  dl::nn::MnistCnn model({}, gen);
  dl::train::TrainingOptions o;
  o.precision = Precision::kFp16;
  try {
    dl::train::Trainer t(model, o);
    FAIL() << "the Trainer accepted fp16 on the CPU";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("fp16 runs on a GPU only"), std::string::npos) << e.what();
  }
  o.precision = Precision::kBf16;
  if (dl::cpu_bf16_available()) {
    EXPECT_NO_THROW(dl::train::Trainer(model, o));
  } else {
    EXPECT_THROW(dl::train::Trainer(model, o), dl::Error);
  }
}

TEST(Precision, PrecisionFlagParses) {
  dl::train::TrainingOptions o;
  dl::train::Flags f("prog", "test");
  dl::train::add_training_flags(f, o);
  const char* argv[] = {"prog", "--precision", "bf16"};
  ASSERT_TRUE(f.parse(3, const_cast<char**>(argv)));
  EXPECT_EQ(o.precision, Precision::kBf16);
  const char* bad[] = {"prog", "--precision=fp8"};
  EXPECT_THROW(f.parse(2, const_cast<char**>(bad)), dl::Error);
}

}  // namespace

namespace {

// A tiny MNIST-shaped data set (random images, labels 0..9).
std::shared_ptr<dl::data::TensorDataset> tiny_set(int64_t n, uint64_t seed) {
  dl::Generator gen(seed);
  std::vector<int32_t> labels(static_cast<size_t>(n));
  for (auto& l : labels) l = static_cast<int32_t>(gen.below(10));
  return std::make_shared<dl::data::TensorDataset>(dl::Tensor::uniform({n, 1, 28, 28}, 0.0, 1.0, gen),
                                                   dl::Tensor::from_vector<int32_t>({n}, labels));
}

dl::train::TrainingOptions tiny_options() {
  dl::train::TrainingOptions o;
  o.solver = dl::train::Solver::kAdam;
  o.max_epochs = 1;
  o.mini_batch_size = 16;
  o.verbose = false;
  o.shuffle = dl::train::Shuffle::kNever;
  return o;
}

TEST(LossScaling, AnOverflowingStepChangesNoWeightAndTheScaleBacksOff) {
  dl::Generator gen(11);
  dl::nn::MnistCnn model({.filters = {4, 8}}, gen);
  std::vector<std::vector<float>> before;
  for (auto& p : model.parameter_refs()) before.push_back(p.tensor.to_vector_f32());
  dl::train::TrainingOptions o = tiny_options();
  o.loss_scaling = true;
  o.loss_scaler.initial_scale = 1e300;  // the scaled float32 loss is inf: every gradient overflows
  dl::train::Trainer t(model, o);
  const dl::train::TrainingReport r = t.fit(tiny_set(16, 3));  // one step
  EXPECT_EQ(r.iterations, 1);
  EXPECT_EQ(r.skipped_steps, 1);
  EXPECT_EQ(r.loss_scale, 0.5e300);
  size_t i = 0;
  for (auto& p : model.parameter_refs()) EXPECT_EQ(p.tensor.to_vector_f32(), before[i++]) << p.name;
  // The optimiser took no step either: its state is as new.
  EXPECT_EQ(t.optimizer().steps(), 0);
}

TEST(LossScaling, CleanStepsTrainAsWithoutScalingAndTheScaleGrows) {
  dl::train::TrainingOptions o = tiny_options();
  dl::Generator g1(12), g2(12);
  dl::nn::MnistCnn plain({.filters = {4, 8}}, g1), scaled({.filters = {4, 8}}, g2);
  dl::train::Trainer(plain, o).fit(tiny_set(64, 4));
  o.loss_scaling = true;
  o.loss_scaler.initial_scale = 1024;  // a power of two: scaling and unscaling are exact in float
  o.loss_scaler.growth_interval = 3;
  dl::train::Trainer t(scaled, o);
  const dl::train::TrainingReport r = t.fit(tiny_set(64, 4));  // four steps: one growth
  EXPECT_EQ(r.skipped_steps, 0);
  EXPECT_EQ(r.loss_scale, 2048);
  auto a = plain.parameter_refs(), b = scaled.parameter_refs();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_LE(rel_to_max(b[i].tensor.to_vector_f32(), a[i].tensor.to_vector_f32()), 1e-5) << a[i].name;
}

TEST(LossScaling, TheScaleResumesFromACheckpointExactly) {
  // Two epochs of four steps, growing every three: a run stopped after the first epoch and resumed ends
  // with the scale, growth count and weights of the run that never stopped.
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("libdl_test_" + std::to_string(::getpid()) + "_loss_scale");
  fs::remove_all(dir);
  dl::train::TrainingOptions o = tiny_options();
  o.loss_scaling = true;
  o.loss_scaler.initial_scale = 3.0 * (1 << 20);  // 17 significant digits are needed to write its growth exactly
  o.loss_scaler.growth_factor = 1.5;
  o.loss_scaler.growth_interval = 3;
  o.max_epochs = 2;
  const auto data = tiny_set(64, 5);
  dl::Generator g1(13), g2(13);
  dl::nn::MnistCnn whole({.filters = {4, 8}}, g1), resumed({.filters = {4, 8}}, g2);
  const dl::train::TrainingReport full = dl::train::Trainer(whole, o).fit(data);

  o.max_epochs = 1;
  o.checkpoint_path = dir.string();
  dl::train::Trainer(resumed, o).fit(data);
  o.max_epochs = 2;
  o.checkpoint_path.clear();
  dl::train::Trainer t(resumed, o);
  t.load_checkpoint((dir / "checkpoint_epoch1.dlck").string());
  const dl::train::TrainingReport rest = t.fit(data);
  fs::remove_all(dir);
  EXPECT_EQ(full.loss_scale, 3.0 * (1 << 20) * 1.5 * 1.5);  // grown after steps 3 and 6
  EXPECT_EQ(rest.loss_scale, full.loss_scale);
  EXPECT_EQ(rest.skipped_steps, full.skipped_steps);
  auto a = whole.parameter_refs(), b = resumed.parameter_refs();
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(b[i].tensor.to_vector_f32(), a[i].tensor.to_vector_f32()) << a[i].name;
}

TEST(LossScaling, ScalerRulesAndRefusals) {
  dl::optim::LossScaler s({.initial_scale = 8, .growth_factor = 2, .backoff_factor = 0.25, .growth_interval = 2});
  s.update(false);
  EXPECT_EQ(s.scale_value(), 8);
  s.update(false);
  EXPECT_EQ(s.scale_value(), 16);
  s.update(false);
  s.update(true);  // an overflow resets the run of clean steps
  EXPECT_EQ(s.scale_value(), 4);
  EXPECT_EQ(s.growth_tracker(), 0);
  EXPECT_EQ(s.skipped_steps(), 1);
  EXPECT_THROW(dl::optim::LossScaler({.initial_scale = 0}), dl::Error);
  EXPECT_THROW(dl::optim::LossScaler({.backoff_factor = 1}), dl::Error);
  EXPECT_THROW(s.set_state(std::nan(""), 0, 0), dl::Error);
}

}  // namespace
