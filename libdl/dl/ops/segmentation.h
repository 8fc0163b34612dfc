// The counting behind the segmentation metrics (dl/metrics/segmentation.h), on the label maps' device.
#pragma once
#include <cstdint>
#include <vector>

#include "dl/core/tensor.h"

namespace dl::ops {

// The most classes segmentation_counts takes (its C x C matrix of counts on a device: 128 MiB).
constexpr int kMaxSegmentationClasses = 4096;

struct SegmentationCounts {
  int64_t images = 0;
  int num_classes = 0;
  std::vector<int64_t> confusion;  // C x C row-major over all images: rows the true class, columns the predicted
  // images x C x 4: boundary pixels of the class in the prediction, of them within theta of the truth's
  // boundary of the class, boundary pixels in the truth, of them within theta of the prediction's.
  std::vector<int64_t> boundary;
};

// pred and truth: label maps of one shape, H x W or N x H x W, int32 or uint8, on one device. Pixels whose
// truth is `void_label` are skipped (and the prediction there counts as void for the boundaries); any
// other label must be a class in [0, num_classes), else dl::Error names the image and pixel. The counts
// come back to the host (one wait for the device: metrics, not the training step).
SegmentationCounts segmentation_counts(const Tensor& pred, const Tensor& truth, int num_classes, int32_t void_label);

}  // namespace dl::ops
