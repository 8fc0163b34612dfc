// Modules (names, train/eval, state files) and optimisers (update rules against hand-computed
// values, clipping, schedules).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <type_traits>

#include "dl/dl.h"

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("libdl_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

TEST(Module, MnistCnnNamesShapesAndCount) {
  dl::Generator gen(1);
  dl::nn::MnistCnn model({}, gen);
  const auto params = model.named_parameters();
  ASSERT_EQ(params.front().first, "conv1.weight");
  EXPECT_EQ(params.front().second.shape(), dl::Shape({8, 1, 3, 3}));
  EXPECT_EQ(params.back().first, "fc.bias");
  const auto buffers = model.named_buffers();
  EXPECT_EQ(buffers.front().first, "bn1.running_mean");
  // conv: 8*9+8 + 16*72+16 + 32*144+32; bn: 2*(8+16+32); fc: 1568*10+10
  EXPECT_EQ(model.num_parameters(), 80 + 1168 + 4640 + 112 + 15690);
  dl::Tensor logits = model(dl::Tensor::randn({3, 1, 28, 28}, gen));
  EXPECT_EQ(logits.shape(), dl::Shape({3, 10}));
}

// Copying a module would alias its parameters: it does not compile. Names are unique per module.
static_assert(!std::is_copy_constructible_v<dl::nn::MnistCnn> && !std::is_copy_assignable_v<dl::nn::MnistCnn>);
static_assert(std::is_move_constructible_v<dl::nn::MnistCnn>);

struct Registers : dl::nn::Layer {
  Registers(const std::string& first, const std::string& second, int second_kind) {
    register_parameter(first, dl::Tensor::zeros({2}));
    if (second_kind == 0) register_parameter(second, dl::Tensor::zeros({2}));
    if (second_kind == 1) register_buffer(second, dl::Tensor::zeros({2}));
    if (second_kind == 2) register_module(second, std::make_shared<dl::nn::ReLU>());
  }
  dl::Tensor forward(const dl::Tensor& x) override { return x; }
};

TEST(Module, RegisteringANameTwiceThrows) {
  auto error = [](const std::string& a, const std::string& b, int kind) -> std::string {
    try {
      Registers r(a, b, kind);
    } catch (const dl::Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(error("w", "w", 0).find("register_parameter('w'): the name is already taken by a parameter"),
            std::string::npos);
  EXPECT_NE(error("w", "w", 1).find("register_buffer('w'): the name is already taken"), std::string::npos);
  EXPECT_NE(error("w", "w", 2).find("register_module('w'): the name is already taken"), std::string::npos);
  EXPECT_NE(error("a.b", "c", 0).find("without dots"), std::string::npos);
  EXPECT_NE(error("", "c", 0).find("non-empty name"), std::string::npos);
  EXPECT_EQ(error("w", "b", 1), "(no error)");
}

TEST(Module, ActivationLayersApplyTheirOpsWithTheirParameters) {
  const dl::Tensor x = dl::Tensor::from_vector<float>({4}, {-2.f, -0.5f, 0.5f, 2.f});
  auto expect_same = [&x](dl::nn::Layer& layer, const dl::Tensor& want) {
    EXPECT_EQ(layer(x).to_vector_f32(), want.to_vector_f32());
  };
  dl::nn::Sigmoid sigmoid;
  dl::nn::Tanh tanh;
  dl::nn::GELU gelu;
  dl::nn::SiLU silu;
  dl::nn::LeakyReLU leaky(0.3);
  dl::nn::ELU elu(0.5);
  expect_same(sigmoid, dl::ops::sigmoid(x));
  expect_same(tanh, dl::ops::tanh(x));
  expect_same(gelu, dl::ops::gelu(x));
  expect_same(silu, dl::ops::silu(x));
  expect_same(leaky, dl::ops::leaky_relu(x, 0.3));
  expect_same(elu, dl::ops::elu(x, 0.5));
  EXPECT_FLOAT_EQ(leaky(x).to_vector_f32()[0], -0.6f);
  EXPECT_FLOAT_EQ(elu(x).to_vector_f32()[0], 0.5f * std::expm1(-2.f));
  EXPECT_FLOAT_EQ(dl::nn::LeakyReLU()(x).to_vector_f32()[1], -0.005f);  // PyTorch's default slope
}

TEST(Layers, DropoutZeroesAboutPAndScalesTheRestReproducibly) {
  dl::Generator gen(5);
  dl::nn::Dropout drop(0.3, gen);
  dl::Tensor x = dl::Tensor::ones({100000});
  x.set_requires_grad(true);
  const dl::Tensor y = drop(x);
  const std::vector<float> v = y.to_vector_f32();
  int64_t zeros = 0;
  for (float e : v) {
    if (e == 0.f) {
      ++zeros;
    } else {
      ASSERT_FLOAT_EQ(e, 1.f / 0.7f);
    }
  }
  EXPECT_NEAR(static_cast<double>(zeros) / 100000.0, 0.3, 0.01);
  dl::ops::sum(y).backward();  // the backward applies the same mask
  EXPECT_EQ(x.grad().to_vector_f32(), v);
  // The same generator state draws the same mask; the next draw another one.
  dl::Generator again(5);
  EXPECT_EQ(dl::ops::dropout(x.detach(), 0.3, true, again).to_vector_f32(), v);
  EXPECT_NE(drop(x.detach()).to_vector_f32(), v);
  drop.eval();
  EXPECT_TRUE(drop(x).shares_storage_with(x));
  EXPECT_THROW(dl::nn::Dropout(1.0), dl::Error);
}

TEST(Layers, NormalisationUpsamplingAndTransposedConvolutionLayers) {
  dl::Generator gen(3);
  const dl::Tensor x = dl::Tensor::randn({2, 4, 6, 6}, gen);
  dl::nn::LayerNorm ln(dl::Shape{6, 6});
  EXPECT_EQ(ln.weight.shape(), dl::Shape({6, 6}));
  const dl::Tensor y = ln(x);
  EXPECT_EQ(y.to_vector_f32(), dl::ops::layer_norm(x, 2, ln.weight, ln.bias).to_vector_f32());
  EXPECT_NEAR(dl::ops::mean(y, {2, 3}).to_vector_f32()[5], 0.0, 1e-5);
  // Each normalised plane has unit (biased) variance: the statistics, not only the wiring, are checked.
  EXPECT_NEAR(dl::ops::mean(y * y, {2, 3}).to_vector_f32()[5], 1.0, 1e-3);
  dl::nn::GroupNorm gn(2, 4);
  EXPECT_EQ(gn(x).to_vector_f32(), dl::ops::group_norm(x, 2, gn.weight, gn.bias).to_vector_f32());
  const dl::Tensor g = gn(x);  // over 2 groups of 2 channels: image 1, second group, unit variance
  EXPECT_NEAR(dl::ops::mean(dl::ops::reshape(g * g, {2, 2, 72}), {2}).to_vector_f32()[3], 1.0, 1e-3);
  EXPECT_THROW(dl::nn::GroupNorm(3, 4), dl::Error);
  dl::nn::ConvTranspose2dOptions o;
  o.in_channels = 4;
  o.out_channels = 3;
  o.params.stride = {2, 2};
  dl::nn::ConvTranspose2d up(o, gen);
  EXPECT_EQ(up.weight.shape(), dl::Shape({4, 3, 2, 2}));
  EXPECT_EQ(up(x).shape(), dl::Shape({2, 3, 12, 12}));
  dl::nn::Upsample nearest(2), bilinear(2, dl::nn::Upsample::Mode::kBilinear);
  const dl::Tensor small = dl::Tensor::from_vector<float>({1, 1, 1, 2}, {1, 2});
  EXPECT_EQ(nearest(small).to_vector_f32(), (std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2}));
  EXPECT_EQ(bilinear(x).shape(), dl::Shape({2, 4, 12, 12}));
  dl::nn::Identity id;
  EXPECT_TRUE(id(x).shares_storage_with(x));
}

TEST(Layers, UNetShapesNamesAndErrors) {
  dl::Generator gen(4);
  dl::nn::UNetOptions o;
  o.in_channels = 2;
  o.num_classes = 5;
  o.base_channels = 4;
  o.levels = 3;
  dl::nn::UNet net(o, gen);
  const dl::Tensor y = net(dl::Tensor::randn({2, 2, 16, 12}, gen));
  EXPECT_EQ(y.shape(), dl::Shape({2, 5, 16, 12}));
  std::vector<std::string> names;
  for (const auto& p : net.parameter_refs()) names.push_back(p.name);
  const std::vector<std::string> some = {"enc1.conv1.weight", "enc3.bn2.weight",   "up1.weight",
                                         "up2.bias",          "dec2.conv2.weight", "head.weight"};
  for (const std::string& n : some) EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  EXPECT_THROW(net(dl::Tensor::randn({1, 2, 15, 12}, gen)), dl::Error);  // 15 is not divisible by 4
}

TEST(Module, EvalUsesRunningStatistics) {
  dl::Generator gen(2);
  dl::nn::BatchNorm2d bn(3);
  dl::Tensor x = dl::Tensor::randn({4, 3, 5, 5}, gen);
  bn.eval();
  dl::Tensor y = bn(x);  // running mean 0, var 1: identity up to eps
  for (int64_t i = 0; i < x.numel(); ++i)
    EXPECT_NEAR(y.data<float>()[i], x.data<float>()[i] / std::sqrt(1 + 1e-5), 1e-6);
  EXPECT_EQ(bn.running_mean.data<float>()[0], 0.0f);  // untouched in eval
  bn.train();
  bn(x);
  EXPECT_NE(bn.running_mean.data<float>()[0], 0.0f);
}

// Batch-norm statistics and affine parameters far from the identity, so that folding has work to do.
void randomise_batch_norms(dl::nn::Module& model, dl::Generator& gen) {
  model.for_each_module([&](dl::nn::Module& m) {
    if (auto* bn = dynamic_cast<dl::nn::BatchNorm2d*>(&m)) {
      const int64_t c = bn->weight.numel();
      bn->weight.copy_(dl::Tensor::uniform({c}, 0.5, 1.5, gen));
      bn->bias.copy_(dl::Tensor::uniform({c}, -0.5, 0.5, gen));
      bn->running_mean.copy_(dl::Tensor::uniform({c}, -0.3, 0.3, gen));
      bn->running_var.copy_(dl::Tensor::uniform({c}, 0.2, 2.0, gen));
    }
  });
}

dl::Tensor eval_forward(dl::nn::Layer& model, const dl::Tensor& x) {
  model.eval();
  dl::autograd::NoGradGuard no_grad;
  return model.forward(x);
}

void expect_close(const dl::Tensor& got, const dl::Tensor& want, double rel, const char* what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<float> g = got.to_vector_f32(), w = want.to_vector_f32();
  double scale = 0;
  for (float v : w) scale = std::max(scale, static_cast<double>(std::abs(v)));
  for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], w[i], rel * scale) << what << ": element " << i;
}

TEST(Fold, BatchNormFoldsIntoTheConvolutionBeforeItWithTheSameOutputs) {
  dl::Generator gen(3);
  {  // MnistCnn: conv (with bias) -> batch norm + ReLU, three times
    dl::nn::MnistCnn model({.filters = {4, 8, 8}, .in_channels = 1, .height = 16, .width = 16, .num_classes = 5}, gen);
    randomise_batch_norms(model, gen);
    const dl::Tensor x = dl::Tensor::randn({3, 1, 16, 16}, gen);
    const dl::Tensor before = eval_forward(model, x);
    EXPECT_EQ(dl::nn::fold_batch_norm(model, x), 3);
    EXPECT_EQ(dl::nn::fold_batch_norm(model, x), 0) << "nothing left to fold";
    dl::autograd::NoGradGuard no_grad;
    EXPECT_THROW(dl::nn::fold_batch_norm(model, x), dl::Error) << "the pairs come from a recorded graph";
    expect_close(model.forward(x), before, 1e-5, "MnistCnn logits");
    int folded = 0;
    model.for_each_module([&](dl::nn::Module& m) {
      if (auto* bn = dynamic_cast<dl::nn::BatchNorm2d*>(&m)) folded += bn->folded;
    });
    EXPECT_EQ(folded, 3);
    // Each batch norm had a fused ReLU: it moved into its convolution (ops::conv2d_relu).
    int fused = 0;
    model.for_each_module([&](dl::nn::Module& m) {
      if (auto* c = dynamic_cast<dl::nn::Conv2d*>(&m)) fused += c->fused_relu;
    });
    EXPECT_EQ(fused, 3);
    {
      const auto copy = std::dynamic_pointer_cast<dl::nn::MnistCnn>(model.clone());
      ASSERT_NE(copy, nullptr);
      EXPECT_EQ(copy->forward(x).to_vector_f32(), model.forward(x).to_vector_f32()) << "clone() keeps the fused ReLU";
    }
    model.train();
    EXPECT_THROW(model.forward(x), dl::Error) << "a folded model cannot train";
  }
  {  // ResNet-18: convolutions without bias (a bias is added), downsampling shortcuts, residual sums after
    dl::nn::ResNet18 model({.num_classes = 7}, gen);
    randomise_batch_norms(model, gen);
    const dl::Tensor x = dl::Tensor::randn({2, 3, 32, 32}, gen);
    const dl::Tensor before = eval_forward(model, x);
    const size_t names = model.state().size();
    EXPECT_EQ(dl::nn::fold_batch_norm(model, x), 20);
    EXPECT_EQ(model.state().size(), names + 20) << "a bias per folded convolution";
    dl::autograd::NoGradGuard no_grad;
    expect_close(model.forward(x), before, 1e-4, "ResNet-18 logits");
  }
}

// A convolution whose output is used besides its batch norm keeps the pair as it is.
TEST(Fold, AConvolutionUsedElsewhereIsNotFolded) {
  class ConvBnPlusSkip : public dl::nn::Layer {
   public:
    explicit ConvBnPlusSkip(dl::Generator& gen) {
      conv = register_module(
          "conv", std::make_shared<dl::nn::Conv2d>(
                      dl::nn::Conv2dOptions{.in_channels = 2, .out_channels = 2, .params = {.padding = {1, 1}}}, gen));
      bn = register_module("bn", std::make_shared<dl::nn::BatchNorm2d>(2));
    }
    dl::Tensor forward(const dl::Tensor& x) override {
      const dl::Tensor y = conv->forward(x);
      return dl::ops::add(bn->forward(y), y);
    }
    std::shared_ptr<dl::nn::Conv2d> conv;
    std::shared_ptr<dl::nn::BatchNorm2d> bn;
  };
  dl::Generator gen(4);
  ConvBnPlusSkip model(gen);
  randomise_batch_norms(model, gen);
  const dl::Tensor x = dl::Tensor::randn({1, 2, 5, 5}, gen);
  EXPECT_EQ(dl::nn::fold_batch_norm(model, x), 0);
  EXPECT_FALSE(model.bn->folded);
}

TEST(Module, SaveLoadRoundTripAndMismatchNamesFirstDifference) {
  dl::Generator g1(3), g2(4);
  dl::nn::MnistCnn a({}, g1), b({}, g2);
  const std::string path = temp_path("weights.safetensors");
  dl::nn::save_weights(a, path);
  dl::nn::load_weights(b, path);
  const auto sa = a.state(), sb = b.state();
  for (size_t i = 0; i < sa.size(); ++i)
    ASSERT_EQ(0, std::memcmp(sa[i].second.raw_data(), sb[i].second.raw_data(), sa[i].second.nbytes())) << sa[i].first;
  // Weights are safetensors (Note [one weights format]): any safetensors reader sees every tensor.
  const dl::SafeTensors st = dl::load_safetensors(path);
  EXPECT_EQ(st.metadata.at("producer"), "libdl");
  ASSERT_EQ(st.tensors.size(), sa.size());
  EXPECT_EQ(st.tensors[0].first, sa[0].first);
  // Weights an earlier libdl wrote as a tensor file still load.
  const std::string old_path = temp_path("weights.dlw");
  dl::TensorFile old;
  old.tensors = a.state();
  dl::save_tensor_file(old_path, old);
  dl::nn::MnistCnn c({}, g2);
  dl::nn::load_weights(c, old_path);
  EXPECT_EQ(0, std::memcmp(sa[0].second.raw_data(), c.state()[0].second.raw_data(), sa[0].second.nbytes()));
  std::filesystem::remove(old_path);
  dl::nn::MnistCnn other(dl::nn::MnistCnnOptions{.filters = {8, 16, 64}}, g2);
  try {
    dl::nn::load_weights(other, path);
    FAIL() << "loading weights of another model must throw";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv3.weight"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(TensorFile, CorruptAndTruncatedFilesAreRejected) {
  dl::TensorFile f;
  f.metadata["kind"] = "test";
  f.tensors.emplace_back("x", dl::Tensor::full({4, 4}, 2.5));
  const std::string path = temp_path("t.dlt");
  dl::save_tensor_file(path, f);
  const auto back = dl::load_tensor_file(path);
  EXPECT_EQ(back.metadata.at("kind"), "test");
  EXPECT_EQ(back.find("x")->data<float>()[15], 2.5f);
  // Flip one byte of the data: the checksum catches it.
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(60);
    io.put('\x7f');
  }
  EXPECT_THROW(dl::load_tensor_file(path), dl::Error);
  std::filesystem::resize_file(path, 20);
  try {
    dl::load_tensor_file(path);
    FAIL();
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  std::filesystem::remove(path);
}

// One parameter with a fixed gradient, so that each rule can be followed by hand.
struct OneParam {
  dl::Tensor w = dl::Tensor::from_vector<double>({2}, {1.0, -2.0});
  std::vector<dl::nn::ParamRef> refs() {
    w.set_requires_grad(true);
    return {{"w", w, 1.0}};
  }
  void set_grad(double a, double b) { w.set_grad(dl::Tensor::from_vector<double>({2}, {a, b})); }
};

TEST(Optim, SgdmFollowsMatlabRule) {
  OneParam p;
  dl::optim::Sgdm opt(p.refs(), {.learning_rate = 0.1, .momentum = 0.9, .l2 = 0.0});
  p.set_grad(1.0, 2.0);
  opt.step();  // v = -0.1 g; w += v
  EXPECT_DOUBLE_EQ(p.w.data<double>()[0], 0.9);
  p.set_grad(1.0, 2.0);
  opt.step();  // v = 0.9 (-0.1) - 0.1 = -0.19
  EXPECT_NEAR(p.w.data<double>()[0], 0.9 - 0.19, 1e-15);
  EXPECT_NEAR(p.w.data<double>()[1], -2.0 - 0.2 - 0.38, 1e-15);
}

TEST(Optim, AdamFirstStepMovesByLearnRate) {
  OneParam p;
  dl::optim::Adam opt(p.refs(), {.learning_rate = 0.01});
  p.set_grad(0.5, -3.0);
  opt.step();  // bias-corrected m / sqrt(v) = sign(g) on the first step
  EXPECT_NEAR(p.w.data<double>()[0], 1.0 - 0.01, 1e-9);
  EXPECT_NEAR(p.w.data<double>()[1], -2.0 + 0.01, 1e-9);
  EXPECT_EQ(opt.steps(), 1);
}

TEST(Optim, RmsPropAndL2) {
  OneParam p;
  dl::optim::RmsProp opt(p.refs(), {.learning_rate = 0.01, .decay = 0.9, .epsilon = 1e-8, .l2 = 0.5});
  p.set_grad(0.5, 1.0);
  opt.step();  // g' = g + 0.5 w = (1, 0); v = 0.1 g'^2; w -= 0.01 g' / sqrt(v)
  EXPECT_NEAR(p.w.data<double>()[0], 1.0 - 0.01 / (std::sqrt(0.1) + 1e-8), 1e-12);
  EXPECT_EQ(p.w.data<double>()[1], -2.0);  // g' = g + 0.5 w = 0 there
}

TEST(Optim, ClippingMethods) {
  OneParam p;
  auto refs = p.refs();
  p.set_grad(3.0, 4.0);
  EXPECT_DOUBLE_EQ(dl::optim::clip_grad_global_norm(refs, 1.0), 5.0);
  EXPECT_NEAR(p.w.grad().data<double>()[0], 0.6, 1e-15);
  EXPECT_NEAR(p.w.grad().data<double>()[1], 0.8, 1e-15);
  p.set_grad(3.0, -4.0);
  EXPECT_DOUBLE_EQ(dl::optim::clip_grad_value(refs, 3.5), 4.0);
  EXPECT_EQ(p.w.grad().data<double>()[1], -3.5);
  EXPECT_EQ(p.w.grad().data<double>()[0], 3.0);
  p.set_grad(6.0, 8.0);
  EXPECT_DOUBLE_EQ(dl::optim::clip_grad_norm_per_parameter(refs, 5.0), 10.0);
  EXPECT_NEAR(p.w.grad().data<double>()[0], 3.0, 1e-15);
}

// The norm behind global clipping and the loss scaler's overflow check: several tensors at once (on a GPU
// one read for all of them), the same double as adding squared_norm of each in order.
TEST(Optim, SquaredNormOfSeveralTensors) {
  const dl::Tensor a = dl::Tensor::from_vector<float>({2}, {3, 4}), b = dl::Tensor::from_vector<double>({1}, {0.5});
  EXPECT_EQ(dl::ops::squared_norm({a, dl::Tensor(), b}), dl::ops::squared_norm(a) + dl::ops::squared_norm(b));
  EXPECT_EQ(dl::ops::squared_norm({a, dl::Tensor(), b}), 25.25);
  EXPECT_EQ(dl::ops::squared_norm(std::vector<dl::Tensor>{}), 0.0);
  EXPECT_TRUE(std::isinf(dl::ops::squared_norm({a, dl::Tensor::from_vector<float>({1}, {INFINITY})})));
  EXPECT_THROW(dl::ops::squared_norm({a, dl::Tensor::zeros({2}, dl::DType::kInt32)}), dl::Error);
}

TEST(Optim, PiecewiseSchedule) {
  dl::optim::PiecewiseSchedule s{0.01, 0.8, 10, true};
  EXPECT_DOUBLE_EQ(s.rate(1), 0.01);
  EXPECT_DOUBLE_EQ(s.rate(10), 0.01);
  EXPECT_DOUBLE_EQ(s.rate(11), 0.01 * 0.8);
  EXPECT_NEAR(s.rate(50), 0.01 * std::pow(0.8, 4), 1e-18);
}

TEST(Optim, RejectsBadHyperparameters) {
  OneParam p;
  EXPECT_THROW(dl::optim::Adam(p.refs(), {.learning_rate = -1}), dl::Error);
  EXPECT_THROW(dl::optim::Sgdm(p.refs(), {.learning_rate = 0.1, .momentum = 1.5}), dl::Error);
}

}  // namespace
