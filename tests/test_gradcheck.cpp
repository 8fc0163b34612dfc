// Finite-difference gradient checks in float64 (tests/gradcheck.h; Note [gradcheck tolerance] there): the
// checker itself, then every row of the op table (tests/op_cases.h) that has kGrad.
#include <dl/dl.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gradcheck.h"
#include "op_cases.h"

namespace {

using dl::DType;
using dl::Generator;
using dl::Shape;
using dl::Tensor;
using dl::testing::gradcheck;
namespace ops = dl::ops;
using Inputs = std::vector<Tensor>;

Tensor randn64(const Shape& s, Generator& gen) { return Tensor::randn(s, gen, DType::kFloat64); }

// ---- the checker itself ----

// y = 2 x with a backward that is wrong by 0.1 %: the checker must notice.
Tensor wrong_double(const Tensor& x) {
  Tensor y;
  {
    dl::autograd::NoGradGuard no_grad;
    y = ops::scale(x, 2.0);
  }
  return dl::autograd::record("wrong_double", y, {x}, [](const Tensor& gy, const std::vector<bool>&) {
    return std::vector<Tensor>{ops::scale(gy, 2.002)};
  });
}

TEST(Gradcheck, DetectsAWrongBackward) {
  Generator gen(1);
  const Tensor x = randn64({3, 4}, gen);
  EXPECT_FALSE(gradcheck([](const Inputs& in) { return wrong_double(in[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::scale(in[0], 2.0); }, {x}));
}

TEST(Gradcheck, DetectsAMissingGradient) {
  Generator gen(2);
  const Tensor x = randn64({5}, gen), z = randn64({5}, gen);
  // The detached path carries no gradient back to x: the numeric gradient is not zero.
  EXPECT_FALSE(gradcheck([](const Inputs& in) { return ops::mul(in[0].detach(), in[1]); }, {x, z}));
}

TEST(Gradcheck, LeavesTheCallersInputsUntouched) {
  Generator gen(3);
  const Tensor x = randn64({4}, gen);
  const Tensor before = x.clone();
  EXPECT_TRUE(gradcheck([](const Inputs& in) { return ops::mul(in[0], in[0]); }, {x}));
  EXPECT_FALSE(x.requires_grad());
  EXPECT_FALSE(x.grad().defined());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(x.data<double>()[i], before.data<double>()[i]);
}

// ---- every row of the op table (tests/op_cases.h) with kGrad, in float64 ----

class OpGrad : public ::testing::TestWithParam<dl::testing::OpCase> {};

TEST_P(OpGrad, EachInputSubset) {
  const dl::testing::OpCase& c = GetParam();
  const Inputs inputs = dl::testing::make_inputs(c, DType::kFloat64);
  const dl::testing::DlFn f = c.dl;
  auto first = [f](const Inputs& in) { return f(in).v.at(0); };
  for (const std::vector<bool>& subset : c.wrt) {
    std::vector<bool> wrt(c.inputs.size());  // {} : every input that takes a gradient
    for (size_t i = 0; i < wrt.size(); ++i) wrt[i] = c.inputs[i].grad && (subset.empty() || subset.at(i));
    EXPECT_TRUE(gradcheck(first, inputs, wrt)) << ::testing::PrintToString(wrt);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, OpGrad, ::testing::ValuesIn(dl::testing::op_cases_for(dl::testing::kGrad)),
                         dl::testing::OpCaseId());

}  // namespace
