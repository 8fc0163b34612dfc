// The code of docs/guide.md, compiled and run by the tests (ctest guide_examples): each region between
// "// [guide:NAME]" and "// [/guide:NAME]" is a code block of the guide, word for word
// (tests/check_guide.py compares them), and main runs every section and checks what it gives.
#include <dl/dl.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

int failures = 0;
void expect(bool ok, const std::string& what) {
  std::printf("guide: %s %s\n", ok ? "ok    " : "FAILED", what.c_str());
  if (!ok) ++failures;
}

// A small task: 8 x 8 images whose class (0..3) is the bright quadrant.
std::pair<dl::Tensor, dl::Tensor> quadrants(int64_t n, dl::Generator& gen) {
  dl::Tensor x = dl::Tensor::randn({n, 1, 8, 8}, gen);
  std::vector<int32_t> y(static_cast<size_t>(n));
  float* p = x.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    y[static_cast<size_t>(i)] = static_cast<int32_t>(gen.below(4));
    const int r0 = (y[static_cast<size_t>(i)] / 2) * 4, c0 = (y[static_cast<size_t>(i)] % 2) * 4;
    for (int r = r0; r < r0 + 4; ++r)
      for (int c = c0; c < c0 + 4; ++c) p[i * 64 + r * 8 + c] += 1.5f;
  }
  return {x, dl::Tensor::from_vector<int32_t>({n}, y)};
}

// [guide:model]
// A residual block: children and parameters are registered by name, which places them in
// parameter_refs() (what optimisers update) and in weight files ("block.conv.weight").
class Residual : public dl::nn::Layer {
 public:
  explicit Residual(int channels) {
    dl::nn::Conv2dOptions o{.in_channels = channels, .out_channels = channels};
    o.params.padding = {1, 1};
    conv_ = register_module("conv", std::make_shared<dl::nn::Conv2d>(o));
    norm_ = register_module("norm", std::make_shared<dl::nn::GroupNorm>(4, channels));
    scale_ = register_parameter("scale", dl::Tensor::full({channels, 1, 1}, 0.1));
  }
  dl::Tensor forward(const dl::Tensor& x) override {
    // The [C, 1, 1] scale broadcasts over N, H and W; the gradient is summed back to its shape.
    return x + scale_ * dl::ops::gelu((*norm_)((*conv_)(x)));
  }
  // A block of the same configuration: clone() builds the copy's tree with it, then copies every value.
  std::shared_ptr<dl::nn::Module> clone_empty() const override {
    return std::make_shared<Residual>(static_cast<int>(scale_.size(0)));
  }

 private:
  std::shared_ptr<dl::nn::Conv2d> conv_;
  std::shared_ptr<dl::nn::GroupNorm> norm_;
  dl::Tensor scale_;
};

// Layers chain in a Sequential, itself a Layer: the Trainer takes it as it is.
std::shared_ptr<dl::nn::Sequential> make_classifier(int classes) {
  auto net = std::make_shared<dl::nn::Sequential>();
  net->add("stem", std::make_shared<dl::nn::Conv2d>(dl::nn::Conv2dOptions{.in_channels = 1, .out_channels = 8}));
  net->add("block", std::make_shared<Residual>(8));
  net->add("pool", std::make_shared<dl::nn::GlobalAvgPool2d>());
  net->add("flatten", std::make_shared<dl::nn::Flatten>());
  net->add("head", std::make_shared<dl::nn::Linear>(8, classes));
  return net;
}
// [/guide:model]

// [guide:loss]
// Cross-entropy with label smoothing: a loss is any function of tensors that ends in one element.
dl::Tensor smoothed_cross_entropy(const dl::Tensor& logits, const dl::Tensor& labels, double eps) {
  const dl::Tensor logp = dl::ops::log_softmax(logits);                               // N x C
  const dl::Tensor picked = dl::ops::gather(logp, 1, dl::ops::unsqueeze(labels, 1));  // N x 1
  const double classes = static_cast<double>(logits.size(1));
  return -dl::ops::mean((1.0 - eps) * picked + (eps / classes) * dl::ops::sum(logp, {1}, true));
}
// [/guide:loss]

// [guide:op]
// y = x^3 with its own backward. The bodies here call libdl's ops (the forward runs with grad mode
// off); a body may as well loop over x.data<float>() or launch a CUDA kernel (examples/custom_op).
dl::Tensor cube(const dl::Tensor& x) {
  using Inputs = std::vector<dl::Tensor>;
  static const dl::ops::CustomOp op = dl::ops::CustomOp("cube").cpu(
      [](const Inputs& in) { return in[0] * in[0] * in[0]; },
      [](const Inputs& in, const dl::Tensor& /*y*/, const dl::Tensor& dy, const std::vector<bool>& /*needs*/) {
        return Inputs{3.0 * in[0] * in[0] * dy};
      });
  return op({x});
}

// The backward against central differences, in float64.
bool cube_backward_is_right() {
  dl::Tensor x = dl::Tensor::randn({3, 4}).to(dl::DType::kFloat64);
  auto f = [](const std::vector<dl::Tensor>& in) { return cube(in[0]); };
  const dl::testing::GradcheckResult r = dl::testing::gradcheck(f, {x});
  if (!r) std::printf("%s\n", r.message.c_str());
  return r.ok;
}
// [/guide:op]

// [guide:loop]
// A training loop by hand: AdamW with cosine decay after a linear warm-up, the parameters of the head
// in their own group without weight decay.
double train_by_hand(dl::nn::Sequential& net, const dl::Tensor& x, const dl::Tensor& y, int steps) {
  std::vector<dl::nn::ParamRef> body, head;
  for (const dl::nn::ParamRef& p : net.parameter_refs()) (p.name.rfind("head.", 0) == 0 ? head : body).push_back(p);
  dl::optim::AdamW opt({{.params = body}, {.params = head, .weight_decay = 0.0}},
                       {.learning_rate = 0.01, .weight_decay = 0.05});
  const dl::optim::Schedule schedule = dl::optim::Schedule::cosine().with_warmup(10);
  double loss_value = 0;
  net.train();
  for (int it = 0; it < steps; ++it) {
    opt.set_learning_rate(0.01 *
                          schedule.factor({.iteration = it, .iterations_per_epoch = steps, .total_iterations = steps}));
    dl::Tensor loss = smoothed_cross_entropy(net(x), y, 0.1);
    opt.zero_grad();
    loss.backward();
    opt.step();
    loss_value = loss.item<double>();  // a read waits for the device: read when the number is needed
  }
  return loss_value;
}

// Accuracy without building a graph.
double accuracy(dl::nn::Sequential& net, const dl::Tensor& x, const dl::Tensor& y) {
  dl::autograd::NoGradGuard no_grad;
  net.eval();
  const dl::Tensor counts = dl::ops::correct_counts(net(x), y);  // {correct, counted}, float64
  return counts.to(dl::Device::cpu()).data<double>()[0] / counts.to(dl::Device::cpu()).data<double>()[1];
}
// [/guide:loop]

// [guide:trainer]
// The Trainer runs MATLAB's trainNetwork recipe on any Layer: options in snake_case, the progress
// table printed, validation, checkpoints and a report.
double train_with_trainer(dl::nn::Layer& model, const dl::Tensor& x, const dl::Tensor& y, const dl::Tensor& xv,
                          const dl::Tensor& yv) {
  dl::train::TrainingOptions o;
  o.solver = dl::train::Solver::kAdam;
  o.initial_learn_rate = 0.01;
  o.max_epochs = 10;
  o.mini_batch_size = 64;
  o.shuffle = dl::train::Shuffle::kEveryEpoch;
  o.verbose = false;
  dl::train::Trainer trainer(model, o);
  trainer.set_validation_data(std::make_shared<dl::data::TensorDataset>(xv, yv));
  trainer.fit(std::make_shared<dl::data::TensorDataset>(x, y));
  return trainer.evaluate(dl::data::TensorDataset(xv, yv)).accuracy;
}
// [/guide:trainer]

// [guide:save]
// Weights by name, in safetensors (PyTorch reads them with safetensors.torch.load_file); a model of
// the same structure loads them, and a file that does not fit is an error naming the tensor.
void save_and_reload(const dl::nn::Sequential& trained, dl::nn::Sequential& fresh, const std::string& path) {
  dl::nn::save_weights(trained, path);  // written to a temporary file, then renamed: never half a file
  dl::nn::load_weights(fresh, path);
}
// [/guide:save]

// [guide:gpu]
// Everything on one device: the model moves in place, tensors are copied explicitly, and an op whose
// inputs are on different devices is an error (nothing moves behind your back).
dl::Device pick_device() { return dl::cuda_available() ? dl::Device::cuda(0) : dl::Device::cpu(); }

double accuracy_on(dl::nn::Sequential& net, const dl::Tensor& x, const dl::Tensor& y, dl::Device device) {
  net.to(device);
  const double a = accuracy(net, x.to(device), y.to(device));
  net.to(dl::Device::cpu());
  return a;
}
// [/guide:gpu]

// [guide:dist]
// Data-parallel over processes (MPI) or GPUs (NCCL): start with `mpirun -np 2 ./program`; every rank
// runs this with its own share of the batch, and the averaged gradients keep the ranks in step.
double train_data_parallel(dl::nn::Sequential& net, const dl::Tensor& x, const dl::Tensor& y, int steps) {
  dl::dist::ProcessGroup& world = dl::dist::world();  // one process without a launcher
  dl::dist::broadcast_state(net, world);              // rank 0's weights everywhere
  const int64_t share = x.size(0) / world.size(), first = world.rank() * share;
  const dl::Tensor xs = dl::ops::slice(x, 0, first, first + share), ys = dl::ops::slice(y, 0, first, first + share);
  dl::optim::Adam opt(net.parameter_refs(), {.learning_rate = 0.01});
  dl::dist::GradientReducer reducer(net.parameter_refs(), world);
  double loss_value = 0;
  for (int it = 0; it < steps; ++it) {
    dl::Tensor loss = dl::ops::cross_entropy(net(xs), ys);
    opt.zero_grad();
    reducer.backward(loss);  // backward, with the gradients averaged over the ranks as they are ready
    opt.step();
    dl::Tensor l = loss.detach().clone();
    world.all_reduce(l, dl::dist::ReduceOp::kAverage);
    loss_value = l.item<double>();
  }
  return loss_value;
}
// [/guide:dist]

// [guide:inspect]
// A table of the layers (output shape, parameters, FLOPs), a deep copy, a hook that sees every output of
// a layer, and an ONNX file for other runtimes (ONNX Runtime, OpenCV's dnn, TensorRT).
int64_t inspect_and_export(dl::nn::Sequential& net, const std::string& onnx_path) {
  const dl::nn::Summary s = dl::nn::summary(net, {1, 1, 8, 8});
  std::cout << s;                  // one row per layer, then the totals
  auto copy = dl::nn::clone(net);  // its own storage: training it leaves `net` as it is
  int64_t features = 0;
  dl::nn::ScopedHook h((*copy)[2].register_forward_hook(  // [2]: "pool"
      [&](dl::nn::Module&, const dl::Tensor&, const dl::Tensor& out) { features += out.numel(); }));
  (*copy)(dl::Tensor::zeros({2, 1, 8, 8}));                              // features: 2 x 8 pooled values
  dl::nn::export_onnx(net, dl::Tensor::zeros({1, 1, 8, 8}), onnx_path);  // opset 17, batch norm folded
  return features;
}
// [/guide:inspect]

// [guide:fast]
// Faster on the CPU: channels-last activations (NHWC, which oneDNN's convolutions read in place) and bf16
// convolutions where the CPU has AVX-512 BF16. Then, for inference, each batch norm folds into its
// convolution, and a fused ReLU moves into the convolution's output pass (ops::conv2d_relu).
int train_fast_then_fold(dl::nn::Sequential& net, const dl::Tensor& x, const dl::Tensor& y, int steps) {
  net.to(dl::MemoryFormat::kChannelsLast);  // every layer takes its input NHWC; the weights keep theirs
  const dl::Precision p = dl::cpu_bf16_available() ? dl::Precision::kBf16 : dl::Precision::kFp32;
  dl::optim::Sgdm opt(net.parameter_refs(), {.learning_rate = 0.05, .momentum = 0.9});
  net.train();
  for (int it = 0; it < steps; ++it) {
    const dl::Autocast autocast(p);  // convolutions compute in p, activations stored in p
    dl::Tensor loss = dl::ops::cross_entropy(net(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  net.eval();
  return dl::nn::fold_batch_norm(net, x);  // how many batch norms were folded
}
// [/guide:fast]

}  // namespace

int main() {
  dl::set_num_threads(1);
  dl::Generator gen(5);
  dl::manual_seed(5);
  const auto [x, y] = quadrants(256, gen);
  const auto [xv, yv] = quadrants(128, gen);

  auto net = make_classifier(4);
  expect(net->parameter_refs().size() == 9, "the classifier registers its 9 parameters (stem, block, head)");
  const double smoothed0 = smoothed_cross_entropy(net->forward(x), y, 0.0).item<double>();
  const double plain = dl::ops::cross_entropy(net->forward(x), y).item<double>();
  expect(std::abs(smoothed0 - plain) < 1e-5, "label smoothing 0 is the plain cross-entropy");
  expect(cube_backward_is_right(), "the custom op's backward passes gradcheck");

  const double before = accuracy(*net, xv, yv);
  const double loss = train_by_hand(*net, x, y, 60);
  const double after = accuracy(*net, xv, yv);
  expect(std::isfinite(loss) && after > 0.9 && after > before,
         "the loop by hand learns (accuracy " + std::to_string(before) + " -> " + std::to_string(after) + ")");

  auto fresh = make_classifier(4);
  const std::string path = (std::filesystem::temp_directory_path() / "dl_guide.safetensors").string();
  save_and_reload(*net, *fresh, path);
  std::filesystem::remove(path);
  expect(accuracy(*fresh, xv, yv) == after, "the reloaded model gives the same accuracy");
  expect(accuracy_on(*fresh, xv, yv, pick_device()) > 0.9, "the model on " + pick_device().str());

  const std::string onnx = (std::filesystem::temp_directory_path() / "dl_guide.onnx").string();
  expect(inspect_and_export(*net, onnx) == 16, "the hook saw the pooled features of two images");
  expect(std::filesystem::file_size(onnx) > 4 * static_cast<uintmax_t>(net->num_parameters()),
         "the ONNX file holds the weights");
  std::filesystem::remove(onnx);
  const dl::nn::Summary s = dl::nn::summary(*net, {1, 1, 8, 8});
  expect(s.parameters == net->num_parameters() && s.flops > 0, "the summary counts every parameter");

  dl::nn::MnistCnn fast({.filters = {8, 16}, .in_channels = 1, .height = 8, .width = 8, .num_classes = 4}, gen);
  expect(train_fast_then_fold(fast, x, y, 40) == 2, "both batch norms fold into their convolutions");
  const double fast_accuracy = accuracy(fast, xv, yv);
  expect(fast_accuracy > 0.9, "the channels-last model learns (accuracy " + std::to_string(fast_accuracy) + ")");

  auto other = make_classifier(4);
  const double trained = train_with_trainer(*other, x, y, xv, yv);
  expect(trained > 0.9, "the Trainer learns (accuracy " + std::to_string(trained) + ")");
  auto third = make_classifier(4);
  const double dist_loss = train_data_parallel(*third, x, y, 40);
  expect(std::isfinite(dist_loss) && accuracy(*third, xv, yv) > 0.9, "data-parallel training learns");
  std::printf("guide: %d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}
