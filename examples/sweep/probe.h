// The fit probe: the largest batch size that trains for a program (network and image size) under
// a memory limit, found by doubling from a start until a try fails, then bisecting between the last
// size that fit and the first that did not. Each try is a fresh process running a few training
// steps (--probe-steps) with the CPU allocator capped (--memory-limit). Before the tries, the
// program measures its memory per batch element (--estimate-memory: the allocator's peak of one
// training step at batch 1, 2, 4 and 8, fitted with a line), and the report compares that
// prediction with what each try needed.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "json.h"

namespace dl::sweep {

struct ProbeOptions {
  std::string out_dir;
  std::string program = "train_mnist";
  std::string binary;           // default: next to dl-sweep
  int64_t memory_limit = 0;     // bytes; required
  int64_t start = 64;           // first batch size tried
  int64_t max_batch = 1 << 20;  // stop growing here
  int steps = 2;                // training steps per try
  int threads = 0;
  int image_size = 0;
  double tolerance = 0.05;  // bisect until (fail - fit) <= tolerance x fit (at least 1)
  std::vector<std::string> extra_args;
  std::function<void(const std::string&)> log;
};

struct ProbeTry {
  int64_t batch = 0;
  bool fit = false;
  double allocator_peak_bytes = 0, os_peak_rss_bytes = 0, child_peak_rss_bytes = 0, predicted_bytes = 0;
  double seconds = 0;
  std::string error{};
};

struct ProbeResult {
  int64_t largest_fit = 0;                        // 0: not even the smallest size fit
  int64_t smallest_fail = 0;                      // 0: every size up to max_batch fit
  double per_element_bytes = 0, fixed_bytes = 0;  // the estimate
  int64_t predicted_largest = 0;                  // (limit - fixed) / per element
  std::vector<ProbeTry> tries;                    // in the order they ran
};

// Decides the next batch size to try from the tries so far (the search, without processes):
// 0 when the search is over. Public for tests.
int64_t next_probe_batch(const std::vector<ProbeTry>& tries, int64_t start, int64_t max_batch, double tolerance);

ProbeResult run_probe(const ProbeOptions& o);
// probe.md and probe.json in o.out_dir.
void write_probe_report(const ProbeOptions& o, const ProbeResult& r);

}  // namespace dl::sweep
