// A gradient checker for libdl ops, in float64 on the CPU (after Caffe's GradientChecker).
//
// For a function f(inputs) -> Tensor of any shape, the checker forms the scalar
// L = sum(f(x) * R) with R a fixed random tensor (so every output element gets its own weight),
// back-propagates L for the analytic gradients, and compares them element by element with central
// differences (L(x + h e_i) - L(x - h e_i)) / 2h at a fixed step h.
//
// Note [gradcheck tolerance]: h = 1e-6 in double leaves a truncation error of O(h^2 f''') ~ 1e-12
// and a rounding error of O(eps |L| / h) ~ 1e-10 |L|; an element passes when
// |analytic - numeric| <= 1e-6 + 1e-4 |numeric|. The step and the tolerance are fixed: never
// retried, never loosened per op. Ops with kinks (ReLU at 0, max pooling at ties) are checked on
// inputs that stay away from the kinks (away_from_zero, distinct in op_cases.h), not with looser bounds.
#pragma once
#include <dl/dl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

namespace dl::testing {

struct GradcheckOptions {
  double step = 1e-6;  // Note [gradcheck tolerance]
  double atol = 1e-6;
  double rtol = 1e-4;
  uint64_t seed = 1234;  // for the output weights R
  int max_reported = 8;  // mismatches listed in the failure message
};

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;

namespace detail {
// L = sum(y * r) accumulated in double, outside autograd.
inline double weighted_sum(const Tensor& y, const Tensor& r) {
  const double* py = y.data<double>();
  const double* pr = r.data<double>();
  double acc = 0;
  for (int64_t i = 0; i < y.numel(); ++i) acc += py[i] * pr[i];
  return acc;
}
}  // namespace detail

// Checks the gradients of f with respect to the inputs flagged in `wrt` (all when empty). Those inputs
// must be float64 CPU tensors (the others, labels say, anything); they are cloned, so the caller's tensors
// are left untouched.
// f is called many times (once per perturbed element and direction); it must be deterministic.
inline ::testing::AssertionResult gradcheck(const GradFn& f, const std::vector<Tensor>& inputs_in,
                                            std::vector<bool> wrt = {}, const GradcheckOptions& opt = {}) {
  if (wrt.empty()) wrt.assign(inputs_in.size(), true);
  if (wrt.size() != inputs_in.size()) return ::testing::AssertionFailure() << "wrt has the wrong length";
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < inputs_in.size(); ++i) {
    const Tensor& t = inputs_in[i];
    if (wrt[i] && (!t.defined() || t.dtype() != DType::kFloat64 || !t.device().is_cpu()))
      return ::testing::AssertionFailure() << "input " << i << " must be a defined float64 CPU tensor";
    Tensor c = t.clone();
    if (wrt[i]) c.set_requires_grad(true);
    inputs.push_back(c);
  }

  // Analytic: back-propagate L = sum(f(x) * R).
  Tensor y = f(inputs);
  if (y.dtype() != DType::kFloat64) return ::testing::AssertionFailure() << "f must return float64";
  Generator gen(opt.seed);
  const Tensor r = Tensor::randn(y.shape(), gen, DType::kFloat64);
  if (!y.requires_grad()) return ::testing::AssertionFailure() << "f's output records no graph";
  ops::sum(ops::mul(y, r)).backward();

  std::ostringstream report;
  report.precision(10);
  int64_t failures = 0, checked = 0;
  double worst = 0;
  autograd::NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!wrt[i]) continue;
    Tensor& x = inputs[i];
    const Tensor g = x.grad();
    if (g.defined() && g.shape() != x.shape())
      return ::testing::AssertionFailure()
             << "input " << i << ": gradient of shape " << g.shape().str() << ", expected " << x.shape().str();
    double* px = x.data<double>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      const double saved = px[j];
      px[j] = saved + opt.step;
      const double lp = detail::weighted_sum(f(inputs), r);
      px[j] = saved - opt.step;
      const double lm = detail::weighted_sum(f(inputs), r);
      px[j] = saved;
      const double numeric = (lp - lm) / (2 * opt.step);
      const double analytic = g.defined() ? g.data<double>()[j] : 0.0;  // no gradient reached: zero
      const double err = std::abs(analytic - numeric);
      const double bound = opt.atol + opt.rtol * std::abs(numeric);
      ++checked;
      worst = std::max(worst, err / bound);
      if (!(err <= bound)) {  // also catches NaN
        if (failures < opt.max_reported)
          report << "\n  input " << i << " " << x.shape().str() << " element " << j << ": analytic " << analytic
                 << ", numeric " << numeric << ", |diff| " << err << " > " << bound;
        ++failures;
      }
    }
  }
  if (failures > 0)
    return ::testing::AssertionFailure() << failures << " of " << checked << " gradient elements differ"
                                         << report.str();
  return ::testing::AssertionSuccess() << checked << " elements, worst error/bound " << worst;
}

}  // namespace dl::testing
