// Opens NCCL on first use (nccl_loader.h).
#include "dist/nccl_loader.h"

#include <string>

#include "backend/cuda/library_loader.h"

namespace dl::dist::detail {
namespace {

const NcclApi* load() {
  const std::string file = "libnccl.so." + std::to_string(NCCL_MAJOR);
  void* lib = cuda::open_library(
      file, "NCCL", "install NCCL " + std::to_string(NCCL_MAJOR) + " (libnccl2) or add its folder to LD_LIBRARY_PATH");
  auto* api = new NcclApi;  // lives as long as the process, as the library stays loaded
#define DL_NCCL_RESOLVE(name) \
  api->name = reinterpret_cast<decltype(api->name)>(cuda::library_symbol(lib, #name, file, "NCCL"));
  DL_NCCL_FUNCTIONS(DL_NCCL_RESOLVE)
#undef DL_NCCL_RESOLVE
  return api;
}

constinit cuda::LazyApi<NcclApi> g_nccl(load);

}  // namespace

const NcclApi& nccl_api() { return g_nccl.get(); }

}  // namespace dl::dist::detail
