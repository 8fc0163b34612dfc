// The reference programs a sweep can run, by name, with the flags each takes for every dimension
// of the grid and the metrics its --report-json carries: train_mnist and train_camvid (DeepLabv3+).
#pragma once
#include <string>
#include <vector>

namespace dl::sweep {

struct MetricColumn {
  std::string title;     // column title in the report ("accuracy")
  std::string path;      // dotted path in the program's report JSON ("test.accuracy")
  bool percent = false;  // shown as a percentage
};

struct ProgramSpec {
  std::string name;    // as given to --program
  std::string binary;  // file name next to dl-sweep (build/bin)
  // The program's flags for the grid's dimensions and for the sweep's own needs.
  std::string batch_flag, epochs_flag, device_flag, threads_flag, solver_flag, learn_rate_flag;
  std::string image_size_flag{};   // empty: the program has a fixed input size
  std::vector<int> image_sizes{};  // the sizes it accepts (empty: any)
  std::string report_flag{}, log_csv_flag{}, memory_limit_flag{}, probe_steps_flag{}, estimate_flag{};
  std::vector<std::string> quiet_flags;  // appended to every run (no verbose table in the logs)
  std::vector<MetricColumn> metrics;
};

// Every program known by name; throws dl::Error listing them when `name` is not one.
const ProgramSpec& find_program(const std::string& name);
const std::vector<ProgramSpec>& all_programs();

}  // namespace dl::sweep
