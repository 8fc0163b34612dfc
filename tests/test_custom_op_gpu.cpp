// The CUDA body of the custom-op example (examples/custom_op) on a GPU, against its CPU body: forward and
// backward through dl::ops::CustomOp, kernels queued on libdl's stream, and the dispatch errors that only a
// CUDA tensor can reach (an op without a CUDA body, inputs on two devices). Skips, saying why, without a
// usable CUDA device (label gpu).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "dl/dl.h"
#include "require_gpu.h"
#include "softplus_beta.h"

namespace {

using dl::Device;
using dl::Tensor;

void expect_close(const Tensor& cuda, const Tensor& cpu, const char* what) {
  const std::vector<float> a = cuda.to(Device::cpu()).to_vector_f32(), b = cpu.to_vector_f32();
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5 * (1 + std::abs(b[i]))) << what << "[" << i << "]";
}

TEST(CustomOpGpu, SoftplusBetaMatchesCpu) {
  DL_REQUIRE_GPU();
  EXPECT_NE(dl::cuda::current_stream(0), nullptr);
  dl::Generator gen(9);
  const Tensor x_cpu = dl::ops::mul(Tensor::randn({37, 129}, gen), 8.0).detach().set_requires_grad(true);
  const Tensor x_cuda = x_cpu.detach().to(Device::cuda(0)).set_requires_grad(true);
  const Tensor r = Tensor::randn({37, 129}, gen);
  const example::SoftplusBetaParams p{2.5f, 20.f};
  const Tensor y_cpu = example::softplus_beta(x_cpu, p), y_cuda = example::softplus_beta(x_cuda, p);
  expect_close(y_cuda, y_cpu, "y");
  dl::ops::sum(dl::ops::mul(y_cpu, r)).backward();
  dl::ops::sum(dl::ops::mul(y_cuda, r.to(Device::cuda(0)))).backward();
  expect_close(x_cuda.grad(), x_cpu.grad(), "dx");
}

TEST(CustomOpGpu, DispatchNeverFallsBack) {
  DL_REQUIRE_GPU();
  dl::ops::CustomOp cpu_only("cpu_only");
  cpu_only.cpu([](const std::vector<Tensor>& in) { return in[0].clone(); });
  const Tensor on_gpu = Tensor::ones({4}, dl::DType::kFloat32, Device::cuda(0));
  try {
    cpu_only({on_gpu});
    ADD_FAILURE() << "expected dl::Error";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'cpu_only' has no CUDA body, and its inputs are on cuda:0"),
              std::string::npos)
        << e.what();
  }
  try {
    cpu_only({Tensor::ones({4}), on_gpu});
    ADD_FAILURE() << "expected dl::Error";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("input 1 is on cuda:0 but input 0 is on cpu"), std::string::npos) << e.what();
  }
}

}  // namespace
