// What the CamVid programs (train_camvid, evaluate, segment) share besides reporting: the trained
// model's file, running the network to label maps, evaluating a split, and the default data set.
//
// The model file is safetensors: the DeepLabv3+ state (names of dl/nn/deeplab.h), one more tensor
// "input_normalisation" (float32 2 x 3: the training split's per-channel mean row, then std row, of
// pixel / 255), and metadata kind = "deeplabv3plus-camvid", num_classes, image_pooling (0 or 1),
// height and width (the input size it was trained at) and split_seed.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "dl/data/camvid.h"
#include "dl/data/camvid_synth.h"
#include "dl/metrics/segmentation.h"
#include "dl/nn/deeplab.h"
#include "dl/ops/loss.h"
#include "dl/train/program.h"

namespace dl::examples::camvid {

// The split seed of train_camvid and evaluate (the same default in both, so that evaluate scores the
// test split that training held out).
inline constexpr uint64_t kDefaultSplitSeed = 0;

// The generated data set used when --data is not given: 120 images of 96 x 128 (seed 1) in
// data/camvid_synth, written on first use.
inline constexpr const char* kDefaultSynthDir = "data/camvid_synth";
data::SynthOptions default_synth_options();
// `data_dir` when given, else the default generated set (written when missing, with a line saying so).
std::string resolve_data_dir(const std::string& data_dir, const std::string& program);

// train_camvid's data: the folder of `data_dir` (resolve_data_dir) decoded once into memory at
// `image_size` ("HxW"; empty: the files' size), split 60/20/20 by `split_seed`, normalised by the
// training split, the training images augmented (seeded by the program's --seed) unless `augment` is
// off. With image pooling, a training image is left out when the last mini-batch would hold only it
// (batch norm needs two). Prints what it loaded and the class weights; records it in the report.
data::CamVidDatasets load_datasets(const std::string& data_dir, const std::string& image_size, uint64_t split_seed,
                                   train::TrainingProgram& p, bool image_pooling, bool augment);

struct ModelInfo {
  int num_classes = data::kCamVidNumClasses;
  bool image_pooling = true;
  int64_t height = 0, width = 0;  // the input size of training
  uint64_t split_seed = kDefaultSplitSeed;
  data::Normalisation normalisation;
};

// The model file's metadata of a network trained on `sets` (its images' size and normalisation).
ModelInfo model_info(const data::CamVidDatasets& sets, bool image_pooling, uint64_t split_seed);
void save_camvid_model(const std::string& path, const nn::DeepLabV3Plus& model, const ModelInfo& info);

struct LoadedModel {
  std::unique_ptr<nn::DeepLabV3Plus> net;
  ModelInfo info;
};
// Builds the network from the metadata and loads every tensor (all names and shapes checked; the only
// tensor without a counterpart allowed is input_normalisation). Throws dl::Error naming the file.
LoadedModel load_camvid_model(const std::string& path);

// inputs N x 3 x H x W (normalised) -> N x H x W int32 class indices: argmax over dim 1 of the logits,
// in eval mode and without recording a graph (the model's train/eval flag is restored).
Tensor predict_labels(nn::Layer& model, const Tensor& inputs);

// Runs the model over every sample of `d` (batches of `batch_size`), adding the predicted and true
// label maps to `ev`. With `loss` given, returns the mean cross-entropy per sample, else NaN.
double evaluate_segmentation(nn::Layer& model, const data::Dataset& d, int64_t batch_size,
                             metrics::SegmentationEvaluator& ev, const ops::CrossEntropyOptions* loss = nullptr);

}  // namespace dl::examples::camvid
