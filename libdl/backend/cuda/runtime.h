// The CUDA runtime layer of the backend: the one family of error macros, the per-device context
// (compute stream, copy stream, cuDNN and cuBLAS handles bound to the compute stream), the device
// guard, the caching device allocator, pinned host buffers and scratch buffers. Only compiled when
// libdl is built with CUDA (DL_WITH_CUDA); nothing here is public API.
//
// Streams: every op of the backend runs on its device's compute stream, so blocks released to the
// caching allocator can be reused by the next op without synchronising (stream order). The copy
// stream carries host-to-device copies of the data loader, which record an event that the compute
// stream waits on (no host synchronisation).
//
// Blocking calls: every call that makes the host wait for the device goes through dl::cuda::blocking below,
// which counts it (Note [blocking calls] in dl/core/cuda.h); tests/check_blocking_calls.py fails on one
// that does not.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "dl/core/allocator.h"
#include "dl/core/cuda.h"
#include "dl/core/error.h"

namespace dl::cuda {

// ---- errors: the stringified call, file:line, the library's own text, a dl::Error ----
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void throw_cudnn_error(cudnnStatus_t st, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* call, const char* file, int line);
const char* cublas_status_name(cublasStatus_t st);

}  // namespace dl::cuda

#define DL_CUDA_CHECK(call)                                                                       \
  do {                                                                                            \
    const cudaError_t dl_err_ = (call);                                                           \
    if (dl_err_ != cudaSuccess) ::dl::cuda::throw_cuda_error(dl_err_, #call, __FILE__, __LINE__); \
  } while (0)
#define DL_CUDNN_CHECK(call)                                                                              \
  do {                                                                                                    \
    const cudnnStatus_t dl_st_ = (call);                                                                  \
    if (dl_st_ != CUDNN_STATUS_SUCCESS) ::dl::cuda::throw_cudnn_error(dl_st_, #call, __FILE__, __LINE__); \
  } while (0)
#define DL_CUBLAS_CHECK(call)                                                                               \
  do {                                                                                                      \
    const cublasStatus_t dl_st_ = (call);                                                                   \
    if (dl_st_ != CUBLAS_STATUS_SUCCESS) ::dl::cuda::throw_cublas_error(dl_st_, #call, __FILE__, __LINE__); \
  } while (0)
// After every kernel launch: launch-configuration errors surface here, at the launch site. (Errors
// inside the kernel surface at the next synchronising call, as CUDA reports them.)
#define DL_CUDA_CHECK_LAUNCH() DL_CUDA_CHECK(cudaPeekAtLastError())

namespace dl::cuda {

// ---- the one counted place of the calls that make the host wait (Note [blocking calls]) ----
// Counts the call for the calling thread (dl::cuda::blocking_calls), remembers `what` as its latest, then
// runs `call` and returns what it returns: DL_CUDA_CHECK(blocking("why", [&] { return cudaFoo(...); })).
// `what` says which wait it is, for a test that finds one where it expected none; a string literal (kept,
// not copied).
void count_blocking_call(const char* what);
template <typename F>
decltype(auto) blocking(const char* what, F&& call) {
  count_blocking_call(what);
  return std::forward<F>(call)();
}
// The `what` of the calling thread's latest blocking call, or "none".
const char* last_blocking_call();

// DeviceGuard (make a device current for a scope) and current_stream (the compute stream below, as an
// opaque handle) are public: dl/core/cuda.h.

// Everything the backend holds per device; created on first use (which also runs the version check).
struct DeviceContext {
  int device = 0;
  cudaStream_t compute = nullptr;   // every op of the backend
  cudaStream_t copy = nullptr;      // asynchronous host-to-device copies of the data loader
  cudnnHandle_t cudnn = nullptr;    // bound to `compute`
  cublasHandle_t cublas = nullptr;  // bound to `compute`
  cudaDeviceProp props{};
};
DeviceContext& context(int device);
inline cudaStream_t compute_stream(int device) { return context(device).compute; }

// Compares the CUDA runtime and cuDNN found at run time with those compiled against; throws dl::Error
// naming both versions when they do not match (major for cuDNN, and a driver older than the runtime).
void check_versions();

// ---- the caching device allocator ----
// Blocks are rounded up to size classes (512 B granularity below 1 MiB, 2 MiB above), cached per device
// when released and reused for requests of the same class. Statistics follow dl::AllocatorStats.
// DL_CUDA_NO_CACHE=1 (environment, read once) turns caching off: every block goes back to cudaFree at
// once, so that compute-sanitizer sees every allocation. Out of memory first empties the cache and
// retries, then throws dl::Error with the request, the device's free memory and what the cache holds.
class CudaAllocator {
 public:
  static CudaAllocator& instance();
  void* allocate(size_t bytes, int device);
  void release(void* ptr, size_t bytes, int device);
  AllocatorStats stats(int device) const;
  void reset_peak(int device);
  void empty_cache();  // every device
  bool caching() const;
  // Tests: fill every block handed out with 0xFF bytes (NaN as float) on the compute stream, so that an
  // output a body never writes cannot pass for a right one (Note [one table of op cases] in the tests).
  void set_poison(bool on);

 private:
  CudaAllocator();
  struct Impl;
  Impl* impl_;
};

// A scratch block from the caching allocator, returned when it goes out of scope (stream order makes
// reuse safe). Like ggml's pool_alloc.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, int device);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  int device_ = 0;
};

// Page-locked host memory (cudaMallocHost), for the data loader's staging buffers.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& o) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Copies between host and device memory, or device and device, ordered on the device's compute stream.
// `wait` waits for the copy (device-to-host copies whose result the caller reads at once). A copy to
// host memory is a blocking call either way: the runtime returns from a copy into pageable memory only
// when it is done.
void copy_bytes(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, int device, bool wait);
// Host-to-device copy on the copy stream from pinned memory, after the compute work queued so far (dst
// may be a reused block); `done` is recorded after it. The compute stream does not wait: call
// compute_wait(device, done) before queueing work that reads dst.
void copy_to_device_async(void* dst, const void* pinned_src, size_t bytes, int device, cudaEvent_t done);
// Makes the device's compute stream wait for `event` (no host synchronisation).
void compute_wait(int device, cudaEvent_t event);
// Waits for everything queued on the device (used at the end of an epoch and by timers, never per op):
// one blocking call.
void synchronize(int device);

// The TF32 switch (set_allow_tf32, allow_tf32) and dl::deterministic() are public: dl/core/cuda.h.

}  // namespace dl::cuda
