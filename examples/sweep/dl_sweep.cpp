// dl-sweep: the seed's experiments in one command.
//
//   dl-sweep run    --out DIR --batch 128,1024,8192 --epochs 2 [--threads 2] [--ranks 1,2] [-- program flags]
//   dl-sweep report --out DIR [--reference batch=1024]
//   dl-sweep merge  --out PREFIX [--names A,B] DIR_A/report.json DIR_B/report.json
//   dl-sweep probe  --out DIR --memory-limit 512MiB [--start 64] [-- program flags]
//   dl-sweep programs
//
// Each configuration runs as a fresh process of the reference program (found next to dl-sweep), or
// with several ranks as one data-parallel run under mpiexec; results go to DIR/results.jsonl as they
// come, and running the same command again resumes.
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>

#include "dl/core/error.h"
#include "dl/core/parse.h"
#include "dl/train/program.h"
#include "probe.h"
#include "process.h"
#include "programs.h"
#include "report.h"
#include "runner.h"
#include "units.h"

namespace {

using namespace dl::sweep;

const char* kUsage = R"(Usage: dl-sweep COMMAND [options] [-- flags passed to the program]

Commands:
  run       run a grid of configurations, one fresh process each, then write the report
            --out DIR            sweep folder (results.jsonl, runs/, report.*, plots/)  [required]
            --program NAME       reference program (see `dl-sweep programs`; default train_mnist)
            --batch LIST         mini-batch sizes, e.g. 128,1024,8192 (default 1024)
            --epochs LIST        epochs (default 1)
            --device LIST        cpu or cuda (default cpu)
            --ranks LIST         processes of one data-parallel run (default 1); above 1 runs
                                 `mpiexec -n N [--allow-run-as-root] --oversubscribe PROGRAM`
                                 (OpenMPI's; DL_SWEEP_MPIEXEC in the environment names another)
            --threads LIST       CPU threads per rank, 0: all, shared out among ranks (default 0)
            --image-size LIST    input size (default: the program's own; MNIST: 28 only)
            --solver LIST        sgdm, adam, rmsprop (default adam)
            --lr LIST            initial learn rates (default 0.01)
            --timeout SECONDS    per configuration (default none)
            --retry-failed       run configurations recorded as failed again
            --reference REF      reference row of the report: run id, row number or conditions
                                 such as batch=1024 or ranks=1,batch=1024
            --binary PATH        the program's executable (default: next to dl-sweep)
  report    (re)write DIR/report.md, .csv, .json and the pictures from DIR/results.jsonl
            --out DIR, --reference REF, --no-plots
  merge     lay reports of several machines side by side: PREFIX.md and PREFIX.csv
            --out PREFIX, --names A,B,...  then the report.json files
  probe     largest batch size that trains under a memory limit (fresh process per try)
            --out DIR, --memory-limit SIZE (e.g. 512MiB) [required], --start N (64),
            --max-batch N (1048576), --steps N (2), --threads N, --image-size N,
            --tolerance F (0.05), --program NAME, --binary PATH
  programs  list the reference programs

Interrupt with Ctrl-C: the running configuration is stopped and not recorded; the same command
resumes. Results are appended to DIR/results.jsonl and fsynced one line at a time.
)";

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}
// A comma-separated list of numbers, each parsed strictly and within [lo, hi].
template <typename T>
std::vector<T> split_as(const std::string& s, const char* what, T lo, T hi) {
  std::vector<T> out;
  const std::string name = std::string("dl-sweep: --") + what;
  for (const auto& item : split(s)) {
    if constexpr (std::is_floating_point_v<T>)
      out.push_back(static_cast<T>(dl::parse_double(item, lo, hi, name)));
    else
      out.push_back(static_cast<T>(dl::parse_int(item, lo, hi, name)));
  }
  DL_CHECK(!out.empty(), "dl-sweep: --", what, " is empty");
  return out;
}

struct Args {
  std::map<std::string, std::string> options;
  std::vector<std::string> positional, passthrough;
  bool has(const std::string& k) const { return options.count(k) > 0; }
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = options.find(k);
    return it == options.end() ? def : it->second;
  }
};

int64_t int_option(const Args& a, const char* key, const char* def, int64_t lo, int64_t hi) {
  return dl::parse_int(a.get(key, def), lo, hi, std::string("dl-sweep: --") + key);
}

Args parse_args(int argc, char** argv, int first, const std::vector<std::string>& switches) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--") {
      for (++i; i < argc; ++i) a.passthrough.push_back(argv[i]);
      break;
    }
    if (s.rfind("--", 0) != 0) {
      a.positional.push_back(s);
      continue;
    }
    s = s.substr(2);
    const auto eq = s.find('=');
    if (eq != std::string::npos) {
      a.options[s.substr(0, eq)] = s.substr(eq + 1);
    } else if (std::find(switches.begin(), switches.end(), s) != switches.end()) {
      a.options[s] = "1";
    } else {
      DL_CHECK(i + 1 < argc, "dl-sweep: option --", s, " needs a value");
      a.options[s] = argv[++i];
    }
  }
  return a;
}

void check_known(const Args& a, const std::vector<std::string>& known, const std::string& cmd) {
  for (const auto& [k, v] : a.options)
    DL_CHECK(std::find(known.begin(), known.end(), k) != known.end(), "dl-sweep ", cmd, ": unknown option --", k,
             " (see dl-sweep --help)");
}

int cmd_run(const Args& a) {
  check_known(a,
              {"out", "program", "batch", "epochs", "device", "ranks", "threads", "image-size", "solver", "lr",
               "timeout", "retry-failed", "reference", "binary"},
              "run");
  SweepOptions o;
  o.out_dir = a.get("out");
  DL_CHECK(!o.out_dir.empty(), "dl-sweep run: give --out DIR");
  o.program = a.get("program", "train_mnist");
  o.binary = a.get("binary");
  if (a.has("batch")) o.grid.batch = split_as<int64_t>(a.get("batch"), "batch", 1, int64_t{1} << 31);
  if (a.has("epochs")) o.grid.epochs = split_as<int>(a.get("epochs"), "epochs", 1, 1000000);
  if (a.has("device")) o.grid.device = split(a.get("device"));
  if (a.has("ranks")) o.grid.ranks = split_as<int>(a.get("ranks"), "ranks", 1, 4096);
  if (a.has("threads")) o.grid.threads = split_as<int>(a.get("threads"), "threads", 0, 1024);
  if (a.has("image-size")) o.grid.image_size = split_as<int>(a.get("image-size"), "image-size", 1, 16384);
  if (a.has("solver")) o.grid.solver = split(a.get("solver"));
  if (a.has("lr")) o.grid.learn_rate = split_as<double>(a.get("lr"), "lr", 1e-12, 1e6);
  o.retry_failed = a.has("retry-failed");
  o.timeout_seconds = dl::parse_double(a.get("timeout", "0"), 0, 1e9, "dl-sweep: --timeout");
  o.extra_args = a.passthrough;
  install_stop_handlers();
  const SweepSummary s = run_sweep(o);
  std::printf("%d configurations: %d ran (%d failed), %d already recorded%s\n", s.total, s.ran, s.failed, s.skipped,
              s.interrupted ? "; interrupted: run the same command to resume" : "");
  const Json report = write_report({o.out_dir, a.get("reference"), true});
  std::printf("report: %s/report.md (also .csv, .json), pictures in %s/plots\n", o.out_dir.c_str(), o.out_dir.c_str());
  return s.interrupted ? 130 : 0;
}

int cmd_report(const Args& a) {
  check_known(a, {"out", "reference", "no-plots"}, "report");
  DL_CHECK(a.has("out"), "dl-sweep report: give --out DIR (a sweep folder)");
  const Json r = write_report({a.get("out"), a.get("reference"), !a.has("no-plots")});
  std::printf("%s/report.md: %zu rows, reference %s\n", a.get("out").c_str(), r.find("rows")->size(),
              r.string_at("reference").c_str());
  return 0;
}

int cmd_merge(const Args& a) {
  check_known(a, {"out", "names"}, "merge");
  DL_CHECK(a.has("out"), "dl-sweep merge: give --out PREFIX (writes PREFIX.md and PREFIX.csv)");
  merge_reports(a.positional, split(a.get("names")), a.get("out"));
  std::printf("%s.md and %s.csv: %zu machines\n", a.get("out").c_str(), a.get("out").c_str(), a.positional.size());
  return 0;
}

int cmd_probe(const Args& a) {
  check_known(
      a,
      {"out", "memory-limit", "start", "max-batch", "steps", "threads", "image-size", "tolerance", "program", "binary"},
      "probe");
  ProbeOptions o;
  o.out_dir = a.get("out");
  DL_CHECK(!o.out_dir.empty(), "dl-sweep probe: give --out DIR");
  DL_CHECK(a.has("memory-limit"), "dl-sweep probe: give --memory-limit SIZE (e.g. 512MiB)");
  o.memory_limit = dl::train::parse_memory_limit(a.get("memory-limit"));
  DL_CHECK(o.memory_limit > 0, "dl-sweep probe: --memory-limit must be a size, not 0");
  o.program = a.get("program", o.program);
  o.binary = a.get("binary");
  o.start = int_option(a, "start", "64", 1, int64_t{1} << 31);
  o.max_batch = int_option(a, "max-batch", std::to_string(o.max_batch).c_str(), 1, int64_t{1} << 31);
  o.steps = static_cast<int>(int_option(a, "steps", "2", 1, 1000000));
  o.threads = static_cast<int>(int_option(a, "threads", "0", 0, 1024));
  o.image_size = static_cast<int>(int_option(a, "image-size", "0", 0, 16384));
  o.tolerance = dl::parse_double(a.get("tolerance", "0.05"), 0, 1, "dl-sweep: --tolerance");
  DL_CHECK(o.start >= 1 && o.max_batch >= o.start && o.steps >= 1,
           "dl-sweep probe: expected 1 <= --start <= "
           "--max-batch and --steps >= 1");
  o.extra_args = a.passthrough;
  install_stop_handlers();
  const ProbeResult r = run_probe(o);
  write_probe_report(o, r);
  std::printf("largest batch size that trains under %s: %lld; smallest that does not: %s (%s/probe.md)\n",
              a.get("memory-limit").c_str(), static_cast<long long>(r.largest_fit),
              r.smallest_fail ? std::to_string(r.smallest_fail).c_str() : "none tried", o.out_dir.c_str());
  return stop_requested() ? 130 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd.empty() || cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::cout << kUsage;
      return cmd.empty() ? 2 : 0;
    }
    const Args a = parse_args(argc, argv, 2, {"retry-failed", "no-plots"});
    if (cmd == "run") return cmd_run(a);
    if (cmd == "report") return cmd_report(a);
    if (cmd == "merge") return cmd_merge(a);
    if (cmd == "probe") return cmd_probe(a);
    if (cmd == "programs") {
      for (const auto& p : all_programs()) std::printf("%s\t(binary %s)\n", p.name.c_str(), p.binary.c_str());
      return 0;
    }
    DL_THROW("dl-sweep: unknown command '", cmd, "' (run, report, merge, probe, programs; see --help)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dl-sweep: error: %s\n", dl::train::error_message(e).c_str());
    return 1;
  }
}
