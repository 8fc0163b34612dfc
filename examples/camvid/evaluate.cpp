// evaluate: the segmentation metrics of MATLAB's evaluateSemanticSegmentation over a data set.
//
//   evaluate --pred DIR --truth DIR [--classes 11] [--json FILE]
//
// --pred and --truth hold label PNGs matched by file name: "a.png" in --pred goes with "a.png" or
// "a_L.png" (CamVid's name for RGB labels) in --truth; the "_L" suffix is tolerated on either side.
// A PNG is read by dl::data::read_label_png: 8-bit single channel = class indices with 255 = void, or
// RGB in the CamVid palette. Prints the data-set metrics (GlobalAccuracy, MeanAccuracy, MeanIoU,
// WeightedIoU, MeanBFScore) and the per-class table (Class | Accuracy | IoU | MeanBFScore); --json writes
// them with the keys GlobalAccuracy, MeanAccuracy, MeanIoU, WeightedIoU, MeanBFScore, ClassAccuracy,
// ClassIoU, ClassMeanBFScore (arrays in class order, NaN as null) and ConfusionMatrix (rows = true class).
//
// Hook for the model path (`evaluate --model FILE --data DIR ...`, not implemented yet): every source of
// label maps is a function `void evaluate_X(const Options&, dl::metrics::SegmentationEvaluator&)` that
// calls ev.add(pred, truth) image by image; reporting is shared. To add the model path: add `model` and
// `data` to Options and their flags in parse_options, write evaluate_model (load the model, run it over
// the test split of --data, ev.add(argmax of the logits over dim 1 as N x H x W int32, the N x H x W
// labels) per batch), and dispatch to it in run() where marked.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "../common/flags.h"
#include "dl/core/threads.h"
#include "dl/data/camvid_palette.h"
#include "dl/data/label_image.h"
#include "dl/metrics/segmentation.h"

namespace {

namespace fs = std::filesystem;
using dl::metrics::SegmentationEvaluator;
using dl::metrics::SegmentationMetrics;

struct Options {
  std::string pred_dir, truth_dir;  // the folder path
  int classes = dl::data::kCamVidNumClasses;
  std::string class_names;  // comma-separated; default: CamVid's for 11 classes, else Class0, ...
  std::string json_path;
  int threads = 0;
};

// ---- the folder path: --pred DIR --truth DIR ----

bool is_png(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png";
}

// The matching key of a label file: its stem without a trailing "_L".
std::string match_key(const fs::path& p) {
  std::string stem = p.stem().string();
  if (stem.size() > 2 && stem.ends_with("_L")) stem.resize(stem.size() - 2);
  return stem;
}

std::map<std::string, fs::path> list_label_pngs(const std::string& dir, const char* what) {
  DL_CHECK(fs::is_directory(dir), "evaluate: the ", what, " folder '", dir, "' does not exist or is not a folder");
  std::map<std::string, fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file() || !is_png(entry.path())) continue;
    const std::string key = match_key(entry.path());
    const auto [it, inserted] = files.emplace(key, entry.path());
    DL_CHECK(inserted, "evaluate: '", it->second.string(), "' and '", entry.path().string(), "' in the ", what,
             " folder have the same name");
  }
  DL_CHECK(!files.empty(), "evaluate: no PNG file in the ", what, " folder '", dir, "'");
  return files;
}

void evaluate_folders(const Options& o, SegmentationEvaluator& ev) {
  const auto pred = list_label_pngs(o.pred_dir, "--pred");
  const auto truth = list_label_pngs(o.truth_dir, "--truth");
  for (const auto& [key, path] : truth)
    DL_CHECK(pred.count(key), "evaluate: the ground truth '", path.string(), "' has no prediction in '", o.pred_dir,
             "' (expected ", key, ".png)");
  for (const auto& [key, pred_path] : pred) {
    const auto t = truth.find(key);
    DL_CHECK(t != truth.end(), "evaluate: the prediction '", pred_path.string(), "' has no ground truth in '",
             o.truth_dir, "' (expected ", key, ".png or ", key, "_L.png)");
    const dl::Tensor p = dl::data::read_label_png(pred_path.string());
    const dl::Tensor g = dl::data::read_label_png(t->second.string());
    DL_CHECK(p.shape() == g.shape(), "evaluate: the prediction '", pred_path.string(), "' is ", p.size(0), " x ",
             p.size(1), " but its ground truth '", t->second.string(), "' is ", g.size(0), " x ", g.size(1));
    try {
      ev.add(p, g);
    } catch (const dl::Error& e) {
      DL_THROW("evaluate: prediction '", pred_path.string(), "', ground truth '", t->second.string(), "': ", e.what());
    }
  }
}

// ---- reporting ----

std::vector<std::string> class_names(const Options& o) {
  std::vector<std::string> names;
  if (!o.class_names.empty()) {
    std::string item;
    for (char c : o.class_names + ",") {
      if (c != ',') {
        item += c;
        continue;
      }
      names.push_back(item);
      item.clear();
    }
    DL_CHECK(static_cast<int>(names.size()) == o.classes, "evaluate: --class-names gives ", names.size(), " names for ",
             o.classes, " classes");
  } else if (o.classes == dl::data::kCamVidNumClasses) {
    names = dl::data::camvid_class_names();
  } else {
    for (int c = 0; c < o.classes; ++c) names.push_back("Class" + std::to_string(c));
  }
  return names;
}

std::string fmt(double v) {
  if (std::isnan(v)) return "NaN";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

void print_metrics(const SegmentationMetrics& m, const std::vector<std::string>& names) {
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

std::string json_string(const std::string& v) {
  std::string s = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') s += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    s += c;
  }
  return s + "\"";
}

void write_json(const std::string& path, const SegmentationMetrics& m, const std::vector<std::string>& names) {
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
  for (size_t c = 0; c < names.size(); ++c) s += (c ? ", " : "") + json_string(names[c]);
  s += "],\n  \"NumImages\": " + std::to_string(m.num_images) + "\n}\n";

  const std::string tmp = path + ".tmp";  // written whole, then renamed: no reader sees half a file
  {
    std::ofstream f(tmp, std::ios::trunc);
    DL_CHECK(f.good(), "evaluate: cannot open '", tmp, "' for writing");
    f << s;
    DL_CHECK(f.good(), "evaluate: cannot write '", tmp, "'");
  }
  fs::rename(tmp, path);
}

// ---- main ----

bool parse_options(int argc, char** argv, Options& o) {
  dl::examples::Flags f("evaluate",
                        "Semantic segmentation metrics (MATLAB's evaluateSemanticSegmentation) of predicted label\n"
                        "PNGs against ground-truth label PNGs matched by file name (a.png <-> a.png or a_L.png).");
  f.add({"pred"}, &o.pred_dir, "folder of predicted label PNGs (8-bit class indices, 255 = void, or CamVid RGB)");
  f.add({"truth"}, &o.truth_dir, "folder of ground-truth label PNGs, same forms");
  f.add({"classes"}, &o.classes, "number of classes");
  f.add({"class-names"}, &o.class_names,
        "comma-separated class names; empty: CamVid's for 11 classes, else Class0, Class1, ...");
  f.add({"json"}, &o.json_path, "write the metrics to this JSON file");
  f.add({"threads"}, &o.threads, "CPU threads (0: all)");
  return f.parse(argc, argv);
}

int run(int argc, char** argv) {
  Options o;
  if (!parse_options(argc, argv, o)) return 0;
  DL_CHECK(o.classes > 0 && o.classes < 255, "evaluate: --classes must be in [1, 254], got ", o.classes);
  if (o.threads > 0) dl::set_num_threads(o.threads);
  const std::vector<std::string> names = class_names(o);

  SegmentationEvaluator ev(o.classes);
  if (!o.pred_dir.empty() || !o.truth_dir.empty()) {
    DL_CHECK(!o.pred_dir.empty() && !o.truth_dir.empty(), "evaluate: give both --pred DIR and --truth DIR");
    std::printf("evaluate: predictions %s, ground truth %s, %d classes\n", o.pred_dir.c_str(), o.truth_dir.c_str(),
                o.classes);
    evaluate_folders(o, ev);
  }
  // Hook: `else if (!o.model.empty()) evaluate_model(o, ev);` goes here (see the top of the file).
  else {
    DL_THROW("evaluate: give --pred DIR --truth DIR (see --help)");
  }

  const SegmentationMetrics m = ev.result();
  print_metrics(m, names);
  if (!o.json_path.empty()) {
    write_json(o.json_path, m, names);
    std::printf("\nwrote %s\n", o.json_path.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "evaluate: error: %s\n", e.what());
    return 1;
  }
}
