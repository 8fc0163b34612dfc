// The linear layer under the precision policy on the CPU (Note [bf16 linear on the CPU] in
// backend/cpu/linear.cpp): bf16 forward and backward through the front end against float32, within 1e-2 of
// the largest magnitude and visibly not float32 (more than 1e-5 apart), the backward in its forward's
// precision after the autocast has ended; against the same float32 GEMM on operands rounded by hand; the
// bias gradient float32; float64, tf32 and fp16 as the policy says. Also the GPU arithmetic switches of
// dl/core/cuda.h, which exist in every build.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "dl/dl.h"
#include "round16.cuh"

namespace {

using dl::Precision;
using dl::Tensor;

constexpr double kBf16Tolerance = 1e-2;  // of the largest magnitude: 8 significant bits per operand
constexpr double kNotFp32 = 1e-5;        // float32 orderings agree to about 1e-6

struct Deviation {
  double max_diff = 0, scale = 0;
  double relative() const { return max_diff / std::max(scale, 1e-30); }
};
// max |got - want| and max |want|; a non-finite value in `got` makes the deviation infinite.
Deviation deviation(const std::vector<float>& got, const std::vector<float>& want) {
  Deviation d;
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = got[i], w = want[i];
    d.max_diff = std::isfinite(g) ? std::max(d.max_diff, std::fabs(g - w)) : INFINITY;
    d.scale = std::max(d.scale, std::fabs(w));
  }
  return d;
}

std::vector<float> rounded_to_bf16(const Tensor& t) {
  std::vector<float> v = t.to_vector_f32();
  for (float& e : v) e = dl::kern::round_to_bf16(e);
  return v;
}

struct LinearRun {
  Tensor y, gx, gw, gb;
};

// y = linear(x, w, b) with the forward under an autocast of `math`, then the backward of sum(y * r) after the
// autocast has ended: the backward must keep the forward's precision.
LinearRun run_linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& r, Precision math) {
  Tensor xv = x.clone().set_requires_grad(true), wv = w.clone().set_requires_grad(true),
         bv = b.clone().set_requires_grad(true);
  Tensor y;
  {
    dl::Autocast autocast(math);
    y = dl::ops::linear(xv, wv, bv);
  }
  dl::ops::sum(dl::ops::mul(y, r)).backward();
  return {y, xv.grad(), wv.grad(), bv.grad()};
}

class PrecisionLinear : public ::testing::Test {
 protected:
  // Sizes like MNIST's classifier, with an inner dimension long enough for rounding to add up.
  const int64_t n = 32, in = 300, out = 10;
  dl::Generator gen{2026};
  const Tensor x = Tensor::uniform({n, in}, -1, 1, gen), w = Tensor::uniform({out, in}, -0.2, 0.2, gen),
               b = Tensor::uniform({out}, -1, 1, gen), r = Tensor::uniform({n, out}, -1, 1, gen);
};

TEST_F(PrecisionLinear, Bf16ForwardAndBackwardAgainstFloat32) {
  if (!dl::cpu_bf16_available())
    GTEST_SKIP() << "bf16 on this CPU is refused by the policy (no AVX-512 BF16 or oneDNN)";
  const LinearRun f32 = run_linear(x, w, b, r, Precision::kFp32), bf16 = run_linear(x, w, b, r, Precision::kBf16);
  const std::pair<const char*, std::pair<Tensor, Tensor>> outputs[] = {
      {"y", {bf16.y, f32.y}}, {"dx", {bf16.gx, f32.gx}}, {"dw", {bf16.gw, f32.gw}}};
  for (const auto& [name, pair] : outputs) {
    const Deviation d = deviation(pair.first.to_vector_f32(), pair.second.to_vector_f32());
    EXPECT_LE(d.relative(), kBf16Tolerance) << name << ": bf16 too far from float32";
    EXPECT_GT(d.relative(), kNotFp32) << name << ": bf16 gave float32's result (was it computed in float32?)";
  }
  // The bias gradient sums the float32 dy in both.
  EXPECT_EQ(bf16.gb.to_vector_f32(), f32.gb.to_vector_f32()) << "the bias gradient must stay float32";
}

// The front end's bf16 results are the float32 GEMM of the operands rounded to bf16 (what a bf16 kernel with
// float32 accumulation computes): y = round(x) round(w)^T + b, dx = round(dy) round(w), dw = round(dy)^T round(x).
TEST_F(PrecisionLinear, Bf16IsTheFloat32GemmOfRoundedOperands) {
  if (!dl::cpu_bf16_available())
    GTEST_SKIP() << "bf16 on this CPU is refused by the policy (no AVX-512 BF16 or oneDNN)";
  const LinearRun bf16 = run_linear(x, w, b, r, Precision::kBf16);
  const std::vector<float> xr = rounded_to_bf16(x), wr = rounded_to_bf16(w), dyr = rounded_to_bf16(r),
                           bv = b.to_vector_f32();
  std::vector<float> y(n * out), dx(n * in), dw(out * in);
  dl::cpu::linear_forward(xr.data(), wr.data(), bv.data(), y.data(), n, in, out);
  dl::cpu::linear_backward(xr.data(), wr.data(), dyr.data(), dx.data(), dw.data(), static_cast<float*>(nullptr), n, in,
                           out);
  EXPECT_LE(deviation(bf16.y.to_vector_f32(), y).relative(), 1e-6) << "y";
  EXPECT_LE(deviation(bf16.gx.to_vector_f32(), dx).relative(), 1e-6) << "dx";
  EXPECT_LE(deviation(bf16.gw.to_vector_f32(), dw).relative(), 1e-6) << "dw";
}

// The backend rounds whatever the CPU: bf16 there needs no AVX-512 BF16 (only the policy's front end asks).
TEST_F(PrecisionLinear, BackendBf16DiffersFromFloat32) {
  const std::vector<float> xv = x.to_vector_f32(), wv = w.to_vector_f32();
  std::vector<float> y32(n * out, 1.f), y16(n * out, 2.f);
  dl::cpu::linear_forward(xv.data(), wv.data(), static_cast<const float*>(nullptr), y32.data(), n, in, out,
                          Precision::kFp32);
  dl::cpu::linear_forward(xv.data(), wv.data(), static_cast<const float*>(nullptr), y16.data(), n, in, out,
                          Precision::kBf16);
  const Deviation d = deviation(y16, y32);
  EXPECT_LE(d.relative(), kBf16Tolerance);
  EXPECT_GT(d.relative(), kNotFp32);
}

TEST_F(PrecisionLinear, Float64AndTf32StayExact) {
  // float64 ignores the precision (gradient checks): the same bits under bf16 as under fp32.
  const Tensor xd = x.to(dl::DType::kFloat64), wd = w.to(dl::DType::kFloat64);
  Tensor y64;
  {
    dl::Autocast autocast(Precision::kBf16);
    y64 = dl::ops::linear(xd, wd, Tensor());
  }
  EXPECT_EQ(y64.to_vector_f32(), dl::ops::linear(xd, wd, Tensor()).to_vector_f32()) << "float64 under bf16";
  // tf32 is float32 on the CPU.
  const LinearRun f32 = run_linear(x, w, b, r, Precision::kFp32), tf32 = run_linear(x, w, b, r, Precision::kTf32);
  EXPECT_EQ(tf32.y.to_vector_f32(), f32.y.to_vector_f32()) << "y under tf32";
  EXPECT_EQ(tf32.gw.to_vector_f32(), f32.gw.to_vector_f32()) << "dw under tf32";
}

TEST_F(PrecisionLinear, Fp16IsRefusedOnTheCpu) {
  try {
    dl::Autocast autocast(Precision::kFp16);
    dl::ops::linear(x, w, b);
    FAIL() << "linear under fp16 ran on the CPU";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("linear"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fp16"), std::string::npos) << e.what();
  }
  std::vector<float> y(n * out);
  const std::vector<float> xv = x.to_vector_f32(), wv = w.to_vector_f32();
  EXPECT_THROW(dl::cpu::linear_forward(xv.data(), wv.data(), static_cast<const float*>(nullptr), y.data(), n, in, out,
                                       Precision::kFp16),
               dl::Error);
}

// TF32 on by default (as PyTorch has it for cuDNN convolutions) unless DL_ALLOW_TF32=0; deterministic
// algorithms off by default; both settable, in a build with or without CUDA.
TEST(PrecisionSwitches, DefaultsAndSetters) {
  const char* env = std::getenv("DL_ALLOW_TF32");
  EXPECT_EQ(dl::cuda::allow_tf32(), env == nullptr || std::strcmp(env, "0") != 0);
  EXPECT_FALSE(dl::deterministic());
  const bool tf32 = dl::cuda::allow_tf32();
  dl::cuda::set_allow_tf32(!tf32);
  dl::set_deterministic(true);
  EXPECT_EQ(dl::cuda::allow_tf32(), !tf32);
  EXPECT_TRUE(dl::deterministic());
  dl::cuda::set_allow_tf32(tf32);
  dl::set_deterministic(false);
  EXPECT_EQ(dl::cuda::allow_tf32(), tf32);
  EXPECT_FALSE(dl::deterministic());
}

}  // namespace
