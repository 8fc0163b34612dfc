// Process memory figures from /proc/self/status.
#include "dl/train/resources.h"

#include <sys/resource.h>

#include <fstream>
#include <string>

namespace dl::train {

namespace {
int64_t status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(key) + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size()));
  return -1;
}
}  // namespace

int64_t peak_rss_bytes() {
  const int64_t kib = status_kib("VmHWM");
  if (kib >= 0) return kib * 1024;
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

int64_t current_rss_bytes() {
  const int64_t kib = status_kib("VmRSS");
  return kib >= 0 ? kib * 1024 : -1;
}

}  // namespace dl::train
