// The boundary F1 (BF) score per class per image (Note [BF score] in dl/metrics/segmentation.h):
//   1. boundary_kernel: for each pixel, its class if it is on the boundary of its class's mask (a
//      4-neighbour outside the image or of another label), else -1. The prediction is first cleaned
//      (void wherever the truth is void), as the CPU metric does.
//   2. bf_match_kernel, once from the prediction to the truth and once back: each boundary pixel of
//      class k looks for a boundary pixel of class k in the other map at squared distance < theta^2
//      (theta = 0.75% of the image diagonal) within the window of radius ceil(theta); per-block counts
//      of (boundary pixels, matched pixels) per class in shared memory, then global atomics.
//   3. On the host (dl::metrics::bf_score_from_counts in libdl): precision, recall and F1 per class per image.
// Grid: blockIdx.y is the image, blockIdx.x a grid-stride loop over its pixels.
#pragma once
#include <cmath>

#include "bf_geometry.cuh"
#include "compat.cuh"
#include "elementwise.cuh"

namespace dl::kern::inline DL_KERN_ABI {

// Classes whose per-block counts fit in shared memory; more count straight into global memory.
constexpr int kMaxBfClasses = 64;

// The label of pixel i after cleaning: void (-1 here) where the truth is void or the label is not a class.
DL_HD int32_t clean_label(const int32_t* labels, const int32_t* truth, int64_t i, int c, int32_t void_label) {
  const int32_t v = labels[i];
  if (truth && truth[i] == void_label) return -1;
  return v >= 0 && v < c ? v : -1;
}

// boundary[img][y][x] = class of a boundary pixel, or -1. truth is null when `labels` is the truth.
DL_GLOBAL void boundary_kernel(const int32_t* labels, const int32_t* truth, int64_t h, int64_t w, int c,
                               int32_t void_label, int32_t* boundary) {
  const int64_t plane = h * w;
  const int64_t off = static_cast<int64_t>(blockIdx.y) * plane;
  DL_GRID_STRIDE_LOOP(i, plane) {
    const int64_t y = i / w, x = i % w;
    const int32_t k = clean_label(labels + off, truth ? truth + off : nullptr, i, c, void_label);
    bool edge = k >= 0 && (y == 0 || x == 0 || y == h - 1 || x == w - 1);
    if (k >= 0 && !edge) {
      const int32_t* L = labels + off;
      const int32_t* Tr = truth ? truth + off : nullptr;
      edge = clean_label(L, Tr, i - w, c, void_label) != k || clean_label(L, Tr, i + w, c, void_label) != k ||
             clean_label(L, Tr, i - 1, c, void_label) != k || clean_label(L, Tr, i + 1, c, void_label) != k;
    }
    boundary[off + i] = edge ? k : -1;
  }
}

// counts[img][k][0] += boundary pixels of class k in `from`, counts[img][k][1] += those matched in `to`.
// kShared: per-block counts in shared memory first (C <= kMaxBfClasses).
template <bool kShared>
DL_GLOBAL void bf_match_kernel(const int32_t* from, const int32_t* to, int64_t h, int64_t w, int c, int radius,
                               double theta2, unsigned long long* counts) {
  DL_SHARED(unsigned int, local, 2 * kMaxBfClasses);
  if (kShared) {
    for (int i = threadIdx.x; i < 2 * c; i += blockDim.x) local[i] = 0u;
  }
  __syncthreads();
  unsigned long long* out = counts + static_cast<int64_t>(blockIdx.y) * 2 * c;
  const int64_t plane = h * w;
  const int64_t off = static_cast<int64_t>(blockIdx.y) * plane;
  DL_GRID_STRIDE_LOOP(i, plane) {
    const int32_t k = from[off + i];
    if (k < 0) continue;
    const int64_t y = i / w, x = i % w;
    bool matched = false;
    for (int64_t dy = -radius; dy <= radius && !matched; ++dy) {
      const int64_t yy = y + dy;
      if (yy < 0 || yy >= h) continue;
      for (int64_t dx = -radius; dx <= radius; ++dx) {
        const int64_t xx = x + dx;
        if (xx < 0 || xx >= w || static_cast<double>(dy * dy + dx * dx) >= theta2) continue;
        if (to[off + yy * w + xx] == k) {
          matched = true;
          break;
        }
      }
    }
    if (kShared) {
      atomicAdd(&local[2 * k], 1u);
      if (matched) atomicAdd(&local[2 * k + 1], 1u);
    } else {
      atomicAdd(&out[2 * k], 1ull);
      if (matched) atomicAdd(&out[2 * k + 1], 1ull);
    }
  }
  __syncthreads();
  if constexpr (kShared) {
    for (int i = threadIdx.x; i < 2 * c; i += blockDim.x)
      if (local[i] != 0u) atomicAdd(&out[i], static_cast<unsigned long long>(local[i]));
  }
}

// ---- launch sequence (Note [launchers]) ----
// pred, truth: images x h x w (device). pred_counts / truth_counts: images x c x 2 (device, zeroed here).
template <typename L>
void run_bf_counts(L& l, const int32_t* pred, const int32_t* truth, int64_t images, int64_t h, int64_t w, int c,
                   int32_t void_label, unsigned long long* pred_counts, unsigned long long* truth_counts) {
  check_classes(c, kMaxClasses, "bf_score");
  const int64_t plane = h * w;
  const int block = l.block_size(256);
  if (images <= 0 || plane <= 0) return;
  if (images > 65535) {  // gridDim.y limit: in chunks of images
    for (int64_t i = 0; i < images; i += 65535) {
      const int64_t m = images - i < 65535 ? images - i : 65535;
      run_bf_counts(l, pred + i * plane, truth + i * plane, m, h, w, c, void_label, pred_counts + i * c * 2,
                    truth_counts + i * c * 2);
    }
    return;
  }
  const dim3 grid(l.grid_size(plane, block), static_cast<unsigned>(images));
  auto bnd = l.template scratch<int32_t>(2 * images * plane);
  int32_t* bnd_pred = bnd.get();
  int32_t* bnd_truth = bnd.get() + images * plane;
  launch_1d(l, fill_kernel<unsigned long long>, images * c * 2, pred_counts, images * c * 2, 0ull);
  launch_1d(l, fill_kernel<unsigned long long>, images * c * 2, truth_counts, images * c * 2, 0ull);
  l.launch(boundary_kernel, grid, dim3(block), pred, truth, h, w, c, void_label, bnd_pred);
  l.launch(boundary_kernel, grid, dim3(block), truth, static_cast<const int32_t*>(nullptr), h, w, c, void_label,
           bnd_truth);
  // theta^2 exactly as the CPU metric has it; the window radius ceil(theta) covers every d^2 < theta^2.
  const double theta2 = dl::bf_theta_squared(h, w);
  const int radius = static_cast<int>(std::ceil(std::sqrt(theta2)));
  const auto match = c <= kMaxBfClasses ? bf_match_kernel<true> : bf_match_kernel<false>;
  l.launch(match, grid, dim3(block), static_cast<const int32_t*>(bnd_pred), static_cast<const int32_t*>(bnd_truth), h,
           w, c, radius, theta2, pred_counts);
  l.launch(match, grid, dim3(block), static_cast<const int32_t*>(bnd_truth), static_cast<const int32_t*>(bnd_pred), h,
           w, c, radius, theta2, truth_counts);
}

}  // namespace dl::kern::inline DL_KERN_ABI
