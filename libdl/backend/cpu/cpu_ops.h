// The CPU backend: computational bodies over raw contiguous buffers, templated on float and double.
// Front ends in ops/ check shapes, dtypes and devices before calling; these functions trust them.
// Every output buffer is fully written (assigned, never accumulated) unless the name ends in _acc.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/cpu/storage.h"
#include "binary_ops.cuh"
#include "dl/core/params.h"
#include "dl/core/threads.h"
#include "gather_index.cuh"

namespace dl::cpu {

// ---- element-wise ----
// The broadcasting family (backend/cpu/broadcast.cpp): Op a functor of kernels/binary_ops.cuh, operands
// addressed through the strided index of ops/broadcast.h over n output elements; b null reads the
// scalar bs. The backward writes output-sized partials ga, gb (either may be null; a and y may be null
// where the functor's kGradA/kGradB say the wanted partials do not read them).
template <typename Op, typename T>
void broadcast_binary(const Op& op, const T* a, const T* b, T bs, T* y, int64_t n, const kern::StridedIndex<2>& ix);
template <typename Op, typename T>
void broadcast_binary_backward(const Op& op, const T* a, const T* b, T bs, const T* y, const T* dy, T* ga, T* gb,
                               int64_t n, const kern::StridedIndex<2>& ix);
template <typename Op, typename T>
void compare(const Op& op, const T* a, const T* b, T bs, uint8_t* y, int64_t n, const kern::StridedIndex<2>& ix);
// y = cond ? a : b, a or b null reading 0.
template <typename T>
void where(const uint8_t* cond, const T* a, const T* b, T* y, int64_t n, const kern::StridedIndex<3>& ix);
template <typename T>
void strided_copy(const T* x, T* y, int64_t n, const kern::StridedIndex<1>& ix);  // y[i] = x[ix.offset(i)]
// y[o] = scale * sum_r x[kept.offset(o) + reduced.offset(r)], in double.
template <typename T>
void reduce_sum(const T* x, T* y, int64_t n_out, const kern::StridedIndex<1>& kept,
                const kern::StridedIndex<1>& reduced, int64_t n_red, double scale);
// Indexing along one dimension (backend/cpu/index.cpp; kernels/gather_index.cuh): y[i] = x at i's
// coordinates with index[i] along g.dim; its adjoint x[...] += src[i] (x accumulated, each line of x in
// order: Note [scatter by lines]); x[ix.offset(i)] = y[i] for an index with distinct offsets, any
// element of `elem_size` bytes.
template <typename T, typename I>
void gather(const T* x, const I* index, T* y, int64_t n, const kern::GatherIndex& g);
template <typename T, typename I>
void scatter_add_acc(const T* src, const I* index, T* x, const kern::GatherIndex& g);
void strided_scatter(const void* y, void* x, size_t elem_size, int64_t n, const kern::StridedIndex<1>& ix);
template <typename T>
void scale(const T* a, T s, T* y, int64_t n);
template <typename T>
void axpy_acc(T alpha, const T* x, T* y, int64_t n);  // y += alpha x
template <typename T>
T sum(const T* a, int64_t n);

// ---- activation ----
// y = x / (1 - p) where kern::dropout_uniform(seed, i) >= p, else 0 (kernels/counter_rng.cuh); also the backward.
template <typename T>
void dropout(const T* x, T* y, int64_t n, uint64_t seed, float p);
// float, double or bfloat16 (Note [bf16 storage in the CPU kernels] in storage.h).
template <typename T>
void relu_forward(const T* x, T* y, int64_t n);
template <typename T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n);
// The element-wise unary family: Op is a functor of kernels/unary_ops.cuh, which names the op (instantiated
// for each of DL_UNARY_OPS). y = op(x); dx = op'(x) dy from the forward's input x and output y.
template <typename Op, typename T>
void unary_forward(const Op& op, const T* x, T* y, int64_t n);
template <typename Op, typename T>
void unary_backward(const Op& op, const T* x, const T* y, const T* dy, T* dx, int64_t n);

// ---- convolution (engine choice: Note [conv engines] in conv2d.cpp) ----
void set_conv_engine(CpuConvEngine e);
// Whether a float32 convolution of geometry g runs on oneDNN, which also takes channels-last tensors
// (g.channels_last); the im2col path reads NCHW only.
bool conv2d_takes_channels_last(const Conv2dGeometry& g);
CpuConvEngine conv_engine();
template <typename T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* b, T* y);
// dx, dw, db may each be null (not wanted).
template <typename T>
void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db);

// ---- batch norm: x viewed as N x C x S (S = H W) ----
// x, y, dy, dx in the storage type T (float, double or bfloat16: Note [bf16 storage in the CPU kernels] in
// storage.h); the parameters and statistics in its compute type acc_t<T>.
// relu: y = max(0, bn(x)) in the same pass (Note [batch norm + ReLU] in ops/batch_norm.cpp); the backward
// then takes that y (`relu_out`, else null) and masks dy by y > 0 in its own passes.
template <typename T>
void batch_norm_forward_train(const T* x, const acc_t<T>* gamma, const acc_t<T>* beta, int64_t n, int64_t c, int64_t s,
                              double eps, T* y, acc_t<T>* mean, acc_t<T>* invstd, acc_t<T>* var_unbiased,
                              bool relu = false);
template <typename T>
void batch_norm_forward_infer(const T* x, const acc_t<T>* gamma, const acc_t<T>* beta, const acc_t<T>* mean,
                              const acc_t<T>* var, int64_t n, int64_t c, int64_t s, double eps, T* y,
                              bool relu = false);
// Backward of the training-mode forward. dgamma, dbeta may be null.
template <typename T>
void batch_norm_backward(const T* x, const acc_t<T>* gamma, const T* dy, const acc_t<T>* mean, const acc_t<T>* invstd,
                         int64_t n, int64_t c, int64_t s, T* dx, acc_t<T>* dgamma, acc_t<T>* dbeta,
                         const T* relu_out = nullptr);
// Backward of the inference-mode forward (an affine map per channel).
template <typename T>
void batch_norm_backward_infer(const T* x, const acc_t<T>* gamma, const T* dy, const acc_t<T>* mean,
                               const acc_t<T>* var, int64_t n, int64_t c, int64_t s, double eps, T* dx,
                               acc_t<T>* dgamma, acc_t<T>* dbeta, const T* relu_out = nullptr);
// The same four for channels-last x, y, dy, dx (x viewed as N S rows of C; batch_norm_nhwc.cpp).
template <typename T>
void batch_norm_forward_train_nhwc(const T* x, const acc_t<T>* gamma, const acc_t<T>* beta, int64_t n, int64_t c,
                                   int64_t s, double eps, T* y, acc_t<T>* mean, acc_t<T>* invstd,
                                   acc_t<T>* var_unbiased, bool relu = false);
template <typename T>
void batch_norm_forward_infer_nhwc(const T* x, const acc_t<T>* gamma, const acc_t<T>* beta, const acc_t<T>* mean,
                                   const acc_t<T>* var, int64_t n, int64_t c, int64_t s, double eps, T* y,
                                   bool relu = false);
template <typename T>
void batch_norm_backward_nhwc(const T* x, const acc_t<T>* gamma, const T* dy, const acc_t<T>* mean,
                              const acc_t<T>* invstd, int64_t n, int64_t c, int64_t s, T* dx, acc_t<T>* dgamma,
                              acc_t<T>* dbeta, const T* relu_out = nullptr);
template <typename T>
void batch_norm_backward_infer_nhwc(const T* x, const acc_t<T>* gamma, const T* dy, const acc_t<T>* mean,
                                    const acc_t<T>* var, int64_t n, int64_t c, int64_t s, double eps, T* dx,
                                    acc_t<T>* dgamma, acc_t<T>* dbeta, const T* relu_out = nullptr);
// The synchronised batch norm (ops::BatchNormOptions::sync): per channel, the sums of x and x² over
// N and H W; and the part of dx that comes through the statistics of every process's batch together,
// subtracted from dx (which holds dy gamma invstd): gamma invstd (mean dy + xhat mean(dy xhat)).
template <typename T>
void batch_norm_sums(const T* x, int64_t n, int64_t c, int64_t s, double* sum, double* sum_sq);
template <typename T>
void batch_norm_sync_backward_correct(const T* x, const T* gamma, const T* mean, const T* var, int64_t n, int64_t c,
                                      int64_t s, double eps, const double* sum_dy, const double* sum_dy_xhat,
                                      double count, T* dx);

// ---- pooling ----
template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, int32_t* argmax);
template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* dy, const int32_t* argmax, T* dx);
// The same for channels-last x, y, dy, dx and argmax (N Ho Wo C; each entry the index ih W + iw in its plane).
template <typename T>
void max_pool2d_forward_nhwc(const Pool2dGeometry& g, const T* x, T* y, int32_t* argmax);
template <typename T>
void max_pool2d_backward_nhwc(const Pool2dGeometry& g, const T* dy, const int32_t* argmax, T* dx);
template <typename T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y);
template <typename T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* dy, T* dx);

// ---- linear: x N x I, w O x I ----
// `math` (float32 only; float64 ignores it): kBf16 rounds the GEMM operands to bf16 (Note [bf16 linear on the
// CPU] in linear.cpp), kFp32 and kTf32 are float32, kFp16 throws dl::Error. The backward takes the forward's.
template <typename T>
void linear_forward(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in, int64_t out,
                    Precision math = Precision::kFp32);
template <typename T>
void linear_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, int64_t n, int64_t in, int64_t out,
                     Precision math = Precision::kFp32);

// ---- softmax family: x viewed as N x C x S, reduced over C ----
template <typename T>
void softmax_forward(const T* x, T* y, int64_t n, int64_t c, int64_t s, bool log);
template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, int64_t n, int64_t c, int64_t s, bool log);
// Weighted cross-entropy from logits. Writes log-probabilities (N x C x S) for the backward and returns
// (weighted loss sum, weight sum). Labels are checked by the front end.
template <typename T>
void cross_entropy_forward(const T* logits, const int32_t* labels, const T* weights, int64_t n, int64_t c, int64_t s,
                           int32_t ignore_index, T* log_probs, double* loss_sum, double* weight_sum);
// dlogits = scale * w[y] (softmax - onehot(y)); zero at ignored positions.
template <typename T>
void cross_entropy_backward(const T* log_probs, const int32_t* labels, const T* weights, int64_t n, int64_t c,
                            int64_t s, int32_t ignore_index, T scale, T* dlogits);

// ---- concat along dim 1 of tensors viewed as N x C_i x S ----
template <typename T>
void concat_channels(const T* const* xs, const int64_t* cs, int count, int64_t n, int64_t s, T* y);
template <typename T>
void split_channels(const T* y, const int64_t* cs, int count, int64_t n, int64_t s, T* const* dxs);

}  // namespace dl::cpu

namespace dl::cpu {
// ---- metrics' counting (dl/ops/segmentation.h, dl/ops/reduce.h) ----
// The class with the largest value (smallest: the smallest; first on ties, the first NaN if any) at
// each of the N x S positions of x, N x C x S.
template <typename T>
void argmax_channels(const T* x, int64_t n, int64_t c, int64_t s, int32_t* out, bool smallest = false);
// counts[0] = predictions (argmax over C) of x N x C x S equal to their label, counts[1] = labels
// counted (all but ignore_index when it is >= 0); the CPU body of ops::correct_counts.
template <typename T>
void correct_counts(const T* x, const int32_t* labels, int64_t n, int64_t c, int64_t s, int32_t ignore_index,
                    double* counts);
// Confusion matrix (C x C, rows truth) and per image and class (prediction boundary pixels, of them
// matched, truth boundary pixels, of them matched) of int32 label maps images x h x w. Throws dl::Error
// naming the first pixel whose label is neither a class nor (in the truth) void.
void segmentation_counts(const int32_t* pred, const int32_t* truth, int64_t images, int64_t h, int64_t w, int c,
                         int32_t void_label, std::vector<int64_t>& confusion, std::vector<int64_t>& bf_counts);

// c[i] = a[i] b[i] for i < batch, row-major a[i] n x k, b[i] k x m, c[i] n x m.
template <typename T>
void batched_matmul(const T* a, const T* b, T* c, int64_t batch, int64_t n, int64_t k, int64_t m);

// ---- bilinear resize (align_corners = false) over `planes` planes of h x w -> oh x ow ----
template <typename T>
void resize_bilinear_forward(const T* x, T* y, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow);
template <typename T>
void resize_bilinear_backward(const T* dy, T* dx, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow);
// The same for channels-last x and y (N H W C and N oh ow C).
template <typename T>
void resize_bilinear_forward_nhwc(const T* x, T* y, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow);
template <typename T>
void resize_bilinear_backward_nhwc(const T* dy, T* dx, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh,
                                   int64_t ow);
}  // namespace dl::cpu
