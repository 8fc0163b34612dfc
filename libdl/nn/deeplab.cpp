// DeepLabv3+ with a ResNet-18 encoder.
#include "dl/nn/deeplab.h"

#include "dl/ops/activation.h"
#include "dl/ops/pooling.h"
#include "dl/ops/resize.h"
#include "dl/ops/shape_ops.h"

namespace dl::nn {

namespace {
// A module without parameters of its own that only groups children under a name ("aspp").
class Group : public Module {
 public:
  template <typename M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> m) {
    return register_module(name, m);
  }
  std::shared_ptr<Module> clone_empty() const override {
    auto copy = std::make_shared<Group>();
    for (const auto& [name, child] : named_children()) copy->add(name, child->clone_empty());
    return copy;
  }
};
}  // namespace

ConvBnRelu::ConvBnRelu(int in, int out, int kernel, int dilation, Generator& gen)
    : in_(in), out_(out), kernel_(kernel), dilation_(dilation) {
  Conv2dOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel = {kernel, kernel};
  o.params.padding = {dilation * (kernel - 1) / 2, dilation * (kernel - 1) / 2};
  o.params.dilation = {dilation, dilation};
  o.bias = false;
  o.init = Init::kHeNormal;
  conv_ = register_module("conv", std::make_shared<Conv2d>(o, gen));
  bn_ = register_module("bn", std::make_shared<BatchNorm2d>(out));
}

Tensor ConvBnRelu::forward(const Tensor& x) { return bn_->forward_relu((*conv_)(x)); }

// The copies' initial values are overwritten by clone(): a local generator keeps the default one's
// sequence as it was.
std::shared_ptr<Module> ConvBnRelu::clone_empty() const {
  Generator scratch;
  return std::make_shared<ConvBnRelu>(in_, out_, kernel_, dilation_, scratch);
}

std::shared_ptr<Module> DeepLabV3Plus::clone_empty() const {
  Generator scratch;
  return std::make_shared<DeepLabV3Plus>(o_, scratch);
}

DeepLabV3Plus::DeepLabV3Plus(const DeepLabV3PlusOptions& o, Generator& gen) : o_(o) {
  DL_CHECK(o.num_classes >= 1, "DeepLabV3Plus: expected at least one class, got ", o.num_classes);
  encoder_ = register_module("encoder", std::make_shared<ResNet18>(ResNet18Options{1000, true, false}, gen));
  auto aspp = register_module("aspp", std::make_shared<Group>());
  aspp_.push_back(aspp->add("b0", std::make_shared<ConvBnRelu>(512, 256, 1, 1, gen)));
  for (size_t i = 0; i < o.atrous_rates.size(); ++i)
    aspp_.push_back(aspp->add(std::to_string(i + 1).insert(0, "b"),
                              std::make_shared<ConvBnRelu>(512, 256, 3, o.atrous_rates[i], gen)));
  if (o.image_pooling) aspp_.push_back(aspp->add("pool", std::make_shared<ConvBnRelu>(512, 256, 1, 1, gen)));
  project_ = aspp->add("project", std::make_shared<ConvBnRelu>(256 * static_cast<int>(aspp_.size()), 256, 1, 1, gen));
  auto decoder = register_module("decoder", std::make_shared<Group>());
  low_ = decoder->add("low", std::make_shared<ConvBnRelu>(64, 48, 1, 1, gen));
  dec1_ = decoder->add("conv1", std::make_shared<ConvBnRelu>(256 + 48, 256, 3, 1, gen));
  dec2_ = decoder->add("conv2", std::make_shared<ConvBnRelu>(256, 256, 3, 1, gen));
  Conv2dOptions c;
  c.in_channels = 256;
  c.out_channels = o.num_classes;
  c.kernel = {1, 1};
  c.init = Init::kGlorotUniform;
  classifier_ = register_module("classifier", std::make_shared<Conv2d>(c, gen));
}

Tensor DeepLabV3Plus::forward(const Tensor& x) {
  const ResNet18::Features f = encoder_->features(x);
  const int64_t h16 = f.layer4.size(2), w16 = f.layer4.size(3);
  std::vector<Tensor> branches;
  for (size_t i = 0; i < aspp_.size(); ++i) {
    if (o_.image_pooling && i + 1 == aspp_.size()) {
      Tensor pooled = (*aspp_[i])(ops::global_avg_pool2d(f.layer4));  // N x 256 x 1 x 1
      branches.push_back(ops::resize_bilinear(pooled, h16, w16));
    } else {
      branches.push_back((*aspp_[i])(f.layer4));
    }
  }
  Tensor a = (*project_)(ops::concat(branches));
  a = ops::resize_bilinear(a, f.layer1.size(2), f.layer1.size(3));
  Tensor d = ops::concat({a, (*low_)(f.layer1)});
  d = (*dec2_)((*dec1_)(d));
  return ops::resize_bilinear((*classifier_)(d), x.size(2), x.size(3));
}

}  // namespace dl::nn
