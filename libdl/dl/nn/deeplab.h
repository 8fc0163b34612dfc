// DeepLabv3+ on a ResNet-18 encoder of output stride 16 (Chen et al. 2018), with MATLAB's
// deeplabv3plusLayers layout:
//
//   x                                   N x 3 x H x W
//   encoder (ResNet18, OS 16)           layer1: N x 64 x H/4 x W/4; layer4: N x 512 x H/16 x W/16
//   aspp.b0   1x1 conv 256 + BN + ReLU              } each N x 256 x H/16 x W/16
//   aspp.b1-3 3x3 conv 256, rates 6/12/18 + BN + ReLU }
//   aspp.pool global avg pool, 1x1 conv 256 + BN + ReLU, upsampled (optional, on by default)
//   concat -> aspp.project 1x1 conv 256 + BN + ReLU   N x 256 x H/16 x W/16
//   x4 bilinear upsampling                             N x 256 x H/4 x W/4 (to layer1's size)
//   decoder.low 1x1 conv 48 + BN + ReLU on layer1      N x 48 x H/4 x W/4
//   concat -> decoder.conv1 3x3 256 + BN + ReLU -> decoder.conv2 3x3 256 + BN + ReLU
//   classifier 1x1 conv (with bias)                    N x classes x H/4 x W/4
//   bilinear upsampling to the input size              N x classes x H x W (logits)
//
// Parameter names: "encoder.<torchvision resnet18 name>" (encoder.conv1.weight,
// encoder.layer1.0.bn1.running_mean, ...), then aspp.b0.conv.weight, aspp.b0.bn.weight, ...,
// aspp.b1 .. aspp.b3, aspp.pool, aspp.project, decoder.low, decoder.conv1, decoder.conv2 (each with
// .conv and .bn), classifier.weight and classifier.bias. The image-pooling branch's batch norm needs
// a mini-batch of at least 2 in training.
#pragma once
#include <memory>
#include <vector>

#include "dl/nn/resnet.h"

namespace dl::nn {

// conv (no bias) + batch norm + ReLU, named "conv" and "bn".
class ConvBnRelu : public Layer {
 public:
  ConvBnRelu(int in, int out, int kernel, int dilation, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override;

 private:
  int in_, out_, kernel_, dilation_;
  std::shared_ptr<Conv2d> conv_;
  std::shared_ptr<BatchNorm2d> bn_;
};

struct DeepLabV3PlusOptions {
  int num_classes = 11;
  bool image_pooling = true;
  std::vector<int> atrous_rates{6, 12, 18};
};

class DeepLabV3Plus : public Layer {
 public:
  explicit DeepLabV3Plus(const DeepLabV3PlusOptions& o = {}, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override;
  ResNet18& encoder() { return *encoder_; }
  const DeepLabV3PlusOptions& options() const { return o_; }

 private:
  DeepLabV3PlusOptions o_;
  std::shared_ptr<ResNet18> encoder_;
  std::vector<std::shared_ptr<ConvBnRelu>> aspp_;  // b0, b1.., pool (last, when on)
  std::shared_ptr<ConvBnRelu> project_, low_, dec1_, dec2_;
  std::shared_ptr<Conv2d> classifier_;
};

}  // namespace dl::nn
