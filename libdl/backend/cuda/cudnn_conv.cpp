// cuDNN 2-D convolution: forward (with bias) and backward (data, filter, bias) over NCHW float32 tensors,
// computed in the precision the front end resolved (Conv2dGeometry::math; Note [convolution math]), stride,
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
#include <set>
#include <string>
#include <vector>

#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/cudnn_utils.h"
#include "backend/cuda/low_precision.h"
#include "backend/cuda/runtime.h"
#include "dl/core/cuda.h"
#include "dl/core/error.h"

namespace dl::cuda {

// Note [cudnn algorithm cache]
// cuDNN offers several algorithms per direction of a convolution (forward, backward data, backward filter)
// whose speed and workspace depend on the shape. Choosing costs from microseconds (heuristics,
// cudnnGetConvolution*Algorithm_v7) to a timed run of every algorithm (cudnnFindConvolution*AlgorithmEx, which
// synchronises the device), so the choice is made once per key: device, the whole geometry (N C H W, K R S,
// Ho Wo, stride, padding, dilation, groups), the layout (NCHW or NHWC), direction, the math (Note [convolution math]:
// float32, TF32, bf16 or fp16), the deterministic flag, the search mode and the workspace limit (changing any setting
// therefore searches again rather than reusing a choice made under the old one). The map lives for the process behind a
// mutex. The search runs outside the lock: two threads meeting the same new shape may both search, and the first result
// stored wins. Entries are never modified or erased, so the hot path takes the lock for the lookup only and reads its
// entry afterwards without it.
//
// What is cached is the list of candidates, not one algorithm: every algorithm cuDNN reports with status
// success (and, under dl::deterministic(), determinism CUDNN_DETERMINISTIC) whose workspace fits the limit, in
// cuDNN's order (measured time, or heuristic rank), ending with a fallback appended when no candidate needs
// zero workspace: IMPLICIT_GEMM forward, ALGO_0 backward, or under dl::deterministic() the deterministic
// ALGO_1 backward (ALGO_0 accumulates with atomics). A candidate's workspace is what
// cudnnGetConvolution*WorkspaceSize answers for it with its math type, not the perf result's `memory` (the
// heuristics' figure is an estimate). Each run allocates the first candidate's workspace from the caching
// allocator (DeviceBuffer, released in stream order); when that throws (out of memory) it moves on to the next
// candidate needing less workspace, so a convolution does not fail for want of scratch memory while an
// algorithm with less workspace exists.
//
// The timed search gets its workspace the same way: the largest any algorithm asks for within the limit, or
// none when even that cannot be allocated (then only algorithms without workspace succeed). Such a search,
// cut short by a lack of memory, is used for that call but not cached: a later call searches again. The
// search runs on the operands of the first call and overwrites that call's output, which the real run then
// assigns.
//
// A candidate remembers the math type cuDNN searched it with (Note [convolution math]; forced to FMA for
// strict float32) and the descriptor is set to it before the candidate runs.
//
// Note [convolution math]
// Conv2dGeometry::math is resolved per call: kFp32 becomes TF32 while dl::cuda::allow_tf32() and plain float32
// otherwise; kTf32 is TF32 whatever the switch says; kBf16 and kFp16 are 16-bit operands with float32
// accumulation. The descriptors' math types: CUDNN_FMA_MATH for plain float32 (no tensor cores),
// CUDNN_DEFAULT_MATH for TF32 (which in cuDNN 9 lets float32 data use TF32 tensor cores on Ampere and later),
// CUDNN_TENSOR_OP_MATH for bf16 and fp16. For bf16 / fp16 the float32 operands are cast into 16-bit scratch
// (backend/cuda/low_precision.h), the tensor and filter descriptors say CUDNN_DATA_BFLOAT16 / CUDNN_DATA_HALF
// with a CUDNN_DATA_FLOAT convolution (cuDNN's PSEUDO_BFLOAT16 / PSEUDO_HALF configurations, whose output is
// in the data type too), and the 16-bit result is cast back into the float32 output: y, dx and dw carry the
// rounding of their 16-bit result on top of the operands'. Bias add and bias gradient stay float32.

namespace {

std::atomic<ConvAlgoSearch> search_setting{ConvAlgoSearch::kTimed};
std::atomic<size_t> workspace_limit_setting{size_t{1} << 30};

// The descriptors of one call, shared by the three directions (dy has y's descriptor, dx x's, dw w's).
struct ConvDescs {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
};

// The math type a search starts from (Note [convolution math]); `math` is resolved (kFp32 is strict float32).
cudnnMathType_t search_math(Precision math) {
  switch (math) {
    case Precision::kFp32:
      return CUDNN_FMA_MATH;
    case Precision::kTf32:
      return CUDNN_DEFAULT_MATH;
    case Precision::kBf16:
    case Precision::kFp16:
      return CUDNN_TENSOR_OP_MATH;
  }
  DL_THROW("cuDNN convolution: unknown precision ", static_cast<int>(math));
}

// The data type of x, w and y (and of dx, dw, dy) in cuDNN's terms.
cudnnDataType_t data_type(Precision math) {
  if (math == Precision::kBf16) return CUDNN_DATA_BFLOAT16;
  if (math == Precision::kFp16) return CUDNN_DATA_HALF;
  return CUDNN_DATA_FLOAT;
}

// Note [cuDNN channels-last convolution]: with g.channels_last x, y, dx and dy are NHWC and the filter KRSC
// (the front end passes the weight reordered, and reorders dw back): the layout of cuDNN's tensor-core
// engines on Volta and later, read and written without the transposes an NCHW call makes inside.
ConvDescs conv_descs(const Conv2dGeometry& g, Precision math) {
  const cudnnDataType_t t = data_type(math);
  const bool cl = g.channels_last;
  return ConvDescs{tensor_4d(g.n, g.c, g.h, g.w, cl, t), tensor_4d(g.n, g.k, g.ho, g.wo, cl, t),
                   filter_4d(g.k, g.c_per_group(), g.r, g.s, cl, t), convolution_2d(g.p, search_math(math))};
}

// The bias and ReLU of a fused forward (Note [fused conv relu on cuDNN]).
struct FusedBiasRelu {
  TensorDescriptor bias_desc;
  ActivationDescriptor relu;
  const float* bias;
};

// The two inputs and the output of one direction, in the data type of the descriptors; each direction below
// says which tensor is which. `fused`: the forward adds a bias and applies a ReLU in the same call.
struct ConvOperands {
  const void* a;
  const void* b;
  void* out;
  const FusedBiasRelu* fused = nullptr;
};

enum class Direction { kForward, kBackwardData, kBackwardFilter };

// a = x, b = w, out = y.
struct Forward {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  using Algo = cudnnConvolutionFwdAlgo_t;
  static constexpr Direction kDirection = Direction::kForward;
  static constexpr int kCount = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  static constexpr Algo kNoWorkspace = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  static constexpr Algo kDeterministic = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;  // no atomics
  static constexpr const char* kName = "forward";

  static cudnnStatus_t heuristic(cudnnHandle_t h, const ConvDescs& d, int* count, Perf* perf) {
    return DL_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7)(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), kCount,
                                                            count, perf);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const ConvDescs& d, const ConvOperands& o, int* count, Perf* perf,
                            void* ws, size_t bytes) {
    return blocking("cudnnFindConvolutionForwardAlgorithmEx (the timed algorithm search)", [&] {
      return DL_CUDNN(cudnnFindConvolutionForwardAlgorithmEx)(h, d.x.get(), o.a, d.w.get(), o.b, d.conv.get(),
                                                              d.y.get(), o.out, kCount, count, perf, ws, bytes);
    });
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvDescs& d, Algo algo, size_t* bytes) {
    return DL_CUDNN(cudnnGetConvolutionForwardWorkspaceSize)(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), algo,
                                                             bytes);
  }
  static cudnnStatus_t run(cudnnHandle_t h, const ConvDescs& d, const ConvOperands& o, Algo algo, void* ws,
                           size_t bytes) {
    if (o.fused) {  // y = relu(conv(x) + 0 * z + bias), with z = y (alpha2 = 0: z is not read)
      return DL_CUDNN(cudnnConvolutionBiasActivationForward)(
          h, &kOne, d.x.get(), o.a, d.w.get(), o.b, d.conv.get(), algo, ws, bytes, &kZero, d.y.get(), o.out,
          o.fused->bias_desc.get(), o.fused->bias, o.fused->relu.get(), d.y.get(), o.out);
    }
    return DL_CUDNN(cudnnConvolutionForward)(h, &kOne, d.x.get(), o.a, d.w.get(), o.b, d.conv.get(), algo, ws, bytes,
                                             &kZero, d.y.get(), o.out);
  }
};

// a = w, b = dy, out = dx.
struct BackwardData {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  using Algo = cudnnConvolutionBwdDataAlgo_t;
  static constexpr Direction kDirection = Direction::kBackwardData;
  static constexpr int kCount = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  static constexpr Algo kNoWorkspace = CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
  static constexpr Algo kDeterministic = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;  // no atomics
  static constexpr const char* kName = "backward data";

  static cudnnStatus_t heuristic(cudnnHandle_t h, const ConvDescs& d, int* count, Perf* perf) {
    return DL_CUDNN(cudnnGetConvolutionBackwardDataAlgorithm_v7)(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(),
                                                                 kCount, count, perf);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const ConvDescs& d, const ConvOperands& o, int* count, Perf* perf,
                            void* ws, size_t bytes) {
    return blocking("cudnnFindConvolutionBackwardDataAlgorithmEx (the timed algorithm search)", [&] {
      return DL_CUDNN(cudnnFindConvolutionBackwardDataAlgorithmEx)(h, d.w.get(), o.a, d.y.get(), o.b, d.conv.get(),
                                                                   d.x.get(), o.out, kCount, count, perf, ws, bytes);
    });
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvDescs& d, Algo algo, size_t* bytes) {
    return DL_CUDNN(cudnnGetConvolutionBackwardDataWorkspaceSize)(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(),
                                                                  algo, bytes);
  }
  static cudnnStatus_t run(cudnnHandle_t h, const ConvDescs& d, const ConvOperands& o, Algo algo, void* ws,
                           size_t bytes) {
    return DL_CUDNN(cudnnConvolutionBackwardData)(h, &kOne, d.w.get(), o.a, d.y.get(), o.b, d.conv.get(), algo, ws,
                                                  bytes, &kZero, d.x.get(), o.out);
  }
};

// a = x, b = dy, out = dw.
struct BackwardFilter {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  using Algo = cudnnConvolutionBwdFilterAlgo_t;
  static constexpr Direction kDirection = Direction::kBackwardFilter;
  static constexpr int kCount = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  static constexpr Algo kNoWorkspace = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0;
  static constexpr Algo kDeterministic = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;  // no atomics
  static constexpr const char* kName = "backward filter";

  static cudnnStatus_t heuristic(cudnnHandle_t h, const ConvDescs& d, int* count, Perf* perf) {
    return DL_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithm_v7)(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(),
                                                                   kCount, count, perf);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const ConvDescs& d, const ConvOperands& o, int* count, Perf* perf,
                            void* ws, size_t bytes) {
    return blocking("cudnnFindConvolutionBackwardFilterAlgorithmEx (the timed algorithm search)", [&] {
      return DL_CUDNN(cudnnFindConvolutionBackwardFilterAlgorithmEx)(h, d.x.get(), o.a, d.y.get(), o.b, d.conv.get(),
                                                                     d.w.get(), o.out, kCount, count, perf, ws, bytes);
    });
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvDescs& d, Algo algo, size_t* bytes) {
    return DL_CUDNN(cudnnGetConvolutionBackwardFilterWorkspaceSize)(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(),
                                                                    algo, bytes);
  }
  static cudnnStatus_t run(cudnnHandle_t h, const ConvDescs& d, const ConvOperands& o, Algo algo, void* ws,
                           size_t bytes) {
    return DL_CUDNN(cudnnConvolutionBackwardFilter)(h, &kOne, d.x.get(), o.a, d.y.get(), o.b, d.conv.get(), algo, ws,
                                                    bytes, &kZero, d.w.get(), o.out);
  }
};

// How this call searches, read once per call so that the key, the descriptors and the search agree.
struct SearchSettings {
  Precision math;  // resolved (Note [convolution math]): kFp32 is strict float32 here
  bool deterministic;
  bool timed;
  size_t limit;
};

SearchSettings current_settings(Precision requested) {
  const Precision math = requested == Precision::kFp32 && allow_tf32() ? Precision::kTf32 : requested;
  return {math, deterministic(), conv_algo_search() == ConvAlgoSearch::kTimed, conv_workspace_limit()};
}

struct Candidate {
  int algo;          // the direction's cudnnConvolution*Algo_t
  size_t workspace;  // bytes
  cudnnMathType_t math;
};

struct ConvKey {
  int device;
  Direction direction;
  bool channels_last;
  std::array<int64_t, 16> geometry;
  Precision math;
  bool deterministic;
  bool timed;
  size_t limit;
  auto operator<=>(const ConvKey&) const = default;
};

ConvKey conv_key(int device, const Conv2dGeometry& g, Direction direction, const SearchSettings& s) {
  const Conv2dParams& p = g.p;
  return ConvKey{device,
                 direction,
                 g.channels_last,
                 {g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.ho, g.wo, p.stride[0], p.stride[1], p.padding[0], p.padding[1],
                  p.dilation[0], p.dilation[1], p.groups},
                 s.math,
                 s.deterministic,
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

// The workspace `algo` needs with `math` set on the descriptor, asked of cuDNN; false when cuDNN says the
// algorithm does not support this configuration.
template <typename D>
bool workspace_of(cudnnHandle_t h, const ConvDescs& d, int algo, cudnnMathType_t math, size_t* bytes) {
  DL_CUDNN_CHECK(DL_CUDNN(cudnnSetConvolutionMathType)(d.conv.get(), math));
  return D::workspace(h, d, static_cast<typename D::Algo>(algo), bytes) == CUDNN_STATUS_SUCCESS;
}

// cuDNN's ranked list: timed (Find*Ex, with a workspace from the caching allocator) or heuristic. `complete`
// turns false when the timed search had to run without the workspace it wanted (out of memory).
template <typename D>
int ranked_algorithms(const DeviceContext& ctx, const ConvDescs& d, const ConvOperands& o, const SearchSettings& s,
                      typename D::Perf* perf, bool* complete) {
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
      *complete = false;
    }
  }
  DL_CUDNN_CHECK(D::find(ctx.cudnn, d, o, &count, perf, ws.get(), bytes));
  return count;
}

// Appends the direction's fallback (Note [cudnn algorithm cache]) unless a candidate already needs no
// workspace or the fallback is listed.
template <typename D>
void append_fallback(cudnnHandle_t h, const ConvDescs& d, const SearchSettings& s, std::vector<Candidate>& c) {
  const int algo = static_cast<int>(s.deterministic ? D::kDeterministic : D::kNoWorkspace);
  const bool listed =
      std::any_of(c.begin(), c.end(), [algo](const Candidate& e) { return e.workspace == 0 || e.algo == algo; });
  const cudnnMathType_t math = search_math(s.math);
  size_t bytes = 0;
  if (listed || !workspace_of<D>(h, d, algo, math, &bytes) || bytes > s.limit) return;
  c.push_back({algo, bytes, math});
}

std::string geometry_text(const Conv2dGeometry& g) {
  return detail::str_cat("x ", g.n, "x", g.c, "x", g.h, "x", g.w, ", w ", g.k, "x", g.c_per_group(), "x", g.r, "x", g.s,
                         ", groups ", g.p.groups);
}

struct SearchResult {
  std::vector<Candidate> candidates;
  bool complete = true;  // false: cut short by a lack of memory, not to be cached
};

template <typename D>
SearchResult search(const DeviceContext& ctx, const Conv2dGeometry& g, const ConvDescs& d, const ConvOperands& o,
                    const SearchSettings& s) {
  // An earlier direction of the same call may have left its candidate's math type on the descriptor.
  DL_CUDNN_CHECK(DL_CUDNN(cudnnSetConvolutionMathType)(d.conv.get(), search_math(s.math)));
  typename D::Perf perf[D::kCount] = {};
  SearchResult r;
  const int count = ranked_algorithms<D>(ctx, d, o, s, perf, &r.complete);
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (s.deterministic && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    // Strict float32 keeps FMA whatever cuDNN reports; otherwise the math type the algorithm was ranked with.
    const cudnnMathType_t math = s.math == Precision::kFp32 ? CUDNN_FMA_MATH : perf[i].mathType;
    size_t bytes = 0;
    if (!workspace_of<D>(ctx.cudnn, d, static_cast<int>(perf[i].algo), math, &bytes) || bytes > s.limit) continue;
    r.candidates.push_back({static_cast<int>(perf[i].algo), bytes, math});
  }
  append_fallback<D>(ctx.cudnn, d, s, r.candidates);
  DL_CHECK(!r.candidates.empty(), "cuDNN convolution ", D::kName, ": no ",
           s.deterministic ? "deterministic algorithm (dl::set_deterministic is on)" : "algorithm",
           " supports this geometry (", geometry_text(g), ") in ", precision_name(s.math),
           " within the workspace limit of ", s.limit, " bytes");
  return r;
}

// The candidates of this shape and settings: cached, or searched now (Note [cudnn algorithm cache]). A search
// cut short by a lack of memory is returned through `uncached` and not stored.
template <typename D>
const std::vector<Candidate>& candidates(const DeviceContext& ctx, const Conv2dGeometry& g, const ConvDescs& d,
                                         const ConvOperands& o, const SearchSettings& s,
                                         std::vector<Candidate>& uncached) {
  const ConvKey key = conv_key(ctx.device, g, D::kDirection, s);
  AlgoCache& cache = algo_cache();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    const auto it = cache.entries.find(key);
    if (it != cache.entries.end()) return it->second;
  }
  SearchResult found = search<D>(ctx, g, d, o, s);  // unlocked: a timed search synchronises the device
  if (!found.complete) {
    uncached = std::move(found.candidates);
    return uncached;
  }
  std::lock_guard<std::mutex> lock(cache.mu);
  return cache.entries.emplace(key, std::move(found.candidates)).first->second;  // a racing search stored first wins
}

// Runs the first candidate whose workspace can be allocated, moving to smaller workspaces on out of memory.
template <typename D>
void run_direction(const DeviceContext& ctx, const Conv2dGeometry& g, const ConvDescs& d, const ConvOperands& o,
                   const SearchSettings& s) {
  std::vector<Candidate> uncached;
  const std::vector<Candidate>& list = candidates<D>(ctx, g, d, o, s, uncached);
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
    DL_CUDNN_CHECK(DL_CUDNN(cudnnSetConvolutionMathType)(d.conv.get(), c.math));
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

// The forward geometries (and settings) whose fused call failed with every candidate: they go straight to
// the separate passes (Note [fused conv relu on cuDNN]) rather than meeting the same refusals on every step.
struct FusedRefusals {
  std::mutex mu;
  std::set<ConvKey> keys;
};
FusedRefusals& fused_refusals() {
  static FusedRefusals r;
  return r;
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

// Note [convolution math]: for bf16 / fp16, x and w go in as 16-bit copies and y comes back through a 16-bit
// scratch; the bias is added to the float32 y.
// Note [fused conv relu on cuDNN]: with g.relu (ops::conv2d_relu) and a bias in float32 or TF32, the whole
// y = relu(conv(x, w) + b) is one cudnnConvolutionBiasActivationForward, with the algorithm the convolution's
// search chose (cuDNN takes any forward algorithm with a ReLU; one it refuses at launch passes to the next
// candidate, and a failure with all of them falls back to the separate passes, for that geometry from then
// on). Otherwise (16-bit math, whose result is cast back into float32 before the float32 bias, or no bias)
// the bias add and the ReLU follow the convolution as separate passes. cuDNN's ReLU propagates NaN.
void conv2d_forward(int device, const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  const int64_t y_count = g.n * g.k * g.ho * g.wo;
  if (y_count == 0) return;  // nothing to write
  const SearchSettings s = current_settings(g.math);
  check_math_supported(ctx, s.math, "conv2d");
  const ConvDescs d = conv_descs(g, s.math);  // each candidate sets its math type on d.conv
  const MathInput xm(device, s.math, x, g.n * g.c * g.h * g.w);
  const MathInput wm(device, s.math, w, g.k * g.c_per_group() * g.r * g.s);
  MathOutput ym(device, s.math, y, y_count);
  bool fuse = g.relu && b != nullptr && !is_16bit(s.math);
  const ConvKey key = conv_key(device, g, Direction::kForward, s);
  FusedRefusals& refusals = fused_refusals();
  if (fuse) {
    std::lock_guard<std::mutex> lock(refusals.mu);
    fuse = refusals.keys.count(key) == 0;
  }
  if (fuse) {
    // The candidates were ranked for the plain convolution: should the fused call fail with every one of
    // them (a deterministic list may hold one; or a workspace could not be had), the separate passes below
    // run instead, now and for this geometry from then on.
    const FusedBiasRelu fused{tensor_nchw(1, g.k, 1, 1), activation(CUDNN_ACTIVATION_RELU), b};
    try {
      run_direction<Forward>(ctx, g, d, ConvOperands{xm.get(), wm.get(), ym.get(), &fused}, s);
    } catch (const dl::Error&) {
      fuse = false;
      std::lock_guard<std::mutex> lock(refusals.mu);
      refusals.keys.insert(key);
    }
  }
  if (!fuse) run_direction<Forward>(ctx, g, d, ConvOperands{xm.get(), wm.get(), ym.get()}, s);
  ym.finish();
  if (fuse) return;
  if (b != nullptr) {
    const TensorDescriptor bias = tensor_nchw(1, g.k, 1, 1), yf = tensor_4d(g.n, g.k, g.ho, g.wo, g.channels_last);
    DL_CUDNN_CHECK(DL_CUDNN(cudnnAddTensor)(ctx.cudnn, &kOne, bias.get(), b, &kOne, yf.get(), y));
  }
  if (g.relu) relu_forward(device, y, y, y_count);
}

// Note [convolution math]: dy is cast once for both directions, w for the data gradient, x for the filter
// gradient; db is the float32 sum of the float32 dy.
void conv2d_backward(int device, const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db) {
  DeviceGuard guard(device);
  DeviceContext& ctx = context(device);
  const int64_t x_count = g.n * g.c * g.h * g.w, w_count = g.k * g.c_per_group() * g.r * g.s,
                y_count = g.n * g.k * g.ho * g.wo;
  if (y_count == 0) {  // no output: every gradient is a sum of nothing
    zero_output(device, dx, x_count);
    zero_output(device, dw, w_count);
    zero_output(device, db, g.k);
    return;
  }
  const SearchSettings s = current_settings(g.math);
  check_math_supported(ctx, s.math, "conv2d backward");
  if (db != nullptr) {
    const TensorDescriptor bias = tensor_nchw(1, g.k, 1, 1), dyf = tensor_4d(g.n, g.k, g.ho, g.wo, g.channels_last);
    DL_CUDNN_CHECK(DL_CUDNN(cudnnConvolutionBackwardBias)(ctx.cudnn, &kOne, dyf.get(), dy, &kZero, bias.get(), db));
  }
  if (dx == nullptr && dw == nullptr) return;
  const ConvDescs d = conv_descs(g, s.math);  // each candidate sets its math type on d.conv
  const MathInput dym(device, s.math, dy, y_count);
  if (dx != nullptr) {
    const MathInput wm(device, s.math, w, w_count);
    MathOutput dxm(device, s.math, dx, x_count);
    run_direction<BackwardData>(ctx, g, d, ConvOperands{wm.get(), dym.get(), dxm.get()}, s);
    dxm.finish();
  }
  if (dw != nullptr) {
    const MathInput xm(device, s.math, x, x_count);
    MathOutput dwm(device, s.math, dw, w_count);
    run_direction<BackwardFilter>(ctx, g, d, ConvOperands{xm.get(), dym.get(), dwm.get()}, s);
    dwm.finish();
  }
}

}  // namespace dl::cuda
