// The MPI host transport: non-blocking collectives on a duplicate of MPI_COMM_WORLD, waited for by a
// polling loop with a deadline, and a second communicator on which waiting ranks answer "where are
// you?" so that a timeout names the ranks that did not arrive (Note [lost ranks] in process_group.h).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "dist/transport.h"
#include "dl/core/error.h"

namespace dl::dist::detail {

namespace {
using Clock = std::chrono::steady_clock;

constexpr int kQueryTag = 1, kReplyTag = 2;
// Each call of an MPI collective moves at most this many elements (MPI counts are int).
constexpr int64_t kMaxChunk = int64_t{1} << 30;

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::kFloat32:
      return MPI_FLOAT;
    case DType::kFloat64:
      return MPI_DOUBLE;
    case DType::kInt32:
      return MPI_INT32_T;
    case DType::kUInt8:
      return MPI_UINT8_T;
    case DType::kInt64:
      return MPI_INT64_T;
    case DType::kBool:
      return MPI_UINT8_T;  // min is "and", max is "or" (process_group refuses sums of bools)
    case DType::kBFloat16:
    case DType::kFloat16:
      return MPI_UINT16_T;  // the bit patterns; their reductions are the user ops of Reduce16 below
  }
  DL_THROW("dl::dist: no MPI type for ", dtype_name(t));
}

// Note [16-bit reductions over MPI]: MPI has no bfloat16 or float16, so their elements travel as
// MPI_UINT16_T and are reduced by user ops that convert each pair to float, combine them and round
// back to nearest even (dl::BFloat16 / dl::Float16), as NCCL's own bf16 and fp16 reductions do. An op
// serves one format and one reduction, since the datatype it is given cannot tell bf16 from fp16.
template <typename H, ReduceOp kOp>
void reduce16(void* in, void* inout, int* len, MPI_Datatype* /*type*/) {
  const H* a = static_cast<const H*>(in);
  H* b = static_cast<H*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = a[i], y = b[i];
    float r = x + y;
    if constexpr (kOp == ReduceOp::kMin) r = (x < y || x != x) ? x : y;
    if constexpr (kOp == ReduceOp::kMax) r = (x > y || x != x) ? x : y;
    b[i] = H(r);
  }
}

// The six user ops (bf16, fp16) x (sum, min, max), made after MPI_Init and freed before MPI_Finalize.
class Reduce16 {
 public:
  void create() {
    check_create(MPI_Op_create(&reduce16<BFloat16, ReduceOp::kSum>, 1, &ops_[0][0]));
    check_create(MPI_Op_create(&reduce16<BFloat16, ReduceOp::kMin>, 1, &ops_[0][1]));
    check_create(MPI_Op_create(&reduce16<BFloat16, ReduceOp::kMax>, 1, &ops_[0][2]));
    check_create(MPI_Op_create(&reduce16<Float16, ReduceOp::kSum>, 1, &ops_[1][0]));
    check_create(MPI_Op_create(&reduce16<Float16, ReduceOp::kMin>, 1, &ops_[1][1]));
    check_create(MPI_Op_create(&reduce16<Float16, ReduceOp::kMax>, 1, &ops_[1][2]));
  }
  void free() {
    int finalized = 0;
    MPI_Finalized(&finalized);  // a program that finalised MPI itself has freed them with it
    if (finalized) return;
    for (auto& row : ops_)
      for (MPI_Op& op : row)
        if (op != MPI_OP_NULL) MPI_Op_free(&op);
  }
  MPI_Op get(DType t, ReduceOp op) const {
    DL_CHECK(op != ReduceOp::kAverage, "dl::dist: the average of ", dtype_name(t), " over MPI; expected a sum");
    return ops_[t == DType::kBFloat16 ? 0 : 1][op == ReduceOp::kSum ? 0 : op == ReduceOp::kMin ? 1 : 2];
  }

 private:
  static void check_create(int rc) { DL_CHECK(rc == MPI_SUCCESS, "dl::dist: MPI_Op_create failed (", rc, ")"); }
  MPI_Op ops_[2][3] = {{MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL}, {MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL}};
};

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAverage:
      return MPI_SUM;
    case ReduceOp::kMin:
      return MPI_MIN;
    case ReduceOp::kMax:
      return MPI_MAX;
  }
  return MPI_SUM;
}

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(std::max(0, len)));
}

// What a waiting rank tells a rank that asks where it is.
struct Answer {
  int64_t round;    // the asker's question it answers (older answers are stale)
  int64_t seq;      // the collective it waits in (its order number), or the last one it started
  int32_t waiting;  // 1 while it waits in that collective
  char what[108];
};
}  // namespace

class MpiTransport final : public HostTransport {
 public:
  explicit MpiTransport(std::chrono::milliseconds timeout) : timeout_(timeout) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
      DL_CHECK(rc == MPI_SUCCESS, "dl::dist: MPI_Init_thread failed: ", mpi_error_text(rc));
      owns_mpi_ = true;
      // Calls come from one thread at a time, not always the one that initialised MPI.
      DL_CHECK(provided >= MPI_THREAD_SERIALIZED, "dl::dist: this MPI gives thread level ", provided,
               ", libdl needs MPI_THREAD_SERIALIZED (", MPI_THREAD_SERIALIZED, ")");
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    check(MPI_Comm_dup(MPI_COMM_WORLD, &control_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(control_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    reduce16_.create();
  }

  ~MpiTransport() override {
    // After a lost rank, MPI_Finalize would wait for it: stop the run instead (the error was thrown).
    if (broken_) abort(1);
    reduce16_.free();
    if (!owns_mpi_) return;
    MPI_Comm_free(&control_);
    MPI_Comm_free(&comm_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  int64_t all_reduce_async(void* data, int64_t count, DType dtype, ReduceOp op, const std::string& what) override {
    Pending p = start(what);
    const size_t esize = dtype_size(dtype);
    for (int64_t off = 0; off < count; off += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - off));
      MPI_Request r;
      check(MPI_Iallreduce(MPI_IN_PLACE, static_cast<char*>(data) + static_cast<size_t>(off) * esize, n,
                           mpi_type(dtype), is_float16(dtype) ? reduce16_.get(dtype, op) : mpi_op(op), comm_, &r),
            what);
      p.requests.push_back(r);
    }
    if (op == ReduceOp::kAverage) {
      p.average = data;
      p.count = count;
      p.dtype = dtype;
    }
    const int64_t h = next_handle_++;
    pending_.emplace(h, std::move(p));
    return h;
  }

  void wait(int64_t handle) override {
    auto it = pending_.find(handle);
    DL_CHECK(it != pending_.end(), "dl::dist: no collective in flight with handle ", handle);
    Pending p = std::move(it->second);
    pending_.erase(it);
    finish(p);
    if (!p.average) return;
    const double inv = 1.0 / size_;
    if (p.dtype == DType::kFloat32) {
      float* x = static_cast<float*>(p.average);
      for (int64_t i = 0; i < p.count; ++i) x[i] = static_cast<float>(x[i] * inv);
    } else {
      double* x = static_cast<double*>(p.average);
      for (int64_t i = 0; i < p.count; ++i) x[i] *= inv;
    }
  }

  void poll() override {
    for (auto& [h, p] : pending_) {
      int done = 0;
      MPI_Testall(static_cast<int>(p.requests.size()), p.requests.data(), &done, MPI_STATUSES_IGNORE);
    }
    serve_queries();
  }

  void broadcast(void* data, size_t bytes, int root, const std::string& what) override {
    Pending p = start(what);
    for (size_t off = 0; off < bytes; off += static_cast<size_t>(kMaxChunk)) {
      const int n = static_cast<int>(std::min(static_cast<size_t>(kMaxChunk), bytes - off));
      MPI_Request r;
      check(MPI_Ibcast(static_cast<char*>(data) + off, n, MPI_BYTE, root, comm_, &r), what);
      p.requests.push_back(r);
    }
    finish(p);
  }

  void all_gather(const void* in, void* out, size_t bytes, const std::string& what) override {
    DL_CHECK(bytes <= static_cast<size_t>(INT_MAX), "dl::dist: ", what, ": expected at most ", INT_MAX,
             " bytes per rank, got ", bytes);
    Pending p = start(what);
    MPI_Request r;
    check(MPI_Iallgather(in, static_cast<int>(bytes), MPI_BYTE, out, static_cast<int>(bytes), MPI_BYTE, comm_, &r),
          what);
    p.requests.push_back(r);
    finish(p);
  }

  void barrier(const std::string& what) override {
    Pending p = start(what);
    MPI_Request r;
    check(MPI_Ibarrier(comm_, &r), what);
    p.requests.push_back(r);
    finish(p);
  }

  [[noreturn]] void abort(int code) noexcept override {
    std::fflush(nullptr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; should it, this process still stops
  }

 private:
  struct Pending {
    std::vector<MPI_Request> requests;
    std::string what;
    int64_t seq = 0;
    void* average = nullptr;  // divided by size() once complete (ReduceOp::kAverage)
    int64_t count = 0;
    DType dtype = DType::kFloat32;
  };

  void check(int rc, const std::string& what) const {
    if (rc != MPI_SUCCESS) DL_THROW("dl::dist: ", what, " failed on rank ", rank_, ": ", mpi_error_text(rc));
  }

  Pending start(const std::string& what) {
    DL_CHECK(!broken_, "dl::dist: ", what, " on rank ", rank_, ": an earlier collective of this group failed (",
             broken_what_, "); the group cannot be used again");
    Pending p;
    p.what = what;
    p.seq = ++seq_;
    return p;
  }

  // Polls the requests of `p` until all completed, answering other ranks' questions meanwhile; after
  // the timeout, finds out which ranks are missing and throws.
  void finish(Pending& p) {
    auto t0 = Clock::now();
    // What this rank answers while it waits here; cleared however the wait ends (p dies with it).
    struct Waiting {
      MpiTransport& t;
      Waiting(MpiTransport& t, const Pending& p) : t(t) { t.waiting_seq_ = p.seq, t.waiting_what_ = &p.what; }
      ~Waiting() { t.waiting_seq_ = 0, t.waiting_what_ = nullptr; }
    } waiting(*this, p);
    uint64_t polls = 0;
    for (;;) {
      int done = 0;
      const int rc = MPI_Testall(static_cast<int>(p.requests.size()), p.requests.data(), &done, MPI_STATUSES_IGNORE);
      if (rc != MPI_SUCCESS) {
        broken_ = true;
        broken_what_ = p.what;
        check(rc, p.what + " (collective #" + std::to_string(p.seq) + ")");
      }
      if (done) break;
      serve_queries();
      // MPI moves a collective on only inside MPI calls (a large one takes many rounds): poll without
      // sleeping, yielding the core now and then, and sleep only once the wait has lasted a second
      // (then the other ranks are computing, not transferring).
      if (++polls % 1024 == 0) {
        const auto waited = Clock::now() - t0;
        if (waited > timeout_ && !lost(p, waited)) {  // every rank is in it after all: wait on
          t0 = Clock::now();
          continue;
        }
        if (waited > std::chrono::seconds(1))
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        else
          std::this_thread::yield();
      }
    }
  }

  // Answers every "where are you?" that arrived: the collective this rank waits in, or the last one.
  void serve_queries() {
    for (;;) {
      int flag = 0;
      MPI_Status st;
      if (MPI_Iprobe(MPI_ANY_SOURCE, kQueryTag, control_, &flag, &st) != MPI_SUCCESS || !flag) return;
      int64_t round = 0;
      MPI_Recv(&round, 1, MPI_INT64_T, st.MPI_SOURCE, kQueryTag, control_, MPI_STATUS_IGNORE);
      Answer a{};
      a.round = round;
      a.seq = waiting_seq_ ? waiting_seq_ : seq_;
      a.waiting = waiting_seq_ ? 1 : 0;
      const std::string what = waiting_what_ ? *waiting_what_ : std::string("computing");
      std::memcpy(a.what, what.data(), std::min(what.size(), sizeof a.what - 1));
      // Small and eager: returns at once, also when the asker has gone.
      MPI_Send(&a, sizeof a, MPI_BYTE, st.MPI_SOURCE, kReplyTag, control_);
    }
  }

  // After the timeout: asks every other rank where it is. Returns false when the collective completed
  // meanwhile or every rank answered that it waits in it (slow, not lost); otherwise throws, naming
  // the ranks that did not arrive.
  bool lost(Pending& p, Clock::duration waited) {
    ++round_;
    for (int r = 0; r < size_; ++r)
      if (r != rank_) MPI_Send(&round_, 1, MPI_INT64_T, r, kQueryTag, control_);
    const auto grace = std::clamp<Clock::duration>(timeout_ / 2, std::chrono::seconds(1), std::chrono::seconds(10));
    std::map<int, Answer> answers;
    const auto t0 = Clock::now();
    while (static_cast<int>(answers.size()) < size_ - 1 && Clock::now() - t0 < grace) {
      int done = 0;
      MPI_Testall(static_cast<int>(p.requests.size()), p.requests.data(), &done, MPI_STATUSES_IGNORE);
      if (done) return false;  // the answers still on their way are read as stale and ignored
      serve_queries();
      int flag = 0;
      MPI_Status st;
      if (MPI_Iprobe(MPI_ANY_SOURCE, kReplyTag, control_, &flag, &st) == MPI_SUCCESS && flag) {
        Answer a{};
        MPI_Recv(&a, sizeof a, MPI_BYTE, st.MPI_SOURCE, kReplyTag, control_, MPI_STATUS_IGNORE);
        a.what[sizeof a.what - 1] = '\0';
        if (a.round == round_) answers[st.MPI_SOURCE] = a;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    std::string who;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      auto it = answers.find(r);
      std::string line;
      if (it == answers.end()) {
        line = "rank " + std::to_string(r) +
               " did not answer (stalled outside a collective, e.g. computing or waiting for its GPU, or its process "
               "died)";
      } else if (!it->second.waiting) {
        line = "rank " + std::to_string(r) + " is computing after collective #" + std::to_string(it->second.seq);
      } else if (it->second.seq != p.seq) {
        line = "rank " + std::to_string(r) + " waits in " + it->second.what + " (collective #" +
               std::to_string(it->second.seq) + ")";
      } else {
        continue;  // it waits in the same collective
      }
      who += (who.empty() ? "" : "; ") + line;
    }
    if (who.empty()) return false;  // every rank waits in this collective: slow, not lost
    broken_ = true;
    broken_what_ = p.what;
    const double s = std::chrono::duration<double>(waited).count();
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.1f", s);
    DL_THROW("dl::dist: rank ", rank_, " of ", size_, " waited ", secs, " s in ", p.what, " (collective #", p.seq,
             ") for the other ranks: ", who, ". The run stops (ProcessGroupOptions::timeout, DL_DIST_TIMEOUT)");
  }

  std::chrono::milliseconds timeout_;
  bool owns_mpi_ = false;
  Reduce16 reduce16_;
  MPI_Comm comm_ = MPI_COMM_NULL, control_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  int64_t seq_ = 0;          // collectives started
  int64_t waiting_seq_ = 0;  // the one being waited for (0: none)
  const std::string* waiting_what_ = nullptr;
  std::map<int64_t, Pending> pending_;  // all_reduce_async's, by handle
  int64_t next_handle_ = 0;
  int64_t round_ = 0;  // questions asked by lost()
  bool broken_ = false;
  std::string broken_what_;
};

std::shared_ptr<HostTransport> make_mpi_transport(std::chrono::milliseconds timeout) {
  return std::make_shared<MpiTransport>(timeout);
}

}  // namespace dl::dist::detail
