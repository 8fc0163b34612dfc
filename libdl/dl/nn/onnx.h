// ONNX export of a trained model, for runtimes outside libdl (ONNX Runtime, OpenCV's dnn, TensorRT).
//
//   model.eval();                                          // export runs the forward in eval() anyway
//   dl::nn::export_onnx(model, example, "model.onnx");     // example: 1 x 3 x 224 x 224, float32
//
//   // a model of several inputs or outputs: its forward as a function of the tensors
//   dl::nn::OnnxExportOptions o;
//   o.input_names = {"image", "mask"};
//   dl::nn::export_onnx(model, [&](const std::vector<dl::Tensor>& in) { return model.run(in[0], in[1]); },
//                       {image, mask}, "two_inputs.onnx", o);
//
// The model is traced at the op level (dl/ops/trace.h): its forward runs once on the examples with a
// tracer active, and every op of libdl that has an ONNX form becomes a node, whatever C++ the forward is
// (branches, loops and helper functions are followed along the path the examples take; a model whose
// path depends on the input values exports that one path). Parameters and buffers become initializers
// under their dotted names (named_parameters(), named_buffers()); other constants the forward uses
// (a tensor it makes, a parameter it transforms) become initializers named const_<k>.
//
// Nothing is exported wrong in silence (Note [export soundness] in nn/onnx.cpp): an op with no ONNX form
// on a value that depends on the inputs (a custom op, argmax, a comparison, where, gather, batch norm in
// training) throws dl::Error naming it; so does a value that changes with the inputs but reached a
// traced op through no traced op (Tensor::view(), clone(), to(), detach() or a data<T>() edit of it: use
// ops::reshape and friends in a forward): the forward runs a second time on other inputs of the same
// shapes to find those.
//
// Ops: conv2d (stride, padding, dilation, groups, bias), conv_transpose2d, batch_norm in eval (and its
// fused ReLU), relu, leaky_relu, elu, sigmoid, tanh, silu, gelu (an Erf composition: opset 13 and 17 have
// no Gelu), exp, log, sqrt, rsqrt, abs, neg, clamp, add, sub, mul, div, pow, maximum, minimum
// (broadcasting, and their scalar forms), max/avg/global average pooling, linear, matmul, softmax,
// log_softmax, sum and mean (over dims or all), reshape (flatten, squeeze, unsqueeze), expand,
// permute (transpose), slice (select), concat (stack), resize_bilinear (half-pixel, as libdl's),
// upsample_nearest2d, max and min along a dimension, index_select with a constant index, group_norm
// (InstanceNormalization), dropout in eval (nothing: the identity), and what is built of these
// (layer_norm, var, std, mean of all).
//
// Where ONNX has several ways to say one thing, the graph uses the one OpenCV's dnn module (4.6, Debian
// 12) reads: explicit broadcasts of traced operands of rank 2 to 4, constants spread to C x H x W, a Pad
// before a padded AveragePool, ReduceMean for sums, products and reciprocals for small powers, Relu
// compositions for clamp, Slices for a short index_select (Note [explicit broadcast] and
// beside each in nn/onnx_ops.cpp). The values are the same in any runtime.
//
// float32 only. A model on a CUDA device is traced there; its initializers are copied to the host.
// The file is written atomically (dl/core/file_io.h): a failed export leaves no file.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "dl/core/tensor.h"
#include "dl/nn/module.h"

namespace dl::nn {

struct OnnxExportOptions {
  // 13 to 17: the default domain's opset the graph declares (ir_version 7 for 13 and 14, 8 for 15 to 17).
  // Every node the exporter writes means the same in each (ReduceSum's axes as an input: 13 on).
  int opset = 17;
  // Folds every eval batch norm that follows a convolution into it (W' = W s, b' = (b - mean) s + beta,
  // s = gamma / sqrt(var + eps); the same outputs to rounding): in the graph only, the model is not
  // changed. A pair folds when the convolution's output feeds that batch norm alone. Unfolded, a batch
  // norm is a BatchNormalization node (with a Relu after it when fused).
  bool fold_batch_norm = true;
  // Names of the graph's inputs and outputs; empty: "input" and "output" for one, "input0", "input1", ...
  // for several. As many names as inputs (outputs) when given.
  std::vector<std::string> input_names, output_names;
  // Dimension 0 of every input and output is the symbolic "batch" instead of the examples' size.
  // Reshapes keep dimension 0 (written as 0, ONNX's "copy it"), expands write 1 there, resizes take
  // scales. A reshape or expand that changes dimension 0 throws.
  bool dynamic_batch = false;
  std::string graph_name = "libdl";
};

// The forward of a model as a function of its input tensors, returning its outputs.
using OnnxForward = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;

// Traces `forward` on `examples` (float32, on the model's device) with `model` in eval() under grad mode
// (its train flag and its parameters' requires_grad are restored after) and writes the ONNX model to
// `path`. `model` owns the parameters and buffers the forward uses (their names). Throws dl::Error,
// naming the op, the value or the path, when the model cannot be exported or the file not written.
void export_onnx(Module& model, const OnnxForward& forward, const std::vector<Tensor>& examples,
                 const std::string& path, const OnnxExportOptions& options = {});

// A single-input layer (MnistCnn, ResNet18, DeepLabV3Plus, a Sequential): export_onnx of its forward.
void export_onnx(Layer& model, const Tensor& example, const std::string& path, const OnnxExportOptions& options = {});

}  // namespace dl::nn
