// The ONNX form of each traced op of libdl (dl/ops/trace.h): the nodes GraphTracer::map_event writes
// (nn/onnx_trace.h). Every node written here means the same at opset 13 to 17.
#include <cmath>
#include <cstring>
#include <string_view>

#include "dl/core/error.h"
#include "dl/ops/shape_ops.h"
#include "nn/onnx_trace.h"

namespace dl::nn::onnx {

namespace {
std::vector<int64_t> dims_of(const Tensor& t) { return t.shape().vec(); }

// ONNX op types of the element-wise ops that map one to one.
const char* simple_op(std::string_view op) {
  static const std::pair<const char*, const char*> kTable[] = {{"relu", "Relu"},       {"sigmoid", "Sigmoid"},
                                                               {"tanh", "Tanh"},       {"exp", "Exp"},
                                                               {"log", "Log"},         {"sqrt", "Sqrt"},
                                                               {"abs", "Abs"},         {"neg", "Neg"},
                                                               {"softmax", "Softmax"}, {"log_softmax", "LogSoftmax"},
                                                               {"add", "Add"},         {"sub", "Sub"},
                                                               {"mul", "Mul"},         {"div", "Div"},
                                                               {"pow", "Pow"},         {"maximum", "Max"},
                                                               {"minimum", "Min"}};
  for (const auto& [name, type] : kTable)
    if (op == name) return type;
  return nullptr;
}

std::vector<int64_t> pair(const std::array<int, 2>& a) { return {a[0], a[1]}; }
}  // namespace

// Note [explicit broadcast]: two traced operands of rank 4 and different shapes are each brought to the
// output's shape first: a nearest Resize by the integer factor for H and W, an Expand for N and C. The
// same values in any runtime; OpenCV's dnn (4.6) broadcasts two traced operands only in a few cases
// (a channel-wise product) and fails on the others (x - mean(x, {2, 3}, true)).
std::string GraphTracer::broadcast4(const std::string& name, std::vector<int64_t> dims,
                                    const std::vector<int64_t>& out) {
  std::string cur = name;
  if (dims[2] != out[2] || dims[3] != out[3]) {
    const std::vector<float> scales = {1.f, 1.f, static_cast<float>(out[2] / dims[2]),
                                       static_cast<float>(out[3] / dims[3])};
    const std::string resized = fresh();
    emit("Resize", {cur, "", floats_constant(scales, {4})}, {resized},
         {Attr::text("mode", "nearest"), Attr::text("coordinate_transformation_mode", "asymmetric"),
          Attr::text("nearest_mode", "floor")});
    cur = resized;
    dims[2] = out[2];
    dims[3] = out[3];
  }
  for (size_t axis : {size_t{1}, size_t{0}}) {
    if (dims[axis] == out[axis] || (axis == 0 && options_.dynamic_batch)) continue;  // a fixed N would not do
    dims[axis] = out[axis];
    std::vector<int64_t> shape = dims;
    if (options_.dynamic_batch) shape[0] = 1;  // Expand broadcasts both ways: 1 keeps the operand's size
    const std::string expanded = fresh();
    emit("Expand", {cur, ints_constant(shape)}, {expanded});
    cur = expanded;
  }
  return cur;
}

// Note [pow]: a power by a constant 2, 3, 0.5, -0.5, -1 or -2 is written as products, square roots and
// reciprocals (the same values to rounding): OpenCV's dnn (4.6) folds a scale that follows a Pow into its
// base, computing (s x)^p for s x^p.
bool GraphTracer::exact_power(const std::string& x, double p, const std::string& out) {
  const bool negative = p < 0;
  const double m = negative ? -p : p;
  if (m != 0.5 && m != 2 && m != 3 && !(m == 1 && negative)) return false;
  std::string cur = x;
  auto step = [&](const char* type, std::vector<std::string> ins, bool last) {
    const std::string next = last ? out : fresh();
    emit(type, std::move(ins), {next});
    cur = next;
  };
  if (m == 0.5) step("Sqrt", {x}, !negative);
  if (m >= 2) step("Mul", {x, x}, !negative && m == 2);
  if (m == 3) step("Mul", {cur, x}, !negative);
  if (negative) step("Reciprocal", {cur}, true);
  return true;
}

// A binary op: a scalar on the right as a constant of shape [1]; two traced operands of rank 4 at most and
// different shapes lifted to rank 4 (sizes of 1 appended) and broadcast explicitly (Note [explicit
// broadcast]), the result reshaped back; a constant beside a rank-4 operand spread (spread_constant).
void GraphTracer::binary(const ops::TraceEvent& e, const char* type, const std::string& out) {
  const std::vector<int64_t> out_dims = dims_of(e.output);
  const std::string x = value(e.inputs[0], e.op);
  if (e.attrs.flag) {
    const double s = e.attrs.reals[0];
    if (std::string_view(e.op) == "pow" && exact_power(x, s, out)) return;
    return emit(type, {x, floats_constant({static_cast<float>(s)}, {1})}, {out});
  }
  std::vector<std::string> ins = {x, value(e.inputs[1], e.op)};
  const bool traced[2] = {values_.count(e.inputs[0].impl()) > 0, values_.count(e.inputs[1].impl()) > 0};
  const size_t rank = out_dims.size();
  if (traced[0] && traced[1] && e.inputs[0].shape() != e.inputs[1].shape() && rank <= 4) {
    std::vector<int64_t> out4 = out_dims;
    out4.resize(4, 1);
    for (size_t i = 0; i < 2; ++i) {
      std::vector<int64_t> d = dims_of(e.inputs[i]);
      d.insert(d.begin(), rank - d.size(), 1);  // aligned on the last dimensions, as broadcasting is
      d.resize(4, 1);
      if (rank < 4) {
        std::vector<int64_t> shape = d;
        if (options_.dynamic_batch && shape[0] == out4[0]) shape[0] = 0;
        const std::string lifted = fresh();
        emit("Reshape", {ins[i], ints_constant(shape)}, {lifted});
        ins[i] = lifted;
      }
      ins[i] = broadcast4(ins[i], d, out4);
    }
    if (rank == 4) return emit(type, ins, {out});
    const std::string result = fresh();
    emit(type, ins, {result});
    std::vector<int64_t> back = out_dims;
    if (options_.dynamic_batch) back[0] = 0;
    return emit("Reshape", {result, ints_constant(back)}, {out});
  }
  for (size_t i = 0; i < 2 && rank == 4; ++i)
    if (!traced[i] && traced[1 - i] && e.inputs[1 - i].dim() == 4)
      ins[i] = spread_constant(ins[i], e.inputs[i], out_dims);
  emit(type, ins, {out});
}

// A constant operand of a rank-4 traced one, as C x 1 x 1 (channel-wise) or else spread to C x H x W (the
// output's), the two forms of constant that OpenCV's dnn (4.6) broadcasts (it fails on a W or 1 x C x 1 x 1
// one). The same values in any runtime. A constant with a batch dimension stays as it is.
std::string GraphTracer::spread_constant(const std::string& name, const Tensor& c, const std::vector<int64_t>& out) {
  std::vector<int64_t> d = dims_of(c);
  while (d.size() > 3 && d.front() == 1) d.erase(d.begin());
  if (d.size() > 3 || c.numel() == 1) return name;
  while (d.size() < 3) d.insert(d.begin(), 1);
  const std::vector<int64_t> target = d[1] == 1 && d[2] == 1 ? d : std::vector<int64_t>{out[1], out[2], out[3]};
  if (target == dims_of(c)) return name;
  std::string spread = name + "_spread";
  for (int64_t v : target) spread += "_" + std::to_string(v);
  for (const Initializer& init : graph.initializers)
    if (init.name == spread) return spread;  // a constant read twice (a layer applied twice)
  ops::detail::TracePause pause;             // libdl's own ops make the constant, untraced
  graph.initializers.push_back({spread, ops::expand(ops::reshape(c.detach(), Shape(d)), Shape(target))});
  return spread;
}

// The slices of a constant index (ints: the dimension) as Slice nodes joined by a Concat, each run of
// consecutive indices one Slice (OpenCV's dnn (4.6) gathers a single index only); Gather beyond 16 runs.
void GraphTracer::index_select(const ops::TraceEvent& e, const std::string& out) {
  const Tensor& index = e.inputs[1];
  DL_CHECK(!values_.count(index.impl()), "ONNX export: index_select with an index computed from the inputs");
  check_no_untraced_history(index, e.op);
  const Tensor host = index.to(Device::cpu()).to(DType::kInt64);
  const std::vector<int64_t> idx(host.data<int64_t>(), host.data<int64_t>() + host.numel());
  const int64_t d = e.attrs.ints[0];
  std::vector<std::pair<int64_t, int64_t>> runs;  // [start, end)
  for (int64_t i : idx) {
    if (!runs.empty() && runs.back().second == i)
      ++runs.back().second;
    else
      runs.emplace_back(i, i + 1);
  }
  const std::string x = value(e.inputs[0], e.op);
  if (runs.size() > 16) return emit("Gather", {x, ints_constant(idx)}, {out}, {Attr::integer("axis", d)});
  std::vector<std::string> parts;
  for (const auto& run : runs) {
    parts.push_back(runs.size() == 1 ? out : fresh());
    emit("Slice", {x, ints_constant({run.first}), ints_constant({run.second}), ints_constant({d})}, {parts.back()});
  }
  if (runs.size() > 1) emit("Concat", parts, {out}, {Attr::integer("axis", d)});
}

// x reshaped to N x G x (C / G) H x W (N x G x rest x 1 for other ranks), InstanceNormalization with unit
// scale and zero bias, reshaped back, then the per-channel weight and bias (ints: groups; reals: eps).
void GraphTracer::group_norm(const ops::TraceEvent& e, const std::string& out) {
  const Tensor& x = e.inputs[0];
  const int64_t n = x.size(0), c = x.size(1), g = e.attrs.ints[0];
  const int64_t w = x.dim() == 4 ? x.size(3) : 1;
  const std::vector<int64_t> grouped = {options_.dynamic_batch ? 0 : n, g, x.numel() / (n * g * w), w};
  std::vector<int64_t> back = dims_of(x), per_channel(static_cast<size_t>(x.dim() - 1), 1);
  if (options_.dynamic_batch) back[0] = 0;
  per_channel[0] = c;
  const std::string r = fresh(), normed = fresh();
  emit("Reshape", {value(x, e.op), ints_constant(grouped)}, {r});
  emit("InstanceNormalization",
       {r, floats_constant(std::vector<float>(static_cast<size_t>(g), 1.f), {g}),
        floats_constant(std::vector<float>(static_cast<size_t>(g), 0.f), {g})},
       {normed}, {Attr::real("epsilon", e.attrs.reals[0])});
  std::string cur = e.inputs[1].defined() || e.inputs[2].defined() ? fresh() : out;
  emit("Reshape", {normed, ints_constant(back)}, {cur});
  for (size_t i = 1; i < 3; ++i) {
    if (!e.inputs[i].defined()) continue;
    const std::string shaped = fresh(), next = i == 1 && e.inputs[2].defined() ? fresh() : out;
    emit("Reshape", {value(e.inputs[i], e.op), ints_constant(per_channel)}, {shaped});  // C x 1 x ... x 1
    emit(i == 1 ? "Mul" : "Add", {cur, shaped}, {next});
    cur = next;
  }
}

void GraphTracer::map_event(const ops::TraceEvent& e, const std::string& out) {
  const std::string_view op = e.op;
  const ops::TraceAttrs& a = e.attrs;
  const Tensor& x = e.inputs[0];
  auto in = [&](size_t i) { return value(e.inputs[i], e.op); };
  const std::vector<int64_t> out_dims = dims_of(e.output), x_dims = dims_of(x);
  if (op == "conv2d" || op == "conv_transpose2d") {
    const Conv2dParams& p = a.conv;
    std::vector<Attr> attrs = {Attr::integers("kernel_shape", {e.inputs[1].size(2), e.inputs[1].size(3)}),
                               Attr::integers("strides", pair(p.stride)),
                               Attr::integers("pads", {p.padding[0], p.padding[1], p.padding[0], p.padding[1]}),
                               Attr::integers("dilations", pair(p.dilation)), Attr::integer("group", p.groups)};
    if (op == "conv_transpose2d") attrs.push_back(Attr::integers("output_padding", a.ints));
    std::vector<std::string> ins = {in(0), in(1)};
    if (e.inputs.size() > 2 && e.inputs[2].defined()) ins.push_back(in(2));
    const std::string conv = a.flag ? fresh() : out;  // flag: a fused ReLU (ops::conv2d_relu)
    emit(op == "conv2d" ? "Conv" : "ConvTranspose", ins, {conv}, attrs);
    if (a.flag) emit("Relu", {conv}, {out});
    return;
  }
  if (op == "batch_norm") {
    const std::string bn = a.flag ? fresh() : out;
    emit("BatchNormalization", {in(0), in(1), in(2), in(3), in(4)}, {bn}, {Attr::real("epsilon", a.reals[0])});
    if (a.flag) emit("Relu", {bn}, {out});
    return;
  }
  if (const char* type = simple_op(op)) {
    if (e.inputs.size() > 1) return binary(e, type, out);
    std::vector<Attr> attrs;
    if (op == "softmax" || op == "log_softmax") attrs.push_back(Attr::integer("axis", 1));
    return emit(type, {in(0)}, {out}, attrs);
  }
  if (op == "max" || op == "min") {  // along one dimension (ints: it; flag: keepdim)
    const std::string reduced = a.flag || x.dim() > 1 ? out : fresh();
    emit(op == "max" ? "ReduceMax" : "ReduceMin", {in(0)}, {reduced},
         {Attr::integers("axes", {a.ints[0]}), Attr::integer("keepdims", a.flag || x.dim() == 1)});
    if (reduced != out) emit("Reshape", {reduced, ints_constant(out_dims)}, {out});  // libdl's [1]
    return;
  }
  if (op == "index_select") return index_select(e, out);
  if (op == "group_norm") return group_norm(e, out);
  if (op == "leaky_relu") return emit("LeakyRelu", {in(0)}, {out}, {Attr::real("alpha", a.reals[0])});
  if (op == "elu") return emit("Elu", {in(0)}, {out}, {Attr::real("alpha", a.reals[0])});
  if (op == "clamp") {
    // max(x, lo) = lo + relu(x - lo), then min(y, hi) = y - relu(y - hi) (exact to rounding): OpenCV's dnn
    // (4.6) reads Clip's bounds only before opset 11 and takes no constant in Min or Max. An infinite
    // bound is no bound.
    std::string cur = in(0);
    for (int side = 0; side < 2; ++side) {
      const double bound = a.reals[static_cast<size_t>(side)];
      if (std::isinf(bound)) continue;
      const std::string c = floats_constant({static_cast<float>(bound)}, {1}), shifted = fresh(), cut = fresh();
      emit("Sub", {cur, c}, {shifted});
      emit("Relu", {shifted}, {cut});
      const std::string next = side == 1 || std::isinf(a.reals[1]) ? out : fresh();
      emit(side == 0 ? "Add" : "Sub", side == 0 ? std::vector<std::string>{c, cut} : std::vector<std::string>{cur, cut},
           {next});
      cur = next;
    }
    if (cur != out) emit("Identity", {cur}, {out});
    return;
  }
  if (op == "rsqrt") {
    const std::string root = fresh();
    emit("Sqrt", {in(0)}, {root});
    return emit("Reciprocal", {root}, {out});
  }
  if (op == "silu") {
    const std::string s = fresh();
    emit("Sigmoid", {in(0)}, {s});
    return emit("Mul", {in(0), s}, {out});
  }
  if (op == "gelu") {  // x (1 + erf(x / sqrt 2)) / 2: the erf form libdl computes
    const std::string scaled = fresh(), erf = fresh(), one_plus = fresh(), prod = fresh();
    emit("Div", {in(0), floats_constant({static_cast<float>(std::sqrt(2.0))}, {1})}, {scaled});
    emit("Erf", {scaled}, {erf});
    emit("Add", {erf, floats_constant({1.f}, {1})}, {one_plus});
    emit("Mul", {in(0), one_plus}, {prod});
    return emit("Mul", {prod, floats_constant({0.5f}, {1})}, {out});
  }
  if (op == "max_pool2d" || op == "avg_pool2d") {
    const Pool2dParams& p = a.pool;
    if (op == "avg_pool2d" && p.kernel[0] == x.size(2) && p.kernel[1] == x.size(3) && p.padding[0] == 0 &&
        p.padding[1] == 0)
      return emit("GlobalAveragePool", {in(0)}, {out});
    std::vector<Attr> attrs = {Attr::integers("kernel_shape", pair(p.kernel)),
                               Attr::integers("strides", pair(p.stride)),
                               Attr::integers("pads", {p.padding[0], p.padding[1], p.padding[0], p.padding[1]})};
    if (op == "max_pool2d" || (p.padding[0] == 0 && p.padding[1] == 0))
      return emit(op == "max_pool2d" ? "MaxPool" : "AveragePool", {in(0)}, {out}, attrs);
    // libdl's average counts the padded zeros: explicit zeros, then a pool without padding (OpenCV's dnn
    // (4.6) leaves them out of the count whatever count_include_pad says).
    const std::string padded = fresh();
    emit("Pad", {in(0), ints_constant({0, 0, p.padding[0], p.padding[1], 0, 0, p.padding[0], p.padding[1]})}, {padded});
    attrs.pop_back();
    return emit("AveragePool", {padded}, {out}, attrs);
  }
  if (op == "linear") {
    std::vector<std::string> ins = {in(0), in(1)};
    if (e.inputs[2].defined()) ins.push_back(in(2));
    return emit("Gemm", ins, {out}, {Attr::integer("transB", 1)});
  }
  if (op == "matmul") {
    if (x.dim() > 1 || e.inputs[1].dim() > 1) return emit("MatMul", {in(0), in(1)}, {out});
    const std::string dot = fresh();  // two vectors: ONNX's scalar, libdl's [1]
    emit("MatMul", {in(0), in(1)}, {dot});
    return emit("Reshape", {dot, ints_constant({1})}, {out});
  }
  if (op == "sum" || op == "mean") {
    // All dimensions without keepdim: libdl's [1], so keep them and reshape.
    const bool all = a.ints.empty() || (!a.flag && static_cast<int>(a.ints.size()) == x.dim());
    std::vector<int64_t> axes = a.ints;
    if (a.ints.empty())
      for (int64_t d = 0; d < x.dim(); ++d) axes.push_back(d);
    // A sum is the mean times the count: ReduceMean's axes are an attribute up to opset 17, where
    // ReduceSum's became an input at 13, which OpenCV's dnn (4.6) does not read.
    int64_t count = 1;
    for (int64_t d : axes) count *= x_dims[static_cast<size_t>(d)];
    std::string value = all || op == "sum" ? fresh() : out;
    emit("ReduceMean", {in(0)}, {value}, {Attr::integers("axes", axes), Attr::integer("keepdims", all || a.flag)});
    if (op == "sum") {
      const std::string sum = all ? fresh() : out;
      emit("Mul", {value, floats_constant({static_cast<float>(count)}, {1})}, {sum});
      value = sum;
    }
    if (all) emit("Reshape", {value, ints_constant({1})}, {out});
    return;
  }
  if (op == "reshape") {
    if (x.dim() > 2 && out_dims.size() == 2 && out_dims[0] == x_dims[0])
      return emit("Flatten", {in(0)}, {out}, {Attr::integer("axis", 1)});
    std::vector<int64_t> shape = out_dims;
    if (options_.dynamic_batch) {
      DL_CHECK(!shape.empty() && !x_dims.empty() && shape[0] == x_dims[0] && x_dims[0] == batch_,
               "ONNX export with dynamic_batch: a reshape from ", x.shape().str(), " to ", e.output.shape().str(),
               " does not keep the batch dimension 0");
      shape[0] = 0;  // ONNX's "copy dimension 0 of the input"
    }
    return emit("Reshape", {in(0), ints_constant(shape)}, {out});
  }
  if (op == "expand") {
    std::vector<int64_t> shape = out_dims;
    if (options_.dynamic_batch) {
      DL_CHECK(x_dims.size() == shape.size() && x_dims[0] == shape[0],
               "ONNX export with dynamic_batch: an expand from ", x.shape().str(), " to ", e.output.shape().str(),
               " changes the batch dimension 0");
      shape[0] = 1;  // Expand broadcasts both ways: 1 keeps the input's size
    }
    return emit("Expand", {in(0), ints_constant(shape)}, {out});
  }
  if (op == "permute") return emit("Transpose", {in(0)}, {out}, {Attr::integers("perm", a.ints)});
  if (op == "concat") {
    std::vector<std::string> ins;
    for (size_t i = 0; i < e.inputs.size(); ++i) ins.push_back(in(i));
    return emit("Concat", ins, {out}, {Attr::integer("axis", a.ints[0])});
  }
  if (op == "slice") {  // ints: dim, start, end, step (resolved and clamped by the front end)
    return emit("Slice",
                {in(0), ints_constant({a.ints[1]}), ints_constant({a.ints[2]}), ints_constant({a.ints[0]}),
                 ints_constant({a.ints[3]})},
                {out});
  }
  if (op == "resize_bilinear" || op == "upsample_nearest2d") {
    const bool linear = op == "resize_bilinear";
    std::vector<Attr> attrs = {Attr::text("mode", linear ? "linear" : "nearest"),
                               Attr::text("coordinate_transformation_mode", linear ? "half_pixel" : "asymmetric")};
    if (!linear) attrs.push_back(Attr::text("nearest_mode", "floor"));
    if (linear && !options_.dynamic_batch)
      return emit("Resize", {in(0), "", "", ints_constant(out_dims)}, {out}, attrs);
    // The scales: exact for the integer factors of upsample_nearest2d; out / in otherwise, which a
    // runtime multiplies back to the size (floor) and uses for the coordinates, as libdl does.
    // A ratio that is no integer is raised by 1e-6, relative, so that floor(in scale) is out whatever the
    // runtime's rounding (the sampling positions move by as much).
    auto ratio = [](int64_t o, int64_t i) {
      return o % i == 0 ? static_cast<float>(o / i) : static_cast<float>(static_cast<double>(o) / i * (1 + 1e-6));
    };
    const std::vector<float> scales = {1.f, 1.f, ratio(out_dims[2], x_dims[2]), ratio(out_dims[3], x_dims[3])};
    return emit("Resize", {in(0), "", floats_constant(scales, {4})}, {out}, attrs);
  }
  DL_THROW("ONNX export: op '", e.op, "' has no ONNX form, and its input ", x.shape().str(),
           " depends on the model's inputs");
}

}  // namespace dl::nn::onnx
