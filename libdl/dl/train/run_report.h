// RunReport: the JSON summary of a program's run (--report-json), filled as the run goes and written
// atomically with the process's memory and CPU figures at its end, so that a failed run still says
// what it was. The keys: program, libdl_version, status ("ok" or "failed"), error, config{...},
// training{seconds, train_seconds, iterations, epochs, images_per_second, epoch_seconds,
// validation_accuracy, validation_loss, stopped_early, allocator_peak_bytes}, test{...},
// memory{peak_rss_bytes, device, allocator_peak_bytes, host_allocator_peak_bytes,
// allocator_limit_bytes}, cpu_seconds. dl-sweep (examples/sweep) reads it.
#pragma once
#include <exception>
#include <string>

#include "dl/core/device.h"
#include "dl/core/json.h"
#include "dl/train/observer.h"

namespace dl::train {

class RunReport {
 public:
  explicit RunReport(const std::string& program);
  void set_path(std::string path) { path_ = std::move(path); }  // empty (the default): write nothing
  void set_device(Device device) { device_ = device; }          // the training device, for the memory figures

  Json& operator[](const std::string& key) { return json_[key]; }
  Json& config() { return json_["config"]; }
  void add_training(const TrainingReport& r) { json_["training"] = training_json(r); }
  // Adds the status (and error), the memory figures and the CPU time, then writes the report.
  void write(const std::string& status, const std::string& error = "");

  // The "training" section of a report.
  static Json training_json(const TrainingReport& r);

 private:
  std::string path_;
  Device device_ = Device::cpu();
  Json json_ = Json::object();
};

// The message of an exception that ended a program: dl::Error's own text; for anything else (a bug,
// or memory running out outside the allocator) what happened in words, never a bare C++ type name.
std::string error_message(const std::exception& e);

// --memory-limit: 0 (none) or a size of at least 1 MiB ("512MiB", "2G"); a fraction of a byte or a
// limit no program can run under is an error, never "unlimited".
int64_t parse_memory_limit(const std::string& text);

// User plus system CPU time of this process.
double cpu_seconds();

}  // namespace dl::train
