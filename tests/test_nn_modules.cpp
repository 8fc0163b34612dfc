// Safe modules and inspection: deep copies (clone), forward and backward hooks, the check that a
// forward calls only registered layers, named_modules, and summary's shapes, parameters and FLOPs.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "dl/dl.h"

namespace {

using dl::Shape;
using dl::Tensor;

void expect_error_with(const std::function<void()>& f, const std::vector<std::string>& phrases) {
  try {
    f();
    ADD_FAILURE() << "expected a dl::Error";
  } catch (const dl::Error& e) {
    for (const auto& p : phrases) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

void randomise_batch_norms(dl::nn::Module& model, dl::Generator& gen) {
  model.for_each_module([&](dl::nn::Module& m) {
    if (auto* bn = dynamic_cast<dl::nn::BatchNorm2d*>(&m)) {
      const int64_t c = bn->weight.numel();
      bn->weight.copy_(Tensor::uniform({c}, 0.5, 1.5, gen));
      bn->bias.copy_(Tensor::uniform({c}, -0.5, 0.5, gen));
      bn->running_mean.copy_(Tensor::uniform({c}, -0.3, 0.3, gen));
      bn->running_var.copy_(Tensor::uniform({c}, 0.2, 2.0, gen));
    }
  });
}

// The clone of `model` (in eval, batch norms randomised) computes the same outputs, bit for bit, from
// storage of its own: writing into the copy's tensors leaves the original as it was.
void expect_equal_and_independent(dl::nn::Layer& model, const Shape& input, dl::Generator& gen) {
  randomise_batch_norms(model, gen);
  model.eval();
  const std::shared_ptr<dl::nn::Layer> copy = dl::nn::clone(model);
  const dl::nn::Layer& copied_layer = *copy;
  ASSERT_EQ(typeid(copied_layer), typeid(model));
  const Tensor x = Tensor::randn(input, gen);
  dl::autograd::NoGradGuard no_grad;
  const Tensor before = model(x);
  EXPECT_TRUE(same_bits((*copy)(x), before)) << copy->type_name();

  const auto original = model.state(), copied = copy->state();
  ASSERT_EQ(original.size(), copied.size());
  for (size_t i = 0; i < original.size(); ++i) {
    EXPECT_EQ(original[i].first, copied[i].first);
    EXPECT_TRUE(same_bits(original[i].second, copied[i].second)) << original[i].first;
    EXPECT_FALSE(original[i].second.shares_storage_with(copied[i].second)) << original[i].first;
    EXPECT_EQ(original[i].second.requires_grad(), copied[i].second.requires_grad()) << original[i].first;
    EXPECT_EQ(original[i].second.device(), copied[i].second.device()) << original[i].first;
  }
  for (auto& [name, t] : copy->state()) t.fill_(0.25);
  EXPECT_TRUE(same_bits(model(x), before)) << "writing into the clone changed the original";
  EXPECT_FALSE(same_bits((*copy)(x), before));
  for (const auto& [name, m] : copy->named_modules()) EXPECT_FALSE(m->is_training()) << name;
}

TEST(Clone, MnistCnnIsEqualAndIndependentAndKeepsFlagsAndTheDefaultGenerator) {
  dl::Generator gen(1);
  dl::nn::MnistCnn model({}, gen);
  model.named_parameters()[0].second.set_requires_grad(false);  // a frozen first convolution
  // Building the copy draws nothing from the default generator (its initial values are overwritten).
  const dl::Generator default_before = dl::default_generator();
  expect_equal_and_independent(model, {2, 1, 28, 28}, gen);
  dl::Generator default_after = dl::default_generator();
  EXPECT_EQ(dl::Generator(default_before).next_u64(), default_after.next_u64());

  auto copy = dl::nn::clone(model);
  EXPECT_FALSE(copy->named_parameters()[0].second.requires_grad());
  EXPECT_TRUE(copy->named_parameters()[1].second.requires_grad());
  EXPECT_EQ(copy->options().filters, model.options().filters);
  model.train();  // the copy's flag is its own
  EXPECT_FALSE(copy->is_training());
  // A copy of a model in train() is in train() too, down to a child left in eval().
  model[1].eval();
  auto trained = dl::nn::clone(model);
  EXPECT_TRUE(trained->is_training());
  EXPECT_FALSE((*trained)[1].is_training());
  EXPECT_TRUE((*trained)[0].is_training());
}

TEST(Clone, ResNet18IsEqualAndIndependent) {
  dl::Generator gen(2);
  dl::nn::ResNet18 resnet({.num_classes = 5, .output_stride_16 = true}, gen);
  expect_equal_and_independent(resnet, {1, 3, 32, 32}, gen);
}

TEST(Clone, UNetIsEqualAndIndependent) {
  dl::Generator gen(2);
  dl::nn::UNet unet({.in_channels = 3, .num_classes = 2, .base_channels = 4, .levels = 3}, gen);
  expect_equal_and_independent(unet, {1, 3, 16, 16}, gen);
}

TEST(Clone, DeepLabIsEqualAndIndependent) {
  dl::Generator gen(2);
  dl::nn::DeepLabV3Plus deeplab({.num_classes = 3}, gen);
  expect_equal_and_independent(deeplab, {1, 3, 32, 32}, gen);
}

TEST(Clone, EveryLayerOfLayersHCopiesWithItsSettings) {
  dl::Generator gen(3);
  dl::nn::Sequential seq;
  seq.add("conv", std::make_shared<dl::nn::Conv2d>(
                      dl::nn::Conv2dOptions{.in_channels = 2, .out_channels = 4, .params = {.padding = {1, 1}}}, gen));
  seq.add("gn", std::make_shared<dl::nn::GroupNorm>(2, 4));
  seq.add("bnrelu", std::make_shared<dl::nn::BatchNormReLU2d>(4));
  seq.add("bn", std::make_shared<dl::nn::BatchNorm2d>(4));
  seq.add("elu", std::make_shared<dl::nn::ELU>(0.5));
  seq.add("up",
          std::make_shared<dl::nn::ConvTranspose2d>(
              dl::nn::ConvTranspose2dOptions{.in_channels = 4, .out_channels = 2, .params = {.stride = {2, 2}}}, gen));
  seq.add("leaky", std::make_shared<dl::nn::LeakyReLU>(0.2));
  seq.add("upsample", std::make_shared<dl::nn::Upsample>(2, dl::nn::Upsample::Mode::kBilinear));
  seq.add("avg", std::make_shared<dl::nn::AvgPool2d>(dl::Pool2dParams{{2, 2}, {2, 2}, {0, 0}}));
  seq.add("max", std::make_shared<dl::nn::MaxPool2d>(dl::Pool2dParams{{2, 2}, {2, 2}, {0, 0}}));
  seq.add("sig", std::make_shared<dl::nn::Sigmoid>());
  seq.add("ln", std::make_shared<dl::nn::LayerNorm>(Shape{2, 4, 4}, 1e-3, false));
  seq.add("tanh", std::make_shared<dl::nn::Tanh>());
  seq.add("gelu", std::make_shared<dl::nn::GELU>());
  seq.add("silu", std::make_shared<dl::nn::SiLU>());
  seq.add("drop", std::make_shared<dl::nn::Dropout>(0.3));
  seq.add("id", std::make_shared<dl::nn::Identity>());
  seq.add("relu", std::make_shared<dl::nn::ReLU>());
  seq.add("flatten", std::make_shared<dl::nn::Flatten>());
  seq.add("fc", std::make_shared<dl::nn::Linear>(32, 3, false, dl::nn::Init::kGlorotUniform, gen));
  expect_equal_and_independent(seq, {2, 2, 4, 4}, gen);
}

TEST(Clone, KeepsFoldedBatchNormsAndLayersSharedInASequential) {
  dl::Generator gen(4);
  dl::nn::UNet model({.in_channels = 1, .num_classes = 2, .base_channels = 2, .levels = 2}, gen);
  randomise_batch_norms(model, gen);
  const Tensor x = Tensor::randn({2, 1, 8, 8}, gen);
  const size_t names = model.state().size();
  ASSERT_EQ(dl::nn::fold_batch_norm(model, x), 6);
  ASSERT_EQ(model.state().size(), names + 6) << "a bias for each convolution built without";
  // UNet's constructor builds convolutions without bias and batch norms not folded: the copy gets the
  // settings the folding changed.
  auto copy = dl::nn::clone(model);
  int folded = 0;
  for (const auto& [name, m] : copy->named_modules())
    if (auto* bn = dynamic_cast<dl::nn::BatchNorm2d*>(m)) folded += bn->folded ? 1 : 0;
  EXPECT_EQ(folded, 6);
  EXPECT_EQ(copy->state().size(), model.state().size());
  dl::autograd::NoGradGuard no_grad;
  EXPECT_TRUE(same_bits((*copy)(x), model(x)));

  // One layer added twice (shared weights) stays one layer in the copy.
  dl::nn::Sequential twice;
  auto fc = std::make_shared<dl::nn::Linear>(3, 3, true, dl::nn::Init::kGlorotUniform, gen);
  twice.add("a", fc);
  twice.add("b", fc);
  auto twice_copy = dl::nn::clone(twice);
  EXPECT_EQ(&(*twice_copy)[0], &(*twice_copy)[1]);
  EXPECT_NE(&(*twice_copy)[0], fc.get());
}

struct NoCloneEmpty : dl::nn::Layer {
  NoCloneEmpty() { w = register_parameter("w", Tensor::ones({2})); }
  Tensor forward(const Tensor& x) override { return x; }
  Tensor w;
};
struct MyConv : dl::nn::Conv2d {  // inherits Conv2d's clone_empty, which would build a plain Conv2d
  MyConv() : Conv2d({}) {}
};

TEST(Clone, AModuleWithoutCloneEmptyIsAClearError) {
  NoCloneEmpty m;
  expect_error_with([&] { m.clone(); }, {"NoCloneEmpty", "does not override clone_empty"});
  dl::nn::Sequential seq;
  seq.add("mine", std::make_shared<NoCloneEmpty>());
  expect_error_with([&] { seq.clone(); }, {"NoCloneEmpty", "clone_empty"});
  dl::nn::Sequential derived;
  derived.add("conv", std::make_shared<MyConv>());
  expect_error_with([&] { derived.clone(); }, {"MyConv", "('conv')", "does not override clone_empty", "Conv2d"});
}

TEST(NamedModules, DottedNamesDepthFirst) {
  dl::Generator gen(5);
  dl::nn::ResNet18 model({.num_classes = 4}, gen);
  const auto modules = model.named_modules();
  ASSERT_GE(modules.size(), 6u);
  EXPECT_EQ(modules[0].first, "");
  EXPECT_EQ(modules[0].second, &model);
  EXPECT_EQ(modules[1].first, "conv1");
  EXPECT_EQ(modules[3].first, "layer1");
  EXPECT_EQ(modules[4].first, "layer1.0");
  EXPECT_EQ(modules[5].first, "layer1.0.conv1");
  EXPECT_EQ(modules[5].second->type_name(), "Conv2d");
  EXPECT_EQ(modules.back().first, "fc");
  EXPECT_TRUE(model.is_descendant(*modules[5].second));
  EXPECT_FALSE(modules[5].second->is_descendant(model));
}

// ---- hooks ----

TEST(Hooks, RunInOrderWithTheCallsTensorsAndRemoval) {
  dl::Generator gen(6);
  dl::nn::Sequential seq;
  auto fc = seq.add("fc", std::make_shared<dl::nn::Linear>(3, 2, true, dl::nn::Init::kGlorotUniform, gen));
  auto relu = seq.add("relu", std::make_shared<dl::nn::ReLU>());
  std::vector<std::string> log;
  Tensor fc_out, relu_in;
  const Tensor x = Tensor::randn({4, 3}, gen);
  seq.register_forward_pre_hook([&](dl::nn::Module& m, const Tensor& in) {
    EXPECT_EQ(&m, &seq);
    EXPECT_TRUE(in.shares_storage_with(x));
    log.push_back("seq pre");
  });
  dl::nn::HookHandle seq_post = seq.register_forward_hook([&](dl::nn::Module&, const Tensor&, const Tensor& out) {
    EXPECT_EQ(out.shape(), Shape({4, 2}));
    log.push_back("seq post");
  });
  fc->register_forward_pre_hook([&](dl::nn::Module&, const Tensor&) { log.push_back("fc pre"); });
  fc->register_forward_hook([&](dl::nn::Module& m, const Tensor& in, const Tensor& out) {
    EXPECT_EQ(&m, fc.get());
    EXPECT_TRUE(in.shares_storage_with(x));
    fc_out = out;
    log.push_back("fc post");
  });
  fc->register_forward_hook([&](dl::nn::Module&, const Tensor&, const Tensor&) { log.push_back("fc post 2"); });
  dl::nn::HookHandle relu_pre = relu->register_forward_pre_hook([&](dl::nn::Module&, const Tensor& in) {
    relu_in = in;
    log.push_back("relu pre");
  });
  const Tensor y = seq(x);
  EXPECT_EQ(log, (std::vector<std::string>{"seq pre", "fc pre", "fc post", "fc post 2", "relu pre", "seq post"}));
  EXPECT_TRUE(fc_out.shares_storage_with(relu_in)) << "relu's input is fc's output";
  EXPECT_TRUE(same_bits(fc_out, dl::ops::linear(x, fc->weight, fc->bias)));

  log.clear();
  EXPECT_TRUE(relu_pre.active());
  relu_pre.remove();
  relu_pre.remove();  // again: nothing
  EXPECT_FALSE(relu_pre.active());
  {
    dl::nn::ScopedHook scoped(relu->register_forward_hook(
        [&](dl::nn::Module&, const Tensor&, const Tensor&) { log.push_back("relu post (scoped)"); }));
    seq(x);
  }
  EXPECT_EQ(log,
            (std::vector<std::string>{"seq pre", "fc pre", "fc post", "fc post 2", "relu post (scoped)", "seq post"}));
  log.clear();
  seq_post.remove();
  seq(x);
  EXPECT_EQ(log, (std::vector<std::string>{"seq pre", "fc pre", "fc post", "fc post 2"}));
  // forward() itself runs no hooks: operator() does.
  log.clear();
  seq.forward(x);
  EXPECT_EQ(log, (std::vector<std::string>{"fc pre", "fc post", "fc post 2"}));
}

TEST(Hooks, BackwardHookSeesTheOutputGradient) {
  // y = W x + b (W 2 x 3), z = tanh(y), loss = sum(c * z): d loss / d y = c (1 - tanh(y)^2).
  dl::nn::Sequential seq;
  auto fc = seq.add("fc", std::make_shared<dl::nn::Linear>(3, 2));
  seq.add("tanh", std::make_shared<dl::nn::Tanh>());
  fc->weight.copy_(Tensor::from_vector<float>({2, 3}, {0.1f, -0.2f, 0.3f, 0.4f, 0.5f, -0.6f}));
  fc->bias.copy_(Tensor::from_vector<float>({2}, {0.05f, -0.1f}));
  const std::vector<float> xv{1.0f, 2.0f, -1.0f}, cv{2.0f, -3.0f};
  std::vector<Tensor> seen;
  dl::nn::Module* hooked = nullptr;
  auto handle = fc->register_backward_hook([&](dl::nn::Module& m, const Tensor& grad) {
    hooked = &m;
    seen.push_back(grad.clone());
  });
  const Tensor x = Tensor::from_vector<float>({1, 3}, xv);
  const Tensor c = Tensor::from_vector<float>({1, 2}, cv);
  dl::ops::sum(dl::ops::mul(seq(x), c)).backward();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(hooked, fc.get());
  ASSERT_EQ(seen[0].shape(), Shape({1, 2}));
  const float* w = fc->weight.data<float>();
  const float* b = fc->bias.data<float>();
  std::vector<double> g(2);
  for (int i = 0; i < 2; ++i) {
    double y = b[i];
    for (int j = 0; j < 3; ++j) y += w[i * 3 + j] * xv[j];
    g[i] = cv[i] * (1 - std::tanh(y) * std::tanh(y));
    EXPECT_NEAR(seen[0].data<float>()[i], g[i], 1e-6) << i;
  }
  // The hook passes the gradient on unchanged: d loss / d W = g x^T.
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(fc->weight.grad().data<float>()[i * 3 + j], g[i] * xv[j], 1e-6);

  handle.remove();
  seq.zero_grad();
  dl::ops::sum(dl::ops::mul(seq(x), c)).backward();
  EXPECT_EQ(seen.size(), 1u) << "a removed backward hook does not run";
}

// ---- the registration check ----

struct Unregistered : dl::nn::Layer {
  std::shared_ptr<dl::nn::Linear> fc = std::make_shared<dl::nn::Linear>(2, 2);
  std::shared_ptr<dl::nn::ReLU> relu = std::make_shared<dl::nn::ReLU>();  // no parameters: allowed
  Tensor forward(const Tensor& x) override { return (*fc)((*relu)(x)); }
};
struct SharedWeights : dl::nn::Layer {
  explicit SharedWeights(std::shared_ptr<dl::nn::Linear> shared) {
    fc = register_module("fc", std::move(shared));
    seq = register_module("seq", std::make_shared<dl::nn::Sequential>());
    seq->add("inner", fc);  // the same layer registered twice
  }
  Tensor forward(const Tensor& x) override { return (*seq)((*fc)((*fc)(x))); }
  std::shared_ptr<dl::nn::Linear> fc;
  std::shared_ptr<dl::nn::Sequential> seq;
};
// A child calling a sibling: the sibling is registered in the common parent, which is running.
struct CallsSibling : dl::nn::Layer {
  explicit CallsSibling(dl::nn::Linear& sibling) : sibling_(sibling) {}
  Tensor forward(const Tensor& x) override { return sibling_(x); }
  dl::nn::Linear& sibling_;
};
struct Parent : dl::nn::Layer {
  Parent() {
    fc = register_module("fc", std::make_shared<dl::nn::Linear>(2, 2));
    caller = register_module("caller", std::make_shared<CallsSibling>(*fc));
  }
  Tensor forward(const Tensor& x) override { return (*caller)(x); }
  std::shared_ptr<dl::nn::Linear> fc;
  std::shared_ptr<CallsSibling> caller;
};

TEST(Registration, AnUnregisteredLayerWithParametersThrowsInForward) {
  const Tensor x = Tensor::ones({1, 2});
  Unregistered bad;
  expect_error_with([&] { bad(x); }, {"Linear", "Unregistered", "register_module"});
  (*bad.fc)(x);  // on its own, outside any forward: fine

  auto shared = std::make_shared<dl::nn::Linear>(2, 2);
  SharedWeights a(shared), b(shared);  // one layer in two models
  EXPECT_EQ(a(x).shape(), Shape({1, 2}));
  EXPECT_EQ(b(x).shape(), Shape({1, 2}));
  Parent parent;
  EXPECT_EQ(parent(x).shape(), Shape({1, 2}));
}

// ---- summary ----

TEST(Summary, ShapesParametersAndFlopsByHand) {
  dl::Generator gen(7);
  dl::nn::Sequential model;
  model.add("conv",
            std::make_shared<dl::nn::Conv2d>(
                dl::nn::Conv2dOptions{.in_channels = 1, .out_channels = 2, .params = {.padding = {1, 1}}}, gen));
  auto bn = model.add("bn", std::make_shared<dl::nn::BatchNormReLU2d>(2));
  model.add("flatten", std::make_shared<dl::nn::Flatten>());
  model.add("fc", std::make_shared<dl::nn::Linear>(32, 3, true, dl::nn::Init::kGlorotUniform, gen));
  model.train();
  const Tensor mean_before = bn->running_mean.clone();

  const dl::nn::Summary s = dl::nn::summary(model, {1, 1, 4, 4});
  ASSERT_EQ(s.rows.size(), 5u);
  const std::vector<std::string> names{"", "conv", "bn", "flatten", "fc"};
  const std::vector<std::string> types{"Sequential", "Conv2d", "BatchNormReLU2d", "Flatten", "Linear"};
  const std::vector<Shape> shapes{{1, 3}, {1, 2, 4, 4}, {1, 2, 4, 4}, {1, 32}, {1, 3}};
  // conv: 2 x 1 x 3 x 3 + 2; bn: 2 + 2; fc: 3 x 32 + 3.
  const std::vector<int64_t> params{0, 20, 4, 0, 99};
  // conv: 32 outputs x 9 multiply-adds x 2 + 32 bias adds; bn: 2 per element; fc: 3 x 32 x 2 + 3.
  const std::vector<int64_t> flops{0, 2 * 32 * 9 + 32, 2 * 32, 0, 2 * 3 * 32 + 3};
  for (size_t i = 0; i < s.rows.size(); ++i) {
    EXPECT_EQ(s.rows[i].name, names[i]);
    EXPECT_EQ(s.rows[i].type, types[i]);
    EXPECT_EQ(s.rows[i].output_shape, shapes[i]) << names[i];
    EXPECT_EQ(s.rows[i].parameters, params[i]) << names[i];
    EXPECT_EQ(s.rows[i].flops, flops[i]) << names[i];
    EXPECT_EQ(s.rows[i].output_bytes, shapes[i].numel() * 4) << names[i];
    EXPECT_EQ(s.rows[i].depth, i == 0 ? 0 : 1);
  }
  EXPECT_EQ(s.output_shape, Shape({1, 3}));
  EXPECT_EQ(s.parameters, 123);
  EXPECT_EQ(s.trainable_parameters, 123);
  EXPECT_EQ(s.flops, 608 + 64 + 195);
  EXPECT_EQ(s.activation_bytes, (32 + 32 + 32 + 3) * 4);
  // Ran in eval (the running statistics did not move) and left the model in train().
  EXPECT_TRUE(same_bits(bn->running_mean, mean_before));
  EXPECT_TRUE(model.is_training());
  EXPECT_TRUE(bn->is_training());
  const std::string table = s.str();
  EXPECT_NE(table.find("BatchNormReLU2d"), std::string::npos) << table;
  EXPECT_NE(table.find("867 FLOPs"), std::string::npos) << table;
  EXPECT_NE(table.find("[1, 2, 4, 4]"), std::string::npos) << table;
}

TEST(Summary, ConvTransposeFlopsAndNestedRows) {
  dl::Generator gen(8);
  dl::nn::UNet unet({.in_channels = 1, .num_classes = 2, .base_channels = 2, .levels = 2}, gen);
  const dl::nn::Summary s = dl::nn::summary(unet, {1, 1, 4, 4});
  const dl::nn::SummaryRow* up = nullptr;
  const dl::nn::SummaryRow* conv = nullptr;
  for (const auto& r : s.rows) {
    if (r.name == "up1") up = &r;
    if (r.name == "enc1.conv1") conv = &r;
  }
  ASSERT_NE(up, nullptr) << s;
  ASSERT_NE(conv, nullptr) << s;
  // up1: 4 -> 2 channels, 2x2 stride 2, on 1 x 4 x 2 x 2: each of the 16 input elements meets
  // 2 x 2 x 2 weights (2 FLOPs each), plus a bias add per output element (1 x 2 x 4 x 4).
  EXPECT_EQ(up->output_shape, Shape({1, 2, 4, 4}));
  EXPECT_EQ(up->flops, 2 * 16 * 8 + 32);
  EXPECT_EQ(up->depth, 1);
  // enc1.conv1: 1 -> 2 channels 3x3 without bias on 4x4: 32 outputs x 9 x 2.
  EXPECT_EQ(conv->flops, 2 * 32 * 9);
  EXPECT_EQ(conv->depth, 2);
  EXPECT_EQ(s.parameters, unet.num_parameters());
  EXPECT_EQ(s.output_shape, Shape({1, 2, 4, 4}));
}

}  // namespace
