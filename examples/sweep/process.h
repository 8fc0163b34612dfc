// Runs one configuration as a fresh process: posix_spawn, stdout and stderr into a log file, the
// CPU time of the child and its descendants (an MPI launcher's ranks) sampled from /proc while it
// runs (for the peak utilisation), and what the kernel says about it when it ends (wait4: CPU time
// and peak resident set, ru_maxrss, its descendants' included once it has waited for them).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dl::sweep {

struct ChildResult {
  int exit_code = -1;         // the exit status, -1 when killed by a signal
  int signal = 0;             // the signal that ended it, 0 if none
  bool timed_out = false;     // killed after the time limit
  bool interrupted = false;   // killed because a stop was requested (SIGINT/SIGTERM to dl-sweep)
  double wall_seconds = 0;    // from spawn to exit
  double cpu_seconds = 0;     // user + system of the child, its threads and descendants (wait4)
  int64_t max_rss_bytes = 0;  // the kernel's peak resident set of the child or its largest descendant
  double peak_cpu_cores = 0;  // the largest CPU time per wall second over 1-second windows
  std::string output_tail;    // the last lines of its stdout + stderr
  bool ok() const { return exit_code == 0 && !timed_out && !interrupted; }
  std::string describe() const;  // "exit status 1", "killed by signal 9 (Killed)", "timed out after ..."
};

// Runs argv[0] (a path) with argv, output appended to log_path. timeout_seconds <= 0: no limit.
// Throws dl::Error when the program cannot be started.
ChildResult run_child(const std::vector<std::string>& argv, const std::string& log_path, double timeout_seconds = 0);

// Asked from a signal handler: the running child is terminated and run_child returns interrupted.
void request_stop();
bool stop_requested();
void clear_stop();  // for tests that interrupt a sweep and then resume it in one process
// Installs SIGINT and SIGTERM handlers that call request_stop().
void install_stop_handlers();

// The folder of the running executable (/proc/self/exe), where the reference programs are built.
std::string executable_dir();

}  // namespace dl::sweep
