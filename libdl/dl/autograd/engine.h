// Define-by-run autograd. Each op that takes an input requiring grad records a Node on its output:
// an edge per input (the graph) and a backward function written beside the op's forward.
// Note [graph memory]: an edge keeps what backward needs of an input, never the input itself: the
// input's own node, or the leaf (a parameter) whose grad accumulates. An intermediate tensor's
// storage lives only as long as some backward function saved it (conv keeps its input, ReLU its
// output...); one that nothing saved (batch norm's output under a ReLU, a sum, a resize feeding a
// concat) is freed as soon as the forward lets go of it.
// backward() walks the graph from a scalar, accumulates gradients into the leaves' grad(), and
// frees each node's saved tensors as it goes (the graph is gone after one backward).
//
// Convention for the whole library: a backward function *returns* new gradient tensors (it assigns,
// never accumulates); the engine alone accumulates, into leaf grads it owns.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dl/core/tensor.h"

namespace dl::autograd {

// grad_output has the output's shape; needs_grad[i] says whether input i wants a gradient. The
// function returns one tensor per input (undefined where needs_grad[i] is false).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output, const std::vector<bool>& needs_grad)>;

struct Node;

// Where the gradient of one input goes (Note [graph memory]).
struct Edge {
  std::shared_ptr<Node> fn;       // the input's grad_fn, when it has one
  Tensor leaf;                    // the input itself when it is a leaf that requires grad
  Shape shape;                    // the input's shape: the gradient is checked against it
  DType dtype = DType::kFloat32;  // the input's dtype: a floating gradient is converted to it
  bool needs_grad = false;        // whether the input required grad when the op ran
};

struct Node {
  std::string name;
  std::vector<Edge> edges;  // one per input of the op, in order
  BackwardFn backward;
  void release() {
    edges.clear();
    backward = nullptr;
  }
};

// True unless a NoGradGuard is alive on this thread.
bool grad_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when an op over `inputs` must record a node (grad mode on and some input requires grad).
bool needs_record(const std::vector<Tensor>& inputs);

// Records `fn` as the history of `output` when needs_record(inputs); returns output.
// `fn` must not capture `output` itself (capture output.detach() instead): that would be a cycle.
Tensor record(const char* name, Tensor output, std::vector<Tensor> inputs, BackwardFn fn);

// Back-propagates from `root` (one element) with d root / d root = 1.
void backward(const Tensor& root);

// While alive, backward() on this thread calls `fn(leaf)` as soon as a leaf's gradient of that
// backward is complete (every edge into the leaf has delivered; leaf.grad() then holds it), while
// the rest of the graph is still running: data-parallel training starts reducing gradients there
// (dl/dist/data_parallel.h). One hook per thread; the guard restores the one it replaced.
class GradReadyHook {
 public:
  explicit GradReadyHook(std::function<void(const Tensor& leaf)> fn);
  ~GradReadyHook();
  GradReadyHook(const GradReadyHook&) = delete;
  GradReadyHook& operator=(const GradReadyHook&) = delete;

 private:
  std::function<void(const Tensor&)> previous_;
};

}  // namespace dl::autograd
