// Strict parsing of numbers (see dl/core/parse.h).
#include "dl/core/parse.h"

#include <cctype>
#include <charconv>
#include <cmath>

#include "dl/core/error.h"

namespace dl {

namespace {
// The text without surrounding blanks; an empty or blank text stays empty.
std::string trimmed(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}
}  // namespace

int64_t parse_int(const std::string& text, int64_t lo, int64_t hi, const std::string& what) {
  const std::string t = trimmed(text);
  int64_t v = 0;
  const char* first = t.data() + (t.size() > 1 && t[0] == '+' ? 1 : 0);
  const auto [end, ec] = std::from_chars(first, t.data() + t.size(), v);
  DL_CHECK(!t.empty() && ec == std::errc() && end == t.data() + t.size() && v >= lo && v <= hi, what,
           ": expected an integer from ", lo, " to ", hi, ", got '", text, "'");
  return v;
}

uint64_t parse_uint(const std::string& text, uint64_t hi, const std::string& what) {
  const std::string t = trimmed(text);
  uint64_t v = 0;
  const char* first = t.data() + (t.size() > 1 && t[0] == '+' ? 1 : 0);
  const auto [end, ec] = std::from_chars(first, t.data() + t.size(), v);
  DL_CHECK(!t.empty() && t[0] != '-' && ec == std::errc() && end == t.data() + t.size() && v <= hi, what,
           ": expected an integer from 0 to ", hi, ", got '", text, "'");
  return v;
}

double parse_double(const std::string& text, double lo, double hi, const std::string& what, bool allow_inf) {
  const std::string t = trimmed(text);
  double v = 0;
  const char* first = t.data() + (t.size() > 1 && t[0] == '+' ? 1 : 0);
  const auto [end, ec] = std::from_chars(first, t.data() + t.size(), v);
  const bool parsed = !t.empty() && ec == std::errc() && end == t.data() + t.size();
  DL_CHECK(parsed && !std::isnan(v) && (allow_inf || std::isfinite(v)) && v >= lo && v <= hi, what, ": expected a ",
           allow_inf ? "" : "finite ", "number from ", lo, " to ", hi, ", got '", text, "'");
  return v;
}

int64_t parse_bytes(const std::string& text) {
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
  if (unit.empty() || unit == "B")
    scale = 1;
  else if (unit == "K" || unit == "KIB")
    scale = 1024.0;
  else if (unit == "M" || unit == "MIB")
    scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "GIB")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "KB")
    scale = 1e3;
  else if (unit == "MB")
    scale = 1e6;
  else if (unit == "GB")
    scale = 1e9;
  DL_CHECK(scale > 0 && v >= 0 && std::isfinite(v) && v * scale < 9.2e18,
           "expected a size in bytes like 512MiB or 2G, got '", text, "'");
  const double bytes = v * scale;
  DL_CHECK(bytes == std::floor(bytes), "expected a whole number of bytes, got '", text, "' (", bytes, " bytes)");
  return static_cast<int64_t>(bytes);
}

}  // namespace dl
