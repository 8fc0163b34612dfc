// MnistCnn: the seed's MNIST network (MATLAB's "Create Simple Deep Learning Network for
// Classification"): per entry of `filters` a block conv3x3 ('same' padding) + batch norm + ReLU,
// with 2x2 max pooling (stride 2) after every block but the last; then a fully connected layer to
// the classes (softmax is part of the loss).
//
//   x  N x 1 x 28 x 28
//   conv1 8, bn1 + ReLU, pool1   -> N x  8 x 14 x 14   (bnK: BatchNormReLU2d, the two fused)
//   conv2 16, bn2 + ReLU, pool2  -> N x 16 x  7 x  7
//   conv3 32, bn3 + ReLU         -> N x 32 x  7 x  7
//   flatten, fc                  -> N x 10 (logits)
#pragma once
#include <vector>

#include "dl/nn/layers.h"

namespace dl::nn {

struct MnistCnnOptions {
  std::vector<int> filters{8, 16, 32};
  int in_channels = 1, height = 28, width = 28, num_classes = 10;
  Init init = Init::kGlorotUniform;
};

class MnistCnn : public Sequential {
 public:
  explicit MnistCnn(const MnistCnnOptions& o = {}, Generator& gen = default_generator());
  std::shared_ptr<Module> clone_empty() const override;
  const MnistCnnOptions& options() const { return o_; }

 private:
  MnistCnnOptions o_;
};

}  // namespace dl::nn
