// cuBLAS, loaded on first use. libcublasLt's start-up code makes every process that merely links
// cuBLAS about 210 MB larger in resident memory (measured: 2.4 MB for an empty program, 213 MB with
// -lcublasLt), a cost CPU-only users of libdl must not pay. So libdl does not link cuBLAS; the first
// CUDA context opens libcublas.so.<major of the headers> and takes the few entry points it uses.
#pragma once
#include <cublas_v2.h>

namespace dl::cuda {

struct CublasApi {
  decltype(&cublasCreate) create = nullptr;
  decltype(&cublasSetStream) set_stream = nullptr;
  // cublasGemmEx is overloaded (an inline wrapper takes the old cudaDataType compute type): the real one.
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  // cublasGemmStridedBatchedEx, the real one (as gemm_ex).
  cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                            const void*, const void*, cudaDataType, int, long long, const void*,
                                            cudaDataType, int, long long, const void*, void*, cudaDataType, int,
                                            long long, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  decltype(&cublasSgemv) sgemv = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
};

// Throws dl::Error naming the library and the loader's message when it cannot be opened.
const CublasApi& cublas();
// The loaded API, or null when cuBLAS has not been (or could not be) loaded; never throws.
const CublasApi* cublas_if_loaded();

}  // namespace dl::cuda
