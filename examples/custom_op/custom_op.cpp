// custom_op: a worked example of a user's own op on both devices (README "Your own op on both devices").
// softplus_beta (softplus_beta.h) is defined with a CPU body and a CUDA body; this program
//   1. checks its backward against finite differences with dl::testing::gradcheck (float64, CPU), and
//   2. fits y = sin(x) on [-3, 3] with a 1-32-1 network whose hidden activation is softplus_beta, by
//      full-batch gradient descent, on the CPU and, when libdl has CUDA and a device answers, on CUDA,
//      from the same initial weights (the CUDA run's linear layers use TF32 by default: dl/core/cuda.h).
//   custom_op [--steps N] [--beta B]
#include <dl/dl.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "softplus_beta.h"

namespace {

// Plain gradient descent: below 2 / (the largest curvature of the loss), about 0.008 at this init.
constexpr double kLearningRate = 0.005;

struct Mlp {
  dl::Tensor w1, b1, w2, b2;  // (32, 1) (32) (1, 32) (1)

  std::vector<dl::Tensor*> params() { return {&w1, &b1, &w2, &b2}; }
  dl::Tensor forward(const dl::Tensor& x, const example::SoftplusBetaParams& p) const {
    const dl::Tensor h = example::softplus_beta(dl::ops::linear(x, w1, b1), p);  // (N, 32)
    return dl::ops::linear(h, w2, b2);                                           // (N, 1)
  }
};

Mlp initial_mlp() {
  dl::Generator gen(7);
  const auto init = [&gen](dl::Shape shape, double scale) {
    return dl::ops::mul(dl::Tensor::randn(shape, gen), scale).detach().set_requires_grad(true);
  };
  return {init({32, 1}, 1.0), init({32}, 1.0), init({1, 32}, 0.2), init({1}, 0.0)};
}

// Full-batch gradient descent on the mean squared error; returns the final loss.
float fit_sine(dl::Device device, int steps, const example::SoftplusBetaParams& p) {
  const int64_t n = 256;
  std::vector<float> xs(n), ys(n);
  for (int64_t i = 0; i < n; ++i) {
    xs[i] = -3.f + 6.f * static_cast<float>(i) / static_cast<float>(n - 1);
    ys[i] = std::sin(xs[i]);
  }
  const dl::Tensor x = dl::Tensor::from_vector<float>({n, 1}, xs).to(device);
  const dl::Tensor y = dl::Tensor::from_vector<float>({n, 1}, ys).to(device);
  Mlp mlp = initial_mlp();
  for (dl::Tensor* t : mlp.params()) t->move_to_(device);

  float loss_value = 0;
  for (int step = 0; step <= steps; ++step) {
    const dl::Tensor diff = dl::ops::sub(mlp.forward(x, p), y);
    const dl::Tensor loss = dl::ops::mean(dl::ops::mul(diff, diff));
    loss.backward();
    dl::autograd::NoGradGuard no_grad;
    for (dl::Tensor* t : mlp.params()) {
      t->copy_(dl::ops::sub(*t, dl::ops::mul(t->grad(), kLearningRate)));
      t->set_grad(dl::Tensor());
    }
    if (step % 200 == 0 || step == steps) {
      loss_value = loss.to(dl::Device::cpu()).item<float>();  // a read that waits: every 200 steps only
      std::printf("  %-7s step %4d  loss %.6f\n", device.str().c_str(), step, loss_value);
    }
  }
  return loss_value;
}

}  // namespace

int main(int argc, char** argv) try {
  int steps = 1000;
  example::SoftplusBetaParams p;
  p.beta = 2.f;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--steps") == 0)
      steps = static_cast<int>(dl::parse_int(argv[i + 1], 1, 1000000, "--steps"));
    else if (std::strcmp(argv[i], "--beta") == 0)
      p.beta = static_cast<float>(dl::parse_double(argv[i + 1], 1e-3, 1e3, "--beta"));
    else
      DL_THROW("custom_op: unknown option ", argv[i], " (expected --steps N or --beta B)");
  }

  // 1. The backward against central differences, in float64 on the CPU (Note [gradcheck tolerance]).
  dl::Generator gen(1);
  const dl::Tensor x = dl::ops::mul(dl::Tensor::randn({4, 5}, gen, dl::DType::kFloat64), 3.0).detach();
  const dl::testing::GradcheckResult check =
      dl::testing::gradcheck([&p](const std::vector<dl::Tensor>& in) { return example::softplus_beta(in[0], p); }, {x});
  std::printf("gradcheck softplus_beta (beta %g): %s\n", p.beta, check.message.c_str());
  check.throw_if_failed();

  // 2. The same fit on each device there is.
  std::printf("fit sin(x) with softplus_beta hidden units, %d steps\n", steps);
  const float cpu_loss = fit_sine(dl::Device::cpu(), steps, p);
  if (dl::cuda_available()) {
    const float cuda_loss = fit_sine(dl::Device::cuda(0), steps, p);
    std::printf("final loss: cpu %.6f, cuda %.6f\n", cpu_loss, cuda_loss);
  } else {
    std::printf("final loss: cpu %.6f (no CUDA run: %s)\n", cpu_loss,
                dl::cuda::kBuiltWithCuda ? "no usable CUDA device" : "libdl was built without CUDA");
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "custom_op: %s\n", e.what());
  return 1;
}
