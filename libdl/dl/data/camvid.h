// CamVid for semantic segmentation: the reader of the real layout (images and `<name>_L.png`
// labels coloured in the 32-class palette, mapped to the 11 classes of dl/data/camvid_palette.h),
// the deterministic 60/20/20 split, median-frequency class weights, the input normalisation of the
// training split, and the Dataset that serves batches with augmentation (reflection, translation).
//
// Layouts read by load_camvid(dir), tried in this order:
//   1. dir/701_StillsRaw_full/<name>.png   and dir/LabeledApproved_full/<name>_L.png  (CamVid's zips)
//   2. dir/images/<name>.png               and dir/labels/<name>_L.png
//   3. dir/<name>.png and dir/<name>_L.png side by side (flat)
// Images may be .png, .jpg or .jpeg; labels are PNG (RGB in the palette, or 8-bit grey holding
// class indices directly, values >= the class count being void). Every image needs its label;
// labels without an image are ignored. Samples are ordered by file name.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dl/core/allocator.h"
#include "dl/core/tensor.h"
#include "dl/data/camvid_palette.h"  // kCamVidNumClasses, kVoidLabel, the colour table
#include "dl/data/dataset.h"

namespace dl::data {

// A target size; 0 x 0 keeps the files' size (which must then be the same for every file).
struct ImageSize {
  int64_t height = 0, width = 0;
  bool empty() const { return height == 0 && width == 0; }
};
// Parses "HxW" (e.g. "360x480"); throws dl::Error naming the text when malformed or not positive.
ImageSize parse_image_size(const std::string& text);

struct CamVidFile {
  std::string name;        // the image's file name without extension
  std::string image_path;  // .../<name>.png
  std::string label_path;  // .../<name>_L.png
};
// The image/label pairs of `dir` (layouts above), sorted by name. Throws dl::Error when the
// folder does not exist, holds no image, or an image has no label (naming the expected file).
std::vector<CamVidFile> find_camvid_files(const std::string& dir);

// A data set decoded into memory as uint8 (701 images at 720x960: about 1.45 GB with labels).
struct CamVidImages {
  int64_t height = 0, width = 0;
  std::vector<std::string> names;
  // Through CpuAllocator: counted in its statistics and under its limit.
  HostVector<uint8_t> images;  // N x H x W x 3, RGB interleaved as decoded
  HostVector<uint8_t> labels;  // N x H x W, class index in [0, 11) or kVoidLabel
  int64_t size() const { return static_cast<int64_t>(names.size()); }
  const uint8_t* image(int64_t i) const { return images.data() + i * height * width * 3; }
  const uint8_t* label(int64_t i) const { return labels.data() + i * height * width; }
};

// Decodes every pair of `dir` (in parallel), resizing to `size` when given: bilinear with
// align_corners = false for images (kernels/bilinear.cuh, rounded to nearest), nearest for labels
// (source pixel floor((o + 0.5) * in / out), the centre of the output pixel). Throws dl::Error
// naming the file when one is missing, not a decodable image, or of another size than the first.
CamVidImages load_camvid(const std::string& dir, ImageSize size = {});
CamVidImages load_camvid_files(const std::vector<CamVidFile>& files, ImageSize size = {});

// One label file as H x W uint8 class indices (read_label_png of dl/data/label_image.h: palette
// colours -> class, other colours -> void; in a grey PNG, values outside [0, 11) -> void).
Tensor read_camvid_label(const std::string& path);

// ---- split ----
struct SplitSizes {
  int64_t train = 0, validation = 0, test = 0;
};
// The 60/20/20 rule: validation = test = floor(0.2 N), train = the rest (701 -> 421/140/140).
SplitSizes camvid_split_sizes(int64_t n);

struct CamVidSplit {
  std::vector<int64_t> train, validation, test;  // sample indices, each list ascending
};
// A seeded permutation of 0..n-1 (Fisher-Yates with dl::Generator(seed)) cut by camvid_split_sizes:
// the same (n, seed) gives the same split on every machine.
CamVidSplit split_camvid(int64_t n, uint64_t seed);

// ---- class weights ----
// Median-frequency balancing over the samples `indices` of `data`:
//   imageFreq(c) = pixels of class c / total pixels of the images that contain c (void excluded
//   from neither count: an image's total is all its H*W pixels);
//   weight(c) = median over the classes present of imageFreq / imageFreq(c).
// A class absent from every sample gets weight 0 (it cannot be learnt; the loss never sees it).
// The median of an even count is the mean of the two middle values. Returns float32 [num_classes].
Tensor median_frequency_weights(const CamVidImages& data, const std::vector<int64_t>& indices,
                                int num_classes = kCamVidNumClasses);
// The same from per-image label maps directly: `labels` holds `count` maps of `pixels` each.
Tensor median_frequency_weights(const uint8_t* labels, int64_t count, int64_t pixels, int num_classes);

// ---- normalisation ----
// Per-channel statistics of pixel / 255 (so values are in [0, 1]); the network's input is
// (pixel / 255 - mean[c]) / std[c]. Saved with the model (to_tensor) so inference normalises alike.
struct Normalisation {
  float mean[3] = {0.f, 0.f, 0.f};
  float std[3] = {1.f, 1.f, 1.f};
};
// Mean and population standard deviation over every pixel of the samples `indices`.
Normalisation compute_normalisation(const CamVidImages& data, const std::vector<int64_t>& indices);
Tensor normalisation_to_tensor(const Normalisation& n);    // float32 2 x 3: rows mean, std
Normalisation normalisation_from_tensor(const Tensor& t);  // inverse; checks the shape

// ---- augmentation ----
struct AugmentOptions {
  bool enabled = false;      // on for the training split
  bool reflect = true;       // left-right, probability 1/2
  int max_translation = 10;  // dx, dy uniform integers in [-max, max]
  uint64_t seed = 0;
};
// The transform of one sample: out(y, x) = flip(in)(y - dy, x - dx), with flip(in)(y, x) =
// in(y, W - 1 - x) when `flip`. Uncovered output pixels get input 0 (after normalisation: the
// training set's mean colour) and label void.
struct AugmentParams {
  bool flip = false;
  int dx = 0, dy = 0;
};
// Deterministic in (seed, epoch, sample): a small Generator seeded by a hash of the three.
AugmentParams draw_augment_params(const AugmentOptions& o, int64_t epoch, int64_t sample);

// Writes one sample: `image` H x W x 3 uint8 -> `input` 3 x H x W float normalised, `label` H x W
// uint8 -> `target` H x W int32 (void kept as 255), under the transform `p`.
void transform_sample(const uint8_t* image, const uint8_t* label, int64_t height, int64_t width,
                      const Normalisation& norm, const AugmentParams& p, float* input, int32_t* target);

// The samples `indices` of `data`, served as inputs B x 3 x H x W float32 (normalised by `norm`)
// and targets B x H x W int32 (255 = void). Images stay uint8 in memory; each batch converts.
//
// Augmentation randomness (Note [per-sample epochs]): each sample has an atomic use counter, set to
// e by set_epoch(e) (0 at construction); its n-th use after that is transformed by
// draw_augment_params(options, e + n, data index of the sample). A DataLoader serves every sample
// once per epoch, so e + n is the epoch number without any call from the trainer, independent of
// the shuffle order and of which thread gathers. Call it between epochs: when resuming at epoch e, and every epoch if
// the loader drops samples (drop_last, shards), since a sample left out of an epoch keeps its count.
class CamVidDataset : public Dataset {
 public:
  CamVidDataset(std::shared_ptr<const CamVidImages> data, std::vector<int64_t> indices, Normalisation norm,
                AugmentOptions augment = {});
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Batch get_batch(const std::vector<int64_t>& indices) const override;

  void set_epoch(int64_t epoch);
  const Normalisation& normalisation() const { return norm_; }
  const AugmentOptions& augment_options() const { return augment_; }
  const std::vector<int64_t>& indices() const { return indices_; }  // into data()
  const CamVidImages& data() const { return *data_; }

 private:
  std::shared_ptr<const CamVidImages> data_;
  std::vector<int64_t> indices_;
  Normalisation norm_;
  AugmentOptions augment_;
  std::unique_ptr<std::atomic<int64_t>[]> uses_;  // per sample: its next epoch number
};

// The three datasets of a split: normalisation computed on the training split, augmentation on
// for training only (seeded by `augment_seed`).
struct CamVidDatasets {
  std::shared_ptr<CamVidDataset> train, validation, test;
  Normalisation normalisation;
  Tensor class_weights;  // median-frequency weights of the training split, float32 [11]
};
CamVidDatasets make_camvid_datasets(std::shared_ptr<const CamVidImages> data, const CamVidSplit& split,
                                    uint64_t augment_seed = 0);

}  // namespace dl::data
