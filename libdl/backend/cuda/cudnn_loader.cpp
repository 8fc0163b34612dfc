// Opens cuDNN on first use (cudnn_loader.h).
#include "backend/cuda/cudnn_loader.h"

#include <string>

#include "backend/cuda/library_loader.h"

namespace dl::cuda {
namespace {

const CudnnApi* load() {
  const std::string file = "libcudnn.so." + std::to_string(CUDNN_MAJOR);
  void* lib = open_library(file, "cuDNN",
                           "install cuDNN " + std::to_string(CUDNN_MAJOR) + " for CUDA " +
                               std::to_string(CUDART_VERSION / 1000) + " or add its folder to LD_LIBRARY_PATH");
  auto* api = new CudnnApi;  // lives as long as the process, as the library stays loaded
#define DL_CUDNN_RESOLVE(name) \
  api->name = reinterpret_cast<decltype(api->name)>(library_symbol(lib, #name, file, "cuDNN"));
  DL_CUDNN_FUNCTIONS(DL_CUDNN_RESOLVE)
#undef DL_CUDNN_RESOLVE
  return api;
}

constinit LazyApi<CudnnApi> g_cudnn(load);

}  // namespace

const CudnnApi& cudnn_api() { return g_cudnn.get(); }

}  // namespace dl::cuda
