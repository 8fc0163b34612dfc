// The standard layers. Each owns its parameters (registered with PyTorch's names: weight, bias,
// running_mean, running_var, num_batches_tracked is not kept) and calls the op of the same name.
// Each overrides clone_empty() (dl/nn/module.h), so that clone() copies any tree built from them.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dl/core/params.h"
#include "dl/core/rng.h"
#include "dl/core/shape.h"
#include "dl/nn/module.h"

namespace dl::nn {

enum class Init { kGlorotUniform, kHeNormal };

struct Conv2dOptions {
  int in_channels = 1, out_channels = 1;
  std::array<int, 2> kernel{3, 3};
  Conv2dParams params{};
  bool bias = true;
  Init init = Init::kGlorotUniform;
  DType dtype = DType::kFloat32;
  bool relu = false;  // max(0, conv(x) + bias) as one op (ops::conv2d_relu)
};

// N x C_in x H x W -> N x C_out x Ho x Wo.
class Conv2d : public Layer {
 public:
  explicit Conv2d(const Conv2dOptions& o, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override;
  Tensor weight, bias;  // C_out x C_in/groups x R x S; C_out (undefined without bias)
  // The layer computes max(0, conv(x) + bias) as one op (ops::conv2d_relu): set by Conv2dOptions::relu, or
  // by nn::fold_batch_norm when the batch norm it folds in had a fused ReLU.
  bool fused_relu = false;
  const Conv2dOptions& options() const { return o_; }
  // Gives a layer built without bias a zero one, registered as "bias" (nn::fold_batch_norm); returns it.
  Tensor& ensure_bias();

 protected:
  void copy_settings_to(Module& copy) const override;

 private:
  Conv2dOptions o_;
};

// N x C x H x W -> same; batch statistics in train(), running statistics in eval().
class BatchNorm2d : public Layer {
 public:
  explicit BatchNorm2d(int channels, double momentum = 0.1, double eps = 1e-5, DType dtype = DType::kFloat32);
  Tensor forward(const Tensor& x) override;
  // max(0, forward(x)) as one op (Note [batch norm + ReLU] in ops/batch_norm.cpp); hooked and checked as
  // operator() is (the hooks see the output after the ReLU).
  Tensor forward_relu(const Tensor& x);
  std::shared_ptr<Module> clone_empty() const override;

  Tensor weight, bias, running_mean, running_var;  // all C
  // Training statistics over every process of a data-parallel run (Note [synchronised batch norm] in
  // dl/ops/batch_norm.h); null: this process's batch alone. Set on a whole model by set_batch_norm_sync.
  std::function<void(Tensor&)> sync;
  // Folded into the convolution before it (nn::fold_batch_norm, dl/nn/fold.h): in eval() the layer passes
  // its input through (forward_relu applies the ReLU); training a folded layer is an error.
  bool folded = false;
  // Folded with its ReLU moved into the convolution (Conv2d::fused_relu): the layer passes its input through.
  bool relu_in_conv = false;
  double eps() const { return eps_; }

 protected:
  Tensor batch_norm_relu(const Tensor& x);             // forward_relu's body
  void copy_settings_to(Module& copy) const override;  // sync, folded, relu_in_conv
  // A new B with this layer's configuration: clone_empty.
  template <class B>
  std::shared_ptr<Module> clone_as() const {
    return std::make_shared<B>(static_cast<int>(weight.size(0)), momentum_, eps_, weight.dtype());
  }

 private:
  double momentum_, eps_;
};

// Sets `sync` on every BatchNorm2d of `model` (null turns the synchronisation off); returns how many.
int set_batch_norm_sync(Module& model, const std::function<void(Tensor&)>& sync);

// BatchNorm2d followed by ReLU, fused, as one layer of a Sequential (the same parameters and buffers).
class BatchNormReLU2d : public BatchNorm2d {
 public:
  using BatchNorm2d::BatchNorm2d;
  Tensor forward(const Tensor& x) override { return batch_norm_relu(x); }
  std::shared_ptr<Module> clone_empty() const override { return clone_as<BatchNormReLU2d>(); }
};

// Activations (dl/ops/activation.h): any shape, nothing learned.
class ReLU : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<ReLU>(); }
};
class Sigmoid : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<Sigmoid>(); }
};
class Tanh : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<Tanh>(); }
};
class GELU : public Layer {  // the erf form, as PyTorch's default
 public:
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<GELU>(); }
};
class SiLU : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<SiLU>(); }
};
class LeakyReLU : public Layer {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope_(negative_slope) {}
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<LeakyReLU>(negative_slope_); }

 private:
  double negative_slope_;
};
class ELU : public Layer {
 public:
  explicit ELU(double alpha = 1.0) : alpha_(alpha) {}
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<ELU>(alpha_); }

 private:
  double alpha_;
};

class MaxPool2d : public Layer {
 public:
  explicit MaxPool2d(const Pool2dParams& p = {}) : p_(p) {}
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<MaxPool2d>(p_); }
  const Pool2dParams& params() const { return p_; }

 private:
  Pool2dParams p_;
};

class AvgPool2d : public Layer {
 public:
  explicit AvgPool2d(const Pool2dParams& p = {}) : p_(p) {}
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<AvgPool2d>(p_); }
  const Pool2dParams& params() const { return p_; }

 private:
  Pool2dParams p_;
};

// N x C x H x W -> N x C x 1 x 1.
class GlobalAvgPool2d : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<GlobalAvgPool2d>(); }
};

// N x ... -> N x (product of the rest).
class Flatten : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<Flatten>(); }
};

// N x IN -> N x OUT.
class Linear : public Layer {
 public:
  Linear(int in_features, int out_features, bool bias = true, Init init = Init::kGlorotUniform,
         Generator& gen = default_generator(), DType dtype = DType::kFloat32);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override;
  Tensor weight, bias;  // OUT x IN; OUT
};

// x itself: a placeholder where an architecture has an optional layer.
class Identity : public Layer {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<Identity>(); }
};

// ops::dropout (dl/ops/dropout.h) in train(), the identity in eval(); each forward draws its mask from
// `gen`, which must outlive the layer (reseed it to reproduce a run).
class Dropout : public Layer {
 public:
  explicit Dropout(double p = 0.5, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  // The copy draws its masks from the same generator.
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<Dropout>(p_, *gen_); }

 private:
  double p_;
  Generator* gen_;
};

// ops::layer_norm over the trailing dimensions `normalized_shape` (weight ones and bias zeros of that
// shape when affine).
class LayerNorm : public Layer {
 public:
  explicit LayerNorm(const Shape& normalized_shape, double eps = 1e-5, bool affine = true,
                     DType dtype = DType::kFloat32);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override;
  Tensor weight, bias;

 private:
  Shape normalized_shape_;
  int dims_;
  double eps_;
};

// ops::group_norm: N x C x ... with C divisible by groups (weight ones and bias zeros of C when affine).
class GroupNorm : public Layer {
 public:
  GroupNorm(int groups, int channels, double eps = 1e-5, bool affine = true, DType dtype = DType::kFloat32);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override;
  Tensor weight, bias;

 private:
  int groups_, channels_;
  double eps_;
};

struct ConvTranspose2dOptions {
  int in_channels = 1, out_channels = 1;
  std::array<int, 2> kernel{2, 2};
  Conv2dParams params{};  // stride, padding, dilation, groups as PyTorch's ConvTranspose2d
  std::array<int, 2> output_padding{0, 0};
  bool bias = true;
  Init init = Init::kGlorotUniform;
  DType dtype = DType::kFloat32;
};

// N x C_in x H x W -> N x C_out x Ho x Wo (ops::conv_transpose2d: Ho = (H - 1) stride - 2 padding +
// dilation (R - 1) + output_padding + 1); a stride-2, kernel-2 layer doubles H and W.
class ConvTranspose2d : public Layer {
 public:
  explicit ConvTranspose2d(const ConvTranspose2dOptions& o, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override;
  const ConvTranspose2dOptions& options() const { return o_; }
  Tensor weight, bias;  // C_in x C_out/groups x R x S; C_out (undefined without bias)

 private:
  ConvTranspose2dOptions o_;
};

// N x C x H x W -> N x C x (H scale) x (W scale): nearest (each pixel repeated) or bilinear
// (align_corners = false, PyTorch's default), by an integer factor.
class Upsample : public Layer {
 public:
  enum class Mode { kNearest, kBilinear };
  explicit Upsample(int scale = 2, Mode mode = Mode::kNearest);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Module> clone_empty() const override { return std::make_shared<Upsample>(scale_, mode_); }

 private:
  int scale_;
  Mode mode_;
};

// Layers applied in order; each child is named by the caller ("conv1") for the state file.
class Sequential : public Layer {
 public:
  template <typename L>
  std::shared_ptr<L> add(const std::string& name, std::shared_ptr<L> layer) {
    register_module(name, layer);
    layers_.emplace_back(name, layer);
    return layer;
  }
  Tensor forward(const Tensor& x) override;
  // A Sequential of the children's clone_empty(), under the same names (a layer added twice, once).
  std::shared_ptr<Module> clone_empty() const override;
  size_t size() const { return layers_.size(); }
  Layer& operator[](size_t i) { return *layers_[i].second; }

 private:
  std::vector<std::pair<std::string, std::shared_ptr<Layer>>> layers_;
};

}  // namespace dl::nn
