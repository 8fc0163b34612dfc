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
//   evaluate --model FILE [--data DIR] [--image-size HxW] [--split-seed S] [--json FILE]
//
// --model reads a model written by `train_camvid --save` (camvid_model.h), loads --data (the generated
// set of train_camvid when omitted) at --image-size (the model's training size when omitted), takes the
// test split of --split-seed (train_camvid's default) and scores the argmax of the logits over it.
//
// Every source of label maps is a function `void evaluate_X(const Options&, SegmentationEvaluator&)`
// that calls ev.add(pred, truth) image by image; reporting (report.h) is shared with train_camvid.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "../common/flags.h"
#include "camvid_model.h"
#include "dl/core/file_io.h"
#include "dl/core/threads.h"
#include "dl/data/camvid_palette.h"
#include "dl/data/label_image.h"
#include "dl/metrics/segmentation.h"
#include "report.h"

namespace {

namespace fs = std::filesystem;
using dl::metrics::SegmentationEvaluator;
using dl::metrics::SegmentationMetrics;

namespace camvid = dl::examples::camvid;

struct Options {
  std::string pred_dir, truth_dir;          // the folder path
  std::string model, data_dir, image_size;  // the model path
  uint64_t split_seed = camvid::kDefaultSplitSeed;
  int64_t batch_size = 8;
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

// ---- the model path: --model FILE [--data DIR] ----

void evaluate_model(const Options& o, SegmentationEvaluator& ev) {
  camvid::LoadedModel m = camvid::load_camvid_model(o.model);
  DL_CHECK(o.classes == m.info.num_classes, "evaluate: --classes is ", o.classes, " but ", o.model, " has ",
           m.info.num_classes, " classes");
  if (o.split_seed != m.info.split_seed)
    std::printf("evaluate: note: %s was trained with --split-seed %llu, evaluating the test split of %llu\n",
                o.model.c_str(), static_cast<unsigned long long>(m.info.split_seed),
                static_cast<unsigned long long>(o.split_seed));
  const dl::data::ImageSize size = o.image_size.empty() ? dl::data::ImageSize{m.info.height, m.info.width}
                                                        : dl::data::parse_image_size(o.image_size);
  const std::string dir = camvid::resolve_data_dir(o.data_dir, "evaluate");
  auto images = std::make_shared<const dl::data::CamVidImages>(dl::data::load_camvid(dir, size));
  const dl::data::CamVidSplit split = dl::data::split_camvid(images->size(), o.split_seed);
  DL_CHECK(!split.test.empty(), "evaluate: ", dir, " holds ", images->size(), " images, too few for a test split");
  std::printf("evaluate: model %s (trained at %lldx%lld), test split of %s: %lld images at %lldx%lld\n",
              o.model.c_str(), static_cast<long long>(m.info.height), static_cast<long long>(m.info.width), dir.c_str(),
              static_cast<long long>(split.test.size()), static_cast<long long>(images->height),
              static_cast<long long>(images->width));
  dl::data::CamVidDataset test(images, split.test, m.info.normalisation);
  camvid::evaluate_segmentation(*m.net, test, o.batch_size, ev);
}

// ---- main ----

bool parse_options(int argc, char** argv, Options& o) {
  dl::examples::Flags f("evaluate",
                        "Semantic segmentation metrics (MATLAB's evaluateSemanticSegmentation) of predicted label\n"
                        "PNGs against ground-truth label PNGs matched by file name (a.png <-> a.png or a_L.png),\n"
                        "or of a model trained by train_camvid over the test split of a CamVid folder.");
  f.add({"pred"}, &o.pred_dir, "folder of predicted label PNGs (8-bit class indices, 255 = void, or CamVid RGB)");
  f.add({"truth"}, &o.truth_dir, "folder of ground-truth label PNGs, same forms");
  f.add({"classes"}, &o.classes, "number of classes", 1, 254);
  f.add({"class-names"}, &o.class_names,
        "comma-separated class names; empty: CamVid's for 11 classes, else Class0, Class1, ...");
  f.add({"model"}, &o.model, "a model written by train_camvid --save: evaluate it over the test split of --data");
  f.add({"data"}, &o.data_dir, "with --model: the CamVid folder (empty: train_camvid's generated set)");
  f.add({"image-size"}, &o.image_size, "with --model: evaluate at this size HxW (empty: the model's training size)");
  f.add({"split-seed"}, &o.split_seed, "with --model: seed of the 60/20/20 split (train_camvid's default)");
  f.add({"batch-size"}, &o.batch_size, "with --model: images per forward pass", decltype(o.batch_size){1},
        decltype(o.batch_size){1} << 20);
  f.add({"json"}, &o.json_path, "write the metrics to this JSON file");
  f.add({"threads"}, &o.threads, "CPU threads (0: all)", 0, 1024);
  return f.parse(argc, argv);
}

int run(int argc, char** argv) {
  Options o;
  if (!parse_options(argc, argv, o)) return 0;
  DL_CHECK(o.classes > 0 && o.classes < 255, "evaluate: --classes must be in [1, 254], got ", o.classes);
  dl::check_output_paths({{o.json_path, "metrics file"}});
  if (o.threads > 0) dl::set_num_threads(o.threads);
  const std::vector<std::string> names = camvid::class_names(o.classes, o.class_names);

  SegmentationEvaluator ev(o.classes);
  if (!o.pred_dir.empty() || !o.truth_dir.empty()) {
    DL_CHECK(!o.pred_dir.empty() && !o.truth_dir.empty(), "evaluate: give both --pred DIR and --truth DIR");
    std::printf("evaluate: predictions %s, ground truth %s, %d classes\n", o.pred_dir.c_str(), o.truth_dir.c_str(),
                o.classes);
    DL_CHECK(o.model.empty(), "evaluate: give either --model or --pred/--truth, not both");
    evaluate_folders(o, ev);
  } else if (!o.model.empty()) {
    evaluate_model(o, ev);
  } else {
    DL_THROW("evaluate: give --model FILE or --pred DIR --truth DIR (see --help)");
  }

  const SegmentationMetrics m = ev.result();
  camvid::print_metrics(m, names);
  if (!o.json_path.empty()) {
    camvid::write_metrics_json(o.json_path, m, names);
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
    std::fprintf(stderr, "evaluate: error: %s\n", dl::examples::error_message(e).c_str());
    return 1;
  }
}
