// ONNX export (dl/nn/onnx.h): two traces of the forward, the graph of the first checked against the
// second, batch norms folded, unused nodes pruned, the ModelProto written atomically.
#include "dl/nn/onnx.h"

#include <cmath>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "dl/autograd/engine.h"
#include "dl/core/file_io.h"
#include "dl/core/rng.h"
#include "nn/onnx_trace.h"

namespace dl::nn {

using onnx::Graph;

namespace {

// The model as a trace needs it, restored on every way out: eval() (each module's own flag kept) and
// parameters that do not require grad (Note [untraced history] in nn/onnx_trace.cpp).
class TraceMode {
 public:
  explicit TraceMode(Module& model) : model_(model) {
    model.for_each_module([this](Module& m) { training_.push_back(m.is_training()); });
    model.eval();
    for (const auto& [name, p] : model.named_parameters()) {
      params_.push_back(p);
      requires_grad_.push_back(p.requires_grad());
    }
    for (Tensor& p : params_) p.set_requires_grad(false);
  }
  ~TraceMode() {
    size_t i = 0;
    model_.for_each_module([&](Module& m) { m.train(training_[i++]); });  // parents first: children after
    for (size_t k = 0; k < params_.size(); ++k) params_[k].set_requires_grad(requires_grad_[k]);
  }
  TraceMode(const TraceMode&) = delete;
  TraceMode& operator=(const TraceMode&) = delete;

 private:
  Module& model_;
  std::vector<bool> training_, requires_grad_;
  std::vector<Tensor> params_;
};

std::string default_name(const char* stem, size_t i, size_t n) { return n == 1 ? stem : stem + std::to_string(i); }

struct Trace {
  Graph graph;
  std::vector<std::pair<std::string, Tensor>> generated;
};

// Gives the graph output `name` to the traced value `value`: renames it where a node makes it, or adds
// an Identity (an input, or a value that is already another output).
void name_output(Graph& g, const std::string& value, const std::string& name, bool rename) {
  for (const onnx::Initializer& init : g.initializers)
    DL_CHECK(init.name != name, "ONNX export: output name '", name, "' is also the name of a parameter or buffer");
  if (!rename) {
    g.nodes.push_back({"Identity", {value}, {name}, {}});
    return;
  }
  for (onnx::Node& n : g.nodes) {
    for (std::string& s : n.inputs)
      if (s == value) s = name;
    for (std::string& s : n.outputs)
      if (s == value) s = name;
  }
}

Trace trace(Module& model, const OnnxForward& forward, const std::vector<Tensor>& examples,
            const OnnxExportOptions& o) {
  onnx::GraphTracer tracer(model, o, examples[0].dim() > 0 ? examples[0].size(0) : 1);
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < examples.size(); ++i) {
    Tensor in = examples[i].detach();
    in.set_requires_grad(true);
    tracer.add_input(in, o.input_names.empty() ? default_name("input", i, examples.size()) : o.input_names[i]);
    inputs.push_back(in);
  }
  std::vector<Tensor> outputs;
  {
    ops::TraceGuard guard(&tracer);
    outputs = forward(inputs);
  }
  DL_CHECK(!outputs.empty(), "ONNX export: the forward returned no output");
  DL_CHECK(o.output_names.empty() || o.output_names.size() == outputs.size(), "ONNX export: ", o.output_names.size(),
           " output names for ", outputs.size(), " outputs");
  std::unordered_set<std::string> named;
  for (size_t k = 0; k < outputs.size(); ++k) {
    const std::string value = tracer.output_value(outputs[k], k);
    const std::string name = o.output_names.empty() ? default_name("output", k, outputs.size()) : o.output_names[k];
    name_output(tracer.graph, value, name, !tracer.is_input(value) && named.insert(value).second);
    const std::vector<int64_t> dims = outputs[k].shape().vec();
    const bool batch = o.dynamic_batch && !dims.empty() && dims[0] == examples[0].size(0);
    tracer.graph.outputs.push_back({name, dims, batch ? "batch" : ""});
  }
  return {std::move(tracer.graph), std::move(tracer.generated)};
}

bool same_values(const Tensor& a, const Tensor& b) {
  const Tensor ha = a.to(Device::cpu()), hb = b.to(Device::cpu());
  if (ha.shape() != hb.shape() || ha.dtype() != hb.dtype()) return false;
  if (std::memcmp(ha.raw_data(), hb.raw_data(), ha.nbytes()) == 0) return true;
  if (ha.dtype() != DType::kFloat32) return false;
  const float *pa = ha.data<float>(), *pb = hb.data<float>();
  for (int64_t i = 0; i < ha.numel(); ++i)
    if (!(std::fabs(pa[i] - pb[i]) <= 1e-5f * std::max(1.f, std::fabs(pa[i])))) return false;
  return true;
}

// Note [export soundness]: a value computed from the inputs without a traced op (a clone, a to(), an edit
// through data<T>(), an op with neither a hook nor autograd history) would enter the graph as a constant.
// The forward runs again on other inputs of the same shapes: such a constant changes, and so does the
// sequence of ops of a forward whose path depends on the input values. Either is an error.
void check_same_graph(const Trace& first, const Trace& second) {
  bool same = first.graph.nodes.size() == second.graph.nodes.size();
  for (size_t i = 0; same && i < first.graph.nodes.size(); ++i)
    same = first.graph.nodes[i].op_type == second.graph.nodes[i].op_type;
  DL_CHECK(same, "ONNX export: the forward ran other ops (", first.graph.nodes.size(), " nodes, then ",
           second.graph.nodes.size(),
           ") on other inputs of the same shapes: its path depends on the input values, "
           "which one ONNX graph cannot hold");
  DL_CHECK(first.generated.size() == second.generated.size(), "ONNX export: the forward read ", first.generated.size(),
           " constants, then ", second.generated.size(), " on other inputs");
  for (size_t i = 0; i < first.generated.size(); ++i) {
    const Tensor& t = first.generated[i].second;
    DL_CHECK(same_values(t, second.generated[i].second), "ONNX export: a tensor ", t.shape().str(),
             " that the forward made changes with the inputs but came from no op with an ONNX form (a clone, to() "
             "or data<T>() edit of a value, or an op of libdl without a trace hook); it would be exported as the "
             "constant '",
             first.generated[i].first, "'");
  }
}

// Every value has one name: a parameter named like a value the exporter makes (v3, shape_0) or like an
// input or output would make two.
void check_unique_names(const Graph& g) {
  std::unordered_set<std::string> names;
  auto add = [&names](const std::string& name) {
    DL_CHECK(names.insert(name).second, "ONNX export: the name '", name,
             "' is given to two values (a parameter, an input or an output named like another); rename one");
  };
  for (const onnx::ValueInfo& v : g.inputs) add(v.name);
  for (const onnx::Initializer& init : g.initializers) add(init.name);
  for (const onnx::Node& n : g.nodes)
    for (const std::string& out : n.outputs) add(out);
}

}  // namespace

void export_onnx(Module& model, const OnnxForward& forward, const std::vector<Tensor>& examples,
                 const std::string& path, const OnnxExportOptions& options) {
  DL_CHECK(options.opset >= 13 && options.opset <= 17, "ONNX export: expected an opset from 13 to 17, got ",
           options.opset);
  DL_CHECK(!examples.empty(), "ONNX export: expected at least one example input");
  DL_CHECK(options.input_names.empty() || options.input_names.size() == examples.size(),
           "ONNX export: ", options.input_names.size(), " input names for ", examples.size(), " example inputs");
  for (size_t i = 0; i < examples.size(); ++i)
    DL_CHECK(examples[i].defined() && examples[i].dtype() == DType::kFloat32, "ONNX export: expected example input ", i,
             " to be a float32 tensor, got ",
             examples[i].defined() ? dtype_name(examples[i].dtype()) : "an undefined tensor");
  DL_CHECK(autograd::grad_enabled(),
           "ONNX export: grad mode is off (a NoGradGuard is alive); the trace needs it to find untraced ops");
  check_output_path(path, "ONNX model");
  Trace first, second;
  {
    TraceMode mode(model);
    first = trace(model, forward, examples, options);
    Generator gen(0x0dd5eed);
    std::vector<Tensor> others;
    for (const Tensor& x : examples) others.push_back(Tensor::randn(x.shape(), gen).to(x.device()));
    second = trace(model, forward, others, options);
  }
  check_same_graph(first, second);
  if (options.fold_batch_norm) onnx::fold_batch_norms(first.graph);
  onnx::prune(first.graph);
  check_unique_names(first.graph);
  write_file_atomically(path, onnx::encode_model(first.graph, options.opset));
}

void export_onnx(Layer& model, const Tensor& example, const std::string& path, const OnnxExportOptions& options) {
  export_onnx(
      model, [&model](const std::vector<Tensor>& in) { return std::vector<Tensor>{model.forward(in[0])}; }, {example},
      path, options);
}

namespace onnx {

namespace {
int find_initializer(const Graph& g, const std::string& name) {
  for (size_t i = 0; i < g.initializers.size(); ++i)
    if (g.initializers[i].name == name) return static_cast<int>(i);
  return -1;
}

std::unordered_map<std::string, int> use_counts(const Graph& g) {
  std::unordered_map<std::string, int> uses;
  for (const Node& n : g.nodes)
    for (const std::string& s : n.inputs) ++uses[s];
  for (const ValueInfo& v : g.outputs) ++uses[v.name];
  return uses;
}

std::vector<double> host_values(const Tensor& t) {
  const std::vector<float> v = t.to(Device::cpu()).to_vector_f32();
  return std::vector<double>(v.begin(), v.end());
}

// Folds the batch norm `bn` into the convolution `conv` that alone feeds it (fold.h's formulas).
void fold_pair(Graph& g, Node& conv, const Node& bn, int weight, int bias) {
  const std::vector<double> gamma = host_values(g.initializers[find_initializer(g, bn.inputs[1])].value),
                            beta = host_values(g.initializers[find_initializer(g, bn.inputs[2])].value),
                            mean = host_values(g.initializers[find_initializer(g, bn.inputs[3])].value),
                            var = host_values(g.initializers[find_initializer(g, bn.inputs[4])].value);
  const double eps = bn.attrs[0].f;
  const Tensor w = g.initializers[weight].value;
  const int64_t k = w.size(0), per = w.numel() / k;
  std::vector<float> wv = w.to(Device::cpu()).to_vector_f32(), bv(static_cast<size_t>(k), 0.f);
  if (bias >= 0) bv = g.initializers[bias].value.to(Device::cpu()).to_vector_f32();
  for (int64_t c = 0; c < k; ++c) {
    const auto ci = static_cast<size_t>(c);
    const double s = gamma[ci] / std::sqrt(var[ci] + eps);
    for (int64_t j = 0; j < per; ++j) wv[static_cast<size_t>(c * per + j)] *= static_cast<float>(s);
    bv[ci] = static_cast<float>((bv[ci] - mean[ci]) * s + beta[ci]);
  }
  g.initializers[weight].value = Tensor::from_vector<float>(w.shape(), wv);
  const Tensor b = Tensor::from_vector<float>({k}, bv);
  if (bias >= 0) {
    g.initializers[bias].value = b;
  } else {
    const std::string& wn = conv.inputs[1];
    std::string name = wn.size() > 7 && wn.ends_with(".weight") ? wn.substr(0, wn.size() - 7) + ".bias" : wn + "_bias";
    if (find_initializer(g, name) >= 0) name = wn + "_folded_bias";
    g.initializers.push_back({name, b});
    conv.inputs.push_back(name);
  }
  conv.outputs[0] = bn.outputs[0];
}
}  // namespace

void fold_batch_norms(Graph& g) {
  const std::unordered_map<std::string, int> uses = use_counts(g);
  auto used_once = [&uses](const std::string& s) { return uses.count(s) && uses.at(s) == 1; };
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const std::string& s : g.nodes[i].outputs) producer[s] = i;
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& bn = g.nodes[i];
    if (bn.op_type != "BatchNormalization" || !producer.count(bn.inputs[0]) || !used_once(bn.inputs[0])) continue;
    Node& conv = g.nodes[producer.at(bn.inputs[0])];
    const int weight = find_initializer(g, conv.inputs[1]);
    const int bias = conv.inputs.size() > 2 ? find_initializer(g, conv.inputs[2]) : -1;
    bool foldable = conv.op_type == "Conv" && weight >= 0 && used_once(conv.inputs[1]) &&
                    (conv.inputs.size() < 3 || (bias >= 0 && used_once(conv.inputs[2])));
    for (size_t j = 1; foldable && j < 5; ++j) foldable = find_initializer(g, bn.inputs[j]) >= 0;
    if (!foldable) continue;
    fold_pair(g, conv, bn, weight, bias);
    removed[i] = true;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
}

void prune(Graph& g) {
  std::unordered_set<std::string> needed;
  for (const ValueInfo& v : g.outputs) needed.insert(v.name);
  std::vector<bool> keep(g.nodes.size(), false);
  for (size_t i = g.nodes.size(); i-- > 0;) {
    for (const std::string& s : g.nodes[i].outputs) keep[i] = keep[i] || needed.count(s);
    if (keep[i]) needed.insert(g.nodes[i].inputs.begin(), g.nodes[i].inputs.end());
  }
  std::vector<Node> nodes;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (keep[i]) nodes.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(nodes);
  std::vector<Initializer> inits;
  for (Initializer& init : g.initializers)
    if (needed.count(init.name)) inits.push_back(std::move(init));
  g.initializers = std::move(inits);
}

}  // namespace onnx

}  // namespace dl::nn
