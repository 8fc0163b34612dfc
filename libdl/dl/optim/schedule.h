// Learning-rate schedules: a factor of the optimiser's base learning rate at each point of training.
//
//   auto s = Schedule::cosine().with_warmup(500);           // linear warm-up over 500 steps, then cosine
//   opt.set_learning_rate(base * s.factor({.iteration = it, .iterations_per_epoch = n, .total_iterations = T}));
//
// A schedule is a pure function of where training is (Progress): resuming from a checkpoint at the same
// iteration gives the same rate, with no state to save. Schedules compose: `a * b` multiplies factors,
// `a.with_warmup(k)` ramps linearly for k iterations and then runs `a` from its own start.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace dl::optim {

// Where training is. iteration counts the steps already taken (0 at the first step); epochs start at 1
// (MATLAB's convention); total_iterations is what the decaying schedules (polynomial, cosine, one-cycle)
// run towards, 0 when unknown (they then refuse to run).
struct Progress {
  int64_t iteration = 0;
  int64_t iterations_per_epoch = 1;
  int64_t total_iterations = 0;
  int epoch() const { return static_cast<int>(iteration / iterations_per_epoch) + 1; }
};

class Schedule {
 public:
  // The factor at `p` (finite and >= 0). Throws dl::Error when p is not a point the schedule can use.
  double factor(const Progress& p) const;
  const std::string& name() const { return name_; }

  // 1 throughout.
  static Schedule constant();
  // MATLAB's piecewise: times drop_factor every drop_period epochs (epoch 1..period: 1).
  static Schedule piecewise(double drop_factor, int drop_period);
  // Times gamma per epoch: gamma^(epoch - 1).
  static Schedule exponential(double gamma);
  // Polynomial decay to end_factor over the total iterations: end + (1 - end) (1 - t/T)^power
  // (DeepLab's "poly" with power 0.9).
  static Schedule polynomial(double power = 0.9, double end_factor = 0.0);
  // Half a cosine from 1 to end_factor over the total iterations.
  static Schedule cosine(double end_factor = 0.0);
  // The one-cycle policy (Smith; PyTorch's OneCycleLR with cosine annealing), as a factor of the maximum
  // rate: from 1/div_factor up to 1 over the first pct_start of the iterations, then down to
  // 1/(div_factor * final_div_factor).
  static Schedule one_cycle(double pct_start = 0.3, double div_factor = 25.0, double final_div_factor = 1e4);
  // Any function of Progress (its results are checked to be finite and >= 0).
  static Schedule custom(std::string name, std::function<double(const Progress&)> fn);

  // Linear warm-up from start_factor to this schedule's first factor over `iterations` steps; after that
  // this schedule runs as if training had started there (its total shortened by the warm-up).
  Schedule with_warmup(int64_t iterations, double start_factor = 0.0) const;
  // The product of the two factors at each point.
  Schedule operator*(const Schedule& other) const;

 private:
  Schedule(std::string name, std::function<double(const Progress&)> fn);
  std::string name_;
  std::function<double(const Progress&)> fn_;
};

}  // namespace dl::optim
