// Benchmarks of the CUDA backend, in two flavours:
//   Emulated/<family>/<kernel>/<shape>  every hand-written kernel family of kernels/*.cuh, its exact source run by
//                                       the CPU emulation (kernels/emu) through the launch sequences (run_*) that
//                                       the backend calls, at small sizes (about 10^5 elements). The emulation
//                                       runs one fiber per CUDA thread on one OS thread, so these figures are not
//                                       GPU speeds: they move when a kernel's source changes, and no GPU is needed.
//   Cuda/<op>/<fwd|bwd|update>/<shape>  the CUDA path at the sizes of the MNIST CNN (batch 1024) and of DeepLabv3+
//                                       on CamVid (360 x 480, batch 2, 11 classes): the hand-written kernels and
//                                       every cuDNN op through dl::cuda, the cuBLAS linear layer, and the whole
//                                       MNIST training step (Cuda/MnistTrainStep/batch:N: dl::nn::MnistCnn, Adam)
//                                       through dl::ops. Timed with CUDA events on the device's compute stream
//                                       (UseManualTime); each skips with "no CUDA device: ..." where no GPU is
//                                       usable or libdl has no CUDA backend.
// Rates: GB/s counts each tensor an op reads or writes once; FLOP/s counts 2 per multiply-add.
//
// This file is compiled twice (bench/CMakeLists.txt): the emulation defines CUDA's own names (dim3, threadIdx,
// cudaStream_t, ...), which clash with the CUDA runtime headers that the timing needs, so the Emulated half is
// compiled as is and the Cuda half as an object library with DL_BENCH_GPU_HALF=1.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "binary_ops.cuh"
#include "conv_cases.h"

namespace {

// The broadcasting family's index over n contiguous elements of same-shaped operands (what the front end
// builds for them: one flat dimension, unit strides).
[[maybe_unused]] dl::kern::StridedIndex<2> flat_index(int64_t n) {
  dl::kern::StridedIndex<2> ix;
  ix.ndim = 1;
  ix.size[0] = n;
  ix.stride[0][0] = ix.stride[1][0] = 1;
  return ix;
}

// ---- data shared by both halves ----

[[maybe_unused]] std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

// Labels in [0, c), about one in `void_every` the void label 255 (0: none).
[[maybe_unused]] std::vector<int32_t> random_labels(int64_t n, int c, uint32_t seed, int void_every = 12) {
  std::mt19937 rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t& y : v) y = void_every > 0 && rng() % void_every == 0 ? 255 : static_cast<int32_t>(rng() % c);
  return v;
}

// Segmentation-like label maps images x h x w: rectangles of classes over a background, one void rectangle in
// the truth; the prediction is the truth shifted two pixels, void replaced, with speckles (boundaries that match
// partly, as in a trained model's output).
struct LabelMaps {
  std::vector<int32_t> truth, pred;
};
[[maybe_unused]] LabelMaps label_maps(int images, int h, int w, int c, uint32_t seed) {
  std::mt19937 rng(seed);
  LabelMaps m;
  m.truth.resize(static_cast<size_t>(images) * h * w);
  for (int i = 0; i < images; ++i) {
    int32_t* p = m.truth.data() + static_cast<size_t>(i) * h * w;
    std::fill(p, p + static_cast<size_t>(h) * w, static_cast<int32_t>(rng() % c));
    for (int r = 0; r < 12; ++r) {
      const int y0 = static_cast<int>(rng() % h), x0 = static_cast<int>(rng() % w);
      const int y1 = std::min(h, y0 + 1 + static_cast<int>(rng() % (h / 3 + 1)));
      const int x1 = std::min(w, x0 + 1 + static_cast<int>(rng() % (w / 3 + 1)));
      const int32_t k = r == 11 ? 255 : static_cast<int32_t>(rng() % c);
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) p[y * w + x] = k;
    }
  }
  m.pred.resize(m.truth.size());
  for (int i = 0; i < images; ++i)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const size_t at = (static_cast<size_t>(i) * h + y) * w;
        const int32_t t = m.truth[at + std::min(w - 1, x + 2)];
        m.pred[at + x] = t == 255 ? 0 : t;
      }
  for (size_t j = 0; j < m.pred.size() / 50; ++j) m.pred[rng() % m.pred.size()] = static_cast<int32_t>(rng() % c);
  return m;
}

[[maybe_unused]] void set_bytes(benchmark::State& state, double bytes_per_iteration) {
  state.SetBytesProcessed(static_cast<int64_t>(bytes_per_iteration * static_cast<double>(state.iterations())));
}

}  // namespace

#if !DL_BENCH_GPU_HALF
// =====================================================================================================================
// Emulated: the kernel sources of kernels/ on the CPU emulation.
// =====================================================================================================================
// The kernel sources (and, through compat.cuh, the emulation's CUDA vocabulary) come last.
#include "batch_norm.cuh"
#include "bf_score.cuh"
#include "broadcast.cuh"
#include "concat.cuh"
#include "confusion.cuh"
#include "cross_entropy.cuh"
#include "elementwise.cuh"
#include "optim.cuh"
#include "resize.cuh"

namespace {

using dl::emu::Launcher;

// Launch shape: each kernel's preferred block (256 threads) and grid-stride grids capped at 8 blocks (2048 fibers),
// so that each emulated thread loops over many elements and the kernel's own code, more than the creation of
// fibers, makes the time (CudaLauncher caps grids at 32 blocks per multiprocessor). Kernels with barriers
// (block reductions) still spend most of their time switching fibers.
constexpr int64_t kEmuGridCap = 8;
// Elements of the element-wise and optimiser cases.
constexpr int64_t kEmuElements = int64_t{1} << 17;

// Runs one launch sequence per iteration on one OS thread (timings independent of the core count). The
// emulation's block and fiber order is shuffled with a seed that changes per launch (as in the tests).
template <typename F>
void emulate(benchmark::State& state, double bytes_per_call, F&& run) {
  dl::emu::options().workers = 1;
  Launcher l{0, kEmuGridCap};
  for (auto _ : state) {
    run(l);
    benchmark::ClobberMemory();
  }
  set_bytes(state, bytes_per_call);
  state.counters["launches"] = benchmark::Counter(l.launches, benchmark::Counter::kAvgIterations);
}

void add_emulated(const std::string& name, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(("Emulated/" + name).c_str(), std::move(fn))
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

void register_elementwise() {
  const int64_t n = kEmuElements;
  const std::string shape = "/n:" + std::to_string(n);
  namespace k = dl::kern;
  // (name, tensors of n floats touched per call, the launch)
  struct Case {
    std::string name;
    double tensors;
    std::function<void(Launcher&, const float*, const float*, float*)> run;
  };
  const std::vector<Case> cases = {
      {"fill", 1,
       [n](Launcher& l, const float*, const float*, float* y) {
         k::launch_1d(l, k::fill_kernel<float>, n, y, n, 1.f);
       }},
      {"add", 3,
       [n](Launcher& l, const float* a, const float* b, float* y) {
         k::run_broadcast_binary(l, k::AddOp{}, a, b, 0.f, y, n, flat_index(n));
       }},
      {"mul", 3,
       [n](Launcher& l, const float* a, const float* b, float* y) {
         k::run_broadcast_binary(l, k::MulOp{}, a, b, 0.f, y, n, flat_index(n));
       }},
      {"scale", 2,
       [n](Launcher& l, const float* a, const float*, float* y) {
         k::launch_1d(l, k::scale_kernel<float>, n, a, 2.5f, y, n);
       }},
      {"axpy", 3,
       [n](Launcher& l, const float* a, const float*, float* y) {
         k::launch_1d(l, k::axpy_kernel<float>, n, -0.5f, a, y, n);
       }},
      {"lerp", 3,
       [n](Launcher& l, const float* a, const float*, float* y) {
         k::launch_1d(l, k::lerp_kernel<float>, n, y, a, 0.1f, n);
       }},
      {"broadcast_scalar", 1,
       [n](Launcher& l, const float* a, const float*, float* y) {
         k::launch_1d(l, k::broadcast_scalar_kernel<float>, n, a, 0.25f, y, n);
       }},
      {"bias_add", 2,
       [n](Launcher& l, const float* a, const float*, float* y) {
         k::launch_1d(l, k::bias_add_kernel<float>, n, y, a, n / 64, int64_t{64});
       }},
      {"run_sum", 1, [n](Launcher& l, const float* a, const float*, float* y) { k::run_sum(l, a, n, 1.f, y); }},
  };
  for (const Case& c : cases)
    add_emulated("elementwise/" + c.name + shape, [c, n](benchmark::State& state) {
      const std::vector<float> a = random_floats(n, 1), b = random_floats(n, 2);
      std::vector<float> y = random_floats(n, 3);
      emulate(state, c.tensors * 4.0 * static_cast<double>(n),
              [&](Launcher& l) { c.run(l, a.data(), b.data(), y.data()); });
    });
}

// DeepLabv3+ logits on a 64 x 96 crop: N x C x S = 2 x 11 x 6144.
constexpr int64_t kCeN = 2, kCeC = 11, kCeH = 64, kCeW = 96, kCeS = kCeH * kCeW;

void register_cross_entropy() {
  const std::string shape = "/2x11x64x96";
  add_emulated("cross_entropy/forward" + shape, [](benchmark::State& state) {
    const std::vector<float> logits = random_floats(kCeN * kCeC * kCeS, 5, -4.f, 4.f);
    const std::vector<float> weights = random_floats(kCeC, 6, 0.2f, 3.f);
    const std::vector<int32_t> labels = random_labels(kCeN * kCeS, kCeC, 7);
    std::vector<float> lp(logits.size());
    float loss = 0;
    double wsum = 0;
    emulate(state, 4.0 * (2 * logits.size() + labels.size()), [&](Launcher& l) {
      dl::kern::run_cross_entropy_forward(l, logits.data(), labels.data(), weights.data(), kCeN, kCeC, kCeS, 255,
                                          lp.data(), &loss, &wsum);
    });
  });
  add_emulated("cross_entropy/backward" + shape, [](benchmark::State& state) {
    const std::vector<float> logits = random_floats(kCeN * kCeC * kCeS, 5, -4.f, 4.f);
    const std::vector<float> weights = random_floats(kCeC, 6, 0.2f, 3.f);
    const std::vector<int32_t> labels = random_labels(kCeN * kCeS, kCeC, 7);
    std::vector<float> lp(logits.size()), dx(logits.size());
    float loss = 0;
    double wsum = 0;
    const float gy = 1.f;
    Launcher setup{0, kEmuGridCap};
    dl::kern::run_cross_entropy_forward(setup, logits.data(), labels.data(), weights.data(), kCeN, kCeC, kCeS, 255,
                                        lp.data(), &loss, &wsum);
    emulate(state, 4.0 * (2 * logits.size() + labels.size()), [&](Launcher& l) {
      dl::kern::run_cross_entropy_backward(l, static_cast<const float*>(lp.data()), labels.data(), weights.data(), kCeN,
                                           kCeC, kCeS, 255, &gy, static_cast<const double*>(&wsum), dx.data());
    });
  });
  add_emulated("cross_entropy/find_bad_label/n:" + std::to_string(kCeN * kCeS), [](benchmark::State& state) {
    const std::vector<int32_t> labels = random_labels(kCeN * kCeS, kCeC, 7);
    unsigned long long first = 0;
    emulate(state, 4.0 * labels.size(),
            [&](Launcher& l) { dl::kern::run_find_bad_label(l, labels.data(), kCeN * kCeS, kCeC, 255, &first); });
  });
}

void register_confusion() {
  const std::string shape = "/2x11x64x96";
  const int64_t pixels = kCeN * kCeS;
  add_emulated("confusion/labels" + shape, [pixels](benchmark::State& state) {
    const LabelMaps m = label_maps(kCeN, kCeH, kCeW, kCeC, 21);
    std::vector<unsigned long long> conf(kCeC * kCeC, 0);
    unsigned long long bad = 0;
    emulate(state, 8.0 * pixels, [&](Launcher& l) {
      dl::kern::run_confusion(l, m.pred.data(), static_cast<const float*>(nullptr), m.truth.data(), pixels, kCeS,
                              static_cast<int>(kCeC), 255, conf.data(), &bad);
    });
  });
  add_emulated("confusion/argmax_fused" + shape, [pixels](benchmark::State& state) {
    const LabelMaps m = label_maps(kCeN, kCeH, kCeW, kCeC, 21);
    const std::vector<float> logits = random_floats(pixels * kCeC, 22);
    std::vector<unsigned long long> conf(kCeC * kCeC, 0);
    unsigned long long bad = 0;
    emulate(state, 4.0 * (logits.size() + pixels), [&](Launcher& l) {
      dl::kern::run_confusion(l, static_cast<const int32_t*>(nullptr), logits.data(), m.truth.data(), pixels, kCeS,
                              static_cast<int>(kCeC), 255, conf.data(), &bad);
    });
  });
  add_emulated("confusion/argmax" + shape, [pixels](benchmark::State& state) {
    const std::vector<float> logits = random_floats(pixels * kCeC, 22);
    std::vector<int32_t> out(static_cast<size_t>(pixels));
    emulate(state, 4.0 * (logits.size() + pixels),
            [&](Launcher& l) { dl::kern::run_argmax(l, logits.data(), kCeN, kCeC, kCeS, out.data()); });
  });
}

void register_bf_score() {
  // One CamVid image at half resolution: theta = 2.25 pixels, a 7 x 7 search window.
  const int images = 1, h = 180, w = 240, c = 11;
  add_emulated("bf_score/counts/1x180x240.c11", [=](benchmark::State& state) {
    const LabelMaps m = label_maps(images, h, w, c, 31);
    std::vector<unsigned long long> pc(images * c * 2), tc(images * c * 2);
    // Label maps in, boundary maps out and read back by the two matching passes.
    emulate(state, 4.0 * 6 * images * h * w, [&](Launcher& l) {
      dl::kern::run_bf_counts(l, m.pred.data(), m.truth.data(), images, h, w, c, 255, pc.data(), tc.data());
    });
  });
}

void register_optim() {
  const int64_t n = kEmuElements;
  const std::string shape = "/n:" + std::to_string(n);
  add_emulated("optim/sgdm" + shape, [n](benchmark::State& state) {
    std::vector<float> w = random_floats(n, 41), v = random_floats(n, 43, -0.1f, 0.1f);
    const std::vector<float> g = random_floats(n, 42);
    emulate(state, 4.0 * 5 * n,
            [&](Launcher& l) { dl::kern::run_sgdm(l, w.data(), g.data(), v.data(), n, 0.01f, 0.9f, 1e-4f); });
  });
  add_emulated("optim/adam" + shape, [n](benchmark::State& state) {
    std::vector<float> w = random_floats(n, 41), m = random_floats(n, 43, -0.1f, 0.1f),
                       v = random_floats(n, 44, 0.f, 0.2f);
    const std::vector<float> g = random_floats(n, 42);
    int64_t t = 0;
    emulate(state, 4.0 * 7 * n, [&](Launcher& l) {
      dl::kern::run_adam(l, w.data(), g.data(), m.data(), v.data(), n, 0.01f, 0.9f, 0.999f, 1e-8f, 1e-4f, ++t);
    });
  });
  add_emulated("optim/rmsprop" + shape, [n](benchmark::State& state) {
    std::vector<float> w = random_floats(n, 41), v = random_floats(n, 44, 0.f, 0.2f);
    const std::vector<float> g = random_floats(n, 42);
    emulate(state, 4.0 * 5 * n,
            [&](Launcher& l) { dl::kern::run_rmsprop(l, w.data(), g.data(), v.data(), n, 0.01f, 0.9f, 1e-8f, 0.f); });
  });
}

void register_resize() {
  // DeepLabv3+'s final x4 upsampling of the logits, on a crop: 2 x 11 planes of 16 x 24 -> 64 x 96.
  const int64_t planes = 22, h = 16, w = 24, oh = 64, ow = 96;
  const double bytes = 4.0 * planes * (h * w + oh * ow);
  add_emulated("resize/forward/22x16x24.to.64x96", [=](benchmark::State& state) {
    const std::vector<float> x = random_floats(planes * h * w, 51);
    std::vector<float> y(static_cast<size_t>(planes * oh * ow));
    emulate(state, bytes,
            [&](Launcher& l) { dl::kern::run_resize_bilinear_forward(l, x.data(), y.data(), planes, h, w, oh, ow); });
  });
  add_emulated("resize/backward/22x16x24.to.64x96", [=](benchmark::State& state) {
    const std::vector<float> dy = random_floats(planes * oh * ow, 52);
    std::vector<float> dx(static_cast<size_t>(planes * h * w));
    emulate(state, bytes, [&](Launcher& l) {
      dl::kern::run_resize_bilinear_backward(l, dy.data(), dx.data(), planes, h, w, oh, ow);
    });
  });
}

void register_concat() {
  // DeepLabv3+'s decoder concatenation (256 upsampled ASPP channels, 48 low-level ones) on a 16 x 16 crop.
  const int64_t n = 2, s = 16 * 16;
  const std::vector<int64_t> cs = {256, 48};
  const double bytes = 4.0 * 2 * n * (cs[0] + cs[1]) * s;
  add_emulated("concat/concat/2x304x16x16", [=](benchmark::State& state) {
    const std::vector<float> a = random_floats(n * cs[0] * s, 60), b = random_floats(n * cs[1] * s, 61);
    const float* parts[2] = {a.data(), b.data()};
    std::vector<float> y(static_cast<size_t>(n * (cs[0] + cs[1]) * s));
    emulate(state, bytes, [&](Launcher& l) { dl::kern::run_concat(l, parts, cs.data(), 2, n, s, y.data()); });
  });
  add_emulated("concat/split/2x304x16x16", [=](benchmark::State& state) {
    const std::vector<float> y = random_floats(n * (cs[0] + cs[1]) * s, 62);
    std::vector<float> a(static_cast<size_t>(n * cs[0] * s)), b(static_cast<size_t>(n * cs[1] * s));
    float* parts[2] = {a.data(), b.data()};
    emulate(state, bytes, [&](Launcher& l) { dl::kern::run_split(l, y.data(), cs.data(), 2, n, s, parts); });
  });
}

void register_batch_norm() {
  const int64_t n = 2, c = 64, s = 32 * 32;
  add_emulated("batch_norm/backward_infer/2x64x32x32", [=](benchmark::State& state) {
    const std::vector<float> x = random_floats(n * c * s, 71), dy = random_floats(n * c * s, 72),
                             gamma = random_floats(c, 73), mean = random_floats(c, 74),
                             var = random_floats(c, 75, 0.5f, 2.f);
    std::vector<float> dx(x.size()), dg(c), db(c);
    emulate(state, 4.0 * 3 * n * c * s, [&](Launcher& l) {
      dl::kern::run_batch_norm_backward_infer(l, x.data(), gamma.data(), dy.data(), mean.data(), var.data(), n, c, s,
                                              1e-5, dx.data(), dg.data(), db.data());
    });
  });
}

const bool registered = [] {
  register_elementwise();
  register_cross_entropy();
  register_confusion();
  register_bf_score();
  register_optim();
  register_resize();
  register_concat();
  register_batch_norm();
  return true;
}();

}  // namespace

#else  // DL_BENCH_GPU_HALF
// =====================================================================================================================
// Cuda: the CUDA backend on the GPU, timed with events.
// =====================================================================================================================
#include "dl/config.h"
#include "dl/dl.h"
#if DL_WITH_CUDA
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/runtime.h"
#endif

namespace {

// ---- the cases, plain data (the registration below names them with or without a CUDA backend) ----

constexpr int64_t kCamN = 2, kCamC = 11, kCamH = 360, kCamW = 480;  // DeepLabv3+ on CamVid

struct CeCase {
  std::string name;
  int64_t n, c, s;
};

struct ResizeCase {
  std::string name;
  int64_t planes, h, w, oh, ow;
};

struct ActCase {
  std::string name;
  int64_t n, c, h, w;
  int64_t numel() const { return n * c * h * w; }
};
const std::vector<ActCase>& act_cases() {
  static const std::vector<ActCase> cases = {{"mnist.block1", 1024, 8, 28, 28}, {"resnet18.layer1", 2, 64, 90, 120}};
  return cases;
}

using dl::bench::conv_cases;
using dl::bench::ConvCase;

#if DL_WITH_CUDA
constexpr int kDevice = 0;
// Op calls between the two events of one iteration, so that the GPU's queue stays full and the figure is the
// op's time rather than one launch latency (llm.c's benchmark_kernel repeats likewise). The L2 cache is not
// flushed between calls: tensors that fit in it are timed warm.
constexpr int kRepeats = 10;

dl::Device gpu() { return dl::Device::cuda(kDevice); }
dl::Tensor dev_randn(const dl::Shape& shape, dl::Generator& gen) { return dl::Tensor::randn(shape, gen).to(gpu()); }
dl::Tensor dev_empty(const dl::Shape& shape, dl::DType dtype = dl::DType::kFloat32) {
  return dl::Tensor::empty(shape, dtype, gpu());
}
dl::Tensor dev_labels(const std::vector<int32_t>& v) {
  return dl::Tensor::from_vector<int32_t>({static_cast<int64_t>(v.size())}, v).to(gpu());
}
float* f32(const dl::Tensor& t) { return static_cast<float*>(t.raw_data()); }
int32_t* i32(const dl::Tensor& t) { return static_cast<int32_t*>(t.raw_data()); }

// A pair of CUDA events on the device's compute stream, where every op of the backend runs.
class EventTimer {
 public:
  EventTimer() {
    dl::cuda::DeviceGuard guard(kDevice);
    DL_CUDA_CHECK(cudaEventCreate(&start_));
    DL_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  // Seconds of one call of `op`: `repeats` calls between two events, the host waiting on the second only.
  template <typename F>
  double seconds_per_call(F& op, int repeats) {
    const cudaStream_t stream = dl::cuda::compute_stream(kDevice);
    DL_CUDA_CHECK(cudaEventRecord(start_, stream));
    for (int i = 0; i < repeats; ++i) op();
    DL_CUDA_CHECK(cudaEventRecord(stop_, stream));
    DL_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    DL_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return 1e-3 * ms / repeats;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// The timed loop: one warm-up call (cuDNN's algorithm search, the caching allocator, lazy module loading), the
// device drained, then per iteration the event time of one call.
template <typename F>
void time_on_gpu(benchmark::State& state, int repeats, F&& op) {
  op();
  dl::cuda::synchronize(kDevice);
  EventTimer timer;
  for (auto _ : state) state.SetIterationTime(timer.seconds_per_call(op, repeats));
  dl::cuda::synchronize(kDevice);
}

void set_flops(benchmark::State& state, double flops_per_call) {
  state.counters["FLOP/s"] =
      benchmark::Counter(flops_per_call * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// Runs a case where a GPU is usable; otherwise, or when the case throws (a version mismatch, out of memory),
// skips it with the reason.
void run_cuda_case(benchmark::State& state, const std::function<void(benchmark::State&)>& body) {
  try {
    dl::check_device_usable(gpu());
  } catch (const std::exception& e) {
    state.SkipWithError((std::string("no CUDA device: ") + e.what()).c_str());
    return;
  }
  try {
    body(state);
  } catch (const std::exception& e) {
    state.SkipWithError((std::string("CUDA case failed: ") + e.what()).c_str());
  }
}

// ---- hand-written kernels (kernels/*.cuh) through dl::cuda ----

void elementwise_case(benchmark::State& state, const std::string& op, int64_t n) {
  dl::Generator gen(1);
  const dl::Tensor a = dev_randn({n}, gen), b = dev_randn({n}, gen), y = dev_randn({n}, gen), out = dev_empty({1});
  double tensors = 0;
  std::function<void()> call;
  if (op == "fill") {
    tensors = 1;
    call = [&] { dl::cuda::fill(kDevice, f32(y), n, 1.f); };
  } else if (op == "add") {
    tensors = 3;
    call = [&] {
      dl::cuda::broadcast_binary(kDevice, dl::kern::AddOp{}, f32(a), f32(b), 0.f, f32(y), n, flat_index(n));
    };
  } else if (op == "axpy_acc") {
    tensors = 3;
    call = [&] { dl::cuda::axpy_acc(kDevice, 1e-3f, f32(a), f32(y), n); };
  } else if (op == "sum") {
    tensors = 1;
    call = [&] { dl::cuda::sum(kDevice, f32(a), f32(out), n); };
  }
  time_on_gpu(state, kRepeats, call);
  set_bytes(state, tensors * 4.0 * static_cast<double>(n));
}

void cross_entropy_case(benchmark::State& state, const CeCase& k, bool backward) {
  dl::Generator gen(3);
  const dl::Tensor logits = dev_randn({k.n, k.c, k.s}, gen);
  const dl::Tensor labels = dev_labels(random_labels(k.n * k.s, static_cast<int>(k.c), 7));
  const dl::Tensor weights = dl::Tensor::uniform({k.c}, 0.5, 2.0, gen).to(gpu());
  const dl::Tensor lp = dev_empty({k.n, k.c, k.s}), dx = dev_empty({k.n, k.c, k.s}), loss = dev_empty({1});
  const dl::Tensor wsum = dev_empty({1}, dl::DType::kFloat64);
  const dl::Tensor gy = dl::Tensor::full({1}, 1.0, dl::DType::kFloat32, gpu());
  auto forward = [&] {
    dl::cuda::cross_entropy_forward(kDevice, f32(logits), i32(labels), f32(weights), k.n, k.c, k.s, 255, f32(lp),
                                    f32(loss), static_cast<double*>(wsum.raw_data()));
  };
  auto backward_call = [&] {
    dl::cuda::cross_entropy_backward(kDevice, f32(lp), i32(labels), f32(weights), k.n, k.c, k.s, 255, f32(gy),
                                     static_cast<const double*>(wsum.raw_data()), f32(dx));
  };
  if (backward) {
    forward();
    time_on_gpu(state, kRepeats, backward_call);
  } else {
    time_on_gpu(state, kRepeats, forward);
  }
  set_bytes(state, 4.0 * (2 * k.c + 1) * k.n * k.s);  // logits (or log-probs) in, log-probs (or dlogits) out, labels
}

void argmax_case(benchmark::State& state) {
  dl::Generator gen(4);
  const int64_t s = kCamH * kCamW;
  const dl::Tensor logits = dev_randn({kCamN, kCamC, s}, gen), out = dev_empty({kCamN, s}, dl::DType::kInt32);
  time_on_gpu(state, kRepeats, [&] { dl::cuda::argmax_channels(kDevice, f32(logits), kCamN, kCamC, s, i32(out)); });
  set_bytes(state, 4.0 * (kCamC + 1) * kCamN * s);
}

// Confusion matrix and BF-score counts of a CamVid batch; the call reads its results back (it synchronises).
void segmentation_counts_case(benchmark::State& state) {
  const LabelMaps m = label_maps(static_cast<int>(kCamN), static_cast<int>(kCamH), static_cast<int>(kCamW),
                                 static_cast<int>(kCamC), 31);
  const dl::Tensor pred = dev_labels(m.pred), truth = dev_labels(m.truth);
  std::vector<int64_t> confusion;
  std::vector<int64_t> bf;
  time_on_gpu(state, kRepeats, [&] {
    dl::cuda::segmentation_counts(kDevice, i32(pred), i32(truth), kCamN, kCamH, kCamW, static_cast<int>(kCamC), 255,
                                  confusion, bf);
  });
  set_bytes(state, 4.0 * 8 * kCamN * kCamH * kCamW);  // as the Emulated case: maps in, boundaries out and back, twice
}

int64_t parameter_count(const std::string& model) {
  static const int64_t deeplab = dl::nn::DeepLabV3Plus({.num_classes = static_cast<int>(kCamC)}).num_parameters();
  static const int64_t mnist = dl::nn::MnistCnn().num_parameters();
  return model == "deeplab" ? deeplab : mnist;
}

void optim_case(benchmark::State& state, const std::string& op, const std::string& model) {
  const int64_t n = parameter_count(model);
  dl::Generator gen(5);
  const dl::Tensor w = dev_randn({n}, gen), g = dev_randn({n}, gen), m = dev_empty({n}), v = dev_empty({n});
  dl::cuda::fill(kDevice, f32(m), n, 0.f);
  dl::cuda::fill(kDevice, f32(v), n, 0.f);
  int64_t t = 0;
  if (op == "sgdm") {
    time_on_gpu(state, kRepeats,
                [&] { dl::cuda::sgdm_update(kDevice, f32(w), f32(g), f32(v), n, 0.01f, 0.9f, 5e-3f); });
    set_bytes(state, 4.0 * 5 * n);
  } else {
    time_on_gpu(state, kRepeats, [&] {
      dl::cuda::adam_update(kDevice, f32(w), f32(g), f32(m), f32(v), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.f, ++t);
    });
    set_bytes(state, 4.0 * 7 * n);
  }
  state.counters["params"] = static_cast<double>(n);
}

void resize_case(benchmark::State& state, const ResizeCase& k, bool backward) {
  dl::Generator gen(6);
  const dl::Tensor small = dev_randn({k.planes, k.h, k.w}, gen), big = dev_randn({k.planes, k.oh, k.ow}, gen);
  if (backward)
    time_on_gpu(state, kRepeats, [&] {
      dl::cuda::resize_bilinear_backward(kDevice, f32(big), f32(small), k.planes, k.h, k.w, k.oh, k.ow);
    });
  else
    time_on_gpu(state, kRepeats, [&] {
      dl::cuda::resize_bilinear_forward(kDevice, f32(small), f32(big), k.planes, k.h, k.w, k.oh, k.ow);
    });
  set_bytes(state, 4.0 * k.planes * (k.h * k.w + k.oh * k.ow));
}

// DeepLabv3+'s decoder concatenation: 256 upsampled ASPP channels and 48 low-level ones at 90 x 120.
void concat_case(benchmark::State& state, bool split) {
  dl::Generator gen(7);
  const int64_t n = 2, s = 90 * 120;
  const int64_t cs[2] = {256, 48};
  const dl::Tensor a = dev_randn({n, cs[0], s}, gen), b = dev_randn({n, cs[1], s}, gen);
  const dl::Tensor y = dev_randn({n, cs[0] + cs[1], s}, gen);
  const float* in[2] = {f32(a), f32(b)};
  float* out[2] = {f32(a), f32(b)};
  if (split)
    time_on_gpu(state, kRepeats, [&] { dl::cuda::split_channels(kDevice, f32(y), cs, 2, n, s, out); });
  else
    time_on_gpu(state, kRepeats, [&] { dl::cuda::concat_channels(kDevice, in, cs, 2, n, s, f32(y)); });
  set_bytes(state, 4.0 * 2 * n * (cs[0] + cs[1]) * s);
}

void batch_norm_infer_backward_case(benchmark::State& state, const ActCase& k) {
  dl::Generator gen(8);
  const int64_t s = k.h * k.w;
  const dl::Tensor x = dev_randn({k.n, k.c, s}, gen), dy = dev_randn({k.n, k.c, s}, gen), dx = dev_empty({k.n, k.c, s});
  const dl::Tensor gamma = dev_randn({k.c}, gen), mean = dev_randn({k.c}, gen);
  const dl::Tensor var = dl::Tensor::uniform({k.c}, 0.5, 2.0, gen).to(gpu());
  const dl::Tensor dg = dev_empty({k.c}), db = dev_empty({k.c});
  time_on_gpu(state, kRepeats, [&] {
    dl::cuda::batch_norm_backward_infer(kDevice, f32(x), f32(gamma), f32(dy), f32(mean), f32(var), k.n, k.c, s, 1e-5,
                                        f32(dx), f32(dg), f32(db));
  });
  set_bytes(state, 4.0 * 3 * k.numel());
}

// ---- cuDNN and cuBLAS ----

void conv_case(benchmark::State& state, const ConvCase& c, bool backward) {
  const dl::Conv2dParams p{{c.stride, c.stride}, {c.pad, c.pad}, {c.dilation, c.dilation}, 1};
  const int64_t ho = dl::window_output_size(c.h, static_cast<int>(c.r), c.stride, c.pad, c.dilation);
  const int64_t wo = dl::window_output_size(c.w, static_cast<int>(c.r), c.stride, c.pad, c.dilation);
  const dl::Conv2dGeometry g{c.n, c.c, c.h, c.w, c.k, c.r, c.r, ho, wo, p};
  dl::Generator gen(9);
  const dl::Tensor x = dev_randn({c.n, c.c, c.h, c.w}, gen), w = dev_randn({c.k, c.c, c.r, c.r}, gen);
  const dl::Tensor b = dev_randn({c.k}, gen), y = dev_randn({c.n, c.k, ho, wo}, gen);
  const dl::Tensor dx = dev_empty({c.n, c.c, c.h, c.w}), dw = dev_empty({c.k, c.c, c.r, c.r}), db = dev_empty({c.k});
  if (backward)
    time_on_gpu(state, kRepeats,
                [&] { dl::cuda::conv2d_backward(kDevice, g, f32(x), f32(w), f32(y), f32(dx), f32(dw), f32(db)); });
  else
    time_on_gpu(state, kRepeats, [&] { dl::cuda::conv2d_forward(kDevice, g, f32(x), f32(w), f32(b), f32(y)); });
  set_flops(state, dl::bench::conv_flops(c) * (backward ? 2 : 1));  // backward: data and weight gradients
}

void batch_norm_train_case(benchmark::State& state, const ActCase& k, bool backward) {
  dl::Generator gen(10);
  const int64_t s = k.h * k.w;
  const dl::Tensor x = dev_randn({k.n, k.c, s}, gen), y = dev_empty({k.n, k.c, s}), dy = dev_randn({k.n, k.c, s}, gen);
  const dl::Tensor dx = dev_empty({k.n, k.c, s});
  const dl::Tensor gamma = dev_randn({k.c}, gen), beta = dev_randn({k.c}, gen);
  const dl::Tensor mean = dev_empty({k.c}), invstd = dev_empty({k.c}), var = dev_empty({k.c});
  const dl::Tensor dg = dev_empty({k.c}), db = dev_empty({k.c});
  auto forward = [&] {
    dl::cuda::batch_norm_forward_train(kDevice, f32(x), f32(gamma), f32(beta), k.n, k.c, s, 1e-5, f32(y), f32(mean),
                                       f32(invstd), f32(var));
  };
  if (backward) {
    forward();
    time_on_gpu(state, kRepeats, [&] {
      dl::cuda::batch_norm_backward(kDevice, f32(x), f32(gamma), f32(dy), f32(mean), f32(invstd), k.n, k.c, s, 1e-5,
                                    f32(dx), f32(dg), f32(db));
    });
  } else {
    time_on_gpu(state, kRepeats, forward);
  }
  set_bytes(state, 4.0 * (backward ? 3 : 2) * k.numel());
}

void relu_case(benchmark::State& state, const ActCase& k, bool backward) {
  dl::Generator gen(11);
  const int64_t n = k.numel();
  const dl::Tensor x = dev_randn({n}, gen), y = dev_empty({n}), dy = dev_randn({n}, gen);
  dl::cuda::relu_forward(kDevice, f32(x), f32(y), n);
  if (backward)
    time_on_gpu(state, kRepeats, [&] { dl::cuda::relu_backward(kDevice, f32(y), f32(dy), f32(x), n); });
  else
    time_on_gpu(state, kRepeats, [&] { dl::cuda::relu_forward(kDevice, f32(x), f32(y), n); });
  set_bytes(state, 4.0 * (backward ? 3 : 2) * n);
}

// Max pooling 2 x 2 / 2 (the MNIST CNN), or average pooling over the whole map (the ASPP's image pooling).
void pool_case(benchmark::State& state, const ActCase& k, bool max, bool backward) {
  dl::Pool2dParams p;
  if (!max)
    p = {{static_cast<int>(k.h), static_cast<int>(k.w)}, {static_cast<int>(k.h), static_cast<int>(k.w)}, {0, 0}};
  const int64_t ho = dl::window_output_size(k.h, p.kernel[0], p.stride[0], 0, 1);
  const int64_t wo = dl::window_output_size(k.w, p.kernel[1], p.stride[1], 0, 1);
  const dl::Pool2dGeometry g{k.n, k.c, k.h, k.w, ho, wo, p};
  dl::Generator gen(12);
  const dl::Tensor x = dev_randn({k.n, k.c, k.h, k.w}, gen), dx = dev_empty({k.n, k.c, k.h, k.w});
  const dl::Tensor y = dev_empty({k.n, k.c, g.ho, g.wo}), dy = dev_randn({k.n, k.c, g.ho, g.wo}, gen);
  auto forward = [&] {
    if (max)
      dl::cuda::max_pool2d_forward(kDevice, g, f32(x), f32(y));
    else
      dl::cuda::avg_pool2d_forward(kDevice, g, f32(x), f32(y));
  };
  auto backward_call = [&] {
    if (max)
      dl::cuda::max_pool2d_backward(kDevice, g, f32(x), f32(y), f32(dy), f32(dx));
    else
      dl::cuda::avg_pool2d_backward(kDevice, g, f32(x), f32(y), f32(dy), f32(dx));
  };
  forward();
  if (backward)
    time_on_gpu(state, kRepeats, backward_call);
  else
    time_on_gpu(state, kRepeats, forward);
  const double in = static_cast<double>(k.numel()), out = static_cast<double>(k.n * k.c * g.ho * g.wo);
  set_bytes(state, 4.0 * (backward ? 2 * in + 2 * out : in + out));
}

// Softmax over the 11 classes of DeepLabv3+'s CamVid logits.
void softmax_case(benchmark::State& state, bool backward) {
  dl::Generator gen(13);
  const int64_t s = kCamH * kCamW;
  const dl::Tensor x = dev_randn({kCamN, kCamC, s}, gen), y = dev_empty({kCamN, kCamC, s});
  const dl::Tensor dy = dev_randn({kCamN, kCamC, s}, gen);
  dl::cuda::softmax_forward(kDevice, f32(x), f32(y), kCamN, kCamC, s, false);
  if (backward)
    time_on_gpu(state, kRepeats,
                [&] { dl::cuda::softmax_backward(kDevice, f32(y), f32(dy), f32(x), kCamN, kCamC, s, false); });
  else
    time_on_gpu(state, kRepeats, [&] { dl::cuda::softmax_forward(kDevice, f32(x), f32(y), kCamN, kCamC, s, false); });
  set_bytes(state, 4.0 * (backward ? 3 : 2) * kCamN * kCamC * s);
}

// The MNIST CNN's fully connected layer: 1024 x 1568 -> 10 (cuBLAS).
void linear_case(benchmark::State& state, bool backward) {
  const int64_t n = 1024, in = 32 * 7 * 7, out = 10;
  dl::Generator gen(14);
  const dl::Tensor x = dev_randn({n, in}, gen), w = dev_randn({out, in}, gen), b = dev_randn({out}, gen);
  const dl::Tensor y = dev_randn({n, out}, gen), dx = dev_empty({n, in}), dw = dev_empty({out, in}),
                   db = dev_empty({out});
  if (backward)
    time_on_gpu(state, kRepeats, [&] {
      dl::cuda::linear_backward(kDevice, f32(x), f32(w), f32(y), f32(dx), f32(dw), f32(db), n, in, out);
    });
  else
    time_on_gpu(state, kRepeats,
                [&] { dl::cuda::linear_forward(kDevice, f32(x), f32(w), f32(b), f32(y), n, in, out); });
  set_flops(state, 2.0 * n * in * out * (backward ? 2 : 1));
}

// One whole training step of the MNIST CNN on the GPU, as bench_main_step.cpp's CPU step: forward,
// cross-entropy (which validates the labels: one small device-to-host read), backward, Adam.
void mnist_train_step_case(benchmark::State& state) {
  const int64_t batch = state.range(0);
  dl::Generator gen(1);
  dl::nn::MnistCnn model({}, gen);
  model.to(gpu());
  dl::optim::Adam adam(model.parameter_refs(), {0.01});
  const dl::Tensor x = dl::Tensor::uniform({batch, 1, 28, 28}, 0.0, 1.0, gen).to(gpu());
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  for (auto& l : labels) l = static_cast<int32_t>(gen.below(10));
  const dl::Tensor y = dl::Tensor::from_vector<int32_t>({batch}, labels).to(gpu());
  dl::cuda::CudaAllocator::instance().reset_peak(kDevice);
  time_on_gpu(state, 1, [&] {
    dl::Tensor loss = dl::ops::cross_entropy(model(x), y);
    adam.zero_grad();
    loss.backward();
    adam.step();
  });
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["device_peak_MiB"] = dl::cuda::CudaAllocator::instance().stats(kDevice).peak_bytes / 1048576.0;
}

// One DeepLabv3+ (ResNet-18, 11 classes) training step on CUDA: SGDM as in train_camvid, the image size and
// batch of the arguments (the GPU kit runs 360x480 and 720x960 at batch 8).
void deeplab_train_step_case(benchmark::State& state) {
  const int64_t h = state.range(0), w = state.range(1), batch = state.range(2), classes = 11;
  dl::Generator gen(3);
  dl::nn::DeepLabV3Plus model({.num_classes = static_cast<int>(classes)}, gen);
  model.to(gpu());
  dl::optim::Sgdm sgdm(model.parameter_refs(), {.learning_rate = 0.003, .momentum = 0.9, .l2 = 0.005});
  const dl::Tensor x = dl::Tensor::randn({batch, 3, h, w}, gen).to(gpu());
  std::vector<int32_t> labels(static_cast<size_t>(batch * h * w));
  for (auto& l : labels) l = static_cast<int32_t>(gen.below(classes));
  const dl::Tensor y = dl::Tensor::from_vector<int32_t>({batch, h, w}, labels).to(gpu());
  dl::cuda::CudaAllocator::instance().reset_peak(kDevice);
  time_on_gpu(state, 1, [&] {
    dl::Tensor loss = dl::ops::cross_entropy(model(x), y, {{}, 255});
    sgdm.zero_grad();
    loss.backward();
    sgdm.step();
  });
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["device_peak_MiB"] = dl::cuda::CudaAllocator::instance().stats(kDevice).peak_bytes / 1048576.0;
}
#endif  // DL_WITH_CUDA

// A Cuda case: the call when libdl has its CUDA backend, a skip otherwise (same names everywhere, so that JSON
// files from machines with and without a GPU line up in scripts/compare_bench.py).
#if DL_WITH_CUDA
#define DL_CUDA_CASE(call) [=](benchmark::State& st) { run_cuda_case(st, [&](benchmark::State& state) { call; }); }
#else
#define DL_CUDA_CASE(call) \
  [](benchmark::State& st) { st.SkipWithError("no CUDA device: libdl was built without its CUDA backend"); }
#endif

benchmark::internal::Benchmark* add_cuda(const std::string& name, std::function<void(benchmark::State&)> fn) {
  return benchmark::RegisterBenchmark(("Cuda/" + name).c_str(), std::move(fn))
      ->Unit(benchmark::kMicrosecond)
      ->UseManualTime();
}

const bool registered = [] {
  const ActCase& block1 = act_cases()[0];
  for (const std::string op : {"fill", "add", "axpy_acc", "sum"})
    add_cuda(op + "/fwd/" + block1.name, DL_CUDA_CASE(elementwise_case(state, op, block1.numel())));
  for (const CeCase& ce : {CeCase{"deeplab.camvid", kCamN, kCamC, kCamH * kCamW}, CeCase{"mnist", 1024, 10, 1}})
    for (bool bwd : {false, true})
      add_cuda(std::string("cross_entropy/") + (bwd ? "bwd/" : "fwd/") + ce.name,
               DL_CUDA_CASE(cross_entropy_case(state, ce, bwd)));
  add_cuda("argmax/fwd/deeplab.camvid", DL_CUDA_CASE(argmax_case(state)));
  add_cuda("segmentation_counts/fwd/deeplab.camvid", DL_CUDA_CASE(segmentation_counts_case(state)));
  for (const std::string model : {"mnist", "deeplab"})
    for (const std::string op : {"sgdm", "adam"})
      add_cuda(op + "/update/" + model + ".params", DL_CUDA_CASE(optim_case(state, op, model)));
  for (const ResizeCase& rs : {ResizeCase{"deeplab.aspp_up", 2 * 256, 23, 30, 90, 120},
                               ResizeCase{"deeplab.logits_up", 2 * 11, 90, 120, 360, 480}})
    for (bool bwd : {false, true})
      add_cuda(std::string("resize_bilinear/") + (bwd ? "bwd/" : "fwd/") + rs.name,
               DL_CUDA_CASE(resize_case(state, rs, bwd)));
  add_cuda("concat/fwd/deeplab.decoder", DL_CUDA_CASE(concat_case(state, false)));
  add_cuda("split/fwd/deeplab.decoder", DL_CUDA_CASE(concat_case(state, true)));
  for (const ActCase& a : act_cases())
    add_cuda("batch_norm_infer/bwd/" + a.name, DL_CUDA_CASE(batch_norm_infer_backward_case(state, a)));

  const ActCase image_pool{"deeplab.aspp.image_pool", 2, 512, 23, 30};
  for (bool bwd : {false, true}) {
    const std::string dir = bwd ? "bwd/" : "fwd/";
    for (const ConvCase& c : conv_cases()) add_cuda("conv2d/" + dir + c.name, DL_CUDA_CASE(conv_case(state, c, bwd)));
    for (const ActCase& a : act_cases()) {
      add_cuda("batch_norm_train/" + dir + a.name, DL_CUDA_CASE(batch_norm_train_case(state, a, bwd)));
      add_cuda("relu/" + dir + a.name, DL_CUDA_CASE(relu_case(state, a, bwd)));
    }
    add_cuda("max_pool2d/" + dir + block1.name, DL_CUDA_CASE(pool_case(state, block1, true, bwd)));
    add_cuda("avg_pool2d/" + dir + image_pool.name, DL_CUDA_CASE(pool_case(state, image_pool, false, bwd)));
    add_cuda("softmax/" + dir + "deeplab.camvid", DL_CUDA_CASE(softmax_case(state, bwd)));
    add_cuda("linear/" + dir + "mnist.fc", DL_CUDA_CASE(linear_case(state, bwd)));
  }
  add_cuda("MnistTrainStep", DL_CUDA_CASE(mnist_train_step_case(state)))
      ->ArgName("batch")
      ->Arg(128)
      ->Arg(1024)
      ->Unit(benchmark::kMillisecond);
  add_cuda("DeepLabTrainStep", DL_CUDA_CASE(deeplab_train_step_case(state)))
      ->ArgNames({"h", "w", "batch"})
      ->Args({360, 480, 8})
      ->Args({720, 960, 8})
      ->Unit(benchmark::kMillisecond);
  return true;
}();

}  // namespace
#endif  // DL_BENCH_GPU_HALF
