// What a kernel source in kernels/ includes first: the CUDA vocabulary that the same text needs under
// nvcc and under the host compiler (the CPU emulation of emu/emu.h, used by the tests and benchmarks).
//   DL_GLOBAL            a kernel (__global__); kernels are templates or live in one translation unit
//   DL_DEVICE            a device helper (__device__ inline); DL_HD (dl/core/hostdevice.h) for host too
//   DL_SHARED(T, n, N)   a __shared__ array T n[N] of the block (poisoned per block in the emulation)
//   __syncthreads(), threadIdx, blockIdx, blockDim, gridDim, atomicAdd/Min/Max/Or: CUDA's own names
// A launch goes through a Launcher (CudaLauncher in backend/cuda/kernels.cu, emu::Launcher in the
// tests), so the launch sequence of each kernel family is written once too (Note [launchers]).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "hostdevice.cuh"

// The kernels live in dl::kern, inside an inline namespace that differs between the two builds, so
// that the emulated copy of a kernel (an ordinary inline function) and nvcc's host stub of the same
// kernel never share a mangled name when both end up in one program (the tests link libdlcore).
#if defined(__CUDACC__)
#define DL_KERN_ABI cuda
#else
#define DL_KERN_ABI emu
#endif

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define DL_GLOBAL __global__
#define DL_DEVICE __device__ inline
#define DL_SHARED(T, name, N) __shared__ T name[N]
#else
#include "emu/emu.h"
#define DL_GLOBAL inline
#define DL_DEVICE inline
#define DL_SHARED(T, name, N)                                     \
  static thread_local ::dl::emu::SharedArray<T, (N)> name##_emu_; \
  T* const name = name##_emu_.get()
#endif

namespace dl::kern::inline DL_KERN_ABI {

// Note [launchers]: a kernel family's host side (grid size, scratch buffers, the kernels it launches
// in order) is a function template over a Launcher L with
//   L.launch(kernel, grid, block, args...)   launches kernel<<<grid, block, 0, stream>>>(args...)
//   L.block_size(preferred)                  the block size to use (tests vary it)
//   L.grid_size(work_items, block)           blocks for a grid-stride loop over work_items, capped
//                                            (tests cap it below the data to exercise the loops)
//   L.template scratch<T>(count)             device scratch with .get(), freed when it goes
// The CUDA backend and the emulation both call these functions, so the sequence that is tested is
// the one that ships.

// Largest block any kernel here is launched with; block reductions keep one slot per thread.
constexpr int kMaxBlock = 512;

DL_HD bool is_power_of_two(int v) { return v > 0 && (v & (v - 1)) == 0; }

// Host-side checks of a launch sequence's preconditions (the kernels trust them).
inline void check_reduction_block(int block, const char* kernel) {
  if (!is_power_of_two(block) || block > kMaxBlock)
    throw std::invalid_argument(std::string(kernel) + ": block reductions need a power-of-two block of at most " +
                                std::to_string(kMaxBlock) + " threads, got " + std::to_string(block));
}
// The most classes the segmentation kernels take (a C x C confusion matrix of 8-byte counts: 128 MiB).
constexpr int kMaxClasses = 4096;
inline void check_classes(int c, int max_classes, const char* kernel) {
  if (c < 1 || c > max_classes)
    throw std::invalid_argument(std::string(kernel) + ": expected 1 to " + std::to_string(max_classes) +
                                " classes, got " + std::to_string(c));
}

// Grid-stride loop bounds: first item and stride of the calling thread in dimension x.
#define DL_GRID_STRIDE_LOOP(i, count)                                                        \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (count); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// Sum over the block of one double per thread (blockDim.x a power of two, at most kMaxBlock), tree
// order fixed by the launch shape; every thread gets the total. `smem` holds kMaxBlock values and is
// free again when this returns.
DL_DEVICE double block_reduce_sum(double v, double* smem) {
  const unsigned tid = threadIdx.x;
  smem[tid] = v;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (tid < stride) smem[tid] += smem[tid + stride];
    __syncthreads();
  }
  const double total = smem[0];
  __syncthreads();  // nobody writes smem again before everyone has read the total
  return total;
}

}  // namespace dl::kern::inline DL_KERN_ABI
