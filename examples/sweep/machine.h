// The machine a report was made on: CPU model and cores (/proc/cpuinfo), RAM (/proc/meminfo), the
// GPU (nvidia-smi when present: name, memory, driver), CUDA and cuDNN versions (from the toolkit's
// version files), libdl's version and build options (dl/config.h). Fields that cannot be found are
// "none" (GPU) or empty.
#pragma once
#include "json.h"

namespace dl::sweep {

Json describe_machine();
// One line for a report header: "AMD EPYC, 2 cores, 23.5 GiB RAM, GPU none".
std::string machine_summary(const Json& machine);
// The path of an executable of that name on PATH; empty when there is none.
std::string find_on_path(const std::string& program);

}  // namespace dl::sweep
