// NCCL, opened on first use as cuDNN and cuBLAS are (backend/cuda/cudnn_loader.h): libdl does not link
// libnccl, so that CPU-only programs of a CUDA build need no CUDA library. The first NCCL communicator
// opens libnccl.so.<major of the headers>; every call site names an entry point through DL_NCCL(name).
#pragma once
#include <nccl.h>

// Every NCCL function libdl calls. Adding a call: its name here, DL_NCCL(name)(...) at the call site.
#define DL_NCCL_FUNCTIONS(X) \
  X(ncclAllGather)           \
  X(ncclAllReduce)           \
  X(ncclBroadcast)           \
  X(ncclCommAbort)           \
  X(ncclCommDestroy)         \
  X(ncclCommFinalize)        \
  X(ncclCommGetAsyncError)   \
  X(ncclCommInitRankConfig)  \
  X(ncclGetErrorString)      \
  X(ncclGetLastError)        \
  X(ncclGetUniqueId)

namespace dl::dist::detail {

struct NcclApi {
#define DL_NCCL_MEMBER(name) decltype(&::name) name = nullptr;
  DL_NCCL_FUNCTIONS(DL_NCCL_MEMBER)
#undef DL_NCCL_MEMBER
};

// The loaded table; the first call opens the library. Throws dl::Error naming the file, the loader's
// message and what to install when it cannot be opened or lacks an entry point.
const NcclApi& nccl_api();

}  // namespace dl::dist::detail

#define DL_NCCL(name) (::dl::dist::detail::nccl_api().name)
