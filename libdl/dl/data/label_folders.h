// Two folders of label PNGs scored against each other: predictions and ground truth matched by file
// name ("a.png" goes with "a.png" or "a_L.png", CamVid's name for RGB labels; the "_L" suffix is
// tolerated on either side), each pair read by read_label_png (dl/data/label_image.h) and added to a
// SegmentationEvaluator. What evaluate --pred DIR --truth DIR does.
#pragma once
#include <string>

#include "dl/metrics/segmentation.h"

namespace dl::data {

// Throws dl::Error naming the file: a folder missing or without PNGs, two files with one name, a
// prediction or ground truth without its partner, sizes that differ, a file that does not read, a
// label out of range.
void add_label_folders(const std::string& pred_dir, const std::string& truth_dir, metrics::SegmentationEvaluator& ev);

}  // namespace dl::data
