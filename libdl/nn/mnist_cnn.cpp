// MnistCnn: the seed's MNIST network.
#include "dl/nn/mnist_cnn.h"

namespace dl::nn {

MnistCnn::MnistCnn(const MnistCnnOptions& o, Generator& gen) : o_(o) {
  DL_CHECK(!o.filters.empty(), "MnistCnn: expected at least one convolution block");
  int channels = o.in_channels, h = o.height, w = o.width;
  for (size_t i = 0; i < o.filters.size(); ++i) {
    const std::string id = std::to_string(i + 1);
    Conv2dOptions c;
    c.in_channels = channels;
    c.out_channels = o.filters[i];
    c.kernel = {3, 3};
    c.params.padding = {1, 1};
    c.init = o.init;
    add("conv" + id, std::make_shared<Conv2d>(c, gen));
    add("bn" + id, std::make_shared<BatchNormReLU2d>(o.filters[i]));  // batch norm and its ReLU, fused
    if (i + 1 < o.filters.size()) {
      add("pool" + id, std::make_shared<MaxPool2d>(Pool2dParams{{2, 2}, {2, 2}, {0, 0}}));
      h /= 2;
      w /= 2;
    }
    channels = o.filters[i];
  }
  DL_CHECK(h >= 1 && w >= 1, "MnistCnn: input ", o.height, "x", o.width, " is too small for ", o.filters.size(),
           " blocks");
  add("flatten", std::make_shared<Flatten>());
  add("fc", std::make_shared<Linear>(channels * h * w, o.num_classes, true, o.init, gen));
}

std::shared_ptr<Module> MnistCnn::clone_empty() const {
  Generator scratch;  // clone() overwrites the initial values
  return std::make_shared<MnistCnn>(o_, scratch);
}

}  // namespace dl::nn
