// Byte sizes as people write them ("512MiB", "2G", "1048576") and as reports show them.
#pragma once
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "dl/core/parse.h"

namespace dl::sweep {

using dl::parse_bytes;  // dl/core/parse.h

inline std::string format_mib(double bytes) {
  if (std::isnan(bytes) || bytes < 0) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", bytes / 1048576.0);
  return buf;
}

}  // namespace dl::sweep
