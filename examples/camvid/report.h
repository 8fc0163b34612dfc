// Reporting MATLAB's segmentation metrics for the CamVid programs (evaluate, train_camvid): the
// data-set line and the per-class table on stdout, and the metrics as JSON with the keys of
// evaluateSemanticSegmentation (GlobalAccuracy, MeanAccuracy, MeanIoU, WeightedIoU, MeanBFScore,
// ClassAccuracy, ClassIoU, ClassMeanBFScore, ConfusionMatrix; NaN written as null).
#pragma once
#include <string>
#include <vector>

#include "dl/core/json.h"
#include "dl/metrics/segmentation.h"

namespace dl::examples::camvid {

// Names of `classes` classes: `comma_separated` when given (its count must match), CamVid's for 11,
// else Class0, Class1, ... Throws dl::Error on a count mismatch, naming `program`.
std::vector<std::string> class_names(int classes, const std::string& comma_separated = "",
                                     const std::string& program = "evaluate");

// "Data set metrics (N images): ..." and "Class metrics: Class | Accuracy | IoU | MeanBFScore".
void print_metrics(const metrics::SegmentationMetrics& m, const std::vector<std::string>& names);

// The metrics as a JSON object (also ClassNames and NumImages), for embedding in a report.
Json metrics_to_json(const metrics::SegmentationMetrics& m, const std::vector<std::string>& names);

// Writes the metrics to `path` (full double precision, the confusion matrix a row per line), written
// to a temporary and renamed so that no reader sees half a file. Throws dl::Error naming the file.
void write_metrics_json(const std::string& path, const metrics::SegmentationMetrics& m,
                        const std::vector<std::string>& names);

}  // namespace dl::examples::camvid
