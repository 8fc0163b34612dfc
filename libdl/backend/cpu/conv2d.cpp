// CPU convolution: per image and group, im2col into a thread-local buffer and one Eigen GEMM
// (W_g [K/G x C/G R S] times col [C/G R S x Ho Wo]). A 1x1, stride-1, unpadded convolution skips
// the im2col. With at least as many images as threads, images run in parallel (each GEMM on one
// thread); otherwise images run in turn and Eigen parallelises each GEMM.
// Backward: dcol = W_g^T dY_g then col2im into dx; dW_g += dY_g col^T in per-thread accumulators
// that are summed in thread order (deterministic for a fixed thread count).
#include <Eigen/Core>
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/parallel.h"

namespace dl::cpu {

namespace {
template <typename T> using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T> using Mat = Eigen::Map<RowMat<T>>;
template <typename T> using CMat = Eigen::Map<const RowMat<T>>;

// Range of output positions o in [0, out) whose input o * stride + off lies in [0, in).
inline void valid_range(int64_t in, int64_t out, int stride, int64_t off, int64_t* lo, int64_t* hi) {
  int64_t l = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t h = in - off <= 0 ? 0 : (in - off + stride - 1) / stride;
  *lo = std::min(l, out);
  *hi = std::max(*lo, std::min(h, out));
}

bool is_pointwise(const Conv2dGeometry& g) {
  return g.r == 1 && g.s == 1 && g.p.stride[0] == 1 && g.p.stride[1] == 1 && g.p.padding[0] == 0 &&
         g.p.padding[1] == 0;
}

// col[(ci R + r) S + s][oh Wo + ow] = x[ci][oh sh - ph + r dh][ow sw - pw + s dw], zero outside.
template <typename T> void im2col(const Conv2dGeometry& g, const T* x, int64_t channels, T* col) {
  const int64_t plane = g.ho * g.wo;
  for (int64_t ci = 0; ci < channels; ++ci)
    for (int64_t r = 0; r < g.r; ++r)
      for (int64_t s = 0; s < g.s; ++s) {
        T* row = col + ((ci * g.r + r) * g.s + s) * plane;
        const int64_t off_h = r * g.p.dilation[0] - g.p.padding[0];
        const int64_t off_w = s * g.p.dilation[1] - g.p.padding[1];
        int64_t w_lo, w_hi;
        valid_range(g.w, g.wo, g.p.stride[1], off_w, &w_lo, &w_hi);
        for (int64_t oh = 0; oh < g.ho; ++oh) {
          T* out = row + oh * g.wo;
          const int64_t ih = oh * g.p.stride[0] + off_h;
          if (ih < 0 || ih >= g.h) {
            std::fill(out, out + g.wo, T(0));
            continue;
          }
          const T* in = x + (ci * g.h + ih) * g.w + off_w;
          std::fill(out, out + w_lo, T(0));
          if (g.p.stride[1] == 1) {
            std::memcpy(out + w_lo, in + w_lo, sizeof(T) * (w_hi - w_lo));
          } else {
            for (int64_t ow = w_lo; ow < w_hi; ++ow) out[ow] = in[ow * g.p.stride[1]];
          }
          std::fill(out + w_hi, out + g.wo, T(0));
        }
      }
}

// The adjoint of im2col: dx[ci][ih][iw] += col[...] (dx must be zeroed by the caller).
template <typename T> void col2im(const Conv2dGeometry& g, const T* col, int64_t channels, T* dx) {
  const int64_t plane = g.ho * g.wo;
  for (int64_t ci = 0; ci < channels; ++ci)
    for (int64_t r = 0; r < g.r; ++r)
      for (int64_t s = 0; s < g.s; ++s) {
        const T* row = col + ((ci * g.r + r) * g.s + s) * plane;
        const int64_t off_h = r * g.p.dilation[0] - g.p.padding[0];
        const int64_t off_w = s * g.p.dilation[1] - g.p.padding[1];
        int64_t w_lo, w_hi;
        valid_range(g.w, g.wo, g.p.stride[1], off_w, &w_lo, &w_hi);
        for (int64_t oh = 0; oh < g.ho; ++oh) {
          const int64_t ih = oh * g.p.stride[0] + off_h;
          if (ih < 0 || ih >= g.h) continue;
          const T* in = row + oh * g.wo;
          T* out = dx + (ci * g.h + ih) * g.w + off_w;
          for (int64_t ow = w_lo; ow < w_hi; ++ow) out[ow * g.p.stride[1]] += in[ow];
        }
      }
}

// Runs body(n, thread) over the images: in parallel over images when there are enough of them.
template <typename F> void for_each_image(const Conv2dGeometry& g, bool* batch_parallel, F&& body) {
  const int threads = num_threads();
  *batch_parallel = g.n >= threads && threads > 1 && !omp_in_parallel();
  if (*batch_parallel) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      const int nt = omp_get_num_threads();
      // Static contiguous split: image n always lands on the same thread for a given count.
      const int64_t per = (g.n + nt - 1) / nt;
      for (int64_t n = t * per; n < std::min<int64_t>(g.n, (t + 1) * per); ++n) body(n, t);
    }
  } else {
    for (int64_t n = 0; n < g.n; ++n) body(n, 0);
  }
}
}  // namespace

template <typename T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* b, T* y) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), plane = g.ho * g.wo;
  const int64_t kdim = cg * g.r * g.s;
  const bool pointwise = is_pointwise(g);
  std::vector<std::vector<T>> cols(static_cast<size_t>(num_threads()));
  bool batch_parallel = false;
  for_each_image(g, &batch_parallel, [&](int64_t n, int t) {
    std::vector<T>& col = cols[t];
    if (!pointwise && col.empty()) col.resize(static_cast<size_t>(kdim * plane));
    for (int gi = 0; gi < g.p.groups; ++gi) {
      const T* xg = x + (n * g.c + gi * cg) * g.h * g.w;
      const T* src = xg;
      if (!pointwise) {
        im2col(g, xg, cg, col.data());
        src = col.data();
      }
      Mat<T> yg(y + (n * g.k + gi * kg) * plane, kg, plane);
      yg.noalias() = CMat<T>(w + gi * kg * kdim, kg, kdim) * CMat<T>(src, kdim, plane);
      if (b)
        for (int64_t k = 0; k < kg; ++k) yg.row(k).array() += b[gi * kg + k];
    }
  });
}

template <typename T>
void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), plane = g.ho * g.wo;
  const int64_t kdim = cg * g.r * g.s;
  const int64_t wsize = g.k * kdim;
  const bool pointwise = is_pointwise(g);
  const int threads = num_threads();
  std::vector<std::vector<T>> cols(threads), dcols(threads), dws(threads), dbs(threads);
  bool batch_parallel = false;
  for_each_image(g, &batch_parallel, [&](int64_t n, int t) {
    if (!pointwise && cols[t].empty()) {
      cols[t].resize(static_cast<size_t>(kdim * plane));
      dcols[t].resize(static_cast<size_t>(kdim * plane));
    }
    if (dw && dws[t].empty()) dws[t].assign(static_cast<size_t>(wsize), T(0));
    if (db && dbs[t].empty()) dbs[t].assign(static_cast<size_t>(g.k), T(0));
    if (dx) std::fill(dx + n * g.c * g.h * g.w, dx + (n + 1) * g.c * g.h * g.w, T(0));
    for (int gi = 0; gi < g.p.groups; ++gi) {
      const T* xg = x + (n * g.c + gi * cg) * g.h * g.w;
      CMat<T> dyg(dy + (n * g.k + gi * kg) * plane, kg, plane);
      CMat<T> wg(w + gi * kg * kdim, kg, kdim);
      if (dw) {
        const T* src = xg;
        if (!pointwise) {
          im2col(g, xg, cg, cols[t].data());
          src = cols[t].data();
        }
        Mat<T>(dws[t].data() + gi * kg * kdim, kg, kdim).noalias() += dyg * CMat<T>(src, kdim, plane).transpose();
      }
      if (db)
        for (int64_t k = 0; k < kg; ++k) dbs[t][gi * kg + k] += dyg.row(k).sum();
      if (dx) {
        T* dxg = dx + (n * g.c + gi * cg) * g.h * g.w;
        if (pointwise) {
          Mat<T>(dxg, kdim, plane).noalias() = wg.transpose() * dyg;
        } else {
          Mat<T>(dcols[t].data(), kdim, plane).noalias() = wg.transpose() * dyg;
          col2im(g, dcols[t].data(), cg, dxg);
        }
      }
    }
  });
  if (dw) {
    std::fill(dw, dw + wsize, T(0));
    for (auto& part : dws)
      if (!part.empty())
        for (int64_t i = 0; i < wsize; ++i) dw[i] += part[i];
  }
  if (db) {
    std::fill(db, db + g.k, T(0));
    for (auto& part : dbs)
      if (!part.empty())
        for (int64_t i = 0; i < g.k; ++i) db[i] += part[i];
  }
}

template void conv2d_forward<float>(const Conv2dGeometry&, const float*, const float*, const float*, float*);
template void conv2d_forward<double>(const Conv2dGeometry&, const double*, const double*, const double*, double*);
template void conv2d_backward<float>(const Conv2dGeometry&, const float*, const float*, const float*, float*, float*,
                                     float*);
template void conv2d_backward<double>(const Conv2dGeometry&, const double*, const double*, const double*, double*,
                                      double*, double*);

}  // namespace dl::cpu
