// CamVid: finding and decoding the image/label pairs, the split, class weights, normalisation
// statistics and the augmented Dataset (dl/data/camvid.h).
#include "dl/data/camvid.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "bilinear.cuh"
#include "dl/core/parse.h"
#include "dl/data/image_io.h"
#include "dl/data/label_image.h"

namespace fs = std::filesystem;

namespace dl::data {

ImageSize parse_image_size(const std::string& text) {
  const ImageLimits limits;
  const size_t x = text.find_first_of("xX");
  DL_CHECK(x != std::string::npos, "image size: expected HxW (e.g. 360x480), got '", text, "'");
  const int64_t h = parse_int(text.substr(0, x), 1, limits.max_side, "image size '" + text + "': the height");
  const int64_t w = parse_int(text.substr(x + 1), 1, limits.max_side, "image size '" + text + "': the width");
  DL_CHECK(h * w <= limits.max_pixels, "image size '", text, "' is over ", limits.max_pixels, " pixels");
  return {h, w};
}

// ---------------------------------------------------------------------------------------------
// Finding the files
namespace {

bool is_image_extension(std::string ext) {
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

bool is_label_name(const std::string& stem) { return stem.size() > 2 && stem.compare(stem.size() - 2, 2, "_L") == 0; }

std::vector<CamVidFile> pair_files(const fs::path& image_dir, const fs::path& label_dir) {
  std::vector<CamVidFile> files;
  for (const auto& entry : fs::directory_iterator(image_dir)) {
    if (!entry.is_regular_file() || !is_image_extension(entry.path().extension().string())) continue;
    const std::string stem = entry.path().stem().string();
    if (is_label_name(stem)) continue;  // a label in the flat layout
    const fs::path label = label_dir / (stem + "_L.png");
    DL_CHECK(fs::is_regular_file(label), "CamVid: image ", entry.path().string(), " has no label: expected ",
             label.string());
    files.push_back({stem, entry.path().string(), label.string()});
  }
  std::sort(files.begin(), files.end(), [](const CamVidFile& a, const CamVidFile& b) { return a.name < b.name; });
  return files;
}

}  // namespace

std::vector<CamVidFile> find_camvid_files(const std::string& dir) {
  const fs::path root(dir);
  DL_CHECK(fs::is_directory(root), "CamVid: no folder ", dir);
  const std::pair<const char*, const char*> layouts[] = {{"701_StillsRaw_full", "LabeledApproved_full"},
                                                         {"images", "labels"}};
  std::vector<CamVidFile> files;
  bool found_layout = false;
  for (const auto& [images, labels] : layouts) {
    if (fs::is_directory(root / images) && fs::is_directory(root / labels)) {
      files = pair_files(root / images, root / labels);
      found_layout = true;
      break;
    }
  }
  if (!found_layout) files = pair_files(root, root);
  DL_CHECK(!files.empty(), "CamVid: no image found in ", dir,
           " (expected 701_StillsRaw_full/ + LabeledApproved_full/, images/ + labels/, or <name>.png beside "
           "<name>_L.png)");
  return files;
}

// ---------------------------------------------------------------------------------------------
// Decoding
namespace {

void resize_rgb_bilinear(const uint8_t* in, int64_t ih, int64_t iw, uint8_t* out, int64_t oh, int64_t ow) {
  std::vector<LinearTap> xs(static_cast<size_t>(ow));
  for (int64_t x = 0; x < ow; ++x) xs[x] = bilinear_tap(x, iw, ow);
  for (int64_t y = 0; y < oh; ++y) {
    const LinearTap ty = bilinear_tap(y, ih, oh);
    const uint8_t* r0 = in + ty.i0 * iw * 3;
    const uint8_t* r1 = in + ty.i1 * iw * 3;
    for (int64_t x = 0; x < ow; ++x) {
      const LinearTap& tx = xs[x];
      for (int c = 0; c < 3; ++c) {
        const float top = tx.l0 * r0[tx.i0 * 3 + c] + tx.l1 * r0[tx.i1 * 3 + c];
        const float bottom = tx.l0 * r1[tx.i0 * 3 + c] + tx.l1 * r1[tx.i1 * 3 + c];
        const float v = ty.l0 * top + ty.l1 * bottom;
        out[(y * ow + x) * 3 + c] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
}

int64_t nearest_source(int64_t o, int64_t in, int64_t out) {
  return std::min(in - 1, static_cast<int64_t>(std::floor((o + 0.5) * static_cast<double>(in) / out)));
}

void resize_label_nearest(const uint8_t* in, int64_t ih, int64_t iw, uint8_t* out, int64_t oh, int64_t ow) {
  std::vector<int64_t> xs(static_cast<size_t>(ow));
  for (int64_t x = 0; x < ow; ++x) xs[x] = nearest_source(x, iw, ow);
  for (int64_t y = 0; y < oh; ++y) {
    const uint8_t* row = in + nearest_source(y, ih, oh) * iw;
    for (int64_t x = 0; x < ow; ++x) out[y * ow + x] = row[xs[x]];
  }
}

// Decodes one pair into the slots of sample i (already sized H x W).
void load_pair(const CamVidFile& f, int64_t h, int64_t w, bool resize, uint8_t* image, uint8_t* label) {
  const Image img = read_rgb_image(f.image_path);
  const Tensor lab = read_camvid_label(f.label_path);
  const int64_t lh = lab.size(0), lw = lab.size(1);
  const uint8_t* l = lab.data<uint8_t>();
  DL_CHECK(lh == img.height && lw == img.width, "CamVid: label ", f.label_path, " is ", lh, "x", lw, " but its image ",
           f.image_path, " is ", img.height, "x", img.width);
  if (!resize) {
    DL_CHECK(img.height == h && img.width == w, "CamVid: ", f.image_path, " is ", img.height, "x", img.width,
             " but the first image is ", h, "x", w, " (give a target size to resize all)");
    std::copy(img.pixels.begin(), img.pixels.end(), image);
    std::copy(l, l + h * w, label);
    return;
  }
  resize_rgb_bilinear(img.pixels.data(), img.height, img.width, image, h, w);
  resize_label_nearest(l, lh, lw, label, h, w);
}

}  // namespace

Tensor read_camvid_label(const std::string& path) {
  DL_CHECK(fs::is_regular_file(path), "CamVid: missing label file ", path);
  LabelPngFormat format;
  Tensor labels = read_label_png(path, &format);
  if (format == LabelPngFormat::kIndex) {
    uint8_t* l = labels.data<uint8_t>();
    for (int64_t i = 0; i < labels.numel(); ++i)
      if (l[i] >= kCamVidNumClasses) l[i] = kVoidLabel;
  }
  return labels;
}

CamVidImages load_camvid(const std::string& dir, ImageSize size) {
  return load_camvid_files(find_camvid_files(dir), size);
}

CamVidImages load_camvid_files(const std::vector<CamVidFile>& files, ImageSize size) {
  DL_CHECK(!files.empty(), "CamVid: no file to load");
  CamVidImages d;
  const bool resize = !size.empty();
  if (resize) {
    const ImageLimits limits;
    DL_CHECK(size.height > 0 && size.width > 0 && size.height <= limits.max_side && size.width <= limits.max_side &&
                 size.height * size.width <= limits.max_pixels,
             "CamVid: expected a target size from 1x1 to ", limits.max_side, "x", limits.max_side, " (at most ",
             limits.max_pixels, " pixels), got ", size.height, "x", size.width);
    d.height = size.height;
    d.width = size.width;
  } else {
    const ImageInfo info = read_image_info(files[0].image_path);
    d.height = info.height;
    d.width = info.width;
  }
  const int64_t n = static_cast<int64_t>(files.size());
  const int64_t pixels = d.height * d.width;
  checked_byte_count(
      {n, pixels, 4}, 1,
      "CamVid: " + std::to_string(n) + " images of " + std::to_string(d.height) + "x" + std::to_string(d.width));
  d.images.resize(static_cast<size_t>(n * pixels * 3));
  d.labels.resize(static_cast<size_t>(n * pixels));
  for (const auto& f : files) d.names.push_back(f.name);

  // Decode in parallel; report the first failing file in name order.
  std::vector<std::string> errors(static_cast<size_t>(n));
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < n; ++i) {
    try {
      load_pair(files[i], d.height, d.width, resize, d.images.data() + i * pixels * 3, d.labels.data() + i * pixels);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  }
  for (const auto& e : errors)
    if (!e.empty()) throw Error(e);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Split
SplitSizes camvid_split_sizes(int64_t n) {
  DL_CHECK(n >= 0, "camvid_split_sizes: negative count ", n);
  const int64_t fifth = n / 5;  // floor(0.2 N), exact in integers
  return {n - 2 * fifth, fifth, fifth};
}

CamVidSplit split_camvid(int64_t n, uint64_t seed) {
  Generator gen(seed);
  const std::vector<int64_t> order = random_permutation(n, gen);
  const SplitSizes s = camvid_split_sizes(n);
  CamVidSplit split;
  split.train.assign(order.begin(), order.begin() + s.train);
  split.validation.assign(order.begin() + s.train, order.begin() + s.train + s.validation);
  split.test.assign(order.begin() + s.train + s.validation, order.end());
  for (auto* v : {&split.train, &split.validation, &split.test}) std::sort(v->begin(), v->end());
  return split;
}

// ---------------------------------------------------------------------------------------------
// Class weights
Tensor median_frequency_weights(const uint8_t* labels, int64_t count, int64_t pixels, int num_classes) {
  DL_CHECK(num_classes > 0 && num_classes < 255, "median_frequency_weights: bad class count ", num_classes);
  std::vector<int64_t> class_pixels(num_classes, 0), image_pixels(num_classes, 0), hist(num_classes);
  for (int64_t i = 0; i < count; ++i) {
    std::fill(hist.begin(), hist.end(), 0);
    const uint8_t* l = labels + i * pixels;
    for (int64_t p = 0; p < pixels; ++p)
      if (l[p] < num_classes) ++hist[l[p]];
    for (int c = 0; c < num_classes; ++c) {
      if (hist[c] == 0) continue;
      class_pixels[c] += hist[c];
      image_pixels[c] += pixels;
    }
  }
  std::vector<double> freq(num_classes, 0.0), present;
  for (int c = 0; c < num_classes; ++c) {
    if (class_pixels[c] == 0) continue;
    freq[c] = static_cast<double>(class_pixels[c]) / static_cast<double>(image_pixels[c]);
    present.push_back(freq[c]);
  }
  Tensor w = Tensor::zeros(Shape({num_classes}), DType::kFloat32);
  if (present.empty()) return w;
  std::sort(present.begin(), present.end());
  const size_t m = present.size();
  const double median = m % 2 ? present[m / 2] : 0.5 * (present[m / 2 - 1] + present[m / 2]);
  float* out = w.data<float>();
  for (int c = 0; c < num_classes; ++c) out[c] = freq[c] > 0 ? static_cast<float>(median / freq[c]) : 0.f;
  return w;
}

Tensor median_frequency_weights(const CamVidImages& data, const std::vector<int64_t>& indices, int num_classes) {
  const int64_t pixels = data.height * data.width;
  std::vector<uint8_t> gathered(indices.size() * static_cast<size_t>(pixels));
  for (size_t i = 0; i < indices.size(); ++i) {
    DL_CHECK(indices[i] >= 0 && indices[i] < data.size(), "median_frequency_weights: index ", indices[i],
             " outside [0, ", data.size(), ")");
    std::copy(data.label(indices[i]), data.label(indices[i]) + pixels, gathered.begin() + i * pixels);
  }
  return median_frequency_weights(gathered.data(), static_cast<int64_t>(indices.size()), pixels, num_classes);
}

// ---------------------------------------------------------------------------------------------
// Normalisation
Normalisation compute_normalisation(const CamVidImages& data, const std::vector<int64_t>& indices) {
  DL_CHECK(!indices.empty(), "compute_normalisation: no sample");
  const int64_t pixels = data.height * data.width;
  uint64_t sum[3] = {0, 0, 0}, sum_sq[3] = {0, 0, 0};  // exact: 255^2 * 10^9 pixels still fits
  for (int64_t i : indices) {
    DL_CHECK(i >= 0 && i < data.size(), "compute_normalisation: index ", i, " outside [0, ", data.size(), ")");
    const uint8_t* p = data.image(i);
    for (int64_t k = 0; k < pixels; ++k)
      for (int c = 0; c < 3; ++c) {
        const uint64_t v = p[3 * k + c];
        sum[c] += v;
        sum_sq[c] += v * v;
      }
  }
  Normalisation n;
  const double count = static_cast<double>(pixels) * static_cast<double>(indices.size());
  for (int c = 0; c < 3; ++c) {
    const double mean = static_cast<double>(sum[c]) / count;
    const double var = std::max(0.0, static_cast<double>(sum_sq[c]) / count - mean * mean);
    n.mean[c] = static_cast<float>(mean / 255.0);
    // A constant channel would divide by zero: keep it at 1 (the input is then exactly 0).
    n.std[c] = var > 0 ? static_cast<float>(std::sqrt(var) / 255.0) : 1.f;
  }
  return n;
}

Tensor normalisation_to_tensor(const Normalisation& n) {
  return Tensor::from_vector<float>(Shape({2, 3}), {n.mean[0], n.mean[1], n.mean[2], n.std[0], n.std[1], n.std[2]});
}

Normalisation normalisation_from_tensor(const Tensor& t) {
  DL_CHECK(t.defined() && t.dim() == 2 && t.size(0) == 2 && t.size(1) == 3,
           "normalisation_from_tensor: expected a 2 x 3 tensor (rows mean, std), got ",
           t.defined() ? t.shape().str() : std::string("an undefined tensor"));
  const std::vector<float> v = t.to(Device::cpu()).to_vector_f32();
  Normalisation n;
  for (int c = 0; c < 3; ++c) {
    n.mean[c] = v[c];
    n.std[c] = v[3 + c];
    DL_CHECK(std::isfinite(n.mean[c]), "normalisation_from_tensor: mean[", c, "] = ", n.mean[c], " is not finite");
    DL_CHECK(n.std[c] > 0 && std::isfinite(n.std[c]), "normalisation_from_tensor: std[", c, "] = ", n.std[c],
             " is not positive and finite");
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Augmentation
AugmentParams draw_augment_params(const AugmentOptions& o, int64_t epoch, int64_t sample) {
  AugmentParams p;
  if (!o.enabled) return p;
  // Note [per-sample epochs]: one small generator per (seed, epoch, sample), seeded by a mix of the
  // three, so a transform depends on nothing else (order, thread, batch composition).
  uint64_t h = o.seed * 0x9e3779b97f4a7c15ULL;
  h ^= static_cast<uint64_t>(epoch) + 0x632be59bd9b4e019ULL + (h << 6) + (h >> 2);
  h ^= static_cast<uint64_t>(sample) * 0xbf58476d1ce4e5b9ULL + 0x94d049bb133111ebULL + (h << 6) + (h >> 2);
  Generator gen(h);
  const uint64_t span = static_cast<uint64_t>(2 * std::max(0, o.max_translation) + 1);
  const bool flip = gen.below(2) == 1;
  p.flip = o.reflect && flip;
  p.dx = static_cast<int>(gen.below(span)) - std::max(0, o.max_translation);
  p.dy = static_cast<int>(gen.below(span)) - std::max(0, o.max_translation);
  return p;
}

void transform_sample(const uint8_t* image, const uint8_t* label, int64_t height, int64_t width,
                      const Normalisation& norm, const AugmentParams& p, float* input, int32_t* target) {
  float lut[3][256];
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) lut[c][v] = (static_cast<float>(v) / 255.f - norm.mean[c]) / norm.std[c];
  const int64_t plane = height * width;
  for (int64_t y = 0; y < height; ++y) {
    const int64_t sy = y - p.dy;
    for (int64_t x = 0; x < width; ++x) {
      const int64_t o = y * width + x;
      int64_t sx = x - p.dx;
      if (sy < 0 || sy >= height || sx < 0 || sx >= width) {
        input[o] = input[plane + o] = input[2 * plane + o] = 0.f;
        target[o] = kVoidLabel;
        continue;
      }
      if (p.flip) sx = width - 1 - sx;
      const int64_t s = sy * width + sx;
      for (int c = 0; c < 3; ++c) input[c * plane + o] = lut[c][image[3 * s + c]];
      target[o] = label[s];
    }
  }
}

CamVidDataset::CamVidDataset(std::shared_ptr<const CamVidImages> data, std::vector<int64_t> indices, Normalisation norm,
                             AugmentOptions augment)
    : data_(std::move(data)), indices_(std::move(indices)), norm_(norm), augment_(augment) {
  DL_CHECK(data_ != nullptr, "CamVidDataset: no data");
  for (int64_t i : indices_)
    DL_CHECK(i >= 0 && i < data_->size(), "CamVidDataset: index ", i, " outside [0, ", data_->size(), ")");
  for (int c = 0; c < 3; ++c) DL_CHECK(norm_.std[c] > 0, "CamVidDataset: std[", c, "] = ", norm_.std[c]);
  uses_ = std::make_unique<std::atomic<int64_t>[]>(indices_.size());
  set_epoch(0);
}

void CamVidDataset::set_epoch(int64_t epoch) {
  for (size_t i = 0; i < indices_.size(); ++i) uses_[i].store(epoch);
}

Batch CamVidDataset::get_batch(const std::vector<int64_t>& indices) const {
  const int64_t b = static_cast<int64_t>(indices.size());
  const int64_t h = data_->height, w = data_->width;
  Tensor inputs = Tensor::empty(Shape({b, 3, h, w}), DType::kFloat32);
  Tensor targets = Tensor::empty(Shape({b, h, w}), DType::kInt32);
  float* in = inputs.data<float>();
  int32_t* tg = targets.data<int32_t>();
  for (int64_t k = 0; k < b; ++k) {
    const int64_t i = indices[k];
    DL_CHECK(i >= 0 && i < size(), "CamVidDataset: index ", i, " outside [0, ", size(), ")");
    const int64_t sample = indices_[i];
    AugmentParams p;
    if (augment_.enabled) p = draw_augment_params(augment_, uses_[i].fetch_add(1), sample);
    transform_sample(data_->image(sample), data_->label(sample), h, w, norm_, p, in + k * 3 * h * w, tg + k * h * w);
  }
  return {inputs, targets};
}

CamVidDatasets make_camvid_datasets(std::shared_ptr<const CamVidImages> data, const CamVidSplit& split,
                                    uint64_t augment_seed) {
  DL_CHECK(data != nullptr, "make_camvid_datasets: no data");
  CamVidDatasets d;
  d.normalisation = compute_normalisation(*data, split.train);
  d.class_weights = median_frequency_weights(*data, split.train);
  AugmentOptions aug;
  aug.enabled = true;
  aug.seed = augment_seed;
  d.train = std::make_shared<CamVidDataset>(data, split.train, d.normalisation, aug);
  d.validation = std::make_shared<CamVidDataset>(data, split.validation, d.normalisation);
  d.test = std::make_shared<CamVidDataset>(data, split.test, d.normalisation);
  return d;
}

}  // namespace dl::data
