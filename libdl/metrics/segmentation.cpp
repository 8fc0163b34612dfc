// Semantic segmentation metrics (see dl/metrics/segmentation.h for the definitions).
#include "dl/metrics/segmentation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "bf_geometry.cuh"
#include "dl/ops/segmentation.h"

namespace dl::metrics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A CPU tensor holding a copy of one h x w label map.
template <typename T>
Tensor label_map(const T* labels, int64_t h, int64_t w) {
  Tensor t = Tensor::empty(Shape{h, w}, std::is_same_v<T, uint8_t> ? DType::kUInt8 : DType::kInt32);
  std::copy(labels, labels + h * w, t.data<T>());
  return t;
}

// The BF score of every class in image i (NaN for a class in neither map).
std::vector<double> image_bf_scores(const ops::SegmentationCounts& counts, int64_t i) {
  std::vector<double> bf(counts.num_classes, kNaN);
  for (int c = 0; c < counts.num_classes; ++c) {
    const int64_t* q = counts.boundary.data() + (i * counts.num_classes + c) * 4;
    bf[c] = bf_score_from_counts(q[0], q[1], q[2], q[3]);
  }
  return bf;
}

void check_args(int64_t h, int64_t w, int num_classes) {
  DL_CHECK(h > 0 && w > 0, "segmentation metrics: expected a non-empty label map, got ", h, " x ", w);
  DL_CHECK(num_classes > 0, "segmentation metrics: expected at least one class, got ", num_classes);
}

}  // namespace

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

std::vector<double> class_iou(const std::vector<double>& confusion, int num_classes) {
  const size_t nc = static_cast<size_t>(num_classes);
  DL_CHECK(num_classes > 0 && confusion.size() == nc * nc, "class_iou: expected a ", num_classes, " x ", num_classes,
           " confusion matrix, got ", confusion.size(), " counts");
  std::vector<double> iou(nc, kNaN);
  for (size_t c = 0; c < nc; ++c) {
    double row = 0, col = 0;
    for (size_t k = 0; k < nc; ++k) row += confusion[c * nc + k], col += confusion[k * nc + c];
    const double tp = confusion[c * nc + c];
    if (row + col - tp > 0) iou[c] = tp / (row + col - tp);
  }
  return iou;
}

double image_mean_bf_score(const ops::SegmentationCounts& counts, int64_t image) {
  DL_CHECK(image >= 0 && image < counts.images, "image_mean_bf_score: expected an image in [0, ", counts.images,
           "), got ", image);
  return nan_mean(image_bf_scores(counts, image));
}

double bf_theta_squared(int64_t h, int64_t w) { return dl::bf_theta_squared(h, w); }

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
  const Tensor p = label_map(pred, h, w), t = label_map(truth, h, w);
  return image_bf_scores(ops::segmentation_counts(p, t, num_classes, void_label), 0);
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
  add(label_map(pred, h, w), label_map(truth, h, w));
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
  add(label_map(pred, h, w), label_map(truth, h, w));
}

// The counting runs where the label maps are (ops::segmentation_counts); the scores follow on the host.
void SegmentationEvaluator::add(const Tensor& pred, const Tensor& truth) {
  const ops::SegmentationCounts counts = ops::segmentation_counts(pred, truth, num_classes_, void_label_);
  // The confusion of the whole batch goes in with the first image; the BF scores image by image.
  for (int64_t i = 0; i < counts.images; ++i) {
    accumulate(i == 0 ? counts.confusion : std::vector<int64_t>(confusion_.size(), 0), image_bf_scores(counts, i));
  }
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
  m.class_iou = class_iou(std::vector<double>(confusion_.begin(), confusion_.end()), nc);
  m.class_mean_bf_score.assign(nc, kNaN);

  int64_t total = 0, correct = 0;
  double weighted = 0, weight = 0;
  for (int c = 0; c < nc; ++c) {
    int64_t row = 0;
    for (int k = 0; k < nc; ++k) row += m.confusion_at(c, k);
    const int64_t tp = m.confusion_at(c, c);
    total += row;
    correct += tp;
    if (row > 0) m.class_accuracy[c] = static_cast<double>(tp) / static_cast<double>(row);
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
