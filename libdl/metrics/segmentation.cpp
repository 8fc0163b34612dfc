// Semantic segmentation metrics (see dl/metrics/segmentation.h for the definitions).
#include "dl/metrics/segmentation.h"

#include "dl/config.h"
#if DL_WITH_CUDA
#include "backend/cuda/cuda_ops.h"
#endif

#include <algorithm>
#include <cmath>
#include <limits>

namespace dl::metrics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The mean of the values that are not NaN; NaN when there are none.
double nan_mean(const std::vector<double>& v) {
  double sum = 0;
  int64_t n = 0;
  for (double x : v)
    if (!std::isnan(x)) {
      sum += x;
      ++n;
    }
  return n ? sum / static_cast<double>(n) : kNaN;
}

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

// The BF score of one class present in both maps, within the box that holds both.
double class_bf_score(const int32_t* pred, const int32_t* truth, int64_t h, int64_t w, int32_t c, const Box& box,
                      double theta2) {
  const int64_t bh = box.height(), bw = box.width();
  std::vector<uint8_t> bp, bt;
  EdtScratch scratch;
  const int64_t np = boundary(pred, h, w, c, box, bp);
  const int64_t nt = boundary(truth, h, w, c, box, bt);
  const int64_t matched_pred = count_matched(bt, bp, bh, bw, theta2, scratch);
  const int64_t matched_true = count_matched(bp, bt, bh, bw, theta2, scratch);
  return bf_score_from_counts(np, matched_pred, nt, matched_true);
}

// Per-class BF scores of an image whose prediction has been cleaned (void wherever truth is void)
// and whose labels are all in [0, C) or void.
std::vector<double> bf_scores_clean(const int32_t* pred, const int32_t* truth, int64_t h, int64_t w, int num_classes) {
  std::vector<Box> box_p(num_classes), box_t(num_classes);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int32_t p = pred[y * w + x], t = truth[y * w + x];
      if (p >= 0 && p < num_classes) box_p[p].add(y, x);
      if (t >= 0 && t < num_classes) box_t[t].add(y, x);
    }
  const double theta2 = bf_theta_squared(h, w);
  std::vector<double> scores(num_classes, kNaN);
  std::vector<int> both;
  for (int c = 0; c < num_classes; ++c) {
    if (box_p[c].empty() && box_t[c].empty()) continue;  // in neither map: not scored
    if (box_p[c].empty() || box_t[c].empty())
      scores[c] = 0.0;  // in one map only
    else
      both.push_back(c);
  }
  const int64_t n = static_cast<int64_t>(both.size());
#pragma omp parallel for schedule(dynamic) if (n > 1 && h * w >= 16384)
  for (int64_t i = 0; i < n; ++i) {
    const int c = both[i];
    scores[c] = class_bf_score(pred, truth, h, w, c, box_p[c].join(box_t[c]), theta2);
  }
  return scores;
}

// Checks the labels of one image, counts its confusion matrix into `confusion` (C x C, zeroed by the
// caller) and writes the cleaned prediction (void wherever truth is void).
void count_image(const int32_t* pred, const int32_t* truth, int64_t h, int64_t w, int num_classes, int32_t void_label,
                 std::vector<int64_t>& confusion, std::vector<int32_t>& clean) {
  clean.resize(static_cast<size_t>(h * w));
  for (int64_t i = 0; i < h * w; ++i) {
    const int32_t t = truth[i];
    if (t == void_label) {
      clean[i] = void_label;
      continue;
    }
    DL_CHECK(t >= 0 && t < num_classes, "segmentation metrics: ground-truth label ", t, " at pixel (", i / w, ", ",
             i % w, ") is neither a class in [0, ", num_classes, ") nor void (", void_label, ")");
    const int32_t p = pred[i];
    DL_CHECK(p >= 0 && p < num_classes, "segmentation metrics: predicted label ", p, " at pixel (", i / w, ", ", i % w,
             ") is not a class in [0, ", num_classes, ") (the ground truth there is ", t, ", not void)");
    ++confusion[static_cast<size_t>(t) * num_classes + p];
    clean[i] = p;
  }
}

void check_args(int64_t h, int64_t w, int num_classes) {
  DL_CHECK(h > 0 && w > 0, "segmentation metrics: expected a non-empty label map, got ", h, " x ", w);
  DL_CHECK(num_classes > 0, "segmentation metrics: expected at least one class, got ", num_classes);
}

}  // namespace

double bf_theta_squared(int64_t h, int64_t w) {
  const double theta = 0.0075 * std::sqrt(static_cast<double>(h * h + w * w));
  return theta * theta;
}

double bf_score_from_counts(int64_t pred_boundary, int64_t pred_matched, int64_t truth_boundary,
                            int64_t truth_matched) {
  if (pred_boundary == 0 && truth_boundary == 0) return kNaN;
  if (pred_boundary == 0 || truth_boundary == 0) return 0.0;
  const double precision = static_cast<double>(pred_matched) / static_cast<double>(pred_boundary);
  const double recall = static_cast<double>(truth_matched) / static_cast<double>(truth_boundary);
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

std::vector<double> bf_scores(const int32_t* pred, const int32_t* truth, int64_t h, int64_t w, int num_classes,
                              int32_t void_label) {
  check_args(h, w, num_classes);
  std::vector<int64_t> confusion(static_cast<size_t>(num_classes) * num_classes, 0);
  std::vector<int32_t> clean;
  count_image(pred, truth, h, w, num_classes, void_label, confusion, clean);
  return bf_scores_clean(clean.data(), truth, h, w, num_classes);
}

SegmentationEvaluator::SegmentationEvaluator(int num_classes, int32_t void_label)
    : num_classes_(num_classes), void_label_(void_label) {
  DL_CHECK(num_classes > 0, "SegmentationEvaluator: expected at least one class, got ", num_classes);
  DL_CHECK(void_label < 0 || void_label >= num_classes, "SegmentationEvaluator: the void label ", void_label,
           " is one of the ", num_classes, " classes");
  reset();
}

void SegmentationEvaluator::reset() {
  num_images_ = 0;
  confusion_.assign(static_cast<size_t>(num_classes_) * num_classes_, 0);
  bf_sum_.assign(num_classes_, 0.0);
  bf_count_.assign(num_classes_, 0);
  image_mean_bf_.clear();
}

void SegmentationEvaluator::add(const int32_t* pred, const int32_t* truth, int64_t h, int64_t w) {
  check_args(h, w, num_classes_);
  // Count into a local matrix first: an image with a bad label leaves the evaluator as it was.
  std::vector<int64_t> confusion(confusion_.size(), 0);
  std::vector<int32_t> clean;
  count_image(pred, truth, h, w, num_classes_, void_label_, confusion, clean);
  accumulate(confusion, bf_scores_clean(clean.data(), truth, h, w, num_classes_));
}

void SegmentationEvaluator::accumulate(const std::vector<int64_t>& confusion, const std::vector<double>& bf) {
  for (size_t i = 0; i < confusion.size(); ++i) confusion_[i] += confusion[i];
  for (int c = 0; c < num_classes_; ++c)
    if (!std::isnan(bf[c])) {
      bf_sum_[c] += bf[c];
      ++bf_count_[c];
    }
  image_mean_bf_.push_back(nan_mean(bf));
  ++num_images_;
}

void SegmentationEvaluator::add(const uint8_t* pred, const uint8_t* truth, int64_t h, int64_t w) {
  check_args(h, w, num_classes_);
  const std::vector<int32_t> p(pred, pred + h * w), t(truth, truth + h * w);
  add(p.data(), t.data(), h, w);
}

void SegmentationEvaluator::add(const Tensor& pred, const Tensor& truth) {
  DL_CHECK(pred.defined() && truth.defined(), "SegmentationEvaluator::add: undefined label map");
  DL_CHECK(pred.shape() == truth.shape() && (pred.dim() == 2 || pred.dim() == 3),
           "SegmentationEvaluator::add: expected prediction and ground truth of one shape, H x W or N x H x W, got ",
           pred.shape().str(), " and ", truth.shape().str());
  for (const Tensor* t : {&pred, &truth})
    DL_CHECK(t->dtype() == DType::kInt32 || t->dtype() == DType::kUInt8,
             "SegmentationEvaluator::add: expected int32 or uint8 labels, got ", dtype_name(t->dtype()));
  // The device kernels hold 32 classes in shared memory; more go through the CPU.
  if (pred.device().is_cuda() && truth.device() == pred.device() && num_classes_ <= 32)
    return add_on_device(pred, truth);
  const Tensor p = pred.to(Device::cpu()).to(DType::kInt32), t = truth.to(Device::cpu()).to(DType::kInt32);
  const int64_t n = pred.dim() == 3 ? pred.size(0) : 1, h = pred.size(-2), w = pred.size(-1);
  for (int64_t i = 0; i < n; ++i) add(p.data<int32_t>() + i * h * w, t.data<int32_t>() + i * h * w, h, w);
}

void SegmentationEvaluator::add_on_device(const Tensor& pred_any, const Tensor& truth_any) {
#if DL_WITH_CUDA
  const Tensor pred = pred_any.to(DType::kInt32), truth = truth_any.to(DType::kInt32);
  const int64_t n = pred.dim() == 3 ? pred.size(0) : 1, h = pred.size(-2), w = pred.size(-1);
  std::vector<int64_t> confusion(confusion_.size(), 0);
  std::vector<unsigned long long> counts;  // per image and class: predicted (total, matched), true (total, matched)
  cuda::segmentation_counts(pred.device().index, pred.data<int32_t>(), truth.data<int32_t>(), n, h, w, num_classes_,
                            void_label_, confusion, counts);
  // The confusion of the whole batch goes in with the first image; the BF scores image by image.
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> bf(num_classes_, kNaN);
    for (int c = 0; c < num_classes_; ++c) {
      const unsigned long long* q = counts.data() + (i * num_classes_ + c) * 4;
      bf[c] = bf_score_from_counts(static_cast<int64_t>(q[0]), static_cast<int64_t>(q[1]), static_cast<int64_t>(q[2]),
                                   static_cast<int64_t>(q[3]));
    }
    accumulate(i == 0 ? confusion : std::vector<int64_t>(confusion.size(), 0), bf);
  }
#else
  DL_THROW("SegmentationEvaluator: label maps on ", pred_any.device().str(), " but libdl was built without CUDA");
#endif
}

void SegmentationEvaluator::merge(const SegmentationEvaluator& other) {
  DL_CHECK(other.num_classes_ == num_classes_ && other.void_label_ == void_label_,
           "SegmentationEvaluator::merge: ", num_classes_, " classes (void ", void_label_, ") and ", other.num_classes_,
           " classes (void ", other.void_label_, ")");
  for (size_t i = 0; i < confusion_.size(); ++i) confusion_[i] += other.confusion_[i];
  for (int c = 0; c < num_classes_; ++c) {
    bf_sum_[c] += other.bf_sum_[c];
    bf_count_[c] += other.bf_count_[c];
  }
  image_mean_bf_.insert(image_mean_bf_.end(), other.image_mean_bf_.begin(), other.image_mean_bf_.end());
  num_images_ += other.num_images_;
}

SegmentationMetrics SegmentationEvaluator::result() const {
  const int nc = num_classes_;
  SegmentationMetrics m;
  m.num_classes = nc;
  m.num_images = num_images_;
  m.confusion = confusion_;
  m.image_mean_bf_score = image_mean_bf_;
  m.class_accuracy.assign(nc, kNaN);
  m.class_iou.assign(nc, kNaN);
  m.class_mean_bf_score.assign(nc, kNaN);

  int64_t total = 0, correct = 0;
  double weighted = 0, weight = 0;
  for (int c = 0; c < nc; ++c) {
    int64_t row = 0, col = 0;
    for (int k = 0; k < nc; ++k) {
      row += m.confusion_at(c, k);
      col += m.confusion_at(k, c);
    }
    const int64_t tp = m.confusion_at(c, c);
    total += row;
    correct += tp;
    if (row > 0) m.class_accuracy[c] = static_cast<double>(tp) / static_cast<double>(row);
    if (row + col - tp > 0) m.class_iou[c] = static_cast<double>(tp) / static_cast<double>(row + col - tp);
    if (row > 0) {
      weighted += static_cast<double>(row) * m.class_iou[c];
      weight += static_cast<double>(row);
    }
    if (bf_count_[c] > 0) m.class_mean_bf_score[c] = bf_sum_[c] / static_cast<double>(bf_count_[c]);
  }
  m.global_accuracy = total ? static_cast<double>(correct) / static_cast<double>(total) : kNaN;
  m.mean_accuracy = nan_mean(m.class_accuracy);
  m.mean_iou = nan_mean(m.class_iou);
  m.weighted_iou = weight > 0 ? weighted / weight : kNaN;
  m.mean_bf_score = nan_mean(image_mean_bf_);
  return m;
}

}  // namespace dl::metrics
