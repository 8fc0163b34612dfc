// End to end: the CamVid programs on a generated CamVid-format set they have not seen (48 images
// of 64 x 96, seed 7; the programs' own default set uses seed 1). train_camvid trains DeepLabv3+ for a
// few epochs and its test mean IoU must be well above that of the constant predictor (the most
// frequent training class everywhere); evaluate --model must give the same metrics; segment must
// write a label map and an overlay of the image's size; a resumed run must equal an uninterrupted one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "camvid/camvid_model.h"  // kDefaultSplitSeed
#include "dl/core/json.h"
#include "dl/data/camvid.h"
#include "dl/data/camvid_synth.h"
#include "dl/data/label_image.h"
#include "dl/metrics/segmentation.h"
#include "dl/nn/layers.h"
#include "dl/nn/resnet.h"
#include "dl/nn/state.h"

namespace {

namespace fs = std::filesystem;
using dl::Json;

constexpr int64_t kImages = 48, kHeight = 64, kWidth = 96;
constexpr uint64_t kDataSeed = 7;

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Runs `binary args`, output into `log`; returns the exit status.
int run(const std::string& binary, const std::string& args, const fs::path& log) {
  const std::string cmd = "\"" + binary + "\" " + args + " > \"" + log.string() + "\" 2>&1";
  return std::system(cmd.c_str());
}

// One data set and one trained model for the whole suite (training is the slow part).
class CamVidE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("dl_camvid_e2e_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}())));
    fs::create_directories(*dir_);
    dl::data::SynthOptions o;
    o.images = kImages;
    o.height = kHeight;
    o.width = kWidth;
    o.seed = kDataSeed;
    dl::data::write_synthetic_camvid(data_dir(), o);
    // The seed's recipe (SGDM 0.9, L2 0.005, batch 8, class weights, augmentation) for 15 epochs, the
    // learn rate raised to 0.01 for the short run; no early stop, so the run's length is fixed.
    train_status_ =
        run(DL_TRAIN_CAMVID_BIN,
            "--data " + data_dir() + " --max-epochs 15 --initial-learn-rate 0.01 --validation-patience 0" +
                " --threads 2 --seed 3 --verbose off --progress off --save " + model() + " --report-json " + report(),
            path("train.log"));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }
  static std::string data_dir() { return path("data"); }
  static std::string model() { return path("model.safetensors"); }
  static std::string report() { return path("report.json"); }

  static fs::path* dir_;
  static int train_status_;
};
fs::path* CamVidE2E::dir_ = nullptr;
int CamVidE2E::train_status_ = -1;

// Mean IoU of predicting the most frequent (non-void) class of the training split at every pixel of
// the test split, with the programs' split rule.
double constant_predictor_mean_iou(const std::string& dir) {
  const dl::data::CamVidImages data = dl::data::load_camvid(dir);
  const dl::data::CamVidSplit split = dl::data::split_camvid(data.size(), dl::examples::camvid::kDefaultSplitSeed);
  std::vector<int64_t> counts(dl::data::kCamVidNumClasses, 0);
  const int64_t pixels = data.height * data.width;
  for (int64_t i : split.train)
    for (int64_t p = 0; p < pixels; ++p)
      if (data.label(i)[p] < dl::data::kCamVidNumClasses) ++counts[data.label(i)[p]];
  const uint8_t most = static_cast<uint8_t>(std::max_element(counts.begin(), counts.end()) - counts.begin());
  dl::metrics::SegmentationEvaluator ev(dl::data::kCamVidNumClasses);
  const std::vector<uint8_t> pred(static_cast<size_t>(pixels), most);
  for (int64_t i : split.test) ev.add(pred.data(), data.label(i), data.height, data.width);
  return ev.result().mean_iou;
}

TEST_F(CamVidE2E, LearnsWellAboveTheConstantPredictor) {
  ASSERT_EQ(train_status_, 0) << slurp(path("train.log"));
  const Json r = Json::parse(slurp(report()));
  EXPECT_EQ(r.string_at("status"), "ok");
  EXPECT_EQ(r.number_at("training.epochs"), 15);
  EXPECT_EQ(r.number_at("config.test_images"), 9);  // floor(0.2 * 48)
  const double mean_iou = r.number_at("test.MeanIoU");
  const double constant = constant_predictor_mean_iou(data_dir());
  std::printf("test mean IoU %.4f, constant predictor %.4f, global accuracy %.4f\n", mean_iou, constant,
              r.number_at("test.GlobalAccuracy"));
  ASSERT_TRUE(std::isfinite(mean_iou)) << slurp(report());
  EXPECT_GT(mean_iou, constant + 0.1) << slurp(path("train.log"));
  EXPECT_GT(mean_iou, 3 * constant) << slurp(path("train.log"));
  EXPECT_GT(r.number_at("test.accuracy"), 0.5);
  const Json* class_iou = r.at_path("test.ClassIoU");
  ASSERT_NE(class_iou, nullptr);
  EXPECT_EQ(class_iou->size(), 11u);
}

TEST_F(CamVidE2E, EvaluateModelGivesTheTrainingRunsTestMetrics) {
  ASSERT_EQ(train_status_, 0) << slurp(path("train.log"));
  ASSERT_EQ(run(DL_EVALUATE_BIN,
                "--model " + model() + " --data " + data_dir() + " --threads 2 --json " + path("metrics.json"),
                path("evaluate.log")),
            0)
      << slurp(path("evaluate.log"));
  const std::string out = slurp(path("evaluate.log"));
  EXPECT_NE(out.find("MeanBFScore"), std::string::npos) << out;
  EXPECT_NE(out.find("Bicyclist"), std::string::npos) << out;
  const Json m = Json::parse(slurp(path("metrics.json")));
  const Json r = Json::parse(slurp(report()));
  for (const char* key : {"GlobalAccuracy", "MeanAccuracy", "MeanIoU", "WeightedIoU", "MeanBFScore"})
    EXPECT_NEAR(m.number_at(key), r.number_at(std::string("test.") + key), 1e-9) << key;
  EXPECT_EQ(m.number_at("NumImages"), 9);
  const Json* cm = m.find("ConfusionMatrix");
  ASSERT_NE(cm, nullptr);
  EXPECT_EQ(cm->size(), 11u);
}

TEST_F(CamVidE2E, EvaluateFoldersScoresLabelPngs) {
  // The data set's own labels as predictions: every pixel right.
  const std::string labels = data_dir() + "/LabeledApproved_full";
  ASSERT_EQ(run(DL_EVALUATE_BIN, "--pred " + labels + " --truth " + labels + " --json " + path("folders.json"),
                path("folders.log")),
            0)
      << slurp(path("folders.log"));
  EXPECT_NE(slurp(path("folders.log")).find("MeanBFScore"), std::string::npos) << slurp(path("folders.log"));
  const Json m = Json::parse(slurp(path("folders.json")));
  EXPECT_EQ(m.number_at("GlobalAccuracy"), 1.0);
  EXPECT_EQ(m.number_at("NumImages"), static_cast<double>(kImages));
  EXPECT_NE(run(DL_EVALUATE_BIN, "--pred " + labels, path("folders.log")), 0);
  EXPECT_NE(slurp(path("folders.log")).find("give both --pred DIR and --truth DIR"), std::string::npos);
}

TEST_F(CamVidE2E, SegmentWritesLabelsAndOverlayAtTheImagesSize) {
  ASSERT_EQ(train_status_, 0) << slurp(path("train.log"));
  const std::string image = data_dir() + "/701_StillsRaw_full/" + dl::data::synthetic_camvid_name(0) + ".png";
  // Run at a smaller size than the image's: the labels come back at 64 x 96.
  ASSERT_EQ(run(DL_SEGMENT_BIN,
                "--model " + model() + " --image " + image + " --out-labels " + path("labels.png") + " --overlay " +
                    path("overlay.png") + " --image-size 48x64 --threads 2",
                path("segment.log")),
            0)
      << slurp(path("segment.log"));
  dl::data::LabelPngFormat format{};
  const dl::Tensor labels = dl::data::read_label_png(path("labels.png"), &format);
  EXPECT_EQ(format, dl::data::LabelPngFormat::kCamVidRgb);
  ASSERT_EQ(labels.dim(), 2);
  EXPECT_EQ(labels.size(0), kHeight);
  EXPECT_EQ(labels.size(1), kWidth);
  const uint8_t* l = labels.data<uint8_t>();
  for (int64_t p = 0; p < kHeight * kWidth; ++p) ASSERT_LT(l[p], dl::data::kCamVidNumClasses) << "pixel " << p;
  const dl::Tensor overlay = dl::data::read_label_png(path("overlay.png"));  // any RGB PNG reads; only its size matters
  EXPECT_EQ(overlay.size(0), kHeight);
  EXPECT_EQ(overlay.size(1), kWidth);
}

// Augmentation is drawn per (epoch, sample): a run resumed from the checkpoint of epoch 1 must train
// epoch 2 exactly as the uninterrupted run does.
TEST_F(CamVidE2E, ResumedRunEqualsUninterruptedRun) {
  const std::string common = "--data " + data_dir() + " --max-epochs 2 --validation-patience 0 --threads 2 --seed 5" +
                             " --verbose off --progress off";
  ASSERT_EQ(run(DL_TRAIN_CAMVID_BIN, common + " --checkpoint-path " + path("ck") + " --save " + path("a.safetensors"),
                path("a.log")),
            0)
      << slurp(path("a.log"));
  ASSERT_EQ(run(DL_TRAIN_CAMVID_BIN,
                common + " --resume " + path("ck/checkpoint_epoch1.dlck") + " --save " + path("b.safetensors"),
                path("b.log")),
            0)
      << slurp(path("b.log"));
  EXPECT_NE(slurp(path("b.log")).find("Resumed from"), std::string::npos);
  const std::string a = slurp(path("a.safetensors")), b = slurp(path("b.safetensors"));
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "the resumed run's weights differ from the uninterrupted run's";
}

// --init-weights takes a torchvision ResNet-18 state_dict (with its fc.* classifier) as safetensors.
TEST_F(CamVidE2E, InitWeightsLoadsAResNet18StateDictIntoTheEncoder) {
  dl::nn::ResNet18 resnet;  // torchvision's names, fc included
  dl::nn::save_weights(resnet, path("resnet18.safetensors"));
  ASSERT_EQ(run(DL_TRAIN_CAMVID_BIN,
                "--data " + data_dir() + " --init-weights " + path("resnet18.safetensors") +
                    " --probe-steps 1 --threads 2 --verbose off --progress off",
                path("init.log")),
            0)
      << slurp(path("init.log"));
  EXPECT_NE(slurp(path("init.log")).find("Encoder initialised from"), std::string::npos) << slurp(path("init.log"));
  // A file that is not a ResNet-18 is refused, naming the missing tensor.
  dl::nn::Linear other(4, 2);
  dl::nn::save_weights(other, path("other.safetensors"));
  EXPECT_NE(run(DL_TRAIN_CAMVID_BIN,
                "--data " + data_dir() + " --init-weights " + path("other.safetensors") +
                    " --probe-steps 1 --threads 2 --verbose off --progress off",
                path("bad.log")),
            0);
  EXPECT_NE(slurp(path("bad.log")).find("conv1.weight"), std::string::npos) << slurp(path("bad.log"));
}

}  // namespace
