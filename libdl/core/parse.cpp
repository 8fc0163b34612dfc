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
  DL_CHECK(parsed && !std::isnan(v) && (allow_inf || std::isfinite(v)) && v >= lo && v <= hi, what,
           ": expected a ", allow_inf ? "" : "finite ", "number from ", lo, " to ", hi, ", got '", text, "'");
  return v;
}

}  // namespace dl
