// Finite-difference gradient checks in float64 of every differentiable op, over several shapes and
// parameter sets (tests/gradcheck.h; Note [gradcheck tolerance] there).
#include <dl/dl.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gradcheck.h"

namespace {

using dl::DType;
using dl::Generator;
using dl::Shape;
using dl::Tensor;
using dl::testing::gradcheck;
using dl::testing::make_away_from_zero;
using dl::testing::make_distinct;
namespace ops = dl::ops;
using Inputs = std::vector<Tensor>;

Tensor randn64(const Shape& s, Generator& gen) { return Tensor::randn(s, gen, DType::kFloat64); }

Tensor labels_of(const Shape& s, const std::vector<int32_t>& v) { return Tensor::from_vector<int32_t>(s, v); }

// ---- the checker itself ----

// y = 2 x with a backward that is wrong by 0.1 %: the checker must notice.
Tensor wrong_double(const Tensor& x) {
  Tensor y;
  {
    dl::autograd::NoGradGuard no_grad;
    y = ops::scale(x, 2.0);
  }
  return dl::autograd::record("wrong_double", y, {x}, [](const Tensor& gy, const std::vector<bool>&) {
    return std::vector<Tensor>{ops::scale(gy, 2.002)};
  });
}

TEST(Gradcheck, DetectsAWrongBackward) {
  Generator gen(1);
  const Tensor x = randn64({3, 4}, gen);
  EXPECT_FALSE(gradcheck([](const Inputs& in) { return wrong_double(in[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::scale(in[0], 2.0); }, {x}));
}

TEST(Gradcheck, DetectsAMissingGradient) {
  Generator gen(2);
  const Tensor x = randn64({5}, gen), z = randn64({5}, gen);
  // The detached path carries no gradient back to x: the numeric gradient is not zero.
  EXPECT_FALSE(gradcheck([](const Inputs& in) { return ops::mul(in[0].detach(), in[1]); }, {x, z}));
}

TEST(Gradcheck, LeavesTheCallersInputsUntouched) {
  Generator gen(3);
  const Tensor x = randn64({4}, gen);
  const Tensor before = x.clone();
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::mul(in[0], in[0]); }, {x}));
  EXPECT_FALSE(x.requires_grad());
  EXPECT_FALSE(x.grad().defined());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(x.data<double>()[i], before.data<double>()[i]);
}

// ---- conv2d ----

struct ConvCase {
  std::string name;
  Shape x, w;
  dl::Conv2dParams p;
  bool bias;
};

void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }

class Conv2dGrad : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dGrad, InputWeightBias) {
  const ConvCase& c = GetParam();
  Generator gen(10);
  const Tensor x = randn64(c.x, gen), w = randn64(c.w, gen);
  const dl::Conv2dParams p = c.p;
  if (c.bias) {
    const Tensor b = randn64({c.w[0]}, gen);
    EXPECT_TRUE(gradcheck([p](const Inputs& in) { return ops::conv2d(in[0], in[1], in[2], p); }, {x, w, b}));
  } else {
    EXPECT_TRUE(gradcheck([p](const Inputs& in) { return ops::conv2d(in[0], in[1], Tensor(), p); }, {x, w}));
  }
}

TEST_P(Conv2dGrad, InputOnlyAndWeightOnly) {
  const ConvCase& c = GetParam();
  Generator gen(11);
  const Tensor x = randn64(c.x, gen), w = randn64(c.w, gen), b = randn64({c.w[0]}, gen);
  const dl::Conv2dParams p = c.p;
  auto f = [p](const Inputs& in) { return ops::conv2d(in[0], in[1], in[2], p); };
  EXPECT_TRUE(gradcheck(f, {x, w, b}, {true, false, false}));
  EXPECT_TRUE(gradcheck(f, {x, w, b}, {false, true, false}));
}

dl::Conv2dParams conv_params(std::array<int, 2> stride, std::array<int, 2> padding, std::array<int, 2> dilation,
                             int groups) {
  dl::Conv2dParams p;
  p.stride = stride;
  p.padding = padding;
  p.dilation = dilation;
  p.groups = groups;
  return p;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, Conv2dGrad,
    ::testing::Values(
        ConvCase{"Basic3x3Pad1", {2, 3, 5, 5}, {4, 3, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 1), true},
        ConvCase{"NoPadNoBias", {1, 2, 5, 4}, {3, 2, 3, 3}, conv_params({1, 1}, {0, 0}, {1, 1}, 1), false},
        ConvCase{"Stride2NonSquare", {2, 3, 7, 6}, {4, 3, 3, 2}, conv_params({2, 2}, {1, 0}, {1, 1}, 1), true},
        ConvCase{"Dilation2", {1, 2, 7, 8}, {3, 2, 3, 3}, conv_params({1, 1}, {2, 1}, {2, 2}, 1), false},
        ConvCase{"Groups2", {2, 4, 6, 5}, {6, 2, 3, 3}, conv_params({1, 2}, {1, 1}, {1, 1}, 2), true},
        ConvCase{"Groups2NoBias", {3, 4, 5, 5}, {4, 2, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 2), false},
        ConvCase{"Depthwise", {2, 3, 5, 4}, {3, 1, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 3), true},
        ConvCase{"Pointwise", {2, 4, 3, 3}, {5, 4, 1, 1}, conv_params({1, 1}, {0, 0}, {1, 1}, 1), true},
        ConvCase{"PointwiseGroupsNoBias", {2, 4, 3, 2}, {6, 2, 1, 1}, conv_params({1, 1}, {0, 0}, {1, 1}, 2), false},
        ConvCase{"PointwiseStride2", {1, 3, 5, 5}, {2, 3, 1, 1}, conv_params({2, 2}, {0, 0}, {1, 1}, 1), true},
        ConvCase{"Mixed", {2, 4, 7, 9}, {6, 2, 2, 3}, conv_params({2, 1}, {1, 2}, {1, 2}, 2), false},
        ConvCase{"PaddingBeyondKernel", {1, 2, 3, 4}, {2, 2, 2, 2}, conv_params({1, 2}, {3, 2}, {1, 1}, 1), true},
        ConvCase{"Stride3PadDilated", {1, 2, 9, 8}, {2, 2, 3, 2}, conv_params({3, 2}, {2, 1}, {2, 3}, 1), true}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return info.param.name; });

// ---- batch_norm ----

struct BnCase {
  std::string name;
  Shape x;
  bool training;
};

void PrintTo(const BnCase& c, std::ostream* os) { *os << c.name; }

class BatchNormGrad : public ::testing::TestWithParam<BnCase> {};

TEST_P(BatchNormGrad, InputGammaBeta) {
  const BnCase& c = GetParam();
  Generator gen(20);
  const int64_t ch = c.x[1];
  Tensor x = randn64(c.x, gen);
  Tensor gamma = Tensor::uniform({ch}, 0.5, 1.5, gen, DType::kFloat64);
  Tensor beta = randn64({ch}, gen);
  // Running statistics: the inference mode reads them; training updates them (not in the graph).
  Tensor rm = randn64({ch}, gen);
  Tensor rv = Tensor::uniform({ch}, 0.5, 2.0, gen, DType::kFloat64);
  ops::BatchNormOptions opt;
  opt.training = c.training;
  auto f = [rm, rv, opt](const Inputs& in) mutable { return ops::batch_norm(in[0], in[1], in[2], rm, rv, opt); };
  EXPECT_TRUE(gradcheck(f, {x, gamma, beta}));
  EXPECT_TRUE(gradcheck(f, {x, gamma, beta}, {true, false, false}));
  EXPECT_TRUE(gradcheck(f, {x, gamma, beta}, {false, true, true}));
}

INSTANTIATE_TEST_SUITE_P(Cases, BatchNormGrad,
                         ::testing::Values(BnCase{"Train4d", {3, 2, 3, 4}, true}, BnCase{"Train2d", {5, 3}, true},
                                           BnCase{"TrainOneImage", {1, 3, 2, 3}, true},
                                           BnCase{"Infer4d", {2, 3, 3, 2}, false}, BnCase{"Infer2d", {4, 3}, false}),
                         [](const ::testing::TestParamInfo<BnCase>& info) { return info.param.name; });

// ---- pooling ----

struct PoolCase {
  std::string name;
  Shape x;
  dl::Pool2dParams p;
};

void PrintTo(const PoolCase& c, std::ostream* os) { *os << c.name; }

dl::Pool2dParams pool_params(std::array<int, 2> kernel, std::array<int, 2> stride, std::array<int, 2> padding) {
  dl::Pool2dParams p;
  p.kernel = kernel;
  p.stride = stride;
  p.padding = padding;
  return p;
}

class PoolGrad : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolGrad, MaxPool) {
  const PoolCase& c = GetParam();
  Generator gen(30);
  const Tensor x = make_distinct(c.x, gen);  // no ties: the argmax cannot move under +-step
  const dl::Pool2dParams p = c.p;
  EXPECT_TRUE(gradcheck([p](const Inputs& in) { return ops::max_pool2d(in[0], p); }, {x}));
}

TEST_P(PoolGrad, AvgPool) {
  const PoolCase& c = GetParam();
  Generator gen(31);
  const Tensor x = randn64(c.x, gen);
  const dl::Pool2dParams p = c.p;
  EXPECT_TRUE(gradcheck([p](const Inputs& in) { return ops::avg_pool2d(in[0], p); }, {x}));
}

INSTANTIATE_TEST_SUITE_P(Cases, PoolGrad,
                         ::testing::Values(PoolCase{"K2S2", {2, 3, 4, 6}, pool_params({2, 2}, {2, 2}, {0, 0})},
                                           PoolCase{
                                               "K3S2Pad1Overlap", {2, 2, 7, 6}, pool_params({3, 3}, {2, 2}, {1, 1})},
                                           PoolCase{"K3S1Pad1", {1, 2, 5, 5}, pool_params({3, 3}, {1, 1}, {1, 1})},
                                           PoolCase{"NonSquare", {2, 2, 6, 7}, pool_params({3, 2}, {1, 2}, {1, 0})},
                                           PoolCase{"K2S1Pad1", {1, 3, 4, 3}, pool_params({2, 2}, {1, 1}, {1, 1})},
                                           PoolCase{"K3S2OddSize", {1, 2, 7, 7}, pool_params({3, 3}, {2, 2}, {0, 0})}),
                         [](const ::testing::TestParamInfo<PoolCase>& info) { return info.param.name; });

TEST(GlobalAvgPoolGrad, NonSquare) {
  Generator gen(32);
  const Tensor x = randn64({2, 3, 4, 5}, gen);
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::global_avg_pool2d(in[0]); }, {x}));
}

// ---- relu ----

TEST(ReluGrad, AwayFromTheKink) {
  Generator gen(40);
  for (const Shape& s : {Shape{7}, Shape{3, 5}, Shape{2, 3, 4, 2}}) {
    const Tensor x = make_away_from_zero(s, gen);
    EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::relu(in[0]); }, {x})) << s.str();
  }
}

// ---- softmax, log_softmax ----

TEST(SoftmaxGrad, TwoAndFourDims) {
  Generator gen(50);
  for (const Shape& s : {Shape{3, 5}, Shape{4, 1}, Shape{2, 4, 3, 2}}) {
    const Tensor x = randn64(s, gen);
    EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::softmax(in[0]); }, {x})) << s.str();
    EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::log_softmax(in[0]); }, {x})) << s.str();
  }
}

TEST(SoftmaxGrad, LargeLogits) {
  Generator gen(51);
  const Tensor x = ops::scale(randn64({3, 6}, gen), 30.0);  // exercises the max subtraction
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::log_softmax(in[0]); }, {x}));
}

// ---- cross_entropy ----

TEST(CrossEntropyGrad, TwoDims) {
  Generator gen(60);
  const Tensor x = randn64({5, 4}, gen);
  const Tensor y = labels_of({5}, {0, 3, 1, 3, 2});
  EXPECT_TRUE(gradcheck([y](const Inputs& in) { return ops::cross_entropy(in[0], y); }, {x}));
}

TEST(CrossEntropyGrad, TwoDimsWeightedWithIgnore) {
  Generator gen(61);
  const Tensor x = randn64({6, 4}, gen);
  ops::CrossEntropyOptions opt;
  opt.class_weights = Tensor::from_vector<double>({4}, {0.5, 2.0, 1.0, 3.0});
  opt.ignore_index = 255;
  const Tensor y = labels_of({6}, {0, 255, 1, 3, 255, 3});
  EXPECT_TRUE(gradcheck([y, opt](const Inputs& in) { return ops::cross_entropy(in[0], y, opt); }, {x}));
}

TEST(CrossEntropyGrad, IgnoreIndexInsideTheClassRange) {
  Generator gen(62);
  const Tensor x = randn64({5, 3}, gen);
  ops::CrossEntropyOptions opt;
  opt.ignore_index = 1;
  const Tensor y = labels_of({5}, {0, 1, 2, 1, 0});
  EXPECT_TRUE(gradcheck([y, opt](const Inputs& in) { return ops::cross_entropy(in[0], y, opt); }, {x}));
}

TEST(CrossEntropyGrad, FourDimsWeightedWithIgnore) {
  Generator gen(63);
  const Tensor x = randn64({2, 3, 3, 4}, gen);
  ops::CrossEntropyOptions opt;
  opt.class_weights = Tensor::from_vector<double>({3}, {1.5, 0.25, 1.0});
  opt.ignore_index = 11;
  std::vector<int32_t> v(2 * 3 * 4);
  for (size_t i = 0; i < v.size(); ++i) v[i] = i % 5 == 4 ? 11 : static_cast<int32_t>(gen.below(3));
  const Tensor y = labels_of({2, 3, 4}, v);
  EXPECT_TRUE(gradcheck([y, opt](const Inputs& in) { return ops::cross_entropy(in[0], y, opt); }, {x}));
}

TEST(CrossEntropyGrad, FourDimsUnweighted) {
  Generator gen(64);
  const Tensor x = randn64({1, 4, 2, 3}, gen);
  const Tensor y = labels_of({1, 2, 3}, {3, 0, 1, 2, 2, 0});
  EXPECT_TRUE(gradcheck([y](const Inputs& in) { return ops::cross_entropy(in[0], y); }, {x}));
}

// ---- linear ----

TEST(LinearGrad, WithAndWithoutBias) {
  Generator gen(70);
  const Tensor x = randn64({4, 5}, gen), w = randn64({3, 5}, gen), b = randn64({3}, gen);
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::linear(in[0], in[1], in[2]); }, {x, w, b}));
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::linear(in[0], in[1], Tensor()); }, {x, w}));
  EXPECT_TRUE(
      gradcheck([](const Inputs& in) { return ops::linear(in[0], in[1], in[2]); }, {x, w, b}, {false, true, true}));
  const Tensor x1 = randn64({1, 7}, gen), w1 = randn64({1, 7}, gen);
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::linear(in[0], in[1], Tensor()); }, {x1, w1}));
}

// ---- shape ops ----

TEST(ShapeOpsGrad, ReshapeAndFlatten) {
  Generator gen(80);
  const Tensor x = randn64({2, 3, 2, 2}, gen);
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::reshape(in[0], {4, 6}); }, {x}));
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::flatten(in[0]); }, {x}));
  // Through a view into a non-linear op, with x reaching the output twice.
  EXPECT_TRUE(gradcheck(
      [](const Inputs& in) {
        return ops::mul(ops::flatten(in[0]), ops::reshape(in[0], {2, 12}));
      },
      {x}));
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::softmax(ops::reshape(in[0], {6, 4})); }, {x}));
}

TEST(ShapeOpsGrad, ConcatThree) {
  Generator gen(81);
  const Tensor a = randn64({2, 1, 3, 2}, gen), b = randn64({2, 3, 3, 2}, gen), c = randn64({2, 2, 3, 2}, gen);
  auto f = [](const Inputs& in) { return ops::concat({in[0], in[1], in[2]}); };
  EXPECT_TRUE(gradcheck(f, {a, b, c}));
  EXPECT_TRUE(gradcheck(f, {a, b, c}, {true, false, true}));
  const Tensor p = randn64({3, 2}, gen), q = randn64({3, 4}, gen), r = randn64({3, 1}, gen);
  EXPECT_TRUE(gradcheck(f, {p, q, r}));
  // The same tensor concatenated with itself gets both slices' gradients.
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::concat({in[0], in[1], in[0]}); }, {a, c}));
}

// ---- element-wise and reductions ----

TEST(ElementwiseGrad, Binary) {
  Generator gen(90);
  for (const Shape& s : {Shape{5}, Shape{2, 3, 2, 2}}) {
    const Tensor a = randn64(s, gen), b = randn64(s, gen);
    EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::add(in[0], in[1]); }, {a, b}));
    EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::sub(in[0], in[1]); }, {a, b}));
    EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::mul(in[0], in[1]); }, {a, b}));
    EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::sub(in[0], in[1]); }, {a, b}, {false, true}));
    EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::mul(in[0], in[1]); }, {a, b}, {true, false}));
  }
}

TEST(ElementwiseGrad, SameTensorTwice) {
  Generator gen(91);
  const Tensor a = randn64({3, 4}, gen);
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::add(in[0], in[0]); }, {a}));
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::sub(in[0], in[0]); }, {a}));
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::mul(in[0], in[0]); }, {a}));
}

TEST(ElementwiseGrad, ScaleSumMean) {
  Generator gen(92);
  const Tensor a = randn64({2, 3, 4}, gen);
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::scale(in[0], -1.75); }, {a}));
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::sum(in[0]); }, {a}));
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::mean(in[0]); }, {a}));
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::mean(ops::mul(in[0], in[0])); }, {a}));
}

// ---- a small network, end to end (no kinks on the path) ----

TEST(CompositeGrad, ConvBatchNormPoolLinearLoss) {
  Generator gen(100);
  const Tensor x = randn64({3, 2, 6, 6}, gen);
  const Tensor w1 = ops::scale(randn64({4, 2, 3, 3}, gen), 0.5), b1 = randn64({4}, gen);
  const Tensor gamma = Tensor::uniform({4}, 0.5, 1.5, gen, DType::kFloat64), beta = randn64({4}, gen);
  const Tensor w2 = randn64({3, 4 * 3 * 3}, gen), b2 = randn64({3}, gen);
  Tensor rm = Tensor::zeros({4}, DType::kFloat64), rv = Tensor::ones({4}, DType::kFloat64);
  const Tensor y = labels_of({3}, {2, 0, 1});
  dl::Conv2dParams cp;
  cp.padding = {1, 1};
  auto f = [=](const Inputs& in) mutable {
    Tensor h = ops::conv2d(in[0], in[1], in[2], cp);
    h = ops::batch_norm(h, in[3], in[4], rm, rv, {});
    h = ops::avg_pool2d(h, {});                      // 3 x 4 x 3 x 3
    h = ops::linear(ops::flatten(h), in[5], in[6]);  // 3 x 3
    return ops::cross_entropy(h, y);
  };
  EXPECT_TRUE(gradcheck(f, {x, w1, b1, gamma, beta, w2, b2}));
}

}  // namespace
