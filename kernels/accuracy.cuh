// The correct and the counted predictions of N x C x S logits against N x S labels, on the device:
// the training step's accuracy without copying its label maps to the host (the trainer reads the two
// counts with its loss, Note [deferred scalars] in libdl/train/trainer.cpp). A label equal to
// `ignore` (when ignore >= 0) counts nowhere; any other label counts, and is correct when it is the
// argmax (so a label out of range is counted and wrong, as on the CPU; the loss reports it).
#pragma once
#include "argmax.cuh"
#include "compat.cuh"
#include "elementwise.cuh"

namespace dl::kern::inline DL_KERN_ABI {

// Each thread counts in registers over its grid-stride pixels, the block adds its threads' counts in
// shared memory, and one thread per block adds the block's to counts[0] (correct) and counts[1]
// (counted) as doubles: integers below 2^53 add exactly in any order, so the result is deterministic.
template <typename T>
DL_GLOBAL void correct_count_kernel(const T* logits, const int32_t* truth, int64_t pixels, int64_t s, int64_t c,
                                    int32_t ignore, double* counts) {
  DL_SHARED(unsigned long long, block_counts, 2);
  if (threadIdx.x == 0) block_counts[0] = block_counts[1] = 0ull;
  __syncthreads();
  unsigned long long correct = 0, counted = 0;
  DL_GRID_STRIDE_LOOP(p, pixels) {
    const int32_t t = truth[p];
    if (ignore >= 0 && t == ignore) continue;
    ++counted;
    correct += argmax_at(logits, p, c, s) == t ? 1ull : 0ull;
  }
  if (counted != 0ull) {
    atomicAdd(&block_counts[0], correct);
    atomicAdd(&block_counts[1], counted);
  }
  __syncthreads();
  if (threadIdx.x == 0 && block_counts[1] != 0ull) {
    atomicAdd(&counts[0], static_cast<double>(block_counts[0]));
    atomicAdd(&counts[1], static_cast<double>(block_counts[1]));
  }
}

// ---- launch sequence (Note [launchers]) ----
// counts (2 doubles, device) is overwritten: correct, counted.
template <typename L, typename T>
void run_correct_counts(L& l, const T* logits, const int32_t* truth, int64_t pixels, int64_t s, int64_t c,
                        int32_t ignore, double* counts) {
  l.launch(fill_kernel<double>, dim3(1), dim3(1), counts, int64_t{2}, 0.0);
  if (pixels <= 0) return;
  const int block = l.block_size(256);
  l.launch(correct_count_kernel<T>, dim3(l.grid_size(pixels, block)), dim3(block), logits, truth, pixels, s, c, ignore,
           counts);
}

}  // namespace dl::kern::inline DL_KERN_ABI
