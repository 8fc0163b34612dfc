// Parity with libtorch, in float32 on the CPU: for every row of the op table (tests/op_cases.h) with a
// libtorch expression, the same random inputs go through libdl and through libtorch; forward outputs and
// the gradients of L = sum(y * R) (inputs and parameters) must agree to a relative tolerance of 1e-4 of
// the reference's largest magnitude. Extra outputs (batch norm's running statistics) are compared too.
//
// This is the only translation unit that includes libtorch (its headers compile slowly).
#include <dl/dl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#define DL_OP_CASES_WITH_TORCH 1

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "op_cases.h"

namespace {

using dl::DType;
using dl::Generator;
using dl::Shape;
using dl::Tensor;
namespace ops = dl::ops;

constexpr double kRtol = 1e-4;  // relative to the reference's max |value|

// ---- copies between the two libraries (raw memcpy of contiguous buffers) ----

torch::ScalarType torch_dtype(DType t) {
  switch (t) {
    case DType::kFloat32:
      return torch::kFloat32;
    case DType::kFloat64:
      return torch::kFloat64;
    case DType::kInt32:
      return torch::kInt32;
    case DType::kUInt8:
      return torch::kUInt8;
    case DType::kInt64:
      return torch::kInt64;
    case DType::kBool:
      return torch::kBool;
    case DType::kBFloat16:
      return torch::kBFloat16;
    case DType::kFloat16:
      return torch::kFloat16;
  }
  return torch::kFloat32;
}

torch::Tensor to_torch(const Tensor& t) {
  return torch::from_blob(t.raw_data(), t.shape().vec(), torch::TensorOptions().dtype(torch_dtype(t.dtype()))).clone();
}

// max |ours - ref| <= kRtol * max |ref|, same number of elements (a torch 0-dim scalar matches [1]).
::testing::AssertionResult close(const Tensor& ours, const torch::Tensor& ref_in, const char* what) {
  if (!ours.defined()) return ::testing::AssertionFailure() << what << ": libdl gave no tensor";
  if (!ref_in.defined()) return ::testing::AssertionFailure() << what << ": libtorch gave no tensor";
  const torch::Tensor ref = ref_in.detach().to(torch::kFloat64).contiguous();
  if (ref.dim() != 0 && Shape(ref.sizes().vec()) != ours.shape())
    return ::testing::AssertionFailure() << what << ": shape " << ours.shape().str() << ", libtorch "
                                         << Shape(ref.sizes().vec()).str();
  if (ref.numel() != ours.numel())
    return ::testing::AssertionFailure() << what << ": " << ours.numel() << " elements, libtorch " << ref.numel();
  const Tensor a = ours.to(DType::kFloat64);
  const double* pa = a.data<double>();
  const double* pr = ref.data_ptr<double>();
  double max_ref = 0, max_diff = 0;
  int64_t worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    max_ref = std::max(max_ref, std::abs(pr[i]));
    const double d = std::abs(pa[i] - pr[i]);
    if (!(d <= max_diff)) {  // NaN lands here and stays
      max_diff = d;
      worst = i;
    }
  }
  const double bound = kRtol * std::max(max_ref, 1e-30);
  if (!(max_diff <= bound))
    return ::testing::AssertionFailure() << what << ": max |diff| " << max_diff << " at element " << worst << " (libdl "
                                         << pa[worst] << ", libtorch " << pr[worst] << ") > " << bound << " = " << kRtol
                                         << " * max |ref| " << max_ref;
  return ::testing::AssertionSuccess();
}

// Runs both sides of a row on the same float32 inputs (those with grad differentiated), compares every
// output, back-propagates sum(y * R) from the first with the same random R in both, and compares the
// gradient of every differentiated input.
void expect_parity(const dl::testing::OpCase& c, uint64_t seed = 99) {
  const std::vector<Tensor> inputs = dl::testing::make_inputs(c, DType::kFloat32);
  std::vector<Tensor> xs;
  std::vector<torch::Tensor> ts;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor x = inputs[i].clone();
    torch::Tensor t = to_torch(inputs[i]);
    if (c.inputs[i].grad) x.set_requires_grad(true), t.set_requires_grad(true);
    xs.push_back(x);
    ts.push_back(t);
  }
  const std::vector<Tensor> ys = c.dl(xs).v;
  const std::vector<torch::Tensor> yts = c.torch(ts).v;
  ASSERT_EQ(ys.size(), yts.size()) << "outputs";
  ASSERT_TRUE(close(ys[0], yts[0], "forward"));
  for (size_t k = 1; k < ys.size(); ++k) {
    const std::string what = "output " + std::to_string(k);
    EXPECT_TRUE(close(ys[k], yts[k], what.c_str()));
  }

  Generator gen(seed);
  const Tensor r = Tensor::randn(ys[0].shape(), gen);
  ops::sum(ops::mul(ys[0], r)).backward();
  torch::Tensor rt = to_torch(r);
  if (yts[0].dim() == 0) rt = rt.reshape({});
  (yts[0] * rt).sum().backward();
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!c.inputs[i].grad) continue;
    const std::string what = "grad of input " + std::to_string(i) + " " + inputs[i].shape().str();
    EXPECT_TRUE(close(xs[i].grad(), ts[i].grad(), what.c_str()));
  }
}

// ---- every row of the op table (tests/op_cases.h) with a libtorch expression ----

class OpParity : public ::testing::TestWithParam<dl::testing::OpCase> {};

TEST_P(OpParity, ForwardBackward) { expect_parity(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Table, OpParity, ::testing::ValuesIn(dl::testing::op_cases_for(dl::testing::kTorch)),
                         dl::testing::OpCaseId());

}  // namespace
