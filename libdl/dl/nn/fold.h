// Batch norm folded into the convolution before it, for inference: in eval() a BatchNorm2d is an
// affine map per channel, y = (x - mean) gamma / sqrt(var + eps) + beta, so a convolution whose output
// feeds that batch norm alone can take it over,
//   W'[k] = W[k] s[k],   b'[k] = (b[k] - mean[k]) s[k] + beta[k],   s = gamma / sqrt(var + eps),
// and the batch norm passes its input through; a fused ReLU of the batch norm (BatchNorm2d::forward_relu)
// moves into the convolution, which then runs as ops::conv2d_relu (the ReLU in the convolution's output
// pass). Two passes fewer over every such activation map, the same outputs to rounding.
//
//   model.eval();
//   const int folded = dl::nn::fold_batch_norm(model, example);   // e.g. a 1 x 3 x 360 x 480 batch
//
// Which convolution feeds which batch norm is read from the graph of one forward of `example`, so any
// model built from Conv2d and BatchNorm2d layers folds, whatever its code: a pair folds when the
// convolution's output goes to that batch norm and nowhere else (a residual sum or a concat taken
// before the batch norm keeps the pair as it is; so does a layer applied twice). Uses that record no
// graph (through detach(), under a NoGradGuard, or not reaching the output) cannot be seen: a model
// that has them should not be folded. A convolution without bias gets one ("bias", as
// PyTorch's fused modules do), so the folded model's weights file has that name more. The folded
// batch norms keep identity statistics (gamma 1, beta 0, mean 0, var 1 - eps), are marked `folded`,
// and refuse to train.
#pragma once
#include "dl/core/tensor.h"
#include "dl/nn/module.h"

namespace dl::nn {

// Puts `model` in eval() and folds every batch norm that directly follows a convolution; returns how many.
int fold_batch_norm(Layer& model, const Tensor& example);

}  // namespace dl::nn
