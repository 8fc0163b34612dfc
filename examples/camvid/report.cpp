// Printing and JSON of the segmentation metrics (see report.h).
#include "report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dl/core/file_io.h"
#include "dl/data/camvid_palette.h"

namespace dl::examples::camvid {

namespace {

std::string fmt(double v) {
  if (std::isnan(v)) return "NaN";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string json_array(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + json_number(v[i]);
  return s + "]";
}

Json to_json_array(const std::vector<double>& v) {
  Json a = Json::array();
  for (double x : v) a.push_back(x);
  return a;
}

}  // namespace

std::vector<std::string> class_names(int classes, const std::string& comma_separated, const std::string& program) {
  std::vector<std::string> names;
  if (!comma_separated.empty()) {
    std::string item;
    for (char c : comma_separated + ",") {
      if (c != ',') {
        item += c;
        continue;
      }
      names.push_back(item);
      item.clear();
    }
    DL_CHECK(static_cast<int>(names.size()) == classes, program, ": --class-names gives ", names.size(), " names for ",
             classes, " classes");
  } else if (classes == data::kCamVidNumClasses) {
    names = data::camvid_class_names();
  } else {
    for (int c = 0; c < classes; ++c) names.push_back("Class" + std::to_string(c));
  }
  return names;
}

void print_metrics(const metrics::SegmentationMetrics& m, const std::vector<std::string>& names) {
  std::printf("\nData set metrics (%lld images):\n\n", static_cast<long long>(m.num_images));
  std::printf("  %-16s %-16s %-16s %-16s %s\n", "GlobalAccuracy", "MeanAccuracy", "MeanIoU", "WeightedIoU",
              "MeanBFScore");
  std::printf("  %-16s %-16s %-16s %-16s %s\n", fmt(m.global_accuracy).c_str(), fmt(m.mean_accuracy).c_str(),
              fmt(m.mean_iou).c_str(), fmt(m.weighted_iou).c_str(), fmt(m.mean_bf_score).c_str());
  size_t width = 5;
  for (const auto& n : names) width = std::max(width, n.size());
  std::printf("\nClass metrics:\n\n  %-*s  %-10s %-10s %s\n", static_cast<int>(width), "Class", "Accuracy", "IoU",
              "MeanBFScore");
  for (int c = 0; c < m.num_classes; ++c)
    std::printf("  %-*s  %-10s %-10s %s\n", static_cast<int>(width), names[c].c_str(), fmt(m.class_accuracy[c]).c_str(),
                fmt(m.class_iou[c]).c_str(), fmt(m.class_mean_bf_score[c]).c_str());
  std::fflush(stdout);
}

Json metrics_to_json(const metrics::SegmentationMetrics& m, const std::vector<std::string>& names) {
  Json j = Json::object();
  j["GlobalAccuracy"] = m.global_accuracy;
  j["MeanAccuracy"] = m.mean_accuracy;
  j["MeanIoU"] = m.mean_iou;
  j["WeightedIoU"] = m.weighted_iou;
  j["MeanBFScore"] = m.mean_bf_score;
  j["ClassAccuracy"] = to_json_array(m.class_accuracy);
  j["ClassIoU"] = to_json_array(m.class_iou);
  j["ClassMeanBFScore"] = to_json_array(m.class_mean_bf_score);
  Json cm = Json::array();
  for (int t = 0; t < m.num_classes; ++t) {
    Json row = Json::array();
    for (int p = 0; p < m.num_classes; ++p) row.push_back(m.confusion_at(t, p));
    cm.push_back(row);
  }
  j["ConfusionMatrix"] = cm;
  Json n = Json::array();
  for (const auto& s : names) n.push_back(s);
  j["ClassNames"] = n;
  j["NumImages"] = m.num_images;
  return j;
}

void write_metrics_json(const std::string& path, const metrics::SegmentationMetrics& m,
                        const std::vector<std::string>& names) {
  std::string s = "{\n";
  s += "  \"GlobalAccuracy\": " + json_number(m.global_accuracy) + ",\n";
  s += "  \"MeanAccuracy\": " + json_number(m.mean_accuracy) + ",\n";
  s += "  \"MeanIoU\": " + json_number(m.mean_iou) + ",\n";
  s += "  \"WeightedIoU\": " + json_number(m.weighted_iou) + ",\n";
  s += "  \"MeanBFScore\": " + json_number(m.mean_bf_score) + ",\n";
  s += "  \"ClassAccuracy\": " + json_array(m.class_accuracy) + ",\n";
  s += "  \"ClassIoU\": " + json_array(m.class_iou) + ",\n";
  s += "  \"ClassMeanBFScore\": " + json_array(m.class_mean_bf_score) + ",\n";
  s += "  \"ConfusionMatrix\": [";
  for (int t = 0; t < m.num_classes; ++t) {
    s += t ? ",\n    [" : "\n    [";
    for (int p = 0; p < m.num_classes; ++p) s += (p ? ", " : "") + std::to_string(m.confusion_at(t, p));
    s += "]";
  }
  s += "\n  ],\n  \"ClassNames\": [";
  for (size_t c = 0; c < names.size(); ++c) s += (c ? ", " : "") + Json::quote(names[c]);
  s += "],\n  \"NumImages\": " + std::to_string(m.num_images) + "\n}\n";

  write_file_atomically(path, s);
}

}  // namespace dl::examples::camvid
