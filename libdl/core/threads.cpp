// The CPU thread setting shared by OpenMP regions and Eigen.
#include "dl/core/threads.h"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <atomic>

namespace dl {

namespace {
std::atomic<int> g_threads{0};  // 0: OpenMP's default
}

int num_threads() {
  const int n = g_threads.load();
  return n > 0 ? n : omp_get_max_threads();
}

void set_num_threads(int n) {
  g_threads = std::max(0, n);
  if (n > 0) omp_set_num_threads(n);
  Eigen::setNbThreads(num_threads());
}

}  // namespace dl
