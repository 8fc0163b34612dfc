// The two CPU convolution engines agree: oneDNN's direct kernels against the im2col + GEMM path,
// forward, backward data, weights and bias, over strides, padding, dilation, groups and sizes on
// both sides of the automatic switch. Outputs are pre-filled differently for each engine (NaN and
// a large value), so an engine that leaves any element unwritten cannot pass.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backend/cpu/conv2d_onednn.h"
#include "backend/cpu/cpu_ops.h"
#include "dl/dl.h"
#include "dl/testing/gradcheck.h"

namespace {

struct Case {
  int64_t n, c, h, w, k, r, s;
  int stride, pad, dilation, groups;
  bool bias;
};

std::vector<float> filled(int64_t n, float v) { return std::vector<float>(static_cast<size_t>(n), v); }

double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double scale = 1e-30, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    scale = std::max(scale, static_cast<double>(std::fabs(a[i])));
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
  }
  return diff / scale;
}

class ConvEngines : public ::testing::TestWithParam<Case> {};

TEST_P(ConvEngines, OneDnnMatchesIm2col) {
  if (!dl::cpu_onednn_available()) GTEST_SKIP() << "libdl built without oneDNN (DL_ONEDNN=OFF or libdnnl-dev missing)";
  const Case t = GetParam();
  const dl::Conv2dParams p{{t.stride, t.stride}, {t.pad, t.pad}, {t.dilation, t.dilation}, t.groups};
  const dl::Conv2dGeometry g = dl::ops::conv2d_geometry({t.n, t.c, t.h, t.w}, {t.k, t.c / t.groups, t.r, t.s}, p);
  dl::Generator gen(17);
  const auto x = dl::Tensor::randn({t.n, t.c, t.h, t.w}, gen).to_vector_f32();
  const auto w = dl::Tensor::randn({t.k, t.c / t.groups, t.r, t.s}, gen).to_vector_f32();
  const auto b = dl::Tensor::randn({t.k}, gen).to_vector_f32();
  const auto dy = dl::Tensor::randn({t.n, t.k, g.ho, g.wo}, gen).to_vector_f32();
  const int64_t ny = t.n * t.k * g.ho * g.wo, nx = static_cast<int64_t>(x.size()), nw = static_cast<int64_t>(w.size());
  const float* bias = t.bias ? b.data() : nullptr;

  dl::set_cpu_conv_engine(dl::CpuConvEngine::kIm2col);
  auto y1 = filled(ny, 1e30f), dx1 = filled(nx, 1e30f), dw1 = filled(nw, 1e30f), db1 = filled(t.k, 1e30f);
  dl::cpu::conv2d_forward<float>(g, x.data(), w.data(), bias, y1.data());
  dl::cpu::conv2d_backward<float>(g, x.data(), w.data(), dy.data(), dx1.data(), dw1.data(),
                                  t.bias ? db1.data() : nullptr);

  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto y2 = filled(ny, nan), dx2 = filled(nx, nan), dw2 = filled(nw, nan), db2 = filled(t.k, nan);
  ASSERT_TRUE(dl::cpu::onednn_conv2d_forward(g, x.data(), w.data(), bias, y2.data()));
  ASSERT_TRUE(dl::cpu::onednn_conv2d_backward(g, x.data(), w.data(), dy.data(), dx2.data(), dw2.data(),
                                              t.bias ? db2.data() : nullptr));
  dl::set_cpu_conv_engine(dl::CpuConvEngine::kAuto);

  EXPECT_LE(max_rel(y1, y2), 1e-5);
  EXPECT_LE(max_rel(dx1, dx2), 1e-5);
  EXPECT_LE(max_rel(dw1, dw2), 1e-5);
  if (t.bias) {
    EXPECT_LE(max_rel(db1, db2), 1e-5);
  }
  // Only the wanted gradients: dx alone, then dw alone.
  auto dx3 = filled(nx, nan), dw3 = filled(nw, nan);
  ASSERT_TRUE(dl::cpu::onednn_conv2d_backward(g, x.data(), w.data(), dy.data(), dx3.data(), nullptr, nullptr));
  ASSERT_TRUE(dl::cpu::onednn_conv2d_backward(g, x.data(), w.data(), dy.data(), nullptr, dw3.data(), nullptr));
  EXPECT_LE(max_rel(dx1, dx3), 1e-5);
  EXPECT_LE(max_rel(dw1, dw3), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Geometries, ConvEngines,
    ::testing::Values(Case{2, 3, 17, 23, 8, 3, 3, 1, 1, 1, 1, true}, Case{2, 8, 20, 30, 16, 3, 3, 2, 1, 1, 1, false},
                      Case{1, 16, 12, 15, 16, 3, 3, 1, 2, 2, 1, false}, Case{2, 8, 10, 14, 8, 3, 3, 1, 6, 6, 1, true},
                      Case{2, 8, 9, 11, 12, 3, 3, 1, 1, 1, 4, true}, Case{1, 3, 45, 61, 16, 7, 7, 2, 3, 1, 1, false},
                      Case{2, 16, 40, 40, 8, 1, 1, 1, 0, 1, 1, true}, Case{1, 4, 5, 6, 4, 3, 3, 1, 18, 18, 1, false}));

TEST(ConvEngines, OneDnnIsBitReproducible) {
  // Same inputs, same threads: the same bits (resumed training relies on it).
  if (!dl::cpu_onednn_available()) GTEST_SKIP() << "libdl built without oneDNN";
  const dl::Conv2dGeometry g = dl::ops::conv2d_geometry({4, 16, 20, 20}, {32, 16, 3, 3}, {.padding = {1, 1}});
  dl::Generator gen(5);
  const auto x = dl::Tensor::randn({4, 16, 20, 20}, gen).to_vector_f32();
  const auto w = dl::Tensor::randn({32, 16, 3, 3}, gen).to_vector_f32();
  const auto dy = dl::Tensor::randn({4, 32, 20, 20}, gen).to_vector_f32();
  std::vector<std::vector<float>> dws;
  for (int run = 0; run < 2; ++run) {
    auto dx = filled(static_cast<int64_t>(x.size()), 0.f), dw = filled(static_cast<int64_t>(w.size()), 0.f);
    ASSERT_TRUE(dl::cpu::onednn_conv2d_backward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), nullptr));
    dws.push_back(dw);
  }
  EXPECT_EQ(dws[0], dws[1]);
}

TEST(ConvEngines, EnginesAgreeThroughTheOpAndFloat64StaysOnIm2col) {
  // Through the op front end both engines give the same values, in float32 and float64.
  dl::Generator gen(3);
  const dl::Tensor x = dl::Tensor::randn({1, 4, 40, 40}, gen), w = dl::Tensor::randn({4, 4, 3, 3}, gen);
  dl::set_cpu_conv_engine(dl::CpuConvEngine::kIm2col);
  const auto a = dl::ops::conv2d(x, w, {}, {.padding = {1, 1}}).to_vector_f32();
  dl::set_cpu_conv_engine(dl::CpuConvEngine::kAuto);
  const auto b = dl::ops::conv2d(x, w, {}, {.padding = {1, 1}}).to_vector_f32();
  EXPECT_LE(max_rel(a, b), 1e-5);
  const auto c = dl::ops::conv2d(x.to(dl::DType::kFloat64), w.to(dl::DType::kFloat64), {}, {.padding = {1, 1}});
  EXPECT_LE(max_rel(a, c.to_vector_f32()), 1e-5);
}

// conv2d_relu (Note [fused conv relu]): the same values and gradients as relu(conv2d) on both engines, in
// both memory formats and under bf16; one node in the graph; float64 gradients checked numerically.
TEST(ConvEngines, FusedReluMatchesConvThenRelu) {
  dl::Generator gen(5);
  const dl::Tensor x0 = dl::Tensor::randn({2, 16, 12, 10}, gen), w = dl::Tensor::randn({8, 16, 3, 3}, gen);
  const dl::Tensor b = dl::Tensor::randn({8}, gen), up = dl::Tensor::randn({2, 8, 12, 10}, gen);
  const dl::Conv2dParams p{.padding = {1, 1}};
  for (const dl::CpuConvEngine engine : {dl::CpuConvEngine::kIm2col, dl::CpuConvEngine::kOneDnn})
    for (const dl::MemoryFormat f : {dl::MemoryFormat::kContiguous, dl::MemoryFormat::kChannelsLast})
      for (const dl::Precision precision : {dl::Precision::kFp32, dl::Precision::kBf16}) {
        if (precision == dl::Precision::kBf16 && (engine == dl::CpuConvEngine::kIm2col || !dl::cpu_bf16_available()))
          continue;
        SCOPED_TRACE(std::string(engine == dl::CpuConvEngine::kOneDnn ? "oneDNN" : "im2col") +
                     (f == dl::MemoryFormat::kChannelsLast ? " channels-last " : " NCHW ") +
                     std::string(dl::precision_name(precision)));
        dl::set_cpu_conv_engine(engine);
        const dl::Autocast autocast(precision);
        dl::Tensor xa = dl::ops::to_memory_format(x0, f).detach().set_requires_grad(true);
        dl::Tensor xb = dl::ops::to_memory_format(x0, f).detach().set_requires_grad(true);
        dl::Tensor wa = w.clone().set_requires_grad(true), wb = w.clone().set_requires_grad(true);
        dl::Tensor ba = b.clone().set_requires_grad(true), bb = b.clone().set_requires_grad(true);
        const dl::Tensor fused = dl::ops::conv2d_relu(xa, wa, ba, p);
        const dl::Tensor apart = dl::ops::relu(dl::ops::conv2d(xb, wb, bb, p));
        EXPECT_EQ(fused.memory_format(), f);
        ASSERT_NE(fused.grad_fn(), nullptr);
        if (engine == dl::CpuConvEngine::kIm2col && f == dl::MemoryFormat::kChannelsLast)  // NCHW between reorders
          EXPECT_EQ(fused.grad_fn()->edges.at(0).fn->name, "conv2d_relu");
        else
          EXPECT_EQ(fused.grad_fn()->name, "conv2d_relu");
        EXPECT_LE(max_rel(fused.to_vector_f32(), apart.to_vector_f32()), 1e-6);
        int zeros = 0;
        for (float v : fused.to_vector_f32()) zeros += v == 0.0f;
        EXPECT_GT(zeros, 100) << "the ReLU must have cut something";
        dl::ops::sum(dl::ops::mul(fused, up)).backward();
        dl::ops::sum(dl::ops::mul(apart, up)).backward();
        EXPECT_LE(max_rel(xa.grad().to_vector_f32(), xb.grad().to_vector_f32()), 1e-5);
        EXPECT_LE(max_rel(wa.grad().to_vector_f32(), wb.grad().to_vector_f32()), 1e-5);
        EXPECT_LE(max_rel(ba.grad().to_vector_f32(), bb.grad().to_vector_f32()), 1e-5);
      }
  // A channels-last forward on oneDNN keeps its backward there when the engine setting changes in between.
  dl::set_cpu_conv_engine(dl::CpuConvEngine::kAuto);
  {
    dl::Tensor xc = dl::ops::channels_last(x0).detach().set_requires_grad(true);
    const dl::Tensor y = dl::ops::conv2d_relu(xc, w, b, p);
    dl::set_cpu_conv_engine(dl::CpuConvEngine::kIm2col);
    dl::ops::sum(dl::ops::mul(y, up)).backward();
    dl::set_cpu_conv_engine(dl::CpuConvEngine::kAuto);
    dl::Tensor xn = x0.clone().set_requires_grad(true);
    dl::ops::sum(dl::ops::mul(dl::ops::conv2d_relu(xn, w, b, p), up)).backward();
    EXPECT_LE(max_rel(xc.grad().to_vector_f32(), xn.grad().to_vector_f32()), 1e-5);
  }
  const auto f = [&p](const std::vector<dl::Tensor>& in) {
    return dl::ops::sum(dl::ops::mul(dl::ops::conv2d_relu(in[0], in[1], in[2], p), in[3]));
  };
  auto d = [](const dl::Tensor& t) { return t.to(dl::DType::kFloat64); };
  const dl::Tensor xs = dl::Tensor::randn({1, 3, 5, 4}, gen), ws = dl::Tensor::randn({2, 3, 3, 3}, gen);
  EXPECT_TRUE(
      dl::testing::gradcheck(f, {d(xs), d(ws), d(dl::Tensor::randn({2}, gen)), d(dl::Tensor::randn({1, 2, 5, 4}, gen))},
                             {true, true, true, false}));
}

}  // namespace
