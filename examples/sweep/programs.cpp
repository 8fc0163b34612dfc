// The table of reference programs.
#include "programs.h"

#include "dl/core/error.h"

namespace dl::sweep {

const std::vector<ProgramSpec>& all_programs() {
  static const std::vector<ProgramSpec> programs = {
      {.name = "train_mnist",
       .binary = "train_mnist",
       .batch_flag = "--mini-batch-size",
       .epochs_flag = "--max-epochs",
       .device_flag = "--device",
       .threads_flag = "--threads",
       .solver_flag = "--solver",
       .learn_rate_flag = "--initial-learn-rate",
       .image_size_flag = "--image-size",
       .image_sizes = {28},
       .report_flag = "--report-json",
       .log_csv_flag = "--log-csv",
       .memory_limit_flag = "--memory-limit",
       .probe_steps_flag = "--probe-steps",
       .estimate_flag = "--estimate-memory",
       .quiet_flags = {"--verbose", "off", "--progress", "plain"},
       .metrics = {{"accuracy", "test.accuracy", true}, {"test loss", "test.loss", false}}},
      // DeepLabv3+ on CamVid (examples/camvid): its --image-size takes HxW, so the grid's single
      // image-size number is not passed (give --image-size after "--" instead).
      {.name = "train_camvid",
       .binary = "train_camvid",
       .batch_flag = "--mini-batch-size",
       .epochs_flag = "--max-epochs",
       .device_flag = "--device",
       .threads_flag = "--threads",
       .solver_flag = "--solver",
       .learn_rate_flag = "--initial-learn-rate",
       .report_flag = "--report-json",
       .log_csv_flag = "--log-csv",
       .memory_limit_flag = "--memory-limit",
       .probe_steps_flag = "--probe-steps",
       .quiet_flags = {"--verbose", "off", "--progress", "plain"},
       .metrics = {{"global accuracy", "test.accuracy", true},
                   {"mean IoU", "test.MeanIoU", false},
                   {"test loss", "test.loss", false}}},
  };
  return programs;
}

const ProgramSpec& find_program(const std::string& name) {
  std::string known;
  for (const auto& p : all_programs()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  DL_THROW("dl-sweep: unknown program '", name, "'; known programs: ", known);
}

}  // namespace dl::sweep
