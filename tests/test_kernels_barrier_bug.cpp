// A kernel with a deliberate barrier bug, checked against its reference the way tests/test_kernels.cpp
// checks every real kernel. This test MUST fail: ctest passes it only when GoogleTest reports this test
// FAILED (tests/CMakeLists.txt), i.e. while the emulation (shuffled fibers, poisoned shared memory)
// exposes the missing __syncthreads().
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "missing_barrier_kernel.cuh"

namespace {

TEST(KernelsBarrierBug, BlockSumMatchesReference) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(0.5f, 1.5f);
  std::vector<float> a(4096);
  double want = 0;
  for (float& x : a) want += (x = d(rng));
  dl::emu::Launcher l;
  double got = 0;
  l.launch(dl::test::sum_missing_barrier_kernel, dim3(1), dim3(256), a.data(), static_cast<int64_t>(a.size()), &got);
  EXPECT_NEAR(got, want, 1e-6 * want);
}

}  // namespace
