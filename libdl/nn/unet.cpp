// UNet: the encoder-decoder segmentation network, from the library's layers.
#include "dl/nn/unet.h"

#include <string>

#include "dl/ops/pooling.h"
#include "dl/ops/shape_ops.h"

namespace dl::nn {

namespace {
// Two 3x3 convolutions, each followed by batch norm and ReLU (fused); the conv bias is left out, as batch
// norm's shift takes its place.
std::shared_ptr<Sequential> double_conv(int in, int out, Init init, Generator& gen) {
  auto block = std::make_shared<Sequential>();
  for (int i = 0; i < 2; ++i) {
    Conv2dOptions c;
    c.in_channels = i == 0 ? in : out;
    c.out_channels = out;
    c.kernel = {3, 3};
    c.params.padding = {1, 1};
    c.bias = false;
    c.init = init;
    const std::string id = std::to_string(i + 1);
    block->add("conv" + id, std::make_shared<Conv2d>(c, gen));
    block->add("bn" + id, std::make_shared<BatchNormReLU2d>(out));
  }
  return block;
}
}  // namespace

UNet::UNet(const UNetOptions& o, Generator& gen) : o_(o) {
  DL_CHECK(o.levels >= 2 && o.levels <= 8 && o.base_channels >= 1 && o.in_channels >= 1 && o.num_classes >= 1,
           "UNet: expected 2 to 8 levels and positive channel counts, got levels ", o.levels, ", base_channels ",
           o.base_channels, ", in_channels ", o.in_channels, ", num_classes ", o.num_classes);
  int channels = o.in_channels;
  for (int l = 0; l < o.levels; ++l) {
    const int out = o.base_channels << l;
    encoders_.push_back(register_module("enc" + std::to_string(l + 1), double_conv(channels, out, o.init, gen)));
    channels = out;
  }
  for (int l = o.levels - 2; l >= 0; --l) {  // up from the bottleneck
    const int out = o.base_channels << l;
    const std::string id = std::to_string(o.levels - 1 - l);
    ConvTranspose2dOptions u;
    u.in_channels = channels;
    u.out_channels = out;
    u.kernel = {2, 2};
    u.params.stride = {2, 2};
    u.init = o.init;
    ups_.push_back(register_module("up" + id, std::make_shared<ConvTranspose2d>(u, gen)));
    decoders_.push_back(register_module("dec" + id, double_conv(2 * out, out, o.init, gen)));
    channels = out;
  }
  Conv2dOptions h;
  h.in_channels = channels;
  h.out_channels = o.num_classes;
  h.kernel = {1, 1};
  h.init = o.init;
  head_ = register_module("head", std::make_shared<Conv2d>(h, gen));
}

Tensor UNet::forward(const Tensor& x) {
  const int64_t div = int64_t{1} << (o_.levels - 1);
  DL_CHECK(x.dim() == 4 && x.size(1) == o_.in_channels && x.size(2) % div == 0 && x.size(3) % div == 0,
           "UNet: expected N x ", o_.in_channels, " x H x W with H and W divisible by ", div, ", got ",
           x.shape().str());
  std::vector<Tensor> skips;
  Tensor h = x;
  for (size_t l = 0; l < encoders_.size(); ++l) {
    if (l > 0) h = ops::max_pool2d(h, Pool2dParams{{2, 2}, {2, 2}, {0, 0}});
    h = (*encoders_[l])(h);
    skips.push_back(h);
  }
  for (size_t i = 0; i < ups_.size(); ++i) {
    const Tensor& skip = skips[skips.size() - 2 - i];
    h = (*decoders_[i])(ops::concat({skip, (*ups_[i])(h)}));
  }
  return (*head_)(h);
}

std::shared_ptr<Module> UNet::clone_empty() const {
  Generator scratch;  // clone() overwrites the initial values
  return std::make_shared<UNet>(o_, scratch);
}

}  // namespace dl::nn
