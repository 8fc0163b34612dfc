// A model's summary: one forward of a zero batch of the given shape, in eval() and without a graph,
// watched by forward hooks, gives a row per layer call (dotted name, class, output shape, parameters,
// FLOPs, output bytes) and the totals; str() or operator<< prints it as a table.
//
//   dl::nn::MnistCnn model;
//   std::cout << dl::nn::summary(model, {1, 1, 28, 28});
//
// Note [summary FLOPs]: a multiply-add counts as 2 FLOPs, and a bias adds 1 per output element.
//   Conv2d          2 N C_out Ho Wo (C_in / groups) R S   (+ N C_out Ho Wo with bias)
//   ConvTranspose2d 2 N C_in H W (C_out / groups) R S     (+ N C_out Ho Wo with bias): every input
//                   element times every weight it meets
//   Linear          2 N OUT IN                            (+ N OUT with bias; N: all leading dims)
//   BatchNorm2d     2 per output element (eval: a scale and a shift, x s + t); 0 when folded
// Other layers (activations, pooling, resizing) count 0: cheap next to these, and what they cost
// depends on the backend. Containers (Sequential, blocks, models) count 0 themselves; their children
// have rows of their own.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "dl/core/shape.h"
#include "dl/nn/module.h"

namespace dl::nn {

struct SummaryRow {
  std::string name;  // dotted path in the model ("layer1.0.conv1"; "" for the model itself)
  std::string type;  // the class ("Conv2d")
  int depth = 0;     // how many layer calls enclose this one (0: the model's own call)
  Shape output_shape;
  int64_t parameters = 0;    // the module's own, not its children's (a layer called twice: both rows)
  int64_t flops = 0;         // Note [summary FLOPs]
  int64_t output_bytes = 0;  // of the output tensor
  bool leaf = true;          // no registered children
};

struct Summary {
  // One per call of a Layer (operator() or BatchNorm2d::forward_relu) during the forward, in the order
  // the calls began. Layers called through forward() directly have no row.
  std::vector<SummaryRow> rows;
  Shape input_shape, output_shape;
  DType dtype = DType::kFloat32;
  Device device = Device::cpu();
  int64_t parameters = 0;            // model.num_parameters(): every parameter, called or not
  int64_t trainable_parameters = 0;  // those with requires_grad
  int64_t parameter_bytes = 0;
  int64_t flops = 0;             // the sum over the rows
  int64_t activation_bytes = 0;  // the outputs of the leaf rows (a container's output is a child's)
  std::string str() const;       // the table and the totals
};

std::ostream& operator<<(std::ostream& os, const Summary& s);

// Runs model on zeros of `input_shape` (dtype, device) in eval() under autograd::NoGradGuard, and
// restores every module's train/eval flag afterwards (also when the forward throws).
Summary summary(Layer& model, const Shape& input_shape, DType dtype, Device device);
// The same with the device and floating dtype of the model's first parameter (the CPU and float32
// for a model without parameters).
Summary summary(Layer& model, const Shape& input_shape);

}  // namespace dl::nn
