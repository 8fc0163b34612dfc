// Weight initialisers.
#include "dl/nn/init.h"

#include <cmath>

namespace dl::nn::init {

namespace {
int64_t receptive(const Tensor& w) {
  DL_CHECK(w.dim() >= 2, "init: expected a weight with at least 2 dimensions, got ", w.shape().str());
  return w.numel() / (w.size(0) * w.size(1));
}
}  // namespace

int64_t fan_in(const Tensor& w) { return w.size(1) * receptive(w); }
int64_t fan_out(const Tensor& w) { return w.size(0) * receptive(w); }

void he_normal_(Tensor& w, Generator& gen) {
  const double sd = std::sqrt(2.0 / static_cast<double>(fan_in(w)));
  Tensor r = Tensor::randn(w.shape(), gen, DType::kFloat64);
  const double* src = r.data<double>();
  if (w.dtype() == DType::kFloat32) {
    float* p = w.data<float>();
    for (int64_t i = 0; i < w.numel(); ++i) p[i] = static_cast<float>(src[i] * sd);
  } else {
    double* p = w.data<double>();
    for (int64_t i = 0; i < w.numel(); ++i) p[i] = src[i] * sd;
  }
}

void glorot_uniform_(Tensor& w, Generator& gen) {
  const double a = std::sqrt(6.0 / static_cast<double>(fan_in(w) + fan_out(w)));
  w.copy_(Tensor::uniform(w.shape(), -a, a, gen, w.dtype()));
}

}  // namespace dl::nn::init
