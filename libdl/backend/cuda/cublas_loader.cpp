// Opens cuBLAS on first use (see cublas_loader.h). The names looked up are those the cublas_v2.h macros
// expand to (cublasCreate -> cublasCreate_v2), so they always match the headers compiled against.
#include "backend/cuda/cublas_loader.h"

#include <string>

#include "backend/cuda/library_loader.h"

#define DL_CUBLAS_STR2(x) #x
#define DL_CUBLAS_STR(x) DL_CUBLAS_STR2(x)

namespace dl::cuda {
namespace {

template <typename F>
void resolve(void* lib, const char* name, const std::string& file, F* out) {
  *out = reinterpret_cast<F>(library_symbol(lib, name, file, "cuBLAS"));
}

const CublasApi* load() {
  const std::string file = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* lib = open_library(
      file, "cuBLAS",
      "install the CUDA " + std::to_string(CUBLAS_VER_MAJOR) + " cuBLAS library or add its folder to LD_LIBRARY_PATH");
  auto* api = new CublasApi;  // lives as long as the process, as the library stays loaded
  resolve(lib, DL_CUBLAS_STR(cublasCreate), file, &api->create);
  resolve(lib, DL_CUBLAS_STR(cublasSetStream), file, &api->set_stream);
  resolve(lib, DL_CUBLAS_STR(cublasGemmEx), file, &api->gemm_ex);
  resolve(lib, DL_CUBLAS_STR(cublasGemmStridedBatchedEx), file, &api->gemm_strided_batched_ex);
  resolve(lib, DL_CUBLAS_STR(cublasSgemv), file, &api->sgemv);
  resolve(lib, DL_CUBLAS_STR(cublasGetStatusString), file, &api->status_string);
  return api;
}

constinit LazyApi<CublasApi> g_cublas(load);

}  // namespace

const CublasApi& cublas() { return g_cublas.get(); }

const CublasApi* cublas_if_loaded() { return g_cublas.if_loaded(); }

}  // namespace dl::cuda
