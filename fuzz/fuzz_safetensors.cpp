// libFuzzer target: the safetensors reader, and loading what it read into a model by name.
#include "dl/core/safetensors.h"
#include "dl/nn/mnist_cnn.h"
#include "dl/nn/state.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dl::fuzz::input_file(data, size, ".safetensors");
  static dl::nn::MnistCnn model({.filters = {2}, .in_channels = 1, .height = 4, .width = 4, .num_classes = 2});
  dl::fuzz::expect_clean([&] { dl::nn::load_weights(model, path, {.allow_unexpected = true, .allow_missing = true}); });
  dl::fuzz::expect_clean([&] { (void)dl::load_safetensors(path, {.allow_non_finite = true}); });
  return 0;
}
