// The number of CPU threads the library's kernels use (OpenMP and Eigen). Same seed and the same
// thread count give the same results bit for bit.
#pragma once

namespace dl {

int num_threads();
// n > 0 fixes the count; 0 restores OpenMP's default.
void set_num_threads(int n);

}  // namespace dl
