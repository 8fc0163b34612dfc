// OpenMP helpers of the CPU backend: a parallel loop with a static schedule, so that a fixed
// thread count always splits work the same way (bit-for-bit reproducible reductions).
#pragma once
#include <omp.h>

#include <cstdint>

#include "backend/cpu/cpu_ops.h"

namespace dl::cpu {

// Runs f(i) for i in [0, n); in parallel when the work (n * cost_per_item) is worth it.
template <typename F>
void parallel_for(int64_t n, int64_t cost_per_item, F&& f) {
  const bool parallel = n > 1 && n * cost_per_item > 32768 && num_threads() > 1 && !omp_in_parallel();
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (parallel)
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace dl::cpu
