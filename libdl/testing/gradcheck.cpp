// dl::testing::gradcheck (dl/testing/gradcheck.h): central differences against backward(), in float64.
#include "dl/testing/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "dl/autograd/engine.h"
#include "dl/core/error.h"
#include "dl/core/rng.h"
#include "dl/ops/elementwise.h"

namespace dl::testing {
namespace {

// L = sum(y * r) accumulated in double, outside autograd.
double weighted_sum(const Tensor& y, const Tensor& r) {
  DL_CHECK(y.dtype() == DType::kFloat64 && y.device().is_cpu() && y.shape() == r.shape(),
           "gradcheck: f must return the same float64 CPU shape every call: got ", dtype_name(y.dtype()), " ",
           y.shape().str(), " on ", y.device().str(), ", first ", r.shape().str());
  const double* py = y.data<double>();
  const double* pr = r.data<double>();
  double acc = 0;
  for (int64_t i = 0; i < y.numel(); ++i) acc += py[i] * pr[i];
  return acc;
}

std::vector<Tensor> prepare_inputs(const std::vector<Tensor>& given, const std::vector<bool>& wrt) {
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < given.size(); ++i) {
    const Tensor& t = given[i];
    if (wrt[i]) {
      DL_CHECK(t.defined(), "gradcheck: input ", i, " is undefined");
      DL_CHECK(t.dtype() == DType::kFloat64 && t.device().is_cpu(), "gradcheck: input ", i,
               " must be a float64 CPU tensor (Note [gradcheck tolerance]), got ", dtype_name(t.dtype()), " on ",
               t.device().str());
    }
    Tensor c = t.defined() ? t.clone() : t;
    if (wrt[i]) c.set_requires_grad(true);
    inputs.push_back(c);
  }
  return inputs;
}

}  // namespace

void GradcheckResult::throw_if_failed() const {
  if (!ok) DL_THROW("gradcheck: ", message);
}

GradcheckResult gradcheck(const GradFn& f, const std::vector<Tensor>& inputs_in, std::vector<bool> wrt,
                          const GradcheckOptions& options) {
  if (wrt.empty()) wrt.assign(inputs_in.size(), true);
  DL_CHECK(wrt.size() == inputs_in.size(), "gradcheck: wrt has ", wrt.size(), " flags for ", inputs_in.size(),
           " inputs");
  std::vector<Tensor> inputs = prepare_inputs(inputs_in, wrt);

  // Analytic: back-propagate L = sum(f(x) * R).
  const Tensor y = f(inputs);
  DL_CHECK(y.defined() && y.dtype() == DType::kFloat64 && y.device().is_cpu(),
           "gradcheck: f must return a float64 CPU tensor, got ",
           y.defined() ? dtype_name(y.dtype()) + std::string(" on ") + y.device().str() : std::string("none"));
  DL_CHECK(y.requires_grad(), "gradcheck: f's output records no graph (no input it used requires grad)");
  Generator gen(options.seed);
  const Tensor r = Tensor::randn(y.shape(), gen, DType::kFloat64);
  ops::sum(ops::mul(y, r)).backward();

  GradcheckResult result;
  std::ostringstream report;
  report.precision(10);
  autograd::NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!wrt[i]) continue;
    Tensor& x = inputs[i];
    const Tensor g = x.grad();
    DL_CHECK(!g.defined() || g.shape() == x.shape(), "gradcheck: input ", i, ": gradient of shape ", g.shape().str(),
             ", expected ", x.shape().str());
    double* px = x.data<double>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      const double saved = px[j];
      px[j] = saved + kGradcheckStep;
      const double lp = weighted_sum(f(inputs), r);
      px[j] = saved - kGradcheckStep;
      const double lm = weighted_sum(f(inputs), r);
      px[j] = saved;
      const double numeric = (lp - lm) / (2 * kGradcheckStep);
      const double analytic = g.defined() ? g.data<double>()[j] : 0.0;  // no gradient reached: zero
      const double err = std::abs(analytic - numeric);
      const double bound = kGradcheckAtol + kGradcheckRtol * std::abs(numeric);
      ++result.checked;
      result.worst = std::max(result.worst, err / bound);
      if (!(err <= bound)) {  // also catches NaN
        if (result.failures < options.max_reported) {
          result.mismatches.push_back({i, j, analytic, numeric});
          report << "\n  input " << i << " " << x.shape().str() << " element " << j << ": analytic " << analytic
                 << ", numeric " << numeric << ", |diff| " << err << " > " << bound;
        }
        ++result.failures;
      }
    }
  }
  result.ok = result.failures == 0;
  if (result.ok)
    result.message = std::to_string(result.checked) + " elements, worst error/bound " + std::to_string(result.worst);
  else
    result.message = std::to_string(result.failures) + " of " + std::to_string(result.checked) +
                     " gradient elements differ" + report.str();
  return result;
}

}  // namespace dl::testing
