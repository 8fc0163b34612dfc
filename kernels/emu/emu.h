// The CPU emulation of CUDA that runs the kernels of kernels/ with the host compiler, in the tests and
// benchmarks (never in the library). A launch runs every block of the grid, in a shuffled order, on a
// few OS threads; the threads of a block are cooperative fibers (ucontext) on one OS thread, so that
//   - __shared__ arrays (DL_SHARED) are thread_local to that OS thread, poisoned (NaN / 0xA5 bytes)
//     when a block first touches them, so a read before any write of the block shows;
//   - __syncthreads() switches back to the block's scheduler, which resumes the fibers in a new
//     random order once all have arrived (or exited): a missing barrier changes the result;
//   - every live thread of a block must wait at the same __syncthreads() call site (file:line), and none
//     may have exited while others wait: a divergent barrier throws std::logic_error;
//   - atomics are std::atomic_ref operations (blocks of different OS threads do race).
// The order of blocks and of fibers depends on Options::seed, the launch's number in the process and the
// block's index only, so a failing order replays.
// Warp-level primitives are not provided: no kernel here uses them.
#pragma once
#include <math.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <type_traits>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using cudaStream_t = void*;

namespace dl::emu {

// Per OS thread: the indices of the fiber now running, and the number of the block it belongs to.
struct ThreadState {
  dim3 thread_idx, block_idx, block_dim, grid_dim;
  uint64_t block_serial = 0;  // unique per block run, process-wide (shared-memory poisoning)
};
ThreadState& state();
// __syncthreads() at file:line. Every live thread of the block must wait at the same call site: a
// barrier that some threads reach at another call site, or after others have exited, throws
// std::logic_error naming both (divergent barriers are undefined behaviour in CUDA).
void sync_threads(const char* file, int line);

struct Options {
  int workers = 2;         // OS threads that run blocks
  uint64_t seed = 0x5eed;  // order of blocks and of fibers between barriers
  bool shuffle = true;     // false: blocks and fibers in index order (debugging)
};
Options& options();

// Runs body() once per thread of the grid, as described above. Exceptions from the body propagate.
void launch(dim3 grid, dim3 block, const std::function<void()>& body);
// Statistics of the last launches (tests check that barriers were really hit).
uint64_t barrier_count();

template <typename T>
T poison_value() {
  if constexpr (std::is_floating_point_v<T>) {
    return std::numeric_limits<T>::quiet_NaN();
  } else {
    T v;
    std::memset(&v, 0xA5, sizeof v);
    return v;
  }
}

// Storage of one DL_SHARED array on one OS thread; poisoned the first time each block asks for it.
template <typename T, size_t N>
struct SharedArray {
  T data[N];
  uint64_t serial = ~uint64_t{0};
  T* get() {
    if (serial != state().block_serial) {
      serial = state().block_serial;
      const T p = poison_value<T>();
      for (size_t i = 0; i < N; ++i) data[i] = p;
    }
    return data;
  }
};

}  // namespace dl::emu

#define threadIdx (::dl::emu::state().thread_idx)
#define blockIdx (::dl::emu::state().block_idx)
#define blockDim (::dl::emu::state().block_dim)
#define gridDim (::dl::emu::state().grid_dim)
#define __syncthreads() ::dl::emu::sync_threads(__FILE__, __LINE__)

// ---- atomics: CUDA's names and semantics (return the old value) ----
template <typename T>
T atomicAdd(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_add(value);
}
template <typename T>
T atomicOr(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_or(value);
}
template <typename T>
T atomicMin(T* address, T value) {
  std::atomic_ref<T> a(*address);
  T old = a.load();
  while (value < old && !a.compare_exchange_weak(old, value)) {
  }
  return old;
}
template <typename T>
T atomicMax(T* address, T value) {
  std::atomic_ref<T> a(*address);
  T old = a.load();
  while (value > old && !a.compare_exchange_weak(old, value)) {
  }
  return old;
}

namespace dl::emu {

// The Launcher of Note [launchers] for the emulation: launch shape chosen by the test.
struct Launcher {
  int block = 128;             // block size of every launch (0: the kernel's preferred one)
  int64_t max_grid = 1 << 20;  // cap on grid-stride grids (small values: grids smaller than the data)
  int launches = 0;            // kernels launched so far

  int block_size(int preferred) const { return block > 0 ? block : preferred; }
  unsigned grid_size(int64_t items, int block_threads) const {
    int64_t g = (items + block_threads - 1) / block_threads;
    if (g > max_grid) g = max_grid;
    return static_cast<unsigned>(g < 1 ? 1 : g);
  }
  template <typename... P, typename... A>
  void launch(void (*kernel)(P...), dim3 grid, dim3 block_dim, A... args) {
    ++launches;
    ::dl::emu::launch(grid, block_dim, [&] { kernel(static_cast<P>(args)...); });
  }
  template <typename T>
  struct Scratch {
    std::unique_ptr<T[]> data;
    T* get() const { return data.get(); }
  };
  template <typename T>
  Scratch<T> scratch(int64_t count) const {
    Scratch<T> s{std::make_unique<T[]>(static_cast<size_t>(count < 1 ? 1 : count))};
    for (int64_t i = 0; i < count; ++i) s.data[i] = poison_value<T>();
    return s;
  }
};

}  // namespace dl::emu
