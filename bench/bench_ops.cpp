// Per-op benchmarks at the sizes of the MNIST CNN (batch 1024) and of DeepLabv3+ on ResNet-18
// (360 x 480 input, batch 2), forward and backward. Convolutions and linear layers report FLOP/s
// (2 per multiply-add), memory-bound ops bytes/s (each tensor read or written once). When libtorch
// is found the same case runs in libtorch in the same binary: compare the two as a ratio.
#include <benchmark/benchmark.h>

#include "conv_cases.h"

#include <functional>
#include <string>
#include <vector>

#include "dl/dl.h"

#ifdef DL_BENCH_WITH_TORCH
#include <torch/torch.h>
#endif

namespace {

constexpr int kThreads = 2;

using dl::bench::ConvCase;
using dl::bench::conv_cases;

using dl::bench::conv_flops;

void conv_libdl(benchmark::State& state, const ConvCase& c, bool backward) {
  dl::set_num_threads(kThreads);
  dl::Generator gen(1);
  dl::Tensor x = dl::Tensor::randn({c.n, c.c, c.h, c.w}, gen);
  dl::Tensor w = dl::Tensor::randn({c.k, c.c, c.r, c.r}, gen);
  dl::Tensor b = dl::Tensor::randn({c.k}, gen);
  const dl::Conv2dParams p{{c.stride, c.stride}, {c.pad, c.pad}, {c.dilation, c.dilation}, 1};
  if (backward) x.set_requires_grad(true), w.set_requires_grad(true), b.set_requires_grad(true);
  for (auto _ : state) {
    dl::Tensor y = dl::ops::conv2d(x, w, b, p);
    if (backward) dl::ops::sum(y).backward();
    benchmark::DoNotOptimize(y.raw_data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(conv_flops(c) * (backward ? 3 : 1) * state.iterations(),
                                                benchmark::Counter::kIsRate);
}

struct EltCase {
  std::string name;
  int64_t n, c, h, w;
};
const std::vector<EltCase>& elt_cases() {
  static const std::vector<EltCase> cases = {{"mnist.block1", 1024, 8, 28, 28},
                                             {"resnet18.layer1", 2, 64, 90, 120},
                                             {"resnet18.layer4", 2, 512, 23, 30}};
  return cases;
}

// Runs an op over one N x C x H x W input; `tensors` is how many such tensors one call touches.
void elementwise_libdl(benchmark::State& state, const EltCase& c, const std::string& op, bool backward) {
  dl::set_num_threads(kThreads);
  dl::Generator gen(2);
  dl::Tensor x = dl::Tensor::randn({c.n, c.c, c.h, c.w}, gen);
  dl::Tensor other = dl::Tensor::randn({c.n, c.c, c.h, c.w}, gen);
  dl::Tensor gamma = dl::Tensor::ones({c.c}), beta = dl::Tensor::zeros({c.c});
  dl::Tensor rm = dl::Tensor::zeros({c.c}), rv = dl::Tensor::ones({c.c});
  if (backward) x.set_requires_grad(true), gamma.set_requires_grad(true), beta.set_requires_grad(true);
  double tensors = 2;
  for (auto _ : state) {
    dl::Tensor y;
    if (op == "relu") y = dl::ops::relu(x);
    if (op == "batch_norm") y = dl::ops::batch_norm(x, gamma, beta, rm, rv, {}), tensors = 3;
    if (op == "max_pool2d") y = dl::ops::max_pool2d(x), tensors = 1.25;
    if (op == "add") y = dl::ops::add(x, other), tensors = 3;
    if (op == "concat") y = dl::ops::concat({x, other}), tensors = 4;
    if (op == "global_avg_pool2d") y = dl::ops::global_avg_pool2d(x), tensors = 1;
    if (backward) dl::ops::sum(y).backward();
    benchmark::DoNotOptimize(y.raw_data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * tensors * (backward ? 2.5 : 1) * x.nbytes()));
}

void cross_entropy_libdl(benchmark::State& state, bool backward) {
  dl::set_num_threads(kThreads);
  dl::Generator gen(3);
  const int64_t n = 2, c = 11, h = 360, w = 480;  // DeepLabv3+ logits on CamVid
  dl::Tensor x = dl::Tensor::randn({n, c, h, w}, gen);
  std::vector<int32_t> labels(static_cast<size_t>(n * h * w));
  for (auto& l : labels) l = gen.below(c + 1) == c ? 255 : static_cast<int32_t>(gen.below(c));  // 255: void
  const dl::Tensor y = dl::Tensor::from_vector<int32_t>({n, h, w}, labels);
  const dl::Tensor weights = dl::Tensor::uniform({c}, 0.5, 2.0, gen);
  if (backward) x.set_requires_grad(true);
  for (auto _ : state) {
    dl::Tensor loss = dl::ops::cross_entropy(x, y, {weights, 255});
    if (backward) loss.backward();
    benchmark::DoNotOptimize(loss.raw_data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (backward ? 3 : 2) * x.nbytes()));
}

void linear_libdl(benchmark::State& state, bool backward) {
  dl::set_num_threads(kThreads);
  dl::Generator gen(4);
  dl::Tensor x = dl::Tensor::randn({1024, 1568}, gen), w = dl::Tensor::randn({10, 1568}, gen), b = dl::Tensor::randn({10}, gen);
  if (backward) x.set_requires_grad(true), w.set_requires_grad(true);
  for (auto _ : state) {
    dl::Tensor y = dl::ops::linear(x, w, b);
    if (backward) dl::ops::sum(y).backward();
    benchmark::DoNotOptimize(y.raw_data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * 1024 * 1568 * 10 * (backward ? 3 : 1) * state.iterations(),
                                                benchmark::Counter::kIsRate);
}

#ifdef DL_BENCH_WITH_TORCH
void conv_torch(benchmark::State& state, const ConvCase& c, bool backward) {
  torch::set_num_threads(kThreads);
  auto x = torch::randn({c.n, c.c, c.h, c.w}).set_requires_grad(backward);
  auto w = torch::randn({c.k, c.c, c.r, c.r}).set_requires_grad(backward);
  auto b = torch::randn({c.k}).set_requires_grad(backward);
  for (auto _ : state) {
    auto y = torch::conv2d(x, w, b, c.stride, c.pad, c.dilation);
    if (backward) y.sum().backward();
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.counters["FLOP/s"] = benchmark::Counter(conv_flops(c) * (backward ? 3 : 1) * state.iterations(),
                                                benchmark::Counter::kIsRate);
}

void elementwise_torch(benchmark::State& state, const EltCase& c, const std::string& op, bool backward) {
  torch::set_num_threads(kThreads);
  auto x = torch::randn({c.n, c.c, c.h, c.w}).set_requires_grad(backward);
  auto other = torch::randn({c.n, c.c, c.h, c.w});
  auto gamma = torch::ones({c.c}).set_requires_grad(backward), beta = torch::zeros({c.c}).set_requires_grad(backward);
  auto rm = torch::zeros({c.c}), rv = torch::ones({c.c});
  double tensors = 2;
  for (auto _ : state) {
    torch::Tensor y;
    if (op == "relu") y = torch::relu(x);
    if (op == "batch_norm") y = torch::batch_norm(x, gamma, beta, rm, rv, true, 0.1, 1e-5, false), tensors = 3;
    if (op == "max_pool2d") y = torch::max_pool2d(x, 2), tensors = 1.25;
    if (op == "add") y = x + other, tensors = 3;
    if (op == "concat") y = torch::cat({x, other}, 1), tensors = 4;
    if (op == "global_avg_pool2d") y = torch::adaptive_avg_pool2d(x, {1, 1}), tensors = 1;
    if (backward) y.sum().backward();
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * tensors * (backward ? 2.5 : 1) * x.numel() * 4));
}
#endif

// Registers every case at start-up, libdl and libtorch side by side.
const bool registered = [] {
  for (bool bwd : {false, true}) {
    const std::string dir = bwd ? "fwd+bwd" : "fwd";
    for (const auto& c : conv_cases()) {
      benchmark::RegisterBenchmark(("Conv2d/libdl/" + dir + "/" + c.name).c_str(), conv_libdl, c, bwd)
          ->Unit(benchmark::kMillisecond)->UseRealTime();
#ifdef DL_BENCH_WITH_TORCH
      benchmark::RegisterBenchmark(("Conv2d/libtorch/" + dir + "/" + c.name).c_str(), conv_torch, c, bwd)
          ->Unit(benchmark::kMillisecond)->UseRealTime();
#endif
    }
    for (const std::string op : {"relu", "batch_norm", "max_pool2d", "add", "concat", "global_avg_pool2d"})
      for (const auto& c : elt_cases()) {
        benchmark::RegisterBenchmark((op + "/libdl/" + dir + "/" + c.name).c_str(), elementwise_libdl, c, op, bwd)
            ->Unit(benchmark::kMillisecond)->UseRealTime();
#ifdef DL_BENCH_WITH_TORCH
        benchmark::RegisterBenchmark((op + "/libtorch/" + dir + "/" + c.name).c_str(), elementwise_torch, c, op, bwd)
            ->Unit(benchmark::kMillisecond)->UseRealTime();
#endif
      }
    benchmark::RegisterBenchmark(("CrossEntropy/libdl/" + dir + "/deeplab.camvid").c_str(), cross_entropy_libdl, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("Linear/libdl/" + dir + "/mnist.fc").c_str(), linear_libdl, bwd)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  return true;
}();

}  // namespace
