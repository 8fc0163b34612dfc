// The engines under dl::dist::ProcessGroup (private to libdl): a host transport (MPI) that moves
// host buffers between the processes, and a device transport (NCCL) per CUDA device that moves
// device buffers on that device's streams. The ProcessGroup checks tensors and picks the transport.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "dl/core/dtype.h"
#include "dl/dist/process_group.h"

namespace dl::dist::detail {

// Collectives over host memory between the processes of the run. Every call is collective: each rank
// makes the same calls in the same order. `what` names the collective in errors ("all_reduce of 1.2 MB").
class HostTransport {
 public:
  virtual ~HostTransport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Starts an all-reduce in place; returns a handle for wait().
  virtual int64_t all_reduce_async(void* data, int64_t count, DType dtype, ReduceOp op, const std::string& what) = 0;
  // Blocks until the collective of `handle` completed; throws after the timeout (Note [lost ranks]).
  virtual void wait(int64_t handle) = 0;
  // Moves the collectives in flight forward without waiting (MPI progresses only inside MPI calls).
  virtual void poll() = 0;
  virtual void broadcast(void* data, size_t bytes, int root, const std::string& what) = 0;
  // `out` holds size() * bytes: rank r's `in` lands at r * bytes.
  virtual void all_gather(const void* in, void* out, size_t bytes, const std::string& what) = 0;
  virtual void barrier(const std::string& what) = 0;
  // MPI_Abort: stops every rank of the run.
  [[noreturn]] virtual void abort(int code) noexcept = 0;
};

// The MPI transport over MPI_COMM_WORLD, initialising MPI (defined in mpi_transport.cpp; throws when
// this libdl was built without MPI).
std::shared_ptr<HostTransport> make_mpi_transport(std::chrono::milliseconds timeout);

// Collectives over the device memory of one CUDA device, one communicator per device (NCCL). Calls
// are enqueued on the device's streams; none waits on the host.
class DeviceTransport {
 public:
  virtual ~DeviceTransport() = default;
  // Enqueues an all-reduce in place after the work already on the compute stream; returns a handle.
  virtual int64_t all_reduce_async(void* data, int64_t count, DType dtype, ReduceOp op) = 0;
  // Makes the compute stream wait for the collective of `handle` (no host synchronisation).
  virtual void wait(int64_t handle) = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  virtual void all_gather(const void* in, void* out, size_t bytes) = 0;
  // Throws a dl::Error when the communicator reported an asynchronous error, or a collective has not
  // completed within the timeout (the communicator is aborted first, Note [lost ranks]).
  virtual void check() = 0;
};

// NCCL on `device` for the ranks of `host` (the unique id is broadcast over it); defined in
// nccl_transport.cpp, or throws when this libdl was built without NCCL.
std::shared_ptr<DeviceTransport> make_nccl_transport(HostTransport& host, int device,
                                                     std::chrono::milliseconds timeout);

}  // namespace dl::dist::detail
