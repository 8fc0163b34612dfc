// Parity with libtorch, in float32 on the CPU: for every op, the same random inputs go through
// libdl and through libtorch; forward outputs and the gradients of L = sum(y * R) (inputs and
// parameters) must agree to a relative tolerance of 1e-4 of the reference's largest magnitude.
// Batch norm's running statistics are compared after each training step as well.
//
// This is the only translation unit that includes libtorch (its headers compile slowly).
#include <dl/dl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

using dl::DType;
using dl::Generator;
using dl::Shape;
using dl::Tensor;
namespace ops = dl::ops;
namespace F = torch::nn::functional;

constexpr double kRtol = 1e-4;  // relative to the reference's max |value|

// ---- copies between the two libraries (raw memcpy of contiguous buffers) ----

torch::ScalarType torch_dtype(DType t) {
  switch (t) {
    case DType::kFloat32:
      return torch::kFloat32;
    case DType::kFloat64:
      return torch::kFloat64;
    case DType::kInt32:
      return torch::kInt32;
    case DType::kUInt8:
      return torch::kUInt8;
  }
  return torch::kFloat32;
}

DType dl_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return DType::kFloat32;
    case torch::kFloat64:
      return DType::kFloat64;
    case torch::kInt32:
      return DType::kInt32;
    case torch::kUInt8:
      return DType::kUInt8;
    default:
      throw std::runtime_error("no libdl dtype for this torch dtype");
  }
}

torch::Tensor to_torch(const Tensor& t) {
  return torch::from_blob(t.raw_data(), t.shape().vec(), torch::TensorOptions().dtype(torch_dtype(t.dtype()))).clone();
}

Tensor from_torch(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().contiguous();
  Tensor out = Tensor::empty(Shape(c.sizes().vec()), dl_dtype(c.scalar_type()));
  if (out.nbytes() > 0) std::memcpy(out.raw_data(), c.data_ptr(), out.nbytes());
  return out;
}

// max |ours - ref| <= kRtol * max |ref|, same number of elements (a torch 0-dim scalar matches [1]).
::testing::AssertionResult close(const Tensor& ours, const torch::Tensor& ref_in, const char* what) {
  if (!ours.defined()) return ::testing::AssertionFailure() << what << ": libdl gave no tensor";
  if (!ref_in.defined()) return ::testing::AssertionFailure() << what << ": libtorch gave no tensor";
  const torch::Tensor ref = ref_in.detach().to(torch::kFloat64).contiguous();
  if (ref.dim() != 0 && Shape(ref.sizes().vec()) != ours.shape())
    return ::testing::AssertionFailure() << what << ": shape " << ours.shape().str() << ", libtorch "
                                         << Shape(ref.sizes().vec()).str();
  if (ref.numel() != ours.numel())
    return ::testing::AssertionFailure() << what << ": " << ours.numel() << " elements, libtorch " << ref.numel();
  const Tensor a = ours.to(DType::kFloat64);
  const double* pa = a.data<double>();
  const double* pr = ref.data_ptr<double>();
  double max_ref = 0, max_diff = 0;
  int64_t worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    max_ref = std::max(max_ref, std::abs(pr[i]));
    const double d = std::abs(pa[i] - pr[i]);
    if (!(d <= max_diff)) {  // NaN lands here and stays
      max_diff = d;
      worst = i;
    }
  }
  const double bound = kRtol * std::max(max_ref, 1e-30);
  if (!(max_diff <= bound))
    return ::testing::AssertionFailure() << what << ": max |diff| " << max_diff << " at element " << worst << " (libdl "
                                         << pa[worst] << ", libtorch " << pr[worst] << ") > " << bound << " = " << kRtol
                                         << " * max |ref| " << max_ref;
  return ::testing::AssertionSuccess();
}

using DlFn = std::function<Tensor(const std::vector<Tensor>&)>;
using TorchFn = std::function<torch::Tensor(const std::vector<torch::Tensor>&)>;

// Runs both functions on copies of `inputs` (float32, all differentiated), compares the outputs,
// back-propagates sum(y * R) with the same random R in both, and compares every input's gradient.
void expect_parity(const std::vector<Tensor>& inputs, const DlFn& ours, const TorchFn& theirs, uint64_t seed = 99) {
  std::vector<Tensor> xs;
  std::vector<torch::Tensor> ts;
  for (const Tensor& in : inputs) {
    Tensor x = in.clone();
    x.set_requires_grad(true);
    xs.push_back(x);
    ts.push_back(to_torch(in).set_requires_grad(true));
  }
  const Tensor y = ours(xs);
  const torch::Tensor yt = theirs(ts);
  ASSERT_TRUE(close(y, yt, "forward"));

  Generator gen(seed);
  const Tensor r = Tensor::randn(y.shape(), gen);
  ops::sum(ops::mul(y, r)).backward();
  torch::Tensor rt = to_torch(r);
  if (yt.dim() == 0) rt = rt.reshape({});
  (yt * rt).sum().backward();
  for (size_t i = 0; i < xs.size(); ++i) {
    const std::string what = "grad of input " + std::to_string(i) + " " + inputs[i].shape().str();
    EXPECT_TRUE(close(xs[i].grad(), ts[i].grad(), what.c_str()));
  }
}

Tensor randn(const Shape& s, Generator& gen) { return Tensor::randn(s, gen); }

torch::Tensor labels_to_torch(const Tensor& labels) { return to_torch(labels).to(torch::kLong); }

// ---- conv2d ----

struct ConvCase {
  std::string name;
  Shape x, w;
  dl::Conv2dParams p;
  bool bias;
};

void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }

dl::Conv2dParams conv_params(std::array<int, 2> stride, std::array<int, 2> padding, std::array<int, 2> dilation,
                             int groups) {
  dl::Conv2dParams p;
  p.stride = stride;
  p.padding = padding;
  p.dilation = dilation;
  p.groups = groups;
  return p;
}

class Conv2dParity : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dParity, ForwardBackward) {
  const ConvCase& c = GetParam();
  Generator gen(1);
  std::vector<Tensor> in{randn(c.x, gen), randn(c.w, gen)};
  if (c.bias) in.push_back(randn({c.w[0]}, gen));
  const dl::Conv2dParams p = c.p;
  const bool bias = c.bias;
  expect_parity(
      in, [p, bias](const std::vector<Tensor>& v) { return ops::conv2d(v[0], v[1], bias ? v[2] : Tensor(), p); },
      [p, bias](const std::vector<torch::Tensor>& v) {
        return torch::conv2d(v[0], v[1], bias ? v[2] : torch::Tensor(), {p.stride[0], p.stride[1]},
                             {p.padding[0], p.padding[1]}, {p.dilation[0], p.dilation[1]}, p.groups);
      });
}

INSTANTIATE_TEST_SUITE_P(
    Cases, Conv2dParity,
    ::testing::Values(
        ConvCase{"Basic3x3Pad1", {2, 3, 9, 9}, {8, 3, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 1), true},
        ConvCase{"Wide", {4, 16, 15, 17}, {32, 16, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 1), true},
        ConvCase{"Stride2NonSquare", {2, 3, 11, 8}, {6, 3, 3, 2}, conv_params({2, 2}, {1, 0}, {1, 1}, 1), true},
        ConvCase{"Dilation2NoBias", {3, 4, 12, 10}, {5, 4, 3, 3}, conv_params({1, 1}, {2, 1}, {2, 2}, 1), false},
        ConvCase{"Groups2", {2, 8, 9, 7}, {6, 4, 3, 3}, conv_params({1, 2}, {1, 1}, {1, 1}, 2), true},
        ConvCase{"Groups4NoBias", {5, 8, 6, 6}, {8, 2, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 4), false},
        ConvCase{"Depthwise", {2, 6, 10, 9}, {6, 1, 3, 3}, conv_params({2, 1}, {1, 1}, {1, 1}, 6), true},
        ConvCase{"Pointwise", {3, 16, 7, 5}, {24, 16, 1, 1}, conv_params({1, 1}, {0, 0}, {1, 1}, 1), true},
        ConvCase{"PointwiseStride2", {2, 8, 9, 9}, {4, 8, 1, 1}, conv_params({2, 2}, {0, 0}, {1, 1}, 1), false},
        ConvCase{"Kernel7Stride2Pad3", {2, 3, 32, 30}, {8, 3, 7, 7}, conv_params({2, 2}, {3, 3}, {1, 1}, 1), true},
        ConvCase{"PaddingBeyondKernel", {2, 3, 5, 6}, {4, 3, 2, 2}, conv_params({2, 1}, {3, 2}, {1, 1}, 1), true},
        ConvCase{"AsppRate6", {1, 8, 20, 20}, {4, 8, 3, 3}, conv_params({1, 1}, {6, 6}, {6, 6}, 1), true},
        ConvCase{"Mixed", {3, 4, 13, 15}, {6, 2, 2, 3}, conv_params({2, 1}, {1, 2}, {1, 2}, 2), false}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return info.param.name; });

// ---- batch_norm ----

struct BnCase {
  std::string name;
  Shape x;
  double momentum, eps;
};

void PrintTo(const BnCase& c, std::ostream* os) { *os << c.name; }

class BatchNormParity : public ::testing::TestWithParam<BnCase> {};

TEST_P(BatchNormParity, TrainingStepsThenInference) {
  const BnCase& c = GetParam();
  Generator gen(2);
  const int64_t ch = c.x[1];
  const Tensor gamma = Tensor::uniform({ch}, 0.5, 1.5, gen), beta = randn({ch}, gen);
  Tensor rm = randn({ch}, gen), rv = Tensor::uniform({ch}, 0.5, 2.0, gen);
  torch::Tensor rm_t = to_torch(rm), rv_t = to_torch(rv);
  ops::BatchNormOptions opt;
  opt.momentum = c.momentum;
  opt.eps = c.eps;

  for (int step = 0; step < 3; ++step) {
    SCOPED_TRACE("training step " + std::to_string(step));
    // A shifted, scaled batch, so that the statistics are not those of N(0, 1).
    const Tensor x = ops::add(ops::scale(randn(c.x, gen), 2.0 + step), Tensor::full(c.x, 0.5 * step));
    expect_parity(
        {x, gamma, beta}, [&](const std::vector<Tensor>& v) { return ops::batch_norm(v[0], v[1], v[2], rm, rv, opt); },
        [&](const std::vector<torch::Tensor>& v) {
          return torch::batch_norm(v[0], v[1], v[2], rm_t, rv_t, /*training=*/true, c.momentum, c.eps,
                                   /*cudnn_enabled=*/false);
        });
    EXPECT_TRUE(close(rm, rm_t, "running_mean"));
    EXPECT_TRUE(close(rv, rv_t, "running_var (unbiased)"));
  }

  opt.training = false;
  const Tensor x = randn(c.x, gen);
  expect_parity(
      {x, gamma, beta}, [&](const std::vector<Tensor>& v) { return ops::batch_norm(v[0], v[1], v[2], rm, rv, opt); },
      [&](const std::vector<torch::Tensor>& v) {
        return torch::batch_norm(v[0], v[1], v[2], rm_t, rv_t, /*training=*/false, c.momentum, c.eps, false);
      });
  EXPECT_TRUE(close(rm, rm_t, "running_mean unchanged in inference"));
  EXPECT_TRUE(close(rv, rv_t, "running_var unchanged in inference"));
}

INSTANTIATE_TEST_SUITE_P(Cases, BatchNormParity,
                         ::testing::Values(BnCase{"Conv4d", {4, 3, 5, 6}, 0.1, 1e-5},
                                           BnCase{"Conv4dMomentum03", {2, 8, 7, 7}, 0.3, 1e-3},
                                           BnCase{"OneImage", {1, 4, 3, 5}, 0.1, 1e-5},
                                           BnCase{"Features2d", {16, 10}, 0.1, 1e-5},
                                           BnCase{"Features2dThreeRows", {3, 5}, 0.5, 1e-5}),
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

class PoolParity : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolParity, MaxPool) {
  const PoolCase& c = GetParam();
  Generator gen(3);
  const dl::Pool2dParams p = c.p;
  expect_parity(
      {randn(c.x, gen)}, [p](const std::vector<Tensor>& v) { return ops::max_pool2d(v[0], p); },
      [p](const std::vector<torch::Tensor>& v) {
        return torch::max_pool2d(v[0], {p.kernel[0], p.kernel[1]}, {p.stride[0], p.stride[1]},
                                 {p.padding[0], p.padding[1]});
      });
}

TEST_P(PoolParity, AvgPoolCountsPadding) {
  const PoolCase& c = GetParam();
  Generator gen(4);
  const dl::Pool2dParams p = c.p;
  expect_parity(
      {randn(c.x, gen)}, [p](const std::vector<Tensor>& v) { return ops::avg_pool2d(v[0], p); },
      [p](const std::vector<torch::Tensor>& v) {
        return torch::avg_pool2d(v[0], {p.kernel[0], p.kernel[1]}, {p.stride[0], p.stride[1]},
                                 {p.padding[0], p.padding[1]}, /*ceil_mode=*/false, /*count_include_pad=*/true);
      });
}

INSTANTIATE_TEST_SUITE_P(Cases, PoolParity,
                         ::testing::Values(PoolCase{"K2S2", {2, 3, 8, 6}, pool_params({2, 2}, {2, 2}, {0, 0})},
                                           PoolCase{"K2S2OddSize", {2, 3, 9, 7}, pool_params({2, 2}, {2, 2}, {0, 0})},
                                           PoolCase{
                                               "K3S2Pad1Overlap", {2, 4, 11, 10}, pool_params({3, 3}, {2, 2}, {1, 1})},
                                           PoolCase{"K3S1Pad1", {1, 2, 6, 7}, pool_params({3, 3}, {1, 1}, {1, 1})},
                                           PoolCase{"NonSquare", {2, 2, 8, 9}, pool_params({3, 2}, {1, 2}, {1, 0})},
                                           PoolCase{"K5S3Pad2", {2, 3, 13, 12}, pool_params({5, 5}, {3, 3}, {2, 2})}),
                         [](const ::testing::TestParamInfo<PoolCase>& info) { return info.param.name; });

TEST(GlobalAvgPoolParity, NonSquare) {
  Generator gen(5);
  expect_parity(
      {randn({3, 5, 7, 6}, gen)}, [](const std::vector<Tensor>& v) { return ops::global_avg_pool2d(v[0]); },
      [](const std::vector<torch::Tensor>& v) {
        return torch::adaptive_avg_pool2d(v[0], {1, 1});
      });
}

// ---- activations, softmax ----

TEST(ReluParity, Shapes) {
  Generator gen(6);
  for (const Shape& s : {Shape{17}, Shape{4, 9}, Shape{2, 3, 5, 7}}) {
    SCOPED_TRACE(s.str());
    expect_parity(
        {randn(s, gen)}, [](const std::vector<Tensor>& v) { return ops::relu(v[0]); },
        [](const std::vector<torch::Tensor>& v) { return torch::relu(v[0]); });
  }
}

TEST(SoftmaxParity, TwoAndFourDims) {
  Generator gen(7);
  for (const Shape& s : {Shape{5, 10}, Shape{3, 1}, Shape{2, 6, 4, 5}}) {
    SCOPED_TRACE(s.str());
    const Tensor x = ops::scale(randn(s, gen), 3.0);
    expect_parity(
        {x}, [](const std::vector<Tensor>& v) { return ops::softmax(v[0]); },
        [](const std::vector<torch::Tensor>& v) { return torch::softmax(v[0], 1); });
    expect_parity(
        {x}, [](const std::vector<Tensor>& v) { return ops::log_softmax(v[0]); },
        [](const std::vector<torch::Tensor>& v) { return torch::log_softmax(v[0], 1); });
  }
}

// ---- cross_entropy ----

struct CeCase {
  std::string name;
  Shape logits;
  bool weighted;
  int32_t ignore_index;  // -1: none
};

void PrintTo(const CeCase& c, std::ostream* os) { *os << c.name; }

class CrossEntropyParity : public ::testing::TestWithParam<CeCase> {};

TEST_P(CrossEntropyParity, ForwardBackward) {
  const CeCase& c = GetParam();
  Generator gen(8);
  const int64_t classes = c.logits[1];
  std::vector<int64_t> label_shape = c.logits.vec();
  label_shape.erase(label_shape.begin() + 1);
  const Shape ls(label_shape);
  std::vector<int32_t> v(static_cast<size_t>(ls.numel()));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = c.ignore_index >= 0 && i % 4 == 1 ? c.ignore_index : static_cast<int32_t>(gen.below(classes));
  const Tensor labels = Tensor::from_vector<int32_t>(ls, v);
  const torch::Tensor labels_t = labels_to_torch(labels);

  ops::CrossEntropyOptions opt;
  auto topt = F::CrossEntropyFuncOptions();
  if (c.weighted) {
    opt.class_weights = Tensor::uniform({classes}, 0.2, 3.0, gen);
    topt = topt.weight(to_torch(opt.class_weights));
  }
  if (c.ignore_index >= 0) {
    opt.ignore_index = c.ignore_index;
    topt = topt.ignore_index(c.ignore_index);
  }
  expect_parity(
      {randn(c.logits, gen)}, [&](const std::vector<Tensor>& x) { return ops::cross_entropy(x[0], labels, opt); },
      [&](const std::vector<torch::Tensor>& x) { return F::cross_entropy(x[0], labels_t, topt); });
}

INSTANTIATE_TEST_SUITE_P(Cases, CrossEntropyParity,
                         ::testing::Values(CeCase{"Plain2d", {8, 5}, false, -1}, CeCase{"Weighted2d", {8, 5}, true, -1},
                                           CeCase{"WeightedIgnore2d", {9, 4}, true, 255},
                                           CeCase{"IgnoreInRange2d", {9, 4}, false, 2},
                                           CeCase{"Plain4d", {2, 6, 5, 4}, false, -1},
                                           CeCase{"WeightedIgnore4d", {3, 11, 6, 7}, true, 11},
                                           CeCase{"WeightedIgnoreInRange4d", {2, 5, 4, 4}, true, 0}),
                         [](const ::testing::TestParamInfo<CeCase>& info) { return info.param.name; });

// ---- linear ----

TEST(LinearParity, WithAndWithoutBias) {
  Generator gen(9);
  const Tensor x = randn({7, 12}, gen), w = randn({5, 12}, gen), b = randn({5}, gen);
  expect_parity(
      {x, w, b}, [](const std::vector<Tensor>& v) { return ops::linear(v[0], v[1], v[2]); },
      [](const std::vector<torch::Tensor>& v) { return torch::linear(v[0], v[1], v[2]); });
  expect_parity(
      {x, w}, [](const std::vector<Tensor>& v) { return ops::linear(v[0], v[1], Tensor()); },
      [](const std::vector<torch::Tensor>& v) { return torch::linear(v[0], v[1]); });
  const Tensor xl = randn({32, 300}, gen), wl = randn({10, 300}, gen), bl = randn({10}, gen);
  expect_parity(
      {xl, wl, bl}, [](const std::vector<Tensor>& v) { return ops::linear(v[0], v[1], v[2]); },
      [](const std::vector<torch::Tensor>& v) { return torch::linear(v[0], v[1], v[2]); });
}

// ---- shape ops ----

TEST(ShapeOpsParity, ReshapeFlattenConcat) {
  Generator gen(10);
  const Tensor x = randn({2, 3, 4, 5}, gen);
  expect_parity(
      {x},
      [](const std::vector<Tensor>& v) {
        return ops::reshape(v[0], {6, 20});
      },
      [](const std::vector<torch::Tensor>& v) {
        return v[0].reshape({6, 20});
      });
  expect_parity(
      {x}, [](const std::vector<Tensor>& v) { return ops::flatten(v[0]); },
      [](const std::vector<torch::Tensor>& v) { return torch::flatten(v[0], 1); });
  const Tensor a = randn({2, 1, 3, 4}, gen), b = randn({2, 5, 3, 4}, gen), c = randn({2, 2, 3, 4}, gen);
  expect_parity(
      {a, b, c},
      [](const std::vector<Tensor>& v) {
        return ops::concat({v[0], v[1], v[2]});
      },
      [](const std::vector<torch::Tensor>& v) {
        return torch::cat({v[0], v[1], v[2]}, 1);
      });
  const Tensor p = randn({4, 3}, gen), q = randn({4, 7}, gen);
  expect_parity(
      {p, q},
      [](const std::vector<Tensor>& v) {
        return ops::concat({v[0], v[1]});
      },
      [](const std::vector<torch::Tensor>& v) {
        return torch::cat({v[0], v[1]}, 1);
      });
}

// ---- element-wise and reductions ----

TEST(ElementwiseParity, All) {
  Generator gen(11);
  const Tensor a = randn({3, 4, 5}, gen), b = randn({3, 4, 5}, gen);
  using V = std::vector<Tensor>;
  using T = std::vector<torch::Tensor>;
  expect_parity(
      {a, b}, [](const V& v) { return ops::add(v[0], v[1]); }, [](const T& v) { return v[0] + v[1]; });
  expect_parity(
      {a, b}, [](const V& v) { return ops::sub(v[0], v[1]); }, [](const T& v) { return v[0] - v[1]; });
  expect_parity(
      {a, b}, [](const V& v) { return ops::mul(v[0], v[1]); }, [](const T& v) { return v[0] * v[1]; });
  expect_parity(
      {a}, [](const V& v) { return ops::scale(v[0], -0.3); }, [](const T& v) { return v[0] * -0.3; });
  expect_parity(
      {a}, [](const V& v) { return ops::sum(v[0]); }, [](const T& v) { return v[0].sum(); });
  expect_parity(
      {a}, [](const V& v) { return ops::mean(v[0]); }, [](const T& v) { return v[0].mean(); });
  const Tensor big = randn({1 << 17}, gen);  // several chunks of the parallel reduction
  expect_parity(
      {big}, [](const V& v) { return ops::sum(v[0]); }, [](const T& v) { return v[0].sum(); });
}

// ---- a small network end to end ----

TEST(NetworkParity, ConvBatchNormReluPoolLinearLoss) {
  Generator gen(12);
  const Tensor x = randn({4, 3, 12, 12}, gen);
  // No conv bias: batch norm removes it, its true gradient is 0 and float noise is all that is left.
  const Tensor w1 = ops::scale(randn({8, 3, 3, 3}, gen), 0.3);
  const Tensor gamma = Tensor::uniform({8}, 0.5, 1.5, gen), beta = randn({8}, gen);
  const Tensor w2 = ops::scale(randn({5, 8 * 6 * 6}, gen), 0.1), b2 = randn({5}, gen);
  const Tensor labels = Tensor::from_vector<int32_t>({4}, {1, 4, 0, 2});
  const torch::Tensor labels_t = labels_to_torch(labels);
  Tensor rm = Tensor::zeros({8}), rv = Tensor::ones({8});
  torch::Tensor rm_t = to_torch(rm), rv_t = to_torch(rv);
  expect_parity(
      {x, w1, gamma, beta, w2, b2},
      [&](const std::vector<Tensor>& v) {
        dl::Conv2dParams cp;
        cp.padding = {1, 1};
        Tensor h = ops::conv2d(v[0], v[1], Tensor(), cp);  // 4 x 8 x 12 x 12
        h = ops::relu(ops::batch_norm(h, v[2], v[3], rm, rv, {}));
        h = ops::max_pool2d(h, {});  // 4 x 8 x 6 x 6
        return ops::cross_entropy(ops::linear(ops::flatten(h), v[4], v[5]), labels);
      },
      [&](const std::vector<torch::Tensor>& v) {
        torch::Tensor h = torch::conv2d(v[0], v[1], {}, 1, 1);
        h = torch::relu(torch::batch_norm(h, v[2], v[3], rm_t, rv_t, true, 0.1, 1e-5, false));
        h = torch::max_pool2d(h, {2, 2}, {2, 2});
        return F::cross_entropy(torch::linear(torch::flatten(h, 1), v[4], v[5]), labels_t);
      });
  EXPECT_TRUE(close(rm, rm_t, "running_mean"));
  EXPECT_TRUE(close(rv, rv_t, "running_var"));
}

}  // namespace
