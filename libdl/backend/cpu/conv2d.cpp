// CPU convolution as im2col + GEMM over blocks of images. A block of B images is unfolded into one
// column matrix col [C/G R S x B Ho Wo] (a thread-local buffer), so that one Eigen GEMM
// W_g [K/G x C/G R S] x col serves B images: small images (MNIST's 7 x 7 to 28 x 28) get GEMMs
// wide enough to run near peak instead of one small, overhead-bound GEMM per image (Note [image
// blocks]). Blocks run in parallel, one per thread, when there are enough of them; otherwise the
// blocks run in turn and Eigen parallelises each GEMM.
// Backward: dY of the block is gathered to [K/G x B Ho Wo]; dW_g += dY_g col^T in per-thread
// accumulators summed in thread order (deterministic for a fixed thread count); dcol = W_g^T dY_g
// then col2im into dx.
#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/conv2d_onednn.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/scratch.h"

namespace dl::cpu {

namespace {
template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Mat = Eigen::Map<RowMat<T>>;
template <typename T>
using CMat = Eigen::Map<const RowMat<T>>;

// Range of output positions o in [0, out) whose input o * stride + off lies in [0, in).
inline void valid_range(int64_t in, int64_t out, int stride, int64_t off, int64_t* lo, int64_t* hi) {
  int64_t l = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t h = in - off <= 0 ? 0 : (in - off + stride - 1) / stride;
  *lo = std::min(l, out);
  *hi = std::max(*lo, std::min(h, out));
}

// Note [image blocks]: the block size B makes the GEMM's column count B Ho Wo about kBlockColumns,
// capped so that every thread gets a block when the batch allows.
constexpr int64_t kBlockColumns = 4096;

// Unfolds one image (C channels) into rows of `col` with leading dimension ld:
// col[(ci R + r) S + s][oh Wo + ow] = x[ci][oh sh - ph + r dh][ow sw - pw + s dw], zero outside.
template <typename T>
void im2col(const Conv2dGeometry& g, const T* x, int64_t channels, T* col, int64_t ld) {
  // Note [same-width rows]: with unit strides and Wo == W, output rows map to consecutive input rows,
  // so the valid part of a whole row of col is one contiguous span of the input plane; the columns
  // that wrap around the image edge are zeroed afterwards. One copy per (ci, r, s) instead of one per
  // output row matters for MNIST's 7- to 28-pixel rows.
  const bool same_width = g.p.stride[0] == 1 && g.p.stride[1] == 1 && g.wo == g.w;
  for (int64_t ci = 0; ci < channels; ++ci)
    for (int64_t r = 0; r < g.r; ++r)
      for (int64_t s = 0; s < g.s; ++s) {
        T* row = col + ((ci * g.r + r) * g.s + s) * ld;
        const T* plane = x + ci * g.h * g.w;
        const int64_t off_h = r * g.p.dilation[0] - g.p.padding[0];
        const int64_t off_w = s * g.p.dilation[1] - g.p.padding[1];
        if (same_width) {
          int64_t h_lo, h_hi;
          valid_range(g.h, g.ho, 1, off_h, &h_lo, &h_hi);
          std::fill(row, row + h_lo * g.wo, T(0));
          std::fill(row + h_hi * g.wo, row + g.ho * g.wo, T(0));
          const int64_t begin = (h_lo + off_h) * g.w + off_w, count = (h_hi - h_lo) * g.w;
          const int64_t lo = std::max<int64_t>(begin, 0), hi = std::min<int64_t>(begin + count, g.h * g.w);
          T* out = row + h_lo * g.wo;
          if (hi > lo) std::memcpy(out + (lo - begin), plane + lo, sizeof(T) * (hi - lo));
          const int64_t zl = std::min<int64_t>(std::max<int64_t>(-off_w, 0), g.w);
          const int64_t zr = std::min<int64_t>(std::max<int64_t>(off_w, 0), g.w);
          for (int64_t oh = h_lo; oh < h_hi; ++oh) {
            T* o = row + oh * g.wo;
            for (int64_t k = 0; k < zl; ++k) o[k] = T(0);
            for (int64_t k = g.w - zr; k < g.w; ++k) o[k] = T(0);
          }
          continue;
        }
        int64_t w_lo, w_hi;
        valid_range(g.w, g.wo, g.p.stride[1], off_w, &w_lo, &w_hi);
        for (int64_t oh = 0; oh < g.ho; ++oh) {
          T* out = row + oh * g.wo;
          const int64_t ih = oh * g.p.stride[0] + off_h;
          if (ih < 0 || ih >= g.h) {
            std::fill(out, out + g.wo, T(0));
            continue;
          }
          const T* in = plane + ih * g.w + off_w;
          for (int64_t ow = 0; ow < w_lo; ++ow) out[ow] = T(0);
          if (g.p.stride[1] == 1) {
            for (int64_t ow = w_lo; ow < w_hi; ++ow) out[ow] = in[ow];
          } else {
            for (int64_t ow = w_lo; ow < w_hi; ++ow) out[ow] = in[ow * g.p.stride[1]];
          }
          for (int64_t ow = w_hi; ow < g.wo; ++ow) out[ow] = T(0);
        }
      }
}

// The adjoint of im2col: dx[ci][ih][iw] += col[...] (dx zeroed by the caller).
template <typename T>
void col2im(const Conv2dGeometry& g, const T* col, int64_t ld, int64_t channels, T* dx) {
  for (int64_t ci = 0; ci < channels; ++ci)
    for (int64_t r = 0; r < g.r; ++r)
      for (int64_t s = 0; s < g.s; ++s) {
        const T* row = col + ((ci * g.r + r) * g.s + s) * ld;
        const int64_t off_h = r * g.p.dilation[0] - g.p.padding[0];
        const int64_t off_w = s * g.p.dilation[1] - g.p.padding[1];
        int64_t w_lo, w_hi;
        valid_range(g.w, g.wo, g.p.stride[1], off_w, &w_lo, &w_hi);
        for (int64_t oh = 0; oh < g.ho; ++oh) {
          const int64_t ih = oh * g.p.stride[0] + off_h;
          if (ih < 0 || ih >= g.h) continue;
          const T* in = row + oh * g.wo;
          T* out = dx + (ci * g.h + ih) * g.w + off_w;
          if (g.p.stride[1] == 1) {
            for (int64_t ow = w_lo; ow < w_hi; ++ow) out[ow] += in[ow];
          } else {
            for (int64_t ow = w_lo; ow < w_hi; ++ow) out[ow * g.p.stride[1]] += in[ow];
          }
        }
      }
}

struct Blocking {
  int64_t images;  // B: images per block
  int64_t blocks;  // ceil(N / B)
  bool parallel;   // blocks spread over threads (else GEMMs parallelised by Eigen)
};

Blocking choose_blocking(const Conv2dGeometry& g) {
  const int threads = num_threads();
  const int64_t plane = g.ho * g.wo;
  const bool parallel = threads > 1 && g.n >= threads && !omp_in_parallel();
  int64_t b = std::max<int64_t>(1, kBlockColumns / std::max<int64_t>(plane, 1));
  if (parallel) b = std::min(b, (g.n + threads - 1) / threads);
  b = std::min(b, g.n);
  return {b, (g.n + b - 1) / b, parallel};
}

// Runs body(first_image, images, thread) over the blocks; the static contiguous split puts a given
// block on the same thread for a given thread count.
template <typename F>
void for_each_block(const Blocking& bl, int64_t n, F&& body) {
  auto run = [&](int64_t blk, int t) {
    const int64_t n0 = blk * bl.images;
    body(n0, std::min(bl.images, n - n0), t);
  };
  if (!bl.parallel) {
    for (int64_t blk = 0; blk < bl.blocks; ++blk) run(blk, 0);
    return;
  }
  ParallelErrors errors;
#pragma omp parallel num_threads(num_threads())
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t per = (bl.blocks + nt - 1) / nt;
    for (int64_t blk = t * per; blk < std::min(bl.blocks, (t + 1) * per); ++blk) errors.run([&] { run(blk, t); });
  }
  errors.rethrow();
}
// Note [conv engines]: measured with bench_ops on 2 cores (forward + backward), oneDNN's direct
// kernels are 1.2-2.4x faster than im2col + GEMM wherever a group has at least 8 input channels
// (MNIST's conv2 and conv3, every ResNet-18 stage, ASPP, the decoder), and 1.2-4x slower on the
// first layers with 1 or 3 input channels (MNIST's conv1, ResNet's 7x7 conv1), where the blocked
// im2col's GEMM is wide and oneDNN's layouts fit badly. kAuto picks by that; float64 always takes
// the im2col path.
constexpr int64_t kOneDnnMinChannels = 8;

std::atomic<int> g_engine{-1};  // -1: not yet read from DL_CPU_CONV

CpuConvEngine engine_setting() {
  int e = g_engine.load();
  if (e < 0) {
    const char* env = std::getenv("DL_CPU_CONV");
    const std::string v = env ? env : "auto";
    e = static_cast<int>(v == "onednn"   ? CpuConvEngine::kOneDnn
                         : v == "im2col" ? CpuConvEngine::kIm2col
                                         : CpuConvEngine::kAuto);
    g_engine = e;
  }
  return static_cast<CpuConvEngine>(e);
}

template <typename T>
bool use_onednn(const Conv2dGeometry& g) {
  if constexpr (!std::is_same_v<T, float>) {
    return false;
  } else {
    if (!onednn_available()) return false;
    if (g.math == Precision::kBf16) return true;  // only oneDNN has bf16 kernels (the front end checked)
    // The front end asks for NHWC only where oneDNN took the forward: its backward stays there, whatever
    // the engine setting became in between.
    if (g.channels_last) return true;
    switch (engine_setting()) {
      case CpuConvEngine::kIm2col:
        return false;
      case CpuConvEngine::kOneDnn:
        return true;
      case CpuConvEngine::kAuto:
        return g.c_per_group() >= kOneDnnMinChannels;
    }
    return false;
  }
}
}  // namespace

bool conv2d_takes_channels_last(const Conv2dGeometry& g) { return use_onednn<float>(g); }

template <typename T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* b, T* y) {
  if constexpr (std::is_same_v<T, float>)
    if (use_onednn<T>(g) && onednn_conv2d_forward(g, x, w, b, y)) return;
  DL_CHECK(!g.channels_last, "conv2d: the im2col path reads NCHW only (internal: the front end converts)");
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), plane = g.ho * g.wo;
  const int64_t kdim = cg * g.r * g.s;
  const Blocking bl = choose_blocking(g);
  const int64_t ld_max = bl.images * plane;
  // Buffers are taken before the parallel region, so that running out of memory throws from here.
  const size_t workers = bl.parallel ? static_cast<size_t>(num_threads()) : 1;
  std::vector<Scratch<T>> cols(workers), outs(workers);
  for (size_t t = 0; t < workers; ++t) {
    cols[t].ensure(static_cast<size_t>(kdim * ld_max));
    outs[t].ensure(static_cast<size_t>(kg * ld_max));
  }
  for_each_block(bl, g.n, [&](int64_t n0, int64_t nb, int t) {
    Scratch<T>& col = cols[t];
    Scratch<T>& out = outs[t];
    const int64_t ld = nb * plane;
    for (int gi = 0; gi < g.p.groups; ++gi) {
      for (int64_t i = 0; i < nb; ++i)
        im2col(g, x + ((n0 + i) * g.c + gi * cg) * g.h * g.w, cg, col.data() + i * plane, ld);
      Mat<T>(out.data(), kg, ld).noalias() = CMat<T>(w + gi * kg * kdim, kg, kdim) * CMat<T>(col.data(), kdim, ld);
      for (int64_t i = 0; i < nb; ++i)
        for (int64_t k = 0; k < kg; ++k) {
          T* dst = y + ((n0 + i) * g.k + gi * kg + k) * plane;
          const T* src = out.data() + k * ld + i * plane;
          const T bias = b ? b[gi * kg + k] : T(0);
          if (g.relu)
            for (int64_t p = 0; p < plane; ++p) dst[p] = std::max(src[p] + bias, T(0));
          else
            for (int64_t p = 0; p < plane; ++p) dst[p] = src[p] + bias;
        }
    }
  });
}

template <typename T>
void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
  if constexpr (std::is_same_v<T, float>)
    if (use_onednn<T>(g) && onednn_conv2d_backward(g, x, w, dy, dx, dw, db)) return;
  DL_CHECK(!g.channels_last, "conv2d: the im2col path reads NCHW only (internal: the front end converts)");
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), plane = g.ho * g.wo;
  const int64_t kdim = cg * g.r * g.s;
  const int64_t wsize = g.k * kdim;
  const Blocking bl = choose_blocking(g);
  const int64_t ld_max = bl.images * plane;
  // Buffers are taken before the parallel region, so that running out of memory throws from here.
  const size_t workers = bl.parallel ? static_cast<size_t>(num_threads()) : 1;
  std::vector<Scratch<T>> cols(workers), dys(workers), dws(workers), dbs(workers);
  for (size_t t = 0; t < workers; ++t) {
    cols[t].ensure(static_cast<size_t>(kdim * ld_max));
    dys[t].ensure(static_cast<size_t>(kg * ld_max));
    if (dw) dws[t].ensure_zeroed(static_cast<size_t>(wsize));
    if (db) dbs[t].ensure_zeroed(static_cast<size_t>(g.k));
  }
  for_each_block(bl, g.n, [&](int64_t n0, int64_t nb, int t) {
    Scratch<T>& col = cols[t];
    Scratch<T>& dyb = dys[t];
    if (dx) std::fill(dx + n0 * g.c * g.h * g.w, dx + (n0 + nb) * g.c * g.h * g.w, T(0));
    const int64_t ld = nb * plane;
    for (int gi = 0; gi < g.p.groups; ++gi) {
      for (int64_t i = 0; i < nb; ++i)
        for (int64_t k = 0; k < kg; ++k)
          std::memcpy(dyb.data() + k * ld + i * plane, dy + ((n0 + i) * g.k + gi * kg + k) * plane, sizeof(T) * plane);
      CMat<T> dyg(dyb.data(), kg, ld);
      if (db)
        for (int64_t k = 0; k < kg; ++k) dbs[t].data()[gi * kg + k] += dyg.row(k).sum();
      if (dw) {
        for (int64_t i = 0; i < nb; ++i)
          im2col(g, x + ((n0 + i) * g.c + gi * cg) * g.h * g.w, cg, col.data() + i * plane, ld);
        Mat<T>(dws[t].data() + gi * kg * kdim, kg, kdim).noalias() += dyg * CMat<T>(col.data(), kdim, ld).transpose();
      }
      if (dx) {
        Mat<T>(col.data(), kdim, ld).noalias() = CMat<T>(w + gi * kg * kdim, kg, kdim).transpose() * dyg;
        for (int64_t i = 0; i < nb; ++i)
          col2im(g, col.data() + i * plane, ld, cg, dx + ((n0 + i) * g.c + gi * cg) * g.h * g.w);
      }
    }
  });
  if (dw) {
    std::fill(dw, dw + wsize, T(0));
    for (auto& part : dws)
      if (!part.empty())
        Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(dw, wsize) +=
            Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(part.data(), wsize);
  }
  if (db) {
    std::fill(db, db + g.k, T(0));
    for (auto& part : dbs)
      if (!part.empty())
        for (int64_t i = 0; i < g.k; ++i) db[i] += part.data()[i];
  }
}

void set_conv_engine(CpuConvEngine e) { g_engine = static_cast<int>(e); }
CpuConvEngine conv_engine() { return engine_setting(); }

template void conv2d_forward<float>(const Conv2dGeometry&, const float*, const float*, const float*, float*);
template void conv2d_forward<double>(const Conv2dGeometry&, const double*, const double*, const double*, double*);
template void conv2d_backward<float>(const Conv2dGeometry&, const float*, const float*, const float*, float*, float*,
                                     float*);
template void conv2d_backward<double>(const Conv2dGeometry&, const double*, const double*, const double*, double*,
                                      double*, double*);

}  // namespace dl::cpu
