// Learning-rate schedules (dl/optim/schedule.h).
#include "dl/optim/schedule.h"

#include <cmath>
#include <numbers>

#include "dl/core/error.h"

namespace dl::optim {

namespace {

// t / T in [0, 1] for the schedules that decay over the whole run.
double fraction_done(const Progress& p, const char* who) {
  DL_CHECK(p.total_iterations > 0, who,
           ": expected the total number of iterations (Progress::total_iterations > 0), got ", p.total_iterations);
  return std::min(1.0, static_cast<double>(p.iteration) / static_cast<double>(p.total_iterations));
}

void check_positive(double v, const char* who, const char* what) {
  DL_CHECK(std::isfinite(v) && v > 0, who, ": expected ", what, " > 0, got ", v);
}

void check_unit(double v, const char* who, const char* what) {
  DL_CHECK(std::isfinite(v) && v >= 0 && v <= 1, who, ": expected ", what, " in [0, 1], got ", v);
}

}  // namespace

Schedule::Schedule(std::string name, std::function<double(const Progress&)> fn)
    : name_(std::move(name)), fn_(std::move(fn)) {}

double Schedule::factor(const Progress& p) const {
  DL_CHECK(p.iteration >= 0 && p.iterations_per_epoch > 0 && p.total_iterations >= 0, "schedule ", name_,
           ": expected iteration >= 0, iterations per epoch > 0 and total >= 0, got ", p.iteration, ", ",
           p.iterations_per_epoch, ", ", p.total_iterations);
  const double f = fn_(p);
  DL_CHECK(std::isfinite(f) && f >= 0, "schedule ", name_, ": expected a finite factor >= 0 at iteration ", p.iteration,
           ", got ", f);
  return f;
}

Schedule Schedule::constant() {
  return Schedule("constant", [](const Progress&) { return 1.0; });
}

Schedule Schedule::piecewise(double drop_factor, int drop_period) {
  check_unit(drop_factor, "piecewise schedule", "the drop factor");
  DL_CHECK(drop_period > 0, "piecewise schedule: expected a drop period > 0 epochs, got ", drop_period);
  return Schedule("piecewise", [=](const Progress& p) { return std::pow(drop_factor, (p.epoch() - 1) / drop_period); });
}

Schedule Schedule::exponential(double gamma) {
  check_positive(gamma, "exponential schedule", "gamma");
  return Schedule("exponential", [=](const Progress& p) { return std::pow(gamma, p.epoch() - 1); });
}

Schedule Schedule::polynomial(double power, double end_factor) {
  check_positive(power, "polynomial schedule", "the power");
  check_unit(end_factor, "polynomial schedule", "the end factor");
  return Schedule("polynomial", [=](const Progress& p) {
    return end_factor + (1 - end_factor) * std::pow(1 - fraction_done(p, "polynomial schedule"), power);
  });
}

Schedule Schedule::cosine(double end_factor) {
  check_unit(end_factor, "cosine schedule", "the end factor");
  return Schedule("cosine", [=](const Progress& p) {
    const double t = fraction_done(p, "cosine schedule");
    return end_factor + (1 - end_factor) * 0.5 * (1 + std::cos(std::numbers::pi * t));
  });
}

Schedule Schedule::one_cycle(double pct_start, double div_factor, double final_div_factor) {
  DL_CHECK(std::isfinite(pct_start) && pct_start > 0 && pct_start < 1,
           "one-cycle schedule: expected pct_start in (0, 1), got ", pct_start);
  check_positive(div_factor, "one-cycle schedule", "div_factor");
  check_positive(final_div_factor, "one-cycle schedule", "final_div_factor");
  const double start = 1 / div_factor, end = start / final_div_factor;
  return Schedule("one-cycle", [=](const Progress& p) {
    // PyTorch's phases end at step pct_start * T - 1 and T - 1: the last step reaches the end factor.
    fraction_done(p, "one-cycle schedule");
    const double up_end = pct_start * static_cast<double>(p.total_iterations) - 1;
    const double down_end = static_cast<double>(p.total_iterations) - 1;
    const double step = std::min(static_cast<double>(p.iteration), down_end);
    auto anneal = [](double from, double to, double t) {
      return to + (from - to) * 0.5 * (1 + std::cos(std::numbers::pi * t));
    };
    if (step <= up_end) return anneal(start, 1.0, up_end > 0 ? step / up_end : 1.0);
    return anneal(1.0, end, down_end > up_end ? (step - up_end) / (down_end - up_end) : 1.0);
  });
}

Schedule Schedule::custom(std::string name, std::function<double(const Progress&)> fn) {
  DL_CHECK(static_cast<bool>(fn), "custom schedule ", name, ": expected a function, got none");
  return Schedule(std::move(name), std::move(fn));
}

Schedule Schedule::with_warmup(int64_t iterations, double start_factor) const {
  DL_CHECK(iterations > 0, "schedule ", name_, ": expected a warm-up of > 0 iterations, got ", iterations);
  DL_CHECK(std::isfinite(start_factor) && start_factor >= 0, "schedule ", name_,
           ": expected a warm-up start factor >= 0, got ", start_factor);
  const Schedule after = *this;
  return Schedule("warmup+" + name_, [=](const Progress& p) {
    auto shifted = [&](int64_t it) {
      Progress q = p;
      q.iteration = it;
      q.total_iterations = p.total_iterations > 0 ? std::max<int64_t>(1, p.total_iterations - iterations) : 0;
      return q;
    };
    if (p.iteration >= iterations) return after.factor(shifted(p.iteration - iterations));
    const double first = after.factor(shifted(0));
    return start_factor + (first - start_factor) * static_cast<double>(p.iteration) / static_cast<double>(iterations);
  });
}

Schedule Schedule::operator*(const Schedule& other) const {
  const Schedule a = *this, b = other;
  return Schedule(name_ + "*" + other.name_, [=](const Progress& p) { return a.factor(p) * b.factor(p); });
}

}  // namespace dl::optim
