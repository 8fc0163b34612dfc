// dl::dist: the processes of a data-parallel run and their collectives, on the engines the field
// already runs: MPI (Debian's OpenMPI; mpirun, srun) for processes, machines and CPU tensors, NCCL for
// CUDA tensors (its unique id handed out over MPI, one communicator per device).
//
//   mpirun -np 4 prog ...                 // launch
//   dl::dist::ProcessGroup& w = dl::dist::world();   // rank, size, local rank from the launcher
//   w.all_reduce(t, dl::dist::ReduceOp::kAverage);   // CPU tensor: MPI; CUDA tensor: NCCL
//
// Note [lost ranks]: a collective that has not completed after the group's timeout asks every other
// rank where it is (over a second MPI communicator that every waiting rank answers) and throws a
// dl::Error naming the collective and the ranks that did not arrive or did not answer ("rank 1 did not
// answer: stalled, or its process died"). After such an error, or any error escaping main under a
// launcher (dl::train::run_main), the process calls MPI_Abort rather than MPI_Finalize, so the launcher
// stops every rank: a lost rank is an error within the timeout, never a hang. A rank killed outright is
// seen by the launcher at once (mpirun stops the others and names it).
//
// Without a launcher (or built without MPI) the world is this process alone: every collective is the
// identity, and asking for more ranks says what is missing.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dl/core/tensor.h"

namespace dl::dist {

enum class ReduceOp { kSum, kAverage, kMin, kMax };
const char* reduce_op_name(ReduceOp op);

// What the launcher's environment says about this process (OpenMPI's OMPI_COMM_WORLD_*, PMIx's
// PMIX_RANK, Slurm's SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID, MPICH's PMI_RANK/PMI_SIZE). A process
// started by hand is rank 0 of 1.
struct LaunchInfo {
  int rank = 0, size = 1;
  int local_rank = 0, local_size = 1;  // among the processes of this machine
  std::string launcher;                // "OpenMPI", "Slurm", "PMI", or empty
};
LaunchInfo launch_info();

bool built_with_mpi();   // this libdl has the MPI process group
bool built_with_nccl();  // ... and NCCL for CUDA tensors

struct ProcessGroupOptions {
  // How long a collective may wait for the other ranks before it throws (Note [lost ranks]). The
  // environment's DL_DIST_TIMEOUT (seconds) overrides the default.
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
};

namespace detail {
class HostTransport;
class DeviceTransport;
}  // namespace detail

// A handle on a collective in flight (all_reduce_async): wait() before reading the tensor. CPU
// tensors: wait() blocks until the collective completed (or throws after the timeout). CUDA tensors:
// it orders the device's compute stream after the collective, without waiting on the host.
class Work {
 public:
  Work() = default;
  explicit Work(std::function<void()> wait) : wait_(std::move(wait)) {}
  Work(Work&& o) noexcept : wait_(std::move(o.wait_)) { o.wait_ = nullptr; }
  Work& operator=(Work&& o) noexcept {
    finish_quietly();
    wait_ = std::move(o.wait_);
    o.wait_ = nullptr;
    return *this;
  }
  // A collective still in flight is waited for: its tensor must outlive the transfer. (An error then
  // cannot be thrown from here; the group is broken and its next collective says so.)
  ~Work() { finish_quietly(); }
  void wait() {
    if (!wait_) return;
    auto w = std::move(wait_);
    wait_ = nullptr;
    w();
  }
  bool pending() const { return static_cast<bool>(wait_); }

 private:
  void finish_quietly() noexcept {
    try {
      wait();
    } catch (...) {
    }
  }
  std::function<void()> wait_;
};

class ProcessGroup {
 public:
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  const ProcessGroupOptions& options() const { return options_; }

  // Collectives on whole contiguous tensors, in place; every rank calls them in the same order with
  // tensors of the same shape and dtype: all_reduce, broadcast and all_gather check that first (one
  // small message more; a mismatch is an error on every rank). CPU tensors go over MPI, CUDA tensors
  // over NCCL on their device's compute stream. The average is for float32 and float64 tensors.
  void all_reduce(Tensor& t, ReduceOp op = ReduceOp::kSum);
  // The same, started and left in flight, without the shape check (the caller's layout is fixed, as a
  // data-parallel reducer's buckets are); `t` must stay untouched until Work::wait().
  Work all_reduce_async(Tensor& t, ReduceOp op = ReduceOp::kSum);
  // Moves the all_reduce_async's in flight forward (MPI progresses only inside MPI calls): a caller
  // that computes between starting and waiting calls it now and then, for the overlap.
  void poll();
  // Throws when a device communicator failed since (an asynchronous NCCL error, a collective past its
  // timeout): its results must not reach the weights.
  void check();
  void broadcast(Tensor& t, int root = 0);
  // Every rank's `t` stacked along a new first dimension: [size, t's shape...], rank order.
  Tensor all_gather(const Tensor& t);
  void barrier();

  // Agreement on an error: each rank passes "" or its error message; returns every rank's message,
  // the same list on every rank (a rank that failed alone would leave the others waiting in the next
  // collective). Messages are cut at 1,000 bytes.
  std::vector<std::string> gather_errors(const std::string& my_error);

  // Stops every rank of the run (MPI_Abort) after flushing this one's output; exits with `code`.
  [[noreturn]] void abort(int code) noexcept;

 private:
  friend ProcessGroup& world(const ProcessGroupOptions&);
  friend std::unique_ptr<ProcessGroup> make_single_process_group();
  friend void shutdown();
  ProcessGroup() = default;
  detail::DeviceTransport& device_transport(const Tensor& t);

  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  ProcessGroupOptions options_;
  std::shared_ptr<detail::HostTransport> host_;                    // null in a world of one
  std::vector<std::shared_ptr<detail::DeviceTransport>> devices_;  // per CUDA device, made on first use
};

// The group of every process of the run, made on first call from the launcher's environment (MPI is
// initialised then, and finalised at exit); later calls return it and ignore `options`. Throws when
// the launcher started several ranks but this libdl was built without MPI.
ProcessGroup& world(const ProcessGroupOptions& options = {});
// A group of this process alone, whatever the launcher says (tests, reference runs).
std::unique_ptr<ProcessGroup> make_single_process_group();
// True once world() made a group of more than one rank.
bool world_is_distributed();
// Ends the world made by world(): its NCCL communicators, then MPI (MPI_Finalize), while the CUDA
// runtime is still up (run_main calls it when the program's body returned). A later world() throws.
void shutdown();

}  // namespace dl::dist
