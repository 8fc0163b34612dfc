// CamVid data: the split rule, the reader on a generated set in the three layouts, colour -> class
// with void, errors naming the file, augmentation (alignment of image and label, bounds, reflection,
// determinism per epoch and sample), median-frequency class weights and normalisation statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "dl/data/camvid.h"
#include "dl/data/camvid_synth.h"
#include "dl/data/image_io.h"

namespace fs = std::filesystem;
using namespace dl;
using namespace dl::data;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("test_camvid_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write_rgb_png(const fs::path& path, int h, int w, const std::vector<uint8_t>& rgb) {
  dl::data::write_png(path.string(), rgb.data(), h, w, 3);
}

// A hand-made data set whose image encodes the label and the source position of every pixel:
// R = 20 * label, G = 10 * x, B = 10 * y.
std::shared_ptr<CamVidImages> coded_images(int64_t n, int64_t h, int64_t w) {
  auto d = std::make_shared<CamVidImages>();
  d->height = h;
  d->width = w;
  for (int64_t i = 0; i < n; ++i) {
    d->names.push_back("s" + std::to_string(i));
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const uint8_t label = static_cast<uint8_t>((y * w + x + i) % kCamVidNumClasses);
        d->labels.push_back(label);
        d->images.push_back(static_cast<uint8_t>(20 * label));
        d->images.push_back(static_cast<uint8_t>(10 * x));
        d->images.push_back(static_cast<uint8_t>(10 * y));
      }
  }
  return d;
}

// mean 0, std 1/255: the normalised input equals the pixel value.
Normalisation identity_norm() {
  Normalisation n;
  for (int c = 0; c < 3; ++c) n.std[c] = 1.f / 255.f;
  return n;
}

// Checks one transformed sample of coded_images against the transform's definition.
void expect_transformed(const CamVidImages& d, int64_t sample, const AugmentParams& p, const float* in,
                        const int32_t* tg) {
  const int64_t h = d.height, w = d.width, plane = h * w;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t o = y * w + x, sy = y - p.dy, sx0 = x - p.dx;
      if (sy < 0 || sy >= h || sx0 < 0 || sx0 >= w) {
        ASSERT_EQ(tg[o], kVoidLabel) << "uncovered pixel (" << y << ", " << x << ") must be void";
        for (int c = 0; c < 3; ++c) ASSERT_EQ(in[c * plane + o], 0.f);
        continue;
      }
      const int64_t sx = p.flip ? w - 1 - sx0 : sx0;
      ASSERT_EQ(tg[o], d.label(sample)[sy * w + sx]);
      ASSERT_NEAR(in[o], 20.f * tg[o], 1e-3) << "image and label disagree at (" << y << ", " << x << ")";
      ASSERT_NEAR(in[plane + o], 10.f * sx, 1e-3);
      ASSERT_NEAR(in[2 * plane + o], 10.f * sy, 1e-3);
    }
}

}  // namespace

// ---- split ----
TEST(CamVidSplit, SizesFollowTheRule) {
  const SplitSizes s = camvid_split_sizes(701);
  EXPECT_EQ(s.train, 421);
  EXPECT_EQ(s.validation, 140);
  EXPECT_EQ(s.test, 140);
  const SplitSizes t = camvid_split_sizes(10);
  EXPECT_EQ(t.train, 6);
  EXPECT_EQ(t.validation, 2);
  EXPECT_EQ(t.test, 2);
  EXPECT_EQ(camvid_split_sizes(4).train, 4);
  EXPECT_EQ(camvid_split_sizes(0).train, 0);
}

TEST(CamVidSplit, DeterministicPartition) {
  const CamVidSplit a = split_camvid(701, 42), b = split_camvid(701, 42), c = split_camvid(701, 43);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.validation, b.validation);
  EXPECT_EQ(a.test, b.test);
  EXPECT_NE(a.train, c.train);
  ASSERT_EQ(a.train.size(), 421u);
  ASSERT_EQ(a.validation.size(), 140u);
  ASSERT_EQ(a.test.size(), 140u);
  std::set<int64_t> all(a.train.begin(), a.train.end());
  all.insert(a.validation.begin(), a.validation.end());
  all.insert(a.test.begin(), a.test.end());
  EXPECT_EQ(all.size(), 701u);
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), 700);
  EXPECT_TRUE(std::is_sorted(a.train.begin(), a.train.end()));
}

// ---- generator and reader ----
TEST(CamVidSynth, DeterministicAndVaried) {
  const SynthScene a = render_synthetic_scene(60, 80, 7, 3), b = render_synthetic_scene(60, 80, 7, 3);
  EXPECT_EQ(a.image, b.image);
  EXPECT_EQ(a.label_rgb, b.label_rgb);
  EXPECT_NE(a.image, render_synthetic_scene(60, 80, 8, 3).image);
  EXPECT_NE(a.image, render_synthetic_scene(60, 80, 7, 4).image);
  // Every label colour is a palette colour; over a few scenes most classes appear.
  std::set<int> classes;
  for (int64_t i = 0; i < 12; ++i) {
    const SynthScene s = render_synthetic_scene(90, 120, 1, i);
    std::vector<uint8_t> l(static_cast<size_t>(90 * 120));
    camvid_rgb_to_labels(s.label_rgb.data(), 90 * 120, 3, l.data());
    for (int64_t p = 0; p < 90 * 120; ++p) {
      const uint8_t* c = &s.label_rgb[3 * p];
      if (l[p] == kVoidLabel) {
        ASSERT_TRUE(c[0] == 0 && c[1] == 0 && c[2] == 0);
      }
      classes.insert(l[p]);
    }
  }
  EXPECT_GE(classes.size(), 11u) << "expected most of the 11 classes and void over 12 scenes";
  EXPECT_TRUE(classes.count(kVoidLabel));
  for (int c : {0, 1, 3, 4, 8}) EXPECT_TRUE(classes.count(c)) << "class " << c;
}

TEST(CamVidReader, ReadsAGeneratedSet) {
  const fs::path dir = temp_dir("synth");
  SynthOptions o;
  o.images = 6;
  o.height = 48;
  o.width = 64;
  o.seed = 3;
  write_synthetic_camvid(dir.string(), o);
  EXPECT_FALSE(ensure_synthetic_camvid(dir.string(), o));  // already there
  EXPECT_TRUE(fs::is_regular_file(dir / "701_StillsRaw_full" / "Synth_00001.png"));
  EXPECT_TRUE(fs::is_regular_file(dir / "LabeledApproved_full" / "Synth_00006_L.png"));

  const std::vector<CamVidFile> files = find_camvid_files(dir.string());
  ASSERT_EQ(files.size(), 6u);
  EXPECT_EQ(files[0].name, "Synth_00001");
  const CamVidImages d = load_camvid(dir.string());
  ASSERT_EQ(d.size(), 6);
  EXPECT_EQ(d.height, 48);
  EXPECT_EQ(d.width, 64);
  for (int64_t i = 0; i < d.size(); ++i) {
    const SynthScene s = render_synthetic_scene(48, 64, 3, i);
    EXPECT_TRUE(std::equal(s.image.begin(), s.image.end(), d.image(i))) << "image " << i;
    std::vector<uint8_t> l(48 * 64);
    camvid_rgb_to_labels(s.label_rgb.data(), 48 * 64, 3, l.data());
    EXPECT_TRUE(std::equal(l.begin(), l.end(), d.label(i))) << "label " << i;
  }

  // Resizing: nearest labels keep only the classes present; sizes as asked.
  const CamVidImages r = load_camvid(dir.string(), parse_image_size("24x32"));
  EXPECT_EQ(r.height, 24);
  EXPECT_EQ(r.width, 32);
  for (int64_t p = 0; p < 24 * 32; ++p)
    EXPECT_EQ(r.label(0)[p], d.label(0)[(2 * (p / 32) + 1) * 64 + 2 * (p % 32) + 1]);

  // The other two layouts read the same data.
  const fs::path a = temp_dir("layout_images"), flat = temp_dir("layout_flat");
  fs::create_directories(a / "images");
  fs::create_directories(a / "labels");
  for (const auto& f : files) {
    fs::copy_file(f.image_path, a / "images" / (f.name + ".png"));
    fs::copy_file(f.label_path, a / "labels" / (f.name + "_L.png"));
    fs::copy_file(f.image_path, flat / (f.name + ".png"));
    fs::copy_file(f.label_path, flat / (f.name + "_L.png"));
  }
  for (const fs::path& p : {a, flat}) {
    const CamVidImages e = load_camvid(p.string());
    EXPECT_EQ(e.names, d.names);
    EXPECT_EQ(e.images, d.images);
    EXPECT_EQ(e.labels, d.labels);
  }
  for (const fs::path& p : {dir, a, flat}) fs::remove_all(p);
}

TEST(CamVidReader, ColourToClassWithVoid) {
  const fs::path dir = temp_dir("colours");
  // Sky, LaneMkgsDriv (road), Child (pedestrian), MotorcycleScooter (bicyclist), Void, an unlisted colour.
  const std::vector<uint8_t> rgb = {128, 128, 128, 128, 0, 192, 192, 128, 64, 192, 0, 192, 0, 0, 0, 1, 2, 3};
  write_rgb_png(dir / "a_L.png", 1, 6, rgb);
  write_rgb_png(dir / "a.png", 1, 6, rgb);
  const Tensor l = read_camvid_label((dir / "a_L.png").string());
  ASSERT_EQ(l.numel(), 6);
  const uint8_t* v = l.data<uint8_t>();
  EXPECT_EQ(v[0], 0);
  EXPECT_EQ(v[1], 3);
  EXPECT_EQ(v[2], 9);
  EXPECT_EQ(v[3], 10);
  EXPECT_EQ(v[4], kVoidLabel);
  EXPECT_EQ(v[5], kVoidLabel);
  const CamVidImages d = load_camvid(dir.string());
  ASSERT_EQ(d.size(), 1);
  EXPECT_EQ(std::vector<uint8_t>(d.label(0), d.label(0) + 6), std::vector<uint8_t>({0, 3, 9, 10, 255, 255}));
  fs::remove_all(dir);
}

TEST(CamVidReader, ErrorsNameTheFile) {
  const fs::path dir = temp_dir("errors");
  write_rgb_png(dir / "good.png", 2, 2, std::vector<uint8_t>(12, 128));
  write_rgb_png(dir / "good_L.png", 2, 2, std::vector<uint8_t>(12, 128));
  { std::ofstream(dir / "bad.png") << "this is not a PNG"; }
  write_rgb_png(dir / "bad_L.png", 2, 2, std::vector<uint8_t>(12, 128));
  try {
    load_camvid(dir.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "bad.png").string()), std::string::npos) << e.what();
  }
  fs::remove(dir / "bad.png");
  fs::remove(dir / "bad_L.png");
  write_rgb_png(dir / "nolabel.png", 2, 2, std::vector<uint8_t>(12, 128));
  try {
    load_camvid(dir.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nolabel_L.png"), std::string::npos) << e.what();
  }
  fs::remove(dir / "nolabel.png");
  { std::ofstream(dir / "good_L.png", std::ios::trunc) << "garbage"; }
  try {
    load_camvid(dir.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("good_L.png"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_camvid((dir / "missing").string()), Error);
  EXPECT_THROW(parse_image_size("360by480"), Error);
  EXPECT_THROW(parse_image_size("0x480"), Error);
  fs::remove_all(dir);
}

// ---- augmentation ----
TEST(CamVidAugment, ImageAndLabelStayAligned) {
  const auto d = coded_images(1, 12, 16);
  std::vector<float> in(3 * 12 * 16);
  std::vector<int32_t> tg(12 * 16);
  for (bool flip : {false, true})
    for (int dx : {-10, -3, 0, 4, 10})
      for (int dy : {-10, -1, 0, 5, 10}) {
        const AugmentParams p{flip, dx, dy};
        transform_sample(d->image(0), d->label(0), 12, 16, identity_norm(), p, in.data(), tg.data());
        expect_transformed(*d, 0, p, in.data(), tg.data());
      }
}

TEST(CamVidAugment, Reflection) {
  const auto d = coded_images(1, 5, 7);
  std::vector<float> in(3 * 35);
  std::vector<int32_t> tg(35);
  transform_sample(d->image(0), d->label(0), 5, 7, identity_norm(), {true, 0, 0}, in.data(), tg.data());
  for (int64_t y = 0; y < 5; ++y)
    for (int64_t x = 0; x < 7; ++x) {
      EXPECT_EQ(tg[y * 7 + x], d->label(0)[y * 7 + 6 - x]);
      EXPECT_NEAR(in[35 + y * 7 + x], 10.f * (6 - x), 1e-3);
    }
}

TEST(CamVidAugment, ParametersBoundedAndDeterministic) {
  AugmentOptions o;
  o.enabled = true;
  o.seed = 5;
  int flips = 0, n = 0;
  std::set<int> dxs, dys;
  for (int64_t epoch = 0; epoch < 20; ++epoch)
    for (int64_t s = 0; s < 100; ++s, ++n) {
      const AugmentParams p = draw_augment_params(o, epoch, s);
      ASSERT_GE(p.dx, -10);
      ASSERT_LE(p.dx, 10);
      ASSERT_GE(p.dy, -10);
      ASSERT_LE(p.dy, 10);
      dxs.insert(p.dx);
      dys.insert(p.dy);
      flips += p.flip;
      const AugmentParams q = draw_augment_params(o, epoch, s);
      ASSERT_TRUE(p.flip == q.flip && p.dx == q.dx && p.dy == q.dy);
    }
  EXPECT_EQ(dxs.size(), 21u);
  EXPECT_EQ(dys.size(), 21u);
  EXPECT_NEAR(static_cast<double>(flips) / n, 0.5, 0.05);
  o.reflect = false;
  o.max_translation = 3;
  for (int64_t s = 0; s < 200; ++s) {
    const AugmentParams p = draw_augment_params(o, 0, s);
    EXPECT_FALSE(p.flip);
    EXPECT_LE(std::abs(p.dx), 3);
  }
  o.enabled = false;
  const AugmentParams id = draw_augment_params(o, 3, 3);
  EXPECT_TRUE(!id.flip && id.dx == 0 && id.dy == 0);
}

TEST(CamVidDataset, BatchesFollowTheSampleAndEpoch) {
  const auto d = coded_images(5, 10, 14);
  AugmentOptions o;
  o.enabled = true;
  o.seed = 11;
  const std::vector<int64_t> subset = {4, 1, 3};
  CamVidDataset ds(d, subset, identity_norm(), o);
  ASSERT_EQ(ds.size(), 3);
  const std::vector<std::vector<int64_t>> orders = {{2, 0, 1}, {1, 2, 0}, {0, 1, 2}};
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    const Batch b = ds.get_batch(orders[epoch]);
    ASSERT_EQ(b.inputs.shape(), Shape({3, 3, 10, 14}));
    ASSERT_EQ(b.targets.shape(), Shape({3, 10, 14}));
    ASSERT_EQ(b.inputs.dtype(), DType::kFloat32);
    ASSERT_EQ(b.targets.dtype(), DType::kInt32);
    for (int k = 0; k < 3; ++k) {
      const int64_t sample = subset[orders[epoch][k]];
      expect_transformed(*d, sample, draw_augment_params(o, epoch, sample), b.inputs.data<float>() + k * 3 * 140,
                         b.targets.data<int32_t>() + k * 140);
    }
  }
  // set_epoch rewinds: the same epoch gives the same batch.
  ds.set_epoch(1);
  const Batch again = ds.get_batch({0});
  expect_transformed(*d, 4, draw_augment_params(o, 1, 4), again.inputs.data<float>(), again.targets.data<int32_t>());
  // Without augmentation a batch is the plain normalised sample.
  CamVidDataset plain(d, subset, identity_norm());
  const Batch p = plain.get_batch({1});
  expect_transformed(*d, 1, AugmentParams{}, p.inputs.data<float>(), p.targets.data<int32_t>());
}

// ---- class weights and normalisation ----
TEST(CamVidClassWeights, MedianFrequencyByHand) {
  // Two 2x2 images. Class 0: 3 + 1 pixels over 8 image pixels = 0.5; class 1: 1 / 4 = 0.25;
  // class 2: 2 / 4 = 0.5; class 3 absent. Median of {0.25, 0.5, 0.5} = 0.5 -> weights 1, 2, 1, 0.
  const std::vector<uint8_t> labels = {0, 0, 0, 1, /**/ 0, 2, 2, 255};
  const Tensor w = median_frequency_weights(labels.data(), 2, 4, 4);
  ASSERT_EQ(w.shape(), Shape({4}));
  ASSERT_EQ(w.dtype(), DType::kFloat32);
  EXPECT_FLOAT_EQ(w.data<float>()[0], 1.f);
  EXPECT_FLOAT_EQ(w.data<float>()[1], 2.f);
  EXPECT_FLOAT_EQ(w.data<float>()[2], 1.f);
  EXPECT_FLOAT_EQ(w.data<float>()[3], 0.f);
  // An even number of classes: the median is the mean of the middle two. Class 0: 4/8 = 0.5,
  // class 1: 1/4 = 0.25 -> median 0.375 -> weights 0.75, 1.5.
  const std::vector<uint8_t> two = {0, 0, 0, 1, /**/ 0, 255, 255, 255};
  const Tensor v = median_frequency_weights(two.data(), 2, 4, 2);
  EXPECT_FLOAT_EQ(v.data<float>()[0], 0.75f);
  EXPECT_FLOAT_EQ(v.data<float>()[1], 1.5f);
  // Through CamVidImages and a subset of its samples.
  auto d = std::make_shared<CamVidImages>();
  d->height = 2;
  d->width = 2;
  d->names = {"a", "b", "c"};
  d->images.assign(36, 0);
  d->labels = {0, 0, 0, 1, /**/ 5, 5, 5, 5, /**/ 0, 2, 2, 255};
  const Tensor x = median_frequency_weights(*d, {0, 2}, 4);
  EXPECT_EQ(x.to_vector_f32(), std::vector<float>({1.f, 2.f, 1.f, 0.f}));
}

TEST(CamVidNormalisation, StatisticsOfTheTrainingSamples) {
  auto d = std::make_shared<CamVidImages>();
  d->height = 1;
  d->width = 2;
  d->names = {"a", "b", "c"};
  // R: 0, 255, 51, 102 over samples 0 and 2; G constant 10; B: sample 1 ignored.
  d->images = {0, 10, 0, 255, 10, 255, /**/ 9, 9, 9, 9, 9, 9, /**/ 51, 10, 0, 102, 10, 255};
  d->labels.assign(6, 0);
  const Normalisation n = compute_normalisation(*d, {0, 2});
  const double r[] = {0, 255, 51, 102}, b[] = {0, 255, 0, 255};
  auto stats = [](const double* v, double& mean, double& sd) {
    mean = (v[0] + v[1] + v[2] + v[3]) / 4;
    double s = 0;
    for (int i = 0; i < 4; ++i) s += (v[i] - mean) * (v[i] - mean);
    sd = std::sqrt(s / 4);
  };
  double mr, sr, mb, sb;
  stats(r, mr, sr);
  stats(b, mb, sb);
  EXPECT_NEAR(n.mean[0], mr / 255, 1e-6);
  EXPECT_NEAR(n.std[0], sr / 255, 1e-6);
  EXPECT_NEAR(n.mean[1], 10.0 / 255, 1e-6);
  EXPECT_EQ(n.std[1], 1.f);  // a constant channel keeps std 1
  EXPECT_NEAR(n.mean[2], mb / 255, 1e-6);
  EXPECT_NEAR(n.std[2], sb / 255, 1e-6);

  const Normalisation back = normalisation_from_tensor(normalisation_to_tensor(n));
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(back.mean[c], n.mean[c]);
    EXPECT_EQ(back.std[c], n.std[c]);
  }
  EXPECT_THROW(normalisation_from_tensor(Tensor::zeros({3, 2})), Error);

  // The dataset applies it: (pixel / 255 - mean) / std.
  CamVidDataset ds(d, {0}, n);
  const Batch batch = ds.get_batch({0});
  EXPECT_NEAR(batch.inputs.data<float>()[1], (255.0 / 255 - n.mean[0]) / n.std[0], 1e-5);
  EXPECT_NEAR(batch.inputs.data<float>()[2], 0.0, 1e-6);
}

TEST(CamVidDatasets, MadeFromASplit) {
  const auto d = coded_images(10, 6, 8);
  const CamVidSplit split = split_camvid(d->size(), 1);
  const CamVidDatasets sets = make_camvid_datasets(d, split, 9);
  EXPECT_EQ(sets.train->size(), 6);
  EXPECT_EQ(sets.validation->size(), 2);
  EXPECT_EQ(sets.test->size(), 2);
  EXPECT_TRUE(sets.train->augment_options().enabled);
  EXPECT_FALSE(sets.validation->augment_options().enabled);
  EXPECT_FALSE(sets.test->augment_options().enabled);
  const Normalisation n = compute_normalisation(*d, split.train);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(sets.normalisation.mean[c], n.mean[c]);
    EXPECT_EQ(sets.test->normalisation().std[c], n.std[c]);
  }
  EXPECT_EQ(sets.class_weights.to_vector_f32(), median_frequency_weights(*d, split.train).to_vector_f32());
}
