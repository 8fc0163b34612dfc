// The autograd engine: dependency counting over the reachable nodes, then a ready queue.
#include "dl/autograd/engine.h"

#include <unordered_map>

#include "core/device_backend.h"
#include "round16.cuh"

namespace dl::autograd {

namespace {
thread_local bool t_grad_enabled = true;
thread_local std::function<void(const Tensor&)> t_grad_ready;  // GradReadyHook
}  // namespace

GradReadyHook::GradReadyHook(std::function<void(const Tensor& leaf)> fn) : previous_(std::move(t_grad_ready)) {
  t_grad_ready = std::move(fn);
}
GradReadyHook::~GradReadyHook() { t_grad_ready = std::move(previous_); }

bool grad_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = previous_; }

bool needs_record(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(const char* name, Tensor output, std::vector<Tensor> inputs, BackwardFn fn) {
  if (!needs_record(inputs)) return output;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->edges.reserve(inputs.size());
  for (const Tensor& in : inputs) {
    Edge e;
    if (in.defined()) {
      e.shape = in.shape();
      e.dtype = in.dtype();
      e.needs_grad = in.requires_grad();
      e.fn = in.grad_fn();
      if (e.needs_grad && !e.fn) e.leaf = in;
    }
    node->edges.push_back(std::move(e));
  }
  node->backward = std::move(fn);
  output.impl()->grad_fn = std::move(node);
  output.impl()->requires_grad = true;
  return output;
}

namespace {
// into += g, element-wise: on the host here, on a device through its backend (Note [device interface]).
void accumulate(Tensor& into, const Tensor& g_in) {
  DL_CHECK(into.shape() == g_in.shape() && into.dtype() == g_in.dtype() && into.device() == g_in.device(),
           "backward(): a gradient of ", g_in.shape().str(), " ", dtype_name(g_in.dtype()), " on ", g_in.device().str(),
           " cannot be added to the accumulated ", into.shape().str(), " ", dtype_name(into.dtype()), " on ",
           into.device().str());
  // Gradients of one tensor from two branches may come in two memory formats: added in the first one's.
  const MemoryFormat f = into.memory_format();
  const Tensor g = g_in.to(f);
  const int64_t n = into.numel();
  if (!into.device().is_cpu())
    return device_backend(into.device())
        .accumulate(into.raw_data(f), g.raw_data(f), into.dtype(), n, into.device().index);
  auto add = [n](auto* y, const auto* x) {
#pragma omp parallel for if (n >= 65536)
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
  };
  switch (into.dtype()) {
    case DType::kFloat32:
      return add(into.data<float>(f), g.data<float>(f));
    case DType::kFloat64:
      return add(into.data<double>(f), g.data<double>(f));
    case DType::kBFloat16: {  // bf16 activations' gradients (Note [bf16 activations] in ops/precision.cpp)
      auto* y = reinterpret_cast<uint16_t*>(into.data<BFloat16>(f));
      const auto* x = reinterpret_cast<const uint16_t*>(g.data<BFloat16>(f));
#pragma omp parallel for simd if (n >= 65536)
      for (int64_t i = 0; i < n; ++i)
        y[i] = kern::float_to_bf16_bits(kern::bf16_bits_to_float(y[i]) + kern::bf16_bits_to_float(x[i]));
      return;
    }
    default:
      DL_THROW("backward(): expected float32, float64 or bfloat16 gradients, got ", dtype_name(into.dtype()));
  }
}

void accumulate_leaf(const Tensor& leaf, const Tensor& g) {
  Tensor current = leaf.grad();
  if (!current.defined()) {
    // Own it (g may be shared with other branches), in the leaf's own memory format.
    leaf.impl()->grad = g.memory_format() == leaf.memory_format() ? g.clone() : g.to(leaf.memory_format());
  } else {
    accumulate(current, g);
  }
}
}  // namespace

void backward(const Tensor& root) {
  DL_CHECK(root.defined() && root.numel() == 1, "backward(): expected a one-element tensor, got ",
           root.defined() ? root.shape().str() : std::string("undefined"));
  DL_CHECK(root.requires_grad(), "backward(): the tensor does not require grad (no graph was recorded)");
  NoGradGuard no_grad;  // gradients are computed without recording history
  Tensor seed = Tensor::ones(root.shape(), root.dtype(), root.device());
  if (!root.grad_fn()) {
    accumulate_leaf(root, seed);
    if (t_grad_ready) t_grad_ready(root);
    return;
  }

  // Count, for every reachable node, how many edges lead into it (and, for a GradReadyHook, into
  // every leaf).
  std::unordered_map<Node*, int> pending;
  std::unordered_map<TensorImpl*, int> leaf_pending;
  const bool hook = static_cast<bool>(t_grad_ready);
  std::vector<Node*> stack{root.grad_fn().get()};
  pending[root.grad_fn().get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& in : n->edges) {
      if (hook && in.needs_grad && !in.fn) ++leaf_pending[in.leaf.impl()];
      if (!in.fn) continue;
      Node* m = in.fn.get();
      auto [it, inserted] = pending.try_emplace(m, 0);
      ++it->second;
      if (inserted) stack.push_back(m);
    }
  }

  std::unordered_map<Node*, Tensor> grads;
  grads[root.grad_fn().get()] = seed;
  std::vector<std::shared_ptr<Node>> ready{root.grad_fn()};
  while (!ready.empty()) {
    std::shared_ptr<Node> node = std::move(ready.back());
    ready.pop_back();
    Tensor g = std::move(grads[node.get()]);
    grads.erase(node.get());
    DL_CHECK(node->backward, "backward through '", node->name,
             "' a second time: the graph is freed after the first backward");

    std::vector<bool> needs(node->edges.size());
    for (size_t i = 0; i < needs.size(); ++i) needs[i] = node->edges[i].needs_grad;
    std::vector<Tensor> in_grads = node->backward(g, needs);
    DL_CHECK(in_grads.size() == node->edges.size(), "backward of '", node->name, "' returned ", in_grads.size(),
             " gradients for ", node->edges.size(), " inputs");

    std::vector<Edge> edges = std::move(node->edges);
    node->release();
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& in = edges[i];
      if (!needs[i]) continue;
      Tensor gi = in_grads[i];
      DL_CHECK(gi.defined() && gi.shape() == in.shape, "backward of '", node->name, "': gradient ", i, " has shape ",
               gi.defined() ? gi.shape().str() : "undefined", ", expected ", in.shape.str());
      // A gradient comes back in its input's dtype: an op that computed a bf16 activation in float32 (Note [bf16
      // activations] in ops/precision.cpp) may hand back float32. So every backward receives dy in its output's
      // dtype, and the ops rely on it.
      if (gi.dtype() != in.dtype && is_floating_point(gi.dtype()) && is_floating_point(in.dtype)) gi = gi.to(in.dtype);
      if (!in.fn) {
        accumulate_leaf(in.leaf, gi);
        if (hook && --leaf_pending[in.leaf.impl()] == 0) t_grad_ready(in.leaf);
        continue;
      }
      Node* m = in.fn.get();
      auto it = grads.find(m);
      if (it == grads.end()) {
        grads.emplace(m, gi);
      } else {
        Tensor sum = it->second.clone();  // the first gradient may be shared with another branch
        accumulate(sum, gi);
        it->second = std::move(sum);
      }
      if (--pending[m] == 0) ready.push_back(in.fn);
    }
  }
}

}  // namespace dl::autograd

// Declared in dl/core/tensor.h; defined here, in the layer that runs backward.
void dl::Tensor::backward() const { autograd::backward(*this); }
