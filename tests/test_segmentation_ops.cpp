// The ops and files DeepLabv3+ adds: bilinear resizing (gradient check in float64, hand-checked
// values), safetensors round trips and rejection of corrupt headers, and the models' names and shapes.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "gradcheck.h"

namespace {

using dl::Tensor;
using Inputs = std::vector<Tensor>;

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("libdl_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

TEST(ResizeBilinear, GradientUpAndDown) {
  dl::Generator gen(1);
  const Tensor x = Tensor::randn({2, 3, 5, 7}, gen, dl::DType::kFloat64);
  EXPECT_TRUE(dl::testing::gradcheck([](const Inputs& in) { return dl::ops::resize_bilinear(in[0], 11, 9); }, {x}));
  EXPECT_TRUE(dl::testing::gradcheck([](const Inputs& in) { return dl::ops::resize_bilinear(in[0], 2, 3); }, {x}));
  EXPECT_TRUE(dl::testing::gradcheck([](const Inputs& in) { return dl::ops::resize_bilinear(in[0], 5, 7); }, {x}));
}

TEST(ResizeBilinear, ImagePoolingBranchGradient) {
  // global pool -> 1x1 conv -> batch norm (training, 1 x 1 maps) -> ReLU -> broadcast by resizing.
  dl::Generator gen(7);
  const Tensor x = Tensor::randn({4, 6, 4, 6}, gen, dl::DType::kFloat64);
  const Tensor w = Tensor::randn({5, 6, 1, 1}, gen, dl::DType::kFloat64);
  const Tensor g = Tensor::uniform({5}, 0.5, 1.5, gen, dl::DType::kFloat64);
  const Tensor b = Tensor::randn({5}, gen, dl::DType::kFloat64);
  auto branch = [](const Inputs& in) {
    Tensor rm = Tensor::zeros({5}, dl::DType::kFloat64), rv = Tensor::ones({5}, dl::DType::kFloat64);
    Tensor h = dl::ops::conv2d(dl::ops::global_avg_pool2d(in[0]), in[1], {}, {});
    h = dl::ops::batch_norm(h, in[2], in[3], rm, rv, {});
    return dl::ops::resize_bilinear(h, 4, 6);
  };
  EXPECT_TRUE(dl::testing::gradcheck(branch, {x, w, g, b}));
}

TEST(ResizeBilinear, HalfPixelCentresAsPyTorch) {
  // 1 x 1 x 1 x 2 -> 1 x 4: src = (o + 0.5) / 2 - 0.5 = -0.25 (clamped 0), 0.25, 0.75, 1.25 (i1 clamped)
  const Tensor x = Tensor::from_vector<float>({1, 1, 1, 2}, {0.f, 4.f});
  const Tensor y = dl::ops::resize_bilinear(x, 1, 4);
  const std::vector<float> expect{0.f, 1.f, 3.f, 4.f};
  EXPECT_EQ(y.to_vector_f32(), expect);
  // From 1 x 1, every output equals the input (the image-pooling branch relies on it).
  const Tensor one = Tensor::full({1, 2, 1, 1}, 3.5);
  for (float v : dl::ops::resize_bilinear(one, 3, 5).to_vector_f32()) EXPECT_EQ(v, 3.5f);
}

TEST(SafeTensors, RoundTripAndStrictHeaderChecks) {
  const std::string path = temp_path("w.safetensors");
  dl::Generator gen(2);
  std::vector<std::pair<std::string, Tensor>> ts{{"a.weight", Tensor::randn({3, 4}, gen)},
                                                 {"b", Tensor::from_vector<int32_t>({2}, {7, -1})},
                                                 {"c", Tensor::randn({2, 2}, gen, dl::DType::kFloat64)}};
  dl::save_safetensors(path, ts, {{"format", "pt"}});
  const auto back = dl::load_safetensors(path);
  ASSERT_EQ(back.tensors.size(), 3u);
  EXPECT_EQ(back.metadata.at("format"), "pt");
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back.tensors[i].first, ts[i].first);
    EXPECT_EQ(back.tensors[i].second.shape(), ts[i].second.shape());
    EXPECT_EQ(0, std::memcmp(back.tensors[i].second.raw_data(), ts[i].second.raw_data(), ts[i].second.nbytes()));
  }
  // A header whose offsets run past the data, and a header length beyond the file.
  auto write_raw = [&](const std::string& header, size_t data_bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    uint64_t n = header.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << header << std::string(data_bytes, '\0');
  };
  write_raw(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
  try {
    dl::load_safetensors(path);
    FAIL();
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'x'"), std::string::npos) << e.what();
  }
  write_raw(
      R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}, "y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      12);
  EXPECT_THROW(dl::load_safetensors(path), dl::Error);  // overlapping
  write_raw(R"({"x":{"dtype":"U16","shape":[2],"data_offsets":[0,4]}})", 4);
  EXPECT_THROW(dl::load_safetensors(path), dl::Error);
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    uint64_t n = 1000;
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << "{}";
  }
  EXPECT_THROW(dl::load_safetensors(path), dl::Error);
  std::filesystem::remove(path);
}

TEST(Models, ResNet18NamesMatchTorchvision) {
  dl::Generator gen(3);
  dl::nn::ResNet18 net({}, gen);
  const auto names = net.state();
  auto has = [&](const std::string& n) {
    for (const auto& [k, v] : names)
      if (k == n) return true;
    return false;
  };
  for (const char* n :
       {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer1.1.bn2.running_var",
        "layer2.0.downsample.0.weight", "layer2.0.downsample.1.bias", "layer4.1.conv2.weight", "fc.weight", "fc.bias"})
    EXPECT_TRUE(has(n)) << n;
  EXPECT_EQ(net.num_parameters(), 11689512);  // torchvision's resnet18
}

TEST(Models, DeepLabShapesAndSafetensorsRoundTrip) {
  dl::Generator gen(4);
  dl::nn::DeepLabV3Plus net({.num_classes = 11}, gen);
  const Tensor x = Tensor::randn({2, 3, 64, 96}, gen);
  net.eval();
  const Tensor y = net(x);
  EXPECT_EQ(y.shape(), dl::Shape({2, 11, 64, 96}));
  const std::string path = temp_path("deeplab.safetensors");
  dl::nn::save_weights(net, path);
  dl::Generator other(5);
  dl::nn::DeepLabV3Plus copy({.num_classes = 11}, other);
  dl::nn::load_weights(copy, path);
  copy.eval();
  const Tensor y2 = copy(x);
  EXPECT_EQ(0, std::memcmp(y.raw_data(), y2.raw_data(), y.nbytes()));
  // An encoder initialised from a classification ResNet-18 file: fc.* is not part of the encoder.
  dl::nn::ResNet18 classifier({}, gen);
  dl::nn::save_weights(classifier, path);
  EXPECT_THROW(dl::nn::load_weights(copy.encoder(), path), dl::Error);
  dl::nn::load_weights(copy.encoder(), path, {.allow_unexpected = true});
  std::filesystem::remove(path);
}

}  // namespace
