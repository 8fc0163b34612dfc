// ProcessGroup: the launcher's environment, the world, and the checks in front of the transports.
#include "dl/dist/process_group.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string_view>

#include "dist/transport.h"
#include "dl/config.h"
#include "dl/core/error.h"
#include "dl/core/parse.h"

namespace dl::dist {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAverage:
      return "average";
    case ReduceOp::kMin:
      return "min";
    case ReduceOp::kMax:
      return "max";
  }
  return "?";
}

bool built_with_mpi() { return DL_WITH_MPI != 0; }
bool built_with_nccl() { return DL_WITH_NCCL != 0; }

namespace {
// The first of `names` set in the environment, read as an integer in [lo, hi]; -1 when none is set.
int env_int(std::initializer_list<const char*> names, int lo, int hi) {
  for (const char* n : names)
    if (const char* v = std::getenv(n); v && *v)
      return static_cast<int>(parse_int(v, lo, hi, std::string("the launcher's ") + n));
  return -1;
}
}  // namespace

LaunchInfo launch_info() {
  LaunchInfo info;
  constexpr int kMax = 1 << 24;
  struct Launcher {
    const char* name;
    const char *rank, *size, *local_rank, *local_size;
  };
  // OpenMPI's mpirun first; then PMIx and MPICH's Hydra (PMI); Slurm's srun last, since mpirun inside
  // an allocation also sees the SLURM_ variables of the allocation.
  const Launcher launchers[] = {
      {"OpenMPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
       "OMPI_COMM_WORLD_LOCAL_SIZE"},
      {"PMI", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
      {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"},
  };
  for (const Launcher& l : launchers) {
    // Slurm sets SLURM_PROCID and SLURM_NTASKS in a batch script too, where one process runs alone:
    // only a step that srun started (SLURM_STEP_ID) is a launch.
    if (std::string_view(l.name) == "Slurm" && !std::getenv("SLURM_STEP_ID")) continue;
    const int size = env_int({l.size}, 1, kMax);
    const int rank = env_int({l.rank}, 0, kMax);
    if (size < 1 || rank < 0) continue;
    DL_CHECK(rank < size, "the launcher (", l.name, ") says this is rank ", rank, " of ", size);
    info.launcher = l.name;
    info.rank = rank;
    info.size = size;
    const int local_rank = env_int({l.local_rank}, 0, kMax);
    const int local_size = env_int({l.local_size}, 1, kMax);
    info.local_rank = local_rank >= 0 ? local_rank : 0;
    info.local_size = local_size >= 1 ? local_size : 1;
    if (info.local_rank >= info.local_size) info.local_size = info.local_rank + 1;
    return info;
  }
  return info;
}

ProcessGroup::~ProcessGroup() {
  devices_.clear();  // before host_: NCCL's teardown may still use MPI's ranks
}

namespace {
std::string bytes_text(size_t bytes) {
  char buf[48];
  if (bytes >= (size_t{1} << 20))
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%zu bytes", bytes);
  return buf;
}

void check_collective_tensor(const Tensor& t, const char* who) {
  DL_CHECK(t.defined(), "dl::dist::", who, ": the tensor is undefined");
  DL_CHECK(t.device().is_cpu() || t.device().is_cuda(), "dl::dist::", who,
           ": expected a CPU or CUDA tensor, got one on ", t.device().str());
}

// The shape and dtype of `t` on every rank must agree, or each rank would read past another's buffer:
// the first collective on a new tensor compares them (a small all-gather), naming the ranks that differ.
void check_same_everywhere(detail::HostTransport& host, const Tensor& t, const char* who) {
  struct Sig {
    int64_t numel;
    int32_t dtype;
    int32_t ndim;
    int64_t dims[8];
  } mine{};
  mine.numel = t.numel();
  mine.dtype = static_cast<int32_t>(t.dtype());
  mine.ndim = t.dim();
  for (int d = 0; d < t.dim() && d < 8; ++d) mine.dims[d] = t.size(d);
  std::vector<Sig> all(static_cast<size_t>(host.size()));
  host.all_gather(&mine, all.data(), sizeof(Sig), std::string("the shape check of ") + who);
  for (int r = 0; r < host.size(); ++r) {
    const Sig& s = all[static_cast<size_t>(r)];
    if (s.numel == mine.numel && s.dtype == mine.dtype) continue;
    DL_THROW("dl::dist::", who, ": rank ", host.rank(), " has a ", t.shape().str(), " ", dtype_name(t.dtype()),
             " tensor, rank ", r, " one of ", s.numel, " elements of ", dtype_name(static_cast<DType>(s.dtype)),
             ": every rank must pass the same shape and dtype");
  }
}
}  // namespace

detail::DeviceTransport& ProcessGroup::device_transport(const Tensor& t) {
  const int index = t.device().index;
  if (devices_.size() <= static_cast<size_t>(index)) devices_.resize(static_cast<size_t>(index) + 1);
  auto& d = devices_[static_cast<size_t>(index)];
  if (!d) d = detail::make_nccl_transport(*host_, index, options_.timeout);
  d->check();
  return *d;
}

void ProcessGroup::all_reduce(Tensor& t, ReduceOp op) {
  if (host_) {
    check_collective_tensor(t, "all_reduce");
    check_same_everywhere(*host_, t, "all_reduce");
  }
  all_reduce_async(t, op).wait();
}

Work ProcessGroup::all_reduce_async(Tensor& t, ReduceOp op) {
  check_collective_tensor(t, "all_reduce");
  DL_CHECK(t.dtype() != DType::kUInt8 || op == ReduceOp::kMin || op == ReduceOp::kMax, "dl::dist::all_reduce: a ",
           reduce_op_name(op), " of uint8 would overflow; expected min or max");
  DL_CHECK(t.dtype() != DType::kBool || op == ReduceOp::kMin || op == ReduceOp::kMax, "dl::dist::all_reduce: a ",
           reduce_op_name(op), " of bool is not a bool; expected min (and) or max (or)");
  DL_CHECK(op != ReduceOp::kAverage || t.dtype() == DType::kFloat32 || t.dtype() == DType::kFloat64,
           "dl::dist::all_reduce: the average of ", dtype_name(t.dtype()),
           " tensors is not exact; expected float32 or "
           "float64 (or a sum)");
  if (!host_) {
    return Work();  // a world of one: the sum, average, min and max of one tensor is itself
  }
  if (t.device().is_cuda()) {
    auto& d = device_transport(t);
    const int64_t h = d.all_reduce_async(t.raw_data(), t.numel(), t.dtype(), op);
    // `keep`: the block stays out of the caching allocator until the compute stream is ordered after
    // the collective (Note [comm stream and reused blocks] in nccl_transport.cpp).
    return Work([&d, h, keep = t]() mutable {
      d.wait(h);
      keep = Tensor();
    });
  }
  const std::string what = std::string("all_reduce (") + reduce_op_name(op) + ") of " + bytes_text(t.nbytes());
  const int64_t h = host_->all_reduce_async(t.raw_data(), t.numel(), t.dtype(), op, what);
  auto host = host_;
  Tensor keep = t;  // alive until the wait, whatever the caller does with its handle
  return Work([host, h, keep]() mutable {
    host->wait(h);
    keep = Tensor();
  });
}

void ProcessGroup::broadcast(Tensor& t, int root) {
  check_collective_tensor(t, "broadcast");
  DL_CHECK(root >= 0 && root < size_, "dl::dist::broadcast: root ", root, " is not a rank of this group of ", size_);
  if (!host_) return;
  check_same_everywhere(*host_, t, "broadcast");
  if (t.device().is_cuda()) return device_transport(t).broadcast(t.raw_data(), t.nbytes(), root);
  host_->broadcast(t.raw_data(), t.nbytes(), root,
                   "broadcast of " + bytes_text(t.nbytes()) + " from rank " + std::to_string(root));
}

Tensor ProcessGroup::all_gather(const Tensor& t) {
  check_collective_tensor(t, "all_gather");
  std::vector<int64_t> dims{size_};
  for (int d = 0; d < t.dim(); ++d) dims.push_back(t.size(d));
  Tensor out = Tensor::empty(Shape(dims), t.dtype(), t.device());
  if (!host_) {
    out.view(t.shape()).copy_(t);
    return out;
  }
  check_same_everywhere(*host_, t, "all_gather");
  const Tensor in = t.clone();  // contiguous, and never the output
  if (t.device().is_cuda()) {
    device_transport(t).all_gather(in.raw_data(), out.raw_data(), in.nbytes());
  } else {
    host_->all_gather(in.raw_data(), out.raw_data(), in.nbytes(), "all_gather of " + bytes_text(in.nbytes()));
  }
  return out;
}

void ProcessGroup::poll() {
  if (host_) host_->poll();
}

void ProcessGroup::check() {
  for (auto& d : devices_)
    if (d) d->check();
}

void ProcessGroup::barrier() {
  if (host_) host_->barrier("barrier");
}

std::vector<std::string> ProcessGroup::gather_errors(const std::string& my_error) {
  if (!host_) return {my_error};
  constexpr size_t kLen = 1024;
  std::vector<char> mine(kLen, '\0'), all(kLen * static_cast<size_t>(size_));
  std::memcpy(mine.data(), my_error.data(), std::min(my_error.size(), kLen - 24));
  host_->all_gather(mine.data(), all.data(), kLen, "the exchange of errors");
  std::vector<std::string> out;
  for (int r = 0; r < size_; ++r) out.emplace_back(all.data() + static_cast<size_t>(r) * kLen);
  return out;
}

void ProcessGroup::abort(int code) noexcept {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  if (host_) host_->abort(code);
  std::_Exit(code);
}

namespace {
std::mutex g_world_mu;
std::unique_ptr<ProcessGroup> g_world;
bool g_shut_down = false;
}  // namespace

std::unique_ptr<ProcessGroup> make_single_process_group() { return std::unique_ptr<ProcessGroup>(new ProcessGroup()); }

ProcessGroup& world(const ProcessGroupOptions& options) {
  std::lock_guard<std::mutex> lock(g_world_mu);
  if (g_world) return *g_world;
  DL_CHECK(!g_shut_down, "dl::dist::world: the world was shut down (dl::dist::shutdown); MPI cannot start again");
  ProcessGroupOptions o = options;
  if (const char* v = std::getenv("DL_DIST_TIMEOUT"); v && *v)
    o.timeout = std::chrono::milliseconds(
        static_cast<int64_t>(1000 * parse_double(v, 0.001, 1e7, "the environment's DL_DIST_TIMEOUT (seconds)")));
  DL_CHECK(o.timeout.count() > 0, "dl::dist: expected a timeout > 0, got ", o.timeout.count(), " ms");
  const LaunchInfo info = launch_info();
  std::unique_ptr<ProcessGroup> g(new ProcessGroup());
  g->options_ = o;
  if (info.size > 1) {
    DL_CHECK(built_with_mpi(), "dl::dist: the launcher (", info.launcher, ") started ", info.size,
             " ranks, but this libdl was built without MPI; install libopenmpi-dev and rebuild (DL_MPI=ON)");
    g->host_ = detail::make_mpi_transport(o.timeout);
    DL_CHECK(g->host_->size() == info.size && g->host_->rank() == info.rank, "dl::dist: MPI says rank ",
             g->host_->rank(), " of ", g->host_->size(), ", the launcher's environment rank ", info.rank, " of ",
             info.size);
    g->rank_ = info.rank;
    g->size_ = info.size;
    g->local_rank_ = info.local_rank;
    g->local_size_ = info.local_size;
  }
  g_world = std::move(g);
  return *g_world;
}

bool world_is_distributed() {
  std::lock_guard<std::mutex> lock(g_world_mu);
  return g_world && g_world->size() > 1;
}

void shutdown() {
  std::unique_ptr<ProcessGroup> w;
  {
    std::lock_guard<std::mutex> lock(g_world_mu);
    w = std::move(g_world);
    g_shut_down = w && w->host_;  // a world of one may be made again
  }
  if (!w) return;
  w->devices_.clear();  // the communicators first, then MPI (they were bootstrapped over it)
  w.reset();
}

namespace detail {
#if !DL_WITH_MPI
std::shared_ptr<HostTransport> make_mpi_transport(std::chrono::milliseconds) {
  DL_THROW("dl::dist: this libdl was built without MPI (libopenmpi-dev); rebuild with DL_MPI=ON");
}
#endif
#if !DL_WITH_NCCL
std::shared_ptr<DeviceTransport> make_nccl_transport(HostTransport&, int device, std::chrono::milliseconds) {
  DL_THROW("dl::dist: collectives on CUDA tensors (cuda:", device,
           ") need NCCL, and this libdl was built without it (CUDA ", DL_WITH_CUDA ? "on" : "off", ", MPI ",
           DL_WITH_MPI ? "on" : "off", ")");
}
#endif
}  // namespace detail

}  // namespace dl::dist
