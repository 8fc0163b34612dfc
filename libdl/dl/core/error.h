// dl::Error and the DL_CHECK family: every failure the library reports is an exception carrying
// what was expected and what came, with the file and line of the check. Nothing calls exit/abort.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace dl {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
[[noreturn]] void throw_error(const char* file, int line, const std::string& message);

// Streams any number of arguments into one string: DL_CHECK(a == b, "expected ", a, ", got ", b).
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace dl

#define DL_THROW(...) ::dl::detail::throw_error(__FILE__, __LINE__, ::dl::detail::str_cat(__VA_ARGS__))
#define DL_CHECK(cond, ...)             \
  do {                                  \
    if (!(cond)) DL_THROW(__VA_ARGS__); \
  } while (0)
