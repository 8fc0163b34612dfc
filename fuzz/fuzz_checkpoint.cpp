// libFuzzer target: the libdl tensor file reader and a trainer's checkpoint loading (metadata parsed
// strictly, every tensor checked against the model and the optimiser).
#include "dl/core/serialize.h"
#include "dl/nn/mnist_cnn.h"
#include "dl/train/trainer.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dl::fuzz::input_file(data, size, ".dlck");
  static dl::nn::MnistCnn model({.filters = {2}, .in_channels = 1, .height = 4, .width = 4, .num_classes = 2});
  static dl::train::Trainer* trainer = [] {
    dl::train::TrainingOptions o;
    o.solver = dl::train::Solver::kAdam;
    o.verbose = false;
    return new dl::train::Trainer(model, o);
  }();
  dl::fuzz::expect_clean([&] { (void)dl::load_tensor_file(path, {.allow_non_finite = true}); });
  dl::fuzz::expect_clean([&] { trainer->load_checkpoint(path); });
  return 0;
}
