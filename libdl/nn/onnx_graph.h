// The ONNX graph that dl::nn::export_onnx builds from a trace (nn/onnx.cpp) before writing it as a
// ModelProto (nn/onnx_proto.cpp): nodes in execution order, initializers, and the graph's inputs and
// outputs with their shapes. Private to the nn layer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dl/core/tensor.h"

namespace dl::nn::onnx {

// ONNX's TensorProto.DataType values that the exporter writes.
enum class ElemType : int32_t { kFloat = 1, kInt64 = 7 };

struct Attr {
  enum class Kind { kInt, kFloat, kInts, kString };
  std::string name;
  Kind kind = Kind::kInt;
  int64_t i = 0;
  float f = 0.f;
  std::vector<int64_t> ints;
  std::string s;

  static Attr integer(std::string name, int64_t v);
  static Attr real(std::string name, double v);
  static Attr integers(std::string name, std::vector<int64_t> v);
  static Attr text(std::string name, std::string v);
};

struct Node {
  std::string op_type;
  std::vector<std::string> inputs;  // "" for an absent optional input
  std::vector<std::string> outputs;
  std::vector<Attr> attrs;
};

// A constant of the graph: float32 or int64, on any device (copied to the host when written).
struct Initializer {
  std::string name;
  Tensor value;
};

// A graph input or output: float32 with this shape; a non-empty batch_param names dimension 0.
struct ValueInfo {
  std::string name;
  std::vector<int64_t> dims;
  std::string batch_param;
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;
  std::vector<Initializer> initializers;
  std::vector<ValueInfo> inputs, outputs;
};

// The ModelProto of `graph` at the default domain's `opset` (ir_version 7 for opset 13 to 14, 8 for 15 to 17),
// serialised. Throws dl::Error for an initializer that is not float32 or int64.
std::string encode_model(const Graph& graph, int opset);

}  // namespace dl::nn::onnx
