// Semantic segmentation metrics with MATLAB's evaluateSemanticSegmentation definitions: a confusion
// matrix pooled over the data set, global / mean class accuracy, mean and frequency-weighted IoU,
// and the boundary F1 (BF) score per class per image.
//
//   SegmentationEvaluator ev(11);
//   for (...) ev.add(pred, truth);              // H x W (or N x H x W) label maps, one image at a time
//   SegmentationMetrics m = ev.result();        // m.mean_iou, m.class_iou[c], m.confusion_at(t, p), ...
//
// Labels: truth in [0, C) is a class, truth == void_label (255 by default) is void; any other truth
// value is an error (it usually means --classes is wrong). A void truth pixel counts nowhere, and the
// prediction there is removed (treated as void, also for the BF boundaries). A predicted label outside
// [0, C) at a non-void pixel is an error naming it.
//
// Note [NaN for absent classes]: as in MATLAB, a class with no ground-truth pixel in the data set has
// Accuracy NaN, and IoU NaN when it is never predicted either (0 when predicted: TP / (TP + FP) = 0).
// A class scored in no image has MeanBFScore NaN. Every mean (MeanAccuracy, MeanIoU, MeanBFScore of an
// image, of the data set and of a class) skips NaN; a mean over nothing is NaN, as is GlobalAccuracy
// of a data set without a non-void pixel. WeightedIoU weighs by ground-truth pixels, so absent classes
// weigh nothing.
//
// Note [BF score]: for each class c, in each image, mask = (labels == c); boundary = mask AND NOT
// erode(mask) with a 4-neighbour cross, pixels outside the image being false (mask pixels on the image
// border are boundary). A boundary pixel matches when its squared Euclidean distance to the nearest
// boundary pixel of the other map is < theta^2, theta = 0.0075 * sqrt(H^2 + W^2). precision = matched
// predicted / predicted boundary pixels, recall = matched true / true boundary pixels, F1 = 2PR/(P+R)
// (0 when P + R = 0). A class in neither map is not scored; in one map only it scores 0. Distances come
// from an exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher), O(H W) per class,
// exact for every distance below theta (Note [thresholded exact EDT] in the .cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "dl/core/tensor.h"
#include "dl/ops/segmentation.h"

namespace dl::metrics {

struct SegmentationMetrics {
  int num_classes = 0;
  int64_t num_images = 0;
  double global_accuracy = 0, mean_accuracy = 0, mean_iou = 0, weighted_iou = 0, mean_bf_score = 0;
  std::vector<double> class_accuracy, class_iou, class_mean_bf_score;  // C each, NaN where undefined
  std::vector<double> image_mean_bf_score;  // one per image added, NaN for an image with no class scored
  std::vector<int64_t> confusion;           // C x C row-major: rows true class, columns predicted

  int64_t confusion_at(int truth, int pred) const { return confusion[static_cast<size_t>(truth) * num_classes + pred]; }
};

// theta^2 of Note [BF score] for an h x w image (the CPU metric and the CUDA kernels use this one value).
double bf_theta_squared(int64_t h, int64_t w);
// The BF score of one class in one image from its boundary counts (boundary pixels of the prediction,
// of them matched; of the truth, of them matched): NaN when the class is in neither map, 0 when in one
// only, else F1 of precision and recall.
double bf_score_from_counts(int64_t pred_boundary, int64_t pred_matched, int64_t truth_boundary, int64_t truth_matched);

// The BF score of every class for one image (C values, NaN for a class in neither map), from label maps
// of h x w int32 values laid out row-major. Labels as for SegmentationEvaluator.
std::vector<double> bf_scores(const int32_t* pred, const int32_t* truth, int64_t h, int64_t w, int num_classes,
                              int32_t void_label = 255);

// The IoU of each class, TP / (TP + FP + FN), from a C x C confusion matrix (rows the true class,
// columns the predicted; counts as doubles): NaN for a class in neither (Note [NaN for absent classes]).
// The evaluator's class_iou and the Trainer's mean-IoU metric both come from here.
std::vector<double> class_iou(const std::vector<double>& confusion, int num_classes);
// The mean of the values that are not NaN; NaN when there are none (every mean of this header).
double nan_mean(const std::vector<double>& values);
// The BF score of image `image` of segmentation counts (dl/ops/segmentation.h) averaged over the classes
// it scores: the image's entry of SegmentationMetrics::image_mean_bf_score (NaN when it scores none).
double image_mean_bf_score(const ops::SegmentationCounts& counts, int64_t image);

class SegmentationEvaluator {
 public:
  explicit SegmentationEvaluator(int num_classes, int32_t void_label = 255);

  // pred and truth: CPU or device tensors of the same shape, H x W (one image) or N x H x W (N images),
  // int32 or uint8 (the two may differ). Accumulates the confusion matrix and the BF scores.
  void add(const Tensor& pred, const Tensor& truth);
  // One image from row-major h x w buffers.
  void add(const uint8_t* pred, const uint8_t* truth, int64_t h, int64_t w);
  void add(const int32_t* pred, const int32_t* truth, int64_t h, int64_t w);

  // Adds the images of another evaluator of the same classes (evaluation split across workers).
  void merge(const SegmentationEvaluator& other);
  void reset();

  int num_classes() const { return num_classes_; }
  int64_t num_images() const { return num_images_; }
  const std::vector<int64_t>& confusion() const { return confusion_; }  // C x C row-major
  SegmentationMetrics result() const;

 private:
  int num_classes_;
  int32_t void_label_;
  int64_t num_images_ = 0;
  std::vector<int64_t> confusion_;
  std::vector<double> bf_sum_;         // per class: sum of the BF scores of the images scoring it
  std::vector<int64_t> bf_count_;      // per class: images scoring it
  std::vector<double> image_mean_bf_;  // per image

  // Adds one image's confusion counts (C x C) and BF scores (C, NaN where not scored).
  void accumulate(const std::vector<int64_t>& confusion, const std::vector<double>& bf);
};

}  // namespace dl::metrics
