// Child processes for the sweep and the fit probe.
#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "dl/core/error.h"

extern char** environ;

namespace dl::sweep {

namespace {
volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

using Clock = std::chrono::steady_clock;

// utime + stime of a running process, in seconds; -1 when it cannot be read.
double proc_cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {  // fields 14 and 15 (1-based) of proc(5)
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The same for a process and its living descendants (the ranks under an MPI launcher); -1 when the
// process itself cannot be read.
double tree_cpu_seconds(pid_t pid) {
  double total = proc_cpu_seconds(pid);
  if (total < 0) return -1;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream children(task.path() / "children");
    for (pid_t child; children >> child;) total += std::max(0.0, tree_cpu_seconds(child));
  }
  return total;
}

std::string tail_of_file(const std::string& path, size_t max_chars) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > max_chars) text = text.substr(text.size() - max_chars);
  return text;
}
}  // namespace

void request_stop() { g_stop = 1; }
bool stop_requested() { return g_stop != 0; }
void clear_stop() { g_stop = 0; }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string executable_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

std::string ChildResult::describe() const {
  if (interrupted) return "interrupted";
  if (timed_out) return "timed out after " + std::to_string(static_cast<int64_t>(wall_seconds)) + " s";
  if (signal != 0) return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  return "exit status " + std::to_string(exit_code);
}

ChildResult run_child(const std::vector<std::string>& argv, const std::string& log_path, double timeout_seconds) {
  DL_CHECK(!argv.empty(), "run_child: empty command");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, STDIN_FILENO);
  // The child starts with default signal handling (our SIGINT handler must not be inherited as
  // "ignored"), in our process group so that Ctrl-C reaches it too.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);

  pid_t pid = 0;
  const auto t0 = Clock::now();
  const int err = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  DL_CHECK(err == 0, "cannot start ", argv[0], ": ", std::strerror(err));

  ChildResult r;
  auto window_start = t0;
  double window_cpu = 0;
  int status = 0;
  rusage usage{};
  bool killed = false;
  while (true) {
    const pid_t done = wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) DL_THROW("wait4 on ", argv[0], ": ", std::strerror(errno));
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - t0).count();
    const double window = std::chrono::duration<double>(now - window_start).count();
    if (window >= 1.0) {
      const double cpu = tree_cpu_seconds(pid);
      if (cpu >= 0) {
        r.peak_cpu_cores = std::max(r.peak_cpu_cores, (cpu - window_cpu) / window);
        window_cpu = cpu;
      }
      window_start = now;
    }
    if (!killed && (stop_requested() || (timeout_seconds > 0 && elapsed > timeout_seconds))) {
      r.interrupted = stop_requested();
      r.timed_out = !r.interrupted;
      kill(pid, SIGTERM);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  r.wall_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                  1e-6 * static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  r.max_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  // Ctrl-C reaches the whole process group: the child may die of it before the loop above saw
  // the request. A run that did not finish cleanly while a stop was asked for is interrupted.
  if (stop_requested() && !(WIFEXITED(status) && r.exit_code == 0)) r.interrupted = true, r.timed_out = false;
  r.output_tail = tail_of_file(log_path, 2000);
  return r;
}

}  // namespace dl::sweep
