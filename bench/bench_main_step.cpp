// MnistTrainStep: one whole training step of the seed's MNIST CNN (forward, cross-entropy, backward,
// Adam) at batch 128 and 1024, in libdl and, when libtorch is found, the same network in libtorch
// in the same binary, so that the two are compared as a ratio in one run.
#include <benchmark/benchmark.h>

#include "dl/dl.h"

#ifdef DL_BENCH_WITH_TORCH
#include <torch/torch.h>
#endif

namespace {

constexpr int kThreadsDefault = 2;

void MnistTrainStepLibdl(benchmark::State& state) {
  const int64_t batch = state.range(0);
  dl::set_num_threads(kThreadsDefault);
  dl::Generator gen(1);
  dl::nn::MnistCnn model({}, gen);
  dl::optim::Adam adam(model.parameter_refs(), {0.01});
  const dl::Tensor x = dl::Tensor::uniform({batch, 1, 28, 28}, 0.0, 1.0, gen);
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  for (auto& l : labels) l = static_cast<int32_t>(gen.below(10));
  const dl::Tensor y = dl::Tensor::from_vector<int32_t>({batch}, labels);
  for (auto _ : state) {
    dl::Tensor loss = dl::ops::cross_entropy(model(x), y);
    adam.zero_grad();
    loss.backward();
    adam.step();
    benchmark::DoNotOptimize(loss.raw_data());
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["allocator_peak_MiB"] = dl::CpuAllocator::instance().stats().peak_bytes / 1048576.0;
}
BENCHMARK(MnistTrainStepLibdl)
    ->Name("MnistTrainStep/libdl")
    ->ArgName("batch")
    ->Arg(128)
    ->Arg(1024)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

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
  torch::set_num_threads(kThreadsDefault);
  torch::manual_seed(1);
  TorchMnistCnn model;
  torch::optim::Adam adam(model.parameters(), torch::optim::AdamOptions(0.01));
  const auto x = torch::rand({batch, 1, 28, 28});
  const auto y = torch::randint(10, {batch}, torch::kLong);
  for (auto _ : state) {
    adam.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model.forward(x), y);
    loss.backward();
    adam.step();
    benchmark::DoNotOptimize(loss.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(MnistTrainStepTorch)
    ->Name("MnistTrainStep/libtorch")
    ->ArgName("batch")
    ->Arg(128)
    ->Arg(1024)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
#endif

}  // namespace

// ---- DeepLabv3+ (ResNet-18, OS 16) on CamVid-sized input: 360 x 480, batch 2, 11 classes ----
#ifdef DL_BENCH_WITH_TORCH
#include "reference/torch_deeplab.h"
#endif

namespace {

constexpr int64_t kSegH = 360, kSegW = 480, kSegClasses = 11;

void DeepLabStepLibdl(benchmark::State& state, bool train) {
  const int64_t batch = state.range(0);
  dl::set_num_threads(kThreadsDefault);
  dl::Generator gen(3);
  dl::nn::DeepLabV3Plus model({.num_classes = kSegClasses}, gen);
  dl::optim::Sgdm sgdm(model.parameter_refs(), {.learning_rate = 0.003, .momentum = 0.9, .l2 = 0.005});
  const dl::Tensor x = dl::Tensor::randn({batch, 3, kSegH, kSegW}, gen);
  std::vector<int32_t> labels(static_cast<size_t>(batch * kSegH * kSegW));
  for (auto& l : labels) l = static_cast<int32_t>(gen.below(kSegClasses));
  const dl::Tensor y = dl::Tensor::from_vector<int32_t>({batch, kSegH, kSegW}, labels);
  model.train(train);
  for (auto _ : state) {
    if (train) {
      dl::Tensor loss = dl::ops::cross_entropy(model(x), y, {{}, 255});
      sgdm.zero_grad();
      loss.backward();
      sgdm.step();
      benchmark::DoNotOptimize(loss.raw_data());
    } else {
      dl::autograd::NoGradGuard no_grad;
      dl::Tensor logits = model(x);
      benchmark::DoNotOptimize(logits.raw_data());
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["allocator_peak_MiB"] = dl::CpuAllocator::instance().stats().peak_bytes / 1048576.0;
}
BENCHMARK_CAPTURE(DeepLabStepLibdl, train, true)
    ->Name("DeepLabTrainStep/libdl")
    ->ArgName("batch")
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);
BENCHMARK_CAPTURE(DeepLabStepLibdl, infer, false)
    ->Name("DeepLabInfer/libdl")
    ->ArgName("batch")
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

#ifdef DL_BENCH_WITH_TORCH
void DeepLabStepTorch(benchmark::State& state, bool train) {
  const int64_t batch = state.range(0);
  torch::set_num_threads(kThreadsDefault);
  torch::manual_seed(3);
  dl_reference::TDeepLab model(kSegClasses);
  torch::optim::SGD sgd(model.parameters(), torch::optim::SGDOptions(0.003).momentum(0.9).weight_decay(0.005));
  const auto x = torch::randn({batch, 3, kSegH, kSegW});
  const auto y = torch::randint(kSegClasses, {batch, kSegH, kSegW}, torch::kLong);
  model.train(train);
  for (auto _ : state) {
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
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK_CAPTURE(DeepLabStepTorch, train, true)
    ->Name("DeepLabTrainStep/libtorch")
    ->ArgName("batch")
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);
BENCHMARK_CAPTURE(DeepLabStepTorch, infer, false)
    ->Name("DeepLabInfer/libtorch")
    ->ArgName("batch")
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);
#endif

}  // namespace
