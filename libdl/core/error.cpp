// Implementation of dl::Error's throwing helper.
#include "dl/core/error.h"

namespace dl::detail {

void throw_error(const char* file, int line, const std::string& message) {
  std::string where(file);
  const auto slash = where.find_last_of('/');
  if (slash != std::string::npos) where = where.substr(slash + 1);
  throw Error(message + " [" + where + ":" + std::to_string(line) + "]");
}

}  // namespace dl::detail
