// Op-level tracing: while a Tracer is active on a thread, every op front end that has a form outside
// libdl (ONNX, dl/nn/onnx.h) tells it what it computed: the op's name, its inputs, its output and its
// typed parameters. An exporter replays these events as a graph, whatever C++ the model's forward ran.
//
// Each hook is one branch when no tracer is active (`if (auto* t = detail::active_tracer())`).
// Composite front ends (matmul, upsample_nearest2d, max/min along a dimension, index_select,
// group_norm) pause the tracer around the ops they are built from and report themselves as one event;
// the others built of traced ops (layer_norm, var, mean of all, flatten, select, stack) are traced as
// their parts. Ops without a hook leave no event: an exporter must find
// their outputs by other means (dl::nn::export_onnx marks the example inputs as requiring grad and
// refuses any tensor it was not told about that carries autograd history, naming the op that made it).
// A few ops that no exporter maps (the comparisons, where, argmax, gather) report events too, so that
// an output of theirs that depends on the inputs is refused rather than taken for a constant.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "dl/core/params.h"
#include "dl/core/tensor.h"

namespace dl::ops {

// The parameters of one traced op; which fields an op fills is said beside its hook.
struct TraceAttrs {
  std::vector<int64_t> ints;  // dims, a permutation, a shape, slice start/end/step, output_padding
  std::vector<double> reals;  // a scalar operand, eps, slope, alpha, clamp bounds
  bool flag = false;          // keepdim, a fused ReLU, log (log_softmax), a scalar operand present
  Conv2dParams conv{};
  Pool2dParams pool{};

  static TraceAttrs of_ints(std::vector<int64_t> ints, bool flag = false, std::vector<double> reals = {}) {
    TraceAttrs a;
    a.ints = std::move(ints);
    a.flag = flag;
    a.reals = std::move(reals);
    return a;
  }
  static TraceAttrs of_reals(std::vector<double> reals, bool flag = false) {
    TraceAttrs a;
    a.reals = std::move(reals);
    a.flag = flag;
    return a;
  }
  static TraceAttrs of_conv(const Conv2dParams& conv, std::vector<int64_t> ints = {}) {
    TraceAttrs a;
    a.conv = conv;
    a.ints = std::move(ints);
    return a;
  }
  static TraceAttrs of_pool(const Pool2dParams& pool) {
    TraceAttrs a;
    a.pool = pool;
    return a;
  }
};

struct TraceEvent {
  TraceEvent(const char* op_, std::vector<Tensor> inputs_, Tensor output_, TraceAttrs attrs_ = {})
      : op(op_), inputs(std::move(inputs_)), output(std::move(output_)), attrs(std::move(attrs_)) {}
  const char* op;              // the front end's name: "conv2d", "add", "reshape", ...
  std::vector<Tensor> inputs;  // in the front end's order; undefined for an absent optional input (a bias)
  Tensor output;
  TraceAttrs attrs;
};

class Tracer {
 public:
  virtual ~Tracer() = default;
  // Called after the op computed its output (before its autograd record). May throw dl::Error: the op
  // then fails with it.
  virtual void record(const TraceEvent& event) = 0;
};

// Makes `tracer` the active one on this thread while alive; restores the previous one after.
class TraceGuard {
 public:
  explicit TraceGuard(Tracer* tracer);
  ~TraceGuard();
  TraceGuard(const TraceGuard&) = delete;
  TraceGuard& operator=(const TraceGuard&) = delete;

 private:
  Tracer* previous_;
};

namespace detail {
// The tracer active on this thread, or null.
Tracer* active_tracer();

// Suspends tracing on this thread while alive (a composite op's inner ops); resume() ends it early.
class TracePause {
 public:
  TracePause();
  ~TracePause() { resume(); }
  TracePause(const TracePause&) = delete;
  TracePause& operator=(const TracePause&) = delete;
  void resume();

 private:
  Tracer* paused_;
  bool active_ = true;
};
}  // namespace detail

}  // namespace dl::ops
