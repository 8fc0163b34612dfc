// What a run used: the process's peak resident set (the kernel's VmHWM) and the allocator's peak.
#pragma once
#include <cstdint>

namespace dl::train {

int64_t peak_rss_bytes();     // VmHWM of /proc/self/status (getrusage's ru_maxrss where it is missing)
int64_t current_rss_bytes();  // VmRSS

}  // namespace dl::train
