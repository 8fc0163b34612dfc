// The standard layers.
#include "dl/nn/layers.h"

#include "dl/nn/init.h"
#include "dl/ops/activation.h"
#include "dl/ops/batch_norm.h"
#include "dl/ops/conv2d.h"
#include "dl/ops/dropout.h"
#include "dl/ops/linear.h"
#include "dl/ops/normalization.h"
#include "dl/ops/pooling.h"
#include "dl/ops/resize.h"
#include "dl/ops/shape_ops.h"

namespace dl::nn {

namespace {
void initialise(Tensor& w, Init init, Generator& gen) {
  if (init == Init::kHeNormal)
    init::he_normal_(w, gen);
  else
    init::glorot_uniform_(w, gen);
}
}  // namespace

Conv2d::Conv2d(const Conv2dOptions& o, Generator& gen) : o_(o) {
  DL_CHECK(o.in_channels >= 1 && o.out_channels >= 1 && o.params.groups >= 1 && o.in_channels % o.params.groups == 0 &&
               o.out_channels % o.params.groups == 0,
           "Conv2d: groups ", o.params.groups, " must divide in_channels ", o.in_channels, " and out_channels ",
           o.out_channels);
  Tensor w = Tensor::empty({o.out_channels, o.in_channels / o.params.groups, o.kernel[0], o.kernel[1]}, o.dtype);
  initialise(w, o.init, gen);
  weight = register_parameter("weight", w, 1.0);
  if (o.bias) bias = register_parameter("bias", Tensor::zeros({o.out_channels}, o.dtype), 0.0);
}

Tensor Conv2d::forward(const Tensor& x) {
  return o_.relu || fused_relu ? ops::conv2d_relu(x, weight, bias, o_.params) : ops::conv2d(x, weight, bias, o_.params);
}

// The copies' initial values are overwritten by clone(): a local generator keeps the default one's
// sequence as it was.
std::shared_ptr<Module> Conv2d::clone_empty() const {
  Generator scratch;
  return std::make_shared<Conv2d>(o_, scratch);
}
void Conv2d::copy_settings_to(Module& copy) const {
  dynamic_cast<Conv2d&>(copy).fused_relu = fused_relu;
  if (bias.defined()) dynamic_cast<Conv2d&>(copy).ensure_bias();  // fold_batch_norm gives one to a conv built without
}

Tensor& Conv2d::ensure_bias() {
  if (!bias.defined()) {
    bias = register_parameter("bias", Tensor::zeros({o_.out_channels}, weight.dtype(), weight.device()), 0.0);
    bias.set_requires_grad(weight.requires_grad());
    o_.bias = true;
  }
  return bias;
}

BatchNorm2d::BatchNorm2d(int channels, double momentum, double eps, DType dtype) : momentum_(momentum), eps_(eps) {
  weight = register_parameter("weight", Tensor::ones({channels}, dtype), 1.0);
  bias = register_parameter("bias", Tensor::zeros({channels}, dtype), 1.0);
  running_mean = register_buffer("running_mean", Tensor::zeros({channels}, dtype));
  running_var = register_buffer("running_var", Tensor::ones({channels}, dtype));
}

namespace {
void check_not_folded(const BatchNorm2d& bn) {
  DL_CHECK(!bn.is_training(),
           "BatchNorm2d: this layer was folded into the convolution before it "
           "(nn::fold_batch_norm) for inference; a folded model cannot train");
}
}  // namespace

Tensor BatchNorm2d::forward(const Tensor& x) {
  if (folded) return check_not_folded(*this), x;
  return ops::batch_norm(x, weight, bias, running_mean, running_var,
                         {.training = is_training(), .momentum = momentum_, .eps = eps_, .sync = sync});
}
Tensor BatchNorm2d::forward_relu(const Tensor& x) {
  return call(x, [this](const Tensor& in) { return batch_norm_relu(in); });
}
std::shared_ptr<Module> BatchNorm2d::clone_empty() const { return clone_as<BatchNorm2d>(); }
void BatchNorm2d::copy_settings_to(Module& copy) const {
  auto& bn = dynamic_cast<BatchNorm2d&>(copy);
  bn.sync = sync;
  bn.folded = folded;
  bn.relu_in_conv = relu_in_conv;
}

Tensor BatchNorm2d::batch_norm_relu(const Tensor& x) {
  if (folded) return check_not_folded(*this), relu_in_conv ? x : ops::relu(x);
  return ops::batch_norm(x, weight, bias, running_mean, running_var,
                         {.training = is_training(), .momentum = momentum_, .eps = eps_, .relu = true, .sync = sync});
}

int set_batch_norm_sync(Module& model, const std::function<void(Tensor&)>& sync) {
  int count = 0;
  model.for_each_module([&](Module& m) {
    if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) bn->sync = sync, ++count;
  });
  return count;
}

Tensor ReLU::forward(const Tensor& x) { return ops::relu(x); }
Tensor Sigmoid::forward(const Tensor& x) { return ops::sigmoid(x); }
Tensor Tanh::forward(const Tensor& x) { return ops::tanh(x); }
Tensor GELU::forward(const Tensor& x) { return ops::gelu(x); }
Tensor SiLU::forward(const Tensor& x) { return ops::silu(x); }
Tensor LeakyReLU::forward(const Tensor& x) { return ops::leaky_relu(x, negative_slope_); }
Tensor ELU::forward(const Tensor& x) { return ops::elu(x, alpha_); }
Tensor MaxPool2d::forward(const Tensor& x) { return ops::max_pool2d(x, p_); }
Tensor AvgPool2d::forward(const Tensor& x) { return ops::avg_pool2d(x, p_); }
Tensor GlobalAvgPool2d::forward(const Tensor& x) { return ops::global_avg_pool2d(x); }
Tensor Flatten::forward(const Tensor& x) { return ops::flatten(x); }

Linear::Linear(int in_features, int out_features, bool with_bias, Init init, Generator& gen, DType dtype) {
  DL_CHECK(in_features >= 1 && out_features >= 1, "Linear: expected positive sizes, got ", in_features, " -> ",
           out_features);
  Tensor w = Tensor::empty({out_features, in_features}, dtype);
  initialise(w, init, gen);
  weight = register_parameter("weight", w, 1.0);
  if (with_bias) bias = register_parameter("bias", Tensor::zeros({out_features}, dtype), 0.0);
}

Tensor Linear::forward(const Tensor& x) { return ops::linear(x, weight, bias); }

std::shared_ptr<Module> Linear::clone_empty() const {
  Generator scratch;
  return std::make_shared<Linear>(static_cast<int>(weight.size(1)), static_cast<int>(weight.size(0)), bias.defined(),
                                  Init::kGlorotUniform, scratch, weight.dtype());
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& [name, layer] : layers_) h = (*layer)(h);
  return h;
}

std::shared_ptr<Module> Sequential::clone_empty() const {
  auto copy = std::make_shared<Sequential>();
  std::vector<std::pair<const Layer*, std::shared_ptr<Layer>>> copied;  // a layer added twice stays one
  for (const auto& [name, layer] : layers_) {
    std::shared_ptr<Layer> c;
    for (const auto& [original, its_copy] : copied)
      if (original == layer.get()) c = its_copy;
    if (!c) {
      c = std::dynamic_pointer_cast<Layer>(layer->clone_empty());
      DL_CHECK(c != nullptr, "Sequential::clone_empty: the clone_empty of ", layer->type_name(), " ('", name,
               "') did not return a Layer");
      copied.emplace_back(layer.get(), c);
    }
    copy->add(name, c);
  }
  return copy;
}

Dropout::Dropout(double p, Generator& gen) : p_(p), gen_(&gen) {
  DL_CHECK(p >= 0 && p < 1, "Dropout: expected a probability p in [0, 1), got ", p);
}
Tensor Dropout::forward(const Tensor& x) { return ops::dropout(x, p_, is_training(), *gen_); }

LayerNorm::LayerNorm(const Shape& normalized_shape, double eps, bool affine, DType dtype)
    : normalized_shape_(normalized_shape), dims_(normalized_shape.ndim()), eps_(eps) {
  DL_CHECK(dims_ >= 1 && normalized_shape.numel() >= 1, "LayerNorm: expected a non-empty normalized shape, got ",
           normalized_shape.str());
  if (affine) {
    weight = register_parameter("weight", Tensor::ones(normalized_shape, dtype), 1.0);
    bias = register_parameter("bias", Tensor::zeros(normalized_shape, dtype), 1.0);
  }
}
Tensor LayerNorm::forward(const Tensor& x) { return ops::layer_norm(x, dims_, weight, bias, eps_); }
std::shared_ptr<Module> LayerNorm::clone_empty() const {
  return std::make_shared<LayerNorm>(normalized_shape_, eps_, weight.defined(),
                                     weight.defined() ? weight.dtype() : DType::kFloat32);
}

GroupNorm::GroupNorm(int groups, int channels, double eps, bool affine, DType dtype)
    : groups_(groups), channels_(channels), eps_(eps) {
  DL_CHECK(groups >= 1 && channels >= 1 && channels % groups == 0, "GroupNorm: ", groups, " groups must divide the ",
           channels, " channels");
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({channels}, dtype), 1.0);
    bias = register_parameter("bias", Tensor::zeros({channels}, dtype), 1.0);
  }
}
Tensor GroupNorm::forward(const Tensor& x) { return ops::group_norm(x, groups_, weight, bias, eps_); }
std::shared_ptr<Module> GroupNorm::clone_empty() const {
  return std::make_shared<GroupNorm>(groups_, channels_, eps_, weight.defined(),
                                     weight.defined() ? weight.dtype() : DType::kFloat32);
}

ConvTranspose2d::ConvTranspose2d(const ConvTranspose2dOptions& o, Generator& gen) : o_(o) {
  DL_CHECK(o.in_channels >= 1 && o.out_channels >= 1 && o.params.groups >= 1 && o.in_channels % o.params.groups == 0 &&
               o.out_channels % o.params.groups == 0,
           "ConvTranspose2d: groups ", o.params.groups, " must divide in_channels ", o.in_channels,
           " and out_channels ", o.out_channels);
  Tensor w = Tensor::empty({o.in_channels, o.out_channels / o.params.groups, o.kernel[0], o.kernel[1]}, o.dtype);
  initialise(w, o.init, gen);
  weight = register_parameter("weight", w, 1.0);
  if (o.bias) bias = register_parameter("bias", Tensor::zeros({o.out_channels}, o.dtype), 0.0);
}
Tensor ConvTranspose2d::forward(const Tensor& x) {
  return ops::conv_transpose2d(x, weight, bias, o_.params, o_.output_padding);
}
std::shared_ptr<Module> ConvTranspose2d::clone_empty() const {
  Generator scratch;
  return std::make_shared<ConvTranspose2d>(o_, scratch);
}

Upsample::Upsample(int scale, Mode mode) : scale_(scale), mode_(mode) {
  DL_CHECK(scale >= 1, "Upsample: expected a positive integer scale, got ", scale);
}
Tensor Upsample::forward(const Tensor& x) {
  if (mode_ == Mode::kNearest) return ops::upsample_nearest2d(x, scale_, scale_);
  DL_CHECK(x.dim() == 4, "Upsample: expected N x C x H x W, got ", x.shape().str());
  return ops::resize_bilinear(x, x.size(2) * scale_, x.size(3) * scale_);
}

}  // namespace dl::nn
