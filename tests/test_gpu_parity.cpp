// CPU/CUDA parity of every op of the CUDA backend (label gpu): every row of the op table (tests/op_cases.h)
// through the front ends and autograd on both devices, with the CUDA allocator poisoning what it hands
// out; the backend bodies that are no op of the table on the same inputs with the outputs pre-filled
// differently (1 on the CPU, 2 on the GPU), so that a body that writes nothing cannot pass; one whole
// MNIST training step; the training steps' blocking calls (none between two reads of their scalars); and the
// precision policy on the GPU (bf16 / fp16 convolution and linear against the
// CPU's float32, TF32 off and forced, deterministic algorithms). The float32 parity cases run with TF32 off
// (dl::cuda::set_allow_tf32(false)): they check float32 arithmetic. Without a usable GPU every case skips and says why;
// the error a user gets when asking for a GPU that is not there is checked on every machine.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dl/config.h"
#include "dl/dl.h"
#include "op_cases.h"
#include "quadrants.h"
#include "require_gpu.h"
#if DL_WITH_CUDA
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/optim_update.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/runtime.h"
#include "round16.cuh"
#endif

namespace {

using dl::Conv2dParams;
using dl::Device;
using dl::DType;
using dl::Shape;
using dl::Tensor;

using dl::testing::why_no_gpu;

TEST(GpuRuntime, MissingDeviceGivesAClearError) {
  if (why_no_gpu().empty()) GTEST_SKIP() << "a GPU is present: the missing-device path cannot be exercised";
  try {
    Tensor::empty({4}, dl::DType::kFloat32, Device::cuda(0));
    FAIL() << "allocating on a missing GPU did not throw";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
}

#if DL_WITH_CUDA

constexpr Device kGpu{dl::DeviceType::kCUDA, 0};

Tensor rnd(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  dl::Generator g(seed);
  return Tensor::uniform(s, lo, hi, g);
}

// A pair of outputs: the CPU one filled with 1, the GPU one with 2.
struct Out {
  Tensor cpu, gpu;
  explicit Out(const Shape& s) : cpu(Tensor::full(s, 1.0)), gpu(Tensor::full(s, 2.0, dl::DType::kFloat32, kGpu)) {}
  float* c() { return cpu.data<float>(); }
  float* g() { return gpu.data<float>(); }
};

const float* G(const Tensor& t) { return t.data<float>(); }  // device pointer of a device tensor

void expect_match(const Tensor& cpu, const Tensor& gpu, double tol, const std::string& what) {
  ASSERT_EQ(cpu.shape(), gpu.shape()) << what;
  ASSERT_TRUE(gpu.device().is_cuda()) << what;
  const std::vector<float> a = cpu.to_vector_f32(), b = gpu.to_vector_f32();
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(b[i], a[i], tol * (1 + std::abs(a[i]))) << what << ": element " << i << " of " << a.size();
}

// Float32 parity needs float32 arithmetic: TF32 (on by default) is off for the test and restored after.
class Tf32Off {
 public:
  Tf32Off() : was_(dl::cuda::allow_tf32()) { dl::cuda::set_allow_tf32(false); }
  ~Tf32Off() { dl::cuda::set_allow_tf32(was_); }
  Tf32Off(const Tf32Off&) = delete;
  Tf32Off& operator=(const Tf32Off&) = delete;

 private:
  bool was_;
};

class GpuParity : public ::testing::Test {
 protected:
  void SetUp() override { DL_REQUIRE_GPU(); }
  void TearDown() override {
    if (why_no_gpu().empty()) dl::cuda::synchronize(0);  // surfaces asynchronous kernel errors here
  }
  Tf32Off tf32_off_;
};

// ---- every row of the op table (tests/op_cases.h) with kGpu: the same front end on both devices ----
// The caching allocator poisons each block it hands out (NaN bytes) during these cases, so an output or
// a gradient that a CUDA body leaves unwritten cannot pass.
class OpGpuParity : public ::testing::TestWithParam<dl::testing::OpCase> {
 protected:
  void SetUp() override {
    DL_REQUIRE_GPU();
    dl::cuda::CudaAllocator::instance().set_poison(true);
  }
  void TearDown() override {
    if (!why_no_gpu().empty()) return;
    dl::cuda::synchronize(0);  // surfaces asynchronous kernel errors here
    dl::cuda::CudaAllocator::instance().set_poison(false);
  }
  Tf32Off tf32_off_;
};

// Forward outputs, then the gradients of sum(y * R) for every differentiated input.
std::vector<Tensor> run_case(const dl::testing::OpCase& c, Device d, std::vector<Tensor>& grads) {
  std::vector<Tensor> xs = dl::testing::make_inputs(c, dl::DType::kFloat32, d);
  for (size_t i = 0; i < xs.size(); ++i)
    if (c.inputs[i].grad) xs[i].set_requires_grad(true);
  const std::vector<Tensor> ys = c.dl(xs).v;
  dl::ops::sum(dl::ops::mul(ys[0], rnd(ys[0].shape(), 99).to(d))).backward();
  for (size_t i = 0; i < xs.size(); ++i) grads.push_back(c.inputs[i].grad ? xs[i].grad() : Tensor());
  return ys;
}

TEST_P(OpGpuParity, ForwardBackward) {
  const dl::testing::OpCase& c = GetParam();
  std::vector<Tensor> gc, gg;
  const std::vector<Tensor> yc = run_case(c, Device::cpu(), gc), yg = run_case(c, kGpu, gg);
  ASSERT_EQ(yc.size(), yg.size());
  for (size_t k = 0; k < yc.size(); ++k) expect_match(yc[k], yg[k], c.gpu_tol, "output " + std::to_string(k));
  for (size_t i = 0; i < gc.size(); ++i) {
    ASSERT_EQ(gc[i].defined(), gg[i].defined()) << "gradient of input " << i;
    if (gc[i].defined()) expect_match(gc[i], gg[i], c.gpu_tol, "gradient of input " + std::to_string(i));
  }
}

INSTANTIATE_TEST_SUITE_P(Table, OpGpuParity, ::testing::ValuesIn(dl::testing::op_cases_for(dl::testing::kGpu)),
                         dl::testing::OpCaseId());

// The backend bodies that are no op of the table: accumulation, fill, the squared norm.
TEST_F(GpuParity, AccumulateFillNorm) {
  const int64_t m = 1001;
  const Tensor a = rnd({m}, 16), c = rnd({m}, 17), ad = a.to(kGpu);
  EXPECT_NEAR(dl::ops::squared_norm(ad), dl::ops::squared_norm(a), 1e-9 * dl::ops::squared_norm(a)) << "squared norm";
  // Of several tensors (an undefined one skipped): one read of the device for all of them.
  const Tensor b = rnd({7, 3}, 18), bd = b.to(kGpu);
  const double both = dl::ops::squared_norm({a, Tensor(), b});
  const uint64_t before = dl::cuda::blocking_calls();
  EXPECT_NEAR(dl::ops::squared_norm({ad, Tensor(), bd}), both, 1e-9 * both) << "squared norm of several";
  EXPECT_EQ(dl::cuda::blocking_calls() - before, 1u) << "one read; the last: " << dl::cuda::last_blocking_call();
  const float* A = a.data<float>();
  Tensor yc = c.clone(), yg = c.to(kGpu);  // accumulating: both start from the same values
  dl::cpu::axpy_acc(0.25f, A, yc.data<float>(), m);
  dl::cuda::axpy_acc(0, 0.25f, G(ad), yg.data<float>(), m);
  expect_match(yc, yg, 0, "axpy");
  Out filled({m});
  std::fill(filled.c(), filled.c() + m, 0.5f);
  dl::cuda::fill(0, filled.g(), m, 0.5f);
  expect_match(filled.cpu, filled.gpu, 0, "fill");
}

// Tensor::to between float32 and bfloat16 / float16 runs the cast kernels on the device: the bits equal
// the CPU's conversion (round to nearest even, NaN and overflow included), and back to float32 exactly.
// The other dtypes' conversions and the 16-bit shape ops (strided copies of 2-byte elements) as well.
TEST_F(GpuParity, DTypeConversionsAndSixteenBitCopies) {
  Tensor x = rnd({4097}, 31);
  float* p = x.data<float>();
  p[0] = std::numeric_limits<float>::quiet_NaN();
  p[1] = 70000.0f;
  p[2] = 1.0f + 0.00390625f;
  for (DType t : {DType::kBFloat16, DType::kFloat16}) {
    const Tensor c = x.to(t), g = x.to(kGpu).to(t);
    ASSERT_EQ(g.dtype(), t);
    const Tensor gh = g.to(Device::cpu());
    EXPECT_EQ(0, std::memcmp(c.raw_data(), gh.raw_data(), c.nbytes())) << dl::dtype_name(t);
    const Tensor back = g.to(DType::kFloat32).to(Device::cpu());
    EXPECT_EQ(0, std::memcmp(c.to(DType::kFloat32).raw_data(), back.raw_data(), back.nbytes())) << dl::dtype_name(t);
    const Tensor tc = dl::ops::transpose(c.view({17, 241}), 0, 1);
    const Tensor tg = dl::ops::transpose(g.view({17, 241}), 0, 1).to(Device::cpu());
    EXPECT_EQ(0, std::memcmp(tc.raw_data(), tg.raw_data(), tc.nbytes())) << "transpose of " << dl::dtype_name(t);
  }
  const Tensor m = dl::ops::gt(x.to(kGpu), 0.0);
  EXPECT_EQ(m.dtype(), DType::kBool);
  EXPECT_EQ(m.to(Device::cpu()).to_vector_f32(), dl::ops::gt(x, 0.0).to_vector_f32());
  EXPECT_EQ(m.to(DType::kInt64).to(Device::cpu()).to_vector_f32(), dl::ops::gt(x, 0.0).to_vector_f32());
  // Integer comparisons (int32 against int64 labels, as int64) by the compare kernel's integer instances.
  const Tensor classes = dl::ops::argmax(x.view({241, 17}), 1);
  const Tensor labels = dl::ops::argmin(x.view({241, 17}), 1).to(DType::kInt64);
  const Tensor hits = dl::ops::eq(classes.to(kGpu), labels.to(kGpu)).to(Device::cpu());
  EXPECT_EQ(hits.to_vector_f32(), dl::ops::eq(classes, labels).to_vector_f32());
  EXPECT_EQ(dl::ops::le(classes.to(kGpu), 8.0).to(Device::cpu()).to_vector_f32(),
            dl::ops::le(classes, 8.0).to_vector_f32());
}

TEST_F(GpuParity, CrossEntropyResizeConcatOptimisers) {
  const int64_t n = 2, c = 11, h = 9, w = 13, s = h * w;
  const Tensor logits = rnd({n, c, h, w}, 18, -3, 3), weights = rnd({c}, 19, 0.5, 2);
  std::vector<int32_t> lv(n * s);
  for (size_t i = 0; i < lv.size(); ++i) lv[i] = i % 7 == 0 ? 255 : static_cast<int32_t>(i * 5 % c);
  const Tensor labels = Tensor::from_vector<int32_t>({n, h, w}, lv);
  const Tensor ld = logits.to(kGpu), labd = labels.to(kGpu), wd = weights.to(kGpu);
  Out lp({n, c, h, w}), loss({1}), dl_({n, c, h, w});
  double loss_sum = 0, wsum = 0;
  dl::cpu::cross_entropy_forward(logits.data<float>(), lv.data(), weights.data<float>(), n, c, s, 255, lp.c(),
                                 &loss_sum, &wsum);
  loss.cpu.data<float>()[0] = static_cast<float>(loss_sum / wsum);
  Tensor wsum_d = Tensor::empty({1}, dl::DType::kFloat64, kGpu);
  dl::cuda::cross_entropy_forward(0, G(ld), labd.data<int32_t>(), G(wd), n, c, s, 255, lp.g(), loss.g(),
                                  wsum_d.data<double>());
  expect_match(lp.cpu, lp.gpu, 1e-5, "cross-entropy log-probabilities");
  expect_match(loss.cpu, loss.gpu, 1e-5, "cross-entropy loss");
  const Tensor gy = Tensor::full({1}, 0.5), gyd = gy.to(kGpu);
  dl::cpu::cross_entropy_backward(lp.cpu.data<float>(), lv.data(), weights.data<float>(), n, c, s, 255,
                                  static_cast<float>(0.5 / wsum), dl_.c());
  dl::cuda::cross_entropy_backward(0, G(lp.gpu), labd.data<int32_t>(), G(wd), n, c, s, 255, G(gyd),
                                   wsum_d.data<double>(), dl_.g());
  expect_match(dl_.cpu, dl_.gpu, 1e-5, "cross-entropy dlogits");

  Out up({n, c, 20, 31}), back({n, c, h, w});
  dl::cpu::resize_bilinear_forward(logits.data<float>(), up.c(), n * c, h, w, 20, 31);
  dl::cuda::resize_bilinear_forward(0, G(ld), up.g(), n * c, h, w, 20, 31);
  expect_match(up.cpu, up.gpu, 1e-5, "bilinear forward");
  dl::cpu::resize_bilinear_backward(up.cpu.data<float>(), back.c(), n * c, h, w, 20, 31);
  dl::cuda::resize_bilinear_backward(0, G(up.gpu), back.g(), n * c, h, w, 20, 31);
  expect_match(back.cpu, back.gpu, 1e-4, "bilinear backward");

  const int64_t cs[2] = {c, 3};
  const Tensor other = rnd({n, 3, h, w}, 20), otherd = other.to(kGpu);
  Out cat({n, c + 3, h, w});
  const float* xs_c[2] = {logits.data<float>(), other.data<float>()};
  const float* xs_g[2] = {G(ld), G(otherd)};
  dl::cpu::concat_channels(xs_c, cs, 2, n, s, cat.c());
  dl::cuda::concat_channels(0, xs_g, cs, 2, n, s, cat.g());
  expect_match(cat.cpu, cat.gpu, 0, "concat");

  const Tensor w0 = rnd({300}, 21), g0 = rnd({300}, 22), m0 = rnd({300}, 23, 0, 0.1);
  Tensor wc = w0.clone(), mc = m0.clone(), vc = m0.clone(), wg = w0.to(kGpu), mg = m0.to(kGpu), vg = m0.to(kGpu);
  const Tensor gg = g0.to(kGpu);
  dl::cpu::adam_update(wc.data<float>(), g0.data<float>(), mc.data<float>(), vc.data<float>(), 300, 0.01f, 0.9f, 0.999f,
                       1e-8f, 1e-4f, 5);
  dl::cuda::adam_update(0, wg.data<float>(), G(gg), mg.data<float>(), vg.data<float>(), 300, 0.01f, 0.9f, 0.999f, 1e-8f,
                        1e-4f, 5);
  expect_match(wc, wg, 1e-6, "adam w");
  dl::cpu::sgdm_update(wc.data<float>(), g0.data<float>(), mc.data<float>(), 300, 0.01f, 0.9f, 1e-4f);
  dl::cuda::sgdm_update(0, wg.data<float>(), G(gg), mg.data<float>(), 300, 0.01f, 0.9f, 1e-4f);
  expect_match(wc, wg, 1e-6, "sgdm w");
  dl::cpu::rmsprop_update(wc.data<float>(), g0.data<float>(), vc.data<float>(), 300, 0.01f, 0.9f, 1e-8f, 1e-4f);
  dl::cuda::rmsprop_update(0, wg.data<float>(), G(gg), vg.data<float>(), 300, 0.01f, 0.9f, 1e-8f, 1e-4f);
  expect_match(wc, wg, 1e-6, "rmsprop w");

  Out part0({n, c, h, w}), part1({n, 3, h, w});
  float* outs_c[2] = {part0.c(), part1.c()};
  float* outs_g[2] = {part0.g(), part1.g()};
  dl::cpu::split_channels(cat.cpu.data<float>(), cs, 2, n, s, outs_c);
  dl::cuda::split_channels(0, G(cat.gpu), cs, 2, n, s, outs_g);
  expect_match(part0.cpu, part0.gpu, 0, "split, part 0");
  expect_match(part1.cpu, part1.gpu, 0, "split, part 1");
}

TEST_F(GpuParity, SegmentationMetrics) {
  // The CUDA body counts exactly the pixels the CPU body counts: with the block histograms in shared
  // memory (5 classes) and with the counts straight in global memory (70 classes, over both kernels' limits).
  const int64_t images = 2, h = 40, w = 60;
  for (const int c : {5, 70}) {
    std::vector<int32_t> pred(images * h * w), truth(images * h * w);
    for (int64_t i = 0; i < images * h * w; ++i) {
      const int64_t y = i / w % h, x = i % w;
      truth[i] = (x / 7 + y / 5) % 9 == 8 ? 255 : static_cast<int32_t>((x / 7 + 3 * (y / 5)) % c);
      pred[i] = static_cast<int32_t>(((x + 2) / 7 + 3 * (y / 5)) % c);
    }
    const Tensor p = Tensor::from_vector<int32_t>({images, h, w}, pred);
    const Tensor t = Tensor::from_vector<int32_t>({images, h, w}, truth);
    const dl::ops::SegmentationCounts want = dl::ops::segmentation_counts(p, t, c, 255);
    const dl::ops::SegmentationCounts got = dl::ops::segmentation_counts(p.to(kGpu), t.to(kGpu), c, 255);
    EXPECT_EQ(got.confusion, want.confusion) << c << " classes";
    EXPECT_EQ(got.boundary, want.boundary) << c << " classes";
  }
}

// The training step's accuracy counted on the device (kernels/accuracy.cuh) against the CPU body: pixels
// with an ignored label, labels out of range, one class per sample and per pixel.
TEST_F(GpuParity, CorrectCountsMatchTheCpu) {
  for (const auto& [shape, ignore] : {std::pair{Shape({3, 11, 19, 23}), 255}, std::pair{Shape({500, 10}), -1}}) {
    const Tensor logits = rnd(shape, 45);
    const int64_t n = shape[0], pixels = logits.numel() / shape[1];
    std::vector<int32_t> lv(static_cast<size_t>(pixels));
    for (int64_t i = 0; i < pixels; ++i) lv[i] = i % 13 == 0 ? 255 : static_cast<int32_t>(i * 7 % (shape[1] + 1));
    std::vector<int64_t> label_dims = {n};
    for (int d = 2; d < shape.ndim(); ++d) label_dims.push_back(shape[d]);
    const Tensor labels = Tensor::from_vector<int32_t>(Shape(label_dims), lv);
    const Tensor want = dl::ops::correct_counts(logits, labels, ignore);
    const Tensor got = dl::ops::correct_counts(logits.to(kGpu), labels.to(kGpu), ignore);
    ASSERT_EQ(got.device(), kGpu);
    const Tensor g = got.to(Device::cpu());
    EXPECT_EQ(g.data<double>()[0], want.data<double>()[0]) << shape.str();
    EXPECT_EQ(g.data<double>()[1], want.data<double>()[1]) << shape.str();
  }
}

// The front ends and autograd on the GPU: a small convolutional net, forward and backward.
TEST_F(GpuParity, AutogradThroughTheOps) {
  const Tensor x = rnd({2, 3, 12, 12}, 30), w = rnd({4, 3, 3, 3}, 31), b = rnd({4}, 32);
  auto run = [&](Device d, std::vector<Tensor>& grads) {
    Tensor xv = x.to(d), wv = w.to(d).set_requires_grad(true), bv = b.to(d).set_requires_grad(true);
    Tensor y = dl::ops::relu(dl::ops::conv2d(xv, wv, bv, {{1, 1}, {1, 1}, {1, 1}, 1}));
    y = dl::ops::max_pool2d(y);
    y = dl::ops::resize_bilinear(y, 12, 12);
    const Tensor loss = dl::ops::mean(dl::ops::mul(y, y));
    loss.backward();
    grads = {wv.grad(), bv.grad()};
    return loss;
  };
  std::vector<Tensor> gc, gg;
  const Tensor lc = run(Device::cpu(), gc), lg = run(kGpu, gg);
  expect_match(lc, lg, 1e-5, "loss");
  expect_match(gc[0], gg[0], 1e-4, "weight gradient");
  expect_match(gc[1], gg[1], 1e-4, "bias gradient");
}

// The fused convolution + bias + ReLU (Note [fused conv relu on cuDNN]): one cuDNN call in float32 and TF32,
// separate passes in bf16 and without a bias; each against the CPU's conv2d_relu: forward and backward in
// float32, the forward in bf16 (where rounding moves an output across zero the two masks differ).
TEST_F(GpuParity, FusedConvBiasReluMatchesTheCpu) {
  const Tf32Off exact;
  const Tensor x = rnd({2, 5, 9, 11}, 60), w = rnd({7, 5, 3, 3}, 61), b = rnd({7}, 62), dy = rnd({2, 7, 9, 11}, 63);
  const dl::Conv2dParams p{{1, 1}, {1, 1}, {1, 1}, 1};
  for (const bool with_bias : {true, false}) {
    for (const dl::Precision prec : {dl::Precision::kFp32, dl::Precision::kBf16}) {
      auto run = [&](Device d, std::vector<Tensor>& grads) {
        Tensor xv = x.to(d).set_requires_grad(true), wv = w.to(d).set_requires_grad(true);
        Tensor bv = with_bias ? b.to(d).set_requires_grad(true) : Tensor();
        Tensor y;
        {
          dl::Autocast cast(
              prec == dl::Precision::kBf16 && d.is_cpu() && !dl::cpu_bf16_available() ? dl::Precision::kFp32 : prec);
          y = dl::ops::conv2d_relu(xv, wv, bv, p);
        }
        dl::ops::sum(dl::ops::mul(y, dy.to(d))).backward();
        grads = {xv.grad(), wv.grad()};
        if (with_bias) grads.push_back(bv.grad());
        return y;
      };
      std::vector<Tensor> gc, gg;
      const Tensor yc = run(Device::cpu(), gc), yg = run(kGpu, gg);
      const double tol = prec == dl::Precision::kBf16 ? 3e-2 : 1e-4;
      const std::string what = std::string(dl::precision_name(prec)) + (with_bias ? " with bias" : " without bias");
      expect_match(yc, yg, tol, "y, " + what);
      if (prec != dl::Precision::kFp32) continue;
      for (size_t i = 0; i < gc.size(); ++i)
        expect_match(gc[i], gg[i], tol, "gradient " + std::to_string(i) + ", " + what);
    }
  }
}

// Channels-last on CUDA (Note [cuDNN channels-last convolution]): convolution (grouped, with the fused ReLU),
// batch norm in training and max pooling run on NHWC descriptors; forward and gradients against the CPU's
// NHWC loops, and the outputs stay channels-last.
TEST_F(GpuParity, ChannelsLastConvBatchNormPoolMatchTheCpu) {
  const Tf32Off exact;
  const Tensor x = rnd({2, 6, 10, 9}, 70), w = rnd({8, 3, 3, 3}, 71), b = rnd({8}, 72), gamma = rnd({8}, 73, 0.5, 1.5);
  const Tensor beta = rnd({8}, 74);
  auto run = [&](Device d, std::vector<Tensor>& grads) {
    Tensor xv = dl::ops::channels_last(x.to(d)).set_requires_grad(true);
    Tensor wv = w.to(d).set_requires_grad(true), bv = b.to(d).set_requires_grad(true);
    Tensor gv = gamma.to(d).set_requires_grad(true), betav = beta.to(d).set_requires_grad(true);
    Tensor rm = Tensor::zeros({8}).to(d), rv = Tensor::ones({8}).to(d);
    const dl::Conv2dParams p{{1, 1}, {1, 1}, {1, 1}, 2};
    Tensor y = dl::ops::conv2d_relu(xv, wv, bv, p);
    EXPECT_TRUE(y.is_channels_last()) << d.str();
    y = dl::ops::batch_norm(y, gv, betav, rm, rv, {.relu = true});
    y = dl::ops::max_pool2d(y, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
    EXPECT_TRUE(y.is_channels_last()) << d.str();
    const Tensor loss = dl::ops::sum(dl::ops::mul(y, y));
    loss.backward();
    grads = {dl::ops::contiguous(xv.grad()), wv.grad(), bv.grad(), gv.grad(), betav.grad(), rm, rv};
    return dl::ops::contiguous(y);
  };
  std::vector<Tensor> gc, gg;
  const Tensor yc = run(Device::cpu(), gc), yg = run(kGpu, gg);
  expect_match(yc, yg, 1e-4, "y");
  const char* names[] = {"dx", "dw", "db", "dgamma", "dbeta", "running mean", "running var"};
  for (size_t i = 0; i < gc.size(); ++i) expect_match(gc[i], gg[i], 1e-4, names[i]);
}

// The synchronised batch norm's CUDA body (composed of the backend's batch-norm calls) against its CPU
// body (tests/test_dist.cpp checks that one against one process), with a stand-in for the other
// processes: the sync adds the sums of a second batch in the forward and fixed sums in the backward.
// Channel 0 sits far from zero (mean about 50 deviations) to catch cancellation.
TEST_F(GpuParity, SynchronisedBatchNormMatchesTheCpu) {
  Tensor x = rnd({3, 4, 5, 6}, 50), other = rnd({2, 4, 5, 6}, 54);
  for (Tensor* t : {&x, &other})  // N x 4 x 30 values: channel 0 of every sample
    for (int64_t i = 0; i < t->size(0); ++i)
      for (int64_t k = 0; k < 30; ++k) t->data<float>()[i * 120 + k] += 50.0f;
  const Tensor gamma = rnd({4}, 51, 0.5, 1.5), beta = rnd({4}, 52), dy = rnd({3, 4, 5, 6}, 53);
  // The other process's forward sums (sum x, sum x², count per channel) and backward sums (sum dy, sum dy x̂).
  Tensor fwd = Tensor::zeros({3, 4}, dl::DType::kFloat64), bwd = Tensor::zeros({2, 4}, dl::DType::kFloat64);
  for (int64_t ch = 0; ch < 4; ++ch) {
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t k = 0; k < 30; ++k) {
        const double v = other.data<float>()[(i * 4 + ch) * 30 + k];
        fwd.data<double>()[ch] += v, fwd.data<double>()[4 + ch] += v * v;
      }
    fwd.data<double>()[8 + ch] = 60;
    bwd.data<double>()[ch] = 0.3 * (ch + 1), bwd.data<double>()[4 + ch] = -0.2 * (ch + 1);
  }
  const auto fake_sync = [fwd, bwd](Tensor& sums) {
    const Tensor& add = sums.size(0) == 3 ? fwd : bwd;
    for (int64_t i = 0; i < sums.numel(); ++i) sums.data<double>()[i] += add.data<double>()[i];
  };
  for (const bool relu : {false, true}) {
    auto run = [&](Device d, std::vector<Tensor>& out) {
      Tensor xv = x.to(d).set_requires_grad(true), gv = gamma.to(d).set_requires_grad(true),
             bv = beta.to(d).set_requires_grad(true);
      Tensor rm = Tensor::zeros({4}, dl::DType::kFloat32, d), rv = Tensor::ones({4}, dl::DType::kFloat32, d);
      dl::ops::BatchNormOptions o{.training = true, .momentum = 0.1, .eps = 1e-5, .relu = relu};
      o.sync = fake_sync;
      const Tensor y = dl::ops::batch_norm(xv, gv, bv, rm, rv, o);
      dl::ops::sum(dl::ops::mul(y, dy.to(d))).backward();
      out = {y, xv.grad(), gv.grad(), bv.grad(), rm, rv};
    };
    std::vector<Tensor> cpu, gpu;
    run(Device::cpu(), cpu);
    run(kGpu, gpu);
    const char* names[] = {"y", "dx", "dgamma", "dbeta", "running mean", "running var"};
    for (size_t i = 0; i < cpu.size(); ++i)
      expect_match(cpu[i], gpu[i], 1e-4, std::string(names[i]) + (relu ? " (relu)" : ""));
  }
}

// One whole MNIST training step (forward, loss, backward, Adam) on both devices from the same weights.
TEST_F(GpuParity, MnistTrainingStep) {
  dl::Generator gen(7);
  dl::nn::MnistCnn cpu_model({}, gen), gpu_model({}, gen);
  dl::nn::load_state(gpu_model, cpu_model.state(), "the CPU model");
  gpu_model.to(kGpu);
  const Tensor images = rnd({64, 1, 28, 28}, 40, 0, 1);
  std::vector<int32_t> lv(64);
  for (int i = 0; i < 64; ++i) lv[i] = i * 7 % 10;
  const Tensor labels = Tensor::from_vector<int32_t>({64}, lv);
  auto step = [&](dl::nn::MnistCnn& model, Device d) {
    dl::optim::Adam adam(model.parameter_refs(), {0.01, 0.9, 0.999, 1e-8, 1e-4});
    const Tensor loss = dl::ops::cross_entropy(model.forward(images.to(d)), labels.to(d));
    adam.zero_grad();
    loss.backward();
    adam.step();
    return loss;
  };
  const Tensor lc = step(cpu_model, Device::cpu()), lg = step(gpu_model, kGpu);
  expect_match(lc, lg, 1e-4, "MNIST loss");
  const auto sc = cpu_model.state(), sg = gpu_model.state();
  ASSERT_EQ(sc.size(), sg.size());
  for (size_t i = 0; i < sc.size(); ++i)
    expect_match(sc[i].second, sg[i].second, 1e-3, "after one step: " + sc[i].first);
}

// ---- blocking calls (Note [blocking calls] in dl/core/cuda.h, Note [deferred scalars] in train/trainer.cpp) ----
// Training steps on a GPU queue their work and leave their loss and counts on the device: between two reads
// of those numbers the host waits for nothing. A read is one or two blocking calls (the losses, the counts).
constexpr uint64_t kMostPerRead = 2;

// Without the allocator's cache every released block goes to cudaFree, which synchronises the device.
#define DL_REQUIRE_CACHING()                                                                             \
  do {                                                                                                   \
    if (!dl::cuda::CudaAllocator::instance().caching())                                                  \
      GTEST_SKIP() << "DL_CUDA_NO_CACHE is set: every block released goes to cudaFree, a blocking call"; \
  } while (0)

// MNIST steps (forward, loss, backward, Adam) writing their loss and correct counts into a window on the
// device, read as the Trainer reads it.
TEST_F(GpuParity, TrainingStepsWaitOnlyWhenTheirScalarsAreRead) {
  DL_REQUIRE_CACHING();
  dl::Generator gen(7);
  dl::nn::MnistCnn model({}, gen);
  model.to(kGpu);
  dl::optim::Adam adam(model.parameter_refs(), {0.001, 0.9, 0.999, 1e-8, 1e-4});
  std::vector<int32_t> lv(64);
  for (int i = 0; i < 64; ++i) lv[i] = i * 7 % 10;
  const Tensor images = rnd({64, 1, 28, 28}, 40, 0, 1).to(kGpu);
  const Tensor labels = Tensor::from_vector<int32_t>({64}, lv).to(kGpu);
  constexpr int64_t kWindow = 8;
  const Tensor losses = Tensor::empty({kWindow}, DType::kFloat32, kGpu);
  const Tensor counts = Tensor::empty({2 * kWindow}, DType::kFloat64, kGpu);
  auto step = [&](int64_t slot) {
    adam.zero_grad();
    const Tensor logits = model.forward(images);
    const Tensor loss = dl::ops::cross_entropy(logits, labels);
    loss.backward();
    adam.step();
    losses.slice(slot, slot + 1).copy_(loss.detach().view({1}));
    counts.slice(2 * slot, 2 * slot + 2).copy_(dl::ops::correct_counts(logits.detach(), labels, -1));
  };
  // The first steps search cuDNN's algorithms for their shapes (cudnnFind*, blocking) and fill the cache.
  for (int64_t i = 0; i < 2; ++i) step(i);
  dl::cuda::synchronize(0);
  for (int window = 0; window < 3; ++window) {
    const uint64_t before = dl::cuda::blocking_calls();
    for (int64_t i = 0; i < kWindow; ++i) step(i);
    const uint64_t steps = dl::cuda::blocking_calls() - before;
    EXPECT_EQ(steps, 0u) << kWindow << " steps of window " << window << " waited " << steps
                         << " time(s); the last: " << dl::cuda::last_blocking_call();
    const uint64_t at_read = dl::cuda::blocking_calls();
    const Tensor l = losses.to(Device::cpu()), c = counts.to(Device::cpu());
    const uint64_t read = dl::cuda::blocking_calls() - at_read;
    EXPECT_GE(read, 1u) << "a read of device memory waits for it";
    EXPECT_LE(read, kMostPerRead) << "window " << window << "; the last: " << dl::cuda::last_blocking_call();
    for (int64_t i = 0; i < kWindow; ++i) {
      EXPECT_TRUE(std::isfinite(l.data<float>()[i])) << "window " << window << ", step " << i;
      EXPECT_EQ(c.data<double>()[2 * i + 1], 64.0) << "counted labels, window " << window << ", step " << i;
    }
  }
}

// The count is the calling thread's: another thread's waits do not show in it.
TEST_F(GpuParity, BlockingCallsAreCountedPerThread) {
  const Tensor t = rnd({16}, 41).to(kGpu);
  const uint64_t before = dl::cuda::blocking_calls();
  uint64_t other = 0;
  std::thread([&] {
    const uint64_t start = dl::cuda::blocking_calls();
    static_cast<void>(t.to(Device::cpu()));
    other = dl::cuda::blocking_calls() - start;
  }).join();
  EXPECT_EQ(other, 1u) << "one copy to the host";
  EXPECT_EQ(dl::cuda::blocking_calls(), before) << "the other thread's wait was counted here";
  static_cast<void>(t.to(Device::cpu()));
  EXPECT_EQ(dl::cuda::blocking_calls(), before + 1);
}

// Counts the training thread's blocking calls around the reads it asks for: just before one (asked after
// the step, Note [deferred scalars]) and just after (each step read is then told, in order).
class ReadWatch : public dl::train::TrainingObserver {
 public:
  explicit ReadWatch(std::vector<int64_t> at) : at_(std::move(at)) {}
  bool needs_values_at(int64_t iteration) override {
    if (!wanted(iteration)) return false;
    before_read[iteration] = dl::cuda::blocking_calls();
    return true;
  }
  void on_iteration(const dl::train::IterationRecord& r) override {
    if (wanted(r.iteration)) after_read[r.iteration] = dl::cuda::blocking_calls();
  }
  std::map<int64_t, uint64_t> before_read, after_read;

 private:
  bool wanted(int64_t iteration) const { return std::find(at_.begin(), at_.end(), iteration) != at_.end(); }
  std::vector<int64_t> at_;
};

// The Trainer's own steps, their batches staged through pinned buffers, read at iterations 4, 12 and 20.
// The stager waits (a blocking call) only when the host runs more than its two slots ahead of the
// device, which the steps of this small model do not.
TEST_F(GpuParity, TrainerStepsWaitOnlyWhenTheTrainerReads) {
  DL_REQUIRE_CACHING();
  dl::Generator gen(3);
  dl::nn::MnistCnn model({.filters = {4, 8}, .in_channels = 1, .height = 8, .width = 8, .num_classes = 4}, gen);
  dl::train::TrainingOptions o;  // SGDM at 0.01
  o.device = kGpu;
  o.max_epochs = 1;
  o.mini_batch_size = 32;
  o.verbose = false;  // no table: its rows would be reads of their own
  dl::train::Trainer trainer(model, o);
  ReadWatch watch({4, 12, 20});
  trainer.add_observer(watch);
  const auto report = trainer.fit(quadrants(24 * 32, 1));
  ASSERT_EQ(report.iterations, 24);
  ASSERT_EQ(watch.after_read.size(), 3u);
  for (const auto& [from, to] : {std::pair<int64_t, int64_t>{4, 12}, {12, 20}}) {
    const uint64_t steps = watch.before_read.at(to) - watch.after_read.at(from);
    EXPECT_EQ(steps, 0u) << "iterations " << from + 1 << " to " << to << " waited " << steps
                         << " time(s); the last blocking call: " << dl::cuda::last_blocking_call();
    const uint64_t read = watch.after_read.at(to) - watch.before_read.at(to);
    EXPECT_GE(read, 1u) << "the read at iteration " << to;
    EXPECT_LE(read, kMostPerRead) << "the read at iteration " << to;
  }
  EXPECT_TRUE(std::isfinite(report.history.back().loss));
}

TEST_F(GpuParity, CachingAllocatorReusesAndReports) {
  auto& a = dl::cuda::CudaAllocator::instance();
  a.empty_cache();
  const dl::AllocatorStats before = a.stats(0);
  { Tensor t = Tensor::empty({1 << 20}, dl::DType::kFloat32, kGpu); }
  { Tensor t = Tensor::empty({1 << 20}, dl::DType::kFloat32, kGpu); }
  const dl::AllocatorStats after = a.stats(0);
  EXPECT_EQ(after.current_bytes, before.current_bytes);
  EXPECT_GE(after.peak_bytes, before.current_bytes + (4 << 20));
  if (a.caching()) {
    EXPECT_GE(after.cache_hits, before.cache_hits + 1);
  }
  a.empty_cache();
  EXPECT_EQ(a.stats(0).reserved_bytes, a.stats(0).current_bytes);
}

TEST_F(GpuParity, StagerCopiesBatches) {
  dl::data::DeviceStager stager(kGpu);
  for (int i = 0; i < 4; ++i) {
    dl::data::Batch host{rnd({8, 1, 28, 28}, 50 + i), Tensor::full({8}, i, dl::DType::kInt32)};
    stager.prefetch(host);
    const dl::data::Batch d = stager.next();
    expect_match(host.inputs, d.inputs, 0, "staged inputs");
    for (float v : d.targets.to_vector_f32()) EXPECT_EQ(v, static_cast<float>(i)) << "staged labels";
  }
}

// ---- the precision policy on the GPU (dl/core/precision.h) ----
// Note [GPU precision tolerances]: bf16 keeps 8 significant bits and fp16 11; with float32 accumulation a
// convolution's or GEMM's result differs from float32 by a few roundings of the operands and one of the
// 16-bit result (cuDNN's outputs are in the data type; cuBLAS writes float32). The bounds, relative to the
// largest magnitude of the CPU's float32 result: bf16 1e-2, fp16 2e-3, TF32 (10 bits, like fp16) 2e-3, float32
// 1e-4 (cuDNN's Winograd and FFT algorithms lose a little against a direct sum). A 16-bit result must also be
// more than 1e-5 from float32's, so that a path that quietly stayed in float32 fails.
constexpr double kBf16Tol = 1e-2, kFp16Tol = 2e-3, kTf32Tol = 2e-3, kFp32Tol = 1e-4, kNotFp32 = 1e-5;

// max |gpu - cpu| / max |cpu|, infinite when the GPU gave a non-finite value (a poisoned, unwritten element).
double rel_to_max(const Tensor& gpu, const Tensor& cpu) {
  const std::vector<float> g = gpu.to_vector_f32(), c = cpu.to_vector_f32();
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < c.size(); ++i) {
    if (!std::isfinite(g[i])) return INFINITY;
    diff = std::max(diff, std::fabs(static_cast<double>(g[i]) - c[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(c[i])));
  }
  return diff / scale;
}

// The outputs and gradients of one op, forward under an autocast of `math` on device d, backward of
// sum(y * r) after the autocast has ended (the backward keeps the forward's precision).
using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;
std::vector<Tensor> run_in(const OpFn& op, const std::vector<Tensor>& inputs, const Tensor& r, Device d,
                           dl::Precision math) {
  std::vector<Tensor> xs;
  for (const Tensor& t : inputs) xs.push_back(t.to(d).clone().set_requires_grad(true));
  Tensor y;
  {
    dl::Autocast autocast(math);
    y = op(xs);
  }
  dl::ops::sum(dl::ops::mul(y, r.to(d))).backward();
  std::vector<Tensor> out = {y};
  for (const Tensor& x : xs) out.push_back(x.grad());
  return out;
}

struct PrecisionCase {
  std::string name;
  OpFn op;
  std::vector<Tensor> inputs;
  Shape y;
};

std::vector<PrecisionCase> precision_cases() {
  Conv2dParams same;
  same.padding = {1, 1};
  Conv2dParams strided;  // stride, dilation, groups: all passed to cuDNN
  strided.stride = {2, 1};
  strided.padding = {2, 1};
  strided.dilation = {2, 1};
  strided.groups = 2;
  return {
      {"conv2d 3x3",
       [same](const std::vector<Tensor>& x) { return dl::ops::conv2d(x[0], x[1], x[2], same); },
       {rnd({4, 8, 14, 14}, 60), rnd({16, 8, 3, 3}, 61, -0.3, 0.3), rnd({16}, 62)},
       {4, 16, 14, 14}},
      {"conv2d strided dilated grouped",
       [strided](const std::vector<Tensor>& x) { return dl::ops::conv2d(x[0], x[1], x[2], strided); },
       {rnd({2, 6, 11, 9}, 63), rnd({4, 3, 3, 3}, 64, -0.3, 0.3), rnd({4}, 65)},
       {2, 4, 6, 9}},
      {"linear",
       [](const std::vector<Tensor>& x) { return dl::ops::linear(x[0], x[1], x[2]); },
       {rnd({32, 300}, 66), rnd({10, 300}, 67, -0.2, 0.2), rnd({10}, 68)},
       {32, 10}},
  };
}

// The GPU in `math` against the CPU in float32, every output and gradient, with the CUDA allocator poisoning
// what it hands out (an unwritten element is NaN and fails).
void check_precision(dl::Precision math, double tol, bool must_differ) {
  dl::cuda::CudaAllocator::instance().set_poison(true);
  for (const PrecisionCase& c : precision_cases()) {
    const Tensor r = rnd(c.y, 69);
    const std::vector<Tensor> cpu = run_in(c.op, c.inputs, r, Device::cpu(), dl::Precision::kFp32);
    const std::vector<Tensor> gpu = run_in(c.op, c.inputs, r, kGpu, math);
    const char* names[] = {"y", "dx", "dw", "db"};
    for (size_t k = 0; k < cpu.size(); ++k) {
      const double err = rel_to_max(gpu[k], cpu[k]);
      EXPECT_LE(err, tol) << c.name << " in " << dl::precision_name(math) << ": " << names[k];
      // The bias gradient sums the float32 dy on both devices: float32 whatever the math.
      if (must_differ && k < 3) {
        EXPECT_GT(err, kNotFp32) << c.name << " in " << dl::precision_name(math) << ": " << names[k]
                                 << " is float32's result (was it computed in float32?)";
      }
    }
  }
  dl::cuda::synchronize(0);
  dl::cuda::CudaAllocator::instance().set_poison(false);
}

bool has_bf16(int device) { return dl::cuda::context(device).props.major >= 8; }

TEST_F(GpuParity, Bf16ConvolutionAndLinearAgainstCpuFloat32) {
  if (!has_bf16(0)) {  // then a clear error, not cuDNN's
    dl::Autocast autocast(dl::Precision::kBf16);
    EXPECT_THROW(dl::ops::linear(rnd({2, 3}, 1).to(kGpu), rnd({4, 3}, 2).to(kGpu), Tensor()), dl::Error);
    GTEST_SKIP() << "bf16 needs compute capability 8.0; the refusal was checked";
  }
  check_precision(dl::Precision::kBf16, kBf16Tol, /*must_differ=*/true);
}

TEST_F(GpuParity, Fp16ConvolutionAndLinearAgainstCpuFloat32) {
  check_precision(dl::Precision::kFp16, kFp16Tol, /*must_differ=*/true);
}

// The fixture has turned TF32 off: fp32 is float32 arithmetic, at float32's tolerance.
TEST_F(GpuParity, Tf32OffIsFloat32) {
  ASSERT_FALSE(dl::cuda::allow_tf32());
  check_precision(dl::Precision::kFp32, kFp32Tol, /*must_differ=*/false);
}

// Precision::kTf32 uses TF32 whatever the switch says (the switch is off here); whether the GPU has TF32
// (compute capability 8.0) decides how far from float32 it lands, within TF32's tolerance either way.
TEST_F(GpuParity, Tf32ForcedWithinItsTolerance) {
  ASSERT_FALSE(dl::cuda::allow_tf32());
  check_precision(dl::Precision::kTf32, kTf32Tol, /*must_differ=*/false);
}

// Under dl::set_deterministic(true) the same convolution backward gives the same bits every time (the
// filter gradient is where cuDNN's fastest algorithms accumulate with atomics).
TEST_F(GpuParity, DeterministicConvolutionRepeatsBitwise) {
  const bool was = dl::deterministic();
  dl::set_deterministic(true);
  Conv2dParams p;
  p.padding = {1, 1};
  const Tensor x = rnd({16, 32, 28, 28}, 70).to(kGpu), w = rnd({32, 32, 3, 3}, 71).to(kGpu),
               r = rnd({16, 32, 28, 28}, 72).to(kGpu);
  auto grads = [&] {
    Tensor xv = x.clone().set_requires_grad(true), wv = w.clone().set_requires_grad(true);
    dl::ops::sum(dl::ops::mul(dl::ops::conv2d(xv, wv, Tensor(), p), r)).backward();
    return std::make_pair(xv.grad().to_vector_f32(), wv.grad().to_vector_f32());
  };
  const auto first = grads();
  for (int i = 0; i < 3; ++i) {
    const auto again = grads();
    EXPECT_EQ(again.first, first.first) << "dx, run " << i + 2;
    EXPECT_EQ(again.second, first.second) << "dw, run " << i + 2;
  }
  dl::set_deterministic(was);
}

// The backend casts: the same patterns as the emulated kernel tests, natively.
TEST_F(GpuParity, CastsMatchTheSharedHelpers) {
  std::vector<float> xs;
  for (uint32_t i = 0; i < 20000; ++i) {  // bit patterns spread over every exponent
    const uint32_t bits = i * 2654435761u;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    if (!std::isnan(f)) xs.push_back(f);
  }
  const auto n = static_cast<int64_t>(xs.size());
  const Tensor x = Tensor::from_vector<float>({n}, xs).to(kGpu);
  Tensor bits = Tensor::full({(n + 1) / 2}, 3.0, dl::DType::kFloat32, kGpu);  // n 16-bit patterns
  Out back({n});
  for (const dl::Precision math : {dl::Precision::kBf16, dl::Precision::kFp16}) {
    auto* h = reinterpret_cast<uint16_t*>(bits.data<float>());
    dl::cuda::cast_to_16(0, math, G(x), h, n);
    dl::cuda::cast_from_16(0, math, h, back.g(), n);
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t want =
          math == dl::Precision::kBf16 ? dl::kern::float_to_bf16_bits(xs[i]) : dl::kern::float_to_fp16_bits(xs[i]);
      back.c()[i] =
          math == dl::Precision::kBf16 ? dl::kern::bf16_bits_to_float(want) : dl::kern::fp16_bits_to_float(want);
    }
    const std::vector<float> got = back.gpu.to_vector_f32(), exp = back.cpu.to_vector_f32();
    for (int64_t i = 0; i < n; ++i) {
      uint32_t a, b;
      std::memcpy(&a, &got[i], 4);
      std::memcpy(&b, &exp[i], 4);
      ASSERT_EQ(a, b) << dl::precision_name(math) << " of " << xs[i];
    }
  }
}

#else

TEST(GpuParity, NotBuilt) { GTEST_SKIP() << "libdl was built without its CUDA backend (DL_CUDA=OFF or no toolkit)"; }

#endif

}  // namespace
