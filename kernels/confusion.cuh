// The confusion matrix over label maps, from which accuracy and IoU follow (metrics/segmentation.h),
// optionally with the argmax over logits N x C x S fused in. Each block counts into a C x C histogram
// in shared memory (atomics on shared memory are cheap), then adds its non-zero bins to the global
// matrix with one atomic each. Pixels whose truth is the void label are skipped; a label out of range
// records the first such pixel (atomicMin) for the host to report, and is not counted.
#pragma once
#include "argmax.cuh"
#include "compat.cuh"
#include "elementwise.cuh"

namespace dl::kern::inline DL_KERN_ABI {

// Classes the shared histogram holds (C x C bins of 4 bytes: 4 KiB); more classes count straight into
// the global matrix (one global atomic per pixel: slower, any number of classes).
constexpr int kMaxConfusionClasses = 32;

template <typename T, bool kSmallest>
DL_GLOBAL void argmax_kernel(const T* logits, int64_t n, int64_t c, int64_t s, int32_t* out) {
  DL_GRID_STRIDE_LOOP(p, n * s) out[p] = argmax_at<T, kSmallest>(logits, p, c, s);
}

// Predictions from a label map (pred != nullptr) or from logits (pred == nullptr, logits N x C x S).
// kShared: count in a block histogram in shared memory first (C <= kMaxConfusionClasses).
template <typename T, bool kShared>
DL_GLOBAL void confusion_kernel(const int32_t* pred, const T* logits, const int32_t* truth, int64_t pixels, int64_t s,
                                int c, int32_t void_label, unsigned long long* confusion,
                                unsigned long long* first_bad) {
  DL_SHARED(unsigned int, hist, kMaxConfusionClasses* kMaxConfusionClasses);
  const int bins = c * c;
  if (kShared) {
    for (int i = threadIdx.x; i < bins; i += blockDim.x) hist[i] = 0u;
  }
  __syncthreads();
  DL_GRID_STRIDE_LOOP(p, pixels) {
    const int32_t t = truth[p];
    if (t == void_label) continue;
    const int32_t y = pred ? pred[p] : argmax_at(logits, p, c, s);
    if (t < 0 || t >= c || y < 0 || y >= c) {
      atomicMin(first_bad, static_cast<unsigned long long>(p));
      continue;
    }
    if (kShared) {
      atomicAdd(&hist[t * c + y], 1u);
    } else {
      atomicAdd(&confusion[static_cast<int64_t>(t) * c + y], 1ull);
    }
  }
  __syncthreads();
  if constexpr (kShared) {
    for (int i = threadIdx.x; i < bins; i += blockDim.x)
      if (hist[i] != 0u) atomicAdd(&confusion[i], static_cast<unsigned long long>(hist[i]));
  }
}

// ---- launch sequences (Note [launchers]) ----
// confusion (C x C, device) is accumulated into; first_bad (device) is set to `pixels` first and ends
// as the first bad pixel, or `pixels` if there is none. s is the pixels per image (for logits).
template <typename L, typename T>
void run_confusion(L& l, const int32_t* pred, const T* logits, const int32_t* truth, int64_t pixels, int64_t s, int c,
                   int32_t void_label, unsigned long long* confusion, unsigned long long* first_bad) {
  check_classes(c, kMaxClasses, "confusion");
  l.launch(fill_kernel<unsigned long long>, dim3(1), dim3(1), first_bad, int64_t{1},
           static_cast<unsigned long long>(pixels));
  if (pixels <= 0) return;
  const int block = l.block_size(256);
  l.launch(c <= kMaxConfusionClasses ? confusion_kernel<T, true> : confusion_kernel<T, false>,
           dim3(l.grid_size(pixels, block)), dim3(block), pred, logits, truth, pixels, s, c, void_label, confusion,
           first_bad);
}

template <typename L, typename T>
void run_argmax(L& l, const T* logits, int64_t n, int64_t c, int64_t s, int32_t* out, bool smallest = false) {
  if (smallest) {
    launch_1d(l, argmax_kernel<T, true>, n * s, logits, n, c, s, out);
  } else {
    launch_1d(l, argmax_kernel<T, false>, n * s, logits, n, c, s, out);
  }
}

}  // namespace dl::kern::inline DL_KERN_ABI
