// Every hand-written CUDA kernel of kernels/, its exact source compiled by the host compiler and run by
// the emulation (kernels/emu), against the CPU backend or a plain reference, at several launch shapes:
// block sizes that do and do not divide the data, grids smaller than the data (grid-stride loops), one
// block. Outputs start poisoned (NaN / 0xA5 bytes), so a kernel that skips an element fails. The
// emulation itself is tested too: barriers, shared-memory poisoning, and a reduction with a missing
// barrier that must give a wrong answer.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/optim_update.h"
#include "dl/metrics/segmentation.h"
#include "op_cases.h"
#include "ops/broadcast.h"
// The kernel sources (and, through compat.cuh, the emulation's CUDA vocabulary) come last.
#include "accuracy.cuh"
#include "batch_norm.cuh"
#include "bf_score.cuh"
#include "broadcast.cuh"
#include "cast.cuh"
#include "concat.cuh"
#include "confusion.cuh"
#include "cross_entropy.cuh"
#include "dropout.cuh"
#include "elementwise.cuh"
#include "index.cuh"
#include "missing_barrier_kernel.cuh"
#include "optim.cuh"
#include "resize.cuh"

namespace {

using dl::emu::Launcher;
constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();

struct LaunchShape {
  int block;
  int64_t max_grid;
};
std::string describe(const LaunchShape& s) {
  return "block " + std::to_string(s.block) + ", grid cap " + std::to_string(s.max_grid);
}
// Power-of-two blocks (block reductions need them), one block, grids far smaller than the data.
const std::vector<LaunchShape> kReductionShapes = {{32, 1}, {64, 3}, {128, 1 << 20}, {256, 5}, {512, 2}};
// Element-wise kernels also take blocks that are not powers of two.
const std::vector<LaunchShape> kAnyShapes = {{32, 1}, {96, 3}, {128, 1 << 20}, {200, 2}, {256, 1 << 20}};

std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void expect_near_all(const std::vector<float>& got, const std::vector<float>& want, double tol,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << what << ": element " << i << " was not written";
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::abs(want[i]))) << what << ": element " << i;
  }
}

// ---- the emulation itself ----

// Each thread writes its index to shared memory, the block waits, then each reads its neighbour's.
DL_GLOBAL void rotate_kernel(int* out) {
  DL_SHARED(int, slot, 1024);
  slot[threadIdx.x] = static_cast<int>(threadIdx.x);
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = slot[(threadIdx.x + 1) % blockDim.x];
}

TEST(Emulation, BarrierOrdersSharedMemoryAcrossFibers) {
  for (int block : {1, 7, 64, 256}) {
    std::vector<int> out(3 * block, -1);
    Launcher l;
    const uint64_t before = dl::emu::barrier_count();
    l.launch(rotate_kernel, dim3(3), dim3(block), out.data());
    EXPECT_EQ(dl::emu::barrier_count() - before, static_cast<uint64_t>(3 * block));
    for (int b = 0; b < 3; ++b)
      for (int t = 0; t < block; ++t)
        ASSERT_EQ(out[b * block + t], (t + 1) % block) << "block " << b << " thread " << t;
  }
}

// Reads shared memory that no thread of the block wrote.
DL_GLOBAL void read_unwritten_kernel(float* out) {
  DL_SHARED(float, slot, 64);
  out[threadIdx.x] = slot[threadIdx.x];
}

TEST(Emulation, SharedMemoryIsPoisonedPerBlock) {
  std::vector<float> out(64, 0.f);
  Launcher l;
  l.launch(read_unwritten_kernel, dim3(2), dim3(64), out.data());
  for (float v : out) EXPECT_TRUE(std::isnan(v));
}

DL_GLOBAL void throwing_kernel(int bad_block) {
  if (static_cast<int>(blockIdx.x) == bad_block && threadIdx.x == 3) throw std::runtime_error("kernel-side failure");
}

DL_GLOBAL void divergent_barrier_kernel(int* out) {
  if (threadIdx.x == 3) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

DL_GLOBAL void early_exit_barrier_kernel(int* out) {
  if (threadIdx.x % 2 == 1) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

TEST(Emulation, DivergentBarriersAreErrors) {
  std::vector<int> out(2 * 64, 0);
  Launcher l;
  for (auto* kernel : {divergent_barrier_kernel, early_exit_barrier_kernel}) {
    try {
      l.launch(kernel, dim3(2), dim3(64), out.data());
      ADD_FAILURE() << "a divergent __syncthreads() went unnoticed";
    } catch (const std::logic_error& e) {
      EXPECT_NE(std::string(e.what()).find("divergent __syncthreads()"), std::string::npos) << e.what();
    }
  }
  l.launch(rotate_kernel, dim3(2), dim3(64), out.data());  // the emulation still works afterwards
}

TEST(Emulation, ErrorsAndBadLaunchesAreReported) {
  Launcher l;
  EXPECT_THROW(l.launch(throwing_kernel, dim3(8), dim3(32), 5), std::runtime_error);
  EXPECT_THROW(l.launch(throwing_kernel, dim3(1), dim3(2048), 0), std::invalid_argument);
  EXPECT_THROW(dl::kern::check_reduction_block(96, "sum"), std::invalid_argument);
}

double buggy_sum(const std::vector<float>& a, int block) {
  double out = std::numeric_limits<double>::quiet_NaN();
  Launcher l;
  l.launch(dl::test::sum_missing_barrier_kernel, dim3(1), dim3(block), a.data(), static_cast<int64_t>(a.size()), &out);
  return out;
}

// The check that tests/test_kernels_barrier_bug.cpp makes and that must fail (ctest WILL_FAIL): here
// we assert that it does fail, on every block size where a barrier matters.
TEST(Emulation, MissingBarrierGivesAWrongSum) {
  const std::vector<float> a = random_floats(5000, 11, 0.5f, 1.5f);
  double want = 0;
  for (float x : a) want += x;
  for (int block : {64, 128, 256, 512}) {
    const double got = buggy_sum(a, block);
    EXPECT_FALSE(std::abs(got - want) <= 1e-6 * want) << "block " << block << ": the emulation did not expose the race";
  }
}

// ---- element-wise ----

TEST(Kernels, ElementWiseMatchCpu) {
  const int64_t n = 1000;  // no block size here divides it
  const std::vector<float> a = random_floats(n, 1), b = random_floats(n, 2);
  for (const LaunchShape& s : kAnyShapes) {
    Launcher l{s.block, s.max_grid};
    std::vector<float> got(n, kNaNf), want(n);
    dl::kern::launch_1d(l, dl::kern::scale_kernel<float>, n, a.data(), 2.5f, got.data(), n);
    dl::cpu::scale(a.data(), 2.5f, want.data(), n);
    expect_near_all(got, want, 0, "scale, " + describe(s));
    got = b;
    want = b;
    dl::kern::launch_1d(l, dl::kern::axpy_kernel<float>, n, -0.5f, a.data(), got.data(), n);
    dl::cpu::axpy_acc(-0.5f, a.data(), want.data(), n);
    expect_near_all(got, want, 0, "axpy, " + describe(s));
    got = b;
    dl::kern::launch_1d(l, dl::kern::lerp_kernel<float>, n, got.data(), a.data(), 0.1f, n);
    for (int64_t i = 0; i < n; ++i) want[i] = 0.9f * b[i] + 0.1f * a[i];
    expect_near_all(got, want, 1e-6, "lerp, " + describe(s));
    got.assign(n, kNaNf);
    dl::kern::launch_1d(l, dl::kern::broadcast_scalar_kernel<float>, n, a.data() + 7, 0.25f, got.data(), n);
    want.assign(n, 0.25f * a[7]);
    expect_near_all(got, want, 0, "broadcast, " + describe(s));
    got = b;
    dl::kern::launch_1d(l, dl::kern::bias_add_kernel<float>, n, got.data(), a.data(), int64_t{40}, int64_t{25});
    for (int64_t i = 0; i < n; ++i) want[i] = b[i] + a[i % 25];
    expect_near_all(got, want, 0, "bias_add, " + describe(s));
    got.assign(n, kNaNf);
    dl::kern::launch_1d(l, dl::kern::fill_kernel<float>, n, got.data(), n, 3.f);
    want.assign(n, 3.f);
    expect_near_all(got, want, 0, "fill, " + describe(s));
  }
}

// Dropout's kernel draws exactly the CPU body's mask (the same counter-based hash), at any launch shape.
TEST(Kernels, DropoutMatchesTheCpuMaskBitForBit) {
  const int64_t n = 5003;
  const std::vector<float> x = random_floats(static_cast<size_t>(n), 41);
  std::vector<float> want(static_cast<size_t>(n));
  dl::cpu::dropout(x.data(), want.data(), n, 0x1234567890abcdefull, 0.4f);
  int64_t zeros = 0;
  for (float v : want) zeros += v == 0.f;
  EXPECT_NEAR(static_cast<double>(zeros) / static_cast<double>(n), 0.4, 0.03);
  for (const LaunchShape& s : kAnyShapes) {
    Launcher l{s.block, s.max_grid};
    std::vector<float> y(static_cast<size_t>(n), kNaNf);
    dl::kern::run_dropout(l, x.data(), y.data(), n, 0x1234567890abcdefull, 0.4f);
    expect_near_all(y, want, 0, "dropout, " + describe(s));
  }
}

// ---- the broadcasting family (broadcast.cuh) against the CPU loops of the same functors ----

// Operand shapes that exercise each path: same shapes (the packed kernel, and its tail), a channel
// bias, both sides stretching, leading dimensions missing, a scalar (shape []).
const std::vector<std::pair<dl::Shape, dl::Shape>> kBroadcastPairs = {
    {{1003}, {1003}}, {{4, 16, 5, 7}, {16, 1, 1}},    {{3, 1, 5}, {4, 1}}, {{2, 3, 4}, {}},
    {{1, 6}, {5, 1}}, {{2, 1, 3, 1, 2}, {4, 1, 5, 1}}};

template <typename Op>
void check_binary_kernels(const Op& op, const std::string& name) {
  for (const auto& [sa, sb] : kBroadcastPairs) {
    const dl::Shape out = dl::ops::detail::broadcast_shapes(sa, sb, "test");
    const auto ix = dl::ops::detail::broadcast_index<2>(out, {sa, sb});
    const int64_t n = out.numel();
    // Positive bases for pow; ties for maximum/minimum on a few elements.
    std::vector<float> a = random_floats(static_cast<size_t>(sa.numel()), 11, 0.5f, 2.f);
    std::vector<float> b = random_floats(static_cast<size_t>(sb.numel()), 12, 0.5f, 2.f);
    if (!b.empty()) a[0] = b[0];
    const std::vector<float> dy = random_floats(static_cast<size_t>(n), 13);
    const bool scalar = sb.ndim() == 0;  // the scalar form: b null, the value passed by argument
    const float* pb = scalar ? nullptr : b.data();
    const float bs = 1.25f;
    std::vector<float> want(n), want_ga(n), want_gb(n);
    dl::cpu::broadcast_binary(op, a.data(), pb, bs, want.data(), n, ix);
    dl::cpu::broadcast_binary_backward(op, a.data(), pb, bs, want.data(), dy.data(), want_ga.data(), want_gb.data(), n,
                                       ix);
    std::vector<uint8_t> want_mask(n);
    dl::cpu::compare(dl::kern::LtOp{}, a.data(), pb, bs, want_mask.data(), n, ix);
    for (const LaunchShape& s : kAnyShapes) {
      const std::string what = name + " " + sa.str() + " by " + sb.str() + ", " + describe(s);
      Launcher l{s.block, s.max_grid};
      std::vector<float> y(n, kNaNf), ga(n, kNaNf), gb(n, kNaNf);
      dl::kern::run_broadcast_binary(l, op, a.data(), pb, bs, y.data(), n, ix);
      expect_near_all(y, want, 1e-6, what + ": forward");
      dl::kern::run_broadcast_binary_backward(l, op, a.data(), pb, bs, want.data(), dy.data(), ga.data(), gb.data(), n,
                                              ix);
      expect_near_all(ga, want_ga, 1e-5, what + ": grad a");
      expect_near_all(gb, want_gb, 1e-5, what + ": grad b");
      std::vector<uint8_t> mask(n, 0xA5);
      dl::kern::run_compare(l, dl::kern::LtOp{}, a.data(), pb, bs, mask.data(), n, ix);
      ASSERT_EQ(mask, want_mask) << what << ": lt";
    }
  }
}

TEST(Kernels, BroadcastBinaryFamilyMatchesCpu) {
#define DL_CHECK_OP(Op) check_binary_kernels(dl::kern::Op{}, #Op);
  DL_BINARY_OPS(DL_CHECK_OP)
#undef DL_CHECK_OP
}

TEST(Kernels, PackedBinaryPathHandlesMisalignedPointersAndTails) {
  // Offsets 0..3 floats: only offset 0 may take the packed loads; every length leaves a different tail.
  const std::vector<float> a = random_floats(1040, 21), b = random_floats(1040, 22);
  for (int off = 0; off < 4; ++off) {
    for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{4}, int64_t{1001}, int64_t{1024}}) {
      const auto ix = dl::ops::detail::broadcast_index<2>(dl::Shape{n}, {dl::Shape{n}, dl::Shape{n}});
      std::vector<float> buf(static_cast<size_t>(n + 4), kNaNf);
      Launcher l{128, 3};
      dl::kern::run_broadcast_binary(l, dl::kern::MulOp{}, a.data() + off, b.data() + off, 0.f, buf.data() + off, n,
                                     ix);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_FLOAT_EQ(buf[static_cast<size_t>(off + i)],
                        a[static_cast<size_t>(off + i)] * b[static_cast<size_t>(off + i)])
            << "offset " << off << ", n " << n << ", element " << i;
      for (int i = 0; i < off; ++i) ASSERT_TRUE(std::isnan(buf[static_cast<size_t>(i)])) << "wrote before the output";
      ASSERT_TRUE(std::isnan(buf[static_cast<size_t>(off + n)])) << "wrote past the output";
    }
  }
}

// The gather along dim 1 of x [A, B, C] into an output of shape [A, K, C], reading an index of that
// shape or (select) a [K] index broadcast along the other dimensions.
dl::kern::GatherIndex gather_dim1(int64_t a, int64_t b, int64_t c, int64_t k, bool select) {
  dl::kern::GatherIndex g;
  g.ndim = 3;
  g.dim = 1;
  const int64_t size[3] = {a, k, c}, out[3] = {k * c, c, 1}, xs[3] = {b * c, c, 1};
  for (int d = 0; d < 3; ++d) {
    g.size[d] = size[d];
    g.out_stride[d] = out[d];
    g.x_stride[d] = xs[d];
    g.i_stride[d] = select ? (d == 1 ? 1 : 0) : out[d];
  }
  return g;
}

// Gather, its scatter-add (repeated indices: each line of x summed in order, so the result is the same
// bit for bit at every launch shape), index_select's broadcast index, the strided scatter of slicing's
// backward, and argmin/argmax with NaN: against plain loops, outputs poisoned.
TEST(Kernels, GatherScatterAddStridedScatterAndArgminMatchReference) {
  const int64_t a = 3, b = 5, c = 7, k = 9;
  const std::vector<float> x = random_floats(static_cast<size_t>(a * b * c), 41);
  const std::vector<float> src = random_floats(static_cast<size_t>(a * k * c), 42);
  std::mt19937 rng(43);
  std::vector<int64_t> idx(static_cast<size_t>(a * k * c));
  for (int64_t& v : idx) v = static_cast<int64_t>(rng() % b);
  std::vector<int32_t> sel(static_cast<size_t>(k));
  for (int32_t& v : sel) v = static_cast<int32_t>(rng() % b);
  std::vector<float> want_gather(a * k * c), want_select(a * k * c), want_scatter(a * b * c, 0.5f),
      want_scatter_sel(a * b * c, 0.5f);
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < k; ++j)
      for (int64_t l = 0; l < c; ++l) {
        const int64_t o = (i * k + j) * c + l;
        want_gather[o] = x[(i * b + idx[o]) * c + l];
        want_select[o] = x[(i * b + sel[j]) * c + l];
        want_scatter[(i * b + idx[o]) * c + l] += src[o];
        want_scatter_sel[(i * b + sel[j]) * c + l] += src[o];
      }
  const dl::kern::GatherIndex g = gather_dim1(a, b, c, k, false), gs = gather_dim1(a, b, c, k, true);
  // slicing's backward: x[:, 1:5:2, :] of [A, B, C] scattered back
  dl::kern::StridedIndex<1> six;
  six.ndim = 3;
  six.size[0] = a, six.size[1] = 2, six.size[2] = c;
  six.stride[0][0] = b * c, six.stride[0][1] = 2 * c, six.stride[0][2] = 1;
  const std::vector<float> part = random_floats(static_cast<size_t>(a * 2 * c), 44);
  std::vector<float> want_part(a * b * c, 0.f);
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t l = 0; l < c; ++l) want_part[(i * b + 1 + 2 * j) * c + l] = part[(i * 2 + j) * c + l];
  // argmin/argmax over dim 1 with a NaN in one column
  std::vector<float> logits = x;
  logits[(1 * b + 3) * c + 2] = kNaNf;
  for (const LaunchShape& s : kAnyShapes) {
    Launcher l{s.block, s.max_grid};
    std::vector<float> got(a * k * c, kNaNf);
    dl::kern::run_gather(l, x.data(), idx.data(), got.data(), a * k * c, g);
    expect_near_all(got, want_gather, 0, "gather, " + describe(s));
    got.assign(a * k * c, kNaNf);
    dl::kern::run_gather(l, x.data(), sel.data(), got.data(), a * k * c, gs);
    expect_near_all(got, want_select, 0, "index_select, " + describe(s));
    std::vector<float> acc(a * b * c, 0.5f);
    dl::kern::run_scatter_add(l, src.data(), idx.data(), acc.data(), g);
    expect_near_all(acc, want_scatter, 0, "scatter_add, " + describe(s));
    acc.assign(a * b * c, 0.5f);
    dl::kern::run_scatter_add(l, src.data(), sel.data(), acc.data(), gs);
    expect_near_all(acc, want_scatter_sel, 0, "index_select's backward, " + describe(s));
    std::vector<float> whole(a * b * c, 0.f);
    for (int64_t i = 0; i < a; ++i)  // poison what the slice covers
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t q = 0; q < c; ++q) whole[(i * b + 1 + 2 * j) * c + q] = kNaNf;
    dl::kern::run_strided_scatter(l, part.data(), whole.data() + c, a * 2 * c, six);  // start 1: base c
    expect_near_all(whole, want_part, 0, "strided_scatter, " + describe(s));
    for (bool smallest : {false, true}) {
      std::vector<int32_t> am(a * c, -7);
      dl::kern::run_argmax(l, logits.data(), a, b, c, am.data(), smallest);
      for (int64_t i = 0; i < a; ++i)
        for (int64_t q = 0; q < c; ++q) {
          int32_t best = 0;
          for (int32_t j = 1; j < b; ++j) {
            const float v = logits[(i * b + j) * c + q], w = logits[(i * b + best) * c + q];
            if (std::isnan(w)) break;
            if (std::isnan(v) || (smallest ? v < w : v > w)) best = j;
          }
          ASSERT_EQ(am[i * c + q], best) << (smallest ? "argmin" : "argmax") << " at " << i << "," << q << ", "
                                         << describe(s);
        }
      EXPECT_EQ(am[1 * c + 2], 3) << "the NaN wins, " << describe(s);
    }
  }
}

TEST(Kernels, WhereStridedCopyAndReduceSumMatchCpu) {
  const dl::Shape xs{3, 4, 5, 6};
  const std::vector<float> x = random_floats(static_cast<size_t>(xs.numel()), 31);
  // where: a [4, 1, 6] mask, a full a, a [5, 1] b.
  const dl::Shape cs{4, 1, 6}, bs{5, 1};
  std::vector<uint8_t> cond(static_cast<size_t>(cs.numel()));
  for (size_t i = 0; i < cond.size(); ++i) cond[i] = static_cast<uint8_t>(i % 3 == 0);
  const std::vector<float> bv = random_floats(static_cast<size_t>(bs.numel()), 32);
  const auto wix = dl::ops::detail::broadcast_index<3>(xs, {cs, xs, bs});
  const int64_t n = xs.numel();
  std::vector<float> want_where(n);
  dl::cpu::where(cond.data(), x.data(), bv.data(), want_where.data(), n, wix);
  std::vector<float> want_where_a(n);
  dl::cpu::where(cond.data(), x.data(), static_cast<const float*>(nullptr), want_where_a.data(), n, wix);
  // permute to N x H x W x C
  const auto pix = dl::ops::detail::permute_index(xs, {0, 2, 3, 1});
  std::vector<float> want_perm(n);
  dl::cpu::strided_copy(x.data(), want_perm.data(), n, pix);
  EXPECT_EQ(want_perm[1], x[30]) << "the CPU permute itself";  // (0, 0, 0, 1) comes from x[0][1][0][0]
  // reductions over every subset of the four dimensions
  for (const LaunchShape& s : kReductionShapes) {
    Launcher l{s.block, s.max_grid};
    std::vector<float> got(n, kNaNf);
    dl::kern::run_where(l, cond.data(), x.data(), bv.data(), got.data(), n, wix);
    expect_near_all(got, want_where, 0, "where, " + describe(s));
    got.assign(n, kNaNf);
    dl::kern::run_where(l, cond.data(), x.data(), static_cast<const float*>(nullptr), got.data(), n, wix);
    expect_near_all(got, want_where_a, 0, "where with b = 0, " + describe(s));
    got.assign(n, kNaNf);
    dl::kern::run_strided_copy(l, x.data(), got.data(), n, pix);
    expect_near_all(got, want_perm, 0, "permute, " + describe(s));
    for (unsigned mask = 0; mask < 16; ++mask) {
      std::vector<bool> flags(4);
      for (int d = 0; d < 4; ++d) flags[static_cast<size_t>(d)] = (mask >> d) & 1;
      const dl::ops::detail::ReduceIndex r = dl::ops::detail::reduce_index(xs, flags);
      std::vector<float> want(static_cast<size_t>(r.n_out)), y(static_cast<size_t>(r.n_out), kNaNf);
      dl::cpu::reduce_sum(x.data(), want.data(), r.n_out, r.kept, r.reduced, r.n_red, 0.5);
      dl::kern::run_reduce_sum(l, x.data(), y.data(), r.n_out, r.kept, r.reduced, r.n_red, 0.5);
      expect_near_all(y, want, 1e-5, "reduce_sum, dimensions " + std::to_string(mask) + ", " + describe(s));
    }
  }
  // The reduction against a plain loop: sum over dimensions 0 and 2 of [3, 4, 5, 6].
  const dl::ops::detail::ReduceIndex r = dl::ops::detail::reduce_index(xs, {true, false, true, false});
  std::vector<float> y(static_cast<size_t>(r.n_out));
  dl::cpu::reduce_sum(x.data(), y.data(), r.n_out, r.kept, r.reduced, r.n_red, 1.0);
  for (int c = 0; c < 4; ++c)
    for (int w = 0; w < 6; ++w) {
      double v = 0;
      for (int i = 0; i < 3; ++i)
        for (int h = 0; h < 5; ++h) v += x[static_cast<size_t>(((i * 4 + c) * 5 + h) * 6 + w)];
      ASSERT_NEAR(y[static_cast<size_t>(c * 6 + w)], v, 1e-5) << "c " << c << ", w " << w;
    }
}

// The element-wise unary family: each row of the op table (tests/op_cases.h) that names a functor of
// kernels/unary_ops.cuh runs the one kernel family against the CPU body of the same op.
class UnaryKernels : public ::testing::TestWithParam<dl::testing::OpCase> {};

TEST_P(UnaryKernels, ForwardBackwardMatchCpu) {
  const dl::testing::OpCase& c = GetParam();
  const dl::Tensor x = dl::testing::make_inputs(c, dl::DType::kFloat32)[0];
  const int64_t n = x.numel();
  const float* px = x.data<float>();
  const std::vector<float> dy = random_floats(static_cast<size_t>(n), 90);
  std::visit(
      [&](const auto& op) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(op)>, std::monostate>) {
          std::vector<float> want_y(n), want_dx(n);
          dl::cpu::unary_forward(op, px, want_y.data(), n);
          dl::cpu::unary_backward(op, px, want_y.data(), dy.data(), want_dx.data(), n);
          for (const LaunchShape& s : kAnyShapes) {
            Launcher l{s.block, s.max_grid};
            std::vector<float> y(n, kNaNf), dx(n, kNaNf);
            dl::kern::run_unary_forward(l, op, px, y.data(), n);
            expect_near_all(y, want_y, 1e-5, "forward, " + describe(s));
            dl::kern::run_unary_backward(l, op, px, want_y.data(), dy.data(), dx.data(), n);
            expect_near_all(dx, want_dx, 1e-5, "backward, " + describe(s));
          }
        }
      },
      c.unary);
}

INSTANTIATE_TEST_SUITE_P(Table, UnaryKernels, ::testing::ValuesIn(dl::testing::op_cases_for(dl::testing::kKernel)),
                         dl::testing::OpCaseId());

TEST(Kernels, SumIsExactToDoubleAndDeterministic) {
  for (int64_t n : {0, 1, 511, 1000, 100003}) {
    const std::vector<float> a = random_floats(static_cast<size_t>(n), 3);
    double want = 0;
    for (float x : a) want += x;
    for (const LaunchShape& s : kReductionShapes) {
      Launcher l{s.block, s.max_grid};
      float got = kNaNf, again = kNaNf;
      dl::kern::run_sum(l, a.data(), n, 1.f, &got);
      dl::kern::run_sum(l, a.data(), n, 1.f, &again);
      EXPECT_NEAR(got, want, 1e-5 * (1 + std::abs(want))) << "n " << n << ", " << describe(s);
      EXPECT_EQ(got, again) << "same launch shape, another result: n " << n << ", " << describe(s);
      double squares = -1, want_squares = 0;
      for (float x : a) want_squares += static_cast<double>(x) * x;
      dl::kern::run_sum(l, a.data(), n, 1.0, &squares, /*square=*/true);
      EXPECT_NEAR(squares, want_squares, 1e-12 * (1 + want_squares))
          << "sum of squares, n " << n << ", " << describe(s);
    }
  }
}

// ---- weighted cross-entropy ----

struct CeCase {
  int64_t n, c, s;
  bool weighted;
};

TEST(Kernels, CrossEntropyForwardBackwardMatchCpu) {
  const int32_t ignore = 255;
  for (const CeCase& k : {CeCase{3, 5, 37, true}, CeCase{2, 11, 130, true}, CeCase{7, 10, 1, false}}) {
    const int64_t pix = k.n * k.s, total = pix * k.c;
    const std::vector<float> logits = random_floats(total, 5, -4.f, 4.f);
    const std::vector<float> weights = random_floats(k.c, 6, 0.2f, 3.f);
    std::vector<int32_t> labels(pix);
    std::mt19937 rng(7);
    for (auto& y : labels) y = rng() % 6 == 0 ? ignore : static_cast<int32_t>(rng() % k.c);
    const float* w = k.weighted ? weights.data() : nullptr;

    std::vector<float> want_lp(total), want_dx(total);
    double loss_sum = 0, wsum = 0;
    dl::cpu::cross_entropy_forward(logits.data(), labels.data(), w, k.n, k.c, k.s, ignore, want_lp.data(), &loss_sum,
                                   &wsum);
    const float gy = 0.75f;
    dl::cpu::cross_entropy_backward(want_lp.data(), labels.data(), w, k.n, k.c, k.s, ignore,
                                    static_cast<float>(gy / wsum), want_dx.data());
    for (const LaunchShape& s : kReductionShapes) {
      Launcher l{s.block, s.max_grid};
      std::vector<float> lp(total, kNaNf), dx(total, kNaNf);
      float loss = kNaNf;
      double ws = -1;
      dl::kern::run_cross_entropy_forward(l, logits.data(), labels.data(), w, k.n, k.c, k.s, ignore, lp.data(), &loss,
                                          &ws);
      const std::string what = "C " + std::to_string(k.c) + ", S " + std::to_string(k.s) + ", " + describe(s);
      expect_near_all(lp, want_lp, 1e-6, "log-probabilities, " + what);
      EXPECT_NEAR(loss, loss_sum / wsum, 1e-6) << what;
      EXPECT_NEAR(ws, wsum, 1e-9 * wsum) << what;
      dl::kern::run_cross_entropy_backward(l, lp.data(), labels.data(), w, k.n, k.c, k.s, ignore, &gy, &ws, dx.data());
      expect_near_all(dx, want_dx, 1e-6, "dlogits, " + what);
    }
  }
}

TEST(Kernels, CrossEntropyWithNothingCountedIsNaN) {
  const std::vector<float> logits = random_floats(4 * 3, 8);
  const std::vector<int32_t> labels(4, 255);
  std::vector<float> lp(12, kNaNf);
  float loss = 0;
  double ws = -1;
  Launcher l{64, 2};
  dl::kern::run_cross_entropy_forward(l, logits.data(), labels.data(), static_cast<const float*>(nullptr), int64_t{4},
                                      int64_t{3}, int64_t{1}, 255, lp.data(), &loss, &ws);
  EXPECT_TRUE(std::isnan(loss));
  EXPECT_EQ(ws, 0.0);
}

// A label out of range is never an index: the loss is NaN, its pixel's gradient zero (AddressSanitizer
// watches the reads of weights[] and log_probs[] here).
TEST(Kernels, CrossEntropyBadLabelGivesNaNWithoutOutOfRangeReads) {
  const int64_t n = 2, c = 5, s = 9;
  const std::vector<float> logits = random_floats(n * c * s, 81);
  const std::vector<float> weights = random_floats(c, 82, 0.5f, 1.5f);
  std::vector<int32_t> labels(n * s, 1);
  labels[4] = 1000000;
  labels[11] = -7;
  for (int32_t ignore : {255, -1}) {
    Launcher l{64, 2};
    std::vector<float> lp(n * c * s, kNaNf), dx(n * c * s, kNaNf);
    float loss = 0;
    double ws = -1;
    dl::kern::run_cross_entropy_forward(l, logits.data(), labels.data(), weights.data(), n, c, s, ignore, lp.data(),
                                        &loss, &ws);
    EXPECT_TRUE(std::isnan(loss)) << "ignore " << ignore;
    const float gy = 1.f;
    const double one = 1.0;
    dl::kern::run_cross_entropy_backward(l, lp.data(), labels.data(), weights.data(), n, c, s, ignore, &gy, &one,
                                         dx.data());
    for (int64_t k = 0; k < c; ++k) {
      EXPECT_EQ(dx[(0 * c + k) * s + 4], 0.f);
      EXPECT_EQ(dx[(1 * c + k) * s + 2], 0.f);
      EXPECT_TRUE(std::isfinite(dx[(0 * c + k) * s + 3]));
    }
  }
}

TEST(Kernels, FindsTheFirstBadLabel) {
  std::vector<int32_t> labels(1000, 2);
  labels[517] = 11;
  labels[800] = -1;
  labels[100] = 255;  // ignored, fine
  for (const LaunchShape& s : kAnyShapes) {
    Launcher l{s.block, s.max_grid};
    unsigned long long first = 0;
    dl::kern::run_find_bad_label(l, labels.data(), int64_t{1000}, int64_t{11}, 255, &first);
    EXPECT_EQ(first, 517u) << describe(s);
    std::vector<int32_t> good(1000, 3);
    dl::kern::run_find_bad_label(l, good.data(), int64_t{1000}, int64_t{11}, 255, &first);
    EXPECT_EQ(first, 1000u) << describe(s);
    good[900] = -1;  // with no ignored label (-1), -1 is out of range like any other negative label
    dl::kern::run_find_bad_label(l, good.data(), int64_t{1000}, int64_t{11}, -1, &first);
    EXPECT_EQ(first, 900u) << describe(s);
  }
}

// ---- segmentation metrics: confusion matrix (argmax fused) and BF score ----

// Blobby label maps: a few rectangles of classes over a background, some void.
std::vector<int32_t> blob_map(int images, int h, int w, int c, uint32_t seed, bool with_void) {
  std::mt19937 rng(seed);
  std::vector<int32_t> m(static_cast<size_t>(images) * h * w);
  for (int i = 0; i < images; ++i) {
    int32_t* p = m.data() + static_cast<size_t>(i) * h * w;
    std::fill(p, p + h * w, static_cast<int32_t>(rng() % c));
    for (int r = 0; r < 8; ++r) {
      const int y0 = rng() % h, x0 = rng() % w, y1 = std::min(h, y0 + 1 + static_cast<int>(rng() % (h / 2 + 1))),
                x1 = std::min(w, x0 + 1 + static_cast<int>(rng() % (w / 2 + 1)));
      const int32_t k = with_void && r == 7 ? 255 : static_cast<int32_t>(rng() % c);
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) p[y * w + x] = k;
    }
    for (int j = 0; j < h * w / 50; ++j) p[rng() % (h * w)] = static_cast<int32_t>(rng() % c);  // speckles
  }
  return m;
}

TEST(Kernels, ConfusionMatrixFromLabelsAndFromLogits) {
  // 7 classes count in shared memory, 40 (over kMaxConfusionClasses) straight into global memory.
  for (const int c : {7, 40}) {
    const int n = 3, h = 19, w = 23;
    const int64_t s = h * w, pixels = n * s;
    const std::vector<int32_t> truth = blob_map(n, h, w, c, 21, true);
    const std::vector<float> logits = random_floats(static_cast<size_t>(pixels * c), 22);
    std::vector<int32_t> pred(pixels);
    for (int64_t p = 0; p < pixels; ++p) {  // argmax, first maximum on ties
      const int64_t base = (p / s) * c * s + p % s;
      int best = 0;
      for (int k = 1; k < c; ++k)
        if (logits[base + k * s] > logits[base + best * s]) best = k;
      pred[p] = best;
    }
    std::vector<unsigned long long> want(c * c, 0);
    for (int64_t p = 0; p < pixels; ++p)
      if (truth[p] != 255) ++want[truth[p] * c + pred[p]];

    for (const LaunchShape& sh : kAnyShapes) {
      Launcher l{sh.block, sh.max_grid};
      std::vector<int32_t> am(pixels, -7);
      dl::kern::run_argmax(l, logits.data(), int64_t{n}, int64_t{c}, s, am.data());
      EXPECT_EQ(am, pred) << describe(sh);
      for (bool fused : {false, true}) {
        std::vector<unsigned long long> got(c * c, 0);
        unsigned long long bad = 0;
        dl::kern::run_confusion(l, fused ? nullptr : pred.data(), logits.data(), truth.data(), pixels, s, c, 255,
                                got.data(), &bad);
        EXPECT_EQ(got, want) << (fused ? "argmax fused, " : "labels, ") << describe(sh);
        EXPECT_EQ(bad, static_cast<unsigned long long>(pixels));
      }
    }
    std::vector<int32_t> broken = pred;
    broken[300] = c;  // out of range where the truth is not void
    broken[200] = -3;
    std::vector<unsigned long long> got(c * c, 0);
    unsigned long long bad = 0;
    Launcher l{64, 3};
    dl::kern::run_confusion(l, broken.data(), static_cast<const float*>(nullptr), truth.data(), pixels, s, c, 255,
                            got.data(), &bad);
    EXPECT_EQ(bad, truth[200] != 255 ? 200u : (truth[300] != 255 ? 300u : static_cast<unsigned long long>(pixels)));
  }
}

// The training step's accuracy on the device: ties (first maximum wins), an ignored label, labels out
// of range (counted, wrong), one pixel per image and many, against a plain count and the CPU body.
TEST(Kernels, CorrectCountsMatchAPlainCount) {
  struct Case {
    int n, c, s;
    int32_t ignore;
  };
  for (const Case& k : {Case{1000, 10, 1, -1}, Case{3, 11, 19 * 23, 255}, Case{2, 40, 333, 3}, Case{0, 5, 7, -1}}) {
    const int64_t pixels = int64_t{k.n} * k.s;
    std::vector<float> logits = random_floats(static_cast<size_t>(pixels * k.c), 31);
    for (size_t i = 0; i < logits.size(); i += 7) logits[i] = 0.5f;  // ties
    std::mt19937 rng(32);
    std::vector<int32_t> truth(static_cast<size_t>(pixels));
    for (int32_t& t : truth) t = static_cast<int32_t>(rng() % (k.c + 2)) - (rng() % 9 == 0 ? k.c + 5 : 0);
    if (k.ignore >= 0) {
      for (size_t i = 0; i < truth.size(); i += 5) truth[i] = k.ignore;
    }
    double want[2] = {0, 0};
    for (int64_t p = 0; p < pixels; ++p) {
      if (k.ignore >= 0 && truth[p] == k.ignore) continue;
      const int64_t base = (p / k.s) * k.c * k.s + p % k.s;
      int best = 0;
      for (int j = 1; j < k.c; ++j)
        if (logits[base + j * k.s] > logits[base + best * k.s]) best = j;
      want[0] += best == truth[p];
      want[1] += 1;
    }
    if (pixels > 0) {
      ASSERT_GT(want[0], 0) << "the case must have correct predictions to count";
    }
    double cpu[2] = {kNaNf, kNaNf};
    dl::cpu::correct_counts(logits.data(), truth.data(), int64_t{k.n}, int64_t{k.c}, int64_t{k.s}, k.ignore, cpu);
    EXPECT_EQ(cpu[0], want[0]);
    EXPECT_EQ(cpu[1], want[1]);
    for (const LaunchShape& sh : kReductionShapes) {
      Launcher l{sh.block, sh.max_grid};
      double got[2] = {kNaNf, kNaNf};
      dl::kern::run_correct_counts(l, logits.data(), truth.data(), pixels, int64_t{k.s}, int64_t{k.c}, k.ignore, got);
      EXPECT_EQ(got[0], want[0]) << "n " << k.n << ", c " << k.c << ", " << describe(sh);
      EXPECT_EQ(got[1], want[1]) << "n " << k.n << ", c " << k.c << ", " << describe(sh);
    }
  }
}

TEST(Kernels, BoundaryF1MatchesTheCpuMetric) {
  struct Size {
    int images, h, w, c;
  };
  // theta = 0.75% of the diagonal: under one pixel, then about 1.9 and 3.8 pixels.
  // 70 classes: over kMaxBfClasses, the counts go straight into global memory.
  for (const Size& z : {Size{3, 31, 47, 5}, Size{2, 150, 200, 6}, Size{1, 300, 400, 11}, Size{2, 40, 60, 70}}) {
    const std::vector<int32_t> truth = blob_map(z.images, z.h, z.w, z.c, 31 + z.h, true);
    std::vector<int32_t> pred = blob_map(z.images, z.h, z.w, z.c, 32 + z.h, false);
    // Make the prediction a shifted, noisy copy of the truth in half of each image, so that boundaries match.
    for (int i = 0; i < z.images; ++i)
      for (int y = 0; y < z.h; ++y)
        for (int x = 0; x < z.w / 2; ++x) {
          const int32_t t = truth[(static_cast<size_t>(i) * z.h + y) * z.w + std::min(z.w - 1, x + 1)];
          pred[(static_cast<size_t>(i) * z.h + y) * z.w + x] = t == 255 ? 0 : t;
        }
    const std::vector<LaunchShape> shapes = {{64, 1}, {100, 3}, {256, 1 << 20}};
    for (const LaunchShape& sh : shapes) {
      Launcher l{sh.block, sh.max_grid};
      std::vector<unsigned long long> pc(z.images * z.c * 2, 99), tc(z.images * z.c * 2, 99);
      dl::kern::run_bf_counts(l, pred.data(), truth.data(), z.images, z.h, z.w, z.c, 255, pc.data(), tc.data());
      for (int i = 0; i < z.images; ++i) {
        const size_t off = static_cast<size_t>(i) * z.h * z.w;
        const std::vector<double> want = dl::metrics::bf_scores(pred.data() + off, truth.data() + off, z.h, z.w, z.c);
        for (int k = 0; k < z.c; ++k) {
          const size_t b = (static_cast<size_t>(i) * z.c + k) * 2;
          const double got =
              dl::metrics::bf_score_from_counts(static_cast<int64_t>(pc[b]), static_cast<int64_t>(pc[b + 1]),
                                                static_cast<int64_t>(tc[b]), static_cast<int64_t>(tc[b + 1]));
          if (std::isnan(want[k]))
            EXPECT_TRUE(std::isnan(got)) << "image " << i << " class " << k;
          else
            EXPECT_NEAR(got, want[k], 1e-12)
                << z.h << "x" << z.w << " image " << i << " class " << k << ", " << describe(sh);
        }
      }
    }
  }
}

// ---- casts between float32 and bf16 / fp16 (kernels/cast.cuh, kernels/round16.cuh) ----
// The kernels against references that share no code with them: fp16 through the compiler's _Float16
// conversion (IEEE 754 round to nearest even), bf16 by picking the nearer of the two neighbouring bf16
// values in double arithmetic (ties to the even pattern), and each reference against a table of answers
// worked out by hand. NaN has no single right pattern: a NaN must stay a NaN (also one whose payload sits in
// the bits rounded away) with its sign. Every output starts as something other than its expected value.

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// |value| of a bf16 pattern's magnitude in double; the pattern above the largest finite is infinity, taken as
// 2^128 (where the next binade would start) so that the largest finite values round to it as IEEE says.
double bf16_magnitude(uint16_t h) {
  const uint16_t m = h & 0x7FFF;
  return m == 0x7F80 ? std::ldexp(1.0, 128) : std::fabs(static_cast<double>(float_of(static_cast<uint32_t>(m) << 16)));
}

uint16_t bf16_reference(float f) {
  const uint32_t u = bits_of(f);
  const auto down = static_cast<uint16_t>(u >> 16);  // the magnitude truncated
  if ((u & 0xFFFFu) == 0 || (u & 0x7FFFFFFFu) == 0x7F800000u) return down;
  const auto up = static_cast<uint16_t>(down + 1);  // the next magnitude, same sign
  const double v = std::fabs(static_cast<double>(f)), to_down = v - bf16_magnitude(down),
               to_up = bf16_magnitude(up) - v;
  if (to_down != to_up) return to_down < to_up ? down : up;
  return (down & 1) == 0 ? down : up;
}

uint16_t fp16_reference(float f) {
  const auto h = static_cast<_Float16>(f);
  uint16_t b;
  std::memcpy(&b, &h, sizeof b);
  return b;
}

bool is_nan16(dl::kern::Format16 f, uint16_t h) {
  return f == dl::kern::Format16::kBf16 ? (h & 0x7F80) == 0x7F80 && (h & 0x007F) != 0
                                        : (h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0;
}

struct Known16 {
  uint32_t in;  // float32 bits
  uint16_t bf16, fp16;
};
// Worked out by hand: ties (odd and even kept parts), just off ties, the largest finite values and overflow,
// subnormals of both formats, float32 subnormals, zeros, infinities.
const std::vector<Known16> kKnown16 = {
    {0x3F800000, 0x3F80, 0x3C00},  // 1
    {0x3F808000, 0x3F80, 0x3C04},  // 1 + 2^-8: bf16 tie, kept part even -> 1; fp16 exact
    {0x3F818000, 0x3F82, 0x3C0C},  // 1 + 3 2^-8: bf16 tie, kept part odd -> up
    {0x3F808001, 0x3F81, 0x3C04},  // just above the tie -> up
    {0x3F807FFF, 0x3F80, 0x3C04},  // just below the tie -> down (fp16: 1 + 2^-8 - 2^-23 -> 0x3C04)
    {0x3F801000, 0x3F80, 0x3C00},  // 1 + 2^-11: fp16 tie, kept part even -> 1
    {0x3F803000, 0x3F80, 0x3C02},  // 1 + 3 2^-11: fp16 tie, kept part odd -> up
    {0xBF803000, 0xBF80, 0xBC02},  // the same, negative
    {0x477FE000, 0x4780, 0x7BFF},  // 65504, fp16's largest finite
    {0x477FEFFF, 0x4780, 0x7BFF},  // just below 65520: stays finite in fp16
    {0x477FF000, 0x4780, 0x7C00},  // 65520: fp16 tie with an odd kept part -> infinity
    {0xC7800000, 0xC780, 0xFC00},  // -65536 -> -infinity in fp16
    {0x7F7F7FFF, 0x7F7F, 0x7C00},  // below bf16's largest finite plus half a unit: stays finite
    {0x7F7F8000, 0x7F80, 0x7C00},  // bf16 tie above its largest finite (odd kept part) -> infinity
    {0x7F7FFFFF, 0x7F80, 0x7C00},  // float32's largest finite -> infinity in both
    {0x7F800000, 0x7F80, 0x7C00},  // infinity
    {0xFF800000, 0xFF80, 0xFC00},  // -infinity
    {0x00000000, 0x0000, 0x0000},  // 0
    {0x80000000, 0x8000, 0x8000},  // -0
    {0x00000001, 0x0000, 0x0000},  // float32's smallest subnormal -> 0 in both
    {0x00008000, 0x0000, 0x0000},  // bf16 tie at zero -> 0
    {0x00018000, 0x0002, 0x0000},  // bf16 subnormal tie, odd kept part -> up
    {0x807FFFFF, 0x8080, 0x8000},  // -(largest float32 subnormal) -> -2^-126 in bf16, -0 in fp16
    {0x33800000, 0x3380, 0x0001},  // 2^-24: fp16's smallest subnormal
    {0x33000000, 0x3300, 0x0000},  // 2^-25: fp16 tie at zero -> 0
    {0x33000001, 0x3300, 0x0001},  // just above 2^-25 -> the smallest subnormal
    {0x33C00000, 0x33C0, 0x0002},  // 3 2^-25: fp16 tie, odd kept part -> 2 2^-24
    {0x387FC000, 0x3880, 0x03FF},  // 2^-14 - 2^-24: fp16's largest subnormal
    {0x387FE000, 0x3880, 0x0400},  // 2^-14 - 2^-25: fp16 tie between the largest subnormal and 2^-14 -> 2^-14
    {0x38800000, 0x3880, 0x0400},  // 2^-14: fp16's smallest normal
};

// Float inputs for the casts: the known cases, then random bit patterns (every exponent, subnormals,
// infinities and NaNs among them) and random values in fp16's range.
std::vector<float> cast_inputs() {
  std::vector<float> v;
  for (const Known16& k : kKnown16) v.push_back(float_of(k.in));
  for (uint32_t nan : {0x7FC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu, 0xFFC00001u}) v.push_back(float_of(nan));
  std::mt19937 rng(81);
  for (int i = 0; i < 4000; ++i) v.push_back(float_of(static_cast<uint32_t>(rng())));
  std::uniform_int_distribution<uint32_t> fp16_range(0x33000000u, 0x47800000u);
  for (int i = 0; i < 4000; ++i) v.push_back(float_of(fp16_range(rng) | (i % 2 == 0 ? 0u : 0x80000000u)));
  return v;
}

TEST(Kernels, CastReferencesAgreeWithTheHandWorkedTable) {
  for (const Known16& k : kKnown16) {
    EXPECT_EQ(bf16_reference(float_of(k.in)), k.bf16) << std::hex << "bf16 of 0x" << k.in;
    EXPECT_EQ(fp16_reference(float_of(k.in)), k.fp16) << std::hex << "fp16 of 0x" << k.in;
  }
}

TEST(Kernels, CastFloatTo16RoundsToNearestEven) {
  using dl::kern::Format16;
  const std::vector<float> x = cast_inputs();
  const auto n = static_cast<int64_t>(x.size());
  for (const Format16 f : {Format16::kBf16, Format16::kFp16}) {
    const char* name = f == Format16::kBf16 ? "bf16" : "fp16";
    std::vector<uint16_t> want(x.size());
    for (size_t i = 0; i < x.size(); ++i)
      want[i] = std::isnan(x[i]) ? 0 : f == Format16::kBf16 ? bf16_reference(x[i]) : fp16_reference(x[i]);
    for (const LaunchShape& s : kAnyShapes) {
      Launcher l{s.block, s.max_grid};
      std::vector<uint16_t> got(x.size());
      for (size_t i = 0; i < x.size(); ++i) got[i] = static_cast<uint16_t>(~want[i]);  // never the answer
      dl::kern::run_float_to_16(l, f, x.data(), got.data(), n);
      for (size_t i = 0; i < x.size(); ++i) {
        const uint32_t in = bits_of(x[i]);
        if (std::isnan(x[i])) {
          ASSERT_TRUE(is_nan16(f, got[i])) << name << " of NaN 0x" << std::hex << in << " gave 0x" << got[i];
          ASSERT_EQ(got[i] >> 15, in >> 31) << name << ": the sign of NaN 0x" << std::hex << in;
        } else {
          ASSERT_EQ(got[i], want[i]) << name << " of 0x" << std::hex << in << " (" << std::dec << x[i] << "), element "
                                     << i << ", " << describe(s);
        }
      }
    }
  }
}

// Every one of the 65536 patterns of each format back to float32, exactly (NaN as a NaN with its sign).
TEST(Kernels, Cast16ToFloatIsExact) {
  using dl::kern::Format16;
  std::vector<uint16_t> h(65536);
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(i);
  for (const Format16 f : {Format16::kBf16, Format16::kFp16}) {
    const char* name = f == Format16::kBf16 ? "bf16" : "fp16";
    std::vector<float> want(h.size());
    for (size_t i = 0; i < h.size(); ++i) {
      if (f == Format16::kBf16) {
        // sign, 8-bit exponent, 7-bit mantissa: the value from its fields
        const int e = (h[i] >> 7) & 0xFF, m = h[i] & 0x7F;
        const double mag = e == 0xFF ? (m == 0 ? HUGE_VAL : std::nan(""))
                           : e == 0  ? std::ldexp(m, -133)
                                     : std::ldexp(128 + m, e - 134);
        want[i] = static_cast<float>((h[i] & 0x8000) != 0 ? -mag : mag);
      } else {
        _Float16 v;
        std::memcpy(&v, &h[i], sizeof v);
        want[i] = static_cast<float>(v);
      }
    }
    for (const LaunchShape& s : {kAnyShapes[0], kAnyShapes[3], kAnyShapes[4]}) {
      Launcher l{s.block, s.max_grid};
      std::vector<float> got(h.size());
      for (size_t i = 0; i < h.size(); ++i) got[i] = std::isnan(want[i]) ? 0.f : kNaNf;  // never the answer
      dl::kern::run_16_to_float(l, f, h.data(), got.data(), static_cast<int64_t>(h.size()));
      for (size_t i = 0; i < h.size(); ++i) {
        if (std::isnan(want[i])) {
          ASSERT_TRUE(std::isnan(got[i])) << name << " 0x" << std::hex << h[i] << " is a NaN";
          ASSERT_EQ(std::signbit(got[i]), std::signbit(want[i])) << name << " 0x" << std::hex << h[i];
        } else {
          ASSERT_EQ(bits_of(got[i]), bits_of(want[i]))
              << name << " 0x" << std::hex << h[i] << ": got " << got[i] << ", want " << want[i] << ", " << describe(s);
        }
      }
    }
  }
}

// The CPU backend's bf16 rounding (linear under bf16) is the kernel's helper: spot-check it as a float.
TEST(Kernels, RoundToBf16AsFloat) {
  for (const Known16& k : kKnown16)
    EXPECT_EQ(bits_of(dl::kern::round_to_bf16(float_of(k.in))), static_cast<uint32_t>(k.bf16) << 16)
        << std::hex << "0x" << k.in;
}

// ---- optimiser updates ----

TEST(Kernels, OptimiserUpdatesMatchCpu) {
  const int64_t n = 777;
  const std::vector<float> w0 = random_floats(n, 41), g = random_floats(n, 42), m0 = random_floats(n, 43, -0.1f, 0.1f),
                           v0 = random_floats(n, 44, 0.f, 0.2f);
  for (const LaunchShape& s : kAnyShapes) {
    Launcher l{s.block, s.max_grid};
    std::vector<float> w = w0, v = m0, wr = w0, vr = m0;
    dl::kern::run_sgdm(l, w.data(), g.data(), v.data(), n, 0.01f, 0.9f, 1e-4f);
    dl::cpu::sgdm_update(wr.data(), g.data(), vr.data(), n, 0.01f, 0.9f, 1e-4f);
    expect_near_all(w, wr, 1e-7, "sgdm w, " + describe(s));
    expect_near_all(v, vr, 1e-7, "sgdm v, " + describe(s));

    std::vector<float> m = m0, mr = m0;
    w = w0, v = v0, wr = w0, vr = v0;
    dl::kern::run_adam(l, w.data(), g.data(), m.data(), v.data(), n, 0.01f, 0.9f, 0.999f, 1e-8f, 1e-4f, int64_t{3});
    dl::cpu::adam_update(wr.data(), g.data(), mr.data(), vr.data(), n, 0.01f, 0.9f, 0.999f, 1e-8f, 1e-4f, int64_t{3});
    expect_near_all(w, wr, 1e-6, "adam w, " + describe(s));
    expect_near_all(m, mr, 1e-7, "adam m, " + describe(s));
    expect_near_all(v, vr, 1e-7, "adam v, " + describe(s));

    w = w0, v = v0, wr = w0, vr = v0;
    dl::kern::run_rmsprop(l, w.data(), g.data(), v.data(), n, 0.01f, 0.9f, 1e-8f, 0.f);
    dl::cpu::rmsprop_update(wr.data(), g.data(), vr.data(), n, 0.01f, 0.9f, 1e-8f, 0.f);
    expect_near_all(w, wr, 1e-6, "rmsprop w, " + describe(s));
    expect_near_all(v, vr, 1e-7, "rmsprop v, " + describe(s));
  }
}

// ---- bilinear resize, concat, batch norm (inference backward) ----

TEST(Kernels, BilinearResizeForwardBackwardMatchCpu) {
  struct Case {
    int64_t planes, h, w, oh, ow;
  };
  for (const Case& k : {Case{3, 7, 5, 16, 9}, Case{2, 9, 12, 4, 5}, Case{1, 8, 8, 64, 64}, Case{4, 6, 6, 6, 6},
                        Case{2, 45, 60, 180, 240}, Case{1, 1, 1, 3, 2}}) {
    const std::vector<float> x = random_floats(k.planes * k.h * k.w, 51),
                             dy = random_floats(k.planes * k.oh * k.ow, 52);
    std::vector<float> want_y(k.planes * k.oh * k.ow), want_dx(k.planes * k.h * k.w);
    dl::cpu::resize_bilinear_forward(x.data(), want_y.data(), k.planes, k.h, k.w, k.oh, k.ow);
    dl::cpu::resize_bilinear_backward(dy.data(), want_dx.data(), k.planes, k.h, k.w, k.oh, k.ow);
    for (const LaunchShape& s : kAnyShapes) {
      Launcher l{s.block, s.max_grid};
      std::vector<float> y(want_y.size(), kNaNf), dx(want_dx.size(), kNaNf);
      dl::kern::run_resize_bilinear_forward(l, x.data(), y.data(), k.planes, k.h, k.w, k.oh, k.ow);
      dl::kern::run_resize_bilinear_backward(l, dy.data(), dx.data(), k.planes, k.h, k.w, k.oh, k.ow);
      const std::string what = std::to_string(k.h) + "x" + std::to_string(k.w) + " -> " + std::to_string(k.oh) + "x" +
                               std::to_string(k.ow) + ", " + describe(s);
      expect_near_all(y, want_y, 1e-6, "forward " + what);
      expect_near_all(dx, want_dx, 2e-5, "backward " + what);
    }
  }
}

TEST(Kernels, ConcatAndSplitMatchCpu) {
  const int64_t n = 3, s = 13;
  const std::vector<int64_t> cs = {4, 1, 6};
  std::vector<std::vector<float>> xs;
  for (int k = 0; k < 3; ++k) xs.push_back(random_floats(n * cs[k] * s, 60 + k));
  const float* ptrs[3] = {xs[0].data(), xs[1].data(), xs[2].data()};
  std::vector<float> want(n * 11 * s);
  dl::cpu::concat_channels(ptrs, cs.data(), 3, n, s, want.data());
  for (const LaunchShape& sh : kAnyShapes) {
    Launcher l{sh.block, sh.max_grid};
    std::vector<float> y(want.size(), kNaNf);
    dl::kern::run_concat(l, ptrs, cs.data(), 3, n, s, y.data());
    expect_near_all(y, want, 0, "concat, " + describe(sh));
    std::vector<float> d0(xs[0].size(), kNaNf), d2(xs[2].size(), kNaNf);
    float* outs[3] = {d0.data(), nullptr, d2.data()};  // the middle part is not wanted
    dl::kern::run_split(l, y.data(), cs.data(), 3, n, s, outs);
    expect_near_all(d0, xs[0], 0, "split part 0, " + describe(sh));
    expect_near_all(d2, xs[2], 0, "split part 2, " + describe(sh));
  }
}

TEST(Kernels, BatchNormInferenceBackwardMatchesCpu) {
  const int64_t n = 3, c = 5, s = 37;
  const std::vector<float> x = random_floats(n * c * s, 71), dy = random_floats(n * c * s, 72),
                           gamma = random_floats(c, 73), mean = random_floats(c, 74),
                           var = random_floats(c, 75, 0.5f, 2.f);
  std::vector<float> want_dx(x.size()), want_dg(c), want_db(c);
  dl::cpu::batch_norm_backward_infer(x.data(), gamma.data(), dy.data(), mean.data(), var.data(), n, c, s, 1e-5,
                                     want_dx.data(), want_dg.data(), want_db.data());
  for (const LaunchShape& sh : kReductionShapes) {
    Launcher l{sh.block, sh.max_grid};
    std::vector<float> dx(x.size(), kNaNf), dg(c, kNaNf), db(c, kNaNf);
    dl::kern::run_batch_norm_backward_infer(l, x.data(), gamma.data(), dy.data(), mean.data(), var.data(), n, c, s,
                                            1e-5, dx.data(), dg.data(), db.data());
    expect_near_all(dx, want_dx, 1e-6, "dx, " + describe(sh));
    expect_near_all(dg, want_dg, 1e-5, "dgamma, " + describe(sh));
    expect_near_all(db, want_db, 1e-5, "dbeta, " + describe(sh));
  }
}

}  // namespace
