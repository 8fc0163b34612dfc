// cuDNN 2-D convolution: forward (with bias) and backward (data, filter, bias) over NCHW float32, stride,
// padding, dilation and groups passed natively to cuDNN, the algorithm chosen once per shape and kept with
// its fallbacks (Note [cudnn algorithm cache]). Outputs are assigned (beta = 0), never accumulated.
#include <algorithm>
#include <array>
#include <atomic>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/cudnn_utils.h"
#include "backend/cuda/runtime.h"
#include "dl/core/error.h"

namespace dl::cuda {

// Note [cudnn algorithm cache]
// cuDNN offers several algorithms per direction of a convolution (forward, backward data, backward filter)
// whose speed and workspace depend on the shape. Choosing costs from microseconds (heuristics,
// cudnnGetConvolution*Algorithm_v7) to a timed run of every algorithm (cudnnFindConvolution*AlgorithmEx, which
// synchronises the device), so the choice is made once per key: device, the whole geometry (N C H W, K R S,
// Ho Wo, stride, padding, dilation, groups), direction, the TF32 flag, the search mode and the workspace limit
// (changing either setting therefore searches again rather than reusing a choice made under the old one).
// The map lives for the process behind a mutex. The search runs outside the lock: two threads meeting the same
// new shape may both search, and the first result stored wins. Entries are never modified or erased, so the
// hot path takes the lock for the lookup only and reads its entry afterwards without it.
//
// What is cached is the list of candidates, not one algorithm: every algorithm cuDNN reports with status
// success whose workspace fits the limit, in cuDNN's order (measured time, or heuristic rank), ending with one
// that needs no workspace (IMPLICIT_GEMM forward, ALGO_0 backward), appended when the list has none. Each run
// allocates the first candidate's workspace from the caching allocator (DeviceBuffer, released in stream
// order); when that throws (out of memory) it moves on to the next candidate needing less workspace, so a
// convolution does not fail for want of scratch memory while an algorithm without workspace exists.
//
// The timed search gets its workspace the same way: the largest any algorithm asks for within the limit, or
// none when even that cannot be allocated (then only algorithms without workspace succeed). It runs on the
// tensors of the first call and overwrites that call's output, which the real run then assigns.
//
// Math: CUDNN_FMA_MATH (plain float32) unless allow_tf32(); then CUDNN_DEFAULT_MATH, which in cuDNN 9 lets
// TF32 tensor cores be used on Ampere and later. A candidate remembers the math type cuDNN searched it with
// (forced to FMA without TF32) and the descriptor is set to it before the candidate runs.

namespace {

std::atomic<ConvAlgoSearch> search_setting{ConvAlgoSearch::kTimed};
std::atomic<size_t> workspace_limit_setting{size_t{1} << 30};

// The descriptors of one call, shared by the three directions (dy has y's descriptor, dx x's, dw w's).
struct ConvDescs {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
};

// The math type a search starts from: TF32 allowed or plain float32 (Note [cudnn algorithm cache]).
cudnnMathType_t search_math(bool tf32) { return tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH; }

ConvDescs conv_descs(const Conv2dGeometry& g, bool tf32) {
  return ConvDescs{tensor_nchw(g.n, g.c, g.h, g.w), tensor_nchw(g.n, g.k, g.ho, g.wo),
                   filter_kcrs(g.k, g.c_per_group(), g.r, g.s), convolution_2d(g.p, search_math(tf32))};
}

// The two inputs and the output of one direction; each direction below says which tensor is which.
struct ConvOperands {
  const float* a;
  const float* b;
  float* out;
};

enum class Direction { kForward, kBackwardData, kBackwardFilter };

// a = x, b = w, out = y.
struct Forward {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  using Algo = cudnnConvolutionFwdAlgo_t;
  static constexpr Direction kDirection = Direction::kForward;
  static constexpr int kCount = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  static constexpr Algo kNoWorkspace = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  static constexpr const char* kName = "forward";

  static cudnnStatus_t heuristic(cudnnHandle_t h, const ConvDescs& d, int* count, Perf* perf) {
    return cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), kCount, count,
                                                  perf);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const ConvDescs& d, const ConvOperands& o, int* count, Perf* perf,
                            void* ws, size_t bytes) {
    return cudnnFindConvolutionForwardAlgorithmEx(h, d.x.get(), o.a, d.w.get(), o.b, d.conv.get(), d.y.get(), o.out,
                                                  kCount, count, perf, ws, bytes);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvDescs& d, Algo algo, size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), algo, bytes);
  }
  static cudnnStatus_t run(cudnnHandle_t h, const ConvDescs& d, const ConvOperands& o, Algo algo, void* ws,
                           size_t bytes) {
    return cudnnConvolutionForward(h, &kOne, d.x.get(), o.a, d.w.get(), o.b, d.conv.get(), algo, ws, bytes, &kZero,
                                   d.y.get(), o.out);
  }
};

// a = w, b = dy, out = dx.
struct BackwardData {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  using Algo = cudnnConvolutionBwdDataAlgo_t;
  static constexpr Direction kDirection = Direction::kBackwardData;
  static constexpr int kCount = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  static constexpr Algo kNoWorkspace = CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
  static constexpr const char* kName = "backward data";

  static cudnnStatus_t heuristic(cudnnHandle_t h, const ConvDescs& d, int* count, Perf* perf) {
    return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), kCount, count,
                                                       perf);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const ConvDescs& d, const ConvOperands& o, int* count, Perf* perf,
                            void* ws, size_t bytes) {
    return cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w.get(), o.a, d.y.get(), o.b, d.conv.get(), d.x.get(),
                                                       o.out, kCount, count, perf, ws, bytes);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvDescs& d, Algo algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), algo, bytes);
  }
  static cudnnStatus_t run(cudnnHandle_t h, const ConvDescs& d, const ConvOperands& o, Algo algo, void* ws,
                           size_t bytes) {
    return cudnnConvolutionBackwardData(h, &kOne, d.w.get(), o.a, d.y.get(), o.b, d.conv.get(), algo, ws, bytes, &kZero,
                                        d.x.get(), o.out);
  }
};

// a = x, b = dy, out = dw.
struct BackwardFilter {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  using Algo = cudnnConvolutionBwdFilterAlgo_t;
  static constexpr Direction kDirection = Direction::kBackwardFilter;
  static constexpr int kCount = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  static constexpr Algo kNoWorkspace = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0;
  static constexpr const char* kName = "backward filter";

  static cudnnStatus_t heuristic(cudnnHandle_t h, const ConvDescs& d, int* count, Perf* perf) {
    return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), kCount,
                                                         count, perf);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const ConvDescs& d, const ConvOperands& o, int* count, Perf* perf,
                            void* ws, size_t bytes) {
    return cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x.get(), o.a, d.y.get(), o.b, d.conv.get(), d.w.get(),
                                                         o.out, kCount, count, perf, ws, bytes);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvDescs& d, Algo algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), algo,
                                                          bytes);
  }
  static cudnnStatus_t run(cudnnHandle_t h, const ConvDescs& d, const ConvOperands& o, Algo algo, void* ws,
                           size_t bytes) {
    return cudnnConvolutionBackwardFilter(h, &kOne, d.x.get(), o.a, d.y.get(), o.b, d.conv.get(), algo, ws, bytes,
                                          &kZero, d.w.get(), o.out);
  }
};

// How this call searches, read once per call so that the key, the descriptors and the search agree.
struct SearchSettings {
  bool timed;
  bool tf32;
  size_t limit;
};

SearchSettings current_settings() {
  return {conv_algo_search() == ConvAlgoSearch::kTimed, allow_tf32(), conv_workspace_limit()};
}

struct Candidate {
  int algo;          // the direction's cudnnConvolution*Algo_t
  size_t workspace;  // bytes
  cudnnMathType_t math;
};

struct ConvKey {
  int device;
  Direction direction;
  std::array<int64_t, 16> geometry;
  bool tf32;
  bool timed;
  size_t limit;
  auto operator<=>(const ConvKey&) const = default;
};

ConvKey conv_key(int device, const Conv2dGeometry& g, Direction direction, const SearchSettings& s) {
  const Conv2dParams& p = g.p;
  return ConvKey{device,
                 direction,
                 {g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.ho, g.wo, p.stride[0], p.stride[1], p.padding[0], p.padding[1],
                  p.dilation[0], p.dilation[1], p.groups},
                 s.tf32,
                 s.timed,
                 s.limit};
}

struct AlgoCache {
  std::mutex mu;
  std::map<ConvKey, std::vector<Candidate>> entries;
};

AlgoCache& algo_cache() {
  static AlgoCache cache;
  return cache;
}

// The largest workspace any algorithm of the direction asks for, within the limit. An algorithm that does not
// support the geometry answers with an error status: it is left out of the size, not an error.
template <typename D>
size_t largest_workspace(cudnnHandle_t h, const ConvDescs& d, size_t limit) {
  size_t largest = 0;
  for (int a = 0; a < D::kCount; ++a) {
    size_t bytes = 0;
    if (D::workspace(h, d, static_cast<typename D::Algo>(a), &bytes) == CUDNN_STATUS_SUCCESS && bytes <= limit) {
      largest = std::max(largest, bytes);
    }
  }
  return largest;
}

// Asks cuDNN for its ranked list: timed (Find*Ex, with a workspace from the caching allocator) or heuristic.
template <typename D>
int ranked_algorithms(const DeviceContext& ctx, const ConvDescs& d, const ConvOperands& o, const SearchSettings& s,
                      typename D::Perf* perf) {
  int count = 0;
  if (!s.timed) {
    DL_CUDNN_CHECK(D::heuristic(ctx.cudnn, d, &count, perf));
    return count;
  }
  size_t bytes = largest_workspace<D>(ctx.cudnn, d, s.limit);
  DeviceBuffer ws;
  if (bytes > 0) {
    try {
      ws = DeviceBuffer(bytes, ctx.device);
    } catch (const dl::Error&) {
      bytes = 0;  // out of memory: time the algorithms that need no workspace (Note [cudnn algorithm cache])
    }
  }
  DL_CUDNN_CHECK(D::find(ctx.cudnn, d, o, &count, perf, ws.get(), bytes));
  return count;
}

// Appends the direction's algorithm without workspace unless a candidate already needs none (or it is listed).
template <typename D>
void append_no_workspace(cudnnHandle_t h, const ConvDescs& d, const SearchSettings& s, std::vector<Candidate>& c) {
  const bool listed = std::any_of(c.begin(), c.end(), [](const Candidate& e) {
    return e.workspace == 0 || e.algo == static_cast<int>(D::kNoWorkspace);
  });
  size_t bytes = 0;
  if (listed || D::workspace(h, d, D::kNoWorkspace, &bytes) != CUDNN_STATUS_SUCCESS || bytes > s.limit) return;
  c.push_back({static_cast<int>(D::kNoWorkspace), bytes, search_math(s.tf32)});
}

template <typename D>
std::vector<Candidate> search(const DeviceContext& ctx, ConvDescs& d, const ConvOperands& o, const SearchSettings& s) {
  // An earlier direction of the same call may have left its candidate's math type on the descriptor.
  DL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), search_math(s.tf32)));
  typename D::Perf perf[D::kCount] = {};
  const int count = ranked_algorithms<D>(ctx, d, o, s, perf);
  std::vector<Candidate> candidates;
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > s.limit) continue;
    candidates.push_back({static_cast<int>(perf[i].algo), perf[i].memory, s.tf32 ? perf[i].mathType : CUDNN_FMA_MATH});
  }
  append_no_workspace<D>(ctx.cudnn, d, s, candidates);
  DL_CHECK(!candidates.empty(), "cuDNN convolution ", D::kName,
           ": no algorithm supports this geometry within the workspace limit of ", s.limit, " bytes");
  return candidates;
}

// The cached candidates of this shape, searching on first use (Note [cudnn algorithm cache]).
template <typename D>
const std::vector<Candidate>& candidates(const DeviceContext& ctx, const Conv2dGeometry& g, ConvDescs& d,
                                         const ConvOperands& o, const SearchSettings& s) {
  const ConvKey key = conv_key(ctx.device, g, D::kDirection, s);
  AlgoCache& cache = algo_cache();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    const auto it = cache.entries.find(key);
    if (it != cache.entries.end()) return it->second;
  }
  std::vector<Candidate> found = search<D>(ctx, d, o, s);  // unlocked: a timed search synchronises the device
  std::lock_guard<std::mutex> lock(cache.mu);
  return cache.entries.emplace(key, std::move(found)).first->second;  // a racing search stored first wins
}

// Runs the first candidate whose workspace can be allocated, moving to smaller workspaces on out of memory.
template <typename D>
void run_direction(const DeviceContext& ctx, const Conv2dGeometry& g, ConvDescs& d, const ConvOperands& o,
                   const SearchSettings& s) {
  const std::vector<Candidate>& list = candidates<D>(ctx, g, d, o, s);
  size_t failed = std::numeric_limits<size_t>::max();  // smallest workspace that could not be allocated
  for (size_t i = 0; i < list.size(); ++i) {
    const Candidate& c = list[i];
    if (c.workspace >= failed) continue;
    DeviceBuffer ws;
    if (c.workspace > 0) {
      try {
        ws = DeviceBuffer(c.workspace, ctx.device);
      } catch (const dl::Error&) {
        const bool smaller_left = std::any_of(list.begin() + i + 1, list.end(),
                                              [&](const Candidate& e) { return e.workspace < c.workspace; });
        if (!smaller_left) throw;
        failed = c.workspace;
        continue;
      }
    }
    DL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), c.math));
    const cudnnStatus_t st = D::run(ctx.cudnn, d, o, static_cast<typename D::Algo>(c.algo), ws.get(), c.workspace);
    if (st == CUDNN_STATUS_SUCCESS) return;
    // A listed algorithm may still refuse this configuration at launch (heuristic lists are not always
    // exact): try the next one, and report the last refusal.
    if (i + 1 == list.size()) {
      const std::string call = std::string("cuDNN convolution ") + D::kName + " with its last candidate algorithm";
      throw_cudnn_error(st, call.c_str(), __FILE__, __LINE__);
    }
  }
  DL_THROW("cuDNN convolution ", D::kName, ": no candidate algorithm could run");
}

// Assigns zeros to an output that is not empty (the gradients of an empty batch).
void zero_output(int device, float* p, int64_t count) {
  if (p != nullptr && count > 0) fill(device, p, count, 0.0f);
}

}  // namespace

void set_conv_algo_search(ConvAlgoSearch s) { search_setting.store(s); }
ConvAlgoSearch conv_algo_search() { return search_setting.load(); }
void set_conv_workspace_limit(size_t bytes) { workspace_limit_setting.store(bytes); }
size_t conv_workspace_limit() { return workspace_limit_setting.load(); }

void conv2d_forward(int device, const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  if (g.n * g.k * g.ho * g.wo == 0) return;  // nothing to write
  const SearchSettings s = current_settings();
  ConvDescs d = conv_descs(g, s.tf32);  // not const: each candidate sets its math type
  run_direction<Forward>(ctx, g, d, ConvOperands{x, w, y}, s);
  if (b != nullptr) {
    const TensorDescriptor bias = tensor_nchw(1, g.k, 1, 1);
    DL_CUDNN_CHECK(cudnnAddTensor(ctx.cudnn, &kOne, bias.get(), b, &kOne, d.y.get(), y));
  }
}

void conv2d_backward(int device, const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  if (g.n * g.k * g.ho * g.wo == 0) {  // no output: every gradient is a sum of nothing
    zero_output(device, dx, g.n * g.c * g.h * g.w);
    zero_output(device, dw, g.k * g.c_per_group() * g.r * g.s);
    zero_output(device, db, g.k);
    return;
  }
  const SearchSettings s = current_settings();
  ConvDescs d = conv_descs(g, s.tf32);  // not const: each candidate sets its math type
  if (db != nullptr) {
    const TensorDescriptor bias = tensor_nchw(1, g.k, 1, 1);
    DL_CUDNN_CHECK(cudnnConvolutionBackwardBias(ctx.cudnn, &kOne, d.y.get(), dy, &kZero, bias.get(), db));
  }
  if (dx != nullptr) run_direction<BackwardData>(ctx, g, d, ConvOperands{w, dy, dx}, s);
  if (dw != nullptr) run_direction<BackwardFilter>(ctx, g, d, ConvOperands{x, dy, dw}, s);
}

}  // namespace dl::cuda
