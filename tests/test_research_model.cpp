// A research model as a user writes one from the README and the public headers: its own Module with a
// residual block (GroupNorm, GELU, a learned per-channel scale broadcast over the map), a transposed
// convolution, bilinear upsampling, concatenation with a channel max, LayerNorm over channels through
// permutes, a custom op with its own backward, variance and mean over the map, slicing, index_select,
// and a loss written with gather. The same network in libtorch on the same weights must give the same
// logits, loss and gradients (of every parameter and of the input): the op-by-op parity of
// test_torch_parity, checked here where the ops meet.
#include <dl/dl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using dl::Tensor;
namespace ops = dl::ops;
namespace nn = dl::nn;

torch::Tensor to_torch(const Tensor& t) {
  EXPECT_TRUE(t.dtype() == dl::DType::kFloat32 || t.dtype() == dl::DType::kInt64) << dl::dtype_name(t.dtype());
  const auto type = t.dtype() == dl::DType::kInt64 ? torch::kInt64 : torch::kFloat32;
  return torch::from_blob(t.raw_data(), t.shape().vec(), type).clone();
}

// max |ours - ref| <= 1e-4 max |ref|, shapes equal.
::testing::AssertionResult close(const Tensor& ours, const torch::Tensor& ref, const std::string& what) {
  if (!ours.defined() || !ref.defined()) return ::testing::AssertionFailure() << what << ": a tensor is missing";
  const torch::Tensor r = ref.detach().contiguous().to(torch::kFloat64);
  const torch::Tensor o = to_torch(ours).to(torch::kFloat64);
  if (o.sizes() != r.sizes())
    return ::testing::AssertionFailure() << what << ": shape " << ours.shape().str() << " vs libtorch " << r.sizes();
  const double scale = r.abs().max().item<double>(), err = (o - r).abs().max().item<double>();
  if (!(scale > 0) || !(err <= 1e-4 * scale))
    return ::testing::AssertionFailure() << what << ": max error " << err << " against max |value| " << scale;
  return ::testing::AssertionSuccess();
}

// y = x^2 / 2 with its own backward dx = x dy: a user's op on the CPU.
const ops::CustomOp& half_square() {
  static const ops::CustomOp op =
      ops::CustomOp("half_square")
          .cpu(
              [](const std::vector<Tensor>& in) {
                Tensor y = Tensor::empty(in[0].shape(), in[0].dtype());
                const float* x = in[0].data<float>();
                float* p = y.data<float>();
                for (int64_t i = 0; i < y.numel(); ++i) p[i] = 0.5f * x[i] * x[i];
                return y;
              },
              [](const std::vector<Tensor>& in, const Tensor&, const Tensor& dy, const std::vector<bool>& needs) {
                std::vector<Tensor> g(1);
                if (needs[0]) g[0] = in[0] * dy;
                return g;
              });
  return op;
}

struct Block : nn::Module {
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::GroupNorm> gn1, gn2;
  Tensor gamma;  // C x 1 x 1: a learned scale of the residual branch, broadcast over N, H and W
  Block(int c, dl::Generator& gen)
      : conv1(register_module("conv1", std::make_shared<nn::Conv2d>(options(c), gen))),
        conv2(register_module("conv2", std::make_shared<nn::Conv2d>(options(c), gen))),
        gn1(register_module("gn1", std::make_shared<nn::GroupNorm>(2, c))),
        gn2(register_module("gn2", std::make_shared<nn::GroupNorm>(4, c))) {
    gamma = register_parameter("gamma", Tensor::randn({c, 1, 1}, gen));
  }
  static nn::Conv2dOptions options(int c) {
    nn::Conv2dOptions o;
    o.in_channels = o.out_channels = c;
    o.params.padding = {1, 1};
    return o;
  }
  Tensor forward(const Tensor& x) {
    const Tensor a = ops::gelu((*gn1)((*conv1)(x)));
    return x + gamma * (*gn2)((*conv2)(a));
  }
};

struct Net : nn::Module {
  std::shared_ptr<nn::Conv2d> stem;
  std::shared_ptr<Block> block;
  std::shared_ptr<nn::MaxPool2d> pool;
  std::shared_ptr<nn::ConvTranspose2d> up;
  std::shared_ptr<nn::Upsample> resize;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;
  Tensor pick = Tensor::from_vector<int64_t>({6}, {0, 3, 7, 9, 3, 12});
  explicit Net(dl::Generator& gen)
      : stem(register_module("stem", std::make_shared<nn::Conv2d>(stem_options(), gen))),
        block(register_module("block", std::make_shared<Block>(8, gen))),
        pool(register_module("pool", std::make_shared<nn::MaxPool2d>())),
        up(register_module("up", std::make_shared<nn::ConvTranspose2d>(up_options(), gen))),
        resize(register_module("resize", std::make_shared<nn::Upsample>(2, nn::Upsample::Mode::kBilinear))),
        norm(register_module("norm", std::make_shared<nn::LayerNorm>(dl::Shape{13}))),
        head(register_module("head", std::make_shared<nn::Linear>(12, 5, true, nn::Init::kGlorotUniform, gen))) {}
  static nn::Conv2dOptions stem_options() {
    nn::Conv2dOptions o;
    o.in_channels = 3;
    o.out_channels = 8;
    o.params.padding = {1, 1};
    return o;
  }
  static nn::ConvTranspose2dOptions up_options() {
    nn::ConvTranspose2dOptions o;
    o.in_channels = 8;
    o.out_channels = 4;
    o.params.stride = {2, 2};
    return o;
  }
  Tensor forward(const Tensor& x) {
    const Tensor h = ops::silu((*stem)(x));
    const Tensor h2 = block->forward(h);                   // N x 8 x H x W
    const Tensor d = (*pool)(h2);                          // N x 8 x H/2 x W/2
    const Tensor u = (*up)(d);                             // N x 4 x H x W
    const Tensor m = ops::max(h2, 1, /*keepdim=*/true);    // N x 1 x H x W
    Tensor c = ops::concat({h2 + (*resize)(d), u, m}, 1);  // N x 13 x H x W
    c = ops::permute((*norm)(ops::permute(c, {0, 2, 3, 1})), {0, 3, 1, 2});
    c = half_square()({ops::tanh(c)}) + ops::leaky_relu(c, 0.1);
    const Tensor z = ops::var(c, {2, 3}) + ops::mean(c, {2, 3}) * 0.5;  // N x 13
    const Tensor f = ops::slice(ops::index_select(z, 1, pick), 1, 0, 6, 1) - ops::slice(z, 1, 1, 13, 2);
    return (*head)(ops::concat({f, ops::sigmoid(f)}, 1));  // N x 5
  }
};

TEST(ResearchModel, MatchesLibtorchForwardAndBackward) {
  dl::Generator gen(2024);
  Net net(gen);
  Tensor x = Tensor::randn({3, 3, 12, 10}, gen);
  x.set_requires_grad(true);
  const Tensor labels = Tensor::from_vector<int64_t>({3, 1}, {4, 0, 2});
  const Tensor logits = net.forward(x);
  const Tensor loss = -ops::mean(ops::gather(ops::log_softmax(logits), 1, labels));
  loss.backward();

  // The same network in libtorch, on copies of the weights.
  std::map<std::string, torch::Tensor> w;
  for (const auto& [name, t] : net.named_parameters()) w[name] = to_torch(t).requires_grad_(true);
  const torch::Tensor tx = to_torch(x).requires_grad_(true);
  namespace F = torch::nn::functional;
  auto conv = [&](const torch::Tensor& in, const std::string& n) {
    return torch::conv2d(in, w[n + ".weight"], w[n + ".bias"], 1, 1);
  };
  const torch::Tensor th = torch::silu(conv(tx, "stem"));
  const torch::Tensor ta =
      torch::gelu(torch::group_norm(conv(th, "block.conv1"), 2, w["block.gn1.weight"], w["block.gn1.bias"], 1e-5));
  const torch::Tensor th2 = th + w["block.gamma"] * torch::group_norm(conv(ta, "block.conv2"), 4, w["block.gn2.weight"],
                                                                      w["block.gn2.bias"], 1e-5);
  const torch::Tensor td = torch::max_pool2d(th2, 2, 2);
  const torch::Tensor tu = torch::conv_transpose2d(td, w["up.weight"], w["up.bias"], 2);
  const torch::Tensor tm = std::get<0>(th2.max(1, true));
  const torch::Tensor tr = F::interpolate(
      td, F::InterpolateFuncOptions().size(std::vector<int64_t>{12, 10}).mode(torch::kBilinear).align_corners(false));
  torch::Tensor tc = torch::cat({th2 + tr, tu, tm}, 1);
  tc = torch::layer_norm(tc.permute({0, 2, 3, 1}), {13}, w["norm.weight"], w["norm.bias"], 1e-5).permute({0, 3, 1, 2});
  tc = 0.5 * torch::tanh(tc) * torch::tanh(tc) + torch::leaky_relu(tc, 0.1);
  const torch::Tensor tz = tc.var({2, 3}) + tc.mean({2, 3}) * 0.5;
  const torch::Tensor tpick = torch::tensor({0, 3, 7, 9, 3, 12}, torch::kLong);
  const torch::Tensor tf = tz.index_select(1, tpick).slice(1, 0, 6) - tz.slice(1, 1, 13, 2);
  const torch::Tensor tlogits =
      torch::linear(torch::cat({tf, torch::sigmoid(tf)}, 1), w["head.weight"], w["head.bias"]);
  const torch::Tensor tloss = -torch::log_softmax(tlogits, 1).gather(1, to_torch(labels)).mean();
  tloss.backward();

  EXPECT_TRUE(close(logits, tlogits, "logits"));
  EXPECT_TRUE(close(loss, tloss.reshape({1}), "loss"));
  EXPECT_TRUE(close(x.grad(), tx.grad(), "the input's gradient"));
  for (const auto& [name, t] : net.named_parameters()) EXPECT_TRUE(close(t.grad(), w[name].grad(), name + ".grad"));
  EXPECT_EQ(net.named_parameters().size(), 17u);  // every parameter compared (a missed registration shows)
}

}  // namespace
