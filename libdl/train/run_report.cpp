// The run report of the programs (dl/train/run_report.h).
#include "dl/train/run_report.h"

#include <sys/resource.h>

#include <new>

#include "dl/config.h"
#include "dl/core/allocator.h"
#include "dl/core/error.h"
#include "dl/core/file_io.h"
#include "dl/core/parse.h"
#include "dl/train/resources.h"

namespace dl::train {

RunReport::RunReport(const std::string& program) {
  json_["program"] = program;
  json_["libdl_version"] = DL_VERSION;
  json_["status"] = "running";
}

void RunReport::write(const std::string& status, const std::string& error) {
  if (path_.empty()) return;
  json_["status"] = status;
  if (!error.empty()) json_["error"] = error;
  Json& mem = json_["memory"];
  mem["peak_rss_bytes"] = peak_rss_bytes();
  // allocator_peak_bytes is the training device's caching allocator (the GPU's on a GPU: the sweep's
  // peak device memory), host_allocator_peak_bytes the CPU's.
  const int64_t host_peak = CpuAllocator::instance().stats().peak_bytes;
  int64_t device_peak = host_peak;
  if (!device_.is_cpu()) {
    try {
      device_peak = allocator_stats(device_).peak_bytes;
    } catch (const Error&) {
      device_peak = 0;  // the device was never usable: nothing was allocated there
    }
  }
  mem["device"] = device_.str();
  mem["allocator_peak_bytes"] = device_peak;
  mem["host_allocator_peak_bytes"] = host_peak;
  mem["allocator_limit_bytes"] = CpuAllocator::instance().limit();
  json_["cpu_seconds"] = cpu_seconds();
  write_file_atomically(path_, json_.dump(2) + '\n');
}

Json RunReport::training_json(const TrainingReport& r) {
  Json tr = Json::object();
  tr["seconds"] = r.total_seconds;
  tr["train_seconds"] = r.train_seconds;
  tr["iterations"] = r.iterations;
  tr["epochs"] = r.epochs_completed;
  tr["images_per_second"] = r.images_per_second;  // every rank together
  tr["world_size"] = r.world_size;
  tr["images_per_second_per_rank"] = r.images_per_second / r.world_size;
  Json epochs = Json::array();
  for (double e : r.epoch_seconds) epochs.push_back(e);
  tr["epoch_seconds"] = epochs;
  tr["validation_accuracy"] = r.validation_accuracy;
  tr["validation_loss"] = r.validation_loss;
  tr["stopped_early"] = r.stopped_early;
  tr["skipped_steps"] = r.skipped_steps;  // by loss scaling
  if (r.loss_scale > 0) tr["loss_scale"] = r.loss_scale;
  tr["allocator_peak_bytes"] = r.allocator_peak_bytes;
  return tr;
}

std::string error_message(const std::exception& e) {
  if (dynamic_cast<const Error*>(&e)) return e.what();
  if (dynamic_cast<const std::bad_alloc*>(&e)) return std::string("out of memory (") + e.what() + ")";
  return std::string("internal error, please report it: ") + e.what();
}

int64_t parse_memory_limit(const std::string& text) {
  int64_t bytes = 0;
  try {
    bytes = parse_bytes(text);
  } catch (const Error& e) {
    DL_THROW("--memory-limit: ", e.what());
  }
  DL_CHECK(bytes == 0 || bytes >= (int64_t{1} << 20), "--memory-limit: expected 0 (no limit) or at least 1MiB, got '",
           text, "' (", bytes, " bytes)");
  return bytes;
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

}  // namespace dl::train
