// The sweep's report: one row per configuration of <out>/results.jsonl, written as report.md,
// report.csv and report.json, with pictures (SVG; PNG too when rsvg-convert is installed):
// training curves per run and time, throughput and memory against batch size. And the merge of
// reports from several machines into one table.
//
// Columns: the configuration (ranks and threads per rank included), status, the program's metrics
// (MNIST: test accuracy and loss), training time (hh:mm:ss: the wall time of fit(), validation
// included), iterations, images/s in all and per rank (the training steps alone), time / time of
// the reference row, peak device memory (the allocator's peak; on the CPU that is host memory held
// by tensors; rank 0's), peak host RSS (the kernel's ru_maxrss of the child process; of several
// ranks, the largest), device utilisation (on the CPU: the CPU time of the process and its ranks /
// (wall time x threads x ranks), mean over the process and peak over 1-second windows) and GPU
// memory from NVML (empty on the CPU).
#pragma once
#include <string>
#include <vector>

#include "json.h"

namespace dl::sweep {

struct ReportOptions {
  std::string out_dir;
  // The reference row: a run id ("b1024_e2_cpu_t2_adam_lr0.01"), a 1-based row number, or
  // conditions on its columns ("batch=1024", "ranks=1,batch=1024"); empty: the first finished row.
  std::string reference;
  bool plots = true;
};

// Builds the rows (as JSON objects) from a sweep folder's results; the reference row gets relative
// time 1. Public for tests.
Json build_report(const std::string& out_dir, const std::string& reference);
std::string report_markdown(const Json& report);
std::string report_csv(const Json& report);

// Writes report.md, report.csv, report.json and the pictures; returns the report.
Json write_report(const ReportOptions& o);

// Lays the report.json of several sweeps (one per machine) side by side: merged.md (machines as
// column groups, rows matched on program, batch, epochs, ranks, image size, solver and learn rate) and
// merged.csv (one row per machine and configuration). The time ratio is against the reference row
// of the first report. `names` label the machines (default: A, B, C, ...).
void merge_reports(const std::vector<std::string>& report_paths, std::vector<std::string> names,
                   const std::string& out_prefix);

// Converts an SVG to PNG with rsvg-convert when it is installed; returns whether it did.
bool rasterise(const std::string& svg_path);

// "hh:mm:ss".
std::string hms(double seconds);

}  // namespace dl::sweep
