// Classification accuracy from logits: the predicted class is the argmax over dimension 1.
#pragma once
#include <cstdint>

#include "dl/core/tensor.h"

namespace dl::metrics {

struct Counts {
  int64_t correct = 0, total = 0;
  double accuracy() const { return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0; }
};

// logits: N x C (x H x W) float; labels: N (x H x W) int32. Positions labelled ignore_index count nowhere.
// Counts where the logits are and reads the two numbers (one wait for a device).
Counts count_correct(const Tensor& logits, const Tensor& labels, int32_t ignore_index = -1);
// The numbers of a {correct, counted} tensor of ops::correct_counts (a copy to the host).
Counts read_counts(const Tensor& counts);

}  // namespace dl::metrics
