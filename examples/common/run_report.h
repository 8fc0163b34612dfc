// The run report of the example programs (--report-json): a JSON object filled as a run goes and
// written atomically with the process's memory and CPU figures, so that a failed run still says
// what it was. Shared by train_mnist and train_camvid, read by dl-sweep.
#pragma once
#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "dl/core/file_io.h"
#include "../sweep/json.h"
#include "dl/core/allocator.h"
#include "dl/data/dataset.h"
#include "dl/train/resources.h"
#include "dl/train/trainer.h"

namespace dl::examples {

// User plus system CPU time of this process.
inline double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Written to a temporary and renamed: a reader never sees half a report.
inline void write_json_file(const std::string& path, const dl::sweep::Json& j) {
  dl::write_file_atomically(path, j.dump(2) + '\n');
}

// The device the program trains on, for the memory figures of its report (set once the flags are read).
inline dl::Device& report_device() {
  static dl::Device device = dl::Device::cpu();
  return device;
}

// Adds the status (and error), the memory figures and the CPU time, then writes `report` to `path`
// (nothing when `path` is empty). allocator_peak_bytes is the training device's caching allocator
// (the GPU's on a GPU: the sweep's peak device memory), host_allocator_peak_bytes the CPU's.
inline void write_run_report(const std::string& path, dl::sweep::Json& report, const std::string& status,
                             const std::string& error) {
  if (path.empty()) return;
  report["status"] = status;
  if (!error.empty()) report["error"] = error;
  dl::sweep::Json& mem = report["memory"];
  mem["peak_rss_bytes"] = dl::train::peak_rss_bytes();
  const int64_t host_peak = dl::CpuAllocator::instance().stats().peak_bytes;
  int64_t device_peak = host_peak;
  if (!report_device().is_cpu()) {
    try {
      device_peak = dl::allocator_stats(report_device()).peak_bytes;
    } catch (const dl::Error&) {
      device_peak = 0;  // the device was never usable: nothing was allocated there
    }
  }
  mem["device"] = report_device().str();
  mem["allocator_peak_bytes"] = device_peak;
  mem["host_allocator_peak_bytes"] = host_peak;
  mem["allocator_limit_bytes"] = dl::CpuAllocator::instance().limit();
  report["cpu_seconds"] = cpu_seconds();
  write_json_file(path, report);
}

// The "training" section of a report: times, iterations, throughput, validation, allocator peak.
inline dl::sweep::Json training_json(const dl::train::TrainingReport& r) {
  dl::sweep::Json tr = dl::sweep::Json::object();
  tr["seconds"] = r.total_seconds;
  tr["train_seconds"] = r.train_seconds;
  tr["iterations"] = r.iterations;
  tr["epochs"] = r.epochs_completed;
  tr["images_per_second"] = r.images_per_second;
  dl::sweep::Json epochs = dl::sweep::Json::array();
  for (double e : r.epoch_seconds) epochs.push_back(e);
  tr["epoch_seconds"] = epochs;
  tr["validation_accuracy"] = r.validation_accuracy;
  tr["validation_loss"] = r.validation_loss;
  tr["stopped_early"] = r.stopped_early;
  tr["allocator_peak_bytes"] = r.allocator_peak_bytes;
  return tr;
}

// The first n samples of a data set, repeated when n exceeds its size (the probe's batches can be
// larger than the data set); the data set itself when n <= 0.
inline std::shared_ptr<const dl::data::Dataset> first_n(std::shared_ptr<const dl::data::Dataset> d, int64_t n) {
  if (n <= 0) return d;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i % d->size();
  return std::make_shared<dl::data::SubsetDataset>(d, std::move(idx));
}

}  // namespace dl::examples
