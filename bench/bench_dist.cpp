// Data-parallel benchmarks, run under the launcher (every rank runs every case; rank 0 reports):
//
//   mpirun -np 2 build/bin/bench_dist [--benchmark_filter=...]
//
// AllReduce/<engine>/<bytes>: the bus bandwidth of an in-place sum, as nccl-tests defines it: algbw =
// bytes / time, busbw = algbw * 2 (n - 1) / n (what each link carries, comparable across rank counts).
// `mpi` is CPU tensors over MPI; `nccl` is CUDA tensors over NCCL (an error saying why without a GPU or
// without NCCL). DataParallelStep/<model>/<overlap|after_backward>: the time of a whole data-parallel
// training step (forward, backward with the gradient all-reduce, update) with each bucket started
// during backward, and with every bucket started after it: what the overlap buys.
//
// Every case runs a fixed number of iterations (the ranks must make the same collectives) and is timed
// by hand between barriers; the counters are rank 0's.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "dl/dl.h"

namespace {

using Clock = std::chrono::steady_clock;

dl::dist::ProcessGroup& group() { return dl::dist::world(); }

void set_bandwidth(benchmark::State& state, double bytes) {
  const int n = group().size();
  state.counters["algbw_GBps"] =
      benchmark::Counter(bytes * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  state.counters["busbw_GBps"] = benchmark::Counter(
      bytes * static_cast<double>(state.iterations()) / 1e9 * 2.0 * (n - 1) / n, benchmark::Counter::kIsRate);
  state.counters["ranks"] = n;
}

void all_reduce(benchmark::State& state, dl::Device device) {
  auto& g = group();
  const int64_t bytes = state.range(0);
  if (device.is_cuda()) {
    // The same answer on every rank of a machine, so that all skip or none does.
    try {
      dl::check_device_usable(device);
    } catch (const dl::Error& e) {
      return state.SkipWithError((std::string("no CUDA device: ") + e.what()).c_str());
    }
    if (!dl::dist::built_with_nccl()) return state.SkipWithError("this libdl was built without NCCL");
  }
  dl::Tensor t = dl::Tensor::ones({bytes / 4}, dl::DType::kFloat32, device);
  g.all_reduce(t);  // warm-up (and NCCL's communicator)
  for (auto _ : state) {
    g.barrier();
    const auto t0 = Clock::now();
    g.all_reduce_async(t).wait();
    if (device.is_cuda()) dl::synchronize(device);
    state.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  set_bandwidth(state, static_cast<double>(bytes));
}

// 4 KB to 256 MB; fixed iterations per size, about as many bytes for each (and at least 3 calls).
void register_all_reduce(const char* name, dl::Device device) {
  for (int64_t bytes = 4 << 10; bytes <= (int64_t{256} << 20); bytes *= 4) {
    const int64_t iterations = std::max<int64_t>(3, std::min<int64_t>(2000, (int64_t{512} << 20) / bytes / 4));
    benchmark::RegisterBenchmark(name, [device](benchmark::State& s) { all_reduce(s, device); })
        ->Arg(bytes)
        ->Iterations(iterations)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
}

// A data-parallel training step of `make()`'s model on this rank's share of a batch of `batch`.
template <typename MakeModel>
void data_parallel_step(benchmark::State& state, MakeModel make, dl::Shape input, int classes, bool segmentation,
                        bool overlap) {
  auto& g = group();
  auto model = make();
  dl::dist::broadcast_state(*model, g);
  dl::dist::GradientReducer reducer(model->parameter_refs(), g, {.overlap = overlap});
  dl::optim::Sgdm sgd(model->parameter_refs(), {.learning_rate = 1e-3});
  dl::Generator gen(1 + static_cast<uint64_t>(g.rank()));
  const dl::Tensor x = dl::Tensor::randn(input, gen);
  // A label per image (classification) or per pixel (segmentation).
  const std::vector<int64_t> label_shape =
      segmentation ? std::vector<int64_t>{input[0], input[2], input[3]} : std::vector<int64_t>{input[0]};
  std::vector<int32_t> labels(static_cast<size_t>(dl::Shape(label_shape).numel()));
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % static_cast<size_t>(classes));
  const dl::Tensor y = dl::Tensor::from_vector<int32_t>(dl::Shape(label_shape), labels);
  auto step = [&] {
    sgd.zero_grad();
    reducer.backward(dl::ops::cross_entropy(model->forward(x), y));
    sgd.step();
  };
  step();  // warm-up: caches, oneDNN primitives, buffers
  for (auto _ : state) {
    g.barrier();
    const auto t0 = Clock::now();
    step();
    state.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  state.counters["buckets"] = reducer.num_buckets();
  state.counters["started_during_backward"] = reducer.started_during_backward();
  state.counters["ranks"] = g.size();
  state.SetItemsProcessed(state.iterations() * input[0] * g.size());
}

void register_steps() {
  for (const bool overlap : {true, false}) {
    const std::string mode = overlap ? "overlap" : "after_backward";
    // MNIST CNN, global batch 1024 (the recipe's), split over the ranks.
    benchmark::RegisterBenchmark(("DataParallelStep/mnist/" + mode).c_str(),
                                 [overlap](benchmark::State& s) {
                                   data_parallel_step(
                                       s, [] { return std::make_unique<dl::nn::MnistCnn>(); },
                                       dl::Shape({1024 / group().size(), 1, 28, 28}), 10, false, overlap);
                                 })
        ->Iterations(20)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
    // DeepLabv3+ on ResNet-18 at 360 x 480, 2 images per rank (with one, the image-pooling branch's
    // batch norm would see one value per channel): about 60 MB of gradients in 3 buckets.
    benchmark::RegisterBenchmark(
        ("DataParallelStep/deeplab/" + mode).c_str(),
        [overlap](benchmark::State& s) {
          data_parallel_step(
              s,
              [] { return std::make_unique<dl::nn::DeepLabV3Plus>(dl::nn::DeepLabV3PlusOptions{.num_classes = 11}); },
              dl::Shape({2, 3, 360, 480}), 11, true, overlap);
        })
        ->Iterations(3)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

class NullReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  dl::dist::ProcessGroup& g = dl::dist::world();
  register_all_reduce("AllReduce/mpi", dl::Device::cpu());
  register_all_reduce("AllReduce/nccl", dl::Device::cuda(g.local_rank()));
  register_steps();
  bool out_file = false;  // --benchmark_out=FILE: rank 0 writes it
  for (int i = 1; i < argc; ++i) out_file |= std::string(argv[i]).rfind("--benchmark_out=", 0) == 0;
  benchmark::Initialize(&argc, argv);
  if (g.rank() == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    NullReporter quiet;  // the same cases in the same order, reported by rank 0 alone
    if (out_file)
      benchmark::RunSpecifiedBenchmarks(&quiet, &quiet);
    else
      benchmark::RunSpecifiedBenchmarks(&quiet);
  }
  benchmark::Shutdown();
  return 0;
}
