// The CUDA backend: computational bodies over device buffers, float32 (convolution and linear computing in
// the precision the front end resolved, dl/core/precision.h), on the device's compute stream (never
// synchronising the host). Front ends in ops/ check shapes, dtypes and devices first; these functions trust
// them. As on the CPU, every output is assigned, never accumulated, unless the name ends in _acc. `device` is
// the CUDA device index of the tensors.
//   cudnn_*.cpp:  convolution, batch norm, ReLU, pooling, softmax (cuDNN); linear (cuBLAS)
//   kernels.cu:   launches of the hand-written kernels of kernels/ (element-wise and activations, cross-entropy,
//                 concat, bilinear resize, optimiser updates, segmentation metrics, casts to bf16 / fp16)
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "binary_ops.cuh"
#include "dl/core/params.h"
#include "gather_index.cuh"

namespace dl::cuda {

// ---- cuDNN: convolution (Note [cudnn algorithm cache] in cudnn_conv.cpp) ----
enum class ConvAlgoSearch { kHeuristic, kTimed };
void set_conv_algo_search(ConvAlgoSearch s);  // default kTimed (cudnnFind*, once per shape)
ConvAlgoSearch conv_algo_search();
void set_conv_workspace_limit(size_t bytes);  // default 1 GiB
size_t conv_workspace_limit();
// y = conv(x, w) + b, then max(0, y) with g.relu (Note [fused conv relu on cuDNN] in cudnn_conv.cpp).
void conv2d_forward(int device, const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y);
// dx, dw, db may each be null (not wanted).
void conv2d_backward(int device, const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db);

// ---- cuDNN: batch norm over N x C x S (spatial mode); same outputs as the CPU backend. channels_last: x, y,
// dy, dx lie N S C (NHWC) ----
void batch_norm_forward_train(int device, const float* x, const float* gamma, const float* beta, int64_t n, int64_t c,
                              int64_t s, double eps, float* y, float* mean, float* invstd, float* var_unbiased);
// The training forward that also blends the batch's statistics into running_mean / running_var in the
// same cuDNN call: running = (1 - momentum) running + momentum batch (unbiased variance).
void batch_norm_forward_train_running(int device, const float* x, const float* gamma, const float* beta, int64_t n,
                                      int64_t c, int64_t s, double eps, double momentum, float* y, float* mean,
                                      float* invstd, float* running_mean, float* running_var,
                                      bool channels_last = false);
void batch_norm_forward_infer(int device, const float* x, const float* gamma, const float* beta, const float* mean,
                              const float* var, int64_t n, int64_t c, int64_t s, double eps, float* y,
                              bool channels_last = false);
void batch_norm_backward(int device, const float* x, const float* gamma, const float* dy, const float* mean,
                         const float* invstd, int64_t n, int64_t c, int64_t s, double eps, float* dx, float* dgamma,
                         float* dbeta, bool channels_last = false);

// ---- cuDNN: activation, pooling, softmax ----
void relu_forward(int device, const float* x, float* y, int64_t n);
void relu_backward(int device, const float* y, const float* dy, float* dx, int64_t n);
// Pooling backward takes the forward's input and output (cuDNN finds the max again).
void max_pool2d_forward(int device, const Pool2dGeometry& g, const float* x, float* y);
void max_pool2d_backward(int device, const Pool2dGeometry& g, const float* x, const float* y, const float* dy,
                         float* dx);
void avg_pool2d_forward(int device, const Pool2dGeometry& g, const float* x, float* y);
void avg_pool2d_backward(int device, const Pool2dGeometry& g, const float* x, const float* y, const float* dy,
                         float* dx);
void softmax_forward(int device, const float* x, float* y, int64_t n, int64_t c, int64_t s, bool log);
void softmax_backward(int device, const float* y, const float* dy, float* dx, int64_t n, int64_t c, int64_t s,
                      bool log);

// ---- cuBLAS: linear, x N x I, w O x I, y N x O ----
// `math` is the precision the front end resolved (Note [GEMM math] in cublas_linear.cpp): kFp32 (TF32 while
// dl::cuda::allow_tf32()), kTf32, or kBf16 / kFp16 operands with float32 accumulation and float32 outputs. The
// backward takes the forward's. bf16 needs compute capability 8.0 or newer (dl::Error otherwise).
void linear_forward(int device, const float* x, const float* w, const float* b, float* y, int64_t n, int64_t in,
                    int64_t out, Precision math = Precision::kFp32);
void linear_backward(int device, const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                     int64_t n, int64_t in, int64_t out, Precision math = Precision::kFp32);

// c[i] = a[i] b[i] for i < batch, row-major a[i] n x k, b[i] k x m, c[i] n x m (one strided-batched GEMM; TF32
// while dl::cuda::allow_tf32()).
void batched_matmul(int device, const float* a, const float* b, float* c, int64_t batch, int64_t n, int64_t k,
                    int64_t m);

// ---- casts between float32 and the 16-bit formats (kernels/cast.cuh); math is kBf16 or kFp16 ----
// y (n bf16 / half bit patterns) = x rounded to nearest, ties to even; x_f32 (n floats) = y, exactly.
// Any other precision throws dl::Error.
void cast_to_16(int device, Precision math, const float* x, uint16_t* y, int64_t n);
void cast_from_16(int device, Precision math, const uint16_t* y, float* x_f32, int64_t n);

// ---- hand-written kernels (kernels/*.cuh) ----
// The element-wise unary family: Op is a functor of kernels/unary_ops.cuh (instantiated for each of
// DL_UNARY_OPS). y = op(x); dx = op'(x) dy from the forward's input x and output y.
template <typename Op>
void unary_forward(int device, const Op& op, const float* x, float* y, int64_t n);
template <typename Op>
void unary_backward(int device, const Op& op, const float* x, const float* y, const float* dy, float* dx, int64_t n);
void fill(int device, float* y, int64_t n, float value);
// Dropout with the CPU's mask for the same seed (kernels/dropout.cuh); also the backward.
void dropout(int device, const float* x, float* y, int64_t n, uint64_t seed, float p);
// The broadcasting family (kernels/broadcast.cuh), as on the CPU (backend/cpu/cpu_ops.h): Op a functor of
// kernels/binary_ops.cuh, b null reading the scalar bs, ga and gb output-sized and either may be null.
template <typename Op>
void broadcast_binary(int device, const Op& op, const float* a, const float* b, float bs, float* y, int64_t n,
                      const kern::StridedIndex<2>& ix);
template <typename Op>
void broadcast_binary_backward(int device, const Op& op, const float* a, const float* b, float bs, const float* y,
                               const float* dy, float* ga, float* gb, int64_t n, const kern::StridedIndex<2>& ix);
// Comparisons of float32, int32 or int64 operands (T), y a mask of 0 / 1 bytes.
template <typename Op, typename T>
void compare(int device, const Op& op, const T* a, const T* b, T bs, uint8_t* y, int64_t n,
             const kern::StridedIndex<2>& ix);
void where(int device, const uint8_t* cond, const float* a, const float* b, float* y, int64_t n,
           const kern::StridedIndex<3>& ix);
// y[i] = x[ix.offset(i)] for elements of `elem_size` bytes (1, 4 or 8).
void strided_copy(int device, const void* x, void* y, size_t elem_size, int64_t n, const kern::StridedIndex<1>& ix);
// Indexing along one dimension (kernels/index.cuh): the index int32 (index_elem 4) or int64 (8), checked
// by the front end; scatter_add_acc accumulates into x, one thread per line of x (deterministic);
// strided_scatter is x[ix.offset(i)] = y[i] for elements of `elem_size` bytes (1, 2, 4 or 8).
void gather(int device, const float* x, const void* index, size_t index_elem, float* y, int64_t n,
            const kern::GatherIndex& g);
void scatter_add_acc(int device, const float* src, const void* index, size_t index_elem, float* x,
                     const kern::GatherIndex& g);
void strided_scatter(int device, const void* y, void* x, size_t elem_size, int64_t n, const kern::StridedIndex<1>& ix);
void reduce_sum(int device, const float* x, float* y, int64_t n_out, const kern::StridedIndex<1>& kept,
                const kern::StridedIndex<1>& reduced, int64_t n_red, double scale);
void axpy_acc(int device, float alpha, const float* x, float* y, int64_t n);  // y += alpha x
void sum(int device, const float* a, float* out, int64_t n);                  // out[0] = sum (deterministic)
void sum_squares(int device, const float* a, double* out, int64_t n);         // out[0] = sum of a[i]^2, in double
// y = s * x[0] broadcast to n elements (backward of sum/mean), reading the scalar on the device.
void broadcast_scalar(int device, const float* x, float s, float* y, int64_t n);
void bias_add_acc(int device, float* y, const float* b, int64_t rows, int64_t cols);  // y[r][c] += b[c]
// y = (1 - m) y + m x: running statistics of batch norm.
void lerp_(int device, float* y, const float* x, float m, int64_t n);

// Weighted cross-entropy over N x C x S logits. Writes log-probabilities and loss[0] = weighted mean
// (weighted loss sum / weight sum); weight_sum[0] keeps the denominator for the backward.
void cross_entropy_forward(int device, const float* logits, const int32_t* labels, const float* weights, int64_t n,
                           int64_t c, int64_t s, int32_t ignore_index, float* log_probs, float* loss,
                           double* weight_sum);
// dlogits = gy[0] / weight_sum[0] * w[y] (softmax - onehot(y)), both scalars read on the device.
void cross_entropy_backward(int device, const float* log_probs, const int32_t* labels, const float* weights, int64_t n,
                            int64_t c, int64_t s, int32_t ignore_index, const float* gy, const double* weight_sum,
                            float* dlogits);
// The first position of a label outside [0, C) other than ignore_index, and that label; {count, 0} when
// there is none. Synchronises (two small reads): for error paths, not the training step.
std::pair<int64_t, int32_t> first_bad_label(int device, const int32_t* labels, int64_t count, int64_t c,
                                            int32_t ignore_index);

void concat_channels(int device, const float* const* xs, const int64_t* cs, int count, int64_t n, int64_t s, float* y);
void split_channels(int device, const float* y, const int64_t* cs, int count, int64_t n, int64_t s, float* const* dxs);
void resize_bilinear_forward(int device, const float* x, float* y, int64_t planes, int64_t h, int64_t w, int64_t oh,
                             int64_t ow);
void resize_bilinear_backward(int device, const float* dy, float* dx, int64_t planes, int64_t h, int64_t w, int64_t oh,
                              int64_t ow);
void batch_norm_backward_infer(int device, const float* x, const float* gamma, const float* dy, const float* mean,
                               const float* var, int64_t n, int64_t c, int64_t s, double eps, float* dx, float* dgamma,
                               float* dbeta);

// Segmentation metrics of int32 label maps images x h x w on the device (kernels/confusion.cuh and
// kernels/bf_score.cuh): adds the C x C confusion matrix into `confusion` and writes `bf_counts`
// (images x C x 4: predicted boundary pixels, of them matched, true boundary pixels, of them matched).
// Throws dl::Error naming the first pixel whose label is neither a class nor void. Synchronises (one
// read of the results): metrics, not the training step.
void segmentation_counts(int device, const int32_t* pred, const int32_t* truth, int64_t images, int64_t h, int64_t w,
                         int c, int32_t void_label, std::vector<int64_t>& confusion, std::vector<int64_t>& bf_counts);
// Predicted classes (argmax over C, first on ties, the first NaN if any; smallest: argmin) of logits N x C x S.
void argmax_channels(int device, const float* logits, int64_t n, int64_t c, int64_t s, int32_t* out,
                     bool smallest = false);
// counts[0] = predictions of logits N x C x S equal to their label (N x S), counts[1] = labels counted
// (all but ignore_index when it is >= 0), as doubles on the device (kernels/accuracy.cuh); no host wait.
void correct_counts(int device, const float* logits, const int32_t* labels, int64_t n, int64_t c, int64_t s,
                    int32_t ignore_index, double* counts);

void sgdm_update(int device, float* w, const float* g, float* v, int64_t n, float lr, float momentum, float l2);
void adam_update(int device, float* w, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                 float beta2, float eps, float l2, int64_t t);
void rmsprop_update(int device, float* w, const float* g, float* v, int64_t n, float lr, float decay, float eps,
                    float l2);

}  // namespace dl::cuda
