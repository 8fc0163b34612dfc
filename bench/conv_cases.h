// The convolution shapes that the benchmarks time (bench_ops on the CPU with libtorch beside it,
// bench_kernels on CUDA): the MNIST CNN at batch 1024 and DeepLabv3+ / ResNet-18 at 360 x 480, batch 2.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dl::bench {

struct ConvCase {
  std::string name;
  int64_t n, c, h, w, k, r;
  int stride, pad, dilation;
};

inline const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {"mnist.conv1", 1024, 1, 28, 28, 8, 3, 1, 1, 1},
      {"mnist.conv2", 1024, 8, 14, 14, 16, 3, 1, 1, 1},
      {"mnist.conv3", 1024, 16, 7, 7, 32, 3, 1, 1, 1},
      {"resnet18.conv1", 2, 3, 360, 480, 64, 7, 2, 3, 1},
      {"resnet18.layer1", 2, 64, 90, 120, 64, 3, 1, 1, 1},
      {"resnet18.layer2", 2, 128, 45, 60, 128, 3, 1, 1, 1},
      {"resnet18.layer3", 2, 256, 23, 30, 256, 3, 1, 1, 1},
      {"resnet18.layer4.os16", 2, 512, 23, 30, 512, 3, 1, 2, 2},
      {"deeplab.aspp.rate12", 2, 512, 23, 30, 256, 3, 1, 12, 12},
      {"deeplab.decoder", 2, 304, 90, 120, 256, 3, 1, 1, 1},
  };
  return cases;
}

// Multiply-adds of one forward pass, counted as 2 flops each.
inline double conv_flops(const ConvCase& c) {
  const int64_t ho = (c.h + 2 * c.pad - c.dilation * (c.r - 1) - 1) / c.stride + 1;
  const int64_t wo = (c.w + 2 * c.pad - c.dilation * (c.r - 1) - 1) / c.stride + 1;
  return 2.0 * c.n * c.k * ho * wo * c.c * c.r * c.r;
}

}  // namespace dl::bench
