// Byte sizes as people write them ("512MiB", "2G", "1048576") and as reports show them.
#pragma once
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "dl/core/error.h"

namespace dl::sweep {

// "123", "64K", "64KiB", "512M", "512MiB", "2G", "2GiB", "1.5GiB" (powers of 1024; "KB"/"MB"/"GB"
// are powers of 1000). Throws dl::Error on anything else.
inline int64_t parse_bytes(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    DL_THROW("expected a size in bytes like 512MiB or 2G, got '", text, "'");
  }
  std::string unit = text.substr(used);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "K" || unit == "KIB") scale = 1024.0;
  else if (unit == "M" || unit == "MIB") scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "GIB") scale = 1024.0 * 1024 * 1024;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  DL_CHECK(scale > 0 && v >= 0 && std::isfinite(v) && v * scale < 9.2e18,
           "expected a size in bytes like 512MiB or 2G, got '", text, "'");
  const double bytes = v * scale;
  DL_CHECK(bytes == std::floor(bytes), "expected a whole number of bytes, got '", text, "' (", bytes, " bytes)");
  return static_cast<int64_t>(bytes);
}

inline std::string format_mib(double bytes) {
  if (std::isnan(bytes) || bytes < 0) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", bytes / 1048576.0);
  return buf;
}

}  // namespace dl::sweep
