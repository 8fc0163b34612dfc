// The CUDA runtime layer of the backend (runtime.h): error reporting for the CUDA runtime, cuDNN and
// cuBLAS; the count of blocking calls; the version check; the per-device contexts (streams, library
// handles); the caching device allocator; scratch, pinned and copy helpers. Host code only, compiled by
// the C++ compiler against the CUDA runtime API.
//
// Note [process-lifetime CUDA objects]: the device contexts (streams, cuDNN and cuBLAS handles, the copy
// events) and the allocator with its cached blocks are created once and never destroyed. Destroying them
// from static destructors would run after, or interleaved with, the CUDA runtime's own teardown at exit,
// where every call can fail or crash; the driver reclaims all of it when the process ends.
#include "backend/cuda/runtime.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backend/cuda/cublas_loader.h"
#include "backend/cuda/cudnn_loader.h"
#include "core/block_cache.h"
#include "dl/core/device.h"

namespace dl::cuda {
namespace {

constexpr int kMaxDevices = 64;
constexpr size_t kSmallLimit = size_t{1} << 20;  // up to 1 MiB: 512-byte size classes
constexpr size_t kSmallStep = 512;
constexpr size_t kLargeStep = size_t{2} << 20;   // above: multiples of 2 MiB
constexpr size_t kMaxRequest = size_t{1} << 50;  // keeps the rounding below from overflowing

// The size class a request is served from (and cached under).
size_t size_class(size_t bytes) {
  const size_t step = bytes <= kSmallLimit ? kSmallStep : kLargeStep;
  return (bytes + step - 1) / step * step;
}

std::string mib(double bytes) {
  char text[48];
  std::snprintf(text, sizeof text, "%.1f MiB", bytes / (1024.0 * 1024.0));
  return text;
}

// "free A MiB of T MiB" for the current device. Runs while an error is being reported, so it never throws.
std::string memory_info_text() {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
    static_cast<void>(cudaGetLastError());
    return "free memory unknown (cudaMemGetInfo failed)";
  }
  return "free " + mib(static_cast<double>(free_bytes)) + " of " + mib(static_cast<double>(total_bytes));
}

// True when the variable is set to something other than "" and "0".
bool env_flag(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0' && std::strcmp(value, "0") != 0;
}

// CUDA encodes versions as 1000 * major + 10 * minor: 13000 is "13.0".
std::string cuda_version_text(int64_t v) { return detail::str_cat(v / 1000, ".", v % 1000 / 10); }
int64_t cudnn_major(int64_t v) { return v >= 90000 ? v / 10000 : v / 1000; }
// cuDNN 9 encodes 10000 * major + 100 * minor + patch (91900 is "9.19.0"); cuDNN 8 used 1000 * major.
std::string cudnn_version_text(int64_t v) {
  const int64_t major = cudnn_major(v);
  const int64_t rest = v - major * (v >= 90000 ? 10000 : 1000);
  return detail::str_cat(major, ".", rest / 100, ".", rest % 100);
}

void check_cuda_versions() {
  int runtime = 0;
  int driver = 0;
  DL_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  DL_CUDA_CHECK(cudaDriverGetVersion(&driver));
  DL_CHECK(runtime / 1000 == CUDART_VERSION / 1000 && runtime >= CUDART_VERSION,
           "the CUDA runtime found at run time is ", cuda_version_text(runtime), " but libdl was compiled against ",
           cuda_version_text(CUDART_VERSION), " (same major version, same or newer minor version needed)");
  DL_CHECK(driver != 0, "no NVIDIA driver found: libdl uses CUDA ", cuda_version_text(runtime),
           ", which needs a driver for CUDA ", runtime / 1000, ".0 or newer");
  // Minor version compatibility: any driver of the runtime's major version (or newer) runs it.
  DL_CHECK(driver / 1000 >= runtime / 1000, "the NVIDIA driver supports CUDA up to ", cuda_version_text(driver),
           " but libdl uses the CUDA ", cuda_version_text(runtime), " runtime: update the driver to one for CUDA ",
           runtime / 1000, ".0 or newer");
}

void check_cudnn_versions() {
  const auto found = static_cast<int64_t>(DL_CUDNN(cudnnGetVersion)());
  DL_CHECK(cudnn_major(found) == CUDNN_MAJOR && found >= CUDNN_VERSION, "cuDNN found at run time is ",
           cudnn_version_text(found), " but libdl was compiled against ", cudnn_version_text(CUDNN_VERSION),
           " (the major versions must match; a newer minor version is fine)");
  const auto cudart = static_cast<int64_t>(DL_CUDNN(cudnnGetCudartVersion)());
  DL_CHECK(cudart / 1000 == CUDART_VERSION / 1000, "cuDNN ", cudnn_version_text(found),
           " found at run time was built for CUDA ", cuda_version_text(cudart), " but libdl uses CUDA ",
           cuda_version_text(CUDART_VERSION), ": install the cuDNN build for CUDA ", CUDART_VERSION / 1000);
}

// Runs check_versions() before the first use of a device. A failed check is not remembered: the next use
// checks (and fails) again.
void ensure_versions_checked() {
  static std::once_flag once;
  std::call_once(once, check_versions);
}

// The number of CUDA devices, asked once (after the version check, so that an old driver is reported as
// such rather than as cudaErrorInsufficientDriver).
int device_count() {
  static const int count = [] {
    ensure_versions_checked();
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err == cudaErrorNoDevice) {
      static_cast<void>(cudaGetLastError());
      return 0;
    }
    if (err != cudaSuccess) throw_cuda_error(err, "cudaGetDeviceCount(&n)", __FILE__, __LINE__);
    return n;
  }();
  return count;
}

void check_device(int device) {
  const int count = device_count();
  DL_CHECK(device >= 0 && device < count, "no CUDA device cuda:", device, ": this machine has ", count,
           " CUDA device(s)");
  DL_CHECK(device < kMaxDevices, "cuda:", device, " is beyond the ", kMaxDevices, " devices libdl supports");
}

// cudaFree on `device` for paths that must not throw (release, called from destructors). A failure is
// either a sticky error from earlier work, which the runtime returns again to the next checked call, or
// a bad pointer, which stays in the last-error slot for the next DL_CUDA_CHECK_LAUNCH to report.
void free_ignoring_errors(void* ptr, int device) {
  int previous = -1;
  const bool switched =
      cudaGetDevice(&previous) == cudaSuccess && previous != device && cudaSetDevice(device) == cudaSuccess;
  if (blocking("cudaFree (a device block given back; it synchronises the device)", [&] { return cudaFree(ptr); }) !=
      cudaSuccess) {
    // Not thrown (callers are destructors), and cleared so that the next checked call, say a launch check
    // with cudaPeekAtLastError, does not report it as its own; a broken device fails that call anyway.
    static_cast<void>(cudaGetLastError());
  }
  if (switched) static_cast<void>(cudaSetDevice(previous));
}

// Everything made once per device; constant-initialised, so usable from any static initialiser.
struct DeviceSlot {
  std::once_flag once;
  DeviceContext* context = nullptr;
  cudaEvent_t compute_mark = nullptr;  // Note [one compute mark per device] in copy_to_device_async
};
DeviceSlot g_slots[kMaxDevices];

// Note [blocking calls] in dl/core/cuda.h: per host thread.
thread_local uint64_t t_blocking_calls = 0;
thread_local const char* t_last_blocking_call = "none";

// Builds the context of `device` (Note [process-lifetime CUDA objects]). A failure leaves the objects
// made so far behind; it happens only when the device is unusable.
DeviceContext* create_context(int device, cudaEvent_t* compute_mark) {
  DeviceGuard guard(device);
  auto ctx = std::make_unique<DeviceContext>();
  ctx->device = device;
  DL_CUDA_CHECK(cudaGetDeviceProperties(&ctx->props, device));
  DL_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->compute, cudaStreamNonBlocking));
  DL_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->copy, cudaStreamNonBlocking));
  DL_CUDNN_CHECK(DL_CUDNN(cudnnCreate)(&ctx->cudnn));
  DL_CUDNN_CHECK(DL_CUDNN(cudnnSetStream)(ctx->cudnn, ctx->compute));
  DL_CUBLAS_CHECK(cublas().create(&ctx->cublas));
  DL_CUBLAS_CHECK(cublas().set_stream(ctx->cublas, ctx->compute));
  DL_CUDA_CHECK(cudaEventCreateWithFlags(compute_mark, cudaEventDisableTiming));
  return ctx.release();
}

}  // namespace

// ---- blocking calls ----

void count_blocking_call(const char* what) {
  ++t_blocking_calls;
  t_last_blocking_call = what;
}

const char* last_blocking_call() { return t_last_blocking_call; }

uint64_t blocking_calls() { return t_blocking_calls; }

// ---- errors ----

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  std::string message = detail::str_cat("CUDA error ", cudaGetErrorName(err), " (", static_cast<int>(err),
                                        "): ", cudaGetErrorString(err), ", in ", call);
  if (err == cudaErrorMemoryAllocation) message += "; " + memory_info_text() + " on the current device";
  // The error is reported now: clear the last-error slot so that the next DL_CUDA_CHECK_LAUNCH does not
  // report it again. (Sticky errors stay; the runtime keeps returning them from every call.)
  static_cast<void>(cudaGetLastError());
  detail::throw_error(file, line, message);
}

void throw_cudnn_error(cudnnStatus_t st, const char* call, const char* file, int line) {
  std::string message =
      detail::str_cat("cuDNN error ", DL_CUDNN(cudnnGetErrorString)(st), " (", static_cast<int>(st), "), in ", call);
  char last[512] = {};
  DL_CUDNN(cudnnGetLastErrorString)(last, sizeof last);  // this thread's most recent cuDNN message, if any
  if (last[0] != '\0') message += detail::str_cat(" (cuDNN's last message: ", last, ")");
  detail::throw_error(file, line, message);
}

void throw_cublas_error(cublasStatus_t st, const char* call, const char* file, int line) {
  detail::throw_error(file, line,
                      detail::str_cat("cuBLAS error ", cublas_status_name(st), " (", static_cast<int>(st), "): ",
                                      cublas_if_loaded() ? cublas_if_loaded()->status_string(st) : "", ", in ", call));
}

const char* cublas_status_name(cublasStatus_t st) {
  switch (st) {  // no default: -Wswitch names a status added by a newer cuBLAS
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_<unknown>";
}

// ---- device guard, versions, contexts ----

// previous_ stays -1 when `device` is already current: nothing to restore, and no cudaSetDevice on the way
// in or out (the common case on one GPU).
DeviceGuard::DeviceGuard(int device) {
  int current = -1;
  DL_CUDA_CHECK(cudaGetDevice(&current));
  if (current == device) return;
  DL_CUDA_CHECK(cudaSetDevice(device));
  previous_ = current;
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) static_cast<void>(cudaSetDevice(previous_));  // never throws
}

void check_versions() {
  check_cuda_versions();
  check_cudnn_versions();
}

DeviceContext& context(int device) {
  check_device(device);
  DeviceSlot& slot = g_slots[device];
  // call_once publishes slot's fields to every thread that returns from it.
  std::call_once(slot.once, [&slot, device] { slot.context = create_context(device, &slot.compute_mark); });
  return *slot.context;
}

void* current_stream(int device) {
  check_device_usable(Device::cuda(device));  // the reason when there is none, said once (core/device.cpp)
  return context(device).compute;
}

// ---- the caching allocator ----
//
// Stream-ordered reuse: all backend work on a device runs on its compute stream, and a block is released
// only after the work using it has been queued. A later op that gets the block queues its work behind that
// on the same stream, so it cannot touch the block early, without any host synchronisation. (Work queued
// on another stream does not get this guarantee: see Note [copy stream and reused blocks].)

// The common bookkeeping (Note [caching allocator] in core/block_cache.h), one cache per device, over
// cudaMalloc and cudaFree.
class CudaBlocks final : public BlockSource {
 public:
  int device = 0;
  void* obtain(size_t bytes) override {
    DeviceGuard guard(device);
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes);
    if (err == cudaErrorMemoryAllocation) {
      static_cast<void>(cudaGetLastError());  // not sticky: clear it so that no later check reports it
      return nullptr;
    }
    if (err != cudaSuccess) throw_cuda_error(err, "cudaMalloc(&p, bytes)", __FILE__, __LINE__);
    return p;
  }
  size_t segment_size(size_t bytes) const override { return size_class(bytes); }  // cudaMalloc's 2 MiB pages
  // A failed cudaFree drops the block all the same (freeing it again could not help); see free_ignoring_errors.
  void give_back(void* block, size_t) noexcept override { free_ignoring_errors(block, device); }
  [[noreturn]] void out_of_memory(size_t bytes, size_t cls, const AllocatorStats& st, int64_t freed) override {
    DeviceGuard guard(device);
    DL_THROW("CUDA out of memory on cuda:", device, ": asked for ", mib(static_cast<double>(bytes)), " (class ",
             mib(static_cast<double>(cls)), "); ", memory_info_text(), "; the allocator holds ",
             mib(static_cast<double>(st.reserved_bytes)), " reserved, ", mib(static_cast<double>(st.current_bytes)),
             " in use (", mib(static_cast<double>(freed)), " were cached and have been freed)");
  }
};

struct CudaAllocator::Impl {
  struct Pool {
    CudaBlocks source;
    BlockCache cache{source, size_class, "the device memory limit"};
  };
  std::array<Pool, kMaxDevices> pools;
  bool caching = true;  // fixed at construction
  std::atomic<bool> poison{false};

  Impl() {
    for (int d = 0; d < kMaxDevices; ++d) pools[static_cast<size_t>(d)].source.device = d;
  }
  BlockCache& cache(int device) { return pools[static_cast<size_t>(device)].cache; }
};

CudaAllocator::CudaAllocator() : impl_(new Impl) {
  impl_->caching = !env_flag("DL_CUDA_NO_CACHE");
  // Without caching every block goes back to cudaFree at once (which synchronises the device): for
  // compute-sanitizer, to see every allocation.
  if (!impl_->caching)
    for (auto& pool : impl_->pools) pool.cache.set_caching(false);
}

CudaAllocator& CudaAllocator::instance() {
  static CudaAllocator* allocator = new CudaAllocator();  // Note [process-lifetime CUDA objects]
  return *allocator;
}

void* CudaAllocator::allocate(size_t bytes, int device) {
  if (bytes == 0) return nullptr;
  check_device(device);
  DL_CHECK(bytes <= kMaxRequest, "CUDA allocation of ", bytes, " bytes on cuda:", device, " is beyond any device");
  void* ptr = impl_->cache(device).allocate(bytes);
  if (impl_->poison.load(std::memory_order_relaxed)) {
    DeviceGuard guard(device);
    DL_CUDA_CHECK(cudaMemsetAsync(ptr, 0xFF, bytes, compute_stream(device)));
  }
  return ptr;
}

void CudaAllocator::set_poison(bool on) { impl_->poison.store(on, std::memory_order_relaxed); }

// The block may still be in use by work queued on the compute stream; see the stream-order note above.
void CudaAllocator::release(void* ptr, size_t bytes, int device) {
  if (ptr == nullptr) return;
  DL_CHECK(device >= 0 && device < kMaxDevices, "CudaAllocator::release: bad device ", device);
  impl_->cache(device).release(ptr, bytes);
}

AllocatorStats CudaAllocator::stats(int device) const {
  check_device(device);
  return impl_->cache(device).stats();
}

void CudaAllocator::reset_peak(int device) {
  check_device(device);
  impl_->cache(device).reset_peak();
}

// cudaFree synchronises the device: fine here, off the hot path.
void CudaAllocator::empty_cache() {
  for (auto& pool : impl_->pools) pool.cache.empty_cache();
}

bool CudaAllocator::caching() const { return impl_->caching; }

// ---- buffers ----

DeviceBuffer::DeviceBuffer(size_t bytes, int device)
    : ptr_(CudaAllocator::instance().allocate(bytes, device)), bytes_(bytes), device_(device) {}

DeviceBuffer::~DeviceBuffer() { CudaAllocator::instance().release(ptr_, bytes_, device_); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)), device_(o.device_) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    CudaAllocator::instance().release(ptr_, bytes_, device_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    device_ = o.device_;
  }
  return *this;
}

PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  ensure_versions_checked();
  DL_CUDA_CHECK(cudaMallocHost(&ptr_, bytes));
}

namespace {
// cudaFreeHost synchronises the device (a blocking call); never throws.
void free_pinned(void* ptr) {
  if (ptr != nullptr)
    static_cast<void>(blocking("cudaFreeHost (a pinned staging buffer)", [&] { return cudaFreeHost(ptr); }));
}
}  // namespace

// The caller must not free a buffer that a queued copy still reads (see copy_to_device_async).
PinnedBuffer::~PinnedBuffer() { free_pinned(ptr_); }

PinnedBuffer::PinnedBuffer(PinnedBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    free_pinned(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

// ---- copies ----

void copy_bytes(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, int device, bool wait) {
  if (bytes == 0) return;
  DeviceContext& ctx = context(device);
  DeviceGuard guard(device);
  if (!wait && kind != cudaMemcpyDeviceToHost) {
    DL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, ctx.compute));
    return;
  }
  // Into pageable host memory the copy returns when it is done, after the work queued before it: a wait.
  blocking("copy_bytes (a copy the host waits for)", [&] {
    DL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, ctx.compute));
    if (wait) DL_CUDA_CHECK(cudaStreamSynchronize(ctx.compute));
  });
}

// Note [one compute mark per device]: the event is recorded again by every call. That is correct because
// cudaStreamWaitEvent waits for the work captured by the event's most recent record *at the time of the
// wait call*; a later record does not change what an earlier wait waits for.
//
// Lifetimes (the caller's duty; the DeviceStager's): `pinned_src` is read asynchronously, so it must stay
// alive and unchanged until `done` has completed.
//
// Note [copy stream and reused blocks]: `dst` usually comes from the caching allocator, and the block may
// have been released by a tensor whose kernels are still queued on the compute stream. So the copy stream
// first waits for the compute work queued *so far* (an event recorded now), then copies. The overlap
// comes from the order of calls: the trainer stages batch k + 1 before it queues step k, and makes the
// compute stream wait for that copy (compute_wait on `done`) only when batch k + 1 becomes current, so
// the copy runs while step k computes.
void copy_to_device_async(void* dst, const void* pinned_src, size_t bytes, int device, cudaEvent_t done) {
  DeviceContext& ctx = context(device);
  const DeviceSlot& slot = g_slots[device];
  DeviceGuard guard(device);
  DL_CUDA_CHECK(cudaEventRecord(slot.compute_mark, ctx.compute));
  DL_CUDA_CHECK(cudaStreamWaitEvent(ctx.copy, slot.compute_mark, 0));
  if (bytes > 0) DL_CUDA_CHECK(cudaMemcpyAsync(dst, pinned_src, bytes, cudaMemcpyHostToDevice, ctx.copy));
  DL_CUDA_CHECK(cudaEventRecord(done, ctx.copy));
}

void compute_wait(int device, cudaEvent_t event) {
  DeviceContext& ctx = context(device);
  DeviceGuard guard(device);
  DL_CUDA_CHECK(cudaStreamWaitEvent(ctx.compute, event, 0));
}

void synchronize(int device) {
  DeviceContext& ctx = context(device);
  blocking("synchronize (the copy and compute streams)", [&] {
    DL_CUDA_CHECK(cudaStreamSynchronize(ctx.copy));
    DL_CUDA_CHECK(cudaStreamSynchronize(ctx.compute));
  });
}

}  // namespace dl::cuda
