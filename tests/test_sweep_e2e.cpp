// End to end: dl-sweep's runner, report and fit probe driving the real train_mnist (build/bin) on a
// subset of MNIST (data/mnist, or generated digits when it was not fetched: tests/mnist_data.h). The
// memory the report shows must agree with what the kernel saw for the same process, and the probe must name a batch
// size that trains under the limit and one above it that does not. A configuration of two ranks runs
// as one data-parallel run under mpiexec (when libdl was built with MPI and mpiexec is on PATH).
#include <gtest/gtest.h>

#include <filesystem>

#include "dl/config.h"
#include "machine.h"
#include "mnist_data.h"
#include "probe.h"
#include "report.h"
#include "runner.h"
#include "units.h"

namespace fs = std::filesystem;
using namespace dl::sweep;

namespace {
using dl::testing::mnist_dir;
fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("dl_test_sweep_e2e_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
// A sweep of the real train_mnist on a subset small enough for a few seconds per configuration.
SweepOptions small_mnist_sweep(const fs::path& dir) {
  SweepOptions o;
  o.out_dir = dir.string();
  o.binary = std::string(DL_BIN_DIR) + "/train_mnist";
  o.extra_args = {"--data", mnist_dir(), "--train-subset", "2048", "--test-subset", "512"};
  o.log = [](const std::string&) {};
  return o;
}
}  // namespace

TEST(SweepE2E, TwoBatchSizesReportAndCurves) {
  const fs::path dir = fresh_dir("sweep");
  SweepOptions o = small_mnist_sweep(dir);
  o.grid.batch = {128, 1024};
  o.grid.epochs = {1};
  o.grid.threads = {2};
  const SweepSummary s = run_sweep(o);
  EXPECT_EQ(s.ran, 2);
  EXPECT_EQ(s.failed, 0);
  const Json rep = write_report({o.out_dir, "batch=1024", true});
  const auto& rows = rep.find("rows")->items();
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& r : rows) {
    EXPECT_EQ(r.string_at("status"), "ok") << r.dump();
    EXPECT_GT(r.find("metrics")->number_at("accuracy"), 0.2);
    EXPECT_GT(r.number_at("iterations"), 0);
    EXPECT_GT(r.number_at("allocator_peak_bytes"), 0);
    // The kernel's peak RSS of the child (wait4) and the child's own VmHWM at its end agree.
    EXPECT_NEAR(r.number_at("os_peak_rss_bytes") / r.number_at("child_peak_rss_bytes"), 1.0, 0.02) << r.dump();
    EXPECT_GT(r.number_at("os_peak_rss_bytes"), r.number_at("allocator_peak_bytes") * 0.5);
    EXPECT_TRUE(fs::exists(dir / r.string_at("run_dir") / "accuracy.svg"));
  }
  EXPECT_EQ(rows[0].number_at("iterations"), 16);  // 2048 / 128
  EXPECT_EQ(rows[1].number_at("relative_time"), 1.0);
  EXPECT_GT(rows[1].number_at("allocator_peak_bytes"), rows[0].number_at("allocator_peak_bytes"));
  EXPECT_TRUE(fs::exists(dir / "report.md"));
  EXPECT_TRUE(fs::exists(dir / "plots" / "time_vs_batch.svg"));
  // Run again: everything is recorded, nothing runs.
  EXPECT_EQ(run_sweep(o).ran, 0);
  fs::remove_all(dir);
}

TEST(SweepE2E, TwoRanksUnderMpiexec) {
  if (!DL_WITH_MPI || (find_on_path("mpiexec").empty() && !std::getenv("DL_SWEEP_MPIEXEC")))
    GTEST_SKIP() << "libdl without MPI, or no mpiexec on PATH";
  const fs::path dir = fresh_dir("ranks");
  SweepOptions o = small_mnist_sweep(dir);
  o.grid.batch = {256};
  o.grid.ranks = {2};
  o.grid.threads = {1};
  const SweepSummary s = run_sweep(o);
  EXPECT_EQ(s.ran, 1);
  const Json rep = write_report({o.out_dir, "ranks=2,batch=256", false});
  const Json& r = rep.find("rows")->items().at(0);
  ASSERT_EQ(r.string_at("status"), "ok") << r.dump();
  EXPECT_EQ(r.string_at("id"), "b256_e1_cpu_r2_t1_adam_lr0.01");
  EXPECT_NE(r.string_at("command").find(" -n 2 "), std::string::npos) << r.string_at("command");
  EXPECT_EQ(r.number_at("iterations"), 8);  // 2048 / 256: the batch is global, shared by the ranks
  EXPECT_EQ(r.number_at("threads_used"), 1);
  EXPECT_GT(r.find("metrics")->number_at("accuracy"), 0.2);
  EXPECT_NEAR(r.number_at("images_per_second_per_rank") * 2, r.number_at("images_per_second"),
              1e-6 * r.number_at("images_per_second"));
  fs::remove_all(dir);
}

TEST(SweepE2E, ProbeFindsTheLargestBatchUnderALimit) {
  const fs::path dir = fresh_dir("probe");
  ProbeOptions o;
  o.out_dir = dir.string();
  o.binary = std::string(DL_BIN_DIR) + "/train_mnist";
  o.memory_limit = parse_bytes("160MiB");
  o.start = 128;
  o.steps = 1;
  o.threads = 2;
  o.tolerance = 0.1;
  o.extra_args = {"--data", mnist_dir()};
  o.log = [](const std::string&) {};
  const ProbeResult r = run_probe(o);
  write_probe_report(o, r);
  ASSERT_GT(r.largest_fit, 0);
  ASSERT_GT(r.smallest_fail, r.largest_fit);
  EXPECT_LE(r.smallest_fail - r.largest_fit, r.largest_fit * 0.1 + 1);
  for (const auto& t : r.tries) {
    EXPECT_EQ(t.fit, t.batch <= r.largest_fit) << t.batch;
    if (t.fit) {
      EXPECT_LE(t.allocator_peak_bytes, static_cast<double>(o.memory_limit));
    } else {
      EXPECT_NE(t.error.find("out of memory"), std::string::npos) << t.error;
    }
  }
  // The estimate from batches 1..8 predicts the limit's batch size within a factor of 1.5.
  EXPECT_GT(r.per_element_bytes, 0);
  EXPECT_NEAR(static_cast<double>(r.predicted_largest) / static_cast<double>(r.largest_fit), 1.0, 0.5);
  EXPECT_TRUE(fs::exists(dir / "probe.md"));
  fs::remove_all(dir);
}
