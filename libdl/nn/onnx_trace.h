// The tracer behind dl::nn::export_onnx (nn/onnx.cpp): it turns the trace events of one forward
// (dl/ops/trace.h) into ONNX nodes (nn/onnx_ops.cpp maps each op), names the values, and makes the
// constants the ops read initializers (nn/onnx_trace.cpp). Private to the nn layer.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dl/nn/module.h"
#include "dl/nn/onnx.h"
#include "dl/ops/trace.h"
#include "nn/onnx_graph.h"

namespace dl::nn::onnx {

class GraphTracer : public ops::Tracer {
 public:
  GraphTracer(const Module& model, const OnnxExportOptions& options, int64_t batch);

  // Marks `t` as the graph input `name`.
  void add_input(const Tensor& t, const std::string& name);
  void record(const ops::TraceEvent& event) override;
  // The name of a value the graph outputs: a traced value, or throws naming the untraced op behind it.
  std::string output_value(const Tensor& t, size_t index);
  bool is_input(const std::string& name) const;

  Graph graph;
  // The constants that are neither parameters nor buffers, in the order the ops first read them
  // (Note [export soundness] in nn/onnx.cpp compares them across two traces).
  std::vector<std::pair<std::string, Tensor>> generated;

 private:
  // ---- used by the op mapping (nn/onnx_ops.cpp) ----
  void map_event(const ops::TraceEvent& e, const std::string& out);
  std::string value(const Tensor& t, const char* consumer);
  std::string fresh();
  std::string ints_constant(std::vector<int64_t> v);
  std::string floats_constant(std::vector<float> v, const Shape& shape);
  void emit(std::string op_type, std::vector<std::string> inputs, std::vector<std::string> outputs,
            std::vector<Attr> attrs = {});
  void check_no_untraced_history(const Tensor& t, const char* consumer) const;
  void binary(const ops::TraceEvent& e, const char* type, const std::string& out);
  bool exact_power(const std::string& x, double p, const std::string& out);
  std::string spread_constant(const std::string& name, const Tensor& c, const std::vector<int64_t>& out);
  std::string broadcast4(const std::string& name, std::vector<int64_t> dims, const std::vector<int64_t>& out);
  void index_select(const ops::TraceEvent& e, const std::string& out);
  void group_norm(const ops::TraceEvent& e, const std::string& out);

  const OnnxExportOptions& options_;
  int64_t batch_;
  std::unordered_map<const TensorImpl*, std::string> values_;     // traced values (inputs, op outputs)
  std::unordered_map<const TensorImpl*, std::string> constants_;  // constants already initializers
  NamedTensors named_;                                            // the model's parameters and buffers
  std::vector<Tensor> keep_;  // every tensor named above stays alive: no address is reused in a trace
  std::vector<std::string> input_names_;
  int next_value_ = 0, next_constant_ = 0;
};

// The passes after a trace: batch norms folded into the convolutions before them (when `fold`), then
// every node and initializer that no output needs removed.
void fold_batch_norms(Graph& g);
void prune(Graph& g);

}  // namespace dl::nn::onnx
