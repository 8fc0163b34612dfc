// Per-op benchmarks at the sizes of the MNIST CNN (batch 1024) and of DeepLabv3+ on ResNet-18
// (360 x 480 input, batch 2), forward and backward: the rows of the op table (tests/op_cases.h) with
// kBench, and convolution, cross-entropy and linear at the models' own sizes. Convolutions and linear layers report
// FLOP/s (2 per multiply-add), memory-bound ops bytes/s (each tensor read or written once). When libtorch is found the
// same case runs in libtorch in the same binary: compare the two as a ratio.
#include <benchmark/benchmark.h>

#include <functional>
#include <string>
#include <vector>

#include "conv_cases.h"
#include "dl/dl.h"

#ifdef DL_BENCH_WITH_TORCH
#include <torch/torch.h>
#define DL_OP_CASES_WITH_TORCH 1
#endif
#include "op_cases.h"

namespace {

constexpr int kThreads = 2;

using dl::bench::conv_cases;
using dl::bench::ConvCase;

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
  state.counters["FLOP/s"] =
      benchmark::Counter(conv_flops(c) * (backward ? 3 : 1) * state.iterations(), benchmark::Counter::kIsRate);
}

// One row of the op table (tests/op_cases.h) at the size of a model: its inputs made once, then the
// front end (and, with backward, the backward of sum(y)) timed. GB/s count c.bench_tensors input-sized
// tensors per forward and 2.5 times that with the backward.
void op_libdl(benchmark::State& state, const dl::testing::OpCase& c, bool backward) {
  dl::set_num_threads(kThreads);
  std::vector<dl::Tensor> xs = dl::testing::make_inputs(c, dl::DType::kFloat32);
  for (size_t i = 0; i < xs.size(); ++i)
    if (backward && c.inputs[i].grad) xs[i].set_requires_grad(true);
  for (auto _ : state) {
    const dl::Tensor y = c.dl(xs).v[0];
    if (backward) dl::ops::sum(y).backward();
    benchmark::DoNotOptimize(y.raw_data());
  }
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * c.bench_tensors * (backward ? 2.5 : 1) * xs[0].nbytes()));
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
  dl::Tensor x = dl::Tensor::randn({1024, 1568}, gen), w = dl::Tensor::randn({10, 1568}, gen),
             b = dl::Tensor::randn({10}, gen);
  if (backward) x.set_requires_grad(true), w.set_requires_grad(true);
  for (auto _ : state) {
    dl::Tensor y = dl::ops::linear(x, w, b);
    if (backward) dl::ops::sum(y).backward();
    benchmark::DoNotOptimize(y.raw_data());
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * 1024 * 1568 * 10 * (backward ? 3 : 1) * state.iterations(), benchmark::Counter::kIsRate);
}

// Note [element-wise bandwidth]: the broadcasting family on tensors far beyond the caches (16 Mi floats,
// 64 MiB each), beside this machine's own memory bandwidth measured in the same run by a triad
// (a = b + s c over three such arrays, OpenMP, the same 2 threads): the ratio of their GB/s is the
// fraction of the bandwidth an element-wise op reaches. Bytes count each operand read and the output
// written once (3 x 64 MiB for a binary op, as for the triad).
constexpr int64_t kLarge = int64_t{1} << 24;

void triad(benchmark::State& state) {
  std::vector<float> a(kLarge), b(kLarge, 1.0f), c(kLarge, 2.0f);
  float* pa = a.data();
  const float* pb = b.data();
  const float* pc = c.data();
#pragma omp parallel for num_threads(kThreads) schedule(static)
  for (int64_t i = 0; i < kLarge; ++i) pa[i] = 0.0f;  // first touch by the thread that will write it
  for (auto _ : state) {
#pragma omp parallel for num_threads(kThreads) schedule(static)
    for (int64_t i = 0; i < kLarge; ++i) pa[i] = pb[i] + 3.0f * pc[i];
    benchmark::DoNotOptimize(pa);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * 3 * kLarge * sizeof(float)));
}

// y = a op b over 16 Mi elements; `channel` broadcasts b as a [64, 1, 1] per-channel operand.
void large_binary_libdl(benchmark::State& state, bool channel) {
  dl::set_num_threads(kThreads);
  dl::Generator gen(5);
  const dl::Tensor a = dl::Tensor::randn({16, 64, 128, 128}, gen);
  const dl::Tensor b = channel ? dl::Tensor::randn({64, 1, 1}, gen) : dl::Tensor::randn({16, 64, 128, 128}, gen);
  for (auto _ : state) {
    const dl::Tensor y = channel ? a * b : a + b;
    benchmark::DoNotOptimize(y.raw_data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (channel ? 2 : 3) * a.nbytes()));
}

#ifdef DL_BENCH_WITH_TORCH
void large_binary_torch(benchmark::State& state, bool channel) {
  torch::set_num_threads(kThreads);
  const auto a = torch::randn({16, 64, 128, 128});
  const auto b = channel ? torch::randn({64, 1, 1}) : torch::randn({16, 64, 128, 128});
  for (auto _ : state) {
    const auto y = channel ? a * b : a + b;
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (channel ? 2 : 3) * a.nbytes()));
}
#endif

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
  state.counters["FLOP/s"] =
      benchmark::Counter(conv_flops(c) * (backward ? 3 : 1) * state.iterations(), benchmark::Counter::kIsRate);
}

void op_torch(benchmark::State& state, const dl::testing::OpCase& c, bool backward) {
  torch::set_num_threads(kThreads);
  const std::vector<dl::Tensor> xs = dl::testing::make_inputs(c, dl::DType::kFloat32);
  std::vector<torch::Tensor> ts;
  for (size_t i = 0; i < xs.size(); ++i) {
    const dl::Tensor& x = xs[i];
    const auto dtype = x.dtype() == dl::DType::kInt32 ? torch::kInt32 : torch::kFloat32;
    ts.push_back(torch::from_blob(x.raw_data(), x.shape().vec(), torch::TensorOptions().dtype(dtype))
                     .clone()
                     .set_requires_grad(backward && c.inputs[i].grad));
  }
  for (auto _ : state) {
    const torch::Tensor y = c.torch(ts).v[0];
    if (backward) y.sum().backward();
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * c.bench_tensors * (backward ? 2.5 : 1) * xs[0].nbytes()));
}
#endif

// Registers every case at start-up, libdl and libtorch side by side.
const bool registered = [] {
  for (bool bwd : {false, true}) {
    const std::string dir = bwd ? "fwd+bwd" : "fwd";
    for (const auto& c : conv_cases()) {
      benchmark::RegisterBenchmark(("Conv2d/libdl/" + dir + "/" + c.name).c_str(), conv_libdl, c, bwd)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
#ifdef DL_BENCH_WITH_TORCH
      benchmark::RegisterBenchmark(("Conv2d/libtorch/" + dir + "/" + c.name).c_str(), conv_torch, c, bwd)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
#endif
    }
    for (const dl::testing::OpCase& c : dl::testing::op_cases_for(dl::testing::kBench)) {
      benchmark::RegisterBenchmark((c.op + "/libdl/" + dir + "/" + c.name).c_str(), op_libdl, c, bwd)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
#ifdef DL_BENCH_WITH_TORCH
      benchmark::RegisterBenchmark((c.op + "/libtorch/" + dir + "/" + c.name).c_str(), op_torch, c, bwd)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
#endif
    }
    benchmark::RegisterBenchmark(("CrossEntropy/libdl/" + dir + "/deeplab.camvid").c_str(), cross_entropy_libdl, bwd)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("Linear/libdl/" + dir + "/mnist.fc").c_str(), linear_libdl, bwd)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("Bandwidth/triad/64MiB", triad)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (bool channel : {false, true}) {
    const std::string name = channel ? "mul_channel/64MiB" : "add/64MiB";
    benchmark::RegisterBenchmark(("Bandwidth/libdl/" + name).c_str(), large_binary_libdl, channel)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
#ifdef DL_BENCH_WITH_TORCH
    benchmark::RegisterBenchmark(("Bandwidth/libtorch/" + name).c_str(), large_binary_torch, channel)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
#endif
  }
  return true;
}();

}  // namespace
