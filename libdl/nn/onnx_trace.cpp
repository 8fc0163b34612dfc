// The tracer of an export (nn/onnx_trace.h): graph inputs, value and constant names, the initializers,
// and the checks that no value from the inputs enters the graph as a constant.
#include "nn/onnx_trace.h"

#include <string_view>

#include "dl/autograd/engine.h"
#include "dl/core/error.h"

namespace dl::nn::onnx {

GraphTracer::GraphTracer(const Module& model, const OnnxExportOptions& options, int64_t batch)
    : options_(options), batch_(batch), named_(model.state()) {
  graph.name = options.graph_name;
}

void GraphTracer::add_input(const Tensor& t, const std::string& name) {
  values_[t.impl()] = name;
  keep_.push_back(t);
  input_names_.push_back(name);
  graph.inputs.push_back({name, t.shape().vec(), options_.dynamic_batch ? "batch" : ""});
}

bool GraphTracer::is_input(const std::string& name) const {
  for (const std::string& n : input_names_)
    if (n == name) return true;
  return false;
}

std::string GraphTracer::fresh() { return "v" + std::to_string(next_value_++); }

void GraphTracer::emit(std::string op_type, std::vector<std::string> inputs, std::vector<std::string> outputs,
                       std::vector<Attr> attrs) {
  graph.nodes.push_back({std::move(op_type), std::move(inputs), std::move(outputs), std::move(attrs)});
}

std::string GraphTracer::ints_constant(std::vector<int64_t> v) {
  const std::string name = "shape_" + std::to_string(next_constant_++);
  const int64_t n = static_cast<int64_t>(v.size());
  graph.initializers.push_back({name, Tensor::from_vector<int64_t>({n}, v)});
  return name;
}

std::string GraphTracer::floats_constant(std::vector<float> v, const Shape& shape) {
  const std::string name = "scalar_" + std::to_string(next_constant_++);
  graph.initializers.push_back({name, Tensor::from_vector<float>(shape, v)});
  return name;
}

// Note [untraced history]: the examples require grad during the trace and the model's parameters do
// not, so a tensor with autograd history that is no traced value was computed from the inputs by an op
// without a trace hook: the graph would hold it as a constant, silently wrong.
void GraphTracer::check_no_untraced_history(const Tensor& t, const char* consumer) const {
  if (!t.defined() || values_.count(t.impl()) || !t.requires_grad() || !t.grad_fn()) return;
  DL_THROW("ONNX export: op '", t.grad_fn()->name, "' has no ONNX form: its output ", t.shape().str(),
           " depends on the model's inputs and feeds '", consumer, "'");
}

std::string GraphTracer::value(const Tensor& t, const char* consumer) {
  if (!t.defined()) return "";
  if (auto it = values_.find(t.impl()); it != values_.end()) return it->second;
  if (auto it = constants_.find(t.impl()); it != constants_.end()) return it->second;
  check_no_untraced_history(t, consumer);
  std::string name;
  for (const auto& [n, p] : named_) {
    if (p.impl() == t.impl() || (p.shares_storage_with(t) && p.impl()->offset == t.impl()->offset &&
                                 p.shape() == t.shape() && p.dtype() == t.dtype())) {
      name = n;
      break;
    }
  }
  if (name.empty()) {
    name = "const_" + std::to_string(generated.size());
    generated.emplace_back(name, t);
  }
  constants_[t.impl()] = name;
  keep_.push_back(t);
  for (const Initializer& init : graph.initializers)
    if (init.name == name) return name;  // a parameter read through another handle
  graph.initializers.push_back({name, t});
  return name;
}

void GraphTracer::record(const ops::TraceEvent& e) {
  bool traced = false;
  for (const Tensor& in : e.inputs) {
    check_no_untraced_history(in, e.op);
    traced = traced || (in.defined() && values_.count(in.impl()));
  }
  if (!traced) return;  // a constant of the graph, made into an initializer when a traced op reads it
  DL_CHECK(e.output.defined() && e.output.dtype() == DType::kFloat32, "ONNX export: op '", e.op,
           "' has no ONNX form, and its input depends on the model's inputs (", e.inputs[0].shape().str(), ")");
  if (std::string_view(e.op) == "to_memory_format") {  // ONNX's tensors have no layout: the same value
    values_[e.output.impl()] = value(e.inputs[0], e.op);
    keep_.push_back(e.output);
    return;
  }
  const std::string out = fresh();
  map_event(e, out);
  values_[e.output.impl()] = out;
  keep_.push_back(e.output);
}

std::string GraphTracer::output_value(const Tensor& t, size_t index) {
  const std::string what = "output " + std::to_string(index);
  check_no_untraced_history(t, what.c_str());
  auto it = values_.find(t.impl());
  DL_CHECK(it != values_.end(), "ONNX export: output ", index, " (", t.shape().str(),
           ") does not depend on the model's inputs through ops with an ONNX form (a constant, or a value made "
           "from them by a clone, to() or data<T>() edit)");
  return it->second;
}

}  // namespace dl::nn::onnx
