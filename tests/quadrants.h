// A learnable toy image set shared by the training tests: class = the brightest quadrant of an 8 x 8
// image, plus noise; the same set for the same seed on every rank and run.
#pragma once
#include <memory>
#include <vector>

#include "dl/core/rng.h"
#include "dl/data/dataset.h"

// `bad_label` >= 0 puts that label on the middle sample (tests of label errors).
inline std::shared_ptr<dl::data::TensorDataset> quadrants(int n, uint64_t seed, int bad_label = -1) {
  dl::Generator gen(seed);
  dl::Tensor x = dl::Tensor::uniform({n, 1, 8, 8}, 0.0, 0.3, gen);
  std::vector<int32_t> y(static_cast<size_t>(n));
  float* p = x.data<float>();
  for (int i = 0; i < n; ++i) {
    const int c = static_cast<int>(gen.below(4));
    y[static_cast<size_t>(i)] = c;
    for (int h = 0; h < 4; ++h)
      for (int w = 0; w < 4; ++w) p[i * 64 + (h + 4 * (c / 2)) * 8 + w + 4 * (c % 2)] += 0.7f;
  }
  if (bad_label >= 0) y[static_cast<size_t>(n / 2)] = bad_label;
  return std::make_shared<dl::data::TensorDataset>(x, dl::Tensor::from_vector<int32_t>({n}, y));
}
