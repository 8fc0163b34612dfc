// nn::fold_batch_norm (dl/nn/fold.h): the pairs from the graph of one forward, then the arithmetic in
// float64 on the host.
#include "dl/nn/fold.h"

#include <cmath>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "dl/autograd/engine.h"
#include "dl/nn/layers.h"

namespace dl::nn {

namespace {

struct Pair {
  Conv2d* conv;
  BatchNorm2d* bn;
  bool relu;  // the batch norm's ReLU was fused: it moves into the convolution (Note [fused conv relu])
};

// The convolution -> batch norm pairs of the graph that ends at `y`, each convolution's output used by
// its batch norm alone. Nodes are identified by the parameters on their edges (leaves).
std::vector<Pair> pairs_in_graph(const Tensor& y, const std::unordered_map<const TensorImpl*, Conv2d*>& convs,
                                 const std::unordered_map<const TensorImpl*, BatchNorm2d*>& bns) {
  std::vector<autograd::Node*> nodes;
  std::unordered_map<const autograd::Node*, int> uses;
  std::unordered_set<const autograd::Node*> seen;
  std::vector<autograd::Node*> stack;
  if (y.grad_fn()) stack.push_back(y.grad_fn().get()), seen.insert(y.grad_fn().get());
  while (!stack.empty()) {
    autograd::Node* n = stack.back();
    stack.pop_back();
    nodes.push_back(n);
    for (const autograd::Edge& e : n->edges) {
      if (!e.fn) continue;
      ++uses[e.fn.get()];
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }
  const auto leaf_of = [](const autograd::Node* n, size_t i) -> const TensorImpl* {
    return i < n->edges.size() && n->edges[i].leaf.defined() ? n->edges[i].leaf.impl() : nullptr;
  };
  const auto is_bn = [](const autograd::Node* n) {
    return n->name == "batch_norm_infer" || n->name == "batch_norm_relu_infer";
  };
  // How often each layer is applied: a layer applied twice (shared weights) is left as it is.
  std::map<const void*, int> times;
  for (const autograd::Node* n : nodes) {
    if (n->name == "conv2d")
      if (const auto c = convs.find(leaf_of(n, 1)); c != convs.end()) ++times[c->second];
    if (is_bn(n))
      if (const auto b = bns.find(leaf_of(n, 1)); b != bns.end()) ++times[b->second];
  }
  std::vector<Pair> pairs;
  for (const autograd::Node* n : nodes) {
    if (!is_bn(n)) continue;
    const auto bn = bns.find(leaf_of(n, 1));
    if (bn == bns.end() || times[bn->second] != 1) continue;
    const autograd::Node* producer = n->edges.empty() ? nullptr : n->edges[0].fn.get();
    // A reorder between the two (a convolution run in NCHW for a channels-last model) changes no value.
    while (producer != nullptr && producer->name == "to_memory_format" && uses[producer] == 1)
      producer = producer->edges.empty() ? nullptr : producer->edges[0].fn.get();
    if (producer == nullptr || producer->name != "conv2d" || uses[producer] != 1) continue;
    const auto conv = convs.find(leaf_of(producer, 1));
    if (conv == convs.end() || times[conv->second] != 1) continue;
    pairs.push_back({conv->second, bn->second, n->name == "batch_norm_relu_infer"});
  }
  return pairs;
}

void fold(Conv2d& conv, BatchNorm2d& bn, bool relu) {
  const Device device = conv.weight.device();
  const Tensor gamma = bn.weight.to(Device::cpu()).to(DType::kFloat64),
               beta = bn.bias.to(Device::cpu()).to(DType::kFloat64),
               mean = bn.running_mean.to(Device::cpu()).to(DType::kFloat64),
               var = bn.running_var.to(Device::cpu()).to(DType::kFloat64);
  Tensor w = conv.weight.to(Device::cpu()).to(DType::kFloat64);
  Tensor b = conv.ensure_bias().to(Device::cpu()).to(DType::kFloat64);
  const int64_t k = w.size(0), per = w.numel() / k;
  DL_CHECK(gamma.numel() == k, "fold_batch_norm: a convolution of ", k, " output channels feeds a batch norm of ",
           gamma.numel(), " channels");
  double* pw = w.data<double>();
  double* pb = b.data<double>();
  for (int64_t c = 0; c < k; ++c) {
    const double s = gamma.data<double>()[c] / std::sqrt(var.data<double>()[c] + bn.eps());
    for (int64_t i = 0; i < per; ++i) pw[c * per + i] *= s;
    pb[c] = (pb[c] - mean.data<double>()[c]) * s + beta.data<double>()[c];
  }
  conv.weight.copy_(w.to(conv.weight.dtype()).to(device));
  conv.bias.copy_(b.to(conv.bias.dtype()).to(device));
  bn.weight.fill_(1.0);
  bn.bias.fill_(0.0);
  bn.running_mean.fill_(0.0);
  bn.running_var.fill_(1.0 - bn.eps());
  bn.folded = true;
  // The convolution's output goes to this batch norm alone (pairs_in_graph): its ReLU can be the convolution's.
  conv.fused_relu = relu;
  bn.relu_in_conv = relu;
}

}  // namespace

int fold_batch_norm(Layer& model, const Tensor& example) {
  DL_CHECK(example.defined(), "fold_batch_norm: expected an example input, got an undefined tensor");
  model.eval();
  std::unordered_map<const TensorImpl*, Conv2d*> convs;
  std::unordered_map<const TensorImpl*, BatchNorm2d*> bns;
  std::vector<std::pair<Tensor, bool>> grad_flags;  // restored after the trace
  model.for_each_module([&](Module& m) {
    if (auto* c = dynamic_cast<Conv2d*>(&m)) {
      convs[c->weight.impl()] = c;
      grad_flags.emplace_back(c->weight, c->weight.requires_grad());
    } else if (auto* b = dynamic_cast<BatchNorm2d*>(&m); b && !b->folded) {
      bns[b->weight.impl()] = b;
      grad_flags.emplace_back(b->weight, b->weight.requires_grad());
    }
  });
  std::vector<Pair> pairs;
  {
    // The graph records the ops whose inputs require grad: the weights whose layers are looked for do.
    for (auto& [t, on] : grad_flags) t.set_requires_grad(true);
    struct Restore {
      std::vector<std::pair<Tensor, bool>>& flags;
      ~Restore() {
        for (auto& [t, on] : flags) t.set_requires_grad(on);
      }
    } restore{grad_flags};
    DL_CHECK(autograd::grad_enabled(),
             "fold_batch_norm: the graph of a forward is needed; call it outside a "
             "NoGradGuard");
    const Tensor y = model.forward(
        example.detach().to(model.parameters().empty() ? example.device() : model.parameters()[0].device()));
    pairs = pairs_in_graph(y, convs, bns);
  }
  for (const Pair& p : pairs) fold(*p.conv, *p.bn, p.relu);
  return static_cast<int>(pairs.size());
}

}  // namespace dl::nn
