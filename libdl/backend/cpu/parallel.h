// OpenMP helpers of the CPU backend: a parallel loop with a static schedule, so that a fixed
// thread count always splits work the same way (bit-for-bit reproducible reductions).
#pragma once
#include <omp.h>

#include <cstdint>
#include <exception>
#include <mutex>

#include "backend/cpu/cpu_ops.h"

namespace dl::cpu {

// Collects the first exception thrown inside an OpenMP region (an exception may not cross the
// region's boundary: the runtime would terminate) and rethrows it once the region has ended.
class ParallelErrors {
 public:
  template <typename F>
  void run(F&& f) noexcept {
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!first_) first_ = std::current_exception();
    }
  }
  void rethrow() {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::mutex mu_;
  std::exception_ptr first_;
};

// Runs f(i) for i in [0, n); in parallel when the work (n * cost_per_item) is worth it.
template <typename F>
void parallel_for(int64_t n, int64_t cost_per_item, F&& f) {
  const bool parallel = n > 1 && n * cost_per_item > 32768 && num_threads() > 1 && !omp_in_parallel();
  ParallelErrors errors;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (parallel)
  for (int64_t i = 0; i < n; ++i) errors.run([&] { f(i); });
  errors.rethrow();
}

}  // namespace dl::cpu
