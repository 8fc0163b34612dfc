// Custom ops (dl/ops/custom.h) and the example of examples/custom_op: the example's CUDA kernel source run
// under the kernel emulation against its CPU body (outputs poisoned), its backward gradchecked in float64
// on the CPU, the dispatch rules of CustomOp (a body per device, never a fallback; a missing backward; the
// backward's results checked), the public gradcheck's report, and the CUDA access of dl/core/cuda.h in a
// build or on a machine without CUDA.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "softplus_beta.h"
// The kernel source (and, through compat.cuh, the emulation's CUDA vocabulary) comes last.
#include "softplus_beta.cuh"

namespace {

using Inputs = std::vector<dl::Tensor>;
using example::SoftplusBetaParams;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const dl::Error& e) {
    return e.what();
  }
  return "(no dl::Error)";
}

// Values on both sides of the threshold (beta x > 20 for x > 20 / beta) and around 0.
std::vector<float> spread(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-15.f, 15.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

// ---- the example's kernel source under the emulation, against its CPU body ----
struct LaunchShape {
  int block;
  int64_t max_grid;
};

TEST(CustomOpKernels, SoftplusBetaMatchesCpuBody) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const SoftplusBetaParams p : {SoftplusBetaParams{1.f, 20.f}, SoftplusBetaParams{2.5f, 20.f}}) {
    for (const int64_t n : {1, 255, 1000}) {
      const std::vector<float> x = spread(n, 11), dy = spread(n, 12);
      std::vector<float> want_y(x.size()), want_dx(x.size());
      example::softplus_beta_cpu_forward(x.data(), want_y.data(), n, p);
      example::softplus_beta_cpu_backward(x.data(), dy.data(), want_dx.data(), n, p);
      // Blocks that do and do not divide n, one block, grids far smaller than the data.
      for (const LaunchShape s :
           {LaunchShape{32, 1}, LaunchShape{96, 3}, LaunchShape{128, 1 << 20}, LaunchShape{200, 2}}) {
        const std::string what = "beta " + std::to_string(p.beta) + ", n " + std::to_string(n) + ", block " +
                                 std::to_string(s.block) + ", grid cap " + std::to_string(s.max_grid);
        dl::emu::Launcher l;
        l.block = s.block;
        l.max_grid = s.max_grid;
        std::vector<float> y(x.size(), nan), dx(x.size(), nan);  // poisoned: an unwritten element fails
        example::run_softplus_beta_forward(l, x.data(), y.data(), n, p);
        example::run_softplus_beta_backward(l, x.data(), dy.data(), dx.data(), n, p);
        EXPECT_EQ(l.launches, 2) << what;
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_FALSE(std::isnan(y[i]) || std::isnan(dx[i])) << what << ": element " << i << " was not written";
          ASSERT_NEAR(y[i], want_y[i], 1e-5 * (1 + std::abs(want_y[i]))) << what << ": y[" << i << "], x " << x[i];
          ASSERT_NEAR(dx[i], want_dx[i], 1e-5 * (1 + std::abs(want_dx[i]))) << what << ": dx[" << i << "], x " << x[i];
        }
      }
    }
  }
}

// ---- the example's op, differentiated ----
TEST(CustomOpGradcheck, SoftplusBetaFloat64) {
  dl::Generator gen(3);
  const dl::Tensor x = dl::ops::mul(dl::Tensor::randn({3, 7}, gen, dl::DType::kFloat64), 4.0).detach();
  for (const float beta : {0.5f, 1.f, 3.f}) {
    EXPECT_TRUE(dl::testing::gradcheck([beta](const Inputs& in) { return example::softplus_beta(in[0], {beta}); }, {x}))
        << "beta " << beta;
  }
  // Inside a graph of libdl's own ops: the engine routes gradients through the custom node both ways.
  const dl::Tensor w = dl::Tensor::randn({7, 7}, gen, dl::DType::kFloat64);
  EXPECT_TRUE(dl::testing::gradcheck(
      [](const Inputs& in) { return dl::ops::mul(example::softplus_beta(dl::ops::mul(in[0], in[1]), {2.f}), in[0]); },
      {x.slice(0, 1).view({7}), w.slice(0, 1).view({7})}));
}

TEST(CustomOpGradcheck, SoftplusBetaFloat32ForwardMatchesFloat64) {
  const std::vector<float> xs = spread(64, 5);
  const dl::Tensor x32 = dl::Tensor::from_vector<float>({64}, xs);
  const dl::Tensor y32 = example::softplus_beta(x32, {1.5f});
  const dl::Tensor y64 = example::softplus_beta(x32.to(dl::DType::kFloat64), {1.5f});
  for (int64_t i = 0; i < 64; ++i)
    EXPECT_NEAR(y32.data<float>()[i], y64.data<double>()[i], 1e-5 * (1 + std::abs(y64.data<double>()[i])));
}

// ---- CustomOp's rules ----
dl::Tensor twice(const Inputs& in) { return dl::ops::mul(in[0], 2.0); }
Inputs twice_backward(const Inputs&, const dl::Tensor&, const dl::Tensor& gy, const std::vector<bool>&) {
  return {dl::ops::mul(gy, 2.0)};
}

TEST(CustomOp, NoBodyForTheDeviceThrowsNamingOpAndDevice) {
  dl::ops::CustomOp op("gpu_only");
  op.cuda(twice, twice_backward);
  EXPECT_FALSE(op.has_body(dl::DeviceType::kCPU));
  EXPECT_TRUE(op.has_body(dl::DeviceType::kCUDA));
  const std::string e = error_of([&] { op({dl::Tensor::ones({3})}); });
  EXPECT_NE(e.find("'gpu_only' has no CPU body"), std::string::npos) << e;
  EXPECT_NE(e.find("on cpu"), std::string::npos) << e;
}

TEST(CustomOp, MissingBackwardThrowsOnlyWhenAGradientIsNeeded) {
  dl::ops::CustomOp op("forward_only");
  op.cpu(twice);
  const dl::Tensor x = dl::Tensor::ones({3}).set_requires_grad(true);
  const std::string e = error_of([&] { op({x}); });
  EXPECT_NE(e.find("'forward_only' has no CPU backward, but input 0 requires grad"), std::string::npos) << e;
  {
    dl::autograd::NoGradGuard no_grad;
    EXPECT_FALSE(op({x}).requires_grad());
  }
  EXPECT_EQ(op({dl::Tensor::ones({3})}).to_vector_f32(), std::vector<float>({2.f, 2.f, 2.f}));
}

TEST(CustomOp, ArgumentsAndBodyResultsAreChecked) {
  dl::ops::CustomOp op("twice");
  op.cpu(twice, twice_backward);
  EXPECT_NE(error_of([&] { op({}); }).find("'twice': expected at least one input"), std::string::npos);
  EXPECT_NE(error_of([&] { op({dl::Tensor()}); }).find("'twice': input 0 is an undefined tensor"), std::string::npos);

  dl::ops::CustomOp bad("bad_backward");
  bad.cpu(twice,
          [](const Inputs&, const dl::Tensor&, const dl::Tensor&, const std::vector<bool>&) { return Inputs{}; });
  const dl::Tensor x = dl::Tensor::ones({3}).set_requires_grad(true);
  const std::string e = error_of([&] { dl::ops::sum(bad({x})).backward(); });
  EXPECT_NE(e.find("'bad_backward': its CPU backward returned 0 gradients for 1 inputs"), std::string::npos) << e;

  dl::ops::CustomOp none("no_output");
  none.cpu([](const Inputs&) { return dl::Tensor(); });
  EXPECT_NE(error_of([&] { none({dl::Tensor::ones({1})}); }).find("forward returned an undefined tensor"),
            std::string::npos);
}

TEST(CustomOp, ForwardRunsWithoutGradAndAnInputReturnedIsNotRewired) {
  dl::ops::CustomOp identity("identity");
  bool recorded_inside = true;
  identity.cpu(
      [&recorded_inside](const Inputs& in) {
        recorded_inside = dl::autograd::grad_enabled();
        return in[0];
      },
      [](const Inputs&, const dl::Tensor&, const dl::Tensor& gy, const std::vector<bool>&) { return Inputs{gy}; });
  const dl::Tensor x = dl::Tensor::full({2}, 3.0, dl::DType::kFloat32).set_requires_grad(true);
  const dl::Tensor y = identity({x});
  EXPECT_FALSE(recorded_inside);
  EXPECT_TRUE(y.requires_grad());
  EXPECT_EQ(x.grad_fn(), nullptr);  // the node went on a new handle, not on the input
  dl::ops::sum(y).backward();
  EXPECT_EQ(x.grad().to_vector_f32(), std::vector<float>({1.f, 1.f}));
}

// ---- the public gradcheck ----
TEST(PublicGradcheck, ReportsInputElementAnalyticAndNumeric) {
  dl::ops::CustomOp wrong("wrong_square");  // y = x^2 with the gradient x instead of 2x
  wrong.cpu([](const Inputs& in) { return dl::ops::mul(in[0], in[0]); },
            [](const Inputs& in, const dl::Tensor&, const dl::Tensor& gy, const std::vector<bool>&) {
              return Inputs{dl::ops::mul(gy, in[0])};
            });
  const dl::Tensor x = dl::Tensor::from_vector<double>({3}, {1.0, -2.0, 0.5});
  const dl::Tensor labels = dl::Tensor::from_vector<float>({1}, {0.f});  // not checked: wrt false
  const dl::testing::GradcheckResult r =
      dl::testing::gradcheck([&wrong](const Inputs& in) { return wrong({in[1]}); }, {labels, x}, {false, true});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.checked, 3);
  EXPECT_EQ(r.failures, 3);
  ASSERT_EQ(r.mismatches.size(), 3u);
  EXPECT_EQ(r.mismatches[1].input, 1u);
  EXPECT_EQ(r.mismatches[1].element, 1);
  EXPECT_NEAR(r.mismatches[1].numeric, 2 * r.mismatches[1].analytic, 1e-6);
  EXPECT_NE(r.message.find("input 1 [3] element 1: analytic"), std::string::npos) << r.message;
  EXPECT_NE(error_of([&] { r.throw_if_failed(); }).find("3 of 3 gradient elements differ"), std::string::npos);
  // Misuse is an error, not a failed check.
  EXPECT_NE(
      error_of([&] { dl::testing::gradcheck(twice, {dl::Tensor::ones({2})}); }).find("must be a float64 CPU tensor"),
      std::string::npos);
  const dl::testing::GradcheckResult good = dl::testing::gradcheck(twice, {x});
  EXPECT_TRUE(good.ok) << good.message;
  EXPECT_NO_THROW(good.throw_if_failed());
}

// ---- the CUDA access of dl/core/cuda.h where there is no CUDA device (this machine, CI) ----
TEST(CustomOpCuda, StreamWithoutADeviceIsAClearError) {
  if (dl::cuda_available()) {
    EXPECT_NE(dl::cuda::current_stream(0), nullptr);
    return;
  }
  const std::string e = error_of([] { dl::cuda::current_stream(0); });
  if (!dl::cuda::kBuiltWithCuda) {
    EXPECT_NE(e.find("built without CUDA"), std::string::npos) << e;
  }
  EXPECT_NE(e, "(no dl::Error)");
}

}  // namespace
