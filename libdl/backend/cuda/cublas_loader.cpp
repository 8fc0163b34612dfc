// Opens cuBLAS on first use (see cublas_loader.h). The names looked up are those the cublas_v2.h macros
// expand to (cublasCreate -> cublasCreate_v2), so they always match the headers compiled against.
#include "backend/cuda/cublas_loader.h"

#include <dlfcn.h>

#include <atomic>
#include <mutex>
#include <string>

#include "dl/core/error.h"

#define DL_CUBLAS_STR2(x) #x
#define DL_CUBLAS_STR(x) DL_CUBLAS_STR2(x)

namespace dl::cuda {
namespace {

std::atomic<const CublasApi*> g_loaded{nullptr};

template <typename F>
void resolve(void* lib, const char* name, const std::string& file, F* out) {
  void* sym = dlsym(lib, name);
  DL_CHECK(sym != nullptr, "cuBLAS: ", file, " has no entry point ", name, " (", dlerror(), ")");
  *out = reinterpret_cast<F>(sym);
}

const CublasApi* load() {
  const std::string file = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    DL_THROW("cannot load cuBLAS (", file, ", the major version libdl was compiled against): ", why ? why : "",
             "; install the CUDA ", CUBLAS_VER_MAJOR, " cuBLAS library or add its folder to LD_LIBRARY_PATH");
  }
  auto* api = new CublasApi;  // lives as long as the process, as the library stays loaded
  resolve(lib, DL_CUBLAS_STR(cublasCreate), file, &api->create);
  resolve(lib, DL_CUBLAS_STR(cublasSetStream), file, &api->set_stream);
  resolve(lib, DL_CUBLAS_STR(cublasGemmEx), file, &api->gemm_ex);
  resolve(lib, DL_CUBLAS_STR(cublasGemmStridedBatchedEx), file, &api->gemm_strided_batched_ex);
  resolve(lib, DL_CUBLAS_STR(cublasSgemv), file, &api->sgemv);
  resolve(lib, DL_CUBLAS_STR(cublasGetStatusString), file, &api->status_string);
  return api;
}

}  // namespace

const CublasApi& cublas() {
  static std::mutex mu;
  if (const CublasApi* api = g_loaded.load(std::memory_order_acquire)) return *api;
  std::lock_guard<std::mutex> lock(mu);
  if (const CublasApi* api = g_loaded.load(std::memory_order_relaxed)) return *api;
  const CublasApi* api = load();
  g_loaded.store(api, std::memory_order_release);
  return *api;
}

const CublasApi* cublas_if_loaded() { return g_loaded.load(std::memory_order_acquire); }

}  // namespace dl::cuda
