// The CUDA body of softplus_beta: the kernels of softplus_beta.cuh launched on the stream libdl computes
// on (Note [custom kernels on libdl's stream] in dl/core/cuda.h), so that they are ordered with libdl's
// own work and with the reuse of its freed memory. The op (softplus_beta.cpp) calls these with the
// tensors' device current.
#include <cuda_runtime.h>
#include <dl/core/cuda.h>
#include <dl/core/error.h>

#include "softplus_beta.cuh"

namespace example {
namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) DL_THROW("softplus_beta: ", what, ": ", cudaGetErrorString(err));
}

// The Launcher of Note [launchers] for the GPU: grids capped at 32 blocks per multiprocessor (the
// grid-stride loops cover the rest), every launch on libdl's compute stream of `device`.
class StreamLauncher {
 public:
  explicit StreamLauncher(int device) : stream_(static_cast<cudaStream_t>(dl::cuda::current_stream(device))) {
    check(cudaDeviceGetAttribute(&multiprocessors_, cudaDevAttrMultiProcessorCount, device), "device attributes");
  }
  int block_size(int preferred) const { return preferred; }
  unsigned grid_size(int64_t items, int block) const {
    const int64_t cap = static_cast<int64_t>(multiprocessors_) * 32;
    const int64_t g = (items + block - 1) / block;
    return static_cast<unsigned>(g < 1 ? 1 : (g > cap ? cap : g));
  }
  template <typename... P, typename... A>
  void launch(void (*kernel)(P...), dim3 grid, dim3 block, A... args) {
    kernel<<<grid, block, 0, stream_>>>(static_cast<P>(args)...);
    check(cudaPeekAtLastError(), "kernel launch");
  }

 private:
  cudaStream_t stream_;
  int multiprocessors_ = 0;
};

}  // namespace

void softplus_beta_cuda_forward(int device, const float* x, float* y, int64_t n, const SoftplusBetaParams& p) {
  StreamLauncher l(device);
  run_softplus_beta_forward(l, x, y, n, p);
}

void softplus_beta_cuda_backward(int device, const float* x, const float* dy, float* dx, int64_t n,
                                 const SoftplusBetaParams& p) {
  StreamLauncher l(device);
  run_softplus_beta_backward(l, x, dy, dx, n, p);
}

}  // namespace example
