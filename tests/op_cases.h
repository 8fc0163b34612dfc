// The one table of op cases (Note [one table of op cases]). Each row names an op and a case, says how to
// make its inputs (shapes, values that keep clear of kinks, labels), calls the libdl front end and gives
// the libtorch expression of the same thing. The rows drive
//   test_gradcheck     float64 finite differences (rows with kGrad; the input subsets of `wrt`)
//   test_torch_parity  float32 forward and gradients against libtorch (kTorch, rows with a torch expression)
//   test_gpu_parity    the same front end on the CPU and on CUDA, the CUDA allocator poisoning (kGpu)
//   test_kernels       the CUDA kernel of a row's unary functor under the emulation, against the CPU (kKernel)
//   bench_ops          libdl beside libtorch at the sizes of the models (kBench)
//
// Note [one table of op cases]: adding an op is its front end, its bodies and one call here; a helper
// such as unary() expands that call into the cases of every suite. Adding an element-wise unary op takes
// five files: its declaration (dl/ops/activation.h), its front end (ops/activation.cpp), its functor
// (kernels/unary_ops.cuh: the CUDA body, and the name of the op for both backends), its Eigen expression
// (backend/cpu/elementwise.cpp) and its unary() call here. A row's extra outputs (after the first, the
// one differentiated) are compared forward only: batch norm's running statistics.
//
// Include <torch/torch.h> first and define DL_OP_CASES_WITH_TORCH to 1 for the libtorch expressions;
// without it, DL_TORCH(...) drops them unseen, so the other suites neither include nor link libtorch.
#pragma once
#include <dl/dl.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <numeric>
#include <ostream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "unary_ops.cuh"

#ifndef DL_OP_CASES_WITH_TORCH
#define DL_OP_CASES_WITH_TORCH 0
#endif

namespace dl::testing {

// --- inputs that keep clear of kinks ---

// float64 normal values pushed out of (-margin, margin): ReLU never changes side under +-step.
inline Tensor make_away_from_zero(const Shape& shape, Generator& gen, double margin = 0.05) {
  Tensor t = Tensor::randn(shape, gen, DType::kFloat64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = p[i] >= 0 ? p[i] + margin : p[i] - margin;
  return t;
}

// float64 values, all different, at least `spacing` apart (a shuffled grid centred on 0): no two
// elements of a pooling window tie, so the argmax never moves under +-step.
inline Tensor make_distinct(const Shape& shape, Generator& gen, double spacing = 0.01) {
  Tensor t = Tensor::empty(shape, DType::kFloat64);
  const int64_t n = t.numel();
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[gen.below(static_cast<uint64_t>(i + 1))]);
  double* p = t.data<double>();
  for (int64_t i = 0; i < n; ++i) p[i] = (static_cast<double>(order[i]) - 0.5 * static_cast<double>(n)) * spacing;
  return t;
}

// The suites a row runs in.
enum Suite : unsigned {
  kGrad = 1,
  kTorch = 2,
  kGpu = 4,
  kKernel = 8,  // rows with a functor of kernels/unary_ops.cuh: its kernel under the emulation (test_kernels)
  kBench = 16,
  kTests = kGrad | kTorch | kGpu | kKernel
};

// The functor of an element-wise unary op (kernels/unary_ops.cuh), or none.
#define DL_UNARY_ALTERNATIVE(Op) , kern::Op
using UnaryKernel = std::variant<std::monostate DL_UNARY_OPS(DL_UNARY_ALTERNATIVE)>;
#undef DL_UNARY_ALTERNATIVE

// How one input is made (in float64, then converted to the suite's dtype and device).
struct Input {
  enum Kind { kNormal, kUniform, kAwayFromZero, kDistinct, kLabels } kind = kNormal;
  Shape shape;
  double a = 1, b = 0;   // normal: a N(0, 1) + b; uniform: in [a, b); labels: a classes, b ignore_index
  int ignore_every = 0;  // labels: every k-th label is ignore_index (0: none)
  bool grad = true;      // differentiated (the gradient suites check it); labels and running statistics not
};

inline Input normal(Shape s, double scale = 1, double shift = 0) {
  return {Input::kNormal, std::move(s), scale, shift};
}
inline Input uniform(Shape s, double lo, double hi) { return {Input::kUniform, std::move(s), lo, hi}; }
inline Input away_from_zero(Shape s) { return {Input::kAwayFromZero, std::move(s)}; }  // kinks at 0 stay clear
inline Input distinct(Shape s) { return {Input::kDistinct, std::move(s)}; }            // no ties in a max window
inline Input constant(Shape s, double v) { return {Input::kNormal, std::move(s), 0, v, 0, false}; }
inline Input state(Input in) {  // read and updated by the op, never differentiated
  in.grad = false;
  return in;
}
inline Input labels(Shape s, int classes, int ignore_index = -1, int ignore_every = 0) {
  return {Input::kLabels, std::move(s), static_cast<double>(classes), static_cast<double>(ignore_index),
          ignore_every,   false};
}

using In = std::vector<Tensor>;
// What a row's function returns: the output that is differentiated, then any compared forward only.
struct Outs {
  std::vector<Tensor> v;
  Outs(Tensor y) : v{std::move(y)} {}  // NOLINT: a single output converts
  Outs(std::initializer_list<Tensor> l) : v(l) {}
};
using DlFn = std::function<Outs(const In&)>;
#define DL_OP(...) [=](const ::dl::testing::In& x) -> ::dl::testing::Outs { return __VA_ARGS__; }

#if DL_OP_CASES_WITH_TORCH
using TorchIn = std::vector<torch::Tensor>;
struct TorchOuts {
  std::vector<torch::Tensor> v;
  TorchOuts(torch::Tensor y) : v{std::move(y)} {}  // NOLINT
  TorchOuts(std::initializer_list<torch::Tensor> l) : v(l) {}
};
using TorchFn = std::function<TorchOuts(const TorchIn&)>;
#define DL_TORCH(...) \
  ::dl::testing::TorchFn([=](const ::dl::testing::TorchIn& x) -> ::dl::testing::TorchOuts { return __VA_ARGS__; })
#else
struct TorchFn {              // no libtorch in this suite: the expressions were dropped
  TorchFn(std::nullptr_t) {}  // NOLINT
  explicit operator bool() const { return false; }
};
#define DL_TORCH(...) nullptr
#endif

struct OpCase {
  std::string op, name;  // family ("conv2d") and case ("Stride2NonSquare")
  std::vector<Input> inputs;
  DlFn dl = nullptr;
  TorchFn torch = nullptr;
  unsigned suites = kTests;
  std::vector<std::vector<bool>> wrt = {{}};  // gradcheck: input subsets ({}: every input with grad)
  double gpu_tol = 1e-4;                      // CUDA vs CPU: |diff| <= tol (1 + |cpu|)
  double bench_tensors = 2;                   // input-sized tensors one forward reads or writes
  UnaryKernel unary = {};                     // the functor of an element-wise unary op (kKernel)

  std::string id() const {  // a GoogleTest name: letters, digits and _
    std::string s = op + "_" + name;
    for (char& c : s)
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
  }
  bool in(Suite s) const {
    if (s == kTorch && !torch) return false;
    if (s == kKernel && std::holds_alternative<std::monostate>(unary)) return false;
    return (suites & s) != 0;
  }
};

inline void PrintTo(const OpCase& c, std::ostream* os) { *os << c.op << "/" << c.name; }

// FNV-1a of the row's name: each row draws its own inputs, whatever the order of the table.
inline uint64_t seed_of(const OpCase& c) {
  uint64_t h = 1469598103934665603ull;
  for (char ch : c.op + "/" + c.name) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
  return h;
}

inline Tensor make_input(const Input& in, Generator& gen) {
  switch (in.kind) {
    case Input::kNormal:
      return ops::add(ops::scale(Tensor::randn(in.shape, gen, DType::kFloat64), in.a),
                      Tensor::full(in.shape, in.b, DType::kFloat64));
    case Input::kUniform:
      return Tensor::uniform(in.shape, in.a, in.b, gen, DType::kFloat64);
    case Input::kAwayFromZero:
      return make_away_from_zero(in.shape, gen);
    case Input::kDistinct:
      return make_distinct(in.shape, gen);
    case Input::kLabels: {
      std::vector<int32_t> v(static_cast<size_t>(in.shape.numel()));
      for (size_t i = 0; i < v.size(); ++i)
        v[i] = in.ignore_every > 0 && i % in.ignore_every == 1
                   ? static_cast<int32_t>(in.b)
                   : static_cast<int32_t>(gen.below(static_cast<uint64_t>(in.a)));
      return Tensor::from_vector<int32_t>(in.shape, v);
    }
  }
  return {};
}

// The row's inputs as `dtype` (floating inputs; labels stay int32) on `device`, the same values on every call.
inline In make_inputs(const OpCase& c, DType dtype, Device device = Device::cpu()) {
  Generator gen(seed_of(c));
  autograd::NoGradGuard no_grad;
  In out;
  for (const Input& in : c.inputs) {
    Tensor t = make_input(in, gen);
    if (in.kind != Input::kLabels) t = t.to(dtype);
    out.push_back(t.to(device));
  }
  return out;
}

// The rows of one suite, in table order.
inline const std::vector<OpCase>& op_cases();
inline std::vector<OpCase> op_cases_for(Suite s) {
  std::vector<OpCase> out;
  for (const OpCase& c : op_cases())
    if (c.in(s)) out.push_back(c);
  return out;
}
// The test name of a row, for INSTANTIATE_TEST_SUITE_P(..., OpCaseId()).
struct OpCaseId {
  template <typename Info>
  std::string operator()(const Info& info) const {
    return info.param.id();
  }
};

// ---- row builders: one call, every case of an op family ----
namespace cases {

// "2x3x4": a shape as a case name.
inline std::string dims(const Shape& s) {
  std::string out;
  for (int64_t d : s.vec()) out += (out.empty() ? "" : "x") + std::to_string(d);
  return out;
}

inline Conv2dParams conv_params(std::array<int, 2> stride, std::array<int, 2> padding, std::array<int, 2> dilation,
                                int groups) {
  Conv2dParams p;
  p.stride = stride;
  p.padding = padding;
  p.dilation = dilation;
  p.groups = groups;
  return p;
}

inline Pool2dParams pool_params(std::array<int, 2> kernel, std::array<int, 2> stride, std::array<int, 2> padding) {
  Pool2dParams p;
  p.kernel = kernel;
  p.stride = stride;
  p.padding = padding;
  return p;
}

// Input, weight and bias gradients together, then the input's and the weight's alone.
inline OpCase conv2d(std::string name, Shape x, Shape w, Conv2dParams p, bool bias, unsigned suites = kTests) {
  OpCase c{"conv2d", std::move(name), {normal(x), normal(w)}};
  if (bias) c.inputs.push_back(normal({w[0]}));
  c.dl = DL_OP(ops::conv2d(x[0], x[1], bias ? x[2] : Tensor(), p));
  c.torch = DL_TORCH(torch::conv2d(x[0], x[1], bias ? x[2] : torch::Tensor(), {p.stride[0], p.stride[1]},
                                   {p.padding[0], p.padding[1]}, {p.dilation[0], p.dilation[1]}, p.groups));
  c.suites = suites;
  c.wrt = {{}, {true, false, false}, {false, true, false}};
  if (!bias) c.wrt = {{}, {true, false}, {false, true}};
  c.gpu_tol = 1e-3;
  return c;
}

// The transposed convolution: weight C_in x C_out/groups x R x S (PyTorch's layout).
inline OpCase conv_transpose2d(std::string name, Shape x, Shape w, Conv2dParams p, std::array<int, 2> out_pad,
                               bool bias, unsigned suites = kTests) {
  OpCase c{"conv_transpose2d", std::move(name), {normal(x), normal(w)}};
  if (bias) c.inputs.push_back(normal({w[1] * p.groups}));
  c.dl = DL_OP(ops::conv_transpose2d(x[0], x[1], bias ? x[2] : Tensor(), p, out_pad));
  c.torch = DL_TORCH(torch::conv_transpose2d(x[0], x[1], bias ? x[2] : torch::Tensor(), {p.stride[0], p.stride[1]},
                                             {p.padding[0], p.padding[1]}, {out_pad[0], out_pad[1]}, p.groups,
                                             {p.dilation[0], p.dilation[1]}));
  c.suites = suites;
  c.wrt = {{}, {true, false, false}, {false, true, false}};
  if (!bias) c.wrt = {{}, {true, false}, {false, true}};
  c.gpu_tol = 1e-3;
  return c;
}

// x, gamma, beta differentiated; the running statistics are inputs too (updated in training, compared
// after the step as extra outputs).
// relu: batch norm with its ReLU fused (BatchNormOptions::relu) against relu(batch_norm(...)) in libtorch.
inline OpCase batch_norm(std::string name, Shape x, bool training, double momentum = 0.1, double eps = 1e-5,
                         double x_scale = 1, double x_shift = 0, bool relu = false) {
  const int64_t ch = x[1];
  OpCase c{relu ? "batch_norm_relu" : "batch_norm",
           std::move(name),
           {normal(x, x_scale, x_shift), uniform({ch}, 0.5, 1.5), normal({ch}), state(normal({ch})),
            state(uniform({ch}, 0.5, 2.0))}};
  ops::BatchNormOptions opt;
  opt.training = training;
  opt.momentum = momentum;
  opt.eps = eps;
  opt.relu = relu;
  c.dl = [opt](const In& x) -> Outs {
    Tensor rm = x[3], rv = x[4];
    return {ops::batch_norm(x[0], x[1], x[2], rm, rv, opt), rm, rv};
  };
  c.torch =
      DL_TORCH({relu ? torch::relu(torch::batch_norm(x[0], x[1], x[2], x[3], x[4], training, momentum, eps, false))
                     : torch::batch_norm(x[0], x[1], x[2], x[3], x[4], training, momentum, eps, false),
                x[3], x[4]});
  c.wrt = {{}, {true, false, false, false, false}, {false, true, true, false, false}};
  c.bench_tensors = 3;
  return c;
}

// Max pooling on distinct values (no ties: the argmax never moves under the gradcheck's step) and average
// pooling counting padded zeros, as PyTorch's default.
inline std::vector<OpCase> pool2d(std::string name, Shape x, Pool2dParams p) {
  OpCase max{"max_pool2d", name, {distinct(x)}};
  max.dl = DL_OP(ops::max_pool2d(x[0], p));
  max.torch = DL_TORCH(
      torch::max_pool2d(x[0], {p.kernel[0], p.kernel[1]}, {p.stride[0], p.stride[1]}, {p.padding[0], p.padding[1]}));
  OpCase avg{"avg_pool2d", std::move(name), {normal(x)}};
  avg.dl = DL_OP(ops::avg_pool2d(x[0], p));
  avg.torch = DL_TORCH(torch::avg_pool2d(x[0], {p.kernel[0], p.kernel[1]}, {p.stride[0], p.stride[1]},
                                         {p.padding[0], p.padding[1]}, false, true));
  return {max, avg};
}

// Weighted cross-entropy from logits; labels drawn in [0, C), every 4th ignored when ignore_index >= 0.
inline OpCase cross_entropy(std::string name, Shape logits, bool weighted, int32_t ignore_index,
                            unsigned suites = kTests) {
  std::vector<int64_t> ls = logits.vec();
  ls.erase(ls.begin() + 1);
  const int classes = static_cast<int>(logits[1]);
  OpCase c{"cross_entropy",
           std::move(name),
           {normal(logits), labels(Shape(ls), classes, ignore_index, ignore_index >= 0 ? 4 : 0)}};
  if (weighted) c.inputs.push_back(state(uniform({classes}, 0.2, 3.0)));
  c.dl = [weighted, ignore_index](const In& x) -> Outs {
    ops::CrossEntropyOptions o;
    if (weighted) o.class_weights = x[2];
    o.ignore_index = ignore_index;
    return ops::cross_entropy(x[0], x[1], o);
  };
#if DL_OP_CASES_WITH_TORCH
  c.torch = DL_TORCH(torch::nn::functional::cross_entropy(x[0], x[1].to(torch::kLong),
                                                          torch::nn::functional::CrossEntropyFuncOptions()
                                                              .weight(weighted ? x[2] : torch::Tensor())
                                                              .ignore_index(ignore_index >= 0 ? ignore_index : -100)));
#endif
  c.suites = suites;
  return c;
}

inline OpCase softmax(std::string name, Shape x, bool log, double scale = 1) {
  OpCase c{log ? "log_softmax" : "softmax", std::move(name), {normal(x, scale)}};
  c.dl = DL_OP(log ? ops::log_softmax(x[0]) : ops::softmax(x[0]));
  c.torch = DL_TORCH(log ? torch::log_softmax(x[0], 1) : torch::softmax(x[0], 1));
  return c;
}

inline OpCase linear(std::string name, Shape x, Shape w, bool bias, unsigned suites = kTests) {
  OpCase c{"linear", std::move(name), {normal(x), normal(w)}};
  if (bias) c.inputs.push_back(normal({w[0]}));
  c.dl = DL_OP(ops::linear(x[0], x[1], bias ? x[2] : Tensor()));
  c.torch = DL_TORCH(bias ? torch::linear(x[0], x[1], x[2]) : torch::linear(x[0], x[1]));
  if (bias) c.wrt = {{}, {false, true, true}};
  c.suites = suites;
  c.gpu_tol = 1e-3;
  return c;
}

inline OpCase concat(std::string name, std::vector<Shape> xs) {
  OpCase c{"concat", std::move(name), {}};
  for (Shape& s : xs) c.inputs.push_back(normal(std::move(s)));
  c.dl = DL_OP(ops::concat(x));
  c.torch = DL_TORCH(torch::cat(x, 1));
  c.bench_tensors = 4;
  return c;
}

// How a builder makes one input of a shape (normal values unless the op needs others).
using MakeInput = Input (*)(Shape);
inline Input normal_input(Shape s) { return normal(std::move(s)); }
inline Input positive_input(Shape s) { return uniform(std::move(s), 0.5, 2.5); }

// An element-wise binary op at same shapes and at broadcasting ones: a channel bias, both sides
// stretching, missing leading dimensions, the larger operand on the right.
template <typename Dl, typename Torch>
std::vector<OpCase> binary(const std::string& op, Dl dl, Torch torch, std::vector<std::vector<bool>> wrt = {{}},
                           MakeInput make_a = normal_input, MakeInput make_b = normal_input) {
  std::vector<OpCase> out;
  const std::vector<std::pair<Shape, Shape>> pairs = {{{5}, {5}},
                                                      {{2, 3, 2, 2}, {2, 3, 2, 2}},
                                                      {{3, 4, 5}, {3, 4, 5}},
                                                      {{2, 3, 2, 2}, {3, 1, 1}},
                                                      {{3, 1, 5}, {4, 1}},
                                                      {{4}, {2, 3, 4}},
                                                      {{1, 3}, {2, 1}}};
  for (const auto& [sa, sb] : pairs) {
    OpCase c{op,
             sa == sb ? dims(sa) : dims(sa) + "_by_" + (sb.ndim() ? dims(sb) : "scalar"),
             {make_a(sa), make_b(sb)},
             dl,
             torch};
    c.wrt = wrt;
    out.push_back(c);
  }
  return out;
}

// An op with a scalar on the right (no copy of it to the device), at two shapes.
template <typename Dl, typename Torch>
std::vector<OpCase> scalar_op(const std::string& op, const std::string& name, Dl dl, Torch torch,
                              MakeInput make = normal_input) {
  std::vector<OpCase> out;
  for (const Shape& s : {Shape{7}, Shape{2, 3, 4}}) out.push_back({op, name + "_" + dims(s), {make(s)}, dl, torch});
  return out;
}

inline const std::vector<std::pair<std::string, Shape>>& bench_shapes() {
  // The MNIST CNN at batch 1024, ResNet-18 at 360 x 480 and batch 2.
  static const std::vector<std::pair<std::string, Shape>> shapes = {{"mnist.block1", {1024, 8, 28, 28}},
                                                                    {"resnet18.layer1", {2, 64, 90, 120}},
                                                                    {"resnet18.layer4", {2, 512, 23, 30}}};
  return shapes;
}

// An element-wise unary op, the one row that adding one takes: every suite's shapes (1000: no block size of
// the kernel tests divides it), inputs away from 0 (kinks), its functor for the kernel tests (none: ReLU,
// which runs cuDNN), and the benchmark sizes.
// make: the inputs, away from 0 unless given (log and sqrt take positive ones).
template <typename Dl, typename Torch>
std::vector<OpCase> unary(const std::string& op, Dl dl, Torch torch, UnaryKernel kernel = {},
                          MakeInput make = away_from_zero) {
  std::vector<OpCase> out;
  for (const Shape& s :
       {Shape{7}, Shape{3, 5}, Shape{2, 3, 4, 2}, Shape{17}, Shape{4, 9}, Shape{2, 3, 5, 7}, Shape{1000}}) {
    OpCase c{op, dims(s), {make(s)}, dl, torch};
    c.unary = kernel;
    out.push_back(c);
  }
  for (const auto& [name, s] : bench_shapes())
    out.push_back({op, name, {make == away_from_zero ? normal(s) : make(s)}, dl, torch, kBench});
  return out;
}

inline std::vector<OpCase> all() {
  std::vector<OpCase> t;
  auto add = [&t](std::vector<OpCase> more) {
    for (OpCase& c : more) t.push_back(std::move(c));
  };
  const unsigned kNoGrad = kTorch | kGpu;  // too large for finite differences

  // ---- conv2d ----
  add({conv2d("Basic3x3Pad1", {2, 3, 5, 5}, {4, 3, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 1), true),
       conv2d("NoPadNoBias", {1, 2, 5, 4}, {3, 2, 3, 3}, conv_params({1, 1}, {0, 0}, {1, 1}, 1), false),
       conv2d("Stride2NonSquare", {2, 3, 7, 6}, {4, 3, 3, 2}, conv_params({2, 2}, {1, 0}, {1, 1}, 1), true),
       conv2d("Dilation2", {1, 2, 7, 8}, {3, 2, 3, 3}, conv_params({1, 1}, {2, 1}, {2, 2}, 1), false),
       conv2d("Groups2", {2, 4, 6, 5}, {6, 2, 3, 3}, conv_params({1, 2}, {1, 1}, {1, 1}, 2), true),
       conv2d("Groups2NoBias", {3, 4, 5, 5}, {4, 2, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 2), false),
       conv2d("Depthwise", {2, 3, 5, 4}, {3, 1, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 3), true),
       conv2d("Pointwise", {2, 4, 3, 3}, {5, 4, 1, 1}, conv_params({1, 1}, {0, 0}, {1, 1}, 1), true),
       conv2d("PointwiseGroupsNoBias", {2, 4, 3, 2}, {6, 2, 1, 1}, conv_params({1, 1}, {0, 0}, {1, 1}, 2), false),
       conv2d("PointwiseStride2", {1, 3, 5, 5}, {2, 3, 1, 1}, conv_params({2, 2}, {0, 0}, {1, 1}, 1), true),
       conv2d("Mixed", {2, 4, 7, 9}, {6, 2, 2, 3}, conv_params({2, 1}, {1, 2}, {1, 2}, 2), false),
       conv2d("PaddingBeyondKernel", {1, 2, 3, 4}, {2, 2, 2, 2}, conv_params({1, 2}, {3, 2}, {1, 1}, 1), true),
       conv2d("Stride3PadDilated", {1, 2, 9, 8}, {2, 2, 3, 2}, conv_params({3, 2}, {2, 1}, {2, 3}, 1), true),
       conv2d("Basic3x3Pad1Larger", {2, 3, 9, 9}, {8, 3, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 1), true),
       conv2d("Wide", {4, 16, 15, 17}, {32, 16, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 1), true, kNoGrad),
       conv2d("Stride2NonSquareLarger", {2, 3, 11, 8}, {6, 3, 3, 2}, conv_params({2, 2}, {1, 0}, {1, 1}, 1), true),
       conv2d("Dilation2Larger", {3, 4, 12, 10}, {5, 4, 3, 3}, conv_params({1, 1}, {2, 1}, {2, 2}, 1), false),
       conv2d("Groups2Larger", {2, 8, 9, 7}, {6, 4, 3, 3}, conv_params({1, 2}, {1, 1}, {1, 1}, 2), true),
       conv2d("Groups4NoBias", {5, 8, 6, 6}, {8, 2, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 4), false),
       conv2d("DepthwiseLarger", {2, 6, 10, 9}, {6, 1, 3, 3}, conv_params({2, 1}, {1, 1}, {1, 1}, 6), true),
       conv2d("PointwiseLarger", {3, 16, 7, 5}, {24, 16, 1, 1}, conv_params({1, 1}, {0, 0}, {1, 1}, 1), true),
       conv2d("PointwiseStride2Larger", {2, 8, 9, 9}, {4, 8, 1, 1}, conv_params({2, 2}, {0, 0}, {1, 1}, 1), false),
       conv2d("Kernel7Stride2Pad3", {2, 3, 32, 30}, {8, 3, 7, 7}, conv_params({2, 2}, {3, 3}, {1, 1}, 1), true,
              kNoGrad),
       conv2d("PaddingBeyondKernelLarger", {2, 3, 5, 6}, {4, 3, 2, 2}, conv_params({2, 1}, {3, 2}, {1, 1}, 1), true),
       conv2d("AsppRate6", {1, 8, 20, 20}, {4, 8, 3, 3}, conv_params({1, 1}, {6, 6}, {6, 6}, 1), true, kNoGrad),
       conv2d("MixedLarger", {3, 4, 13, 15}, {6, 2, 2, 3}, conv_params({2, 1}, {1, 2}, {1, 2}, 2), false)});

  // ---- conv_transpose2d ----
  add({conv_transpose2d("K2S2", {2, 3, 4, 5}, {3, 4, 2, 2}, conv_params({2, 2}, {0, 0}, {1, 1}, 1), {0, 0}, true),
       conv_transpose2d("K3S2Pad1OutPad1", {2, 4, 3, 4}, {4, 3, 3, 3}, conv_params({2, 2}, {1, 1}, {1, 1}, 1), {1, 1},
                        true),
       conv_transpose2d("K3S1Pad1NoBias", {1, 3, 5, 4}, {3, 2, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 1), {0, 0},
                        false),
       conv_transpose2d("Groups2NonSquare", {2, 4, 3, 5}, {4, 3, 3, 2}, conv_params({2, 1}, {1, 0}, {1, 1}, 2), {1, 0},
                        true),
       conv_transpose2d("Dilation2", {1, 2, 4, 4}, {2, 3, 3, 3}, conv_params({1, 1}, {2, 2}, {2, 2}, 1), {0, 0}, true),
       conv_transpose2d("UNetUp", {2, 16, 7, 7}, {16, 8, 2, 2}, conv_params({2, 2}, {0, 0}, {1, 1}, 1), {0, 0}, true,
                        kTorch | kGpu)});

  // ---- batch_norm (training batches shifted and scaled: statistics not those of N(0, 1)) ----
  add({batch_norm("Train4d", {3, 2, 3, 4}, true), batch_norm("Train2d", {5, 3}, true),
       batch_norm("TrainOneImage", {1, 3, 2, 3}, true), batch_norm("Infer4d", {2, 3, 3, 2}, false),
       batch_norm("Infer2d", {4, 3}, false), batch_norm("Conv4d", {4, 3, 5, 6}, true, 0.1, 1e-5, 2.0, 0.5),
       batch_norm("Conv4dMomentum03", {2, 8, 7, 7}, true, 0.3, 1e-3, 3.0, 1.0),
       batch_norm("OneImage", {1, 4, 3, 5}, true, 0.1, 1e-5, 2.0, 0.5),
       batch_norm("Features2d", {16, 10}, true, 0.1, 1e-5, 2.0, 0.5),
       batch_norm("Features2dThreeRows", {3, 5}, true, 0.5, 1e-5, 2.0, 0.5),
       batch_norm("Conv4dInfer", {4, 3, 5, 6}, false),
       batch_norm("Conv4dMomentum03Infer", {2, 8, 7, 7}, false, 0.3, 1e-3),
       batch_norm("OneImageInfer", {1, 4, 3, 5}, false), batch_norm("Features2dInfer", {16, 10}, false),
       batch_norm("Features2dThreeRowsInfer", {3, 5}, false, 0.5)});
  // ---- batch_norm_relu: the fused ReLU (the kink at 0 of the normalised output: these rows' fixed inputs
  // keep every output farther from 0 than the gradient check's step moves it) ----
  add({batch_norm("Train4d", {3, 2, 3, 4}, true, 0.1, 1e-5, 1, 0, true),
       batch_norm("Conv4d", {4, 3, 5, 6}, true, 0.1, 1e-5, 2.0, 0.5, true),
       batch_norm("Train2d", {5, 3}, true, 0.1, 1e-5, 1, 0, true),
       batch_norm("Conv4dInfer", {4, 3, 5, 6}, false, 0.1, 1e-5, 1, 0, true),
       batch_norm("Features2dInfer", {16, 10}, false, 0.1, 1e-5, 1, 0, true)});

  // ---- pooling ----
  add(pool2d("K2S2", {2, 3, 4, 6}, pool_params({2, 2}, {2, 2}, {0, 0})));
  add(pool2d("K3S2Pad1Overlap", {2, 2, 7, 6}, pool_params({3, 3}, {2, 2}, {1, 1})));
  add(pool2d("K3S1Pad1", {1, 2, 5, 5}, pool_params({3, 3}, {1, 1}, {1, 1})));
  add(pool2d("NonSquare", {2, 2, 6, 7}, pool_params({3, 2}, {1, 2}, {1, 0})));
  add(pool2d("K2S1Pad1", {1, 3, 4, 3}, pool_params({2, 2}, {1, 1}, {1, 1})));
  add(pool2d("K3S2OddSize", {1, 2, 7, 7}, pool_params({3, 3}, {2, 2}, {0, 0})));
  add(pool2d("K2S2Larger", {2, 3, 8, 6}, pool_params({2, 2}, {2, 2}, {0, 0})));
  add(pool2d("K2S2OddSize", {2, 3, 9, 7}, pool_params({2, 2}, {2, 2}, {0, 0})));
  add(pool2d("K3S2Pad1OverlapLarger", {2, 4, 11, 10}, pool_params({3, 3}, {2, 2}, {1, 1})));
  add(pool2d("K3S1Pad1Larger", {1, 2, 6, 7}, pool_params({3, 3}, {1, 1}, {1, 1})));
  add(pool2d("NonSquareLarger", {2, 2, 8, 9}, pool_params({3, 2}, {1, 2}, {1, 0})));
  add(pool2d("K5S3Pad2", {2, 3, 13, 12}, pool_params({5, 5}, {3, 3}, {2, 2})));
  for (const Shape& s : {Shape{2, 3, 4, 5}, Shape{3, 5, 7, 6}}) {
    OpCase c{"global_avg_pool2d",
             dims(s),
             {normal(s)},
             DL_OP(ops::global_avg_pool2d(x[0])),
             DL_TORCH(torch::adaptive_avg_pool2d(x[0], {1, 1}))};
    c.bench_tensors = 1;
    t.push_back(c);
  }

  // ---- activations ----
  add(unary("relu", DL_OP(ops::relu(x[0])), DL_TORCH(torch::relu(x[0]))));
  add(unary("sigmoid", DL_OP(ops::sigmoid(x[0])), DL_TORCH(torch::sigmoid(x[0])), kern::SigmoidOp{}));
  add(unary("tanh", DL_OP(ops::tanh(x[0])), DL_TORCH(torch::tanh(x[0])), kern::TanhOp{}));
  add(unary("gelu", DL_OP(ops::gelu(x[0])), DL_TORCH(torch::gelu(x[0])), kern::GeluOp{}));
  add(unary("silu", DL_OP(ops::silu(x[0])), DL_TORCH(torch::silu(x[0])), kern::SiluOp{}));
  add(unary("leaky_relu", DL_OP(ops::leaky_relu(x[0], 0.2)), DL_TORCH(torch::leaky_relu(x[0], 0.2)),
            kern::LeakyReluOp{0.2f}));
  add(unary("elu", DL_OP(ops::elu(x[0], 0.5)), DL_TORCH(torch::elu(x[0], 0.5)), kern::EluOp{0.5f}));
  // ---- unary math (dl/ops/elementwise.h) ----
  add(unary("exp", DL_OP(ops::exp(x[0])), DL_TORCH(torch::exp(x[0])), kern::ExpOp{}));
  add(unary("log", DL_OP(ops::log(x[0])), DL_TORCH(torch::log(x[0])), kern::LogOp{}, positive_input));
  add(unary("sqrt", DL_OP(ops::sqrt(x[0])), DL_TORCH(torch::sqrt(x[0])), kern::SqrtOp{}, positive_input));
  add(unary("rsqrt", DL_OP(ops::rsqrt(x[0])), DL_TORCH(torch::rsqrt(x[0])), kern::RsqrtOp{}, positive_input));
  add(unary("abs", DL_OP(ops::abs(x[0])), DL_TORCH(torch::abs(x[0])), kern::AbsOp{}));
  add(unary("neg", DL_OP(ops::neg(x[0])), DL_TORCH(torch::neg(x[0])), kern::NegOp{}));
  // Bounds half a grid step from the distinct inputs' values: no input sits on a kink.
  add(unary("clamp", DL_OP(ops::clamp(x[0], -0.505, 0.505)), DL_TORCH(torch::clamp(x[0], -0.505, 0.505)),
            kern::ClampOp{-0.505f, 0.505f}, distinct));

  // ---- layers written with the broadcasting ops, and dropout ----
  for (const Shape& s : {Shape{3, 5}, Shape{2, 3, 4}, Shape{2, 4, 3, 5}}) {
    const int64_t last = s[s.ndim() - 1];
    t.push_back({"layer_norm",
                 "Last_" + dims(s),
                 {normal(s, 2.0, 0.5), uniform({last}, 0.5, 1.5), normal({last})},
                 DL_OP(ops::layer_norm(x[0], 1, x[1], x[2])),
                 DL_TORCH(torch::layer_norm(x[0], {last}, x[1], x[2]))});
  }
  t.push_back({"layer_norm",
               "LastTwoNoAffine",
               {normal({2, 3, 4, 5}, 1.5)},
               DL_OP(ops::layer_norm(x[0], 2, Tensor(), Tensor(), 1e-3)),
               DL_TORCH(torch::layer_norm(x[0], {4, 5}, {}, {}, 1e-3))});
  for (const auto& [s, groups] :
       std::vector<std::pair<Shape, int>>{{{2, 6, 3, 4}, 3}, {{3, 4, 5}, 2}, {{2, 4, 3, 3}, 4}}) {
    const int g = groups;
    t.push_back({"group_norm",
                 dims(s) + "_groups" + std::to_string(g),
                 {normal(s, 2.0, 0.5), uniform({s[1]}, 0.5, 1.5), normal({s[1]})},
                 DL_OP(ops::group_norm(x[0], g, x[1], x[2])),
                 DL_TORCH(torch::group_norm(x[0], g, x[1], x[2]))});
  }
  t.push_back({"group_norm",
               "OneGroupNoAffine",
               {normal({2, 4, 3, 3})},
               DL_OP(ops::group_norm(x[0], 1)),
               DL_TORCH(torch::group_norm(x[0], 1))});
  for (const auto& [s, p] : std::vector<std::pair<Shape, double>>{{{2, 3, 4, 5}, 0.3}, {{1000}, 0.5}, {{7, 9}, 0.1}}) {
    const double pd = p;
    // A generator made anew in each call: every evaluation (the gradient check's too) draws the same mask.
    OpCase c{"dropout", dims(s), {normal(s)}, [pd](const In& x) -> Outs {
               Generator gen(42);
               return ops::dropout(x[0], pd, true, gen);
             }};
    t.push_back(c);
  }
  for (const Shape& s : {Shape{2, 3, 4, 5}, Shape{1, 2, 3, 3}}) {
    t.push_back({"upsample_nearest2d",
                 "Times2_" + dims(s),
                 {normal(s)},
                 DL_OP(ops::upsample_nearest2d(x[0], 2, 2)),
                 DL_TORCH(x[0].repeat_interleave(2, 2).repeat_interleave(2, 3))});
    t.push_back({"upsample_nearest2d",
                 "Times3By1_" + dims(s),
                 {normal(s)},
                 DL_OP(ops::upsample_nearest2d(x[0], 3, 1)),
                 DL_TORCH(x[0].repeat_interleave(3, 2))});
  }

  // ---- softmax, log_softmax, cross_entropy ----
  for (bool log : {false, true}) {
    for (const Shape& s : {Shape{3, 5}, Shape{4, 1}, Shape{2, 4, 3, 2}}) t.push_back(softmax(dims(s), s, log));
    for (const Shape& s : {Shape{5, 10}, Shape{3, 1}, Shape{2, 6, 4, 5}})
      t.push_back(softmax(dims(s) + "x3", s, log, 3));
  }
  t.push_back(softmax("LargeLogits", {3, 6}, true, 30));  // exercises the max subtraction
  add({cross_entropy("TwoDims", {5, 4}, false, -1), cross_entropy("TwoDimsWeightedWithIgnore", {6, 4}, true, 255),
       cross_entropy("IgnoreIndexInsideTheClassRange", {5, 3}, false, 1),
       cross_entropy("FourDimsWeightedWithIgnore", {2, 3, 3, 4}, true, 11),
       cross_entropy("FourDimsUnweighted", {1, 4, 2, 3}, false, -1), cross_entropy("Plain2d", {8, 5}, false, -1),
       cross_entropy("Weighted2d", {8, 5}, true, -1), cross_entropy("WeightedIgnore2d", {9, 4}, true, 255),
       cross_entropy("IgnoreInRange2d", {9, 4}, false, 2), cross_entropy("Plain4d", {2, 6, 5, 4}, false, -1),
       cross_entropy("WeightedIgnore4d", {3, 11, 6, 7}, true, 11),
       cross_entropy("WeightedIgnoreInRange4d", {2, 5, 4, 4}, true, 0)});

  // ---- linear ----
  add({linear("Bias", {4, 5}, {3, 5}, true), linear("NoBias", {4, 5}, {3, 5}, false),
       linear("OneRowNoBias", {1, 7}, {1, 7}, false), linear("BiasLarger", {7, 12}, {5, 12}, true),
       linear("NoBiasLarger", {7, 12}, {5, 12}, false), linear("Wide", {32, 300}, {10, 300}, true, kNoGrad)});

  // ---- matmul: NumPy's rules, batch dimensions broadcast, 1-D operands ----
  for (const auto& [sa, sb] : std::vector<std::pair<Shape, Shape>>{{{3, 4}, {4, 5}},
                                                                   {{2, 3, 4}, {2, 4, 2}},
                                                                   {{2, 1, 3, 4}, {5, 4, 2}},
                                                                   {{2, 3, 4}, {4, 3}},
                                                                   {{4}, {2, 4, 3}},
                                                                   {{3, 4}, {4}},
                                                                   {{5}, {5}},
                                                                   {{1, 7}, {7, 1}}}) {
    OpCase c{"matmul",
             dims(sa) + "_by_" + dims(sb),
             {normal(sa), normal(sb)},
             DL_OP(ops::matmul(x[0], x[1])),
             DL_TORCH(torch::matmul(x[0], x[1]))};
    c.wrt = {{}, {true, false}, {false, true}};
    c.gpu_tol = 1e-3;
    t.push_back(c);
  }
  {
    OpCase c{"matmul",
             "Wide",
             {normal({4, 64, 96}), normal({96, 80})},
             DL_OP(ops::matmul(x[0], x[1])),
             DL_TORCH(torch::matmul(x[0], x[1]))};
    c.suites = kTorch | kGpu;
    c.gpu_tol = 1e-3;
    t.push_back(c);
  }

  // ---- shape ops ----
  for (const Shape& s : {Shape{2, 3, 2, 2}, Shape{2, 3, 4, 5}}) {
    const int64_t n = s.numel();
    t.push_back(
        {"reshape", dims(s), {normal(s)}, DL_OP(ops::reshape(x[0], {n / 6, 6})), DL_TORCH(x[0].reshape({n / 6, 6}))});
    t.push_back({"flatten", dims(s), {normal(s)}, DL_OP(ops::flatten(x[0])), DL_TORCH(torch::flatten(x[0], 1))});
  }
  // Through a view into a non-linear op, with x reaching the output twice.
  t.push_back({"reshape",
               "FlattenTimesReshape",
               {normal({2, 3, 2, 2})},
               DL_OP(ops::mul(ops::flatten(x[0]), ops::reshape(x[0], {2, 12}))),
               DL_TORCH(torch::flatten(x[0], 1) * x[0].reshape({2, 12}))});
  t.push_back({"reshape",
               "IntoSoftmax",
               {normal({2, 3, 2, 2})},
               DL_OP(ops::softmax(ops::reshape(x[0], {6, 4}))),
               DL_TORCH(torch::softmax(x[0].reshape({6, 4}), 1))});
  add({concat("Three4d", {{2, 1, 3, 2}, {2, 3, 3, 2}, {2, 2, 3, 2}}), concat("Three2d", {{3, 2}, {3, 4}, {3, 1}}),
       concat("Three4dLarger", {{2, 1, 3, 4}, {2, 5, 3, 4}, {2, 2, 3, 4}}), concat("Two2d", {{4, 3}, {4, 7}})});
  t[t.size() - 4].wrt = {{}, {true, false, true}};
  // The same tensor concatenated with itself gets both slices' gradients.
  t.push_back({"concat",
               "SameTensorTwice",
               {normal({2, 1, 3, 2}), normal({2, 2, 3, 2})},
               DL_OP(ops::concat({x[0], x[1], x[0]})),
               DL_TORCH(torch::cat({x[0], x[1], x[0]}, 1))});

  // ---- element-wise and reductions ----
  add(binary("add", DL_OP(ops::add(x[0], x[1])), DL_TORCH(x[0] + x[1])));
  add(binary("sub", DL_OP(ops::sub(x[0], x[1])), DL_TORCH(x[0] - x[1]), {{}, {false, true}}));
  add(binary("mul", DL_OP(ops::mul(x[0], x[1])), DL_TORCH(x[0] * x[1]), {{}, {true, false}}));
  // Each operand alone too: the backward then keeps only what that partial reads (Note [saved for backward]).
  const std::vector<std::vector<bool>> each = {{}, {true, false}, {false, true}};
  add(binary("div", DL_OP(ops::div(x[0], x[1])), DL_TORCH(x[0] / x[1]), each, normal_input, positive_input));
  add(binary("pow", DL_OP(ops::pow(x[0], x[1])), DL_TORCH(torch::pow(x[0], x[1])), each, positive_input));
  add(binary("maximum", DL_OP(ops::maximum(x[0], x[1])), DL_TORCH(torch::maximum(x[0], x[1])), each));
  add(binary("minimum", DL_OP(ops::minimum(x[0], x[1])), DL_TORCH(torch::minimum(x[0], x[1])), each));
  add(scalar_op("add", "Scalar", DL_OP(ops::add(x[0], 0.75)), DL_TORCH(x[0] + 0.75)));
  add(scalar_op("sub", "Scalar", DL_OP(ops::sub(x[0], 0.75)), DL_TORCH(x[0] - 0.75)));
  add(scalar_op("mul", "Scalar", DL_OP(ops::mul(x[0], -1.25)), DL_TORCH(x[0] * -1.25)));
  add(scalar_op("div", "Scalar", DL_OP(ops::div(x[0], 2.5)), DL_TORCH(x[0] / 2.5)));
  add(scalar_op("pow", "Scalar2_5", DL_OP(ops::pow(x[0], 2.5)), DL_TORCH(torch::pow(x[0], 2.5)), positive_input));
  add(scalar_op("pow", "Scalar3", DL_OP(ops::pow(x[0], 3.0)), DL_TORCH(torch::pow(x[0], 3.0))));
  add(scalar_op("maximum", "Scalar", DL_OP(ops::maximum(x[0], 0.2)), DL_TORCH(torch::clamp_min(x[0], 0.2))));
  add(scalar_op("minimum", "Scalar", DL_OP(ops::minimum(x[0], 0.2)), DL_TORCH(torch::clamp_max(x[0], 0.2))));
  // The C++ operators, every form in one expression.
  add(scalar_op("operators", "Mixed",
                DL_OP((x[0] + x[0] * 0.5) * x[0] - x[0] / 4.0 + 1.0 - (3.0 - x[0]) * 2.0 / (x[0] * x[0] + 1.0) + -x[0] +
                      0.5 * x[0] + (2.0 + x[0]) / 3.0),
                DL_TORCH((x[0] + x[0] * 0.5) * x[0] - x[0] / 4.0 + 1.0 - (3.0 - x[0]) * 2.0 / (x[0] * x[0] + 1.0) +
                         -x[0] + 0.5 * x[0] + (2.0 + x[0]) / 3.0)));
  // Comparisons through where (their masks have no gradient; where routes it), broadcasting all three.
  {
    const std::vector<std::pair<Shape, Shape>> pairs = {{{2, 3, 4}, {2, 3, 4}}, {{2, 3, 4}, {3, 1}}, {{4}, {3, 1}}};
    for (const auto& [sa, sb] : pairs) {
      const std::string n = dims(sa) + "_by_" + dims(sb);
      auto row = [&](const std::string& cmp, DlFn dl, TorchFn torch) {
        t.push_back({"where", cmp + "_" + n, {normal(sa), normal(sb)}, dl, torch});
      };
      row("lt", DL_OP(ops::where(ops::lt(x[0], x[1]), x[0], x[1])), DL_TORCH(torch::where(x[0] < x[1], x[0], x[1])));
      row("le", DL_OP(ops::where(ops::le(x[0], x[1]), x[1], x[0])), DL_TORCH(torch::where(x[0] <= x[1], x[1], x[0])));
      row("gt", DL_OP(ops::where(ops::gt(x[0], x[1]), x[0] * 2.0, x[1])),
          DL_TORCH(torch::where(x[0] > x[1], x[0] * 2.0, x[1])));
      row("ge", DL_OP(ops::where(ops::ge(x[0], 0.0), x[0], x[1])), DL_TORCH(torch::where(x[0] >= 0.0, x[0], x[1])));
      row("eq", DL_OP(ops::where(ops::eq(x[0], x[0]), x[1], x[0])), DL_TORCH(torch::where(x[0] == x[0], x[1], x[0])));
      row("ne", DL_OP(ops::where(ops::ne(x[0], x[1]), x[0], x[1] * 3.0)),
          DL_TORCH(torch::where(x[0] != x[1], x[0], x[1] * 3.0)));
    }
  }
  // Sums and means over dimensions, summing down to a shape, and the copies that reorder or stretch.
  for (const Shape& s : {Shape{2, 3, 4}, Shape{3, 2, 4, 5}}) {
    const std::string n = dims(s);
    const int64_t last = s.ndim() - 1;
    t.push_back({"sum", "Dim1_" + n, {normal(s)}, DL_OP(ops::sum(x[0], {1})), DL_TORCH(x[0].sum({1}))});
    t.push_back({"sum",
                 "Dims0AndLastKeep_" + n,
                 {normal(s)},
                 DL_OP(ops::sum(x[0], {0, -1}, true)),
                 DL_TORCH(x[0].sum(std::vector<int64_t>{0, -1}, true))});
    t.push_back({"sum", "AllDims_" + n, {normal(s)}, DL_OP(ops::sum(x[0], {})), DL_TORCH(x[0].sum().reshape({1}))});
    t.push_back({"mean", "LastDim_" + n, {normal(s)}, DL_OP(ops::mean(x[0], {-1})), DL_TORCH(x[0].mean({-1}))});
    t.push_back({"mean",
                 "Dims0And1Keep_" + n,
                 {normal(s)},
                 DL_OP(ops::mean(x[0], {0, 1}, true)),
                 DL_TORCH(x[0].mean(std::vector<int64_t>{0, 1}, true))});
    t.push_back(
        {"permute",
         "Reverse_" + n,
         {normal(s)},
         DL_OP(ops::permute(x[0], s.ndim() == 3 ? std::vector<int64_t>{2, 1, 0} : std::vector<int64_t>{3, 2, 1, 0})),
         DL_TORCH(s.ndim() == 3 ? x[0].permute({2, 1, 0}) : x[0].permute({3, 2, 1, 0}))});
    t.push_back({"transpose",
                 "FirstLast_" + n,
                 {normal(s)},
                 DL_OP(ops::transpose(x[0], 0, last)),
                 DL_TORCH(x[0].transpose(0, last))});
  }
  t.push_back({"permute",
               "ChannelsLast",
               {normal({2, 3, 4, 5})},
               DL_OP(ops::permute(x[0], {0, 2, 3, 1})),
               DL_TORCH(x[0].permute({0, 2, 3, 1}))});
  t.push_back({"sum_to",
               "BiasGradient",
               {normal({2, 3, 4, 5})},
               DL_OP(ops::sum_to(x[0], {3, 1, 1})),
               DL_TORCH(x[0].sum({0, 2, 3}).reshape({3, 1, 1}))});
  t.push_back({"sum_to",
               "LeadingAndInner",
               {normal({2, 3, 4})},
               DL_OP(ops::sum_to(x[0], {3, 1})),
               DL_TORCH(x[0].sum({0}).sum(std::vector<int64_t>{1}, true))});
  t.push_back(
      {"expand", "BothSides", {normal({3, 1})}, DL_OP(ops::expand(x[0], {2, 3, 4})), DL_TORCH(x[0].expand({2, 3, 4}))});
  t.push_back({"expand",
               "IntoMul",
               {normal({1, 4}), normal({3, 4})},
               DL_OP(ops::mul(ops::expand(x[0], {3, 4}), x[1])),
               DL_TORCH(x[0].expand({3, 4}) * x[1])});
  for (const Shape& s : {Shape{3, 4}, Shape{3, 4, 5}}) {
    t.push_back({"add", "SameTensorTwice" + dims(s), {normal(s)}, DL_OP(ops::add(x[0], x[0])), DL_TORCH(x[0] + x[0])});
    t.push_back({"sub", "SameTensorTwice" + dims(s), {normal(s)}, DL_OP(ops::sub(x[0], x[0])), DL_TORCH(x[0] - x[0])});
    t.push_back({"mul", "SameTensorTwice" + dims(s), {normal(s)}, DL_OP(ops::mul(x[0], x[0])), DL_TORCH(x[0] * x[0])});
  }
  for (const Shape& s : {Shape{2, 3, 4}, Shape{3, 4, 5}}) {
    t.push_back({"scale", dims(s), {normal(s)}, DL_OP(ops::scale(x[0], -1.75)), DL_TORCH(x[0] * -1.75)});
    t.push_back({"sum", dims(s), {normal(s)}, DL_OP(ops::sum(x[0])), DL_TORCH(x[0].sum())});
    t.push_back({"mean", dims(s), {normal(s)}, DL_OP(ops::mean(x[0])), DL_TORCH(x[0].mean())});
    t.push_back({"mean",
                 "OfSquares" + dims(s),
                 {normal(s)},
                 DL_OP(ops::mean(ops::mul(x[0], x[0]))),
                 DL_TORCH((x[0] * x[0]).mean())});
  }
  // Indexing along a dimension (indices are int32 label inputs; libtorch's index is int64), slicing,
  // joining, and the reductions that pick: max/min route dy to the element argmax/argmin picks (distinct
  // inputs: no ties for the differences to straddle), argmax/argmin compared as a second output.
  t.push_back({"gather",
               "Dim1",
               {normal({3, 4, 5}), labels({3, 6, 5}, 4)},
               DL_OP(ops::gather(x[0], 1, x[1])),
               DL_TORCH(torch::gather(x[0], 1, x[1].to(torch::kLong)))});
  t.push_back({"gather",
               "Dim0SmallerIndex",
               {normal({5, 4, 3}), labels({7, 2, 3}, 5)},
               DL_OP(ops::gather(x[0], 0, x[1])),
               DL_TORCH(torch::gather(x[0], 0, x[1].to(torch::kLong)))});
  t.push_back({"gather",
               "LastDim",
               {normal({2, 3, 4, 6}), labels({2, 3, 4, 9}, 6)},
               DL_OP(ops::gather(x[0], -1, x[1])),
               DL_TORCH(torch::gather(x[0], -1, x[1].to(torch::kLong)))});
  t.push_back({"gather",
               "Int64Index",
               {normal({4, 5}), labels({4, 3}, 5)},
               DL_OP(ops::gather(x[0], 1, x[1].to(DType::kInt64))),
               DL_TORCH(torch::gather(x[0], 1, x[1].to(torch::kLong)))});
  t.push_back({"scatter_add",
               "RepeatedDim1",
               {normal({3, 4}), labels({3, 9}, 4), normal({3, 9})},
               DL_OP(ops::scatter_add(x[0], 1, x[1], x[2])),
               DL_TORCH(torch::scatter_add(x[0], 1, x[1].to(torch::kLong), x[2])),
               kTests,
               {{}, {true, false, false}, {false, false, true}}});
  t.push_back({"scatter_add",
               "Dim0",
               {normal({4, 3, 2}), labels({6, 2, 2}, 4), normal({6, 2, 2})},
               DL_OP(ops::scatter_add(x[0], 0, x[1], x[2])),
               DL_TORCH(torch::scatter_add(x[0], 0, x[1].to(torch::kLong), x[2]))});
  t.push_back({"index_select",
               "Dim1Repeats",
               {normal({3, 4, 5}), labels({7}, 4)},
               DL_OP(ops::index_select(x[0], 1, x[1])),
               DL_TORCH(torch::index_select(x[0], 1, x[1].to(torch::kLong)))});
  t.push_back({"index_select",
               "Dim0Embedding",
               {normal({10, 6}), labels({12}, 10)},
               DL_OP(ops::index_select(x[0], 0, x[1].to(DType::kInt64))),
               DL_TORCH(torch::index_select(x[0], 0, x[1].to(torch::kLong)))});
  t.push_back({"index_select",
               "LastDim",
               {normal({2, 3, 8}), labels({5}, 8)},
               DL_OP(ops::index_select(x[0], -1, x[1])),
               DL_TORCH(torch::index_select(x[0], -1, x[1].to(torch::kLong)))});
  t.push_back({"slice",
               "Dim1Step2",
               {normal({3, 7, 4})},
               DL_OP(ops::slice(x[0], 1, 1, 6, 2)),
               DL_TORCH(x[0].slice(1, 1, 6, 2))});
  t.push_back({"slice",
               "NegativeBoundsLastDim",
               {normal({2, 3, 9})},
               DL_OP(ops::slice(x[0], -1, -7, -1, 3)),
               DL_TORCH(x[0].slice(-1, -7, -1, 3))});
  t.push_back(
      {"slice", "BeyondTheEnd", {normal({6, 5})}, DL_OP(ops::slice(x[0], 0, 2, 100)), DL_TORCH(x[0].slice(0, 2, 100))});
  t.push_back(
      {"select", "Dim1Last", {normal({3, 4, 5})}, DL_OP(ops::select(x[0], 1, -1)), DL_TORCH(x[0].select(1, -1))});
  t.push_back({"squeeze",
               "Unsqueeze",
               {normal({3, 1, 4})},
               DL_OP(ops::unsqueeze(ops::squeeze(x[0], 1), -1) * 2.0),
               DL_TORCH(x[0].squeeze(1).unsqueeze(-1) * 2.0)});
  t.push_back({"concat",
               "Dim0Three",
               {normal({2, 3, 4}), normal({1, 3, 4}), normal({3, 3, 4})},
               DL_OP(ops::concat({x[0], x[1], x[2]}, 0)),
               DL_TORCH(torch::cat({x[0], x[1], x[2]}, 0))});
  t.push_back({"concat",
               "LastDim",
               {normal({2, 3, 4}), normal({2, 3, 1})},
               DL_OP(ops::concat({x[0], x[1]}, -1)),
               DL_TORCH(torch::cat({x[0], x[1]}, -1))});
  t.push_back({"stack",
               "Dim1",
               {normal({2, 4}), normal({2, 4}), normal({2, 4})},
               DL_OP(ops::stack({x[0], x[1], x[2]}, 1)),
               DL_TORCH(torch::stack({x[0], x[1], x[2]}, 1))});
  for (const Shape& s : {Shape{3, 4, 5}, Shape{2, 3, 4, 5}}) {
    const std::string n = dims(s);
    t.push_back({"max",
                 "Dim1_" + n,
                 {distinct(s)},
                 DL_OP({ops::max(x[0], 1), ops::argmax(x[0], 1).to(x[0].dtype())}),
                 DL_TORCH({std::get<0>(x[0].max(1)), std::get<1>(x[0].max(1)).to(x[0].dtype())})});
    t.push_back({"max",
                 "LastDimKeep_" + n,
                 {distinct(s)},
                 DL_OP({ops::max(x[0], -1, true), ops::argmax(x[0], -1, true).to(x[0].dtype())}),
                 DL_TORCH({std::get<0>(x[0].max(-1, true)), std::get<1>(x[0].max(-1, true)).to(x[0].dtype())})});
    t.push_back({"min",
                 "Dim0_" + n,
                 {distinct(s)},
                 DL_OP({ops::min(x[0], 0), ops::argmin(x[0], 0).to(x[0].dtype())}),
                 DL_TORCH({std::get<0>(x[0].min(0)), std::get<1>(x[0].min(0)).to(x[0].dtype())})});
    t.push_back({"min",
                 "Dim2Keep_" + n,
                 {distinct(s)},
                 DL_OP({ops::min(x[0], 2, true), ops::argmin(x[0], 2, true).to(x[0].dtype())}),
                 DL_TORCH({std::get<0>(x[0].min(2, true)), std::get<1>(x[0].min(2, true)).to(x[0].dtype())})});
    t.push_back({"var", "Dim1_" + n, {normal(s)}, DL_OP(ops::var(x[0], {1})), DL_TORCH(x[0].var({1}))});
    t.push_back({"var",
                 "Dims0AndLastKeepPopulation_" + n,
                 {normal(s)},
                 DL_OP(ops::var(x[0], {0, -1}, 0, true)),
                 DL_TORCH(x[0].var(std::vector<int64_t>{0, -1}, false, true))});
    t.push_back({"var", "All_" + n, {normal(s)}, DL_OP(ops::var(x[0], {})), DL_TORCH(x[0].var().reshape({1}))});
    t.push_back({"std", "LastDim_" + n, {normal(s, 1, 0.5)}, DL_OP(ops::std(x[0], {-1})), DL_TORCH(x[0].std({-1}))});
  }

  // Several chunks of the parallel reduction.
  t.push_back({"sum", "ManyChunks", {normal({1 << 17})}, DL_OP(ops::sum(x[0])), DL_TORCH(x[0].sum()), kNoGrad});

  // ---- the shapes the CPU/CUDA parity checked the backends at (an MNIST layer, a strided, an atrous, a
  // grouped and a pointwise convolution, a DeepLab-like odd map, a classifier head, 1001 elements) ----
  add({conv2d("Mnist28", {4, 3, 28, 28}, {8, 3, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 1), true, kNoGrad),
       conv2d("Stride2Wide", {2, 16, 15, 17}, {32, 16, 3, 3}, conv_params({2, 2}, {1, 1}, {1, 1}, 1), true, kNoGrad),
       conv2d("Atrous6", {2, 8, 20, 20}, {8, 8, 3, 3}, conv_params({1, 1}, {6, 6}, {6, 6}, 1), true, kNoGrad),
       conv2d("Groups4", {2, 8, 9, 9}, {12, 2, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 4), true),
       conv2d("Pointwise5to4", {3, 5, 7, 6}, {4, 5, 1, 1}, conv_params({1, 1}, {0, 0}, {1, 1}, 1), true),
       batch_norm("Conv4dSeven", {4, 6, 7, 7}, true, 0.1, 1e-5, 2.5, 0.5),
       batch_norm("Conv4dSevenInfer", {4, 6, 7, 7}, false), softmax("3x4x13x11", {3, 4, 13, 11}, false),
       softmax("3x4x13x11", {3, 4, 13, 11}, true), linear("Head37x50", {37, 50}, {10, 50}, true)});
  add(pool2d("OddMapK2S2", {3, 4, 13, 11}, pool_params({2, 2}, {2, 2}, {0, 0})));
  add(pool2d("OddMapK3S2Pad1", {3, 4, 13, 11}, pool_params({3, 3}, {2, 2}, {1, 1})));
  {
    const Shape s{1001};
    t.push_back({"add", dims(s), {normal(s), normal(s)}, DL_OP(ops::add(x[0], x[1])), DL_TORCH(x[0] + x[1])});
    t.push_back({"sub", dims(s), {normal(s), normal(s)}, DL_OP(ops::sub(x[0], x[1])), DL_TORCH(x[0] - x[1])});
    t.push_back({"mul", dims(s), {normal(s), normal(s)}, DL_OP(ops::mul(x[0], x[1])), DL_TORCH(x[0] * x[1])});
    t.push_back({"scale", dims(s), {normal(s)}, DL_OP(ops::scale(x[0], -1.5)), DL_TORCH(x[0] * -1.5)});
    t.push_back({"sum", dims(s), {normal(s)}, DL_OP(ops::sum(x[0])), DL_TORCH(x[0].sum())});
  }

  // ---- small networks end to end ----
  {  // no kinks on the path: gradient-checked. Not against libtorch: the conv bias before batch norm has a
     // true gradient of 0, of which float32 leaves noise alone.
    OpCase c{"network",
             "ConvBatchNormPoolLinearLoss",
             {normal({3, 2, 6, 6}), normal({4, 2, 3, 3}, 0.5), normal({4}), uniform({4}, 0.5, 1.5), normal({4}),
              normal({3, 4 * 3 * 3}), normal({3}), labels({3}, 3), state(constant({4}, 0)), state(constant({4}, 1))}};
    c.dl = [](const In& x) -> Outs {
      Conv2dParams cp;
      cp.padding = {1, 1};
      Tensor rm = x[8], rv = x[9];
      Tensor h = ops::conv2d(x[0], x[1], x[2], cp);
      h = ops::batch_norm(h, x[3], x[4], rm, rv, {});
      h = ops::avg_pool2d(h, {});                    // 3 x 4 x 3 x 3
      h = ops::linear(ops::flatten(h), x[5], x[6]);  // 3 x 3
      return {ops::cross_entropy(h, x[7]), rm, rv};
    };
    c.suites = kGrad | kGpu;
    c.gpu_tol = 1e-3;
    t.push_back(c);
  }
  {  // ReLU and max pooling: compared, not gradient-checked. No conv bias: batch norm removes it, its true
     // gradient is 0 and float noise is all that is left.
    OpCase c{
        "network",
        "ConvBatchNormReluPoolLinearLoss",
        {normal({4, 3, 12, 12}), normal({8, 3, 3, 3}, 0.3), uniform({8}, 0.5, 1.5), normal({8}),
         normal({5, 8 * 6 * 6}, 0.1), normal({5}), labels({4}, 5), state(constant({8}, 0)), state(constant({8}, 1))}};
    c.dl = [](const In& x) -> Outs {
      Conv2dParams cp;
      cp.padding = {1, 1};
      Tensor rm = x[7], rv = x[8];
      Tensor h = ops::conv2d(x[0], x[1], Tensor(), cp);  // 4 x 8 x 12 x 12
      h = ops::relu(ops::batch_norm(h, x[2], x[3], rm, rv, {}));
      h = ops::max_pool2d(h, {});  // 4 x 8 x 6 x 6
      return {ops::cross_entropy(ops::linear(ops::flatten(h), x[4], x[5]), x[6]), rm, rv};
    };
#if DL_OP_CASES_WITH_TORCH
    c.torch = DL_TORCH(
        {torch::nn::functional::cross_entropy(
             torch::linear(torch::flatten(torch::max_pool2d(
                                              torch::relu(torch::batch_norm(torch::conv2d(x[0], x[1], {}, 1, 1), x[2],
                                                                            x[3], x[7], x[8], true, 0.1, 1e-5, false)),
                                              {2, 2}, {2, 2}),
                                          1),
                           x[4], x[5]),
             x[6].to(torch::kLong)),
         x[7], x[8]});
#endif
    c.suites = kNoGrad;
    c.gpu_tol = 1e-3;
    t.push_back(c);
  }

  // ---- benchmarks at the sizes of the models (the activations' come with their rows) ----
  for (const auto& [name, s] : bench_shapes()) {
    std::vector<OpCase> b = {batch_norm(name, s, true),
                             pool2d(name, s, pool_params({2, 2}, {2, 2}, {0, 0}))[0],
                             {"add", name, {normal(s), normal(s)}, DL_OP(ops::add(x[0], x[1])), DL_TORCH(x[0] + x[1])},
                             concat(name, {s, s}),
                             {"global_avg_pool2d",
                              name,
                              {normal(s)},
                              DL_OP(ops::global_avg_pool2d(x[0])),
                              DL_TORCH(torch::adaptive_avg_pool2d(x[0], {1, 1}))}};
    b[1].bench_tensors = 1.25;
    b[2].bench_tensors = 3;
    b[4].bench_tensors = 1;
    // The picks, a channel slice and the per-channel variance (what batch norm computes) at these sizes.
    b.push_back({"max", name, {normal(s)}, DL_OP(ops::max(x[0], 1)), DL_TORCH(std::get<0>(x[0].max(1)))});
    b.push_back({"slice",
                 name,
                 {normal(s)},
                 DL_OP(ops::slice(x[0], 1, 0, s[1] / 2)),
                 DL_TORCH(x[0].slice(1, 0, s[1] / 2).contiguous())});
    b.push_back({"var",
                 name,
                 {normal(s)},
                 DL_OP(ops::var(x[0], {0, 2, 3}, 0)),
                 DL_TORCH(x[0].var(std::vector<int64_t>{0, 2, 3}, false))});
    b.back().bench_tensors = 1;
    b[b.size() - 2].bench_tensors = 1;
    b[b.size() - 3].bench_tensors = 1;
    for (OpCase& c : b) c.suites = kBench;
    add(b);
  }
  return t;
}

}  // namespace cases

inline const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> table = cases::all();
  return table;
}

}  // namespace dl::testing
