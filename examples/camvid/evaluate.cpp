// evaluate: the segmentation metrics of MATLAB's evaluateSemanticSegmentation over a data set.
//
//   evaluate --pred DIR --truth DIR [--classes 11] [--json FILE]
//
// --pred and --truth hold label PNGs matched by file name (dl/data/label_folders.h: "a.png" goes with
// "a.png" or "a_L.png"); a PNG holds class indices (8-bit, 255 = void) or CamVid palette colours.
//
//   evaluate --model FILE [--data DIR] [--image-size HxW] [--split-seed S] [--json FILE]
//
// --model reads a model written by `train_camvid --save` (camvid_model.h), loads --data (the generated
// set of train_camvid when omitted) at --image-size (the model's training size when omitted), takes the
// test split of --split-seed (train_camvid's default) and scores the argmax of the logits over it.
//
// Prints the data-set metrics (GlobalAccuracy, MeanAccuracy, MeanIoU, WeightedIoU, MeanBFScore) and
// the per-class table; --json writes them with evaluateSemanticSegmentation's keys (report.h).
#include <cstdio>
#include <string>

#include "camvid_model.h"
#include "dl/core/file_io.h"
#include "dl/core/threads.h"
#include "dl/data/label_folders.h"
#include "dl/train/program.h"
#include "report.h"

namespace {

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

// The model path: the test split of --data scored by the model of --model.
void evaluate_model(const Options& o, dl::metrics::SegmentationEvaluator& ev) {
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
  camvid::evaluate_segmentation(*m.net, dl::data::CamVidDataset(images, split.test, m.info.normalisation), o.batch_size,
                                ev);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  dl::train::Flags f("evaluate",
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
  f.add({"batch-size"}, &o.batch_size, "with --model: images per forward pass", int64_t{1}, int64_t{1} << 20);
  f.add({"json"}, &o.json_path, "write the metrics to this JSON file");
  f.add({"threads"}, &o.threads, "CPU threads (0: all)", 0, 1024);
  return dl::train::run_main("evaluate", [&] {
    if (!f.parse(argc, argv)) return;
    dl::check_output_paths({{o.json_path, "metrics file"}});
    if (o.threads > 0) dl::set_num_threads(o.threads);
    const std::vector<std::string> names = camvid::class_names(o.classes, o.class_names);
    dl::metrics::SegmentationEvaluator ev(o.classes);
    if (!o.pred_dir.empty() || !o.truth_dir.empty()) {
      DL_CHECK(!o.pred_dir.empty() && !o.truth_dir.empty(), "evaluate: give both --pred DIR and --truth DIR");
      DL_CHECK(o.model.empty(), "evaluate: give either --model or --pred/--truth, not both");
      std::printf("evaluate: predictions %s, ground truth %s, %d classes\n", o.pred_dir.c_str(), o.truth_dir.c_str(),
                  o.classes);
      dl::data::add_label_folders(o.pred_dir, o.truth_dir, ev);
    } else {
      DL_CHECK(!o.model.empty(), "evaluate: give --model FILE or --pred DIR --truth DIR (see --help)");
      evaluate_model(o, ev);
    }
    const dl::metrics::SegmentationMetrics m = ev.result();
    camvid::print_metrics(m, names);
    if (o.json_path.empty()) return;
    camvid::write_metrics_json(o.json_path, m, names);
    std::printf("\nwrote %s\n", o.json_path.c_str());
  });
}
