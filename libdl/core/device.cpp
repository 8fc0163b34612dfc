// Device parsing and the run-time check that a device can be used. The CUDA query lives here so
// that asking for a GPU on a machine without one gives one clear error, said once.
#include "dl/core/device.h"

#include <mutex>

#include "dl/config.h"
#include "dl/core/error.h"
#if DL_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace dl {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      const int index = std::stoi(text.substr(5), &used);
      if (used == text.size() - 5 && index >= 0) return cuda(index);
    } catch (const std::exception&) {
    }
  }
  DL_THROW("expected a device 'cpu', 'cuda' or 'cuda:N', got '", text, "'");
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

namespace {
// Number of CUDA devices, and the reason when there are none; queried once.
struct CudaProbe {
  int count = 0;
  std::string why_none;
};
const CudaProbe& cuda_probe() {
  static const CudaProbe probe = [] {
    CudaProbe p;
#if DL_WITH_CUDA
    const cudaError_t err = cudaGetDeviceCount(&p.count);
    if (err != cudaSuccess) {
      // Without a driver or device (cudaErrorInsufficientDriver, 35, on machines with no GPU) any
      // error here means "no CUDA device".
      p.count = 0;
      p.why_none = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(err) +
                   " (error " + std::to_string(static_cast<int>(err)) + ")";
    } else if (p.count == 0) {
      p.why_none = "the CUDA runtime reports no devices";
    }
#else
    p.why_none = "libdl was built without its CUDA backend (DL_CUDA=OFF or no CUDA toolkit found)";
#endif
    return p;
  }();
  return probe;
}
}  // namespace

bool cuda_available() { return cuda_probe().count > 0; }

void check_device_usable(Device device) {
  if (device.is_cpu()) return;
  const CudaProbe& p = cuda_probe();
  DL_CHECK(p.count > 0, "device ", device.str(), " requested but no CUDA device is usable: ", p.why_none);
  DL_CHECK(device.index < p.count, "device ", device.str(), " requested but only ", p.count,
           " CUDA device(s) exist");
}

}  // namespace dl
