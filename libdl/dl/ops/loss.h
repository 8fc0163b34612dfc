// Softmax cross-entropy over class logits.
#pragma once
#include <cstdint>

#include "dl/core/tensor.h"

namespace dl::ops {

struct CrossEntropyOptions {
  Tensor class_weights;       // C, same dtype as the logits, or undefined (all 1)
  int32_t ignore_index = -1;  // labels equal to this (>= 0) count nowhere (CamVid's void, 255); -1: none
};

// logits: N x C or N x C x H x W (float); labels: N or N x H x W (int32, or int64 as PyTorch writes them:
// converted, each checked to fit) in [0, C) or ignore_index.
// Returns shape [1]: sum_i w[y_i] (-log softmax(x_i)[y_i]) / sum_i w[y_i] over the counted samples
// (PyTorch's 'mean' reduction and MATLAB's weighted crossentropy). A label outside [0, C) that is
// not ignore_index throws dl::Error naming it and its position; so does a batch with nothing counted.
// On a CUDA device neither is checked before the loss is computed (that would stop the host at every
// step): the kernel skips such labels and makes the loss NaN, and check_labels says which label it was
// (the trainer calls it when a loss is not finite).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& opt = {});

// Throws dl::Error naming the first label (int32, any device) outside [0, num_classes) that is not
// ignore_index (when >= 0), with its position.
void check_labels(const Tensor& labels, int64_t num_classes, int32_t ignore_index);

}  // namespace dl::ops
