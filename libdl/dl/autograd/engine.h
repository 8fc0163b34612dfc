// Define-by-run autograd. Each op that takes an input requiring grad records a Node on its output:
// the inputs (the graph's edges) and a backward function written beside the op's forward.
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

struct Node {
  std::string name;
  std::vector<Tensor> inputs;
  BackwardFn backward;
  void release() {
    inputs.clear();
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

}  // namespace dl::autograd
