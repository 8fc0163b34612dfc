// The sweep runner: a grid of configurations, each run as a fresh process of a reference program;
// one JSON line per finished configuration appended (and fsynced) to <out>/results.jsonl as it
// comes. Run again with the same folder and it resumes: configurations already recorded (finished
// or failed) are skipped, one that was interrupted mid-run has no line and is run again.
// A configuration of several ranks runs as one data-parallel run under an MPI launcher (Launcher).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "json.h"
#include "programs.h"

namespace dl::sweep {

struct Config {
  std::string program = "train_mnist";
  int64_t batch = 1024;
  int epochs = 1;
  std::string device = "cpu";
  int ranks = 1;       // processes of one data-parallel run; above 1 under the MPI launcher
  int threads = 0;     // per rank; 0: the program's default (all cores, shared out among ranks)
  int image_size = 0;  // 0: the program's own
  std::string solver = "adam";
  double learn_rate = 0.01;
  std::vector<std::string> extra_args;  // passed through to the program

  // Identifies the configuration in results.jsonl: every field, extra arguments included (the
  // ranks only when above 1, so that the keys of sweeps before --ranks still match).
  std::string key() const;
  // A short name for its folder and plots: "b1024_e2_cpu_t2_adam_lr0.01", "b1024_e2_cpu_r2_t2_adam_lr0.01".
  std::string id() const;
  Json to_json() const;
  static Config from_json(const Json& j);
};

struct Grid {
  std::vector<int64_t> batch{1024};
  std::vector<int> epochs{1};
  std::vector<std::string> device{"cpu"};
  std::vector<int> ranks{1};
  std::vector<int> threads{0};
  std::vector<int> image_size{0};
  std::vector<std::string> solver{"adam"};
  std::vector<double> learn_rate{0.01};
  // Every combination; the batch size varies fastest.
  std::vector<Config> expand(const std::string& program, const std::vector<std::string>& extra) const;
};

struct SweepOptions {
  std::string out_dir;
  std::string program = "train_mnist";
  std::string binary;  // the program's executable (default: next to dl-sweep)
  Grid grid;
  std::vector<std::string> extra_args;
  bool retry_failed = false;                    // run configurations recorded as failed again
  double timeout_seconds = 0;                   // per configuration (0: none)
  std::function<void(const std::string&)> log;  // progress messages (default: stdout)
};

struct SweepSummary {
  int total = 0, skipped = 0, ran = 0, failed = 0;
  bool interrupted = false;
};

// The MPI launcher of configurations with several ranks. OpenMPI's flags: the sweep runs on one
// machine, where OpenMPI counts physical cores as slots, so --oversubscribe lets a grid of ranks run
// whatever the cores; root must ask with --allow-run-as-root.
struct Launcher {
  std::string path;      // the launcher's executable; empty: none (ranks above 1 cannot run)
  bool as_root = false;  // add --allow-run-as-root

  // The environment's DL_SWEEP_MPIEXEC (a path, or a name looked up on PATH), else mpiexec on PATH;
  // as_root when the effective user is root. Throws dl::Error naming what is missing.
  static Launcher find();
};

// The command line of one configuration: `binary` and its flags, or for ranks above 1 the
// launcher's `PATH -n N [--allow-run-as-root] --oversubscribe binary flags` (throws dl::Error when
// `launcher` has no path).
std::vector<std::string> command_for(const ProgramSpec& spec, const std::string& binary, const Config& c,
                                     const std::string& run_dir, const Launcher& launcher = {});

// The records of results.jsonl, the last one per key; lines that do not parse (a line cut short
// by a crash) are skipped.
std::vector<Json> load_results(const std::string& path);
// Appends one line and fsyncs it (a missing newline at the end of the file is repaired first).
void append_result(const std::string& path, const Json& record);

SweepSummary run_sweep(const SweepOptions& o);

}  // namespace dl::sweep
