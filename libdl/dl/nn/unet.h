// UNet: the encoder-decoder of Ronneberger et al. (2015) for per-pixel classification, in its common
// padded form (every convolution 3x3 with padding 1, so the output has the input's size), built from
// the library's layers: per level two conv + batch norm + ReLU, 2x2 max pooling down, a stride-2
// transposed convolution up, the encoder's features concatenated before each decoder block.
//
//   x  N x in_channels x H x W                 (H and W divisible by 2^(levels-1))
//   enc1 (2x conv-bn-relu)     -> N x  b x H x W         b = base_channels
//   pool, enc2                 -> N x 2b x H/2 x W/2
//   ...                           (levels in all; the last is the bottleneck)
//   up1 (convT 2x2 s2), concat with the encoder of the same size, dec1 (2x conv-bn-relu) -> ...
//   head (1x1 conv)            -> N x num_classes x H x W (logits)
#pragma once
#include <memory>
#include <vector>

#include "dl/nn/layers.h"

namespace dl::nn {

struct UNetOptions {
  int in_channels = 3, num_classes = 2;
  int base_channels = 16;  // channels of the first level, doubled at each level down
  int levels = 4;          // resolutions, the bottleneck included (>= 2)
  Init init = Init::kHeNormal;
};

class UNet : public Layer {
 public:
  explicit UNet(const UNetOptions& o = {}, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override;
  const UNetOptions& options() const { return o_; }

 private:
  UNetOptions o_;
  std::vector<std::shared_ptr<Sequential>> encoders_, decoders_;  // decoders_[i] follows ups_[i]
  std::vector<std::shared_ptr<ConvTranspose2d>> ups_;
  std::shared_ptr<Conv2d> head_;
};

}  // namespace dl::nn
