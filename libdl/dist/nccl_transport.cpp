// The NCCL device transport of dl::dist (dist/transport.h): one NCCL communicator per CUDA device,
// bootstrapped over the host transport (MPI hands out the unique id); collectives run on a
// high-priority communication stream of the device, ordered after the compute stream's work and
// before the compute work that reads their result; a watchdog thread aborts the communicator when a
// collective stalls or NCCL reports an asynchronous error (Note [lost ranks] in dl/dist/process_group.h).
// Compiled only when libdl is built with CUDA, NCCL and MPI.
//
// Note [non-blocking communicator]: the communicator is made with config.blocking = 0, so that no NCCL
// call can block this process for ever. With a blocking communicator, ncclCommInitRank waits inside
// NCCL until every rank has joined, and a collective may wait on the host while NCCL connects to its
// peers (connections are set up lazily, at the first collective that needs them): a rank that died
// or stalled there hangs the others inside a call that nothing can interrupt. A non-blocking
// communicator returns ncclInProgress instead, and ncclCommGetAsyncError says when the call has
// settled; settle() polls it against the group's timeout and aborts the communicator when it runs
// out. NCCL's rule for such a communicator: after a call returned ncclInProgress, no other NCCL call
// on the communicator (other than ncclCommGetAsyncError and ncclCommAbort) until it has settled, and
// the stream holds the collective's kernels only once it has. The callers' mutex (call_mutex_) keeps
// the calls of several threads from interleaving with a settling one.
//
// Note [comm stream and reused blocks]: the caching allocator hands a released block to the next
// request in compute-stream order (Note [copy stream and reused blocks] in backend/cuda/runtime.cpp):
// that is safe only for work queued on the compute stream. A collective reads and writes its buffer on
// the communication stream, so (1) the communication stream first waits for the compute work queued so
// far (the buffer may be a reused block still written by earlier kernels), and (2) the buffer must not
// be released to the allocator, nor written by compute work, before the compute stream has been made
// to wait for the collective: that is what wait(handle) does (broadcast and all_gather do it before
// they return). The caller (the ProcessGroup, the data-parallel gradient reducer) keeps the tensor
// alive and untouched until Work::wait(); a tensor released after wait() is reused by compute work
// queued behind the collective, as stream order requires.
//
// Note [nccl watchdog]: a thread per transport wakes every kWatchdogPeriod and (1) drops the collectives
// whose completion event has fired (cudaEventQuery), (2) aborts the communicator when the oldest one
// has been in flight longer than the timeout, when a completion event reports a CUDA error, or when
// ncclCommGetAsyncError reports an error. It records the error's text (which collective, for how long,
// NCCL's words) and check(), called by the ProcessGroup before each collective, throws it; so does
// every later call. The time of a collective counts from when it was queued, so compute work queued
// before it counts too: a step whose queued work outlasts the timeout (5 minutes by default) reads as
// a stall. ncclCommAbort is called under the transport's mutex, which every call on the communicator
// holds, so that no call uses the communicator while or after it is freed.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backend/cuda/runtime.h"
#include "dist/nccl_loader.h"
#include "dist/transport.h"
#include "dl/core/error.h"

namespace dl::dist::detail {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kMaxDevices = 64;  // as the CUDA runtime layer (backend/cuda/runtime.cpp)
constexpr auto kWatchdogPeriod = std::chrono::milliseconds(100);
constexpr auto kSettlePoll = std::chrono::microseconds(50);

const char* nccl_result_name(ncclResult_t st) {
  switch (st) {  // no default: -Wswitch names a result added by a newer NCCL
    case ncclSuccess:
      return "ncclSuccess";
    case ncclUnhandledCudaError:
      return "ncclUnhandledCudaError";
    case ncclSystemError:
      return "ncclSystemError";
    case ncclInternalError:
      return "ncclInternalError";
    case ncclInvalidArgument:
      return "ncclInvalidArgument";
    case ncclInvalidUsage:
      return "ncclInvalidUsage";
    case ncclRemoteError:
      return "ncclRemoteError";
    case ncclInProgress:
      return "ncclInProgress";
    case ncclNumResults:
      break;
  }
  return "ncclResult_<unknown>";
}

// "ncclRemoteError (6): remote process exited or there was a network error; NCCL's last message: ..."
// ncclGetLastError's text may be unrelated to `st` (an earlier asynchronous error): it is quoted as such.
std::string nccl_error_text(ncclResult_t st, ncclComm_t comm) {
  std::string text =
      dl::detail::str_cat(nccl_result_name(st), " (", static_cast<int>(st), "): ", DL_NCCL(ncclGetErrorString)(st));
  const char* last = DL_NCCL(ncclGetLastError)(comm);
  if (last != nullptr && last[0] != '\0') text += dl::detail::str_cat("; NCCL's last message: ", last);
  return text;
}

[[noreturn]] void throw_nccl_error(ncclResult_t st, const char* call, const char* file, int line) {
  dl::detail::throw_error(file, line, dl::detail::str_cat("NCCL error ", nccl_error_text(st, nullptr), ", in ", call));
}

}  // namespace
}  // namespace dl::dist::detail

#define DL_NCCL_CHECK(call)                                                                             \
  do {                                                                                                  \
    const ncclResult_t dl_st_ = (call);                                                                 \
    if (dl_st_ != ncclSuccess) ::dl::dist::detail::throw_nccl_error(dl_st_, #call, __FILE__, __LINE__); \
  } while (0)
// For the calls that a non-blocking communicator may leave in progress (Note [non-blocking
// communicator]): ncclInProgress is no error; the caller settles the call next.
#define DL_NCCL_CHECK_STARTED(call)                                            \
  do {                                                                         \
    const ncclResult_t dl_st_ = (call);                                        \
    if (dl_st_ != ncclSuccess && dl_st_ != ncclInProgress)                     \
      ::dl::dist::detail::throw_nccl_error(dl_st_, #call, __FILE__, __LINE__); \
  } while (0)

namespace dl::dist::detail {
namespace {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::kFloat32:
      return ncclFloat32;
    case DType::kFloat64:
      return ncclFloat64;
    case DType::kInt32:
      return ncclInt32;
    case DType::kUInt8:
      return ncclUint8;
    case DType::kInt64:
      return ncclInt64;
    case DType::kBool:
      return ncclUint8;  // min is "and", max is "or" (process_group refuses sums of bools)
    case DType::kBFloat16:
      return ncclBfloat16;
    case DType::kFloat16:
      return ncclFloat16;
  }
  DL_THROW("NCCL: no NCCL type for dtype ", static_cast<int>(t));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kAverage:
      return ncclAvg;
    case ReduceOp::kMin:
      return ncclMin;
    case ReduceOp::kMax:
      return ncclMax;
  }
  DL_THROW("NCCL: no NCCL reduction for ReduceOp ", static_cast<int>(op));
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string seconds_text(Clock::duration d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", seconds(d));
  return text;
}

// The communication stream of each device: high priority, so that gradient all-reduces overlap the
// backward's kernels rather than queue behind them; created once and never destroyed (Note
// [process-lifetime CUDA objects] in backend/cuda/runtime.cpp).
struct CommStreamSlot {
  std::once_flag once;
  cudaStream_t stream = nullptr;
};
CommStreamSlot g_comm_streams[kMaxDevices];

cudaStream_t comm_stream(int device) {
  DL_CHECK(device >= 0 && device < kMaxDevices, "NCCL: no CUDA device cuda:", device);
  CommStreamSlot& slot = g_comm_streams[device];
  std::call_once(slot.once, [&slot, device] {
    dl::cuda::DeviceGuard guard(device);
    int least = 0;
    int greatest = 0;
    DL_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    DL_CUDA_CHECK(cudaStreamCreateWithPriority(&slot.stream, cudaStreamNonBlocking, greatest));
  });
  return slot.stream;
}

class NcclTransport final : public DeviceTransport {
 public:
  NcclTransport(HostTransport& host, int device, std::chrono::milliseconds timeout);
  ~NcclTransport() override;
  NcclTransport(const NcclTransport&) = delete;
  NcclTransport& operator=(const NcclTransport&) = delete;

  int64_t all_reduce_async(void* data, int64_t count, DType dtype, ReduceOp op) override;
  void wait(int64_t handle) override;
  void broadcast(void* data, size_t bytes, int root) override;
  void all_gather(const void* in, void* out, size_t bytes) override;
  void check() override;

 private:
  struct Pending {
    int64_t handle = 0;
    cudaEvent_t done = nullptr;
    std::string what;  // "all_reduce of 4096 bytes (collective #3)"
    Clock::time_point queued;
  };

  void init_communicator(HostTransport& host);
  template <typename Call>
  int64_t enqueue(const char* name, size_t bytes, Call&& call);
  void settle(std::unique_lock<std::mutex>& lock, const std::string& what);
  void throw_if_failed_locked() const;
  void abort_locked(const std::string& message);
  void watch();
  void poll_locked();
  cudaEvent_t take_event_locked();
  std::string where() const;
  void finalize_or_abort() noexcept;

  const int device_;
  const std::chrono::milliseconds timeout_;
  int rank_ = 0;
  int size_ = 1;
  cudaStream_t compute_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;  // this device's communication stream
  cudaEvent_t compute_mark_ = nullptr;  // Note [one compute mark per device] in backend/cuda/runtime.cpp

  std::mutex call_mutex_;  // one caller's sequence of NCCL calls at a time (Note [non-blocking communicator])
  std::mutex mutex_;       // everything below, and every call on comm_
  ncclComm_t comm_ = nullptr;
  bool aborted_ = false;
  std::string error_;  // set once, when the communicator is aborted; check() throws it
  int64_t next_handle_ = 1;
  std::deque<Pending> pending_;  // in the order queued, which is the order they complete in
  std::vector<cudaEvent_t> free_events_;
  bool stop_ = false;
  std::condition_variable stop_cv_;
  std::thread watchdog_;
};

NcclTransport::NcclTransport(HostTransport& host, int device, std::chrono::milliseconds timeout)
    : device_(device), timeout_(timeout), rank_(host.rank()), size_(host.size()) {
  DL_CHECK(timeout.count() > 0, "NCCL: expected a positive timeout, got ", timeout.count(), " ms");
  compute_ = dl::cuda::context(device).compute;  // checks the device and the versions first
  comm_stream_ = comm_stream(device);
  dl::cuda::DeviceGuard guard(device);
  DL_CUDA_CHECK(cudaEventCreateWithFlags(&compute_mark_, cudaEventDisableTiming));
  try {
    init_communicator(host);
  } catch (...) {
    static_cast<void>(cudaEventDestroy(compute_mark_));  // no destructor runs for a failed constructor
    throw;
  }
  watchdog_ = std::thread(&NcclTransport::watch, this);
}

// Rank 0 makes the unique id and MPI hands it out; then every rank joins the communicator, which does
// not block (Note [non-blocking communicator]): the join is polled against the timeout.
void NcclTransport::init_communicator(HostTransport& host) {
  ncclUniqueId id{};
  if (rank_ == 0) DL_NCCL_CHECK(DL_NCCL(ncclGetUniqueId)(&id));
  host.broadcast(&id, sizeof id, 0, "NCCL unique id");
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  const ncclResult_t st = DL_NCCL(ncclCommInitRankConfig)(&comm_, size_, id, rank_, &config);
  if (st != ncclSuccess && st != ncclInProgress) {
    const std::string text = nccl_error_text(st, comm_);
    if (comm_ != nullptr) static_cast<void>(DL_NCCL(ncclCommAbort)(comm_));
    comm_ = nullptr;
    aborted_ = true;
    DL_THROW("NCCL: could not make the communicator on ", where(), ": ", text);
  }
  settle(lock, "the communicator's creation (ncclCommInitRankConfig)");
}

NcclTransport::~NcclTransport() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  // Not a DeviceGuard: nothing here may throw. Failures are ignored (an event still pending is freed
  // by CUDA when it completes), and cleared so that no later check reports them as its own.
  int previous = -1;
  bool failed = cudaGetDevice(&previous) != cudaSuccess;
  failed |= cudaSetDevice(device_) != cudaSuccess;
  finalize_or_abort();
  for (const Pending& p : pending_) failed |= cudaEventDestroy(p.done) != cudaSuccess;
  for (cudaEvent_t e : free_events_) failed |= cudaEventDestroy(e) != cudaSuccess;
  failed |= cudaEventDestroy(compute_mark_) != cudaSuccess;
  if (previous >= 0 && previous != device_) failed |= cudaSetDevice(previous) != cudaSuccess;
  if (failed) static_cast<void>(cudaGetLastError());
}

// A healthy communicator is finalized (NCCL flushes what is in flight; polled against the timeout) and
// destroyed; one that fails to finalize in time is aborted; an aborted one is left as it is.
void NcclTransport::finalize_or_abort() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (aborted_ || comm_ == nullptr) return;
  ncclResult_t st = DL_NCCL(ncclCommFinalize)(comm_);
  const Clock::time_point deadline = Clock::now() + timeout_;
  while (st == ncclInProgress && Clock::now() < deadline) {
    std::this_thread::sleep_for(kSettlePoll);
    if (DL_NCCL(ncclCommGetAsyncError)(comm_, &st) != ncclSuccess) st = ncclInternalError;
  }
  if (st == ncclSuccess)
    static_cast<void>(DL_NCCL(ncclCommDestroy)(comm_));
  else
    static_cast<void>(DL_NCCL(ncclCommAbort)(comm_));
  comm_ = nullptr;
}

std::string NcclTransport::where() const {
  return dl::detail::str_cat("cuda:", device_, " (rank ", rank_, " of ", size_, ")");
}

// Polls a call that a non-blocking communicator left in progress until it settles; aborts the
// communicator and throws when it fails or when the timeout runs out. `lock` holds mutex_, and is
// released between polls so that the watchdog keeps watching (and may abort).
void NcclTransport::settle(std::unique_lock<std::mutex>& lock, const std::string& what) {
  const Clock::time_point start = Clock::now();
  for (;;) {
    throw_if_failed_locked();
    ncclResult_t state = ncclSuccess;
    DL_NCCL_CHECK(DL_NCCL(ncclCommGetAsyncError)(comm_, &state));
    if (state == ncclSuccess) return;
    if (state != ncclInProgress) {
      abort_locked(dl::detail::str_cat("NCCL: ", what, " failed on ", where(), ": ", nccl_error_text(state, comm_),
                                       "; the communicator was aborted"));
      throw_if_failed_locked();
    }
    if (Clock::now() - start > timeout_) {
      abort_locked(dl::detail::str_cat("NCCL: ", what, " on ", where(), " was still in progress after ",
                                       seconds_text(Clock::now() - start), " (timeout ", seconds_text(timeout_),
                                       "): a rank stalled or died (Note [lost ranks]); the communicator was aborted"));
      throw_if_failed_locked();
    }
    lock.unlock();
    std::this_thread::sleep_for(kSettlePoll);
    lock.lock();
  }
}

void NcclTransport::throw_if_failed_locked() const {
  if (!error_.empty()) throw Error(error_);
  DL_CHECK(!aborted_ && comm_ != nullptr, "NCCL: the communicator on ", where(), " was aborted");
}

// Aborts the communicator and records why, once (Note [nccl watchdog]). NCCL's last message is read
// before the abort frees the communicator. mutex_ is held.
void NcclTransport::abort_locked(const std::string& message) {
  if (aborted_) return;
  aborted_ = true;
  error_ = message;
  if (comm_ == nullptr) return;
  const ncclResult_t st = DL_NCCL(ncclCommAbort)(comm_);
  comm_ = nullptr;
  if (st != ncclSuccess)
    error_ += dl::detail::str_cat(" (ncclCommAbort failed too: ", nccl_error_text(st, nullptr), ")");
}

void NcclTransport::check() {
  std::lock_guard<std::mutex> lock(mutex_);
  throw_if_failed_locked();
}

// Queues one collective: the communication stream waits for the compute work queued so far (Note [comm
// stream and reused blocks]), `call` queues the collective on it, and a completion event recorded after
// it is left to the watchdog (Note [nccl watchdog]). Returns the collective's handle.
template <typename Call>
int64_t NcclTransport::enqueue(const char* name, size_t bytes, Call&& call) {
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  std::unique_lock<std::mutex> lock(mutex_);
  throw_if_failed_locked();
  dl::cuda::DeviceGuard guard(device_);
  const int64_t handle = next_handle_++;
  std::string what = dl::detail::str_cat(name, " of ", bytes, " bytes (collective #", handle, ")");
  DL_CUDA_CHECK(cudaEventRecord(compute_mark_, compute_));
  DL_CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, compute_mark_, 0));
  call(comm_);
  settle(lock, what);
  cudaEvent_t done = take_event_locked();
  const cudaError_t err = cudaEventRecord(done, comm_stream_);
  if (err != cudaSuccess) {
    free_events_.push_back(done);
    dl::cuda::throw_cuda_error(err, "cudaEventRecord(done, comm_stream_)", __FILE__, __LINE__);
  }
  pending_.push_back(Pending{handle, done, std::move(what), Clock::now()});
  return handle;
}

// An event for a completion: one the watchdog saw fire, or a new one. mutex_ is held.
cudaEvent_t NcclTransport::take_event_locked() {
  if (!free_events_.empty()) {
    cudaEvent_t e = free_events_.back();
    free_events_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  DL_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return e;
}

int64_t NcclTransport::all_reduce_async(void* data, int64_t count, DType dtype, ReduceOp op) {
  DL_CHECK(count >= 0, "NCCL all_reduce: expected a count >= 0, got ", count);
  const ncclDataType_t type = nccl_type(dtype);
  const ncclRedOp_t nop = nccl_op(op);
  const auto n = static_cast<size_t>(count);
  return enqueue("all_reduce", n * dtype_size(dtype), [&](ncclComm_t comm) {
    DL_NCCL_CHECK_STARTED(DL_NCCL(ncclAllReduce)(data, data, n, type, nop, comm, comm_stream_));
  });
}

// The compute stream waits for the collective's completion event, on the device (Note [comm stream and
// reused blocks]). A collective no longer pending has completed: nothing to wait for.
void NcclTransport::wait(int64_t handle) {
  std::lock_guard<std::mutex> lock(mutex_);
  DL_CHECK(handle > 0 && handle < next_handle_, "NCCL: wait on handle ", handle, ", which no collective on ", where(),
           " returned (handles so far: 1 to ", next_handle_ - 1, ")");
  throw_if_failed_locked();
  for (const Pending& p : pending_) {
    if (p.handle == handle) {
      dl::cuda::compute_wait(device_, p.done);
      return;
    }
  }
}

void NcclTransport::broadcast(void* data, size_t bytes, int root) {
  DL_CHECK(root >= 0 && root < size_, "NCCL broadcast: root ", root, " is not a rank of the ", size_, " ranks");
  wait(enqueue("broadcast", bytes, [&](ncclComm_t comm) {
    DL_NCCL_CHECK_STARTED(DL_NCCL(ncclBroadcast)(data, data, bytes, ncclUint8, root, comm, comm_stream_));
  }));
}

void NcclTransport::all_gather(const void* in, void* out, size_t bytes) {
  wait(enqueue("all_gather", bytes, [&](ncclComm_t comm) {
    DL_NCCL_CHECK_STARTED(DL_NCCL(ncclAllGather)(in, out, bytes, ncclUint8, comm, comm_stream_));
  }));
}

// The watchdog's loop (Note [nccl watchdog]). An exception here has nowhere to go but std::terminate:
// it is recorded as the transport's error instead.
void NcclTransport::watch() {
  if (cudaSetDevice(device_) != cudaSuccess) static_cast<void>(cudaGetLastError());  // for the event queries
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    stop_cv_.wait_for(lock, kWatchdogPeriod, [this] { return stop_; });
    if (stop_ || aborted_) continue;
    try {
      poll_locked();
    } catch (const std::exception& e) {
      abort_locked(dl::detail::str_cat("NCCL: the watchdog of ", where(), " failed: ", e.what()));
    }
  }
}

// One look at the collectives in flight and the communicator's state. mutex_ is held.
void NcclTransport::poll_locked() {
  // They complete in the order queued (one stream): the first not ready ends the sweep.
  while (!pending_.empty()) {
    const Pending& p = pending_.front();
    const cudaError_t q = cudaEventQuery(p.done);
    if (q == cudaErrorNotReady) break;
    if (q != cudaSuccess) {
      static_cast<void>(cudaGetLastError());
      abort_locked(dl::detail::str_cat("NCCL: ", p.what, " failed on ", where(), ": CUDA error ", cudaGetErrorName(q),
                                       ": ", cudaGetErrorString(q), "; the communicator was aborted"));
      return;
    }
    free_events_.push_back(p.done);
    pending_.pop_front();
  }
  ncclResult_t state = ncclSuccess;
  const ncclResult_t st = DL_NCCL(ncclCommGetAsyncError)(comm_, &state);
  if (st != ncclSuccess) state = st;
  std::string in_flight;
  if (!pending_.empty()) {
    const Pending& p = pending_.front();
    in_flight =
        dl::detail::str_cat(p.what, ", queued ", seconds_text(Clock::now() - p.queued), " ago",
                            pending_.size() > 1 ? dl::detail::str_cat(", and ", pending_.size() - 1, " more") : "");
  }
  if (state != ncclSuccess && state != ncclInProgress) {
    abort_locked(dl::detail::str_cat("NCCL reported an error on ", where(), ": ", nccl_error_text(state, comm_),
                                     in_flight.empty() ? "" : "; in flight: ", in_flight,
                                     "; the communicator was aborted"));
  } else if (!pending_.empty() && Clock::now() - pending_.front().queued > timeout_) {
    const char* last = DL_NCCL(ncclGetLastError)(comm_);
    abort_locked(dl::detail::str_cat(
        "NCCL: ", pending_.front().what, " on ", where(), " has not completed after ",
        seconds_text(Clock::now() - pending_.front().queued), " (timeout ", seconds_text(timeout_),
        "): another rank stalled, died or called a different collective (Note [lost ranks]); in flight: ", in_flight,
        last != nullptr && last[0] != '\0' ? dl::detail::str_cat("; NCCL's last message: ", last) : "",
        "; the communicator was aborted"));
  }
}

}  // namespace

std::shared_ptr<DeviceTransport> make_nccl_transport(HostTransport& host, int device,
                                                     std::chrono::milliseconds timeout) {
  return std::make_shared<NcclTransport>(host, device, timeout);
}

}  // namespace dl::dist::detail
