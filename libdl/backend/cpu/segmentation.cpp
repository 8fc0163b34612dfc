// The CPU bodies of the metrics' device work (dl/ops/reduce.h, dl/ops/segmentation.h): the argmax over
// classes, and the segmentation counts: per image the confusion matrix and, per class, the boundary
// pixels of the prediction and of the truth and how many of each lie within theta of the other map's
// boundary (Note [BF score] in dl/metrics/segmentation.h). The CUDA bodies (kernels/argmax.cuh,
// kernels/confusion.cuh, kernels/bf_score.cuh) count the same pixels.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "argmax.cuh"
#include "backend/cpu/cpu_ops.h"
#include "bf_geometry.cuh"
#include "dl/core/error.h"

namespace dl::cpu {

namespace {

// The bounding box of a class's pixels in one map (inclusive rows y0..y1, columns x0..x1).
struct Box {
  int64_t y0 = std::numeric_limits<int64_t>::max(), x0 = std::numeric_limits<int64_t>::max(), y1 = -1, x1 = -1;
  bool empty() const { return y1 < 0; }
  void add(int64_t y, int64_t x) {
    y0 = std::min(y0, y);
    y1 = std::max(y1, y);
    x0 = std::min(x0, x);
    x1 = std::max(x1, x);
  }
  Box join(const Box& o) const {
    Box b = *this;
    if (!o.empty()) {
      b.add(o.y0, o.x0);
      b.add(o.y1, o.x1);
    }
    return b;
  }
  int64_t height() const { return y1 - y0 + 1; }
  int64_t width() const { return x1 - x0 + 1; }
};

// The boundary of class c (mask AND NOT its 4-neighbour erosion, outside the image false) inside
// `box`, as a box.height() x box.width() 0/1 map. Returns the number of boundary pixels.
int64_t boundary(const int32_t* labels, int64_t h, int64_t w, int32_t c, const Box& box, std::vector<uint8_t>& out) {
  const int64_t bh = box.height(), bw = box.width();
  out.assign(static_cast<size_t>(bh * bw), 0);
  int64_t count = 0;
  for (int64_t y = box.y0; y <= box.y1; ++y) {
    const int32_t* row = labels + y * w;
    for (int64_t x = box.x0; x <= box.x1; ++x) {
      if (row[x] != c) continue;
      const bool interior = y > 0 && y + 1 < h && x > 0 && x + 1 < w && row[x - 1] == c && row[x + 1] == c &&
                            row[x - w] == c && row[x + w] == c;
      if (!interior) {
        out[(y - box.y0) * bw + (x - box.x0)] = 1;
        ++count;
      }
    }
  }
  return count;
}

// Note [thresholded exact EDT]: a boundary pixel matches when its squared distance to the nearest
// site (a boundary pixel of the other map) is < theta^2. The squared Euclidean distance transform of
// Felzenszwalb & Huttenlocher ("Distance Transforms of Sampled Functions", 2012) gives it exactly in
// O(h w): the distance to the nearest site in each column by two sweeps, then per row the lower
// envelope of the parabolas (x - q)^2 + dy(q)^2. Two shortcuts keep it exact for the question asked:
// a column whose nearest site is r_far or more rows away (r_far^2 >= theta^2) cannot bring any pixel of
// the row under theta and takes no part in the envelope, and a row is only searched at its query
// pixels (rows without one are skipped). The envelope is built in integers: intersections are kept as
// fractions num / den and compared by cross-multiplication, so no rounding decides a tie.
struct EdtScratch {
  std::vector<int32_t> dy;
  std::vector<int64_t> v, z_num, z_den;
};

int64_t count_matched(const std::vector<uint8_t>& sites, const std::vector<uint8_t>& queries, int64_t h, int64_t w,
                      double theta2, EdtScratch& s) {
  int32_t far = 0;  // the least r with r^2 >= theta^2
  while (static_cast<double>(far) * far < theta2) ++far;
  if (far == 0) return 0;
  // Column pass: rows to the nearest site of the column, saturated at `far`.
  s.dy.resize(static_cast<size_t>(h * w));
  int32_t* dy = s.dy.data();
  for (int64_t x = 0; x < w; ++x) dy[x] = sites[x] ? 0 : far;
  for (int64_t y = 1; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t i = y * w + x;
      dy[i] = sites[i] ? 0 : std::min(dy[i - w] + 1, far);
    }
  for (int64_t y = h - 2; y >= 0; --y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t i = y * w + x;
      dy[i] = std::min(dy[i], dy[i + w] + 1);
    }
  // Row pass at the query pixels. Parabola k has its vertex at column v[k] with height f(v[k]) =
  // dy^2; it is the lowest from z[k] = z_num[k] / z_den[k] (z_den > 0) up to z[k + 1].
  s.v.resize(static_cast<size_t>(w));
  s.z_num.resize(static_cast<size_t>(w) + 1);
  s.z_den.resize(static_cast<size_t>(w) + 1);
  int64_t* v = s.v.data();
  int64_t* z_num = s.z_num.data();
  int64_t* z_den = s.z_den.data();
  int64_t matched = 0;
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* query = queries.data() + y * w;
    bool any = false;
    for (int64_t x = 0; x < w && !any; ++x) any = query[x] != 0;
    if (!any) continue;
    const int32_t* g = dy + y * w;
    auto f = [&](int64_t q) { return static_cast<int64_t>(g[q]) * g[q] + q * q; };  // f(q) + q^2
    int64_t k = -1;
    for (int64_t q = 0; q < w; ++q) {
      if (g[q] >= far) continue;
      if (k < 0) {
        k = 0;
        v[0] = q;
        continue;  // z[0] = -infinity
      }
      // Intersection with the parabola on top: s = (f(q) + q^2 - f(p) - p^2) / (2 (q - p)).
      int64_t num, den;
      while (true) {
        const int64_t p = v[k];
        num = f(q) - f(p);
        den = 2 * (q - p);
        if (k == 0 || num * z_den[k] > z_num[k] * den) break;  // s > z[k]: parabola k stays
        --k;
      }
      ++k;
      v[k] = q;
      z_num[k] = num;
      z_den[k] = den;
    }
    if (k < 0) continue;  // no site within reach of this row
    const int64_t last = k;
    k = 0;
    for (int64_t q = 0; q < w; ++q) {
      if (!query[q]) continue;
      while (k < last && z_num[k + 1] < q * z_den[k + 1]) ++k;  // z[k + 1] < q
      const int64_t dx = q - v[k], d2 = dx * dx + static_cast<int64_t>(g[v[k]]) * g[v[k]];
      matched += static_cast<double>(d2) < theta2;
    }
  }
  return matched;
}

// Checks the labels of image `image`, adds its confusion matrix into `confusion` (C x C) and writes the
// cleaned prediction (void wherever truth is void).
void count_image(const int32_t* pred, const int32_t* truth, int64_t h, int64_t w, int num_classes, int32_t void_label,
                 std::vector<int64_t>& confusion, std::vector<int32_t>& clean, int64_t image) {
  clean.resize(static_cast<size_t>(h * w));
  for (int64_t i = 0; i < h * w; ++i) {
    const int32_t t = truth[i];
    if (t == void_label) {
      clean[i] = void_label;
      continue;
    }
    DL_CHECK(t >= 0 && t < num_classes, "segmentation metrics: ground-truth label ", t, " at image ", image,
             ", pixel (", i / w, ", ", i % w, ") is neither a class in [0, ", num_classes, ") nor void (", void_label,
             ")");
    const int32_t p = pred[i];
    DL_CHECK(p >= 0 && p < num_classes, "segmentation metrics: predicted label ", p, " at image ", image, ", pixel (",
             i / w, ", ", i % w, ") is not a class in [0, ", num_classes, ") (the ground truth there is ", t,
             ", not void)");
    ++confusion[static_cast<size_t>(t) * num_classes + p];
    clean[i] = p;
  }
}

// The boundary counts of every class of one image whose prediction has been cleaned (void wherever the
// truth is void) and whose labels are all in [0, C) or void: counts[k] = (prediction's boundary pixels,
// of them matched, truth's boundary pixels, of them matched).
void boundary_counts(const int32_t* pred, const int32_t* truth, int64_t h, int64_t w, int num_classes,
                     int64_t* counts) {
  std::vector<Box> box_p(num_classes), box_t(num_classes);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int32_t p = pred[y * w + x], t = truth[y * w + x];
      if (p >= 0 && p < num_classes) box_p[p].add(y, x);
      if (t >= 0 && t < num_classes) box_t[t].add(y, x);
    }
  const double theta2 = bf_theta_squared(h, w);
  std::fill(counts, counts + 4 * static_cast<int64_t>(num_classes), int64_t{0});
#pragma omp parallel for schedule(dynamic) if (num_classes > 1 && h * w >= 16384)
  for (int c = 0; c < num_classes; ++c) {
    if (box_p[c].empty() && box_t[c].empty()) continue;  // in neither map
    const Box box = box_p[c].join(box_t[c]);
    std::vector<uint8_t> bp, bt;
    int64_t* k = counts + 4 * static_cast<int64_t>(c);
    k[0] = box_p[c].empty() ? 0 : boundary(pred, h, w, c, box, bp);
    k[2] = box_t[c].empty() ? 0 : boundary(truth, h, w, c, box, bt);
    if (k[0] == 0 || k[2] == 0) continue;  // in one map only: nothing to match
    EdtScratch scratch;
    k[1] = count_matched(bt, bp, box.height(), box.width(), theta2, scratch);
    k[3] = count_matched(bp, bt, box.height(), box.width(), theta2, scratch);
  }
}

}  // namespace

void segmentation_counts(const int32_t* pred, const int32_t* truth, int64_t images, int64_t h, int64_t w, int c,
                         int32_t void_label, std::vector<int64_t>& confusion, std::vector<int64_t>& bf_counts) {
  confusion.assign(static_cast<size_t>(c) * c, 0);
  bf_counts.assign(static_cast<size_t>(images) * c * 4, 0);
  std::vector<int32_t> clean;
  for (int64_t i = 0; i < images; ++i) {
    const int32_t* p = pred + i * h * w;
    const int32_t* t = truth + i * h * w;
    count_image(p, t, h, w, c, void_label, confusion, clean, i);
    boundary_counts(clean.data(), t, h, w, c, bf_counts.data() + i * c * 4);
  }
}

template <typename T>
void argmax_channels(const T* x, int64_t n, int64_t c, int64_t s, int32_t* out, bool smallest) {
  if (smallest) {
#pragma omp parallel for if (n * s * c >= 65536)
    for (int64_t p = 0; p < n * s; ++p) out[p] = argmax_at<T, true>(x, p, c, s);
  } else {
#pragma omp parallel for if (n * s * c >= 65536)
    for (int64_t p = 0; p < n * s; ++p) out[p] = argmax_at<T, false>(x, p, c, s);
  }
}

template void argmax_channels<float>(const float*, int64_t, int64_t, int64_t, int32_t*, bool);
template void argmax_channels<double>(const double*, int64_t, int64_t, int64_t, int32_t*, bool);

template <typename T>
void correct_counts(const T* x, const int32_t* labels, int64_t n, int64_t c, int64_t s, int32_t ignore_index,
                    double* counts) {
  int64_t correct = 0, counted = 0;
#pragma omp parallel for reduction(+ : correct, counted) if (n * s * c >= 65536)
  for (int64_t p = 0; p < n * s; ++p) {
    if (ignore_index >= 0 && labels[p] == ignore_index) continue;
    ++counted;
    correct += argmax_at(x, p, c, s) == labels[p];
  }
  counts[0] = static_cast<double>(correct);
  counts[1] = static_cast<double>(counted);
}

template void correct_counts<float>(const float*, const int32_t*, int64_t, int64_t, int64_t, int32_t, double*);
template void correct_counts<double>(const double*, const int32_t*, int64_t, int64_t, int64_t, int32_t, double*);

}  // namespace dl::cpu
