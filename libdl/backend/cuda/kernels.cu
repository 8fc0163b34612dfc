// Launches of the hand-written kernels of kernels/ on the device's compute stream: the CUDA Launcher
// of Note [launchers] (kernels/compat.cuh) and the bodies of the kernel half of cuda_ops.h. The launch
// sequences themselves live beside the kernels, shared with the emulation that tests them.
#include "accuracy.cuh"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/runtime.h"
#include "batch_norm.cuh"
#include "bf_score.cuh"
#include "broadcast.cuh"
#include "cast.cuh"
#include "concat.cuh"
#include "confusion.cuh"
#include "cross_entropy.cuh"
#include "dropout.cuh"
#include "elementwise.cuh"
#include "index.cuh"
#include "optim.cuh"
#include "resize.cuh"

namespace dl::cuda {
namespace {

// Every launch on the device's compute stream, checked at once; grid-stride grids capped at 32 blocks
// per multiprocessor (enough to fill it; more only adds scheduling). Scratch buffers come from the
// caching allocator and go back when the launch sequence returns, which stream order makes safe.
class CudaLauncher {
 public:
  explicit CudaLauncher(int device) : device_(device), guard_(device), ctx_(context(device)) {}

  int block_size(int preferred) const { return preferred; }
  unsigned grid_size(int64_t items, int block) const {
    const int64_t cap = static_cast<int64_t>(ctx_.props.multiProcessorCount) * 32;
    int64_t g = (items + block - 1) / block;
    return static_cast<unsigned>(g < 1 ? 1 : (g > cap ? cap : g));
  }
  template <typename... P, typename... A>
  void launch(void (*kernel)(P...), dim3 grid, dim3 block, A... args) {
    kernel<<<grid, block, 0, ctx_.compute>>>(static_cast<P>(args)...);
    DL_CUDA_CHECK_LAUNCH();
  }
  template <typename T>
  struct Scratch {
    DeviceBuffer buffer;
    T* get() const { return buffer.as<T>(); }
  };
  template <typename T>
  Scratch<T> scratch(int64_t count) const {
    return Scratch<T>{DeviceBuffer(static_cast<size_t>(count < 1 ? 1 : count) * sizeof(T), device_)};
  }

 private:
  int device_;
  DeviceGuard guard_;
  DeviceContext& ctx_;
};

}  // namespace

// ---- element-wise ----
void fill(int device, float* y, int64_t n, float value) {
  CudaLauncher l(device);
  kern::launch_1d(l, kern::fill_kernel<float>, n, y, n, value);
}
template <typename Op>
void unary_forward(int device, const Op& op, const float* x, float* y, int64_t n) {
  CudaLauncher l(device);
  kern::run_unary_forward(l, op, x, y, n);
}
template <typename Op>
void unary_backward(int device, const Op& op, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  CudaLauncher l(device);
  kern::run_unary_backward(l, op, x, y, dy, dx, n);
}
#define DL_INSTANTIATE_UNARY(Op)                                                                                 \
  template void unary_forward<kern::Op>(int, const kern::Op&, const float*, float*, int64_t);                    \
  template void unary_backward<kern::Op>(int, const kern::Op&, const float*, const float*, const float*, float*, \
                                         int64_t);
DL_UNARY_OPS(DL_INSTANTIATE_UNARY)
#undef DL_INSTANTIATE_UNARY

void dropout(int device, const float* x, float* y, int64_t n, uint64_t seed, float p) {
  CudaLauncher l(device);
  kern::run_dropout(l, x, y, n, seed, p);
}
template <typename Op>
void broadcast_binary(int device, const Op& op, const float* a, const float* b, float bs, float* y, int64_t n,
                      const kern::StridedIndex<2>& ix) {
  CudaLauncher l(device);
  kern::run_broadcast_binary(l, op, a, b, bs, y, n, ix);
}
template <typename Op>
void broadcast_binary_backward(int device, const Op& op, const float* a, const float* b, float bs, const float* y,
                               const float* dy, float* ga, float* gb, int64_t n, const kern::StridedIndex<2>& ix) {
  CudaLauncher l(device);
  kern::run_broadcast_binary_backward(l, op, a, b, bs, y, dy, ga, gb, n, ix);
}
template <typename Op, typename T>
void compare(int device, const Op& op, const T* a, const T* b, T bs, uint8_t* y, int64_t n,
             const kern::StridedIndex<2>& ix) {
  CudaLauncher l(device);
  kern::run_compare(l, op, a, b, bs, y, n, ix);
}
#define DL_INSTANTIATE_BINARY(Op)                                                                                    \
  template void broadcast_binary<kern::Op>(int, const kern::Op&, const float*, const float*, float, float*, int64_t, \
                                           const kern::StridedIndex<2>&);                                            \
  template void broadcast_binary_backward<kern::Op>(int, const kern::Op&, const float*, const float*, float,         \
                                                    const float*, const float*, float*, float*, int64_t,             \
                                                    const kern::StridedIndex<2>&);
DL_BINARY_OPS(DL_INSTANTIATE_BINARY)
#undef DL_INSTANTIATE_BINARY
#define DL_INSTANTIATE_COMPARE_T(Op, T)                                                              \
  template void compare<kern::Op, T>(int, const kern::Op&, const T*, const T*, T, uint8_t*, int64_t, \
                                     const kern::StridedIndex<2>&);
#define DL_INSTANTIATE_COMPARE(Op) \
  DL_INSTANTIATE_COMPARE_T(Op, float) DL_INSTANTIATE_COMPARE_T(Op, int32_t) DL_INSTANTIATE_COMPARE_T(Op, int64_t)
DL_COMPARE_OPS(DL_INSTANTIATE_COMPARE)
#undef DL_INSTANTIATE_COMPARE
#undef DL_INSTANTIATE_COMPARE_T
void where(int device, const uint8_t* cond, const float* a, const float* b, float* y, int64_t n,
           const kern::StridedIndex<3>& ix) {
  CudaLauncher l(device);
  kern::run_where(l, cond, a, b, y, n, ix);
}
void strided_copy(int device, const void* x, void* y, size_t elem_size, int64_t n, const kern::StridedIndex<1>& ix) {
  CudaLauncher l(device);
  switch (elem_size) {
    case 1:
      return kern::run_strided_copy(l, static_cast<const uint8_t*>(x), static_cast<uint8_t*>(y), n, ix);
    case 2:
      return kern::run_strided_copy(l, static_cast<const uint16_t*>(x), static_cast<uint16_t*>(y), n, ix);
    case 4:
      return kern::run_strided_copy(l, static_cast<const uint32_t*>(x), static_cast<uint32_t*>(y), n, ix);
    case 8:
      return kern::run_strided_copy(l, static_cast<const uint64_t*>(x), static_cast<uint64_t*>(y), n, ix);
    default:
      DL_THROW("strided_copy: elements of 1, 2, 4 or 8 bytes, got ", elem_size);
  }
}
void gather(int device, const float* x, const void* index, size_t index_elem, float* y, int64_t n,
            const kern::GatherIndex& g) {
  CudaLauncher l(device);
  if (index_elem == 4) return kern::run_gather(l, x, static_cast<const int32_t*>(index), y, n, g);
  DL_CHECK(index_elem == 8, "gather: int32 or int64 indices, got elements of ", index_elem, " bytes");
  kern::run_gather(l, x, static_cast<const int64_t*>(index), y, n, g);
}
void scatter_add_acc(int device, const float* src, const void* index, size_t index_elem, float* x,
                     const kern::GatherIndex& g) {
  CudaLauncher l(device);
  if (index_elem == 4) return kern::run_scatter_add(l, src, static_cast<const int32_t*>(index), x, g);
  DL_CHECK(index_elem == 8, "scatter_add: int32 or int64 indices, got elements of ", index_elem, " bytes");
  kern::run_scatter_add(l, src, static_cast<const int64_t*>(index), x, g);
}
void strided_scatter(int device, const void* y, void* x, size_t elem_size, int64_t n, const kern::StridedIndex<1>& ix) {
  CudaLauncher l(device);
  switch (elem_size) {
    case 1:
      return kern::run_strided_scatter(l, static_cast<const uint8_t*>(y), static_cast<uint8_t*>(x), n, ix);
    case 2:
      return kern::run_strided_scatter(l, static_cast<const uint16_t*>(y), static_cast<uint16_t*>(x), n, ix);
    case 4:
      return kern::run_strided_scatter(l, static_cast<const uint32_t*>(y), static_cast<uint32_t*>(x), n, ix);
    case 8:
      return kern::run_strided_scatter(l, static_cast<const uint64_t*>(y), static_cast<uint64_t*>(x), n, ix);
    default:
      DL_THROW("strided_scatter: elements of 1, 2, 4 or 8 bytes, got ", elem_size);
  }
}
void reduce_sum(int device, const float* x, float* y, int64_t n_out, const kern::StridedIndex<1>& kept,
                const kern::StridedIndex<1>& reduced, int64_t n_red, double scale) {
  CudaLauncher l(device);
  kern::run_reduce_sum(l, x, y, n_out, kept, reduced, n_red, scale);
}
void axpy_acc(int device, float alpha, const float* x, float* y, int64_t n) {
  CudaLauncher l(device);
  kern::launch_1d(l, kern::axpy_kernel<float>, n, alpha, x, y, n);
}
void sum(int device, const float* a, float* out, int64_t n) {
  CudaLauncher l(device);
  kern::run_sum(l, a, n, 1.f, out);
}
void sum_squares(int device, const float* a, double* out, int64_t n) {
  CudaLauncher l(device);
  kern::run_sum(l, a, n, 1.0, out, /*square=*/true);
}
void broadcast_scalar(int device, const float* x, float s, float* y, int64_t n) {
  CudaLauncher l(device);
  kern::launch_1d(l, kern::broadcast_scalar_kernel<float>, n, x, s, y, n);
}
void bias_add_acc(int device, float* y, const float* b, int64_t rows, int64_t cols) {
  CudaLauncher l(device);
  kern::launch_1d(l, kern::bias_add_kernel<float>, rows * cols, y, b, rows, cols);
}
void lerp_(int device, float* y, const float* x, float m, int64_t n) {
  CudaLauncher l(device);
  kern::launch_1d(l, kern::lerp_kernel<float>, n, y, x, m, n);
}

// ---- casts to and from bf16 / fp16 ----
namespace {
kern::Format16 format16(Precision math, const char* what) {
  if (math == Precision::kBf16) return kern::Format16::kBf16;
  if (math == Precision::kFp16) return kern::Format16::kFp16;
  DL_THROW(what, ": expected the precision bf16 or fp16, got ", precision_name(math));
}
}  // namespace

void cast_to_16(int device, Precision math, const float* x, uint16_t* y, int64_t n) {
  const kern::Format16 f = format16(math, "cast to 16 bits");
  CudaLauncher l(device);
  kern::run_float_to_16(l, f, x, y, n);
}
void cast_from_16(int device, Precision math, const uint16_t* y, float* x_f32, int64_t n) {
  const kern::Format16 f = format16(math, "cast from 16 bits");
  CudaLauncher l(device);
  kern::run_16_to_float(l, f, y, x_f32, n);
}

// ---- cross-entropy ----
void cross_entropy_forward(int device, const float* logits, const int32_t* labels, const float* weights, int64_t n,
                           int64_t c, int64_t s, int32_t ignore_index, float* log_probs, float* loss,
                           double* weight_sum) {
  CudaLauncher l(device);
  kern::run_cross_entropy_forward(l, logits, labels, weights, n, c, s, ignore_index, log_probs, loss, weight_sum);
}
void cross_entropy_backward(int device, const float* log_probs, const int32_t* labels, const float* weights, int64_t n,
                            int64_t c, int64_t s, int32_t ignore_index, const float* gy, const double* weight_sum,
                            float* dlogits) {
  CudaLauncher l(device);
  kern::run_cross_entropy_backward(l, log_probs, labels, weights, n, c, s, ignore_index, gy, weight_sum, dlogits);
}
std::pair<int64_t, int32_t> first_bad_label(int device, const int32_t* labels, int64_t count, int64_t c,
                                            int32_t ignore_index) {
  CudaLauncher l(device);
  auto first = l.scratch<unsigned long long>(1);
  kern::run_find_bad_label(l, labels, count, c, ignore_index, first.get());
  unsigned long long pos = 0;
  copy_bytes(&pos, first.get(), sizeof pos, cudaMemcpyDeviceToHost, device, /*wait=*/true);
  if (pos >= static_cast<unsigned long long>(count)) return {count, 0};
  int32_t label = 0;
  copy_bytes(&label, labels + pos, sizeof label, cudaMemcpyDeviceToHost, device, /*wait=*/true);
  return {static_cast<int64_t>(pos), label};
}

// ---- shape ops, resize, batch norm ----
void concat_channels(int device, const float* const* xs, const int64_t* cs, int count, int64_t n, int64_t s, float* y) {
  CudaLauncher l(device);
  kern::run_concat(l, xs, cs, count, n, s, y);
}
void split_channels(int device, const float* y, const int64_t* cs, int count, int64_t n, int64_t s, float* const* dxs) {
  CudaLauncher l(device);
  kern::run_split(l, y, cs, count, n, s, dxs);
}
void resize_bilinear_forward(int device, const float* x, float* y, int64_t planes, int64_t h, int64_t w, int64_t oh,
                             int64_t ow) {
  CudaLauncher l(device);
  kern::run_resize_bilinear_forward(l, x, y, planes, h, w, oh, ow);
}
void resize_bilinear_backward(int device, const float* dy, float* dx, int64_t planes, int64_t h, int64_t w, int64_t oh,
                              int64_t ow) {
  CudaLauncher l(device);
  kern::run_resize_bilinear_backward(l, dy, dx, planes, h, w, oh, ow);
}
void batch_norm_backward_infer(int device, const float* x, const float* gamma, const float* dy, const float* mean,
                               const float* var, int64_t n, int64_t c, int64_t s, double eps, float* dx, float* dgamma,
                               float* dbeta) {
  CudaLauncher l(device);
  kern::run_batch_norm_backward_infer(l, x, gamma, dy, mean, var, n, c, s, eps, dx, dgamma, dbeta);
}

// ---- segmentation metrics ----
void segmentation_counts(int device, const int32_t* pred, const int32_t* truth, int64_t images, int64_t h, int64_t w,
                         int c, int32_t void_label, std::vector<int64_t>& confusion, std::vector<int64_t>& bf_counts) {
  CudaLauncher l(device);
  const int64_t pixels = images * h * w;
  auto conf = l.scratch<unsigned long long>(static_cast<int64_t>(c) * c + 1);
  auto counts = l.scratch<unsigned long long>(2 * images * c * 2);
  kern::launch_1d(l, kern::fill_kernel<unsigned long long>, static_cast<int64_t>(c) * c, conf.get(),
                  static_cast<int64_t>(c) * c, 0ull);
  unsigned long long* first_bad = conf.get() + static_cast<int64_t>(c) * c;
  kern::run_confusion(l, pred, static_cast<const float*>(nullptr), truth, pixels, h * w, c, void_label, conf.get(),
                      first_bad);
  kern::run_bf_counts(l, pred, truth, images, h, w, c, void_label, counts.get(), counts.get() + images * c * 2);

  std::vector<unsigned long long> host_conf(static_cast<size_t>(c) * c + 1), host_counts(2 * images * c * 2);
  copy_bytes(host_conf.data(), conf.get(), host_conf.size() * sizeof(unsigned long long), cudaMemcpyDeviceToHost,
             device, /*wait=*/false);
  copy_bytes(host_counts.data(), counts.get(), host_counts.size() * sizeof(unsigned long long), cudaMemcpyDeviceToHost,
             device, /*wait=*/true);
  const unsigned long long bad = host_conf.back();
  if (bad < static_cast<unsigned long long>(pixels)) {
    int32_t labels[2] = {0, 0};
    copy_bytes(&labels[0], pred + bad, sizeof(int32_t), cudaMemcpyDeviceToHost, device, false);
    copy_bytes(&labels[1], truth + bad, sizeof(int32_t), cudaMemcpyDeviceToHost, device, true);
    const int64_t plane = h * w, p = static_cast<int64_t>(bad);
    DL_THROW("segmentation metrics (cuda:", device, "): at image ", p / plane, ", pixel (", p % plane / w, ", ", p % w,
             ") the prediction is ", labels[0], " and the ground truth ", labels[1], "; expected classes in [0, ", c,
             ") or the void label ", void_label, " in the ground truth");
  }
  confusion.resize(static_cast<size_t>(c) * c, 0);
  for (size_t i = 0; i < confusion.size(); ++i) confusion[i] += static_cast<int64_t>(host_conf[i]);
  // Interleave per image and class: pred (total, matched), truth (total, matched).
  bf_counts.assign(static_cast<size_t>(images) * c * 4, 0);
  for (int64_t i = 0; i < images * c; ++i) {
    bf_counts[4 * i] = static_cast<int64_t>(host_counts[2 * i]);
    bf_counts[4 * i + 1] = static_cast<int64_t>(host_counts[2 * i + 1]);
    bf_counts[4 * i + 2] = static_cast<int64_t>(host_counts[2 * images * c + 2 * i]);
    bf_counts[4 * i + 3] = static_cast<int64_t>(host_counts[2 * images * c + 2 * i + 1]);
  }
}
void argmax_channels(int device, const float* logits, int64_t n, int64_t c, int64_t s, int32_t* out, bool smallest) {
  CudaLauncher l(device);
  kern::run_argmax(l, logits, n, c, s, out, smallest);
}
void correct_counts(int device, const float* logits, const int32_t* labels, int64_t n, int64_t c, int64_t s,
                    int32_t ignore_index, double* counts) {
  CudaLauncher l(device);
  kern::run_correct_counts(l, logits, labels, n * s, s, c, ignore_index, counts);
}

// ---- optimiser updates ----
void sgdm_update(int device, float* w, const float* g, float* v, int64_t n, float lr, float momentum, float l2) {
  CudaLauncher l(device);
  kern::run_sgdm(l, w, g, v, n, lr, momentum, l2);
}
void adam_update(int device, float* w, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                 float beta2, float eps, float l2, int64_t t) {
  CudaLauncher l(device);
  kern::run_adam(l, w, g, m, v, n, lr, beta1, beta2, eps, l2, t);
}
void rmsprop_update(int device, float* w, const float* g, float* v, int64_t n, float lr, float decay, float eps,
                    float l2) {
  CudaLauncher l(device);
  kern::run_rmsprop(l, w, g, v, n, lr, decay, eps, l2);
}

}  // namespace dl::cuda
