// Softmax cross-entropy over class logits.
#pragma once
#include <cstdint>

#include "dl/core/tensor.h"

namespace dl::ops {

struct CrossEntropyOptions {
  Tensor class_weights;        // C, same dtype as the logits, or undefined (all 1)
  int32_t ignore_index = -1;   // labels equal to this (>= 0) count nowhere (CamVid's void, 255); -1: none
};

// logits: N x C or N x C x H x W (float); labels: N or N x H x W (int32) in [0, C) or ignore_index.
// Returns shape [1]: sum_i w[y_i] (-log softmax(x_i)[y_i]) / sum_i w[y_i] over the counted samples
// (PyTorch's 'mean' reduction and MATLAB's weighted crossentropy). A label outside [0, C) that is
// not ignore_index throws dl::Error naming it and its position; so does a batch with nothing counted.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& opt = {});

}  // namespace dl::ops
