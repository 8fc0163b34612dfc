// Channels-last tensors (issue 11, item 2; Note [memory format] in dl/core/tensor.h): the format itself
// (storage order, canonical formats, what keeps it and what refuses it), every op that takes it against
// the same op on NCHW (values, gradients, the formats that come out), gradient checks in float64 through
// the NHWC loops, and a whole DeepLabv3+ step in both formats.
#include <dl/dl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "gradcheck.h"

namespace {

using dl::DType;
using dl::MemoryFormat;
using dl::Shape;
using dl::Tensor;
using dl::testing::gradcheck;
namespace ops = dl::ops;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dl::Error& e) {
    return e.what();
  }
  return "";
}
#define EXPECT_CONTAINS(text, needle) EXPECT_NE(std::string(text).find(needle), std::string::npos) << (text)

// The largest difference between two tensors of one shape, read in their logical order.
double max_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const std::vector<float> x = a.to_vector_f32(), y = b.to_vector_f32();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(static_cast<double>(x[i]) - y[i]));
  return m;
}

TEST(MemoryFormat, StorageOrderAndCanonicalFormats) {
  std::vector<float> v(2 * 3 * 2 * 2);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  const Tensor x = Tensor::from_vector<float>({2, 3, 2, 2}, v);
  const Tensor cl = x.to(MemoryFormat::kChannelsLast);
  EXPECT_TRUE(cl.is_channels_last());
  EXPECT_EQ(cl.shape(), (Shape{2, 3, 2, 2}));
  // Storage order N H W C: element (n, c, h, w) at ((n H + h) W + w) C + c.
  const float* p = cl.data<float>(MemoryFormat::kChannelsLast);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t w = 0; w < 2; ++w)
          EXPECT_EQ(p[((n * 2 + h) * 2 + w) * 3 + c], v[static_cast<size_t>(((n * 3 + c) * 2 + h) * 2 + w)]);
  EXPECT_EQ(cl.to_vector_f32(), v);  // read back in the logical order
  EXPECT_EQ(ops::contiguous(ops::channels_last(x)).to_vector_f32(), v);
  EXPECT_EQ(cl.storage_order_view().shape(), (Shape{2, 2, 2, 3}));
  // Where both orders coincide a tensor stays contiguous.
  EXPECT_FALSE(Tensor::zeros({2, 1, 4, 4}).to(MemoryFormat::kChannelsLast).is_channels_last());
  EXPECT_FALSE(ops::channels_last(Tensor::zeros({2, 8, 1, 1})).is_channels_last());
  // Copies keep the format; a copy across formats reorders.
  EXPECT_TRUE(cl.clone().is_channels_last());
  EXPECT_TRUE(cl.to(DType::kFloat64).is_channels_last());
  EXPECT_EQ(cl.to(DType::kFloat64).to_vector_f32(), v);
  EXPECT_TRUE(cl.slice(1, 2).is_channels_last());
  EXPECT_EQ(cl.slice(1, 2).to_vector_f32(), std::vector<float>(v.begin() + 12, v.end()));
  Tensor into = Tensor::zeros({2, 3, 2, 2});
  into.copy_(cl);
  EXPECT_EQ(into.to_vector_f32(), v);
}

TEST(MemoryFormat, CodeThatReadsNchwRefusesChannelsLast) {
  const Tensor cl = ops::channels_last(Tensor::randn({2, 3, 4, 4}));
  EXPECT_CONTAINS(error_of([&] { cl.data<float>(); }), "channels-last");
  EXPECT_CONTAINS(error_of([&] { cl.view({2, 48}); }), "channels-last");
  EXPECT_CONTAINS(error_of([&] { Tensor::randn({2, 3}).to(MemoryFormat::kChannelsLast); }), "4-D");
  EXPECT_CONTAINS(error_of([&] {
                    Tensor::randn({2, 3, 4, 4}).data<float>(MemoryFormat::kChannelsLast);
                  }),
                  "expected a channels-last");
  // A reshape reads the logical order.
  EXPECT_EQ(ops::flatten(cl).to_vector_f32(), ops::flatten(ops::contiguous(cl)).to_vector_f32());
}

// Runs f on x (NCHW) and on x channels-last, with a random upstream gradient, and compares outputs and
// input gradients; `want_cl` is whether the output must come out channels-last.
void check_op(const std::string& name, const std::function<Tensor(const Tensor&)>& f, const Tensor& x0, bool want_cl,
              double tol) {
  SCOPED_TRACE(name);
  Tensor a = x0.clone().set_requires_grad(true);
  Tensor b = ops::channels_last(x0).detach().set_requires_grad(true);
  ASSERT_TRUE(b.is_channels_last());
  const Tensor ya = f(a), yb = f(b);
  EXPECT_EQ(yb.is_channels_last(), want_cl);
  EXPECT_LE(max_diff(ya, yb), tol);
  const Tensor up = Tensor::randn(ya.shape(), dl::default_generator(), ya.dtype());
  ops::sum(ops::mul(ya, up)).backward();
  ops::sum(ops::mul(yb, up.dim() == 4 ? ops::channels_last(up) : up)).backward();
  ASSERT_TRUE(a.grad().defined() && b.grad().defined());
  EXPECT_TRUE(b.grad().is_channels_last());  // gradients come back in the input's format
  EXPECT_LE(max_diff(a.grad(), b.grad()), tol);
}

TEST(MemoryFormat, OpsAgreeWithNchw) {
  dl::manual_seed(7);
  const Tensor x = Tensor::randn({2, 16, 9, 11});
  const Tensor w = Tensor::randn({24, 16, 3, 3}), bias = Tensor::randn({24});
  const Tensor gamma = Tensor::uniform({16}, 0.5, 1.5), beta = Tensor::randn({16});
  for (const dl::Precision precision : {dl::Precision::kFp32, dl::Precision::kBf16}) {
    if (precision == dl::Precision::kBf16 && !dl::cpu_bf16_available()) continue;
    dl::Autocast autocast(precision);
    const double tol = precision == dl::Precision::kBf16 ? 2e-2 : 1e-4;
    dl::Conv2dParams dilated;
    dilated.padding = {2, 2};
    dilated.dilation = {2, 2};
    check_op(
        "conv2d", [&](const Tensor& t) { return ops::conv2d(t, w, bias, dilated); }, x, true, tol * 10);
  }
  dl::Conv2dParams strided;
  strided.stride = {2, 2};
  check_op(
      "conv2d strided, no bias", [&](const Tensor& t) { return ops::conv2d(t, w, Tensor(), strided); }, x, true, 1e-4);
  // Few input channels: the im2col engine, in NCHW between reorders.
  const Tensor w3 = Tensor::randn({8, 3, 3, 3});
  check_op(
      "conv2d 3 channels", [&](const Tensor& t) { return ops::conv2d(t, w3, Tensor(), {}); },
      Tensor::randn({2, 3, 9, 11}), true, 1e-4);
  for (const bool relu : {false, true})
    for (const bool training : {true, false}) {
      Tensor rm = Tensor::zeros({16}), rv = Tensor::ones({16});
      ops::BatchNormOptions o;
      o.relu = relu;
      o.training = training;
      check_op(
          std::string("batch_norm") + (relu ? "+relu" : "") + (training ? " train" : " infer"),
          [&](const Tensor& t) { return ops::batch_norm(t, gamma, beta, rm, rv, o); }, x, true, 1e-4);
    }
  check_op(
      "relu", [](const Tensor& t) { return ops::relu(t); }, x, true, 0);
  check_op(
      "sigmoid", [](const Tensor& t) { return ops::sigmoid(t); }, x, true, 0);
  check_op(
      "add same format", [](const Tensor& t) { return ops::add(t, ops::mul(t, 2.0)); }, x, true, 0);
  check_op(
      "mul by a channel vector",
      [](const Tensor& t) {
        return ops::mul(t, Tensor::ones({16, 1, 1}));
      },
      x, true, 0);
  check_op(
      "max_pool2d 3x3/2/1",
      [](const Tensor& t) {
        return ops::max_pool2d(t, {{3, 3}, {2, 2}, {1, 1}});
      },
      x, true, 0);
  check_op(
      "max_pool2d 2x2", [](const Tensor& t) { return ops::max_pool2d(t); }, x, true, 0);
  check_op(
      "avg_pool2d", [](const Tensor& t) { return ops::avg_pool2d(t); }, x, true, 1e-6);
  check_op(
      "global_avg_pool2d", [](const Tensor& t) { return ops::global_avg_pool2d(t); }, x, false, 1e-6);
  check_op(
      "resize_bilinear up", [](const Tensor& t) { return ops::resize_bilinear(t, 20, 31); }, x, true, 1e-5);
  check_op(
      "resize_bilinear down", [](const Tensor& t) { return ops::resize_bilinear(t, 4, 3); }, x, true, 1e-5);
  check_op(
      "concat with NCHW and one-channel tensors",
      [](const Tensor& t) {
        return ops::concat({t, Tensor::ones({2, 5, 9, 11}), Tensor::zeros({2, 1, 9, 11}), ops::relu(t)});
      },
      x, true, 0);
  const Tensor labels = Tensor::from_vector<int32_t>({2, 9, 11}, std::vector<int32_t>(2 * 9 * 11, 3));
  check_op(
      "cross_entropy", [&](const Tensor& t) { return ops::cross_entropy(t, labels); }, x, false, 1e-5);
  check_op(
      "softmax", [](const Tensor& t) { return ops::softmax(t); }, x, false, 1e-6);
  // Dropout draws its mask over the storage order: another mask than NCHW's, the same for x and its gradient.
  Tensor xd = ops::channels_last(x).detach().set_requires_grad(true);
  dl::Generator gen(4);
  const Tensor yd = ops::dropout(xd, 0.5, true, gen);
  EXPECT_TRUE(yd.is_channels_last());
  ops::sum(yd).backward();
  const std::vector<float> yv = yd.to_vector_f32(), gv = xd.grad().to_vector_f32(), xv = x.to_vector_f32();
  for (size_t i = 0; i < yv.size(); ++i) EXPECT_EQ(yv[i], gv[i] * xv[i]) << i;  // kept: y = 2 x, grad 2
}

TEST(MemoryFormat, MaxPoolNaNAndTiesInChannelsLast) {
  // The NHWC loop keeps the NCHW rules: the first of equal maxima, a NaN wins.
  std::vector<float> v(1 * 2 * 2 * 2, 5.0f);
  v[5] = std::nanf("");  // channel 1, (0, 1)
  Tensor x = ops::channels_last(Tensor::from_vector<float>({1, 2, 2, 2}, v)).detach().set_requires_grad(true);
  Tensor y = ops::max_pool2d(x);
  const std::vector<float> out = y.to_vector_f32();
  EXPECT_EQ(out[0], 5.0f);
  EXPECT_TRUE(std::isnan(out[1]));
  ops::sum(y).backward();
  EXPECT_EQ(x.grad().to_vector_f32(), (std::vector<float>{1, 0, 0, 0, 0, 1, 0, 0}));
}

// float64 gradient checks through the NHWC loops: batch norm (train and inference, with ReLU), max and
// bilinear resize, concatenation and the im2col convolution between reorders.
TEST(MemoryFormat, GradientsInFloat64) {
  dl::manual_seed(3);
  const Tensor x = Tensor::randn({2, 3, 5, 4}, dl::default_generator(), DType::kFloat64);
  const Tensor gamma = Tensor::uniform({3}, 0.5, 1.5, dl::default_generator(), DType::kFloat64);
  const Tensor beta = Tensor::randn({3}, dl::default_generator(), DType::kFloat64);
  const Tensor w = Tensor::randn({4, 3, 3, 3}, dl::default_generator(), DType::kFloat64);
  for (const bool training : {true, false}) {
    SCOPED_TRACE(training ? "training" : "inference");
    const auto f = [&](const std::vector<Tensor>& in) {
      Tensor rm = Tensor::zeros({3}, DType::kFloat64), rv = Tensor::ones({3}, DType::kFloat64);
      ops::BatchNormOptions o;
      o.training = training;
      o.relu = true;
      Tensor h = ops::batch_norm(ops::channels_last(in[0]), in[1], in[2], rm, rv, o);
      EXPECT_TRUE(h.is_channels_last());
      h = ops::max_pool2d(h, {{3, 3}, {2, 2}, {1, 1}});
      h = ops::concat({ops::resize_bilinear(h, 6, 5), ops::channels_last(ops::resize_bilinear(in[0], 6, 5))});
      h = ops::conv2d(h, ops::concat({in[3], in[3]}, 1), Tensor(), {});
      EXPECT_TRUE(h.is_channels_last());
      return ops::sum(ops::mul(h, h));
    };
    EXPECT_TRUE(gradcheck(f, {x, gamma, beta, w}));
  }
}

// Every parameter and buffer of m converted to float64 in place (the handles the layers hold follow).
void to_float64(dl::nn::Module& m) {
  for (const auto& [name, t] : m.state()) {
    const Tensor d = t.to(DType::kFloat64);
    t.impl()->storage = d.impl()->storage;
    t.impl()->offset = d.impl()->offset;
    t.impl()->dtype = DType::kFloat64;
  }
}

// A whole DeepLabv3+ training step: channels-last input against NCHW, the loss and every parameter's
// gradient (which stays in the parameter's own format, NCHW). In float64 (the im2col convolution between
// reorders, every other op in NHWC) the two agree to rounding; in float32 (oneDNN's NHWC convolutions) to
// what float32 sums in another order (batch norm's statistics across rows, not planes) leave after being
// carried back through 30 layers.
TEST(MemoryFormat, DeepLabStepMatchesNchw) {
  for (const DType dtype : {DType::kFloat64, DType::kFloat32}) {
    SCOPED_TRACE(dl::dtype_name(dtype));
    dl::nn::DeepLabV3PlusOptions o;
    o.num_classes = 5;
    dl::manual_seed(11);
    dl::nn::DeepLabV3Plus a(o);
    dl::manual_seed(11);
    dl::nn::DeepLabV3Plus b(o);
    if (dtype == DType::kFloat64) to_float64(a), to_float64(b);
    const Tensor x = Tensor::randn({2, 3, 48, 64}, dl::default_generator(), dtype);
    std::vector<int32_t> lv(2 * 48 * 64);
    for (size_t i = 0; i < lv.size(); ++i) lv[i] = static_cast<int32_t>(i * 7 % 5);
    const Tensor labels = Tensor::from_vector<int32_t>({2, 48, 64}, lv);
    const Tensor la = ops::cross_entropy(a(x), labels);
    const Tensor yb = b(ops::channels_last(x));
    EXPECT_TRUE(yb.is_channels_last());
    const Tensor lb = ops::cross_entropy(yb, labels);
    const double tol = dtype == DType::kFloat64 ? 1e-10 : 1e-2;
    EXPECT_NEAR(la.item<double>(), lb.item<double>(), tol * std::abs(la.item<double>()));
    la.backward();
    lb.backward();
    const auto pa = a.named_parameters(), pb = b.named_parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (size_t i = 0; i < pa.size(); ++i) {
      SCOPED_TRACE(pa[i].first);
      const Tensor ga = pa[i].second.grad(), gb = pb[i].second.grad();
      ASSERT_TRUE(ga.defined() && gb.defined());
      EXPECT_FALSE(gb.is_channels_last());
      double num = 0, den = 0;
      const std::vector<float> va = ga.to(DType::kFloat32).to_vector_f32(), vb = gb.to(DType::kFloat32).to_vector_f32();
      for (size_t k = 0; k < va.size(); ++k) num += (va[k] - vb[k]) * (va[k] - vb[k]), den += va[k] * va[k];
      EXPECT_LE(std::sqrt(num), std::max(tol, 1e-6) * std::sqrt(den) + 1e-7);
    }
  }
}

// Module::to(MemoryFormat): every layer takes its input channels-last, so an NCHW input gives the model's
// channels-last output, equal to the NCHW model's; clone() keeps the format.
TEST(MemoryFormat, ModuleToChannelsLast) {
  dl::manual_seed(5);
  dl::nn::Sequential a;
  a.add("conv", std::make_shared<dl::nn::Conv2d>(dl::nn::Conv2dOptions{.in_channels = 8, .out_channels = 16}));
  a.add("bn", std::make_shared<dl::nn::BatchNormReLU2d>(16));
  a.add("pool", std::make_shared<dl::nn::MaxPool2d>(dl::Pool2dParams{}));
  const std::shared_ptr<dl::nn::Module> b = a.clone();
  b->to(MemoryFormat::kChannelsLast);
  EXPECT_EQ(b->memory_format(), MemoryFormat::kChannelsLast);
  EXPECT_EQ(b->clone()->memory_format(), MemoryFormat::kChannelsLast);
  const Tensor x = Tensor::randn({2, 8, 10, 12});
  const Tensor ya = a(x);
  const Tensor yb = dynamic_cast<dl::nn::Sequential&>(*b)(x);
  EXPECT_FALSE(ya.is_channels_last());
  EXPECT_TRUE(yb.is_channels_last());
  EXPECT_LE(max_diff(ya, yb), 1e-4);
  for (const auto& [name, p] : b->named_parameters()) EXPECT_FALSE(p.is_channels_last()) << name;
}

// TrainingOptions::memory_format (and --memory-format): a few epochs of a small convolutional classifier
// in each format follow the same losses, the option shows in the options' summary, and the flag parses.
TEST(MemoryFormat, TrainerRunsChannelsLast) {
  const int64_t n = 64;
  dl::manual_seed(9);
  const Tensor images = Tensor::randn({n, 3, 8, 8});
  std::vector<int32_t> lv(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) lv[static_cast<size_t>(i)] = static_cast<int32_t>(i % 4);
  const auto set = std::make_shared<dl::data::TensorDataset>(images, Tensor::from_vector<int32_t>({n}, lv));
  std::vector<std::vector<double>> losses;
  for (const MemoryFormat f : {MemoryFormat::kContiguous, MemoryFormat::kChannelsLast}) {
    dl::manual_seed(21);
    dl::nn::Sequential model;
    model.add("conv", std::make_shared<dl::nn::Conv2d>(dl::nn::Conv2dOptions{.in_channels = 3, .out_channels = 16}));
    model.add("bn", std::make_shared<dl::nn::BatchNormReLU2d>(16));
    const auto conv2 = model.add(
        "conv2", std::make_shared<dl::nn::Conv2d>(dl::nn::Conv2dOptions{.in_channels = 16, .out_channels = 16}));
    int64_t seen_channels_last = 0, seen = 0;  // what the middle of the model is given
    conv2->register_forward_pre_hook([&](dl::nn::Module&, const Tensor& in) {
      ++seen;
      seen_channels_last += in.is_channels_last() ? 1 : 0;
    });
    model.add("gap", std::make_shared<dl::nn::GlobalAvgPool2d>());
    model.add("flat", std::make_shared<dl::nn::Flatten>());
    model.add("fc", std::make_shared<dl::nn::Linear>(16, 4));
    dl::train::TrainingOptions o;
    o.max_epochs = 3;
    o.mini_batch_size = 16;
    o.shuffle = dl::train::Shuffle::kNever;
    o.verbose = false;
    o.memory_format = f;
    EXPECT_NE(
        o.summary().find(f == MemoryFormat::kChannelsLast ? "MemoryFormat channels-last" : "MemoryFormat contiguous"),
        std::string::npos);
    dl::train::Trainer trainer(model, o);
    const dl::train::TrainingReport r = trainer.fit(set);
    losses.emplace_back();
    for (const auto& rec : r.history) losses.back().push_back(rec.loss);
    EXPECT_GT(seen, 0);
    EXPECT_EQ(seen_channels_last, f == MemoryFormat::kChannelsLast ? seen : 0);
  }
  ASSERT_EQ(losses[0].size(), losses[1].size());
  for (size_t i = 0; i < losses[0].size(); ++i) EXPECT_NEAR(losses[0][i], losses[1][i], 1e-4) << "iteration " << i;

  // A one-channel input stays NCHW (its two orders coincide); the model still computes channels-last, since
  // the Trainer sets every layer to the format. A UNet (transposed convolutions, reordered) trains too.
  {
    const Tensor gray = Tensor::randn({8, 1, 16, 16});
    std::vector<int32_t> seg(8 * 16 * 16);
    for (size_t i = 0; i < seg.size(); ++i) seg[i] = static_cast<int32_t>(i % 3);
    const auto gray_set =
        std::make_shared<dl::data::TensorDataset>(gray, Tensor::from_vector<int32_t>({8, 16, 16}, seg));
    dl::manual_seed(2);
    dl::nn::UNet unet({.in_channels = 1, .num_classes = 3, .base_channels = 8, .levels = 2});
    int64_t nhwc_inputs = 0;
    unet.for_each_module([&](dl::nn::Module& m) {
      if (auto* c = dynamic_cast<dl::nn::Conv2d*>(&m); c && c->options().in_channels == 8)
        c->register_forward_pre_hook([&](dl::nn::Module&, const Tensor& in) { nhwc_inputs += in.is_channels_last(); });
    });
    dl::train::TrainingOptions o;
    o.max_epochs = 1;
    o.mini_batch_size = 4;
    o.verbose = false;
    o.memory_format = MemoryFormat::kChannelsLast;
    dl::train::Trainer trainer(unet, o);
    const dl::train::TrainingReport r = trainer.fit(gray_set);
    EXPECT_TRUE(std::isfinite(r.history.back().loss));
    EXPECT_GT(nhwc_inputs, 0);
    EXPECT_EQ(unet.memory_format(), MemoryFormat::kChannelsLast);
  }

  dl::train::TrainingOptions o;
  dl::train::Flags flags("t", "");
  dl::train::add_training_flags(flags, o);
  const char* argv[] = {"t", "--memory-format", "channels-last"};
  ASSERT_TRUE(flags.parse(3, const_cast<char**>(argv)));
  EXPECT_EQ(o.memory_format, MemoryFormat::kChannelsLast);
  const char* bad[] = {"t", "--memory-format", "nhwc"};
  EXPECT_CONTAINS(error_of([&] { flags.parse(3, const_cast<char**>(bad)); }), "contiguous or channels-last");
}

}  // namespace
