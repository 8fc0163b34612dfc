// MnistTrainStep: one whole training step of the seed's MNIST CNN (forward, cross-entropy, backward,
// Adam) at batch 128 and 1024, in libdl and, when libtorch is found, the same network in libtorch
// in the same binary, so that the two are compared as a ratio in one run.
// Names: <Model>TrainStep/<library>/<configuration>/batch:N, the configuration being the precision
// (dl/core/precision.h) of libdl's case, and "-channels-last" for its channels-last cases; bf16 cases
// are registered where this CPU computes bf16.
// PyTorch's own front end at its best (tcmalloc, BF16 autocast, channels-last) runs beside these in
// bench/step_vs_pytorch.py, the figures to quote.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "dl/dl.h"

#ifdef DL_BENCH_WITH_TORCH
#include <malloc.h>
#include <torch/torch.h>
#endif

namespace {

#ifdef DL_BENCH_WITH_TORCH
// Note [twin malloc]: libtorch's CPU tensors come from malloc. With glibc's defaults a block over the
// mmap threshold is mapped on allocation and unmapped on free, so every step page-faults its big
// tensors back in: on these VMs that made the in-binary twin 3-4x slower than PyTorch's own front end
// with tcmalloc (MNIST step at batch 1024: 390-480 ms against 110-130 ms). Keeping freed memory in the
// heap (the largest mmap threshold glibc accepts, no trimming) gives the twin PyTorch's figures
// (122 ms). libdl's tensors come from its own caching allocator and do not depend on this.
[[maybe_unused]] const bool kMallocKeepsMemory = [] {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}();
#endif

// Threads of every case: 2 (the machines these figures are quoted for), or DL_BENCH_THREADS.
int bench_threads() {
  const char* env = std::getenv("DL_BENCH_THREADS");
  return env ? static_cast<int>(dl::parse_int(env, 1, 1024, "DL_BENCH_THREADS")) : 2;
}
constexpr int kWarmUpSteps = 2;  // as bench/pytorch_step.py: oneDNN's primitives, the caches, first touches

// Runs `step` kWarmUpSteps times untimed, then once per benchmark iteration timed by hand; reports
// the mean as the case's time and the median as the counter median_ms (what step_vs_pytorch.py reads,
// as PyTorch's side reports its median).
template <typename F>
void time_steps(benchmark::State& state, F&& step) {
  for (int i = 0; i < kWarmUpSteps; ++i) step();
  std::vector<double> ms;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    ms.push_back(s * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  if (!ms.empty()) state.counters["median_ms"] = ms[ms.size() / 2];
}

// The precisions a libdl case runs in on this machine.
std::vector<dl::Precision> cpu_precisions() {
  std::vector<dl::Precision> v{dl::Precision::kFp32};
  if (dl::cpu_bf16_available()) v.push_back(dl::Precision::kBf16);
  return v;
}

void MnistTrainStepLibdl(benchmark::State& state, dl::Precision precision, dl::MemoryFormat format) {
  const int64_t batch = state.range(0);
  dl::set_num_threads(bench_threads());
  dl::Generator gen(1);
  dl::nn::MnistCnn model({}, gen);
  model.to(format);  // channels-last: every layer takes its input NHWC (the one-channel image is both)
  dl::optim::Adam adam(model.parameter_refs(), {0.01});
  const dl::Tensor x = dl::Tensor::uniform({batch, 1, 28, 28}, 0.0, 1.0, gen);
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  for (auto& l : labels) l = static_cast<int32_t>(gen.below(10));
  const dl::Tensor y = dl::Tensor::from_vector<int32_t>({batch}, labels);
  time_steps(state, [&] {
    const dl::Autocast autocast(precision);
    adam.zero_grad();
    dl::Tensor loss = dl::ops::cross_entropy(model(x), y);
    loss.backward();
    adam.step();
    benchmark::DoNotOptimize(loss.raw_data());
  });
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["allocator_peak_MiB"] = dl::CpuAllocator::instance().stats().peak_bytes / 1048576.0;
}

#ifdef DL_BENCH_WITH_TORCH
struct TorchMnistCnn : torch::nn::Module {
  torch::nn::Conv2d c1{torch::nn::Conv2dOptions(1, 8, 3).padding(1)}, c2{torch::nn::Conv2dOptions(8, 16, 3).padding(1)},
      c3{torch::nn::Conv2dOptions(16, 32, 3).padding(1)};
  torch::nn::BatchNorm2d b1{8}, b2{16}, b3{32};
  torch::nn::Linear fc{32 * 7 * 7, 10};
  TorchMnistCnn() {
    register_module("c1", c1), register_module("c2", c2), register_module("c3", c3);
    register_module("b1", b1), register_module("b2", b2), register_module("b3", b3), register_module("fc", fc);
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(b1(c1(x))), 2);
    x = torch::max_pool2d(torch::relu(b2(c2(x))), 2);
    x = torch::relu(b3(c3(x)));
    return fc(x.flatten(1));
  }
};

void MnistTrainStepTorch(benchmark::State& state) {
  const int64_t batch = state.range(0);
  torch::set_num_threads(bench_threads());
  torch::manual_seed(1);
  TorchMnistCnn model;
  torch::optim::Adam adam(model.parameters(), torch::optim::AdamOptions(0.01));
  const auto x = torch::rand({batch, 1, 28, 28});
  const auto y = torch::randint(10, {batch}, torch::kLong);
  time_steps(state, [&] {
    adam.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model.forward(x), y);
    loss.backward();
    adam.step();
    benchmark::DoNotOptimize(loss.data_ptr());
  });
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(MnistTrainStepTorch)
    ->Name("MnistTrainStep/libtorch/fp32")
    ->ArgName("batch")
    ->Arg(128)
    ->Arg(1024)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();
#endif

}  // namespace

// ---- DeepLabv3+ (ResNet-18, OS 16) on CamVid-sized input: 360 x 480, batch 2, 11 classes ----
#ifdef DL_BENCH_WITH_TORCH
#include "reference/torch_deeplab.h"
#endif

namespace {

constexpr int64_t kSegH = 360, kSegW = 480, kSegClasses = 11;

void DeepLabStepLibdl(benchmark::State& state, bool train, dl::Precision precision, dl::MemoryFormat format) {
  const int64_t batch = state.range(0);
  dl::set_num_threads(bench_threads());
  dl::Generator gen(3);
  dl::nn::DeepLabV3Plus model({.num_classes = kSegClasses}, gen);
  dl::optim::Sgdm sgdm(model.parameter_refs(), {.learning_rate = 0.003, .momentum = 0.9, .l2 = 0.005});
  // The input in the case's memory format, converted once as bench/pytorch_step.py does.
  const dl::Tensor x = dl::ops::to_memory_format(dl::Tensor::randn({batch, 3, kSegH, kSegW}, gen), format);
  std::vector<int32_t> labels(static_cast<size_t>(batch * kSegH * kSegW));
  for (auto& l : labels) l = static_cast<int32_t>(gen.below(kSegClasses));
  const dl::Tensor y = dl::Tensor::from_vector<int32_t>({batch, kSegH, kSegW}, labels);
  model.train(train);
  time_steps(state, [&] {
    const dl::Autocast autocast(precision);
    if (train) {
      sgdm.zero_grad();
      dl::Tensor loss = dl::ops::cross_entropy(model(x), y, {{}, 255});
      loss.backward();
      sgdm.step();
      benchmark::DoNotOptimize(loss.raw_data());
    } else {
      dl::autograd::NoGradGuard no_grad;
      dl::Tensor logits = model(x);
      benchmark::DoNotOptimize(logits.raw_data(logits.memory_format()));
    }
  });
  state.SetItemsProcessed(state.iterations() * batch);
  const dl::AllocatorStats stats = dl::CpuAllocator::instance().stats();
  state.counters["allocator_peak_MiB"] = stats.peak_bytes / 1048576.0;
  state.counters["allocator_reserved_MiB"] = stats.reserved_bytes / 1048576.0;  // cached blocks included
}
// The libdl cases, one per precision this CPU computes in.
[[maybe_unused]] const bool kRegistered = [] {
  for (const dl::Precision p : cpu_precisions()) {
    const std::string config(dl::precision_name(p));
    for (const bool cl : {false, true})
      benchmark::RegisterBenchmark(("MnistTrainStep/libdl/" + config + (cl ? "-channels-last" : "")).c_str(),
                                   MnistTrainStepLibdl, p,
                                   cl ? dl::MemoryFormat::kChannelsLast : dl::MemoryFormat::kContiguous)
          ->ArgName("batch")
          ->Arg(128)
          ->Arg(1024)
          ->Unit(benchmark::kMillisecond)
          ->UseManualTime();
    for (const bool cl : {false, true})
      for (const bool train : {true, false})
        benchmark::RegisterBenchmark(
            ((train ? "DeepLabTrainStep/libdl/" : "DeepLabInfer/libdl/") + config + (cl ? "-channels-last" : ""))
                .c_str(),
            DeepLabStepLibdl, train, p, cl ? dl::MemoryFormat::kChannelsLast : dl::MemoryFormat::kContiguous)
            ->ArgName("batch")
            ->Arg(2)
            ->Unit(benchmark::kMillisecond)
            ->UseManualTime()
            ->Iterations(5);
  }
  return true;
}();

#ifdef DL_BENCH_WITH_TORCH
void DeepLabStepTorch(benchmark::State& state, bool train) {
  const int64_t batch = state.range(0);
  torch::set_num_threads(bench_threads());
  torch::manual_seed(3);
  dl_reference::TDeepLab model(kSegClasses);
  torch::optim::SGD sgd(model.parameters(), torch::optim::SGDOptions(0.003).momentum(0.9).weight_decay(0.005));
  const auto x = torch::randn({batch, 3, kSegH, kSegW});
  const auto y = torch::randint(kSegClasses, {batch, kSegH, kSegW}, torch::kLong);
  model.train(train);
  time_steps(state, [&] {
    if (train) {
      sgd.zero_grad();
      auto loss = torch::nn::functional::cross_entropy(model.forward(x), y);
      loss.backward();
      sgd.step();
      benchmark::DoNotOptimize(loss.data_ptr());
    } else {
      torch::NoGradGuard no_grad;
      auto logits = model.forward(x);
      benchmark::DoNotOptimize(logits.data_ptr());
    }
  });
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK_CAPTURE(DeepLabStepTorch, train, true)
    ->Name("DeepLabTrainStep/libtorch/fp32")
    ->ArgName("batch")
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime()
    ->Iterations(5);
BENCHMARK_CAPTURE(DeepLabStepTorch, infer, false)
    ->Name("DeepLabInfer/libtorch/fp32")
    ->ArgName("batch")
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime()
    ->Iterations(5);
#endif

}  // namespace
