// Weighted softmax cross-entropy over logits N x C x S (classes in the middle, S = H W), forward and
// backward, with class weights and an ignored label; the normalisation of the CPU op: the loss is the
// weighted sum of -log p(label) divided by the sum of the weights of the counted pixels.
//   forward:  one thread per pixel: log-softmax over C (written for the backward), the pixel's weighted
//             loss and weight, summed per block (block_reduce_sum) into partials; then one block sums
//             the partials in a fixed order and writes loss[0] and weight_sum[0]. No atomics: the
//             result depends only on the launch shape.
//   backward: dlogits = gy[0] / weight_sum[0] * w[y] * (softmax - onehot(y)), zero at ignored pixels;
//             both scalars are read on the device (no host round trip between forward and backward).
// Labels are checked here, not by the host before the launch: one outside [0, C) that is not the ignored
// label (ignore_index >= 0) is never used as an index; it makes the loss NaN and its gradient zero, and
// find_bad_label_kernel (run by check_labels on the error path) names it.
#pragma once
#include "compat.cuh"
#include "elementwise.cuh"

namespace dl::kern::inline DL_KERN_ABI {

// Whether label y is ignored, or a class (in range).
DL_HD bool label_ignored(int32_t y, int32_t ignore_index) { return ignore_index >= 0 && y == ignore_index; }
DL_HD bool label_in_range(int32_t y, int64_t c) { return y >= 0 && y < c; }

template <typename T>
DL_GLOBAL void cross_entropy_forward_kernel(const T* logits, const int32_t* labels, const T* weights, int64_t n,
                                            int64_t c, int64_t s, int32_t ignore_index, T* log_probs,
                                            double* partial_loss, double* partial_weight) {
  DL_SHARED(double, smem, kMaxBlock);
  double loss = 0, wsum = 0;
  DL_GRID_STRIDE_LOOP(p, n * s) {
    const int64_t base = (p / s) * c * s + p % s;
    T mx = logits[base];
    for (int64_t k = 1; k < c; ++k) mx = logits[base + k * s] > mx ? logits[base + k * s] : mx;
    double z = 0;
    for (int64_t k = 0; k < c; ++k) z += exp(static_cast<double>(logits[base + k * s] - mx));
    const T lz = static_cast<T>(log(z));
    for (int64_t k = 0; k < c; ++k) log_probs[base + k * s] = logits[base + k * s] - mx - lz;
    const int32_t y = labels[p];
    if (label_ignored(y, ignore_index)) continue;
    if (!label_in_range(y, c)) {
      loss = static_cast<double>(NAN);
      continue;
    }
    const double w = weights ? static_cast<double>(weights[y]) : 1.0;
    loss -= w * static_cast<double>(log_probs[base + y * s]);
    wsum += w;
  }
  const double block_loss = block_reduce_sum(loss, smem);
  const double block_weight = block_reduce_sum(wsum, smem);
  if (threadIdx.x == 0) {
    partial_loss[blockIdx.x] = block_loss;
    partial_weight[blockIdx.x] = block_weight;
  }
}

// One block: loss[0] = sum(partial_loss) / sum(partial_weight) (NaN when no pixel counted, which the
// trainer's NaN check reports), weight_sum[0] = the denominator.
template <typename T>
DL_GLOBAL void cross_entropy_finalize_kernel(const double* partial_loss, const double* partial_weight, int64_t m,
                                             T* loss, double* weight_sum) {
  DL_SHARED(double, smem, kMaxBlock);
  double l = 0, w = 0;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
    l += partial_loss[i];
    w += partial_weight[i];
  }
  const double total_loss = block_reduce_sum(l, smem);
  const double total_weight = block_reduce_sum(w, smem);
  if (threadIdx.x == 0) {
    loss[0] = static_cast<T>(total_weight > 0 ? total_loss / total_weight : static_cast<double>(NAN));
    weight_sum[0] = total_weight;
  }
}

template <typename T>
DL_GLOBAL void cross_entropy_backward_kernel(const T* log_probs, const int32_t* labels, const T* weights, int64_t n,
                                             int64_t c, int64_t s, int32_t ignore_index, const T* gy,
                                             const double* weight_sum, T* dlogits) {
  const T scale = static_cast<T>(static_cast<double>(gy[0]) / weight_sum[0]);
  DL_GRID_STRIDE_LOOP(p, n * s) {
    const int64_t base = (p / s) * c * s + p % s;
    const int32_t y = labels[p];
    if (label_ignored(y, ignore_index) || !label_in_range(y, c)) {
      for (int64_t k = 0; k < c; ++k) dlogits[base + k * s] = T(0);
      continue;
    }
    const T f = scale * (weights ? weights[y] : T(1));
    for (int64_t k = 0; k < c; ++k) dlogits[base + k * s] = f * exp(log_probs[base + k * s]);
    dlogits[base + y * s] -= f;
  }
}

// first_bad[0] = min over positions of labels outside [0, c) that are not ignored (initially count).
DL_GLOBAL void find_bad_label_kernel(const int32_t* labels, int64_t count, int64_t c, int32_t ignore_index,
                                     unsigned long long* first_bad) {
  DL_GRID_STRIDE_LOOP(i, count) {
    const int32_t y = labels[i];
    if (!label_ignored(y, ignore_index) && !label_in_range(y, c))
      atomicMin(first_bad, static_cast<unsigned long long>(i));
  }
}

// ---- launch sequences (Note [launchers]) ----
template <typename L, typename T>
void run_cross_entropy_forward(L& l, const T* logits, const int32_t* labels, const T* weights, int64_t n, int64_t c,
                               int64_t s, int32_t ignore_index, T* log_probs, T* loss, double* weight_sum) {
  const int block = l.block_size(256);
  check_reduction_block(block, "cross_entropy_forward");
  const unsigned grid = n * s > 0 ? l.grid_size(n * s, block) : 1u;
  auto partial = l.template scratch<double>(2 * static_cast<int64_t>(grid));
  l.launch(cross_entropy_forward_kernel<T>, dim3(grid), dim3(block), logits, labels, weights, n, c, s, ignore_index,
           log_probs, partial.get(), partial.get() + grid);
  l.launch(cross_entropy_finalize_kernel<T>, dim3(1), dim3(block), static_cast<const double*>(partial.get()),
           static_cast<const double*>(partial.get() + grid), static_cast<int64_t>(grid), loss, weight_sum);
}

template <typename L, typename T>
void run_cross_entropy_backward(L& l, const T* log_probs, const int32_t* labels, const T* weights, int64_t n, int64_t c,
                                int64_t s, int32_t ignore_index, const T* gy, const double* weight_sum, T* dlogits) {
  launch_1d(l, cross_entropy_backward_kernel<T>, n * s, log_probs, labels, weights, n, c, s, ignore_index, gy,
            weight_sum, dlogits);
}

// Writes to first_bad (device, one value) the first position of a label out of range, or count if none.
template <typename L>
void run_find_bad_label(L& l, const int32_t* labels, int64_t count, int64_t c, int32_t ignore_index,
                        unsigned long long* first_bad) {
  l.launch(fill_kernel<unsigned long long>, dim3(1), dim3(1), first_bad, int64_t{1},
           static_cast<unsigned long long>(count));
  launch_1d(l, find_bad_label_kernel, count, labels, count, c, ignore_index, first_bad);
}

}  // namespace dl::kern::inline DL_KERN_ABI
