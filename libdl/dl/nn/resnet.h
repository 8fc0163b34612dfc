// ResNet-18 with torchvision's structure and parameter names, so that a torchvision state_dict
// saved as safetensors loads as is (num_batches_tracked entries are not kept):
//
//   conv1 7x7/2 (64) bn1 relu maxpool 3x3/2      N x 3 x H x W -> N x 64 x H/4 x W/4
//   layer1: 2 BasicBlocks, 64                    -> N x  64 x H/4  x W/4
//   layer2: 2 BasicBlocks, 128, first stride 2   -> N x 128 x H/8  x W/8
//   layer3: 2 BasicBlocks, 256, first stride 2   -> N x 256 x H/16 x W/16
//   layer4: 2 BasicBlocks, 512, first stride 2   -> N x 512 x H/32 x W/32   (output stride 32)
//           or stride 1 with dilation 2          -> N x 512 x H/16 x W/16   (output stride 16)
//   avgpool, fc (classifier only)
//
// A BasicBlock is conv1 3x3 (stride s) bn1 relu conv2 3x3 bn2, plus the shortcut (identity, or
// downsample.0 1x1/s conv + downsample.1 bn), then relu. In the output-stride-16 variant, layer4's
// first block keeps dilation 1 (it is the block that used to stride) and the second block uses
// dilation 2 in both convolutions (torchvision's replace_stride_with_dilation convention).
#pragma once
#include <memory>
#include <vector>

#include "dl/nn/layers.h"

namespace dl::nn {

class BasicBlock : public Layer {
 public:
  // dilation1, dilation2: of conv1 and conv2 (padding = dilation keeps the size).
  BasicBlock(int in, int out, int stride, int dilation1, int dilation2, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override;

 private:
  int in_, out_, stride_, dilation1_, dilation2_;
  std::shared_ptr<Conv2d> conv1_, conv2_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
  std::shared_ptr<Sequential> downsample_;
};

struct ResNet18Options {
  int num_classes = 1000;
  bool output_stride_16 = false;  // layer4 with stride 1 and dilation 2
  bool with_classifier = true;    // avgpool + fc (off for an encoder)
};

class ResNet18 : public Layer {
 public:
  explicit ResNet18(const ResNet18Options& o = {}, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;  // logits N x classes (needs with_classifier)
  std::shared_ptr<Module> clone_empty() const override;
  const ResNet18Options& options() const { return o_; }

  struct Features {
    Tensor layer1, layer4;  // N x 64 x H/4 x W/4; N x 512 x H/16 (or /32)
  };
  Features features(const Tensor& x);

 private:
  ResNet18Options o_;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<Sequential> layer1_, layer2_, layer3_, layer4_;
  std::shared_ptr<Linear> fc_;
};

}  // namespace dl::nn
