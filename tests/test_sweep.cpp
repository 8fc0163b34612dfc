// Unit tests of the sweep tools (examples/sweep) with a fake child program: JSON, sizes, the SVG
// writer, the report and merge, resuming an interrupted sweep, failures recorded, configurations of
// several ranks under a fake MPI launcher, the probe's search; and of the progress line and the
// allocator's limit that they rely on.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dl/core/allocator.h"
#include "dl/train/progress.h"
#include "json.h"
#include "probe.h"
#include "process.h"
#include "report.h"
#include "runner.h"
#include "svg.h"
#include "units.h"

namespace fs = std::filesystem;
using namespace dl::sweep;

namespace {
std::string read_all(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
int count_lines(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += !line.empty();
  return n;
}
fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("dl_test_sweep_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A stand-in for train_mnist: records its call, fails at batch 64 like an out-of-memory run,
// asks its parent to stop at batch 256 while the file "interrupt" exists, else writes a report
// (of a world of $FAKE_WORLD ranks when the fake launcher sets it).
fs::path write_fake_program(const fs::path& dir) {
  const fs::path p = dir / "fake_train.sh";
  std::ofstream(p) << R"SH(#!/bin/sh
dir=$(dirname "$0")
batch=0; report=""; log=""
while [ $# -gt 0 ]; do
  case "$1" in
    --mini-batch-size) batch=$2; shift ;;
    --report-json) report=$2; shift ;;
    --log-csv) log=$2; shift ;;
  esac
  shift
done
echo "$batch" >> "$dir/calls.log"
if [ "$batch" = 256 ] && [ -f "$dir/interrupt" ]; then kill -TERM $PPID; sleep 5; exit 1; fi
if [ "$batch" = 64 ]; then
  echo "train_mnist: error: out of memory: asked for 123 bytes" >&2
  printf '{"status": "failed", "error": "out of memory: asked for 123 bytes"}' > "$report"
  exit 1
fi
printf 'epoch,iteration,time_s,learn_rate,loss,accuracy,validation_loss,validation_accuracy\n1,1,0.1,0.01,2.3,0.1,2.2,0.2\n1,2,0.2,0.01,1.5,0.5,,\n' > "$log"
secs=$((batch / 16))
world=${FAKE_WORLD:-1}
printf '{"status": "ok", "config": {"threads": 2, "image_size": 28}, "test": {"accuracy": 0.9, "loss": 0.3},
 "training": {"seconds": %s, "iterations": 10, "images_per_second": 1000, "epoch_seconds": [1],
  "world_size": %s, "images_per_second_per_rank": %s},
 "memory": {"peak_rss_bytes": 1048576, "allocator_peak_bytes": %s}}' "$secs" "$world" "$((1000 / world))" \
  "$((batch * 1024))" > "$report"
)SH";
  fs::permissions(p, fs::perms::owner_all);
  return p;
}

// A stand-in for mpiexec: records its arguments, then runs the program once as a world of
// `-n` ranks (or of $FAKE_LAUNCHER_WORLD, to play a program that does not join the ranks).
fs::path write_fake_launcher(const fs::path& dir) {
  const fs::path p = dir / "fake_mpiexec.sh";
  std::ofstream(p) << R"SH(#!/bin/sh
printf '%s\n' "$*" >> "$(dirname "$0")/launcher.log"
[ "$1" = -n ] || exit 2
world=${FAKE_LAUNCHER_WORLD:-$2}
shift 2
while [ "${1#--}" != "$1" ]; do shift; done
FAKE_WORLD=$world exec "$@"
)SH";
  fs::permissions(p, fs::perms::owner_all);
  return p;
}

// Sets an environment variable for the scope, putting back what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { had_ ? ::setenv(name_, old_.c_str(), 1) : ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};
}  // namespace

TEST(SweepJson, RoundTripAndErrors) {
  Json j = Json::object();
  j["a"] = 1.5;
  j["s"] = "x \"q\"\n";
  j["n"] = std::nan("");
  j["arr"].push_back(1);
  j["arr"].push_back(true);
  const Json back = Json::parse(j.dump());
  EXPECT_EQ(back.number_at("a"), 1.5);
  EXPECT_EQ(back.string_at("s"), "x \"q\"\n");
  EXPECT_TRUE(back.find("n")->is_null());
  EXPECT_EQ(back.find("arr")->size(), 2u);
  EXPECT_EQ(Json::parse(j.dump(2)).dump(), j.dump());
  EXPECT_THROW(Json::parse("{\"a\": 1"), dl::Error);
  EXPECT_THROW(Json::parse("{\"a\": 1} x"), dl::Error);
  EXPECT_EQ(Json::parse("{\"t\": {\"u\": 3}}").number_at("t.u"), 3);
}

TEST(SweepUnits, ParseBytes) {
  EXPECT_EQ(parse_bytes("123"), 123);
  EXPECT_EQ(parse_bytes("512MiB"), 512ll << 20);
  EXPECT_EQ(parse_bytes("2G"), 2ll << 30);
  EXPECT_EQ(parse_bytes("1.5k"), 1536);
  EXPECT_EQ(parse_bytes("1MB"), 1000000);
  EXPECT_THROW(parse_bytes("lots"), dl::Error);
  EXPECT_THROW(parse_bytes("5 parsecs"), dl::Error);
}

TEST(SweepSvg, DrawsSeriesAxesAndEscapes) {
  LineChart c{"Loss <train & val>", "iteration", "loss", {}};
  c.series = {{"training", {1, 2, 3}, {2.0, 1.0, 0.5}},
              {"validation", {1, 2, 3}, {2.2, std::nan(""), 0.7}, true, true}};
  const std::string svg = render_svg(c);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("Loss &lt;train &amp; val&gt;"), std::string::npos);
  size_t paths = 0;
  for (size_t p = svg.find("<path"); p != std::string::npos; p = svg.find("<path", p + 1)) ++paths;
  EXPECT_EQ(paths, 2u);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '<') - std::count(svg.begin(), svg.end(), '>'), 0);
  EXPECT_NE(render_svg(LineChart{"empty"}).find("no data"), std::string::npos);
  LineChart b{"log", "batch", "s", {{"t", {128, 1024, 8192}, {1, 2, 3}, true}}};
  b.log2_x = true;
  const std::string bs = render_svg(b);
  for (const char* tick : {">128<", ">1024<", ">8192<", ">512<"}) EXPECT_NE(bs.find(tick), std::string::npos) << tick;
  const auto t = nice_ticks(0, 1956, 5);
  EXPECT_EQ(t.front(), 0);
  EXPECT_EQ(t[1] - t[0], 500);
}

TEST(SweepProgress, PlainLinesPerEpochAndInPlaceRedraws) {
  std::ostringstream plain;
  dl::train::ProgressLine p(&plain, dl::train::ProgressMode::kPlain);
  dl::train::ProgressState s{1, 4, 10, 40, 10.0, 10, 0.5, std::nan("")};
  p.update(s, false);
  EXPECT_EQ(plain.str(), "");
  p.update(s, true);
  EXPECT_EQ(plain.str(), "epoch 1/4 | iteration 10/40 | 00:00:10 elapsed | ETA 00:00:30 | loss 0.5000\n");
  std::ostringstream tty;
  dl::train::ProgressLine q(&tty, dl::train::ProgressMode::kInPlace);
  q.update(s, false);
  EXPECT_EQ(tty.str().rfind("\repoch 1/4", 0), 0u);
  q.clear();
  q.finish();  // nothing visible after clear: no newline
  EXPECT_EQ(tty.str().find('\n'), std::string::npos);
  q.redraw();
  q.finish();
  EXPECT_EQ(tty.str().back(), '\n');
  std::ostringstream auto_out;  // not std::cout: plain
  EXPECT_FALSE(dl::train::ProgressLine(&auto_out, dl::train::ProgressMode::kAuto).in_place());
  EXPECT_THROW(dl::train::parse_progress_mode("sometimes"), dl::Error);
}

TEST(SweepAllocatorLimit, ThrowsOverTheLimitAndEmptiesTheCacheFirst) {
  auto& a = dl::CpuAllocator::instance();
  const int64_t in_use = a.stats().current_bytes;
  a.set_limit(in_use + (4 << 20));
  void* p = a.allocate(2 << 20);
  a.release(p, 2 << 20);  // cached
  void* q = nullptr;
  EXPECT_NO_THROW(q = a.allocate(3 << 20));  // needs the cached 2 MiB given back first
  try {
    a.allocate(8 << 20);
    ADD_FAILURE() << "expected out of memory";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of memory"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("limit"), std::string::npos) << e.what();
  }
  a.release(q, 3 << 20);
  a.set_limit(0);
  EXPECT_EQ(a.limit(), 0);
  EXPECT_THROW(a.set_limit(-1), dl::Error);
}

TEST(SweepProbe, GrowsThenBisects) {
  std::vector<ProbeTry> tries;
  const int64_t capacity = 1000;
  for (int64_t b; (b = next_probe_batch(tries, 64, 1 << 20, 0.05)) > 0;) {
    ASSERT_LT(tries.size(), 40u);
    tries.push_back({.batch = b, .fit = b <= capacity});
  }
  int64_t fit = 0, fail = 1 << 30;
  for (const auto& t : tries) (t.fit ? fit = std::max(fit, t.batch) : fail = std::min(fail, t.batch));
  EXPECT_LE(fit, capacity);
  EXPECT_GT(fail, capacity);
  EXPECT_LE(fail - fit, 1000 * 0.05 + 1);
  EXPECT_EQ(tries[0].batch, 64);
  EXPECT_EQ(tries[4].batch, 1024);  // 64, 128, 256, 512, 1024 (fails), then bisects
  // Even the start fails: shrink to 1.
  tries.clear();
  for (int64_t b; (b = next_probe_batch(tries, 64, 1 << 20, 0.05)) > 0;) tries.push_back({.batch = b, .fit = false});
  EXPECT_EQ(tries.back().batch, 1);
}

TEST(SweepRunner, RecordsFailuresResumesAfterInterruptAndReports) {
  const fs::path dir = fresh_dir("runner");
  const fs::path fake = write_fake_program(dir);
  SweepOptions o;
  o.out_dir = (dir / "out").string();
  o.binary = fake.string();
  o.grid.batch = {16, 32, 64};
  o.grid.threads = {2};
  o.log = [](const std::string&) {};
  SweepSummary s = run_sweep(o);
  EXPECT_EQ(s.ran, 3);
  EXPECT_EQ(s.failed, 1);
  const std::string results = o.out_dir + "/results.jsonl";
  EXPECT_EQ(count_lines(results), 3);
  const auto records = load_results(results);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[2].string_at("status"), "failed");
  EXPECT_NE(records[2].string_at("error").find("out of memory"), std::string::npos) << records[2].dump();

  // A crash in the middle of writing a line, then a sweep that grows and is interrupted at 256.
  std::ofstream(results, std::ios::app) << "{\"key\": \"program=train_mnist batch=12";
  std::ofstream(dir / "interrupt") << "";
  o.grid.batch = {16, 32, 64, 128, 256, 512};
  ::signal(SIGTERM, SIG_DFL);
  install_stop_handlers();
  s = run_sweep(o);
  EXPECT_TRUE(s.interrupted);
  EXPECT_EQ(s.skipped, 3);  // 16, 32 and the failed 64
  EXPECT_EQ(s.ran, 1);      // 128; 256 interrupted and not recorded
  clear_stop();
  ::signal(SIGTERM, SIG_DFL);
  fs::remove(dir / "interrupt");
  s = run_sweep(o);
  EXPECT_FALSE(s.interrupted);
  EXPECT_EQ(s.ran, 2);  // 256 again, then 512
  EXPECT_EQ(read_all((dir / "calls.log").string()), "16\n32\n64\n128\n256\n256\n512\n");
  const auto all = load_results(results);
  ASSERT_EQ(all.size(), 6u);  // the cut line is ignored, every configuration once
  for (const auto& r : all) EXPECT_FALSE(r.string_at("key").empty());

  // The report: reference batch=32 (2 s), failures with their error, curves and sweep pictures.
  const Json rep = write_report({o.out_dir, "batch=32", true});
  const auto& rows = rep.find("rows")->items();
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[1].number_at("relative_time"), 1.0);
  EXPECT_EQ(rows[3].number_at("relative_time"), 4.0);  // 128: 8 s / 2 s
  EXPECT_NEAR(rows[0].number_at("util_mean"), rows[0].number_at("util_mean"), 0);
  const std::string md = read_all(o.out_dir + "/report.md");
  EXPECT_NE(md.find("| 32 | 1 | cpu | 1 | 2 | 28 | adam | 0.01 | ok | 90.0% | 0.3000 | 00:00:02 | 10 | 1000 | 1000 | "
                    "1.00 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("failed [1]"), std::string::npos);
  EXPECT_NE(md.find("[1] exit status 1: out of memory"), std::string::npos);
  EXPECT_NE(md.find("GPU: none"), std::string::npos);
  EXPECT_EQ(count_lines(o.out_dir + "/report.csv"), 7);
  EXPECT_TRUE(fs::exists(o.out_dir + "/plots/memory_vs_batch.svg"));
  EXPECT_TRUE(fs::exists(o.out_dir + "/" + rows[0].string_at("run_dir") + "/loss.svg"));

  // Two machines side by side.
  merge_reports({o.out_dir + "/report.json", o.out_dir + "/report.json"}, {"ws", "server"}, (dir / "merged").string());
  const std::string merged = read_all((dir / "merged.md").string());
  EXPECT_NE(merged.find("ws: time"), std::string::npos);
  EXPECT_NE(merged.find("server: time / ref"), std::string::npos);
  EXPECT_EQ(count_lines((dir / "merged.csv").string()), 13);
  fs::remove_all(dir);
}

TEST(SweepRunner, ImageSizeTheProgramDoesNotTakeIsAnError) {
  Config c;
  c.image_size = 32;
  EXPECT_THROW(command_for(find_program("train_mnist"), "/bin/true", c, "/tmp"), dl::Error);
  EXPECT_THROW(find_program("no_such_program"), dl::Error);
}

TEST(SweepRanks, CommandLineRunIdAndKey) {
  const ProgramSpec& mnist = find_program("train_mnist");
  Config c;
  c.threads = 1;
  const auto one = command_for(mnist, "/b/train_mnist", c, "/r");
  // One rank: the program alone, whatever launcher is at hand, and the names of before --ranks.
  EXPECT_EQ(command_for(mnist, "/b/train_mnist", c, "/r", {"/usr/bin/mpiexec", true}), one);
  EXPECT_EQ(one.front(), "/b/train_mnist");
  EXPECT_EQ(c.id(), "b1024_e1_cpu_t1_adam_lr0.01");
  EXPECT_EQ(c.key().find("ranks"), std::string::npos) << c.key();

  c.ranks = 2;
  auto two = command_for(mnist, "/b/train_mnist", c, "/r", {"/opt/mpi/bin/mpiexec", true});
  const std::vector<std::string> head{"/opt/mpi/bin/mpiexec", "-n", "2", "--allow-run-as-root", "--oversubscribe"};
  ASSERT_GT(two.size(), head.size());
  EXPECT_EQ(std::vector<std::string>(two.begin(), two.begin() + 5), head);
  EXPECT_EQ(std::vector<std::string>(two.begin() + 5, two.end()), one);  // --threads 1 goes to every rank
  two = command_for(mnist, "/b/train_mnist", c, "/r", {"/opt/mpi/bin/mpiexec", false});
  EXPECT_EQ(std::find(two.begin(), two.end(), "--allow-run-as-root"), two.end());
  EXPECT_EQ(two[3], "--oversubscribe");
  EXPECT_THROW(command_for(mnist, "/b/train_mnist", c, "/r"), dl::Error);  // no launcher

  EXPECT_EQ(c.id(), "b1024_e1_cpu_r2_t1_adam_lr0.01");
  EXPECT_NE(c.key().find(" ranks=2 "), std::string::npos) << c.key();
  EXPECT_EQ(Config::from_json(c.to_json()).key(), c.key());
  Json old = c.to_json();  // a results.jsonl line from before --ranks
  old["ranks"] = Json();
  EXPECT_EQ(Config::from_json(old).ranks, 1);

  Grid g;
  g.batch = {16, 32};
  g.ranks = {1, 2};
  const auto configs = g.expand("train_mnist", {});
  ASSERT_EQ(configs.size(), 4u);
  EXPECT_EQ(configs[1].ranks, 1);
  EXPECT_EQ(configs[2].ranks, 2);
  EXPECT_EQ(configs[2].batch, 16);
}

TEST(SweepRanks, MissingLauncherIsAClearErrorBeforeAnythingRuns) {
  const fs::path dir = fresh_dir("no_launcher");
  SweepOptions o;
  o.out_dir = (dir / "out").string();
  o.binary = write_fake_program(dir).string();
  o.grid.batch = {16};
  o.grid.ranks = {1, 2};
  o.log = [](const std::string&) {};
  auto message = [&] {
    try {
      run_sweep(o);
    } catch (const dl::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  {
    const ScopedEnv env("DL_SWEEP_MPIEXEC", (dir / "missing" / "mpiexec").string());
    const std::string m = message();
    EXPECT_NE(m.find("DL_SWEEP_MPIEXEC=" + (dir / "missing" / "mpiexec").string()), std::string::npos) << m;
    EXPECT_NE(m.find("MPI launcher"), std::string::npos) << m;
  }
  {
    const ScopedEnv env("DL_SWEEP_MPIEXEC", "");
    const ScopedEnv path("PATH", (dir / "missing").string());
    const std::string m = message();
    EXPECT_NE(m.find("no mpiexec on PATH"), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(dir / "calls.log"));  // not even the one-rank configuration ran
  EXPECT_FALSE(fs::exists(o.out_dir));          // nor was the sweep folder made
  o.grid.ranks = {1};                           // one rank needs no launcher
  const ScopedEnv env("DL_SWEEP_MPIEXEC", (dir / "missing" / "mpiexec").string());
  EXPECT_EQ(run_sweep(o).ran, 1);
  fs::remove_all(dir);
}

TEST(SweepRanks, RunsUnderTheLauncherResumesAndReportsPerRank) {
  const fs::path dir = fresh_dir("ranks");
  const ScopedEnv env("DL_SWEEP_MPIEXEC", write_fake_launcher(dir).string());
  SweepOptions o;
  o.out_dir = (dir / "out").string();
  o.binary = write_fake_program(dir).string();
  o.grid.batch = {16, 32};
  o.grid.threads = {2};
  o.log = [](const std::string&) {};
  EXPECT_EQ(run_sweep(o).ran, 2);
  EXPECT_FALSE(fs::exists(dir / "launcher.log"));  // one rank: no launcher
  o.grid.ranks = {1, 2};
  const SweepSummary s = run_sweep(o);
  EXPECT_EQ(s.skipped, 2);  // the one-rank runs resume as recorded
  EXPECT_EQ(s.ran, 2);
  EXPECT_EQ(s.failed, 0);
  const std::string root = ::geteuid() == 0 ? "--allow-run-as-root " : "";
  std::istringstream launched(read_all((dir / "launcher.log").string()));
  for (const char* batch : {"16", "32"}) {
    std::string line;
    ASSERT_TRUE(std::getline(launched, line));
    const std::string head = "-n 2 " + root + "--oversubscribe " + o.binary + " --mini-batch-size " + batch + " ";
    EXPECT_EQ(line.rfind(head, 0), 0u) << line;
    EXPECT_NE(line.find(" --threads 2 "), std::string::npos) << line;  // per rank
    const std::string run_dir = o.out_dir + "/runs/b" + batch + "_e1_cpu_r2_t2_adam_lr0.01";
    EXPECT_NE(line.find(" --report-json " + run_dir + "/report.json "), std::string::npos) << line;
  }
  EXPECT_EQ(load_results(o.out_dir + "/results.jsonl")
                .back()
                .string_at("command")
                .rfind(std::string(std::getenv("DL_SWEEP_MPIEXEC")) + " -n 2 ", 0),
            0u);

  const Json rep = write_report({o.out_dir, "ranks=2,batch=32", false});
  EXPECT_EQ(rep.string_at("reference"), "b32_e1_cpu_r2_t2_adam_lr0.01");
  const auto& rows = rep.find("rows")->items();
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[3].number_at("ranks"), 2);
  EXPECT_EQ(rows[3].number_at("images_per_second"), 1000);
  EXPECT_EQ(rows[3].number_at("images_per_second_per_rank"), 500);
  EXPECT_EQ(rows[1].number_at("images_per_second_per_rank"), 1000);
  EXPECT_EQ(rows[1].number_at("relative_time"), 1.0);  // same time as the reference
  const std::string md = read_all(o.out_dir + "/report.md");
  EXPECT_NE(md.find("| device | ranks | threads per rank |"), std::string::npos) << md;
  EXPECT_NE(md.find("| images/s | images/s per rank |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 32 | 1 | cpu | 2 | 2 | 28 | adam | 0.01 | ok | 90.0% | 0.3000 | 00:00:02 | 10 | 1000 | 500 | "
                    "1.00 |"),
            std::string::npos)
      << md;
  const std::string csv = read_all(o.out_dir + "/report.csv");
  EXPECT_NE(csv.find(",device,ranks,threads,"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",images_per_second,images_per_second_per_rank,"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",b16_e1_cpu_r2_t2_adam_lr0.01,train_mnist,16,1,cpu,2,2,"), std::string::npos) << csv;
  EXPECT_THROW(build_report(o.out_dir, "ranks=3"), dl::Error);  // no such row
  EXPECT_THROW(build_report(o.out_dir, "rank=2"), dl::Error);   // no such column

  // Merged, the one- and two-rank rows of a batch size stay apart.
  merge_reports({o.out_dir + "/report.json"}, {"ws"}, (dir / "merged").string());
  EXPECT_EQ(count_lines((dir / "merged.csv").string()), 5);

  // A program that does not join the launcher's ranks reports a world of one: failed, and said why.
  o.grid.batch = {64 + 1};
  const ScopedEnv lone("FAKE_LAUNCHER_WORLD", "1");
  EXPECT_EQ(run_sweep(o).failed, 1);
  const auto records = load_results(o.out_dir + "/results.jsonl");
  EXPECT_NE(records.back().string_at("error").find("asked for 2 ranks, the program reported a world of 1"),
            std::string::npos)
      << records.back().dump();
  fs::remove_all(dir);
}
