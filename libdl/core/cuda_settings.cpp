// The process-wide GPU arithmetic switches of dl/core/cuda.h. They live in core, not in the CUDA backend,
// so that programs can set them in a build without CUDA too (where nothing reads them).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "dl/core/cuda.h"

namespace dl {
namespace {

// On unless DL_ALLOW_TF32 is "0" (read once, at the first use of the switch).
bool tf32_from_environment() {
  const char* value = std::getenv("DL_ALLOW_TF32");
  return value == nullptr || std::strcmp(value, "0") != 0;
}

std::atomic<bool>& tf32_flag() {
  static std::atomic<bool> flag{tf32_from_environment()};
  return flag;
}

std::atomic<bool> g_deterministic{false};

}  // namespace

namespace cuda {
void set_allow_tf32(bool on) { tf32_flag().store(on, std::memory_order_relaxed); }
bool allow_tf32() { return tf32_flag().load(std::memory_order_relaxed); }
}  // namespace cuda

void set_deterministic(bool on) { g_deterministic.store(on, std::memory_order_relaxed); }
bool deterministic() { return g_deterministic.load(std::memory_order_relaxed); }

}  // namespace dl
