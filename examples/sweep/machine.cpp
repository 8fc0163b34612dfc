// Reads what the machine is from /proc and from the CUDA toolkit's files.
#include "machine.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "dl/config.h"

namespace dl::sweep {

namespace {
std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The output of a command, empty when it is not installed or fails.
std::string command_output(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  return pclose(p) == 0 ? trim(out) : "";
}

}  // namespace

std::string find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':'))
    if (!dir.empty() && access((dir + "/" + program).c_str(), X_OK) == 0) return dir + "/" + program;
  return "";
}

namespace {
std::string cuda_version() {
  for (const char* root : {"/usr/local/cuda", "/usr/lib/cuda"}) {
    const std::string json = read_file(std::string(root) + "/version.json");
    std::smatch m;
    if (std::regex_search(json, m, std::regex("\"cuda\"\\s*:\\s*\\{[^}]*\"version\"\\s*:\\s*\"([0-9.]+)\"")))
      return m[1];
    const std::string txt = read_file(std::string(root) + "/version.txt");
    if (std::regex_search(txt, m, std::regex("([0-9]+\\.[0-9]+(\\.[0-9]+)?)"))) return m[1];
  }
  return "";
}

std::string cudnn_version() {
  for (const char* h : {"/usr/include/cudnn_version.h", "/usr/local/cuda/include/cudnn_version.h",
                        "/usr/include/x86_64-linux-gnu/cudnn_version_v9.h"}) {
    const std::string text = read_file(h);
    std::smatch a, b, c;
    if (std::regex_search(text, a, std::regex("#define CUDNN_MAJOR\\s+([0-9]+)")) &&
        std::regex_search(text, b, std::regex("#define CUDNN_MINOR\\s+([0-9]+)")) &&
        std::regex_search(text, c, std::regex("#define CUDNN_PATCHLEVEL\\s+([0-9]+)")))
      return std::string(a[1]) + "." + std::string(b[1]) + "." + std::string(c[1]);
  }
  return "";
}
}  // namespace

Json describe_machine() {
  Json m = Json::object();
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  m["hostname"] = std::string(host);
  utsname u{};
  if (uname(&u) == 0) m["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.machine;

  std::istringstream cpuinfo(read_file("/proc/cpuinfo"));
  std::string line, model;
  int logical = 0;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("processor", 0) == 0) ++logical;
    if (model.empty() && line.rfind("model name", 0) == 0) model = trim(line.substr(line.find(':') + 1));
  }
  m["cpu_model"] = model;
  m["cpu_logical_cores"] = logical;
  m["cpu_online"] = static_cast<int64_t>(sysconf(_SC_NPROCESSORS_ONLN));

  std::smatch mm;
  const std::string meminfo = read_file("/proc/meminfo");
  if (std::regex_search(meminfo, mm, std::regex("MemTotal:\\s+([0-9]+) kB"))) m["ram_bytes"] = std::stoll(mm[1]) * 1024;

  Json gpu = Json::object();
  const std::string smi =
      !find_on_path("nvidia-smi").empty()
          ? command_output("nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits")
          : "";
  if (smi.empty()) {
    gpu["name"] = "none";
  } else {
    std::istringstream first(smi.substr(0, smi.find('\n')));
    std::string name, mem, driver;
    std::getline(first, name, ',');
    std::getline(first, mem, ',');
    std::getline(first, driver, ',');
    gpu["name"] = trim(name);
    gpu["memory_bytes"] = trim(mem).empty() ? Json() : Json(std::stod(trim(mem)) * 1048576.0);
    gpu["driver"] = trim(driver);
    gpu["count"] = static_cast<int64_t>(std::count(smi.begin(), smi.end(), '\n') + 1);
  }
  gpu["cuda"] = cuda_version();
  gpu["cudnn"] = cudnn_version();
  m["gpu"] = gpu;

  Json build = Json::object();
  build["libdl_version"] = DL_VERSION;
  build["cuda_backend"] = DL_WITH_CUDA != 0;
#ifdef DL_SWEEP_BUILD_OPTIONS
  build["options"] = DL_SWEEP_BUILD_OPTIONS;  // from examples/CMakeLists.txt
#endif
#ifdef __VERSION__
  build["compiler"] = "g++ " __VERSION__;
#endif
#ifdef NDEBUG
  build["assertions"] = false;
#else
  build["assertions"] = true;
#endif
  m["build"] = build;
  return m;
}

std::string machine_summary(const Json& m) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s, %.0f cores, %.1f GiB RAM, GPU %s", m.string_at("cpu_model").c_str(),
                m.number_at("cpu_online", m.number_at("cpu_logical_cores", 0)),
                m.number_at("ram_bytes", 0) / (1024.0 * 1024 * 1024), m.string_at("gpu.name", "none").c_str());
  return buf;
}

}  // namespace dl::sweep
