// Learning-rate schedules against their closed forms (and PyTorch's one-cycle algorithm written out),
// parameter groups and per-parameter factors, AdamW and Nesterov momentum against PyTorch's documented
// update rules followed in double precision.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "dl/dl.h"

namespace {

using dl::optim::Progress;
using dl::optim::Schedule;

Progress at(int64_t iteration, int64_t per_epoch = 1, int64_t total = 0) {
  return {.iteration = iteration, .iterations_per_epoch = per_epoch, .total_iterations = total};
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const dl::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Schedule, PiecewiseCountsEpochsFromIterations) {
  const Schedule s = Schedule::piecewise(0.8, 10);
  const dl::optim::PiecewiseSchedule reference{1.0, 0.8, 10, true};
  for (int64_t it = 0; it < 5 * 60; ++it) {
    const Progress p = at(it, 5);
    EXPECT_DOUBLE_EQ(s.factor(p), reference.rate(p.epoch())) << "iteration " << it;
  }
  EXPECT_EQ(at(49, 5).epoch(), 10);
  EXPECT_DOUBLE_EQ(s.factor(at(49, 5)), 1.0);
  EXPECT_DOUBLE_EQ(s.factor(at(50, 5)), 0.8);
}

TEST(Schedule, ClosedForms) {
  EXPECT_DOUBLE_EQ(Schedule::constant().factor(at(123)), 1.0);
  EXPECT_NEAR(Schedule::exponential(0.9).factor(at(2)), 0.81, 1e-15);  // epoch 3
  const Schedule poly = Schedule::polynomial(0.9, 0.1);
  EXPECT_DOUBLE_EQ(poly.factor(at(0, 1, 100)), 1.0);
  EXPECT_NEAR(poly.factor(at(50, 1, 100)), 0.1 + 0.9 * std::pow(0.5, 0.9), 1e-15);
  EXPECT_NEAR(poly.factor(at(100, 1, 100)), 0.1, 1e-15);
  EXPECT_NEAR(poly.factor(at(150, 1, 100)), 0.1, 1e-15);  // past the end: stays at the end factor
  const Schedule cosine = Schedule::cosine();
  EXPECT_DOUBLE_EQ(cosine.factor(at(0, 1, 80)), 1.0);
  EXPECT_NEAR(cosine.factor(at(40, 1, 80)), 0.5, 1e-15);
  EXPECT_NEAR(cosine.factor(at(20, 1, 80)), 0.5 * (1 + std::cos(std::numbers::pi / 4)), 1e-15);
  EXPECT_NEAR(cosine.factor(at(80, 1, 80)), 0.0, 1e-15);
  EXPECT_NEAR(Schedule::cosine(0.2).factor(at(80, 1, 80)), 0.2, 1e-15);
}

// PyTorch's OneCycleLR (anneal_strategy "cos", three_phase false), written out as its source does it:
// two phases ending at steps pct_start * T - 1 and T - 1, each a cosine between its rates.
double one_cycle_reference(int64_t step, int64_t total, double max_lr, double pct, double div, double final_div) {
  const double initial = max_lr / div, min_lr = initial / final_div;
  struct Phase {
    double end_step, start_lr, end_lr;
  };
  const Phase phases[] = {{pct * total - 1, initial, max_lr}, {static_cast<double>(total) - 1, max_lr, min_lr}};
  double start_step = 0;
  for (size_t i = 0; i < 2; ++i) {
    const Phase& ph = phases[i];
    if (step <= ph.end_step || i == 1) {
      const double t = (step - start_step) / (ph.end_step - start_step);
      return ph.end_lr + (ph.start_lr - ph.end_lr) / 2.0 * (std::cos(std::numbers::pi * t) + 1);
    }
    start_step = ph.end_step;
  }
  return 0;
}

TEST(Schedule, OneCycleMatchesPyTorchsAlgorithm) {
  const int64_t total = 1000;
  const Schedule s = Schedule::one_cycle(0.3, 25.0, 1e4);
  for (int64_t step = 0; step < total; step += 7)
    EXPECT_NEAR(s.factor(at(step, 10, total)), one_cycle_reference(step, total, 1.0, 0.3, 25.0, 1e4), 1e-12)
        << "step " << step;
  EXPECT_NEAR(s.factor(at(0, 10, total)), 1.0 / 25, 1e-15);
  EXPECT_NEAR(s.factor(at(299, 10, total)), 1.0, 1e-15);
  EXPECT_NEAR(s.factor(at(total - 1, 10, total)), 1.0 / 25 / 1e4, 1e-15);
}

TEST(Schedule, WarmupThenTheScheduleFromItsStart) {
  const Schedule s = Schedule::cosine().with_warmup(10);
  EXPECT_DOUBLE_EQ(s.factor(at(0, 1, 110)), 0.0);
  EXPECT_DOUBLE_EQ(s.factor(at(5, 1, 110)), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(at(10, 1, 110)), 1.0);    // cosine's first step
  EXPECT_NEAR(s.factor(at(60, 1, 110)), 0.5, 1e-15);  // halfway through the 100 after the warm-up
  EXPECT_NEAR(s.factor(at(110, 1, 110)), 0.0, 1e-15);
  const Schedule from = Schedule::constant().with_warmup(4, 0.2);
  EXPECT_DOUBLE_EQ(from.factor(at(2)), 0.6);
  EXPECT_EQ(s.name(), "warmup+cosine");
}

TEST(Schedule, ProductOfFactors) {
  const Schedule s = Schedule::piecewise(0.5, 1) * Schedule::polynomial(1.0);
  EXPECT_NEAR(s.factor(at(2, 1, 4)), 0.25 * 0.5, 1e-15);
  EXPECT_EQ(s.name(), "piecewise*polynomial");
}

TEST(Schedule, ErrorsNameWhatWasExpected) {
  EXPECT_NE(error_of([] { Schedule::cosine().factor(at(3)); }).find("total number of iterations"), std::string::npos);
  EXPECT_NE(error_of([] { Schedule::piecewise(1.5, 10); }).find("drop factor in [0, 1], got 1.5"), std::string::npos);
  EXPECT_NE(error_of([] { Schedule::piecewise(0.5, 0); }).find("drop period > 0"), std::string::npos);
  EXPECT_NE(error_of([] { Schedule::one_cycle(1.2); }).find("pct_start in (0, 1)"), std::string::npos);
  EXPECT_NE(error_of([] { Schedule::constant().with_warmup(0); }).find("warm-up of > 0"), std::string::npos);
  EXPECT_NE(error_of([] { Schedule::constant().factor(at(-1)); }).find("iteration >= 0"), std::string::npos);
  const Schedule nan = Schedule::custom("mine", [](const Progress&) { return std::nan(""); });
  EXPECT_NE(error_of([&] { nan.factor(at(0)); }).find("schedule mine: expected a finite factor"), std::string::npos);
}

// ---- optimisers ----

dl::Tensor param(std::vector<double> v) {
  dl::Tensor t = dl::Tensor::from_vector<double>({static_cast<int64_t>(v.size())}, v);
  t.set_requires_grad(true);
  return t;
}
void set_grad(dl::Tensor& t, std::vector<double> g) {
  t.set_grad(dl::Tensor::from_vector<double>({static_cast<int64_t>(g.size())}, g));
}
double at(const dl::Tensor& t, int64_t i) { return t.data<double>()[i]; }

// The gradients of five steps, different each step.
double grad_at(int step, int i) { return std::sin(1.3 * step + 0.7 * i) + 0.2 * i; }

TEST(Optim, AdamWFollowsPyTorchsRule) {
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  dl::Tensor w = param({1.0, -2.0, 0.5});
  dl::optim::AdamW opt({{"w", w}}, {.learning_rate = lr, .weight_decay = wd});
  EXPECT_STREQ(opt.name(), "adamw");
  std::vector<double> ref = {1.0, -2.0, 0.5}, m(3, 0.0), v(3, 0.0);
  for (int step = 1; step <= 5; ++step) {
    std::vector<double> g(3);
    for (int i = 0; i < 3; ++i) g[i] = grad_at(step, i);
    set_grad(w, g);
    opt.step();
    for (int i = 0; i < 3; ++i) {  // torch.optim.AdamW: decay, moments, bias correction, update
      ref[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const double mhat = m[i] / (1 - std::pow(b1, step)), vhat = v[i] / (1 - std::pow(b2, step));
      ref[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(at(w, i), ref[i], 1e-12) << "step " << step << ", element " << i;
  }
}

class Nesterov : public testing::TestWithParam<double> {};

TEST_P(Nesterov, FollowsPyTorchsRule) {
  // torch.optim.SGD(momentum=m, nesterov=True, weight_decay=l2): g' = g + l2 w; buf = m buf + g';
  // w -= lr (g' + m buf). The same as MATLAB's velocity form at a constant learning rate. Without L2 and
  // with it: the update takes two paths.
  const double lr = 0.05, mom = 0.9, l2 = GetParam();
  dl::Tensor w = param({1.0, -2.0, 0.5});
  dl::optim::Sgdm opt({{"w", w}}, {.learning_rate = lr, .momentum = mom, .l2 = l2, .nesterov = true});
  std::vector<double> ref = {1.0, -2.0, 0.5}, buf(3, 0.0);
  for (int step = 1; step <= 5; ++step) {
    std::vector<double> g(3);
    for (int i = 0; i < 3; ++i) g[i] = grad_at(step, i);
    set_grad(w, g);
    opt.step();
    for (int i = 0; i < 3; ++i) {
      const double gp = g[i] + l2 * ref[i];
      buf[i] = mom * buf[i] + gp;
      ref[i] -= lr * (gp + mom * buf[i]);
    }
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(at(w, i), ref[i], 1e-12) << "step " << step << ", element " << i;
  }
}
INSTANTIATE_TEST_SUITE_P(Optim, Nesterov, testing::Values(0.0, 0.01));

TEST(Optim, GroupsAndParameterFactorsScaleTheRate) {
  dl::Tensor a = param({1.0}), b = param({1.0}), c = param({1.0});
  dl::nn::ParamRef half{"c", c};
  half.learn_rate_factor = 0.5;
  dl::optim::Sgdm opt(std::vector<dl::optim::ParamGroup>{{.params = {{"a", a}}},
                                                         {.params = {{"b", b}}, .learn_rate_factor = 0.0},
                                                         {.params = {half}, .learn_rate_factor = 2.0, .l2 = 1.0}},
                      {.learning_rate = 0.1, .momentum = 0.0});
  set_grad(a, {1.0});
  set_grad(b, {1.0});
  set_grad(c, {1.0});
  opt.step();
  EXPECT_NEAR(at(a, 0), 1.0 - 0.1, 1e-15);
  EXPECT_EQ(at(b, 0), 1.0);                               // frozen by its group
  EXPECT_NEAR(at(c, 0), 1.0 - 0.1 * (1.0 + 1.0), 1e-15);  // 0.5 * 2 = 1 times the rate; g' = g + 1.0 w
  EXPECT_DOUBLE_EQ(opt.effective_learning_rate(2), 0.1);
  opt.set_learning_rate(0.2);  // a schedule moves the base rate; the factors stay
  EXPECT_DOUBLE_EQ(opt.effective_learning_rate(0), 0.2);
  EXPECT_DOUBLE_EQ(opt.effective_learning_rate(1), 0.0);
}

TEST(Optim, GroupWeightDecayIsDecoupled) {
  dl::Tensor a = param({2.0}), b = param({2.0});
  dl::optim::AdamW opt(
      std::vector<dl::optim::ParamGroup>{{.params = {{"a", a}}}, {.params = {{"b", b}}, .weight_decay = 0.0}},
      {.learning_rate = 0.01, .weight_decay = 0.5});
  set_grad(a, {3.0});
  set_grad(b, {3.0});
  opt.step();  // Adam's first step moves by lr (up to epsilon) whatever the gradient's size; a also decays by lr * wd
  EXPECT_NEAR(at(a, 0), 2.0 * (1 - 0.01 * 0.5) - 0.01, 1e-9);
  EXPECT_NEAR(at(b, 0), 2.0 - 0.01, 1e-9);
}

TEST(Optim, ParameterInTwoGroupsIsRefused) {
  dl::Tensor a = param({1.0});
  const std::string e = error_of([&] {
    dl::optim::Adam(std::vector<dl::optim::ParamGroup>{{.params = {{"first", a}}}, {.params = {{"again", a}}}}, {});
  });
  EXPECT_NE(e.find("parameter 'again' is given twice"), std::string::npos) << e;
  EXPECT_NE(e.find("'first'"), std::string::npos) << e;
  EXPECT_NE(error_of([&] {
              dl::optim::Sgdm({{"a", a}}, {.learning_rate = 0.1, .weight_decay = -1});
            }).find("weight decay >= 0, got -1"),
            std::string::npos);
}

TEST(Optim, StepWithoutGradientsWarnsOnce) {
  dl::Tensor a = param({1.0});
  dl::optim::Adam opt({{"a", a}}, {});
  testing::internal::CaptureStderr();
  opt.step();
  opt.step();
  const std::string said = testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find("optimiser adam stepped with no gradient"), std::string::npos) << said;
  EXPECT_EQ(said.find("no gradient", said.find("no gradient") + 1), std::string::npos) << "warned twice: " << said;
  EXPECT_EQ(at(a, 0), 1.0);
}

}  // namespace
