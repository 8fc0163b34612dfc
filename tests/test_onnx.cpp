// ONNX export (dl/nn/onnx.h): models built from libdl's layers (a user's model with broadcasting, concat,
// resizes and activations; a model of two inputs and two outputs; MnistCnn; ResNet-18; DeepLabV3Plus; UNet),
// exported and run by runtimes independent of libdl: onnx.checker (full check, strict shape inference)
// and OpenCV's dnn module, both through Debian's /usr/bin/python3 and tests/check_onnx.py, which compares
// each output with libdl's to 1e-4 of the output's scale. And the errors: an op with no ONNX form on a
// value that depends on the inputs names the op, a value made outside the traced ops is refused, a bad
// path leaves nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "dl/dl.h"
#include "dl/nn/onnx.h"

#ifndef DL_ONNX_PYTHON
#define DL_ONNX_PYTHON ""
#endif
#ifndef DL_ONNX_CHECKER
#define DL_ONNX_CHECKER ""
#endif

namespace fs = std::filesystem;
using dl::Tensor;
using namespace dl::nn;

namespace {

fs::path work_dir() {
  const fs::path dir = fs::temp_directory_path() / ("libdl_onnx_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

// Removes the folder of the cases at the end when every test passed (else it stays, for a look).
class RemoveWorkDir : public ::testing::Environment {
 public:
  void TearDown() override {
    if (::testing::UnitTest::GetInstance()->Passed()) fs::remove_all(work_dir());
  }
};
[[maybe_unused]] const auto* const g_cleanup = ::testing::AddGlobalTestEnvironment(new RemoveWorkDir);

// A float32 tensor as a NumPy .npy file (format 1.0, little-endian, C order).
void save_npy(const Tensor& t, const fs::path& path) {
  const std::vector<float> v = t.to(dl::Device::cpu()).to_vector_f32();
  std::string shape;
  for (int64_t d : t.shape().vec()) shape += std::to_string(d) + ", ";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  const uint16_t len = static_cast<uint16_t>(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(reinterpret_cast<const char*>(&len), 2);
  f << header;
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
}

// Fills every parameter and buffer with values away from the defaults (batch norm statistics that are
// not 0 and 1, so that folding and BatchNormalization are really exercised).
void randomise(Module& m, uint64_t seed) {
  dl::Generator gen(seed);
  for (const auto& [name, t] : m.state()) {
    const bool positive = name.ends_with("running_var");
    Tensor v = Tensor::uniform(t.shape(), positive ? 0.5 : -0.5, positive ? 1.5 : 0.5, gen);
    Tensor(t).copy_(v);
  }
}

// A case folder for check_onnx.py: the model exported from `forward`, the inputs and libdl's outputs
// (of `check_inputs`, by default the examples).
struct Case {
  std::string name;
  OnnxExportOptions options;
  std::vector<Tensor> check_inputs;
  bool batch_norm_nodes = false;  // whether the graph keeps BatchNormalization nodes
};

std::vector<std::string> g_cases;  // the folders written, checked together by CheckAll (one Python start)

void write_case(Module& model, const OnnxForward& forward, const std::vector<Tensor>& examples, Case c) {
  const fs::path dir = work_dir() / c.name;
  fs::create_directories(dir);
  export_onnx(model, forward, examples, (dir / "model.onnx").string(), c.options);
  // Op types are plain strings in the file: folded batch norms leave none.
  const std::string bytes = dl::read_file((dir / "model.onnx").string(), "ONNX model");
  EXPECT_EQ(bytes.find("BatchNormalization") != std::string::npos, c.batch_norm_nodes) << c.name;
  const std::vector<Tensor> inputs = c.check_inputs.empty() ? examples : c.check_inputs;
  model.eval();
  dl::autograd::NoGradGuard no_grad;
  const std::vector<Tensor> outputs = forward(inputs);
  std::ofstream names(dir / "names");
  for (size_t i = 0; i < inputs.size(); ++i) {
    save_npy(inputs[i], dir / ("input" + std::to_string(i) + ".npy"));
    names << (c.options.input_names.empty() ? (inputs.size() == 1 ? "input" : "input" + std::to_string(i))
                                            : c.options.input_names[i])
          << "\n";
  }
  names << "--\n";
  for (size_t k = 0; k < outputs.size(); ++k) {
    save_npy(outputs[k], dir / ("output" + std::to_string(k) + ".npy"));
    names << (c.options.output_names.empty() ? (outputs.size() == 1 ? "output" : "output" + std::to_string(k))
                                             : c.options.output_names[k])
          << "\n";
  }
  g_cases.push_back(dir.string());
}

void write_case(Layer& model, const Tensor& example, Case c) {
  write_case(
      model, [&model](const std::vector<Tensor>& in) { return std::vector<Tensor>{model.forward(in[0])}; }, {example},
      std::move(c));
}

// A user's model of library layers and ops: a strided conv, a broadcast scale of its own ([C, 1, 1]),
// leaky ReLU, a concat with a pooled branch brought back by bilinear resize, nearest upsampling,
// ConvTranspose2d, sigmoid, tanh, ELU, softmax and a mean over the spatial dimensions.
class UserNet : public Layer {
 public:
  UserNet() {
    Conv2dOptions c;
    c.in_channels = 3;
    c.out_channels = 8;
    c.params.stride = {2, 2};
    c.params.padding = {1, 1};
    conv_ = register_module("conv", std::make_shared<Conv2d>(c));
    bn_ = register_module("bn", std::make_shared<BatchNorm2d>(8));
    scale_ = register_parameter("scale", Tensor::uniform({8, 1, 1}, 0.5, 1.5));
    Conv2dOptions g;
    g.in_channels = 16;
    g.out_channels = 16;
    g.params.padding = {2, 2};
    g.params.dilation = {2, 2};
    g.params.groups = 4;
    grouped_ = register_module("grouped", std::make_shared<Conv2d>(g));
    ConvTranspose2dOptions t;
    t.in_channels = 16;
    t.out_channels = 4;
    t.params.stride = {2, 2};
    up_ = register_module("up", std::make_shared<ConvTranspose2d>(t));
  }
  Tensor forward(const Tensor& x) override {
    using namespace dl::ops;
    Tensor h = leaky_relu(mul((*bn_)((*conv_)(x)), scale_), 0.1);                                   // N x 8 x H/2 x W/2
    Tensor pooled = avg_pool2d(max_pool2d(h, {{2, 2}, {2, 2}, {0, 0}}), {{3, 3}, {1, 1}, {1, 1}});  // N x 8 x H/4
    Tensor branch = resize_bilinear(sigmoid(pooled), h.size(2), h.size(3));
    Tensor cat = concat({tanh(h), upsample_nearest2d(branch - 0.5, 1, 1) * 2.0});  // N x 16 x H/2 x W/2
    Tensor y = elu((*grouped_)(cat) + cat, 0.7);
    Tensor out = (*up_)(y);  // N x 4 x H x W
    return softmax(out + upsample_nearest2d(mean(out, {2, 3}, true), x.size(2), x.size(3)));
  }

 private:
  std::shared_ptr<Conv2d> conv_, grouped_;
  std::shared_ptr<BatchNorm2d> bn_;
  std::shared_ptr<ConvTranspose2d> up_;
  Tensor scale_;
};

// Two inputs (an image and a per-sample vector) and two outputs, in the manner of a research model: the
// vector conditions GroupNorm/GELU features through a linear layer broadcast over H x W; then max
// pooling, ConvTranspose2d, bilinear Upsample, a channel max, LayerNorm through permutes, var and mean,
// index_select with repeats, strided slices and a clamp on the way to the logits.
class TwoInputNet : public Module {
 public:
  TwoInputNet() {
    Conv2dOptions c;
    c.in_channels = 3;
    c.out_channels = 6;
    c.params.padding = {1, 1};
    stem_ = register_module("stem", std::make_shared<Conv2d>(c));
    gn_ = register_module("gn", std::make_shared<GroupNorm>(2, 6));
    ConvTranspose2dOptions t;
    t.in_channels = 6;
    t.out_channels = 4;
    t.params.stride = {2, 2};
    up_ = register_module("up", std::make_shared<ConvTranspose2d>(t));
    resize_ = register_module("resize", std::make_shared<Upsample>(2, Upsample::Mode::kBilinear));
    norm_ = register_module("norm", std::make_shared<LayerNorm>(dl::Shape{11}));
    film_ = register_module("film", std::make_shared<Linear>(5, 6));
    head_ = register_module("head", std::make_shared<Linear>(12, 3));
    pick_ = Tensor::from_vector<int64_t>({6}, {10, 3, 3, 4, 5, 0});
  }
  std::vector<Tensor> run(const Tensor& image, const Tensor& cond) {
    using namespace dl::ops;
    const int64_t n = image.size(0);
    Tensor h = silu((*stem_)(image));                           // N x 6 x H x W
    const Tensor g = reshape((*film_)(cond), {n, 6, 1, 1});     // N x 6 x 1 x 1
    h = gelu((*gn_)(h)) * sigmoid(g) + g;                       // broadcast over H x W
    const Tensor h2 = max_pool2d(h);                            // N x 6 x H/2 x W/2
    const Tensor m = max(h, 1, true);                           // N x 1 x H x W
    Tensor c = concat({h + (*resize_)(h2), (*up_)(h2), m}, 1);  // N x 11 x H x W
    c = permute((*norm_)(permute(c, {0, 2, 3, 1})), {0, 3, 1, 2});
    c = tanh(c) + leaky_relu(clamp(c, -1.5, 2.0), 0.1);
    Tensor z = var(c, {2, 3}) + mean(c, {2, 3}) * 0.5;                                     // N x 11
    z = z - mean(z, {1}, true);                                                            // N x 11 - N x 1
    const Tensor f = index_select(z, 1, pick_) - slice(z, 1, 0, 11, 2);                    // N x 6
    const Tensor logits = (*head_)(concat({pow(f, 2.0) / 3.0, 2.0 / (abs(f) + 1.0)}, 1));  // N x 3
    return {log_softmax(logits), c};
  }

 private:
  std::shared_ptr<Conv2d> stem_;
  std::shared_ptr<GroupNorm> gn_;
  std::shared_ptr<ConvTranspose2d> up_;
  std::shared_ptr<Upsample> resize_;
  std::shared_ptr<LayerNorm> norm_;
  std::shared_ptr<Linear> film_, head_;
  Tensor pick_;
};

// The normalisations: GroupNorm, LayerNorm over the last dimension of rank-4 and rank-3 tensors.
class NormNet : public Layer {
 public:
  NormNet() {
    gn_ = register_module("gn", std::make_shared<GroupNorm>(2, 4));
    ln_ = register_module("ln", std::make_shared<LayerNorm>(dl::Shape{6}));
  }
  Tensor forward(const Tensor& x) override {
    const int64_t n = x.size(0);
    Tensor h = dl::ops::gelu((*gn_)(x));  // N x 4 x 5 x 6
    // Over the last dimension of a rank-3 tensor too, as a sequence model would.
    const Tensor tokens = dl::ops::layer_norm(dl::ops::reshape(h, {n, 4, 30}), 1);
    return (*ln_)(h) + dl::ops::reshape(tokens, h.shape());
  }

 private:
  std::shared_ptr<GroupNorm> gn_;
  std::shared_ptr<LayerNorm> ln_;
};

// One convolution applied twice, each time before a batch norm of its own: the weight is shared, so neither
// pair folds (folding one would change the other); a LayerNorm applied twice reads its constants twice.
class SharedNet : public Layer {
 public:
  SharedNet() {
    Conv2dOptions c;
    c.in_channels = 2;
    c.out_channels = 2;
    c.params.padding = {1, 1};
    conv_ = register_module("conv", std::make_shared<Conv2d>(c));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(2));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(2));
    ln_ = register_module("ln", std::make_shared<LayerNorm>(dl::Shape{6}));
  }
  Tensor forward(const Tensor& x) override {
    const Tensor a = (*bn1_)((*conv_)(x));
    return (*ln_)((*ln_)((*bn2_)((*conv_)(a))));
  }

 private:
  std::shared_ptr<Conv2d> conv_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
  std::shared_ptr<LayerNorm> ln_;
};

Tensor input(dl::Shape s, uint64_t seed) {
  dl::Generator gen(seed);
  return Tensor::randn(s, gen);
}

}  // namespace

TEST(Onnx, UserModel) {
  UserNet net;
  randomise(net, 1);
  write_case(net, input({2, 3, 16, 20}, 2), {"user_model", {}, {}});
  Case kept{"user_model_opset13_bn_kept", {}, {}, true};
  kept.options.opset = 13;
  kept.options.fold_batch_norm = false;
  write_case(net, input({2, 3, 16, 20}, 2), kept);
}

// A model computing channels-last exports the same graph (its reorders are identities in ONNX).
TEST(Onnx, ChannelsLastModel) {
  DeepLabV3Plus net;
  randomise(net, 16);
  net.to(dl::MemoryFormat::kChannelsLast);
  write_case(net, input({1, 3, 64, 80}, 17), {"deeplabv3plus_channels_last", {}, {}});
}

TEST(Onnx, TwoInputsTwoOutputs) {
  TwoInputNet net;
  randomise(net, 3);
  const OnnxForward fwd = [&net](const std::vector<Tensor>& in) { return net.run(in[0], in[1]); };
  Case c{"two_inputs", {}, {}};
  c.options.input_names = {"image", "condition"};
  c.options.output_names = {"log_probs", "features"};
  write_case(net, fwd, {input({2, 3, 8, 10}, 4), input({2, 5}, 5)}, c);
}

TEST(Onnx, Normalisations) {
  NormNet net;
  randomise(net, 6);
  Case c{"norms", {}, {}};
  c.options.opset = 13;
  write_case(net, input({2, 4, 5, 6}, 7), c);
}

TEST(Onnx, SharedLayersDoNotFold) {
  SharedNet net;
  randomise(net, 15);
  write_case(net, input({2, 2, 5, 6}, 16), {"shared_layers", {}, {}, true});
}

TEST(Onnx, MnistCnn) {
  MnistCnn net;
  randomise(net, 8);
  write_case(net, input({2, 1, 28, 28}, 9), {"mnist_cnn", {}, {}});
  // Traced at batch 2, run at batch 3.
  Case c{"mnist_cnn_dynamic_batch", {}, {input({3, 1, 28, 28}, 10)}, true};
  c.options.dynamic_batch = true;
  c.options.fold_batch_norm = false;
  write_case(net, input({2, 1, 28, 28}, 9), c);
}

TEST(Onnx, ResNet18) {
  ResNet18 net(ResNet18Options{10});
  randomise(net, 11);
  write_case(net, input({1, 3, 64, 64}, 12), {"resnet18", {}, {}});
}

TEST(Onnx, DeepLabV3Plus) {
  DeepLabV3Plus net;
  randomise(net, 13);
  write_case(net, input({1, 3, 64, 80}, 14), {"deeplabv3plus", {}, {}});
}

TEST(Onnx, UNet) {
  UNetOptions o;
  o.base_channels = 4;
  o.levels = 3;
  UNet net(o);
  randomise(net, 17);
  write_case(net, input({1, 3, 16, 24}, 18), {"unet", {}, {}});
}

// Runs check_onnx.py on every case written above (GoogleTest runs the tests of a file in order).
TEST(Onnx, IndependentRuntimesReproduceLibdl) {
  ASSERT_FALSE(g_cases.empty()) << "no case was exported";
  const std::string python = DL_ONNX_PYTHON;
  ASSERT_FALSE(python.empty())
      << "no Python with onnx and cv2 was found when libdl was configured "
         "(Debian: apt-get install python3-onnx python3-opencv; scripts/setup.sh installs them)";
  std::string cmd = "'" + python + "' '" DL_ONNX_CHECKER "'";
  for (const std::string& c : g_cases) cmd += " '" + c + "'";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd;
}

// ---- errors ----

namespace {
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const dl::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A layer whose forward calls `f` between a convolution and a ReLU.
class Between : public Layer {
 public:
  explicit Between(std::function<Tensor(const Tensor&)> f) : f_(std::move(f)) {
    Conv2dOptions c;
    c.out_channels = 2;
    conv_ = register_module("conv", std::make_shared<Conv2d>(c));
  }
  Tensor forward(const Tensor& x) override { return dl::ops::relu(f_((*conv_)(x))); }

 private:
  std::function<Tensor(const Tensor&)> f_;
  std::shared_ptr<Conv2d> conv_;
};

std::string export_error(const std::function<Tensor(const Tensor&)>& f) {
  Between net(f);
  const fs::path path = work_dir() / "error.onnx";
  std::string e = error_of([&] { export_onnx(net, input({1, 1, 6, 6}, 20), path.string()); });
  EXPECT_FALSE(fs::exists(path)) << "a failed export left " << path;
  return e;
}
}  // namespace

TEST(OnnxErrors, CustomOpIsNamed) {
  const dl::ops::CustomOp softplus =
      dl::ops::CustomOp("my_softplus")
          .cpu([](const std::vector<Tensor>& in) { return dl::ops::log(dl::ops::exp(in[0]) + 1.0); },
               [](const std::vector<Tensor>& in, const Tensor&, const Tensor& gy, const std::vector<bool>&) {
                 return std::vector<Tensor>{gy * dl::ops::sigmoid(in[0])};
               });
  const std::string e = export_error([&softplus](const Tensor& h) { return softplus({h}); });
  EXPECT_NE(e.find("'my_softplus' has no ONNX form"), std::string::npos) << e;
}

TEST(OnnxErrors, NonDifferentiableOpIsNamed) {
  const std::string e =
      export_error([](const Tensor& h) { return dl::ops::where(dl::ops::gt(h, 0.0), h, dl::ops::mul(h, 0.5)); });
  EXPECT_NE(e.find("'gt' has no ONNX form"), std::string::npos) << e;
}

TEST(OnnxErrors, UntracedCopyIsRefused) {
  // A clone of a value has no history and no trace: it must not become a constant of the graph.
  const std::string e = export_error([](const Tensor& h) { return h + h.detach().clone(); });
  EXPECT_NE(e.find("changes with the inputs"), std::string::npos) << e;
  const std::string view = export_error([](const Tensor& h) { return h * h.view(h.shape()); });
  EXPECT_NE(view.find("changes with the inputs"), std::string::npos) << view;
  const std::string only = export_error([](const Tensor& h) { return h.detach().clone(); });
  EXPECT_NE(only.find("does not depend on the model's inputs"), std::string::npos) << only;
}

TEST(OnnxErrors, TrainingBatchNormIsNamed) {
  BatchNorm2d bn(1);
  const std::string e = export_error([&bn](const Tensor& h) {
    bn.train();
    return bn.forward(dl::ops::slice(h, 1, 0, 1));
  });
  EXPECT_NE(e.find("'batch_norm' has no ONNX form"), std::string::npos) << e;
}

TEST(OnnxErrors, BadPathAndArguments) {
  MnistCnn net;
  const Tensor x = input({1, 1, 28, 28}, 21);
  const std::string missing = (work_dir() / "no_such_folder" / "m.onnx").string();
  EXPECT_NE(error_of([&] { export_onnx(net, x, missing); }), "(no error)");
  EXPECT_FALSE(fs::exists(missing));
  const std::string folder = work_dir().string();  // a folder is no file
  EXPECT_NE(error_of([&] { export_onnx(net, x, folder); }).find(folder), std::string::npos);
  const std::string path = (work_dir() / "m.onnx").string();
  OnnxExportOptions old;
  old.opset = 11;
  EXPECT_NE(error_of([&] { export_onnx(net, x, path, old); }).find("opset from 13 to 17"), std::string::npos);
  EXPECT_NE(error_of([&] { export_onnx(net, x.to(dl::DType::kFloat64), path); }).find("float32"), std::string::npos);
  OnnxExportOptions clash;
  clash.input_names = {"conv1.weight"};
  EXPECT_NE(error_of([&] { export_onnx(net, x, path, clash); }).find("'conv1.weight' is given to two values"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(path));
  // The model is as it was: in training, its parameters requiring grad.
  EXPECT_TRUE(net.is_training());
  for (const auto& [name, p] : net.named_parameters()) EXPECT_TRUE(p.requires_grad()) << name;
}
