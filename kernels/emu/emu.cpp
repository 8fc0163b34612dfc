// The CPU emulation of CUDA launches (see emu.h): blocks on a few OS threads, the threads of a block as
// ucontext fibers that switch at __syncthreads(), resumed in a shuffled order after every barrier.
#include "emu/emu.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(__SANITIZE_ADDRESS__)
#define __SANITIZE_ADDRESS__ 1  // clang before 2025 reports AddressSanitizer only this way
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define DL_EMU_ASAN 1
#else
#define DL_EMU_ASAN 0
#endif

namespace dl::emu {
namespace {

// AddressSanitizer instruments deeper frames; both sizes leave room for kernels with local arrays.
constexpr size_t kStackBytes = (DL_EMU_ASAN ? 512 : 128) * 1024;

std::atomic<uint64_t> g_block_serial{1};
std::atomic<uint64_t> g_barriers{0};
std::atomic<uint64_t> g_launch_serial{0};

struct Fiber {
  ucontext_t ctx;
  dim3 idx;
  bool done = false;
  const char* barrier_file = "";  // where the fiber waits, while it waits
  int barrier_line = 0;
  void* asan_fake_stack = nullptr;
};

// Runs the blocks given to one OS thread. The fiber stacks are one lazily committed mapping, reused
// from block to block.
class BlockRunner {
 public:
  ~BlockRunner() {
    if (stacks_) munmap(stacks_, stack_capacity_ * kStackBytes);
  }

  void run(const std::function<void()>& body, dim3 block, std::mt19937_64& rng, bool shuffle) {
    const size_t n = static_cast<size_t>(block.x) * block.y * block.z;
    reserve_stacks(n);
    body_ = &body;
    error_ = nullptr;
    fibers_.assign(n, Fiber{});
    for (size_t i = 0; i < n; ++i) start_fiber(i, block);
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    // Each round resumes every live fiber once; it comes back at its next barrier or when it ends.
    for (size_t alive = n; alive > 0;) {
      if (shuffle) std::shuffle(order.begin(), order.end(), rng);
      alive = 0;
      for (size_t i : order)
        if (!fibers_[i].done) resume(i);
      for (const Fiber& f : fibers_) alive += f.done ? 0 : 1;
      if (alive > 0 && !error_) check_barrier(alive);
      if (error_) break;  // fibers still waiting are abandoned; their stacks are reused
    }
    if (error_) std::rethrow_exception(error_);
  }

  // Called on a fiber's stack by __syncthreads().
  void yield_to_scheduler(const char* file, int line) {
    g_barriers.fetch_add(1, std::memory_order_relaxed);
    Fiber& f = fibers_[current_];
    f.barrier_file = file;
    f.barrier_line = line;
    switch_out(&f.asan_fake_stack);
    swapcontext(&f.ctx, &scheduler_);
    switch_in(f.asan_fake_stack);
  }

  // After a round with live fibers, all of them wait at one barrier: the same call site, and nobody exited.
  void check_barrier(size_t alive) {
    const Fiber* waiting = nullptr;
    const Fiber* other = nullptr;
    for (const Fiber& f : fibers_) {
      if (f.done) {
        other = &f;
        continue;
      }
      if (!waiting) waiting = &f;
      if (f.barrier_line != waiting->barrier_line || std::strcmp(f.barrier_file, waiting->barrier_file) != 0) {
        other = &f;
        break;
      }
    }
    if (!other) return;
    const auto where = [](const Fiber& f) {
      return "thread (" + std::to_string(f.idx.x) + ", " + std::to_string(f.idx.y) + ", " + std::to_string(f.idx.z) +
             ")";
    };
    std::string msg = "emulation: divergent __syncthreads() in block (" + std::to_string(state().block_idx.x) + ", " +
                      std::to_string(state().block_idx.y) + "): " + where(*waiting) + " waits at " +
                      waiting->barrier_file + ":" + std::to_string(waiting->barrier_line) + " while " + where(*other);
    msg += other->done ? " has exited"
                       : " waits at " + std::string(other->barrier_file) + ":" + std::to_string(other->barrier_line);
    msg += " (" + std::to_string(alive) + " of " + std::to_string(fibers_.size()) + " threads waiting)";
    error_ = std::make_exception_ptr(std::logic_error(msg));
  }

  static BlockRunner*& current_runner() {
    thread_local BlockRunner* runner = nullptr;
    return runner;
  }

 private:
  // One mapping for n stacks; the lowest page of each is a guard (PROT_NONE), so a kernel that overflows
  // its fiber's stack faults instead of writing into the next fiber's.
  void reserve_stacks(size_t n) {
    if (n <= stack_capacity_) return;
    if (stacks_) munmap(stacks_, stack_capacity_ * kStackBytes);
    stacks_ = nullptr;
    stack_capacity_ = 0;
    void* p =
        mmap(nullptr, n * kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("emulation: cannot map " + std::to_string(n) + " fiber stacks");
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    for (size_t i = 0; i < n; ++i)
      if (mprotect(static_cast<char*>(p) + i * kStackBytes, page, PROT_NONE) != 0) {
        munmap(p, n * kStackBytes);
        throw std::runtime_error("emulation: cannot protect the guard page of a fiber stack");
      }
    stacks_ = static_cast<char*>(p);
    stack_capacity_ = n;
  }

  void start_fiber(size_t i, dim3 block) {
    Fiber& f = fibers_[i];
    f.idx = dim3(static_cast<unsigned>(i % block.x), static_cast<unsigned>(i / block.x % block.y),
                 static_cast<unsigned>(i / (static_cast<size_t>(block.x) * block.y)));
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stacks_ + i * kStackBytes;
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &scheduler_;
    makecontext(&f.ctx, &BlockRunner::fiber_main, 0);
  }

  void resume(size_t i) {
    current_ = i;
    state().thread_idx = fibers_[i].idx;
#if DL_EMU_ASAN
    __sanitizer_start_switch_fiber(&scheduler_fake_stack_, stacks_ + i * kStackBytes, kStackBytes);
#endif
    swapcontext(&scheduler_, &fibers_[i].ctx);
#if DL_EMU_ASAN
    __sanitizer_finish_switch_fiber(scheduler_fake_stack_, nullptr, nullptr);
#endif
  }

  static void fiber_main() {
    BlockRunner& r = *current_runner();
    r.switch_in(nullptr);
    try {
      (*r.body_)();
    } catch (...) {
      if (!r.error_) r.error_ = std::current_exception();
    }
    r.fibers_[r.current_].done = true;
    r.switch_out(nullptr);  // this fiber's fake stack dies with it; uc_link returns to the scheduler
  }

  // AddressSanitizer must be told about every stack switch (no-ops without it).
  void switch_out(void** fake_stack_save) {
#if DL_EMU_ASAN
    __sanitizer_start_switch_fiber(fake_stack_save, scheduler_stack_bottom_, scheduler_stack_size_);
#else
    (void)fake_stack_save;
#endif
  }
  void switch_in(void* fake_stack) {
#if DL_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, &scheduler_stack_bottom_, &scheduler_stack_size_);
#else
    (void)fake_stack;
#endif
  }

  ucontext_t scheduler_{};
  std::vector<Fiber> fibers_;
  size_t current_ = 0;
  const std::function<void()>* body_ = nullptr;
  std::exception_ptr error_;
  char* stacks_ = nullptr;
  size_t stack_capacity_ = 0;
  void* scheduler_fake_stack_ = nullptr;
  const void* scheduler_stack_bottom_ = nullptr;
  size_t scheduler_stack_size_ = 0;
};

// Takes blocks from the shared queue until it is empty.
void run_blocks(const std::vector<uint64_t>& order, std::atomic<size_t>& next, dim3 grid, dim3 block,
                const std::function<void()>& body, uint64_t seed, bool shuffle, std::exception_ptr& error,
                std::mutex& error_mutex) {
  BlockRunner runner;
  BlockRunner::current_runner() = &runner;
  ThreadState& st = state();
  st.block_dim = block;
  st.grid_dim = grid;
  for (size_t k = next.fetch_add(1); k < order.size(); k = next.fetch_add(1)) {
    const uint64_t b = order[k];
    st.block_idx = dim3(static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                        static_cast<unsigned>(b / (static_cast<uint64_t>(grid.x) * grid.y)));
    st.block_serial = g_block_serial.fetch_add(1);
    // Each block's fiber order depends on the launch's seed and the block's index only, not on which
    // OS thread took it: a failing order can be replayed.
    std::mt19937_64 rng(seed ^ (0xD1B54A32D192ED03ull * (b + 1)));
    try {
      runner.run(body, block, rng, shuffle);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next.store(order.size());
    }
  }
  BlockRunner::current_runner() = nullptr;
}

}  // namespace

ThreadState& state() {
  thread_local ThreadState s;
  return s;
}

Options& options() {
  static Options o;
  return o;
}

uint64_t barrier_count() { return g_barriers.load(); }

void sync_threads(const char* file, int line) {
  BlockRunner* r = BlockRunner::current_runner();
  if (!r) throw std::logic_error("__syncthreads() called outside an emulated kernel launch");
  r->yield_to_scheduler(file, line);
}

void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
  const uint64_t blocks = static_cast<uint64_t>(grid.x) * grid.y * grid.z;
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (blocks == 0 || threads == 0 || threads > 1024)
    throw std::invalid_argument("emulated launch: invalid configuration (" + std::to_string(blocks) + " blocks of " +
                                std::to_string(threads) + " threads; CUDA allows 1 to 1024 threads per block)");
  const Options opt = options();
  const uint64_t seed = opt.seed + 0x9E3779B97F4A7C15ull * g_launch_serial.fetch_add(1);
  std::vector<uint64_t> order(blocks);
  std::iota(order.begin(), order.end(), uint64_t{0});
  if (opt.shuffle) {
    std::mt19937_64 rng(seed);
    std::shuffle(order.begin(), order.end(), rng);
  }
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  const int workers = static_cast<int>(std::min<uint64_t>(std::max(opt.workers, 1), blocks));
  std::vector<std::thread> pool;
  try {
    for (int w = 1; w < workers; ++w)
      pool.emplace_back(run_blocks, std::cref(order), std::ref(next), grid, block, std::cref(body), seed, opt.shuffle,
                        std::ref(error), std::ref(error_mutex));
  } catch (...) {  // a thread could not be started: the caller runs the rest
  }
  run_blocks(order, next, grid, block, body, seed, opt.shuffle, error, error_mutex);
  for (std::thread& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace dl::emu
