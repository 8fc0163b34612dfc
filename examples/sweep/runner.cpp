// The sweep runner: grid expansion, command lines, results.jsonl and resuming.
#include "runner.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "dl/core/file_io.h"
#include "machine.h"
#include "process.h"

namespace dl::sweep {

namespace {
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
// The last non-empty line of a program's output: usually its error message.
std::string last_line(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  const size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}
std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", std::localtime(&t));
  return buf;
}
}  // namespace

std::string Config::key() const {
  std::string k = "program=" + program + " batch=" + std::to_string(batch) + " epochs=" + std::to_string(epochs) +
                  " device=" + device + (ranks != 1 ? " ranks=" + std::to_string(ranks) : "") +
                  " threads=" + std::to_string(threads) + " image=" + std::to_string(image_size) + " solver=" + solver +
                  " lr=" + num(learn_rate);
  for (const auto& a : extra_args) k += " " + a;
  return k;
}

std::string Config::id() const {
  std::string s = "b" + std::to_string(batch) + "_e" + std::to_string(epochs) + "_" + device +
                  (ranks != 1 ? "_r" + std::to_string(ranks) : "") + "_t" + std::to_string(threads) +
                  (image_size ? "_s" + std::to_string(image_size) : "") + "_" + solver + "_lr" + num(learn_rate);
  for (auto& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') ch = '-';
  return s;
}

Json Config::to_json() const {
  Json j = Json::object();
  j["program"] = program;
  j["batch"] = batch;
  j["epochs"] = epochs;
  j["device"] = device;
  j["ranks"] = ranks;
  j["threads"] = threads;
  j["image_size"] = image_size;
  j["solver"] = solver;
  j["learn_rate"] = learn_rate;
  Json extra = Json::array();
  for (const auto& a : extra_args) extra.push_back(a);
  j["extra_args"] = extra;
  return j;
}

Config Config::from_json(const Json& j) {
  Config c;
  c.program = j.string_at("program", c.program);
  c.batch = static_cast<int64_t>(j.number_at("batch", 0));
  c.epochs = static_cast<int>(j.number_at("epochs", 0));
  c.device = j.string_at("device", c.device);
  c.ranks = static_cast<int>(j.number_at("ranks", 1));  // results from before --ranks: one process
  c.threads = static_cast<int>(j.number_at("threads", 0));
  c.image_size = static_cast<int>(j.number_at("image_size", 0));
  c.solver = j.string_at("solver", c.solver);
  c.learn_rate = j.number_at("learn_rate", 0);
  if (const Json* e = j.find("extra_args"))
    for (const auto& a : e->items()) c.extra_args.push_back(a.string());
  return c;
}

std::vector<Config> Grid::expand(const std::string& program, const std::vector<std::string>& extra) const {
  std::vector<Config> out;
  for (const auto& dev : device)
    for (int r : ranks)
      for (int t : threads)
        for (int s : image_size)
          for (const auto& sol : solver)
            for (double lr : learn_rate)
              for (int e : epochs)
                for (int64_t b : batch) {
                  Config c;
                  c.program = program;
                  c.batch = b;
                  c.epochs = e;
                  c.device = dev;
                  c.ranks = r;
                  c.threads = t;
                  c.image_size = s;
                  c.solver = sol;
                  c.learn_rate = lr;
                  c.extra_args = extra;
                  out.push_back(c);
                }
  return out;
}

Launcher Launcher::find() {
  Launcher l;
  l.as_root = ::geteuid() == 0;
  const char* env = std::getenv("DL_SWEEP_MPIEXEC");
  if (env && *env) {
    const std::string given = env;
    l.path = given.find('/') == std::string::npos ? find_on_path(given) : given;
    DL_CHECK(!l.path.empty() && ::access(l.path.c_str(), X_OK) == 0, "dl-sweep: configurations of several ranks ",
             "need an MPI launcher, and DL_SWEEP_MPIEXEC=", given, " is not an executable file");
  } else {
    l.path = find_on_path("mpiexec");
    DL_CHECK(!l.path.empty(), "dl-sweep: configurations of several ranks need an MPI launcher: no mpiexec on PATH ",
             "(install OpenMPI, or set DL_SWEEP_MPIEXEC to its mpiexec)");
  }
  return l;
}

std::vector<std::string> command_for(const ProgramSpec& spec, const std::string& binary, const Config& c,
                                     const std::string& run_dir, const Launcher& launcher) {
  DL_CHECK(c.ranks >= 1, "dl-sweep: ranks must be at least 1, got ", c.ranks);
  std::vector<std::string> a;
  if (c.ranks > 1) {
    DL_CHECK(!launcher.path.empty(), "dl-sweep: ", c.ranks, " ranks need an MPI launcher, and none was given");
    a = {launcher.path, "-n", std::to_string(c.ranks)};
    if (launcher.as_root) a.push_back("--allow-run-as-root");
    a.push_back("--oversubscribe");
  }
  a.push_back(binary);
  auto add = [&](const std::string& flag, const std::string& value) {
    if (!flag.empty()) a.insert(a.end(), {flag, value});
  };
  add(spec.batch_flag, std::to_string(c.batch));
  add(spec.epochs_flag, std::to_string(c.epochs));
  add(spec.device_flag, c.device);
  if (c.threads > 0) add(spec.threads_flag, std::to_string(c.threads));
  add(spec.solver_flag, c.solver);
  add(spec.learn_rate_flag, num(c.learn_rate));
  if (c.image_size > 0) {
    bool accepted = spec.image_sizes.empty();
    for (int s : spec.image_sizes) accepted = accepted || s == c.image_size;
    DL_CHECK(accepted && !spec.image_size_flag.empty(), spec.name, " does not take image size ", c.image_size);
    add(spec.image_size_flag, std::to_string(c.image_size));
  }
  add(spec.report_flag, run_dir + "/report.json");
  add(spec.log_csv_flag, run_dir + "/log.csv");
  a.insert(a.end(), spec.quiet_flags.begin(), spec.quiet_flags.end());
  a.insert(a.end(), c.extra_args.begin(), c.extra_args.end());
  return a;
}

std::vector<Json> load_results(const std::string& path) {
  std::vector<Json> records;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Json j;
    try {
      j = Json::parse(line);
    } catch (const dl::Error&) {
      continue;  // cut short by a crash: that configuration runs again
    }
    const std::string key = j.string_at("key");
    if (key.empty()) continue;
    bool replaced = false;
    for (auto& r : records)
      if (r.string_at("key") == key) {
        r = j;
        replaced = true;
      }
    if (!replaced) records.push_back(j);
  }
  return records;
}

void append_result(const std::string& path, const Json& record) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  DL_CHECK(fd >= 0, path, ": cannot open for appending");
  std::string line = record.dump() + "\n";
  // A previous writer killed mid-line left no newline: start on a fresh line.
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size > 0) {
    char last = '\n';
    const int rfd = ::open(path.c_str(), O_RDONLY);
    if (rfd >= 0) {
      if (::pread(rfd, &last, 1, size - 1) != 1) last = '\n';
      ::close(rfd);
    }
    if (last != '\n') line = "\n" + line;
  }
  ::close(fd);
  dl::CheckedAppendFile out(path, /*truncate=*/false);  // all or nothing of the line, then fsync
  out.write(line);
  out.close();
}

SweepSummary run_sweep(const SweepOptions& o) {
  const ProgramSpec& spec = find_program(o.program);
  const std::string binary = o.binary.empty() ? executable_dir() + "/" + spec.binary : o.binary;
  DL_CHECK(std::filesystem::exists(binary), "dl-sweep: ", binary, " not found (build the target ", spec.binary,
           " or give --binary)");
  const std::vector<Config> configs = o.grid.expand(o.program, o.extra_args);
  // Found before anything runs, so that a missing launcher fails the sweep before it writes anything.
  const bool several_ranks = std::any_of(configs.begin(), configs.end(), [](const Config& c) { return c.ranks > 1; });
  const Launcher launcher = several_ranks ? Launcher::find() : Launcher{};
  auto log = o.log ? o.log : [](const std::string& m) { std::cout << m << std::endl; };
  std::filesystem::create_directories(o.out_dir + "/runs");
  const std::string results_path = o.out_dir + "/results.jsonl";
  if (!std::filesystem::exists(o.out_dir + "/machine.json")) {
    dl::write_file_atomically(o.out_dir + "/machine.json", describe_machine().dump(2) + '\n');
  }

  std::set<std::string> done;
  for (const auto& r : load_results(results_path))
    if (r.string_at("status") == "ok" || (r.string_at("status") == "failed" && !o.retry_failed))
      done.insert(r.string_at("key"));

  SweepSummary s;
  s.total = static_cast<int>(configs.size());
  int index = 0;
  for (const Config& c : configs) {
    ++index;
    const std::string tag = "[" + std::to_string(index) + "/" + std::to_string(configs.size()) + "] " + c.id();
    if (done.count(c.key())) {
      ++s.skipped;
      log(tag + ": already recorded, skipped");
      continue;
    }
    if (stop_requested()) {
      s.interrupted = true;
      break;
    }
    const std::string run_dir = o.out_dir + "/runs/" + c.id();
    std::filesystem::create_directories(run_dir);
    std::filesystem::remove(run_dir + "/report.json");
    const std::vector<std::string> argv = command_for(spec, binary, c, run_dir, launcher);
    std::string cmdline;
    for (const auto& a : argv) cmdline += (cmdline.empty() ? "" : " ") + a;
    log(tag + ": running " + cmdline);
    const std::string started = now_iso();
    const ChildResult cr = run_child(argv, run_dir + "/output.log", o.timeout_seconds);
    if (cr.interrupted) {
      s.interrupted = true;
      log(tag + ": interrupted; not recorded, it runs again when the sweep is resumed");
      break;
    }
    Json report;
    try {
      std::ifstream in(run_dir + "/report.json");
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (!text.empty()) report = Json::parse(text);
    } catch (const dl::Error&) {
    }
    // A program that did not join the launcher's ranks (built without MPI, another MPI's launcher)
    // runs as that many independent processes, each reporting one rank: not the configuration asked for.
    const double world = report.number_at("training.world_size", 1);
    const bool one_run = c.ranks == 1 || report.string_at("status") != "ok" || world == c.ranks;
    const bool ok = cr.ok() && report.string_at("status") == "ok" && one_run;
    Json rec = Json::object();
    rec["key"] = c.key();
    rec["id"] = c.id();
    rec["config"] = c.to_json();
    rec["status"] = ok ? "ok" : "failed";
    if (!ok) {
      std::string error = report.string_at("error");
      if (!one_run)
        error = "asked for " + std::to_string(c.ranks) + " ranks, the program reported a world of " + num(world) +
                " (was it built with MPI, and is the launcher of the same MPI?)";
      else if (error.empty())
        error = cr.describe() + ": " + last_line(cr.output_tail);
      else if (!cr.ok())
        error = cr.describe() + ": " + error;
      rec["error"] = error;
    }
    rec["exit_code"] = cr.exit_code;
    rec["signal"] = cr.signal;
    rec["started"] = started;
    rec["wall_seconds"] = cr.wall_seconds;
    rec["cpu_seconds"] = cr.cpu_seconds;
    rec["os_peak_rss_bytes"] = cr.max_rss_bytes;
    rec["peak_cpu_cores"] = cr.peak_cpu_cores;
    rec["command"] = cmdline;
    rec["run_dir"] = "runs/" + c.id();
    rec["report"] = report;
    append_result(results_path, rec);
    ++s.ran;
    if (!ok) ++s.failed;
    log(tag + (ok ? ": done in " + num(cr.wall_seconds) + " s" : ": FAILED (" + rec.string_at("error") + ")"));
  }
  return s;
}

}  // namespace dl::sweep
