// Unit tests of the autograd engine (accumulation, no-grad mode, graph lifetime, shared inputs,
// memory across training steps) and of the error messages the ops give on bad inputs.
#include <dl/dl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

namespace {

using dl::CpuAllocator;
using dl::DType;
using dl::Generator;
using dl::Shape;
using dl::Tensor;
namespace ops = dl::ops;

template <typename T>
std::vector<T> values(const Tensor& t) {
  const T* p = t.data<T>();
  return std::vector<T>(p, p + t.numel());
}

Tensor leaf(const Shape& s, const std::vector<double>& v) {
  Tensor t = Tensor::from_vector<double>(s, v);
  t.set_requires_grad(true);
  return t;
}

// The dl::Error message of `f`, or "" (and a test failure) when it does not throw one.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const dl::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a dl::Error";
  return "";
}

#define EXPECT_CONTAINS(text, needle) \
  EXPECT_NE(std::string(text).find(needle), std::string::npos) << "message: " << (text)

// ---- recording ----

TEST(Autograd, RecordsOnlyWhenAnInputRequiresGrad) {
  Tensor a = Tensor::from_vector<double>({2}, {1, 2});
  Tensor b = Tensor::from_vector<double>({2}, {3, 4});
  Tensor c = ops::mul(a, b);
  EXPECT_FALSE(c.requires_grad());
  EXPECT_EQ(c.grad_fn(), nullptr);
  a.set_requires_grad(true);
  Tensor d = ops::mul(a, b);
  EXPECT_TRUE(d.requires_grad());
  ASSERT_NE(d.grad_fn(), nullptr);
  EXPECT_EQ(d.grad_fn()->name, "mul");
  ops::sum(d).backward();
  EXPECT_EQ(values<double>(a.grad()), (std::vector<double>{3, 4}));
  EXPECT_FALSE(b.grad().defined());  // b never asked for a gradient
}

TEST(Autograd, LeafAsRoot) {
  Tensor x = leaf({1}, {2.5});
  x.backward();
  EXPECT_EQ(x.grad().item<double>(), 1.0);
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = leaf({3}, {1, -2, 3});
  ops::sum(ops::mul(x, x)).backward();
  EXPECT_EQ(values<double>(x.grad()), (std::vector<double>{2, -4, 6}));
  ops::sum(ops::mul(x, x)).backward();  // a new graph: its gradient adds to the first
  EXPECT_EQ(values<double>(x.grad()), (std::vector<double>{4, -8, 12}));
  ops::sum(ops::scale(x, 0.5)).backward();
  EXPECT_EQ(values<double>(x.grad()), (std::vector<double>{4.5, -7.5, 12.5}));
  x.set_grad(Tensor());  // reset, as an optimiser's zero_grad
  ops::sum(x).backward();
  EXPECT_EQ(values<double>(x.grad()), (std::vector<double>{1, 1, 1}));
}

TEST(Autograd, LeafGradientsAreOwned) {
  // add's backward hands the same tensor to both inputs; each leaf must get its own copy.
  Tensor a = leaf({2}, {1, 2}), b = leaf({2}, {3, 4});
  ops::sum(ops::add(a, b)).backward();
  EXPECT_FALSE(a.grad().shares_storage_with(b.grad()));
  a.grad().fill_(7);
  EXPECT_EQ(values<double>(b.grad()), (std::vector<double>{1, 1}));
  // A reshape's gradient is a view of its output's gradient; the leaf still owns a copy.
  Tensor x = leaf({2, 2}, {1, 2, 3, 4});
  Tensor r = ops::reshape(x, {4});
  ops::sum(ops::add(r, r)).backward();
  EXPECT_EQ(values<double>(x.grad()), std::vector<double>(4, 2.0));
}

TEST(Autograd, TensorUsedTwiceGetsTheSummedGradient) {
  Tensor x = leaf({3}, {1, -2, 3});
  ops::sum(ops::add(x, x)).backward();
  EXPECT_EQ(values<double>(x.grad()), (std::vector<double>{2, 2, 2}));

  Tensor y = leaf({3}, {1, -2, 3});
  ops::sum(ops::mul(y, y)).backward();
  EXPECT_EQ(values<double>(y.grad()), (std::vector<double>{2, -4, 6}));

  // An intermediate used twice: h = 2 z, L = sum(h h), dL/dz = 8 z.
  Tensor z = leaf({2}, {0.5, -1});
  Tensor h = ops::scale(z, 2.0);
  ops::sum(ops::mul(h, h)).backward();
  EXPECT_EQ(values<double>(z.grad()), (std::vector<double>{4, -8}));

  // A diamond: a = relu(u); L = sum(a + 3 a) = 4 sum(relu(u)).
  Tensor u = leaf({4}, {1, -1, 2, -0.5});
  Tensor a = ops::relu(u);
  ops::sum(ops::add(a, ops::scale(a, 3.0))).backward();
  EXPECT_EQ(values<double>(u.grad()), (std::vector<double>{4, 0, 4, 0}));

  // Three times through concat.
  Tensor c = leaf({1, 2}, {1, 2});
  ops::sum(ops::mul(ops::concat({c, c, c}), ops::concat({c, c, c}))).backward();
  EXPECT_EQ(values<double>(c.grad()), (std::vector<double>{6, 12}));
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = leaf({2}, {1, 2});
  EXPECT_TRUE(dl::autograd::grad_enabled());
  {
    dl::autograd::NoGradGuard outer;
    EXPECT_FALSE(dl::autograd::grad_enabled());
    Tensor y = ops::relu(ops::mul(x, x));
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    EXPECT_CONTAINS(error_of([&] { ops::sum(y).backward(); }), "does not require grad");
    {
      dl::autograd::NoGradGuard inner;
      EXPECT_FALSE(dl::autograd::grad_enabled());
    }
    EXPECT_FALSE(dl::autograd::grad_enabled());  // the inner guard restores the outer state
  }
  EXPECT_TRUE(dl::autograd::grad_enabled());
  EXPECT_TRUE(ops::mul(x, x).requires_grad());
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, SecondBackwardThrows) {
  Tensor x = leaf({3}, {1, 2, 3});
  Tensor loss = ops::sum(ops::relu(ops::scale(x, 2.0)));
  loss.backward();
  EXPECT_CONTAINS(error_of([&] { loss.backward(); }), "a second time");
  EXPECT_EQ(values<double>(x.grad()), (std::vector<double>{2, 2, 2}));  // unchanged by the failed call
}

TEST(Autograd, BackwardFreesTheGraph) {
  CpuAllocator& alloc = CpuAllocator::instance();
  const int64_t n = 1 << 16;
  const int64_t block = static_cast<int64_t>(dl::allocation_size_class(n * sizeof(double)));
  Tensor w = Tensor::randn({n}, dl::default_generator(), DType::kFloat64);
  w.set_requires_grad(true);
  // Note [graph memory]: the graph keeps relu's output (saved for its backward) and not scale's output,
  // relu's input, which no backward saved: one block beside the one-element loss.
  const int64_t start = alloc.stats().current_bytes;
  Tensor loss = ops::sum(ops::relu(ops::scale(w, 2.0)));
  const int64_t before = alloc.stats().current_bytes;
  EXPECT_EQ(before - start, block + static_cast<int64_t>(dl::allocation_size_class(sizeof(double))));
  loss.backward();
  // relu's output is gone; w's gradient is the one block added.
  EXPECT_EQ(alloc.stats().current_bytes, before - block + block);
  ASSERT_NE(loss.grad_fn(), nullptr);
  EXPECT_TRUE(loss.grad_fn()->edges.empty());
  EXPECT_FALSE(static_cast<bool>(loss.grad_fn()->backward));
}

TEST(Autograd, BackwardNeedsAOneElementRoot) {
  Tensor x = leaf({3}, {1, 2, 3});
  EXPECT_CONTAINS(error_of([&] { ops::scale(x, 2.0).backward(); }), "one-element");
  EXPECT_CONTAINS(error_of([&] { Tensor().backward(); }), "undefined");
}

// Runs a small CNN training step: conv - batch norm - relu - max pool - linear - cross-entropy,
// then an SGD update without history. Returns the loss.
struct TinyNet {
  Tensor w1, b1, gamma, beta, rm, rv, w2, b2;
  explicit TinyNet(Generator& gen) {
    w1 = ops::scale(Tensor::randn({4, 2, 3, 3}, gen), 0.3f);
    b1 = Tensor::zeros({4});
    gamma = Tensor::ones({4});
    beta = Tensor::zeros({4});
    rm = Tensor::zeros({4});
    rv = Tensor::ones({4});
    w2 = ops::scale(Tensor::randn({3, 4 * 4 * 4}, gen), 0.1f);
    b2 = Tensor::zeros({3});
    for (Tensor* p : params()) p->set_requires_grad(true);
  }
  std::vector<Tensor*> params() { return {&w1, &b1, &gamma, &beta, &w2, &b2}; }
  double step(const Tensor& x, const Tensor& y) {
    dl::Conv2dParams cp;
    cp.padding = {1, 1};
    Tensor h = ops::conv2d(x, w1, b1, cp);  // N x 4 x 8 x 8
    h = ops::relu(ops::batch_norm(h, gamma, beta, rm, rv, {}));
    h = ops::max_pool2d(h, {});                            // N x 4 x 4 x 4
    Tensor logits = ops::linear(ops::flatten(h), w2, b2);  // N x 3
    Tensor loss = ops::cross_entropy(logits, y);
    loss.backward();
    dl::autograd::NoGradGuard no_grad;
    for (Tensor* p : params()) {
      Tensor g = p->grad();
      ops::add_(*p, g, -0.1);
      g.zero_();  // keep the gradient buffers, as an optimiser would
    }
    return loss.item<double>();
  }
};

TEST(Autograd, TrainingLoopKeepsMemoryFlat) {
  Generator gen(8);
  TinyNet net(gen);
  const Tensor x = Tensor::randn({6, 2, 8, 8}, gen);
  const Tensor y = Tensor::from_vector<int32_t>({6}, {0, 1, 2, 0, 1, 2});
  CpuAllocator& alloc = CpuAllocator::instance();
  const double first = net.step(x, y);
  net.step(x, y);
  const dl::AllocatorStats warm = alloc.stats();
  double last = 0;
  for (int i = 0; i < 20; ++i) {
    last = net.step(x, y);
    EXPECT_EQ(alloc.stats().current_bytes, warm.current_bytes) << "step " << i;
  }
  const dl::AllocatorStats end = alloc.stats();
  EXPECT_EQ(end.reserved_bytes, warm.reserved_bytes);  // every step is served from the cache
  EXPECT_EQ(end.alloc_count - warm.alloc_count, end.cache_hits - warm.cache_hits);
  EXPECT_LT(last, first);  // and it learns
}

TEST(Autograd, BatchNormUpdatesRunningStatsWithoutGrad) {
  Tensor x = Tensor::from_vector<float>({4, 1}, {1, 2, 3, 6});
  Tensor g = Tensor::ones({1}), b = Tensor::zeros({1}), rm = Tensor::zeros({1}), rv = Tensor::ones({1});
  dl::autograd::NoGradGuard no_grad;
  ops::batch_norm(x, g, b, rm, rv, {});
  EXPECT_FLOAT_EQ(rm.item<float>(), 0.1f * 3.0f);                   // momentum 0.1, mean 3
  EXPECT_FLOAT_EQ(rv.item<float>(), 0.9f + 0.1f * (14.0f / 3.0f));  // unbiased variance 14 / 3
  EXPECT_FALSE(rm.requires_grad());
}

// ---- error messages on bad inputs ----

TEST(Errors, Conv2dShapes) {
  const Tensor x = Tensor::zeros({1, 3, 5, 5}), w = Tensor::zeros({4, 2, 3, 3});
  std::string m = error_of([&] { ops::conv2d(x, w, Tensor()); });
  EXPECT_CONTAINS(m, "conv2d");
  EXPECT_CONTAINS(m, "[4, 2, 3, 3]");
  EXPECT_CONTAINS(m, "[1, 3, 5, 5]");
  EXPECT_CONTAINS(m, ".cpp:");  // file and line of the check
  EXPECT_CONTAINS(error_of([&] { ops::conv2d(Tensor::zeros({3, 5, 5}), w, Tensor()); }), "N x C x H x W");
  EXPECT_CONTAINS(error_of([&] { ops::conv2d(Tensor::zeros({1, 2, 5, 5}), w, Tensor::zeros({3})); }), "bias");
  EXPECT_CONTAINS(error_of([&] { ops::conv2d(Tensor::zeros({1, 2, 2, 2}), w, Tensor()); }), "smaller than");
  dl::Conv2dParams p;
  p.groups = 3;
  EXPECT_CONTAINS(error_of([&] { ops::conv2d(Tensor::zeros({1, 4, 5, 5}), w, Tensor(), p); }), "groups 3");
  p = {};
  p.stride = {0, 1};
  EXPECT_CONTAINS(error_of([&] { ops::conv2d(Tensor::zeros({1, 2, 5, 5}), w, Tensor(), p); }), "stride");
  EXPECT_CONTAINS(error_of([&] { ops::conv2d(Tensor::zeros({1, 2, 5, 5}, DType::kFloat64), w, Tensor()); }), "float64");
}

TEST(Errors, CrossEntropyNamesTheLabel) {
  const Tensor logits = Tensor::zeros({3, 4});
  std::string m = error_of([&] { ops::cross_entropy(logits, Tensor::from_vector<int32_t>({3}, {0, 7, 1})); });
  EXPECT_CONTAINS(m, "label 7");
  EXPECT_CONTAINS(m, "position 1");
  EXPECT_CONTAINS(m, "[0, 4)");
  m = error_of([&] { ops::cross_entropy(logits, Tensor::from_vector<int32_t>({3}, {0, 1, -3})); });
  EXPECT_CONTAINS(m, "label -3");
  ops::CrossEntropyOptions opt;
  opt.ignore_index = 255;
  m = error_of([&] { ops::cross_entropy(logits, Tensor::from_vector<int32_t>({3}, {255, 4, 1}), opt); });
  EXPECT_CONTAINS(m, "label 4");
  EXPECT_CONTAINS(m, "255");
  // 4-D: the flat position in N x H x W.
  const Tensor seg = Tensor::zeros({1, 3, 2, 2});
  m = error_of([&] { ops::cross_entropy(seg, Tensor::from_vector<int32_t>({1, 2, 2}, {0, 1, 2, 3})); });
  EXPECT_CONTAINS(m, "label 3 at position 3");
  EXPECT_CONTAINS(error_of([&] { ops::cross_entropy(logits, Tensor::zeros({3})); }), "int32 labels");
  EXPECT_CONTAINS(error_of([&] { ops::cross_entropy(logits, Tensor::zeros({4}, DType::kInt32)); }),
                  "need labels of shape [3]");
  m = error_of([&] { ops::cross_entropy(logits, Tensor::full({3}, 255, DType::kInt32), opt); });
  EXPECT_CONTAINS(m, "no sample counted");
  opt.class_weights = Tensor::ones({3});
  EXPECT_CONTAINS(error_of([&] { ops::cross_entropy(logits, Tensor::zeros({3}, DType::kInt32), opt); }),
                  "class_weights");
}

TEST(Errors, IntTensorsToFloatOps) {
  const Tensor i = Tensor::zeros({2, 3}, DType::kInt32);
  std::string m = error_of([&] { ops::relu(i); });
  EXPECT_CONTAINS(m, "relu");
  EXPECT_CONTAINS(m, "int32");
  EXPECT_CONTAINS(error_of([&] { ops::softmax(i); }), "softmax");
  EXPECT_CONTAINS(error_of([&] { ops::max_pool2d(Tensor::zeros({1, 1, 2, 2}, DType::kUInt8)); }), "uint8");
  EXPECT_CONTAINS(error_of([&] { ops::sum(i); }), "int32");
}

TEST(Errors, ShapesAndDtypesOfOtherOps) {
  const Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2});
  EXPECT_CONTAINS(error_of([&] { ops::add(a, b); }),
                  "add: shapes [2, 3] and [3, 2] do not broadcast (dimension 1: 3 vs 2)");
  EXPECT_CONTAINS(error_of([&] {
                    ops::mul(a, Tensor::zeros({2, 3}, DType::kFloat64));
                  }),
                  "'b' is float64 but 'a' is float32");
  EXPECT_CONTAINS(error_of([&] { ops::linear(a, Tensor::zeros({4, 2}), Tensor()); }), "input features");
  EXPECT_CONTAINS(error_of([&] { ops::linear(a, Tensor::zeros({4, 3}), Tensor::zeros({3})); }), "bias");
  Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  EXPECT_CONTAINS(error_of([&] { ops::batch_norm(a, Tensor::ones({2}), Tensor::zeros({3}), rm, rv, {}); }),
                  "'gamma' of shape [3]");
  EXPECT_CONTAINS(error_of([&] {
                    Tensor m1 = Tensor::zeros({3}), v1 = Tensor::ones({3});
                    ops::batch_norm(Tensor::zeros({1, 3}), Tensor::ones({3}), Tensor::zeros({3}), m1, v1, {});
                  }),
                  "more than one value per channel");
  dl::Pool2dParams p;
  p.kernel = {2, 2};
  p.padding = {2, 2};
  EXPECT_CONTAINS(error_of([&] { ops::max_pool2d(Tensor::zeros({1, 1, 4, 4}), p); }), "padding");
  EXPECT_CONTAINS(error_of([&] { ops::avg_pool2d(Tensor::zeros({1, 1, 0, 4})); }), "smaller than the window");
  EXPECT_CONTAINS(error_of([&] {
                    ops::concat({Tensor::zeros({2, 3, 4}), Tensor::zeros({2, 3, 5})});
                  }),
                  "tensor 1 has shape [2, 3, 5]");
  EXPECT_CONTAINS(error_of([&] { ops::reshape(a, {4, 2}); }), "cannot view");
  EXPECT_CONTAINS(error_of([&] { ops::softmax(Tensor::zeros({5})); }), "N x C");
}

TEST(Errors, BroadcastingReductionsAndReorders) {
  const Tensor a = Tensor::zeros({2, 3, 4});
  EXPECT_CONTAINS(error_of([&] { ops::mul(a, Tensor::zeros({3, 5})); }), "[2, 3, 4] and [3, 5] do not broadcast");
  EXPECT_CONTAINS(error_of([&] { ops::where(Tensor::ones({4}), a, a); }), "bool mask");
  EXPECT_CONTAINS(error_of([&] { ops::where(ops::gt(a, 0.0), a, Tensor::zeros({5})); }), "do not broadcast");
  EXPECT_CONTAINS(error_of([&] { ops::lt(a, Tensor::zeros({4}, DType::kInt32)); }), "int32");
  EXPECT_CONTAINS(error_of([&] { ops::sum(a, {3}); }), "sum: dimension 3 is out of range for shape [2, 3, 4]");
  EXPECT_CONTAINS(error_of([&] { ops::mean(a, {1, -2}); }), "dimension -2 is named twice");
  EXPECT_CONTAINS(error_of([&] { ops::sum_to(a, {2, 4}); }), "sum_to");
  EXPECT_CONTAINS(error_of([&] { ops::expand(a, {2, 6, 4}); }), "do not broadcast");
  EXPECT_CONTAINS(error_of([&] { ops::permute(a, {0, 1}); }), "expected 3 dimensions");
  EXPECT_CONTAINS(error_of([&] { ops::permute(a, {0, 1, 1}); }), "dimension 1 is named twice");
  EXPECT_CONTAINS(error_of([&] { ops::transpose(a, 0, 3); }), "out of range");
  EXPECT_CONTAINS(error_of([&] { ops::clamp(a, 1.0, -1.0); }), "lo <= hi");
  EXPECT_CONTAINS(error_of([&] { ops::matmul(a, Tensor::zeros({3, 2})); }), "the inner sizes 4 and 3 differ");
  dl::Conv2dParams dilated;
  dilated.dilation = {2, 2};
  EXPECT_CONTAINS(
      error_of([&] {
        ops::conv_transpose2d(Tensor::zeros({1, 2, 4, 4}), Tensor::zeros({2, 3, 3, 3}), {}, dilated, {1, 1});
      }),
      "output_padding < stride");
  dl::Conv2dParams grouped;
  grouped.groups = 3;
  EXPECT_CONTAINS(error_of([&] {
                    ops::conv_transpose2d(Tensor::zeros({1, 2, 4, 4}), Tensor::zeros({2, 3, 3, 3}), {}, grouped);
                  }),
                  "conv_transpose2d: groups 3 must divide the input channels 2");
  EXPECT_CONTAINS(error_of([&] { ops::matmul(a, Tensor::zeros({3, 4, 2})); }), "do not broadcast");
}

// Values worked by hand: a row plus a column, a channel bias, comparisons, and sums over dimensions.
TEST(Broadcasting, ValuesByHand) {
  const Tensor row = Tensor::from_vector<float>({3}, {1, 2, 3});
  const Tensor col = Tensor::from_vector<float>({2, 1}, {10, 20});
  EXPECT_EQ((row + col).shape(), Shape({2, 3}));
  EXPECT_EQ((row + col).to_vector_f32(), (std::vector<float>{11, 12, 13, 21, 22, 23}));
  EXPECT_EQ((col - row).to_vector_f32(), (std::vector<float>{9, 8, 7, 19, 18, 17}));
  EXPECT_EQ((2.0 * row - 1.0).to_vector_f32(), (std::vector<float>{1, 3, 5}));
  EXPECT_EQ((6.0 / row).to_vector_f32(), (std::vector<float>{6, 3, 2}));
  EXPECT_EQ((-row).to_vector_f32(), (std::vector<float>{-1, -2, -3}));
  const Tensor mask = ops::gt(row + col, 12.5);
  EXPECT_EQ(mask.dtype(), DType::kBool);
  const bool* m = mask.data<bool>();
  EXPECT_EQ(std::vector<bool>(m, m + 6), (std::vector<bool>{false, false, true, true, true, true}));
  EXPECT_EQ(ops::where(mask, row + col, Tensor::zeros({1})).to_vector_f32(),
            (std::vector<float>{0, 0, 13, 21, 22, 23}));
  const Tensor x = Tensor::from_vector<float>({2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  EXPECT_EQ(ops::sum(x, {0}).to_vector_f32(), (std::vector<float>{8, 10, 12, 14, 16, 18}));
  EXPECT_EQ(ops::sum(x, {0, 2}, true).shape(), Shape({1, 2, 1}));
  EXPECT_EQ(ops::sum(x, {0, 2}, true).to_vector_f32(), (std::vector<float>{30, 48}));
  EXPECT_EQ(ops::mean(x, {-1}).to_vector_f32(), (std::vector<float>{2, 5, 8, 11}));
  EXPECT_EQ(ops::sum_to(x, {2, 1}).to_vector_f32(), (std::vector<float>{30, 48}));
  EXPECT_EQ(ops::transpose(x, 1, 2).to_vector_f32(), (std::vector<float>{1, 4, 2, 5, 3, 6, 7, 10, 8, 11, 9, 12}));
  // Eight dimensions, a bias stretched over all but one.
  const Tensor big = Tensor::ones({2, 1, 2, 1, 2, 1, 2, 3});
  const Tensor bias = Tensor::from_vector<float>({3}, {1, 2, 3});
  const Tensor y = big * bias;
  EXPECT_EQ(y.shape(), Shape({2, 1, 2, 1, 2, 1, 2, 3}));
  EXPECT_EQ(ops::sum(y, {0, 1, 2, 3, 4, 5, 6}).to_vector_f32(), (std::vector<float>{16, 32, 48}));
}

// Empty tensors: sums of nothing are 0, and the backward of a broadcast into an empty output is zeros.
TEST(Broadcasting, EmptyTensorsSumToZero) {
  EXPECT_EQ(ops::sum(Tensor::zeros({3, 0}), {1}).to_vector_f32(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(ops::sum(Tensor::zeros({0}), {0}).to_vector_f32(), (std::vector<float>{0}));
  EXPECT_EQ(ops::sum(Tensor::zeros({0, 3}), {}).to_vector_f32(), (std::vector<float>{0}));
  Tensor a = Tensor::ones({3, 1}).set_requires_grad(true);
  Tensor b = Tensor::ones({3, 0}).set_requires_grad(true);
  ops::sum(a + b).backward();
  EXPECT_EQ(a.grad().to_vector_f32(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(b.grad().shape(), Shape({3, 0}));
}

// Rows longer than one parallel run (16384) with a broadcast operand, against a plain loop.
TEST(Broadcasting, LongRowsAcrossParallelRuns) {
  const int64_t w = 40000;
  const Tensor x = Tensor::randn({3, w});
  const Tensor row = Tensor::randn({w});
  const Tensor col = Tensor::randn({3, 1});
  const std::vector<float> y = (x * row - col).to_vector_f32(), xv = x.to_vector_f32(), rv = row.to_vector_f32(),
                           cv = col.to_vector_f32();
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < w; ++j)
      ASSERT_EQ(y[static_cast<size_t>(i * w + j)],
                xv[static_cast<size_t>(i * w + j)] * rv[static_cast<size_t>(j)] - cv[static_cast<size_t>(i)])
          << i << ", " << j;
  const std::vector<float> s = ops::sum(x, {0}).to_vector_f32();
  for (int64_t j = 0; j < w; j += 997) {
    const double want = static_cast<double>(xv[static_cast<size_t>(j)]) + xv[static_cast<size_t>(w + j)] +
                        xv[static_cast<size_t>(2 * w + j)];
    ASSERT_NEAR(s[static_cast<size_t>(j)], want, 1e-5) << j;
  }
}

// maximum and minimum: a tie halves the gradient, a NaN operand passes dy to both sides (as PyTorch).
TEST(Broadcasting, MaximumGradientsAtTiesAndNaN) {
  Tensor a = Tensor::from_vector<float>({3}, {1, 2, NAN}).set_requires_grad(true);
  Tensor b = Tensor::from_vector<float>({3}, {1, 3, 0}).set_requires_grad(true);
  ops::sum(ops::maximum(a, b)).backward();
  EXPECT_EQ(a.grad().to_vector_f32(), (std::vector<float>{0.5f, 0, 1}));
  EXPECT_EQ(b.grad().to_vector_f32(), (std::vector<float>{0.5f, 1, 1}));
  EXPECT_TRUE(std::isnan(ops::clamp(Tensor::from_vector<float>({1}, {NAN}), -1, 1).to_vector_f32()[0]));
  EXPECT_EQ(ops::mul(Tensor::ones({2}), 1e300).to_vector_f32()[0], INFINITY);  // float32's overflow, as PyTorch
  EXPECT_EQ(ops::clamp(Tensor::from_vector<float>({2}, {-5, 5}), -1e300, 1e300).to_vector_f32(),
            (std::vector<float>{-5, 5}));
}

// The gradient of a broadcast operand is summed over the dimensions it was stretched along.
TEST(Broadcasting, GradientsSumBackToEachOperandsShape) {
  Tensor x = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6}).set_requires_grad(true);
  Tensor b = Tensor::from_vector<float>({3}, {1, 1, 2}).set_requires_grad(true);
  Tensor c = Tensor::from_vector<float>({2, 1}, {3, 4}).set_requires_grad(true);
  ops::sum(x * b + c).backward();
  EXPECT_EQ(x.grad().to_vector_f32(), (std::vector<float>{1, 1, 2, 1, 1, 2}));
  EXPECT_EQ(b.grad().shape(), Shape({3}));
  EXPECT_EQ(b.grad().to_vector_f32(), (std::vector<float>{5, 7, 9}));
  EXPECT_EQ(c.grad().shape(), Shape({2, 1}));
  EXPECT_EQ(c.grad().to_vector_f32(), (std::vector<float>{3, 3}));
}

// int64 labels, as PyTorch writes them, give the int32 labels' loss; one that does not fit int32 is named.
TEST(Labels, Int64LabelsAreReadAsInt32) {
  const Tensor logits = Tensor::randn({4, 3, 2, 2});
  std::vector<int32_t> l32 = {0, 1, 2, 1, 2, 0, 255, 1, 0, 0, 2, 1, 1, 2, 0, 255};
  std::vector<int64_t> l64(l32.begin(), l32.end());
  dl::ops::CrossEntropyOptions o;
  o.ignore_index = 255;
  const Tensor a = ops::cross_entropy(logits, Tensor::from_vector<int32_t>({4, 2, 2}, l32), o);
  const Tensor b = ops::cross_entropy(logits, Tensor::from_vector<int64_t>({4, 2, 2}, l64), o);
  EXPECT_EQ(a.item<float>(), b.item<float>());
  EXPECT_EQ(Tensor::from_vector<int64_t>({4, 2, 2}, l64).dtype(), DType::kInt64);
  l64[3] = int64_t{1} << 40;
  EXPECT_CONTAINS(error_of([&] {
                    ops::cross_entropy(logits, Tensor::from_vector<int64_t>({4, 2, 2}, l64), o);
                  }),
                  "int64 label 1099511627776 at index 3 does not fit");
  const Tensor counts = ops::correct_counts(logits, Tensor::from_vector<int32_t>({4, 2, 2}, l32), 255);
  l64[3] = 1;
  EXPECT_EQ(ops::correct_counts(logits, Tensor::from_vector<int64_t>({4, 2, 2}, l64), 255).to_vector_f32(),
            counts.to_vector_f32());
}

// ---- edge shapes ----

// An input with no channels contributes nothing; the others must still be copied (the spatial
// size must not be taken from a zero-channel first input).
TEST(EdgeShapes, ConcatWithAZeroChannelFirstInput) {
  const Tensor y = ops::concat({Tensor::zeros({2, 0, 3}), Tensor::ones({2, 2, 3})});
  ASSERT_EQ(y.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(values<float>(y), std::vector<float>(12, 1.0f));
}

// An empty batch must give an empty result, not a division by zero (run in a child process: a
// SIGFPE would end the whole test binary).
TEST(EdgeShapes, ConcatOfAnEmptyBatch) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        const Tensor y = ops::concat({Tensor::zeros({0, 2, 3}), Tensor::zeros({0, 1, 3})});
        std::exit(y.shape() == (Shape{0, 3, 3}) ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// A window larger than the padded input must be an error, also when the stride would round the
// negative span (in + 2 pad - dil (k - 1) - 1) towards zero into an output of size 1.
TEST(EdgeShapes, MaxPoolPropagatesNaNFromAnyWindowPosition) {
  // The 2x2 fast path and the general path agree: a NaN anywhere in a window is the window's maximum,
  // its gradient goes there; equal maxima send it to the first.
  const float nan = std::nanf("");
  for (int pos = 0; pos < 4; ++pos) {
    std::vector<float> v{1, 2, 3, 4};
    v[static_cast<size_t>(pos)] = nan;
    for (const dl::Pool2dParams& p : {dl::Pool2dParams{}, dl::Pool2dParams{{2, 2}, {2, 2}, {0, 0}}}) {
      Tensor x = Tensor::from_vector<float>({1, 1, 2, 2}, v).set_requires_grad(true);
      Tensor y = ops::max_pool2d(x, p);
      EXPECT_TRUE(std::isnan(y.to_vector_f32()[0])) << "NaN at " << pos;
    }
    // The general path (a 3x3 window with padding covers the same four values).
    Tensor x = Tensor::from_vector<float>({1, 1, 2, 2}, v);
    EXPECT_TRUE(std::isnan(ops::max_pool2d(x, dl::Pool2dParams{{3, 3}, {2, 2}, {1, 1}}).to_vector_f32()[0]));
  }
  Tensor x = Tensor::from_vector<float>({1, 1, 2, 2}, {5, 5, 5, 5}).set_requires_grad(true);
  ops::sum(ops::max_pool2d(x, {})).backward();
  EXPECT_EQ(x.grad().to_vector_f32(), (std::vector<float>{1, 0, 0, 0}));
}

// The vectorised pooling loops (Note [vectorised 2x2 pooling]) against a plain reference on planes wide
// enough for their vector loops: many ties (small integers), NaNs in some planes only, even and odd sizes
// (an odd size leaves inputs in no 2x2 window, whose gradient must be zero), the 2x2 window and others
// with padding and strides 1, 2 and 3.
TEST(EdgeShapes, MaxPoolMatchesAPlainReference) {
  struct Case {
    int64_t h, w;
    int k, stride, pad;
  };
  for (const Case& cs : {Case{16, 40, 2, 2, 0}, Case{17, 35, 2, 2, 0}, Case{17, 35, 3, 2, 1}, Case{16, 40, 3, 1, 1},
                         Case{17, 35, 3, 3, 0}}) {
    const dl::Pool2dParams params{{cs.k, cs.k}, {cs.stride, cs.stride}, {cs.pad, cs.pad}};
    const int64_t h = cs.h, w = cs.w, planes = 6;
    const int64_t ho = (h + 2 * cs.pad - cs.k) / cs.stride + 1, wo = (w + 2 * cs.pad - cs.k) / cs.stride + 1;
    std::vector<float> v(static_cast<size_t>(planes * h * w)), dy(static_cast<size_t>(planes * ho * wo));
    uint32_t state = 12345;
    auto next = [&] { return state = state * 1664525u + 1013904223u; };
    for (float& e : v) e = static_cast<float>((next() >> 16) % 4);
    for (float& e : dy) e = static_cast<float>((next() >> 16) % 100) + 1.0f;
    v[static_cast<size_t>(2 * h * w + 3 * w + 5)] = std::nanf("");  // plane 2: one NaN
    v[static_cast<size_t>(4 * h * w + 7)] = std::nanf("");          // plane 4: two NaNs in one 2x2 window
    v[static_cast<size_t>(4 * h * w + w + 6)] = std::nanf("");
    std::vector<float> want_y(dy.size()), want_dx(v.size(), 0.0f);
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow) {
          int64_t best = -1;
          for (int64_t ih = oh * cs.stride - cs.pad; ih < oh * cs.stride - cs.pad + cs.k; ++ih)
            for (int64_t iw = ow * cs.stride - cs.pad; iw < ow * cs.stride - cs.pad + cs.k; ++iw) {
              if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
              const int64_t i = (p * h + ih) * w + iw;
              const float x = v[static_cast<size_t>(i)];
              if (best < 0 || x > v[static_cast<size_t>(best)] || std::isnan(x)) best = i;
            }
          const size_t o = static_cast<size_t>((p * ho + oh) * wo + ow);
          want_y[o] = v[static_cast<size_t>(best)];
          want_dx[static_cast<size_t>(best)] += dy[o];
        }
    Tensor x = Tensor::from_vector<float>({2, 3, h, w}, v).set_requires_grad(true);
    Tensor out = ops::max_pool2d(x, params);
    const std::vector<float> y = out.to_vector_f32();
    ASSERT_EQ(y.size(), want_y.size());
    ops::sum(ops::mul(out, Tensor::from_vector<float>({2, 3, ho, wo}, dy))).backward();
    const std::vector<float> dx = x.grad().to_vector_f32();
    const std::string name = std::to_string(h) + "x" + std::to_string(w) + " k" + std::to_string(cs.k) + " s" +
                             std::to_string(cs.stride) + " p" + std::to_string(cs.pad);
    for (size_t i = 0; i < y.size(); ++i) {
      if (std::isnan(want_y[i]))
        EXPECT_TRUE(std::isnan(y[i])) << name << " output " << i;
      else
        EXPECT_EQ(y[i], want_y[i]) << name << " output " << i;
    }
    EXPECT_EQ(dx, want_dx) << name;
  }
}

TEST(Errors, WindowLargerThanInputWithStride) {
  const Tensor w = Tensor::zeros({4, 2, 3, 3});
  dl::Conv2dParams s2;
  s2.stride = {2, 2};  // span (2 - 2 - 1) = -1, and -1 / 2 == 0 in C++
  EXPECT_CONTAINS(error_of([&] { ops::conv2d(Tensor::zeros({1, 2, 2, 2}), w, Tensor(), s2); }), "smaller than");
  // 1 x 4 input, 2 x 2 window, stride 2: span -1 again.
  EXPECT_CONTAINS(error_of([&] { ops::avg_pool2d(Tensor::zeros({1, 1, 1, 4})); }), "smaller than the window");
  EXPECT_CONTAINS(error_of([&] { ops::max_pool2d(Tensor::zeros({1, 1, 4, 1})); }), "smaller than the window");
}

// CrossEntropyOptions documents ignore_index = -1 as "none": a label -1 is then outside [0, C) and
// must be reported like any other, not silently ignored.
TEST(Errors, CrossEntropyLabelMinusOneWithoutIgnoreIndex) {
  const Tensor logits = Tensor::zeros({3, 4});
  const std::string m = error_of([&] { ops::cross_entropy(logits, Tensor::from_vector<int32_t>({3}, {0, -1, 1})); });
  EXPECT_CONTAINS(m, "label -1");
}

}  // namespace

TEST(Errors, IndexingSlicingAndPicking) {
  const Tensor x = Tensor::zeros({2, 3, 4});
  const Tensor idx = Tensor::from_vector<int32_t>({2, 1, 4}, {0, 1, 2, 3, 0, 1, 2, 1});
  EXPECT_CONTAINS(error_of([&] {
                    ops::gather(x, 1, Tensor::from_vector<int32_t>({2, 1, 4}, {0, 1, 2, 3, 0, 1, 2, 1}));
                  }),
                  "gather: index 3 at position 3 is out of range for dimension 1 of [2, 3, 4] (expected [0, 3))");
  EXPECT_CONTAINS(error_of([&] {
                    ops::gather(x, 2, Tensor::from_vector<int64_t>({1, 1, 1}, {-1}));
                  }),
                  "index -1 at position 0 is out of range");
  EXPECT_CONTAINS(error_of([&] {
                    ops::gather(x, 1, Tensor::zeros({2, 1, 4}));
                  }),
                  "gather: expected an int32 or int64 index, got float32");
  EXPECT_CONTAINS(error_of([&] {
                    ops::gather(x, 1, Tensor::zeros({2, 1, 5}, DType::kInt32));
                  }),
                  "index of shape [2, 1, 5] does not fit x of shape [2, 3, 4]");
  EXPECT_CONTAINS(error_of([&] { ops::gather(x, 3, idx); }), "gather: dimension 3 is out of range for shape [2, 3, 4]");
  EXPECT_CONTAINS(error_of([&] {
                    ops::scatter_add(x, 2, idx, Tensor::zeros({2, 1, 3}));
                  }),
                  "src of shape [2, 1, 3] and index of shape [2, 1, 4] differ");
  EXPECT_CONTAINS(error_of([&] {
                    ops::index_select(x, 0, Tensor::from_vector<int32_t>({2}, {1, 2}));
                  }),
                  "index_select: index 2 at position 1 is out of range for dimension 0 of [2, 3, 4]");
  EXPECT_CONTAINS(error_of([&] {
                    ops::index_select(x, 0, Tensor::zeros({1, 1}, DType::kInt64));
                  }),
                  "expected a one-dimensional index, got shape [1, 1]");
  EXPECT_CONTAINS(error_of([&] { ops::slice(x, 1, 0, 2, 0); }), "slice: expected a step of at least 1, got 0");
  EXPECT_CONTAINS(error_of([&] { ops::slice(x, -4, 0, 1); }), "slice: dimension -4 is out of range");
  EXPECT_CONTAINS(error_of([&] { ops::select(x, 2, 4); }), "select: index 4 is out of range for dimension 2");
  EXPECT_CONTAINS(error_of([&] {
                    ops::concat({x, Tensor::zeros({2, 4, 4})}, 2);
                  }),
                  "concat: tensor 1 has shape [2, 4, 4], expected all but dimension 2 as in [2, 3, 4]");
  EXPECT_CONTAINS(error_of([&] {
                    ops::concat({x, Tensor::zeros({2, 3, 4}, DType::kFloat64)}, 0);
                  }),
                  "concat: tensor 1 is float64 on cpu, expected float32");
  EXPECT_CONTAINS(error_of([&] { ops::stack({x, Tensor::zeros({2, 3})}); }), "stack: tensor 1 has shape [2, 3]");
  EXPECT_CONTAINS(error_of([&] { ops::unsqueeze(x, 4); }), "unsqueeze: dimension 4 is out of range");
  EXPECT_CONTAINS(error_of([&] { ops::max(Tensor::zeros({2, 0}), 1); }), "argmax: dimension 1 of [2, 0] is empty");
  EXPECT_CONTAINS(error_of([&] { ops::min(x, -4); }), "min: dimension -4 is out of range");
  EXPECT_CONTAINS(error_of([&] { ops::var(x, {1}, -1); }), "var: expected a correction of at least 0, got -1");
  EXPECT_CONTAINS(error_of([&] { ops::var(x, {5}); }), "out of range for shape [2, 3, 4]");
}

// Values worked by hand: gathers with repeated indices and their summed gradients, slices, picks with
// NaN and ties, the variance's corrections.
TEST(Indexing, ValuesByHand) {
  Tensor x = Tensor::from_vector<float>({2, 3}, {1, 5, 3, 6, 4, 2});
  x.set_requires_grad(true);
  const Tensor idx = Tensor::from_vector<int64_t>({2, 2}, {2, 2, 0, 1});
  const Tensor g = ops::gather(x, 1, idx);
  EXPECT_EQ(g.to_vector_f32(), (std::vector<float>{3, 3, 6, 4}));
  ops::sum(g * Tensor::from_vector<float>({2, 2}, {1, 10, 100, 1000})).backward();
  EXPECT_EQ(x.grad().to_vector_f32(), (std::vector<float>{0, 0, 11, 100, 1000, 0}));  // repeats add up

  const Tensor sel = ops::index_select(Tensor::from_vector<float>({3, 2}, {1, 2, 3, 4, 5, 6}), 0,
                                       Tensor::from_vector<int32_t>({4}, {2, 0, 2, 1}));
  EXPECT_EQ(sel.to_vector_f32(), (std::vector<float>{5, 6, 1, 2, 5, 6, 3, 4}));
  const Tensor sa = ops::scatter_add(Tensor::zeros({4}), 0, Tensor::from_vector<int32_t>({5}, {1, 3, 1, 1, 0}),
                                     Tensor::from_vector<float>({5}, {1, 2, 3, 4, 5}));
  EXPECT_EQ(sa.to_vector_f32(), (std::vector<float>{5, 8, 0, 2}));

  const Tensor r = Tensor::from_vector<float>({7}, {0, 1, 2, 3, 4, 5, 6});
  EXPECT_EQ(ops::slice(r, 0, 1, -1, 2).to_vector_f32(), (std::vector<float>{1, 3, 5}));
  EXPECT_EQ(ops::slice(r, 0, -2, 100).to_vector_f32(), (std::vector<float>{5, 6}));
  EXPECT_EQ(ops::slice(r, 0, 5, 2).shape(), Shape({0}));  // an empty range
  EXPECT_EQ(ops::select(x, 0, -1).to_vector_f32(), (std::vector<float>{6, 4, 2}));
  EXPECT_EQ(ops::squeeze(Tensor::zeros({2, 1, 3, 1})).shape(), Shape({2, 3}));
  EXPECT_EQ(ops::squeeze(x, 0).shape(), Shape({2, 3}));  // a size other than 1 stays
  EXPECT_EQ(ops::unsqueeze(x, -1).shape(), Shape({2, 3, 1}));
  EXPECT_EQ(ops::concat({r, r}, 0).numel(), 14);
  EXPECT_EQ(ops::stack({x, x}, -1).shape(), Shape({2, 3, 2}));
  EXPECT_EQ(ops::concat({Tensor::from_vector<int32_t>({2}, {1, 2}), Tensor::from_vector<int32_t>({1}, {3})}, 0)
                .data<int32_t>()[2],
            3);  // any dtype

  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor m = Tensor::from_vector<float>({2, 4}, {1, 7, 7, 2, 3, nan, 9, nan});
  EXPECT_EQ(ops::argmax(m, 1).data<int32_t>()[0], 1);  // the first of ties
  EXPECT_EQ(ops::argmax(m, 1).data<int32_t>()[1], 1);  // the first NaN
  EXPECT_EQ(ops::argmin(m, 1).data<int32_t>()[1], 1);
  EXPECT_EQ(ops::argmin(m, 1, true).shape(), Shape({2, 1}));
  EXPECT_EQ(ops::max(m, 1).to_vector_f32()[0], 7);
  EXPECT_TRUE(std::isnan(ops::max(m, 1).to_vector_f32()[1]));
  EXPECT_EQ(ops::min(m, 0).to_vector_f32()[0], 1);
  Tensor t = Tensor::from_vector<float>({4}, {2, 9, 9, 1});
  t.set_requires_grad(true);
  ops::max(t, 0).backward();
  EXPECT_EQ(t.grad().to_vector_f32(), (std::vector<float>{0, 1, 0, 0}));  // dy to the first of ties

  const Tensor v = Tensor::from_vector<float>({2, 2}, {1, 3, 2, 6});
  EXPECT_EQ(ops::var(v, {1}).to_vector_f32(), (std::vector<float>{2, 8}));
  EXPECT_EQ(ops::var(v, {1}, 0).to_vector_f32(), (std::vector<float>{1, 4}));
  EXPECT_EQ(ops::var(v, {0, 1}, 1, true).shape(), Shape({1, 1}));
  EXPECT_TRUE(std::isinf(ops::var(v, {1}, 2).to_vector_f32()[0]));  // no degrees of freedom left, as PyTorch
  EXPECT_NEAR(ops::std(v, {}).to_vector_f32()[0], std::sqrt(14.0 / 3.0), 1e-6);  // mean 3, squares 4 0 1 9
}
