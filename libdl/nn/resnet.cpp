// ResNet-18 (torchvision's structure and names).
#include "dl/nn/resnet.h"

#include "dl/ops/activation.h"
#include "dl/ops/elementwise.h"
#include "dl/ops/pooling.h"
#include "dl/ops/shape_ops.h"

namespace dl::nn {

namespace {
std::shared_ptr<Conv2d> conv(int in, int out, int k, int stride, int dilation, Generator& gen, bool bias = false) {
  Conv2dOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel = {k, k};
  o.params.stride = {stride, stride};
  o.params.padding = {dilation * (k - 1) / 2, dilation * (k - 1) / 2};
  o.params.dilation = {dilation, dilation};
  o.bias = bias;
  o.init = Init::kHeNormal;
  return std::make_shared<Conv2d>(o, gen);
}

std::shared_ptr<Sequential> make_layer(int in, int out, int stride, int dilation, Generator& gen) {
  auto layer = std::make_shared<Sequential>();
  // The first block keeps the previous dilation (1), as torchvision's _make_layer does.
  layer->add("0", std::make_shared<BasicBlock>(in, out, stride, 1, 1, gen));
  layer->add("1", std::make_shared<BasicBlock>(out, out, 1, dilation, dilation, gen));
  return layer;
}
}  // namespace

BasicBlock::BasicBlock(int in, int out, int stride, int dilation1, int dilation2, Generator& gen)
    : in_(in), out_(out), stride_(stride), dilation1_(dilation1), dilation2_(dilation2) {
  conv1_ = register_module("conv1", conv(in, out, 3, stride, dilation1, gen));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(out));
  conv2_ = register_module("conv2", conv(out, out, 3, 1, dilation2, gen));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out));
  if (stride != 1 || in != out) {
    downsample_ = register_module("downsample", std::make_shared<Sequential>());
    downsample_->add("0", conv(in, out, 1, stride, 1, gen));
    downsample_->add("1", std::make_shared<BatchNorm2d>(out));
  }
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor h = bn1_->forward_relu((*conv1_)(x));
  h = (*bn2_)((*conv2_)(h));
  return ops::relu(ops::add(h, downsample_ ? (*downsample_)(x) : x));
}

// The copies' initial values are overwritten by clone(): a local generator keeps the default one's
// sequence as it was.
std::shared_ptr<Module> BasicBlock::clone_empty() const {
  Generator scratch;
  return std::make_shared<BasicBlock>(in_, out_, stride_, dilation1_, dilation2_, scratch);
}

ResNet18::ResNet18(const ResNet18Options& o, Generator& gen) : o_(o) {
  conv1_ = register_module("conv1", conv(3, 64, 7, 2, 1, gen));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(64));
  layer1_ = register_module("layer1", make_layer(64, 64, 1, 1, gen));
  layer2_ = register_module("layer2", make_layer(64, 128, 2, 1, gen));
  layer3_ = register_module("layer3", make_layer(128, 256, 2, 1, gen));
  layer4_ =
      register_module("layer4", o.output_stride_16 ? make_layer(256, 512, 1, 2, gen) : make_layer(256, 512, 2, 1, gen));
  if (o.with_classifier)
    fc_ = register_module("fc", std::make_shared<Linear>(512, o.num_classes, true, Init::kGlorotUniform, gen));
}

ResNet18::Features ResNet18::features(const Tensor& x) {
  DL_CHECK(x.dim() == 4 && x.size(1) == 3, "ResNet18: expected N x 3 x H x W, got ", x.shape().str());
  Tensor h = bn1_->forward_relu((*conv1_)(x));
  h = ops::max_pool2d(h, Pool2dParams{{3, 3}, {2, 2}, {1, 1}});
  Features f;
  f.layer1 = (*layer1_)(h);
  f.layer4 = (*layer4_)((*layer3_)((*layer2_)(f.layer1)));
  return f;
}

Tensor ResNet18::forward(const Tensor& x) {
  DL_CHECK(fc_ != nullptr, "ResNet18::forward needs the classifier (with_classifier); use features() for an encoder");
  return (*fc_)(ops::flatten(ops::global_avg_pool2d(features(x).layer4)));
}

std::shared_ptr<Module> ResNet18::clone_empty() const {
  Generator scratch;
  return std::make_shared<ResNet18>(o_, scratch);
}

}  // namespace dl::nn
