// The protobuf wire format of the few ONNX messages an export writes (onnx.proto, proto2): varints,
// length-delimited fields, a fixed 32-bit float; repeated integers unpacked, as proto2 writes them.
// Field numbers are onnx.proto's, named beside each call.
#include <cstring>
#include <string_view>
#include <utility>

#include "dl/core/error.h"
#include "nn/onnx_graph.h"

namespace dl::nn::onnx {

Attr Attr::integer(std::string name, int64_t v) {
  Attr a;
  a.name = std::move(name);
  a.kind = Kind::kInt;
  a.i = v;
  return a;
}
Attr Attr::real(std::string name, double v) {
  Attr a;
  a.name = std::move(name);
  a.kind = Kind::kFloat;
  a.f = static_cast<float>(v);
  return a;
}
Attr Attr::integers(std::string name, std::vector<int64_t> v) {
  Attr a;
  a.name = std::move(name);
  a.kind = Kind::kInts;
  a.ints = std::move(v);
  return a;
}
Attr Attr::text(std::string name, std::string v) {
  Attr a;
  a.name = std::move(name);
  a.kind = Kind::kString;
  a.s = std::move(v);
  return a;
}

namespace {

// One message being written.
class Writer {
 public:
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void tag(int field, int wire) { varint(static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire)); }
  void int_field(int field, int64_t v) {
    tag(field, 0);
    varint(static_cast<uint64_t>(v));  // negative: ten bytes, two's complement (protobuf's int64)
  }
  void bytes_field(int field, std::string_view b) {
    tag(field, 2);
    varint(b.size());
    out_.append(b);
  }
  void float_field(int field, float f) {
    tag(field, 5);
    char b[4];
    std::memcpy(b, &f, 4);  // little-endian hosts only (x86-64, aarch64)
    out_.append(b, 4);
  }
  std::string& str() { return out_; }

 private:
  std::string out_;
};

std::string attribute(const Attr& a) {
  Writer w;
  w.bytes_field(1, a.name);  // AttributeProto.name
  switch (a.kind) {
    case Attr::Kind::kInt:
      w.int_field(3, a.i);  // i
      w.int_field(20, 2);   // type = INT
      break;
    case Attr::Kind::kFloat:
      w.float_field(2, a.f);  // f
      w.int_field(20, 1);     // type = FLOAT
      break;
    case Attr::Kind::kInts:
      for (int64_t v : a.ints) w.int_field(8, v);  // ints
      w.int_field(20, 7);                          // type = INTS
      break;
    case Attr::Kind::kString:
      w.bytes_field(4, a.s);  // s
      w.int_field(20, 3);     // type = STRING
      break;
  }
  return std::move(w.str());
}

std::string node(const Node& n, size_t index) {
  Writer w;
  for (const std::string& in : n.inputs) w.bytes_field(1, in);     // NodeProto.input
  for (const std::string& out : n.outputs) w.bytes_field(2, out);  // output
  w.bytes_field(3, n.op_type + "_" + std::to_string(index));       // name
  w.bytes_field(4, n.op_type);                                     // op_type
  for (const Attr& a : n.attrs) w.bytes_field(5, attribute(a));    // attribute
  return std::move(w.str());
}

std::string tensor(const Initializer& init) {
  const Tensor host = init.value.to(Device::cpu());
  DL_CHECK(host.dtype() == DType::kFloat32 || host.dtype() == DType::kInt64, "ONNX export: constant '", init.name,
           "' is ", dtype_name(host.dtype()), ", expected float32 or int64 (export a float32 model)");
  Writer w;
  for (int64_t d : host.shape().vec()) w.int_field(1, d);  // TensorProto.dims
  w.int_field(2, static_cast<int64_t>(host.dtype() == DType::kFloat32 ? ElemType::kFloat : ElemType::kInt64));
  w.bytes_field(8, init.name);                                                                   // name
  w.bytes_field(9, std::string_view(static_cast<const char*>(host.raw_data()), host.nbytes()));  // raw_data, LE
  return std::move(w.str());
}

std::string value_info(const ValueInfo& v) {
  Writer shape;
  for (size_t d = 0; d < v.dims.size(); ++d) {
    Writer dim;
    if (d == 0 && !v.batch_param.empty())
      dim.bytes_field(2, v.batch_param);  // Dimension.dim_param
    else
      dim.int_field(1, v.dims[d]);    // Dimension.dim_value
    shape.bytes_field(1, dim.str());  // TensorShapeProto.dim
  }
  Writer tensor_type;
  tensor_type.int_field(1, static_cast<int64_t>(ElemType::kFloat));  // TypeProto.Tensor.elem_type
  tensor_type.bytes_field(2, shape.str());                           // shape
  Writer type;
  type.bytes_field(1, tensor_type.str());  // TypeProto.tensor_type
  Writer w;
  w.bytes_field(1, v.name);      // ValueInfoProto.name
  w.bytes_field(2, type.str());  // type
  return std::move(w.str());
}

}  // namespace

std::string encode_model(const Graph& graph, int opset) {
  Writer g;
  for (size_t i = 0; i < graph.nodes.size(); ++i) g.bytes_field(1, node(graph.nodes[i], i));  // GraphProto.node
  g.bytes_field(2, graph.name);                                                               // name
  for (const Initializer& init : graph.initializers) g.bytes_field(5, tensor(init));          // initializer
  for (const ValueInfo& v : graph.inputs) g.bytes_field(11, value_info(v));                   // input
  for (const ValueInfo& v : graph.outputs) g.bytes_field(12, value_info(v));                  // output
  Writer opset_id;
  opset_id.bytes_field(1, "");   // OperatorSetIdProto.domain: the default one
  opset_id.int_field(2, opset);  // version
  Writer m;
  m.int_field(1, opset >= 15 ? 8 : 7);  // ModelProto.ir_version
  m.bytes_field(2, "libdl");            // producer_name
  m.bytes_field(7, g.str());            // graph
  m.bytes_field(8, opset_id.str());     // opset_import
  return std::move(m.str());
}

}  // namespace dl::nn::onnx
