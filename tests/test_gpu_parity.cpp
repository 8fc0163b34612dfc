// CPU/CUDA parity of every op of the CUDA backend (label gpu): each case runs the CPU body and the
// CUDA body on the same inputs, with the outputs pre-filled differently (1 on the CPU, 2 on the GPU) so
// that a body that writes nothing cannot pass, and compares. Then the same through the ops front ends
// and autograd, and one whole MNIST training step. Without a usable GPU every case skips and says why;
// the error a user gets when asking for a GPU that is not there is checked on every machine.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "dl/config.h"
#include "dl/dl.h"
#if DL_WITH_CUDA
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/optim_update.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/runtime.h"
#endif

namespace {

using dl::Device;
using dl::Shape;
using dl::Tensor;

// Why CUDA cannot be used here, or "" when it can.
std::string why_no_gpu() {
  try {
    dl::check_device_usable(Device::cuda(0));
    return "";
  } catch (const dl::Error& e) {
    return e.what();
  }
}

#define DL_REQUIRE_GPU()                                                \
  do {                                                                  \
    const std::string why = why_no_gpu();                               \
    if (!why.empty()) GTEST_SKIP() << "no usable CUDA device: " << why; \
  } while (0)

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

class GpuParity : public ::testing::Test {
 protected:
  void SetUp() override { DL_REQUIRE_GPU(); }
  void TearDown() override {
    if (why_no_gpu().empty()) dl::cuda::synchronize(0);  // surfaces asynchronous kernel errors here
  }
};

TEST_F(GpuParity, Convolution) {
  struct Case {
    Shape x, w;
    dl::Conv2dParams p;
  };
  const std::vector<Case> cases = {{{4, 3, 28, 28}, {8, 3, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 1}},
                                   {{2, 16, 15, 17}, {32, 16, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 1}},
                                   {{2, 8, 20, 20}, {8, 8, 3, 3}, {{1, 1}, {6, 6}, {6, 6}, 1}},  // atrous
                                   {{2, 8, 9, 9}, {12, 2, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 4}},   // groups
                                   {{3, 5, 7, 6}, {4, 5, 1, 1}, {{1, 1}, {0, 0}, {1, 1}, 1}}};
  for (const Case& k : cases) {
    const dl::Conv2dGeometry g = dl::ops::conv2d_geometry(k.x, k.w, k.p);
    const Tensor x = rnd(k.x, 1), w = rnd(k.w, 2), b = rnd({g.k}, 3), dy = rnd({g.n, g.k, g.ho, g.wo}, 4);
    const Tensor xd = x.to(kGpu), wd = w.to(kGpu), bd = b.to(kGpu), dyd = dy.to(kGpu);
    Out y({g.n, g.k, g.ho, g.wo}), dx(k.x), dw(k.w), db({g.k});
    dl::cpu::conv2d_forward(g, x.data<float>(), w.data<float>(), b.data<float>(), y.c());
    dl::cuda::conv2d_forward(0, g, G(xd), G(wd), G(bd), y.g());
    expect_match(y.cpu, y.gpu, 1e-4, "conv2d forward " + k.x.str());
    dl::cpu::conv2d_backward(g, x.data<float>(), w.data<float>(), dy.data<float>(), dx.c(), dw.c(), db.c());
    dl::cuda::conv2d_backward(0, g, G(xd), G(wd), G(dyd), dx.g(), dw.g(), db.g());
    expect_match(dx.cpu, dx.gpu, 1e-4, "conv2d dx " + k.x.str());
    expect_match(dw.cpu, dw.gpu, 1e-3, "conv2d dw " + k.x.str());
    expect_match(db.cpu, db.gpu, 1e-3, "conv2d db " + k.x.str());
  }
}

TEST_F(GpuParity, BatchNorm) {
  const int64_t n = 4, c = 6, s = 49;
  const Tensor x = rnd({n, c, s}, 5, -2, 3), gamma = rnd({c}, 6), beta = rnd({c}, 7), dy = rnd({n, c, s}, 8);
  const Tensor xd = x.to(kGpu), gd = gamma.to(kGpu), bd = beta.to(kGpu), dyd = dy.to(kGpu);
  Out y({n, c, s}), mean({c}), invstd({c}), var({c});
  dl::cpu::batch_norm_forward_train(x.data<float>(), gamma.data<float>(), beta.data<float>(), n, c, s, 1e-5, y.c(),
                                    mean.c(), invstd.c(), var.c());
  dl::cuda::batch_norm_forward_train(0, G(xd), G(gd), G(bd), n, c, s, 1e-5, y.g(), mean.g(), invstd.g(), var.g());
  expect_match(y.cpu, y.gpu, 1e-4, "batch norm y");
  expect_match(mean.cpu, mean.gpu, 1e-5, "batch norm mean");
  expect_match(invstd.cpu, invstd.gpu, 1e-4, "batch norm invstd");
  expect_match(var.cpu, var.gpu, 1e-4, "batch norm unbiased variance");
  Out dx({n, c, s}), dg({c}), db({c});
  dl::cpu::batch_norm_backward(x.data<float>(), gamma.data<float>(), dy.data<float>(), mean.cpu.data<float>(),
                               invstd.cpu.data<float>(), n, c, s, dx.c(), dg.c(), db.c());
  dl::cuda::batch_norm_backward(0, G(xd), G(gd), G(dyd), G(mean.gpu), G(invstd.gpu), n, c, s, 1e-5, dx.g(), dg.g(),
                                db.g());
  expect_match(dx.cpu, dx.gpu, 1e-4, "batch norm dx");
  expect_match(dg.cpu, dg.gpu, 1e-4, "batch norm dgamma");
  expect_match(db.cpu, db.gpu, 1e-4, "batch norm dbeta");
  Out yi({n, c, s}), dxi({n, c, s}), dgi({c}), dbi({c});
  dl::cpu::batch_norm_forward_infer(x.data<float>(), gamma.data<float>(), beta.data<float>(), mean.cpu.data<float>(),
                                    var.cpu.data<float>(), n, c, s, 1e-5, yi.c());
  dl::cuda::batch_norm_forward_infer(0, G(xd), G(gd), G(bd), G(mean.gpu), G(var.gpu), n, c, s, 1e-5, yi.g());
  expect_match(yi.cpu, yi.gpu, 1e-4, "batch norm inference y");
  dl::cpu::batch_norm_backward_infer(x.data<float>(), gamma.data<float>(), dy.data<float>(), mean.cpu.data<float>(),
                                     var.cpu.data<float>(), n, c, s, 1e-5, dxi.c(), dgi.c(), dbi.c());
  dl::cuda::batch_norm_backward_infer(0, G(xd), G(gd), G(dyd), G(mean.gpu), G(var.gpu), n, c, s, 1e-5, dxi.g(), dgi.g(),
                                      dbi.g());
  expect_match(dxi.cpu, dxi.gpu, 1e-4, "batch norm inference dx");
  expect_match(dgi.cpu, dgi.gpu, 1e-4, "batch norm inference dgamma");
  expect_match(dbi.cpu, dbi.gpu, 1e-4, "batch norm inference dbeta");
}

TEST_F(GpuParity, ReluPoolingSoftmax) {
  const Shape s{3, 4, 13, 11};
  const Tensor x = rnd(s, 9), dy = rnd(s, 10), xd = x.to(kGpu), dyd = dy.to(kGpu);
  Out y(s), dx(s);
  dl::cpu::relu_forward(x.data<float>(), y.c(), x.numel());
  dl::cuda::relu_forward(0, G(xd), y.g(), x.numel());
  expect_match(y.cpu, y.gpu, 0, "relu forward");
  dl::cpu::relu_backward(y.cpu.data<float>(), dy.data<float>(), dx.c(), x.numel());
  dl::cuda::relu_backward(0, G(y.gpu), G(dyd), dx.g(), x.numel());
  expect_match(dx.cpu, dx.gpu, 0, "relu backward");

  for (const dl::Pool2dParams& p : {dl::Pool2dParams{}, dl::Pool2dParams{{3, 3}, {2, 2}, {1, 1}}}) {
    const dl::Pool2dGeometry g = dl::ops::pool2d_geometry(s, p);
    const Tensor gy = rnd({g.n, g.c, g.ho, g.wo}, 11), gyd = gy.to(kGpu);
    Out my({g.n, g.c, g.ho, g.wo}), mdx(s), ay({g.n, g.c, g.ho, g.wo}), adx(s);
    Tensor argmax = Tensor::empty({g.n, g.c, g.ho, g.wo}, dl::DType::kInt32);
    dl::cpu::max_pool2d_forward(g, x.data<float>(), my.c(), argmax.data<int32_t>());
    dl::cuda::max_pool2d_forward(0, g, G(xd), my.g());
    expect_match(my.cpu, my.gpu, 0, "max pool forward");
    dl::cpu::max_pool2d_backward(g, gy.data<float>(), argmax.data<int32_t>(), mdx.c());
    dl::cuda::max_pool2d_backward(0, g, G(xd), G(my.gpu), G(gyd), mdx.g());
    expect_match(mdx.cpu, mdx.gpu, 1e-6, "max pool backward");  // random inputs: no ties
    dl::cpu::avg_pool2d_forward(g, x.data<float>(), ay.c());
    dl::cuda::avg_pool2d_forward(0, g, G(xd), ay.g());
    expect_match(ay.cpu, ay.gpu, 1e-6, "average pool forward");
    dl::cpu::avg_pool2d_backward(g, gy.data<float>(), adx.c());
    dl::cuda::avg_pool2d_backward(0, g, G(xd), G(ay.gpu), G(gyd), adx.g());
    expect_match(adx.cpu, adx.gpu, 1e-6, "average pool backward");
  }
  for (bool log : {false, true}) {
    Out sy(s), sdx(s);
    dl::cpu::softmax_forward(x.data<float>(), sy.c(), 3, 4, 13 * 11, log);
    dl::cuda::softmax_forward(0, G(xd), sy.g(), 3, 4, 13 * 11, log);
    expect_match(sy.cpu, sy.gpu, 1e-5, log ? "log-softmax forward" : "softmax forward");
    dl::cpu::softmax_backward(sy.cpu.data<float>(), dy.data<float>(), sdx.c(), 3, 4, 13 * 11, log);
    dl::cuda::softmax_backward(0, G(sy.gpu), G(dyd), sdx.g(), 3, 4, 13 * 11, log);
    expect_match(sdx.cpu, sdx.gpu, 1e-5, log ? "log-softmax backward" : "softmax backward");
  }
}

TEST_F(GpuParity, LinearAndElementWise) {
  const int64_t n = 37, in = 50, out = 10;
  const Tensor x = rnd({n, in}, 12), w = rnd({out, in}, 13), b = rnd({out}, 14), dy = rnd({n, out}, 15);
  const Tensor xd = x.to(kGpu), wd = w.to(kGpu), bd = b.to(kGpu), dyd = dy.to(kGpu);
  Out y({n, out}), dx({n, in}), dw({out, in}), db({out});
  dl::cpu::linear_forward(x.data<float>(), w.data<float>(), b.data<float>(), y.c(), n, in, out);
  dl::cuda::linear_forward(0, G(xd), G(wd), G(bd), y.g(), n, in, out);
  expect_match(y.cpu, y.gpu, 1e-5, "linear forward");
  dl::cpu::linear_backward(x.data<float>(), w.data<float>(), dy.data<float>(), dx.c(), dw.c(), db.c(), n, in, out);
  dl::cuda::linear_backward(0, G(xd), G(wd), G(dyd), dx.g(), dw.g(), db.g(), n, in, out);
  expect_match(dx.cpu, dx.gpu, 1e-5, "linear dx");
  expect_match(dw.cpu, dw.gpu, 1e-5, "linear dw");
  expect_match(db.cpu, db.gpu, 1e-5, "linear db");

  const int64_t m = 1001;
  const Tensor a = rnd({m}, 16), c = rnd({m}, 17), ad = a.to(kGpu), cd = c.to(kGpu);
  Out sum({1});
  sum.cpu.data<float>()[0] = dl::cpu::sum(a.data<float>(), m);
  dl::cuda::sum(0, G(ad), sum.g(), m);
  expect_match(sum.cpu, sum.gpu, 1e-5, "sum");
  EXPECT_NEAR(dl::ops::squared_norm(ad), dl::ops::squared_norm(a), 1e-9 * dl::ops::squared_norm(a)) << "squared norm";
  const float* A = a.data<float>();
  const float* C = c.data<float>();
  struct Binary {
    const char* name;
    void (*cpu)(const float*, const float*, float*, int64_t);
    void (*gpu)(int, const float*, const float*, float*, int64_t);
  };
  for (const Binary& op :
       {Binary{"add", dl::cpu::add<float>, dl::cuda::add}, Binary{"sub", dl::cpu::sub<float>, dl::cuda::sub},
        Binary{"mul", dl::cpu::mul<float>, dl::cuda::mul}}) {
    Out y({m});
    op.cpu(A, C, y.c(), m);
    op.gpu(0, G(ad), G(cd), y.g(), m);
    expect_match(y.cpu, y.gpu, 0, op.name);
  }
  Out scaled({m});
  dl::cpu::scale(A, -1.5f, scaled.c(), m);
  dl::cuda::scale(0, G(ad), -1.5f, scaled.g(), m);
  expect_match(scaled.cpu, scaled.gpu, 0, "scale");
  Tensor yc = c.clone(), yg = c.to(kGpu);  // accumulating: both start from the same values
  dl::cpu::axpy_acc(0.25f, A, yc.data<float>(), m);
  dl::cuda::axpy_acc(0, 0.25f, G(ad), yg.data<float>(), m);
  expect_match(yc, yg, 0, "axpy");
  Out filled({m});
  std::fill(filled.c(), filled.c() + m, 0.5f);
  dl::cuda::fill(0, filled.g(), m, 0.5f);
  expect_match(filled.cpu, filled.gpu, 0, "fill");
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

TEST_F(GpuParity, CachingAllocatorReusesAndReports) {
  auto& a = dl::cuda::CudaAllocator::instance();
  a.empty_cache();
  const dl::AllocatorStats before = a.stats(0);
  { Tensor t = Tensor::empty({1 << 20}, dl::DType::kFloat32, kGpu); }
  { Tensor t = Tensor::empty({1 << 20}, dl::DType::kFloat32, kGpu); }
  const dl::AllocatorStats after = a.stats(0);
  EXPECT_EQ(after.current_bytes, before.current_bytes);
  EXPECT_GE(after.peak_bytes, before.current_bytes + (4 << 20));
  if (a.caching()) EXPECT_GE(after.cache_hits, before.cache_hits + 1);
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

#else

TEST(GpuParity, NotBuilt) { GTEST_SKIP() << "libdl was built without its CUDA backend (DL_CUDA=OFF or no toolkit)"; }

#endif

}  // namespace
