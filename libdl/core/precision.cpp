// The precision policy's names and the per-thread autocast setting (dl/core/precision.h).
#include "dl/core/precision.h"

#include "dl/core/error.h"

namespace dl {

namespace {
thread_local Precision t_precision = Precision::kFp32;
}  // namespace

std::string_view precision_name(Precision p) {
  for (const auto& [e, n] : kPrecisionNames)
    if (e == p) return n;
  DL_THROW("precision: the value ", static_cast<int>(p), " has no name");
}

Precision parse_precision(std::string_view text) {
  for (const auto& [e, n] : kPrecisionNames)
    if (n == text) return e;
  DL_THROW("precision: expected fp32, tf32, bf16 or fp16, got '", text, "'");
}

Precision autocast_precision() { return t_precision; }

Autocast::Autocast(Precision p) : previous_(t_precision) {
  (void)precision_name(p);  // a value cast from an integer outside the enum is refused here
  t_precision = p;
}
Autocast::~Autocast() { t_precision = previous_; }

}  // namespace dl
