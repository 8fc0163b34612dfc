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

// Where the CPU has no AVX-512 BF16 a bf16 test cannot compute, and must not pass by skipping: it checks that
// a bf16 convolution is refused there, saying so, and returns true.
bool bf16_refused_here() {
  if (dl::cpu_bf16_available()) return false;
  dl::Autocast bf16(Precision::kBf16);
  EXPECT_THROW(dl::ops::conv2d(dl::Tensor::ones({1, 8, 4, 4}), dl::Tensor::ones({8, 8, 3, 3}), {}), dl::Error);
  return true;
}

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
  if (bf16_refused_here()) return;
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
  if (bf16_refused_here()) return;
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

// ---- Note [bf16 activations] (ops/precision.cpp): bfloat16 storage of activations on the CPU ----

// A small network's forward and backward: conv -> batch norm + ReLU -> max pool -> resize -> concat -> add
// -> ReLU -> conv -> cross-entropy, in `format`, the whole step under `precision`. Returns the loss, the
// dtypes of the activations along the way, and the gradients of x, both weights and gamma.
struct ChainRun {
  float loss;
  std::vector<dl::DType> dtypes;
  std::vector<std::vector<float>> grads;
};
ChainRun chain_step(Precision precision, dl::MemoryFormat format) {
  dl::Generator gen(21);
  dl::Tensor x = dl::ops::to_memory_format(dl::Tensor::randn({2, 8, 12, 10}, gen), format).set_requires_grad(true);
  dl::Tensor w1 = dl::ops::mul(dl::Tensor::randn({16, 8, 3, 3}, gen), 0.2).set_requires_grad(true);
  dl::Tensor w2 = dl::ops::mul(dl::Tensor::randn({5, 32, 3, 3}, gen), 0.1).set_requires_grad(true);
  dl::Tensor b1 = dl::Tensor::randn({16}, gen), b2 = dl::Tensor::randn({5}, gen);
  dl::Tensor gamma = dl::Tensor::uniform({16}, 0.5, 1.5, gen).set_requires_grad(true), beta = dl::Tensor::zeros({16});
  dl::Tensor rm = dl::Tensor::zeros({16}), rv = dl::Tensor::ones({16});
  std::vector<int32_t> lv(2 * 12 * 10);
  for (size_t i = 0; i < lv.size(); ++i) lv[i] = static_cast<int32_t>(i * 7 % 5);
  const dl::Tensor labels = dl::Tensor::from_vector<int32_t>({2, 12, 10}, lv);
  ChainRun run;
  dl::Tensor loss;
  {
    dl::Autocast cast(precision);
    const dl::Conv2dParams same{.padding = {1, 1}};
    const dl::Tensor y = dl::ops::conv2d(x, w1, b1, same);
    const dl::Tensor z = dl::ops::batch_norm(y, gamma, beta, rm, rv, {.relu = true});
    const dl::Tensor p = dl::ops::max_pool2d(z, {.kernel = {2, 2}, .stride = {2, 2}});
    const dl::Tensor r = dl::ops::resize_bilinear(p, 12, 10);
    const dl::Tensor c = dl::ops::concat({r, z});
    const dl::Tensor a = dl::ops::relu(dl::ops::add(c, c));
    const dl::Tensor out = dl::ops::conv2d(a, w2, b2, same);
    loss = dl::ops::cross_entropy(out, labels);
    for (const dl::Tensor* t : std::initializer_list<const dl::Tensor*>{&y, &z, &p, &r, &c, &a, &out, &loss})
      run.dtypes.push_back(t->dtype());
  }
  loss.backward();
  run.loss = loss.item<float>();
  for (const dl::Tensor* t : {&x, &w1, &w2, &gamma}) {
    EXPECT_EQ(t->grad().dtype(), dl::DType::kFloat32);  // the inputs' and the master weights' dtype
    run.grads.push_back(t->grad().to_vector_f32());
  }
  return run;
}

TEST(Bf16Activations, ConvolutionsWriteBf16AndTheNetworkKeepsIt) {
  if (bf16_refused_here()) return;
  for (const dl::MemoryFormat format : {dl::MemoryFormat::kContiguous, dl::MemoryFormat::kChannelsLast}) {
    const ChainRun ref = chain_step(Precision::kFp32, format), low = chain_step(Precision::kBf16, format);
    const std::string fmt = dl::memory_format_name(format);
    for (size_t i = 0; i + 1 < low.dtypes.size(); ++i) {
      EXPECT_EQ(ref.dtypes[i], dl::DType::kFloat32) << fmt << ", activation " << i;
      EXPECT_EQ(low.dtypes[i], dl::DType::kBFloat16) << fmt << ", activation " << i;
    }
    EXPECT_EQ(low.dtypes.back(), dl::DType::kFloat32) << "the loss";
    EXPECT_NEAR(low.loss, ref.loss, 2e-2 * std::fabs(ref.loss)) << fmt;
    // Each stage rounds to bf16 (2^-9): dw2 and dgamma stay within a few times the one-convolution bound.
    // dx and dw1 come through batch norm's backward, dx = k (dy - mean(dy) - x̂ mean(dy x̂)), whose result is
    // what is left of dy after the two projections are taken away: small beside dy, so dy's bf16 rounding
    // weighs ten times more relative to it (measured: 0.105 and 0.054 of the largest magnitude).
    const char* names[] = {"dx", "dw1", "dw2", "dgamma"};
    const double bound[] = {15 * kBf16Tolerance, 15 * kBf16Tolerance, 5 * kBf16Tolerance, 5 * kBf16Tolerance};
    for (size_t i = 0; i < ref.grads.size(); ++i) {
      const double err = rel_to_max(low.grads[i], ref.grads[i]);
      EXPECT_LE(err, bound[i]) << fmt << ", " << names[i];
      EXPECT_GT(err, kNotFp32) << fmt << ", " << names[i] << " is float32's: the bf16 path did not run";
    }
  }
}

// Batch norm on bfloat16 against batch norm on the same values in float32: y is float32's y rounded to bf16,
// the statistics and the parameters' gradients agree to float32 rounding, dx to bf16 rounding; both memory
// formats, with and without the fused ReLU, training and inference.
TEST(Bf16Activations, BatchNormMatchesFloat32OnTheSameValues) {
  dl::Generator gen(22);
  for (const dl::MemoryFormat format : {dl::MemoryFormat::kContiguous, dl::MemoryFormat::kChannelsLast})
    for (const bool relu : {false, true})
      for (const bool training : {true, false}) {
        const std::string what = std::string(dl::memory_format_name(format)) + (relu ? ", relu" : "") +
                                 (training ? ", training" : ", inference");
        const dl::Tensor x16 = dl::ops::to_memory_format(
            dl::ops::add(dl::ops::mul(dl::Tensor::randn({3, 6, 7, 5}, gen), 3.0), 2.0).to(dl::DType::kBFloat16),
            format);
        const dl::Tensor dy16 = dl::Tensor::randn({3, 6, 7, 5}, gen).to(dl::DType::kBFloat16);
        const dl::Tensor gamma0 = dl::Tensor::uniform({6}, 0.5, 1.5, gen), beta0 = dl::Tensor::randn({6}, gen);
        const dl::Tensor rv0 = dl::Tensor::uniform({6}, 5, 10, gen);
        struct Out {
          std::vector<float> y, dx, dgamma, dbeta, rm, rv;
          dl::DType y_dtype, dx_dtype;
        };
        auto run = [&](const dl::Tensor& x_in, const dl::Tensor& dy) {
          dl::Tensor x = x_in.detach();
          x.impl()->requires_grad = true;  // a bf16 leaf: set directly, as autograd does for an op's output
          dl::Tensor gamma = gamma0.clone().set_requires_grad(true), beta = beta0.clone().set_requires_grad(true);
          dl::Tensor rm = dl::Tensor::full({6}, 2.0), rv = rv0.clone();
          const dl::Tensor y = dl::ops::batch_norm(x, gamma, beta, rm, rv, {.training = training, .relu = relu});
          dl::ops::sum(dl::ops::mul(y, dy)).backward();
          return Out{y.to_vector_f32(),
                     x.grad().to_vector_f32(),
                     gamma.grad().to_vector_f32(),
                     beta.grad().to_vector_f32(),
                     rm.to_vector_f32(),
                     rv.to_vector_f32(),
                     y.dtype(),
                     x.grad().dtype()};
        };
        const Out low = run(x16, dy16), ref = run(x16.to(dl::DType::kFloat32), dy16.to(dl::DType::kFloat32));
        EXPECT_EQ(low.y_dtype, dl::DType::kBFloat16) << what;
        EXPECT_EQ(low.dx_dtype, dl::DType::kBFloat16) << what;
        for (size_t i = 0; i < ref.y.size(); ++i)
          ASSERT_NEAR(low.y[i], ref.y[i], std::ldexp(std::fabs(ref.y[i]), -8) + 1e-6) << what << ", y " << i;
        EXPECT_LE(rel_to_max(low.dx, ref.dx), 1e-2) << what;
        EXPECT_LE(rel_to_max(low.dgamma, ref.dgamma), 1e-4) << what;
        EXPECT_LE(rel_to_max(low.dbeta, ref.dbeta), 1e-4) << what;
        EXPECT_LE(rel_to_max(low.rm, ref.rm), 1e-5) << what;
        EXPECT_LE(rel_to_max(low.rv, ref.rv), 1e-5) << what;
      }
}

// Max pooling reads and writes bfloat16 itself: its maxima are the inputs, so they equal float32's on the
// same values exactly (ties and NaNs included), and so does the gradient where windows do not overlap
// (where they do, sums of bf16 values round to bf16).
TEST(Bf16Activations, MaxPoolingEqualsFloat32OnTheSameValues) {
  dl::Generator gen(24);
  dl::Tensor base = dl::Tensor::randn({2, 5, 8, 10}, gen);
  float* b = base.data<float>();
  b[3] = b[4];                                      // a tie
  b[17] = std::numeric_limits<float>::quiet_NaN();  // a NaN
  const dl::Tensor x16 = base.to(dl::DType::kBFloat16), dy_src = dl::Tensor::randn({2, 5, 8, 10}, gen);
  for (const dl::MemoryFormat format : {dl::MemoryFormat::kContiguous, dl::MemoryFormat::kChannelsLast})
    for (const dl::Pool2dParams& p : {dl::Pool2dParams{.kernel = {2, 2}, .stride = {2, 2}},
                                      dl::Pool2dParams{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}}) {
      auto run = [&](const dl::Tensor& x_in) {
        dl::Tensor x = dl::ops::to_memory_format(x_in, format).detach();
        x.impl()->requires_grad = true;
        const dl::Tensor y = dl::ops::max_pool2d(x, p);
        const dl::Tensor dy = dl::ops::slice(dl::ops::slice(dy_src, 2, 0, y.size(2)), 3, 0, y.size(3));
        dl::ops::sum(dl::ops::mul(y, dy.to(dl::DType::kBFloat16).to(x_in.dtype()))).backward();
        return std::pair{y, x.grad()};
      };
      const auto [y16, g16] = run(x16);
      const auto [y32, g32] = run(x16.to(dl::DType::kFloat32));
      const std::string what = std::string(dl::memory_format_name(format)) + ", kernel " + std::to_string(p.kernel[0]);
      EXPECT_EQ(y16.dtype(), dl::DType::kBFloat16) << what;
      EXPECT_EQ(g16.dtype(), dl::DType::kBFloat16) << what;
      const std::vector<float> a = y16.to_vector_f32(), e = y32.to_vector_f32();
      for (size_t i = 0; i < a.size(); ++i)
        ASSERT_TRUE(a[i] == e[i] || (std::isnan(a[i]) && std::isnan(e[i]))) << what << ", y " << i;
      const std::vector<float> ga = g16.to_vector_f32(), ge = g32.to_vector_f32();
      if (p.kernel[0] == 2)
        EXPECT_EQ(ga, ge) << what;  // each input in one window: the gradient is dy itself
      else
        EXPECT_LE(rel_to_max(ga, ge), kBf16Tolerance) << what;
    }
}

// A bf16 activation read by two consumers, one of which computes in float32 (nearest upsampling's expand
// sums its gradient back in float32): every gradient reaches it as bf16, so the two add up, and the ops
// without a bf16 body (comparisons, where, dropout) take it.
TEST(Bf16Activations, GradientsComeBackInTheActivationsDtype) {
  if (bf16_refused_here()) return;
  dl::Generator gen(25);
  const dl::Tensor x = dl::Tensor::randn({2, 3, 6, 5}, gen);
  const dl::Tensor w = dl::ops::mul(dl::Tensor::randn({4, 3, 3, 3}, gen), 0.3).set_requires_grad(true);
  auto run = [&](Precision precision) {
    w.impl()->grad = dl::Tensor();
    dl::Tensor loss;
    {
      dl::Autocast cast(precision);
      const dl::Tensor y = dl::ops::conv2d(x, w, {}, {.padding = {1, 1}});
      EXPECT_EQ(y.dtype(), precision == Precision::kBf16 ? dl::DType::kBFloat16 : dl::DType::kFloat32);
      const dl::Tensor up = dl::ops::upsample_nearest2d(y, 2, 2);
      const dl::Tensor kept = dl::ops::where(dl::ops::gt(y, 0.0), y, dl::ops::mul(y, 0.5));
      loss = dl::ops::add(dl::ops::mean(dl::ops::mul(up, up)), dl::ops::sum(dl::ops::dropout(kept, 0.0, true, gen)));
    }
    loss.backward();
    return w.grad().to_vector_f32();
  };
  const std::vector<float> ref = run(Precision::kFp32), low = run(Precision::kBf16);
  EXPECT_LE(rel_to_max(low, ref), kBf16Tolerance);
}

// What the backward keeps of a conv + batch norm + ReLU stack is bf16: the bytes in use after the forward
// (the graph's saved activations) are well under those of the float32 forward.
TEST(Bf16Activations, TheGraphKeepsHalfTheBytes) {
  if (bf16_refused_here()) return;
  dl::Generator gen(23);
  const dl::Tensor x = dl::Tensor::randn({4, 32, 32, 32}, gen);
  std::vector<dl::Tensor> ws, gammas, rms, rvs;
  for (int i = 0; i < 4; ++i) {
    ws.push_back(dl::ops::mul(dl::Tensor::randn({32, 32, 3, 3}, gen), 0.1).set_requires_grad(true));
    gammas.push_back(dl::Tensor::ones({32}).set_requires_grad(true));
    rms.push_back(dl::Tensor::zeros({32}));
    rvs.push_back(dl::Tensor::ones({32}));
  }
  auto kept = [&](Precision precision) {
    auto& alloc = dl::CpuAllocator::instance();
    const int64_t before = alloc.stats().current_bytes;
    dl::Tensor h = x;
    {
      dl::Autocast cast(precision);
      for (int i = 0; i < 4; ++i)
        h = dl::ops::batch_norm(dl::ops::conv2d(h, ws[i], {}, {.padding = {1, 1}}), gammas[i], dl::Tensor::zeros({32}),
                                rms[i], rvs[i], {.relu = true});
    }
    const int64_t bytes = alloc.stats().current_bytes - before;
    dl::ops::sum(h).backward();
    return bytes;
  };
  const int64_t fp32 = kept(Precision::kFp32), bf16 = kept(Precision::kBf16);
  EXPECT_GT(fp32, 4 * 2 * 4 * 32 * 32 * 32 * 4);  // at least each layer's conv output and batch norm output
  EXPECT_LT(bf16, 0.6 * static_cast<double>(fp32)) << bf16 << " bytes against " << fp32;
}

}  // namespace
