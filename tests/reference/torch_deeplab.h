// The libtorch twins of libdl's reference networks, with the same module and parameter names, for
// the parity tests and the benchmarks (weights are copied by name).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace dl_reference {

namespace F = torch::nn::functional;

torch::nn::Conv2d tconv(int in, int out, int k, int stride, int dilation, bool bias = false) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k)
                               .stride(stride)
                               .padding(dilation * (k - 1) / 2)
                               .dilation(dilation)
                               .bias(bias));
}

struct TBlock : torch::nn::Module {
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};
  TBlock(int in, int out, int stride, int d1, int d2) {
    conv1 = register_module("conv1", tconv(in, out, 3, stride, d1));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(out));
    conv2 = register_module("conv2", tconv(out, out, 3, 1, d2));
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(out));
    if (stride != 1 || in != out)
      downsample = register_module("downsample",
                                   torch::nn::Sequential(tconv(in, out, 1, stride, 1), torch::nn::BatchNorm2d(out)));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto h = torch::relu(bn1(conv1(x)));
    h = bn2(conv2(h));
    return torch::relu(h + (downsample ? downsample->forward(x) : x));
  }
};

struct TCbr : torch::nn::Module {
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  TCbr(int in, int out, int k, int d) {
    conv = register_module("conv", tconv(in, out, k, 1, d));
    bn = register_module("bn", torch::nn::BatchNorm2d(out));
  }
  torch::Tensor forward(torch::Tensor x) { return torch::relu(bn(conv(x))); }
};

torch::Tensor up(torch::Tensor x, int64_t h, int64_t w) {
  return F::interpolate(
      x, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBilinear).align_corners(false));
}

struct TDeepLab : torch::nn::Module {
  torch::nn::Module* encoder;
  torch::nn::Conv2d conv1{nullptr}, classifier{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  std::vector<std::vector<std::shared_ptr<TBlock>>> layers;
  std::vector<std::shared_ptr<TCbr>> aspp;
  std::shared_ptr<TCbr> project, low, dec1, dec2;
  bool pooling;
  explicit TDeepLab(int classes, bool image_pooling = true) : pooling(image_pooling) {
    auto enc = register_module("encoder", std::make_shared<torch::nn::Module>());
    encoder = enc.get();
    conv1 = enc->register_module("conv1", tconv(3, 64, 7, 2, 1));
    bn1 = enc->register_module("bn1", torch::nn::BatchNorm2d(64));
    const int chans[4] = {64, 128, 256, 512};
    int in = 64;
    for (int l = 0; l < 4; ++l) {
      auto layer = enc->register_module("layer" + std::to_string(l + 1), std::make_shared<torch::nn::Module>());
      const int stride = (l == 0 || l == 3) ? 1 : 2, dil = l == 3 ? 2 : 1;
      std::vector<std::shared_ptr<TBlock>> blocks{
          layer->register_module("0", std::make_shared<TBlock>(in, chans[l], stride, 1, 1)),
          layer->register_module("1", std::make_shared<TBlock>(chans[l], chans[l], 1, dil, dil))};
      layers.push_back(blocks);
      in = chans[l];
    }
    auto a = register_module("aspp", std::make_shared<torch::nn::Module>());
    aspp.push_back(a->register_module("b0", std::make_shared<TCbr>(512, 256, 1, 1)));
    const int rates[3] = {6, 12, 18};
    for (int i = 0; i < 3; ++i)
      aspp.push_back(a->register_module("b" + std::to_string(i + 1), std::make_shared<TCbr>(512, 256, 3, rates[i])));
    if (pooling) aspp.push_back(a->register_module("pool", std::make_shared<TCbr>(512, 256, 1, 1)));
    project = a->register_module("project", std::make_shared<TCbr>(256 * static_cast<int>(aspp.size()), 256, 1, 1));
    auto d = register_module("decoder", std::make_shared<torch::nn::Module>());
    low = d->register_module("low", std::make_shared<TCbr>(64, 48, 1, 1));
    dec1 = d->register_module("conv1", std::make_shared<TCbr>(304, 256, 3, 1));
    dec2 = d->register_module("conv2", std::make_shared<TCbr>(256, 256, 3, 1));
    classifier = register_module("classifier", tconv(256, classes, 1, 1, 1, true));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto h = torch::max_pool2d(torch::relu(bn1(conv1(x))), 3, 2, 1);
    torch::Tensor l1;
    for (size_t l = 0; l < layers.size(); ++l) {
      for (auto& b : layers[l]) h = b->forward(h);
      if (l == 0) l1 = h;
    }
    std::vector<torch::Tensor> br;
    for (size_t i = 0; i + (pooling ? 1 : 0) < aspp.size(); ++i) br.push_back(aspp[i]->forward(h));
    if (pooling) br.push_back(up(aspp.back()->forward(torch::adaptive_avg_pool2d(h, {1, 1})), h.size(2), h.size(3)));
    auto a = up(project->forward(torch::cat(br, 1)), l1.size(2), l1.size(3));
    auto d = dec2->forward(dec1->forward(torch::cat({a, low->forward(l1)}, 1)));
    return up(classifier(d), x.size(2), x.size(3));
  }
};

}  // namespace dl_reference
