// Segmentation metrics (dl/metrics/segmentation.h) against an independent brute-force implementation
// of MATLAB's definitions (explicit loops, O(n^2) boundary distances), hand-computed cases, the CamVid
// palette, label PNG round trips and folders of label PNGs matched by name (what evaluate --pred --truth reads).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "dl/data/camvid_palette.h"
#include "dl/data/label_folders.h"
#include "dl/data/label_image.h"
#include "dl/metrics/segmentation.h"

namespace {

namespace fs = std::filesystem;
using dl::metrics::SegmentationEvaluator;
using dl::metrics::SegmentationMetrics;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kVoid = 255;

// A label map: h x w int32, row-major.
struct Map {
  int h = 0, w = 0;
  std::vector<int32_t> v;
  int32_t at(int y, int x) const { return v[y * w + x]; }
};

// ---- the reference: MATLAB's definitions, written out plainly ----

struct Reference {
  int nc;
  std::vector<std::vector<long long>> cm;
  std::vector<double> bf_sum;
  std::vector<int> bf_n;
  std::vector<double> image_bf;
  explicit Reference(int n) : nc(n), cm(n, std::vector<long long>(n, 0)), bf_sum(n, 0.0), bf_n(n, 0) {}

  static bool on_boundary(const Map& m, int c, int y, int x) {
    if (m.at(y, x) != c) return false;
    const int dy[4] = {-1, 1, 0, 0}, dx[4] = {0, 0, -1, 1};
    for (int k = 0; k < 4; ++k) {
      const int yy = y + dy[k], xx = x + dx[k];
      if (yy < 0 || yy >= m.h || xx < 0 || xx >= m.w) return true;  // outside the image: false
      if (m.at(yy, xx) != c) return true;
    }
    return false;
  }

  // Fraction of the boundary pixels of `a` within distance theta of a boundary pixel of `b`.
  static double matched_fraction(const std::vector<std::pair<int, int>>& a, const std::vector<std::pair<int, int>>& b,
                                 double theta) {
    int matched = 0;
    for (auto [y, x] : a) {
      double best = std::numeric_limits<double>::infinity();
      for (auto [yy, xx] : b) best = std::min(best, double(y - yy) * (y - yy) + double(x - xx) * (x - xx));
      if (best < theta * theta) ++matched;
    }
    return a.empty() ? 0.0 : double(matched) / double(a.size());
  }

  void add(const Map& pred, const Map& truth) {
    Map p = pred;  // predictions at void truth pixels removed
    for (int i = 0; i < truth.h * truth.w; ++i)
      if (truth.v[i] == kVoid)
        p.v[i] = kVoid;
      else
        ++cm[truth.v[i]][pred.v[i]];
    const double theta = 0.0075 * std::sqrt(double(truth.h) * truth.h + double(truth.w) * truth.w);
    double sum = 0;
    int n = 0;
    for (int c = 0; c < nc; ++c) {
      std::vector<std::pair<int, int>> bp, bt;
      bool in_p = false, in_t = false;
      for (int y = 0; y < truth.h; ++y)
        for (int x = 0; x < truth.w; ++x) {
          in_p |= p.at(y, x) == c;
          in_t |= truth.at(y, x) == c;
          if (on_boundary(p, c, y, x)) bp.push_back({y, x});
          if (on_boundary(truth, c, y, x)) bt.push_back({y, x});
        }
      if (!in_p && !in_t) continue;
      double f1 = 0;
      if (in_p && in_t) {
        const double precision = matched_fraction(bp, bt, theta), recall = matched_fraction(bt, bp, theta);
        f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;
      }
      bf_sum[c] += f1;
      ++bf_n[c];
      sum += f1;
      ++n;
    }
    image_bf.push_back(n ? sum / n : kNaN);
  }

  static double mean_skipping_nan(const std::vector<double>& v) {
    double s = 0;
    int n = 0;
    for (double x : v)
      if (x == x) s += x, ++n;
    return n ? s / n : kNaN;
  }

  SegmentationMetrics result() const {
    SegmentationMetrics m;
    m.num_classes = nc;
    long long total = 0, diag = 0;
    double wsum = 0, wn = 0;
    for (int c = 0; c < nc; ++c) {
      long long row = 0, col = 0;
      for (int k = 0; k < nc; ++k) row += cm[c][k], col += cm[k][c];
      total += row;
      diag += cm[c][c];
      m.class_accuracy.push_back(row ? double(cm[c][c]) / row : kNaN);
      const long long u = row + col - cm[c][c];
      m.class_iou.push_back(u ? double(cm[c][c]) / u : kNaN);
      if (row) wsum += row * m.class_iou.back(), wn += row;
      m.class_mean_bf_score.push_back(bf_n[c] ? bf_sum[c] / bf_n[c] : kNaN);
      for (int k = 0; k < nc; ++k) m.confusion.push_back(cm[c][k]);
    }
    m.global_accuracy = total ? double(diag) / total : kNaN;
    m.mean_accuracy = mean_skipping_nan(m.class_accuracy);
    m.mean_iou = mean_skipping_nan(m.class_iou);
    m.weighted_iou = wn ? wsum / wn : kNaN;
    m.mean_bf_score = mean_skipping_nan(image_bf);
    m.image_mean_bf_score = image_bf;
    return m;
  }
};

void expect_near_or_nan(double expected, double actual, const std::string& what) {
  if (std::isnan(expected))
    EXPECT_TRUE(std::isnan(actual)) << what << ": expected NaN, got " << actual;
  else
    EXPECT_NEAR(expected, actual, 1e-9) << what;
}

void expect_same(const SegmentationMetrics& ref, const SegmentationMetrics& got) {
  expect_near_or_nan(ref.global_accuracy, got.global_accuracy, "GlobalAccuracy");
  expect_near_or_nan(ref.mean_accuracy, got.mean_accuracy, "MeanAccuracy");
  expect_near_or_nan(ref.mean_iou, got.mean_iou, "MeanIoU");
  expect_near_or_nan(ref.weighted_iou, got.weighted_iou, "WeightedIoU");
  expect_near_or_nan(ref.mean_bf_score, got.mean_bf_score, "MeanBFScore");
  ASSERT_EQ(ref.class_iou.size(), got.class_iou.size());
  for (size_t c = 0; c < ref.class_iou.size(); ++c) {
    expect_near_or_nan(ref.class_accuracy[c], got.class_accuracy[c], "Accuracy of class " + std::to_string(c));
    expect_near_or_nan(ref.class_iou[c], got.class_iou[c], "IoU of class " + std::to_string(c));
    expect_near_or_nan(ref.class_mean_bf_score[c], got.class_mean_bf_score[c], "BF of class " + std::to_string(c));
  }
  ASSERT_EQ(ref.image_mean_bf_score.size(), got.image_mean_bf_score.size());
  for (size_t i = 0; i < ref.image_mean_bf_score.size(); ++i)
    expect_near_or_nan(ref.image_mean_bf_score[i], got.image_mean_bf_score[i], "BF of image " + std::to_string(i));
  EXPECT_EQ(ref.confusion, got.confusion);
}

Map from_rows(const std::vector<std::vector<int>>& rows) {
  Map m{static_cast<int>(rows.size()), static_cast<int>(rows[0].size()), {}};
  for (const auto& r : rows) m.v.insert(m.v.end(), r.begin(), r.end());
  return m;
}

dl::Tensor to_tensor(const Map& m) { return dl::Tensor::from_vector<int32_t>({m.h, m.w}, m.v); }

// Street-like random maps: rectangles of random classes painted over a background, then speckle
// and void; the prediction is the truth shifted and partly repainted, with noise.
Map random_truth(std::mt19937& rng, int h, int w, const std::vector<int>& classes) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  Map m{h, w, std::vector<int32_t>(static_cast<size_t>(h) * w, classes[0])};
  for (int r = 0; r < 12; ++r) {
    const int c = classes[pick(static_cast<int>(classes.size()))];
    const int y0 = pick(h), x0 = pick(w), y1 = std::min(h, y0 + 1 + pick(h / 2 + 1)),
              x1 = std::min(w, x0 + 1 + pick(w / 2 + 1));
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) m.v[y * w + x] = c;
  }
  for (auto& v : m.v) {
    const int roll = pick(100);
    if (roll < 8)
      v = kVoid;
    else if (roll < 10)
      v = classes[pick(static_cast<int>(classes.size()))];
  }
  // A void band along one side.
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < std::min(w, 2); ++x) m.v[y * w + x] = kVoid;
  return m;
}

Map random_prediction(std::mt19937& rng, const Map& truth, int num_classes, const std::vector<int>& classes) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  Map p = truth;
  const int sy = pick(5) - 2, sx = pick(5) - 2;
  for (int y = 0; y < truth.h; ++y)
    for (int x = 0; x < truth.w; ++x) {
      const int yy = std::clamp(y + sy, 0, truth.h - 1), xx = std::clamp(x + sx, 0, truth.w - 1);
      int v = truth.at(yy, xx);
      if (v == kVoid || pick(100) < 5) v = classes[pick(static_cast<int>(classes.size()))];
      if (pick(100) < 1) v = pick(num_classes);  // now and then an absent class
      p.v[y * truth.w + x] = v;
    }
  // Predictions at void truth pixels may be anything, even out of range: they are removed.
  for (int i = 0; i < truth.h * truth.w; ++i)
    if (truth.v[i] == kVoid && pick(4) == 0) p.v[i] = 200 + pick(50);
  return p;
}

// ---- metrics ----

TEST(SegmentationMetrics, HandComputed4x4) {
  // Truth: 2x2 blocks of classes 0, 1, 2 and void; class 3 appears nowhere.
  const Map truth = from_rows({{0, 0, 1, 1}, {0, 0, 1, 1}, {2, 2, kVoid, kVoid}, {2, 2, kVoid, kVoid}});
  // Out-of-range and absent-class predictions at void pixels are removed.
  const Map pred = from_rows({{0, 1, 1, 1}, {0, 0, 1, 0}, {2, 0, 1, 3}, {2, 2, 7, 3}});
  SegmentationEvaluator ev(4);
  ev.add(to_tensor(pred), to_tensor(truth));
  const SegmentationMetrics m = ev.result();
  const std::vector<int64_t> expected_cm = {3, 1, 0, 0, 1, 3, 0, 0, 1, 0, 3, 0, 0, 0, 0, 0};
  EXPECT_EQ(m.confusion, expected_cm);
  EXPECT_DOUBLE_EQ(m.global_accuracy, 9.0 / 12.0);
  EXPECT_DOUBLE_EQ(m.class_accuracy[0], 0.75);
  EXPECT_DOUBLE_EQ(m.class_accuracy[2], 0.75);
  EXPECT_TRUE(std::isnan(m.class_accuracy[3]));
  EXPECT_DOUBLE_EQ(m.mean_accuracy, 0.75);
  EXPECT_DOUBLE_EQ(m.class_iou[0], 3.0 / 6.0);  // rowsum 4, colsum 5
  EXPECT_DOUBLE_EQ(m.class_iou[1], 3.0 / 5.0);  // rowsum 4, colsum 4
  EXPECT_DOUBLE_EQ(m.class_iou[2], 3.0 / 4.0);  // rowsum 4, colsum 3
  EXPECT_TRUE(std::isnan(m.class_iou[3]));
  EXPECT_NEAR(m.mean_iou, (0.5 + 0.6 + 0.75) / 3, 1e-15);
  EXPECT_NEAR(m.weighted_iou, (4 * 0.5 + 4 * 0.6 + 4 * 0.75) / 12, 1e-15);
  // theta = 0.0075 * sqrt(32): only coinciding boundary pixels match; every mask pixel is boundary here.
  // Class 0: pred {(0,0),(1,0),(1,1),(1,3),(2,1)}, truth {(0,0),(0,1),(1,0),(1,1)}: P 3/5, R 3/4.
  // Class 1: pred {(0,1),(0,2),(0,3),(1,2)}, truth {(0,2),(0,3),(1,2),(1,3)}: P 3/4, R 3/4.
  // Class 2: pred {(2,0),(3,0),(3,1)}, truth {(2,0),(2,1),(3,0),(3,1)}: P 1, R 3/4. Class 3: not scored.
  const double f0 = 2 * 0.6 * 0.75 / 1.35, f1 = 0.75, f2 = 2 * 0.75 / 1.75;
  EXPECT_NEAR(m.class_mean_bf_score[0], f0, 1e-15);
  EXPECT_NEAR(m.class_mean_bf_score[1], f1, 1e-15);
  EXPECT_NEAR(m.class_mean_bf_score[2], f2, 1e-15);
  EXPECT_TRUE(std::isnan(m.class_mean_bf_score[3]));
  EXPECT_NEAR(m.mean_bf_score, (f0 + f1 + f2) / 3, 1e-15);
}

TEST(SegmentationMetrics, PredictedAbsentClassHasIoUZeroAndBFZero) {
  const Map truth = from_rows({{0, 0, 1, 1}, {0, 0, 1, 1}});
  const Map pred = from_rows({{0, 2, 1, 1}, {0, 0, 1, 1}});
  SegmentationEvaluator ev(3);
  ev.add(to_tensor(pred), to_tensor(truth));
  const SegmentationMetrics m = ev.result();
  EXPECT_TRUE(std::isnan(m.class_accuracy[2]));
  EXPECT_EQ(m.class_iou[2], 0.0);            // TP 0 / FP 1
  EXPECT_EQ(m.class_mean_bf_score[2], 0.0);  // in the prediction only
  EXPECT_DOUBLE_EQ(m.mean_iou, (0.75 + 1.0 + 0.0) / 3);
  EXPECT_DOUBLE_EQ(m.weighted_iou, (4 * 0.75 + 4 * 1.0) / 8);
}

TEST(SegmentationMetrics, BoundaryToleranceOfShiftedSquare) {
  // 100 x 100: theta^2 = 0.0075^2 * 20000 = 1.125, so 4-neighbours match and diagonals do not.
  // Truth: class 0 on rows and columns 10..29; prediction: the square 2 columns to the right. Of the
  // 76 boundary pixels of either square 40 lie within distance 1 of the other's (top and bottom rows
  // but their outer 2 pixels, and the first and last pixels of the side columns): F1 = 40/76.
  Map truth{100, 100, std::vector<int32_t>(10000, 1)}, pred = truth;
  for (int y = 10; y < 30; ++y)
    for (int x = 10; x < 30; ++x) {
      truth.v[y * 100 + x] = 0;
      pred.v[y * 100 + x + 2] = 0;
    }
  const std::vector<double> bf = dl::metrics::bf_scores(pred.v.data(), truth.v.data(), 100, 100, 2);
  EXPECT_NEAR(bf[0], 40.0 / 76.0, 1e-15);
  Reference ref(2);
  ref.add(pred, truth);
  EXPECT_NEAR(bf[1], ref.result().class_mean_bf_score[1], 1e-12);
}

TEST(SegmentationMetrics, MatchesBruteForceOnRandomMaps) {
  std::mt19937 rng(1234);
  const int num_classes = 6;
  const std::vector<int> classes = {0, 1, 2, 4};  // 3 and 5 never in the truth
  const std::vector<std::pair<int, int>> sizes = {{1, 9}, {7, 1}, {5, 6}, {23, 31}, {64, 48}, {96, 130}, {150, 200}};
  SegmentationEvaluator ev(num_classes);
  Reference ref(num_classes);
  for (int round = 0; round < 2; ++round)
    for (auto [h, w] : sizes) {
      const Map truth = random_truth(rng, h, w, classes);
      const Map pred = random_prediction(rng, truth, num_classes, classes);
      ev.add(to_tensor(pred), to_tensor(truth));
      ref.add(pred, truth);
      SCOPED_TRACE(std::to_string(h) + " x " + std::to_string(w));
      expect_same(ref.result(), ev.result());
    }
  EXPECT_EQ(ev.num_images(), 2 * static_cast<int64_t>(sizes.size()));
}

TEST(SegmentationMetrics, LargeMapMatchesBruteForce) {
  // 240 x 320: theta = 3, theta^2 = 9 (strict: distance 3 does not match).
  std::mt19937 rng(99);
  const std::vector<int> classes = {0, 1, 2, 3, 4, 5, 6};
  const Map truth = random_truth(rng, 240, 320, classes);
  const Map pred = random_prediction(rng, truth, 8, classes);
  SegmentationEvaluator ev(8);
  ev.add(to_tensor(pred), to_tensor(truth));
  Reference ref(8);
  ref.add(pred, truth);
  expect_same(ref.result(), ev.result());
}

TEST(SegmentationMetrics, BatchesBuffersAndMergeAgree) {
  std::mt19937 rng(7);
  const std::vector<int> classes = {0, 1, 2};
  std::vector<int32_t> p_all, t_all;
  SegmentationEvaluator one_by_one(3), from_u8(3), part_a(3), part_b(3);
  for (int i = 0; i < 3; ++i) {
    const Map t = random_truth(rng, 20, 30, classes), p = random_prediction(rng, t, 3, classes);
    std::vector<int32_t> p_clean = p.v;
    for (auto& v : p_clean) v = v >= 3 && v != kVoid ? kVoid : v;  // uint8 needs values < 256 anyway
    p_all.insert(p_all.end(), p_clean.begin(), p_clean.end());
    t_all.insert(t_all.end(), t.v.begin(), t.v.end());
    one_by_one.add(p_clean.data(), t.v.data(), 20, 30);
    std::vector<uint8_t> pu(p_clean.begin(), p_clean.end()), tu(t.v.begin(), t.v.end());
    from_u8.add(pu.data(), tu.data(), 20, 30);
    (i < 2 ? part_a : part_b).add(p_clean.data(), t.v.data(), 20, 30);
  }
  SegmentationEvaluator batched(3);
  batched.add(dl::Tensor::from_vector<int32_t>({3, 20, 30}, p_all),
              dl::Tensor::from_vector<int32_t>({3, 20, 30}, t_all).to(dl::DType::kUInt8));
  part_a.merge(part_b);
  for (const SegmentationEvaluator* e : {&from_u8, &batched, &part_a}) expect_same(one_by_one.result(), e->result());
}

TEST(SegmentationMetrics, BadLabelsAreErrorsNamingThem) {
  const Map truth = from_rows({{0, 1}, {kVoid, 1}});
  SegmentationEvaluator ev(2);
  try {
    ev.add(to_tensor(from_rows({{0, 5}, {9, 1}})), to_tensor(truth));
    FAIL() << "expected dl::Error";
  } catch (const dl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("predicted label 5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ev.add(to_tensor(from_rows({{0, 1}, {0, 1}})), to_tensor(from_rows({{0, 3}, {0, 1}}))), dl::Error);
  EXPECT_THROW(ev.add(to_tensor(from_rows({{0, 1, 1}})), to_tensor(from_rows({{0, 1}}))), dl::Error);
  EXPECT_EQ(ev.num_images(), 0);  // a failed add leaves the evaluator as it was
  for (int64_t v : ev.confusion()) EXPECT_EQ(v, 0);
  EXPECT_THROW(SegmentationEvaluator(0), dl::Error);
  EXPECT_THROW(SegmentationEvaluator(300), dl::Error);  // void label 255 would be a class
}

TEST(SegmentationMetrics, AllVoidImageScoresNothing) {
  SegmentationEvaluator ev(2);
  ev.add(to_tensor(from_rows({{0, 1}})), to_tensor(from_rows({{kVoid, kVoid}})));
  const SegmentationMetrics m = ev.result();
  EXPECT_TRUE(std::isnan(m.global_accuracy));
  EXPECT_TRUE(std::isnan(m.mean_iou));
  EXPECT_TRUE(std::isnan(m.mean_bf_score));
  EXPECT_TRUE(std::isnan(m.weighted_iou));
}

// ---- palette ----

TEST(CamVidPalette, TableAndRoundTrip) {
  using namespace dl::data;
  const auto colours = camvid_colours();
  ASSERT_EQ(colours.size(), 32u);
  std::vector<int> per_class(kCamVidNumClasses, 0);
  for (const auto& c : colours) {
    EXPECT_EQ(camvid_label_of(c.rgb), c.label) << c.camvid_name;
    if (c.label != kVoidLabel) ++per_class[c.label];
  }
  const std::vector<int> expected = {1, 5, 2, 3, 3, 2, 3, 1, 5, 4, 2};
  EXPECT_EQ(per_class, expected);
  const std::vector<std::string> names = {"Sky",        "Building", "Pole", "Road",       "Pavement", "Tree",
                                          "SignSymbol", "Fence",    "Car",  "Pedestrian", "Bicyclist"};
  EXPECT_EQ(camvid_class_names(), names);
  for (int c = 0; c < kCamVidNumClasses; ++c) {
    EXPECT_EQ(camvid_class_name(c), names[c]);
    EXPECT_EQ(camvid_label_of(camvid_colour_of(c)), c);
  }
  EXPECT_EQ(camvid_colour_of(0), (Rgb{128, 128, 128}));
  EXPECT_EQ(camvid_colour_of(1), (Rgb{0, 128, 64}));  // Bridge: the first listed colour of Building
  EXPECT_EQ(camvid_colour_of(8), (Rgb{64, 0, 128}));
  EXPECT_EQ(camvid_colour_of(kVoidLabel), (Rgb{0, 0, 0}));
  EXPECT_EQ(camvid_label_of({0, 0, 0}), kVoidLabel);
  EXPECT_EQ(camvid_label_of({64, 64, 64}), kVoidLabel);     // on the grid, not in the table
  EXPECT_EQ(camvid_label_of({129, 128, 128}), kVoidLabel);  // off the grid
  EXPECT_EQ(camvid_label_of({255, 255, 255}), kVoidLabel);
  EXPECT_THROW(camvid_class_name(11), dl::Error);
}

// ---- label PNGs and the evaluate example ----

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("dl_segmetrics_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

dl::Tensor random_labels(std::mt19937& rng, int h, int w, int num_classes) {
  std::vector<uint8_t> v(static_cast<size_t>(h) * w);
  for (auto& x : v) x = rng() % 10 == 0 ? kVoid : static_cast<uint8_t>(rng() % num_classes);
  dl::Tensor t = dl::Tensor::empty({h, w}, dl::DType::kUInt8);
  std::copy(v.begin(), v.end(), t.data<uint8_t>());
  return t;
}

void expect_equal_maps(const dl::Tensor& a, const dl::Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  const dl::Tensor x = a.to(dl::DType::kInt32), y = b.to(dl::DType::kInt32);
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(x.data<int32_t>()[i], y.data<int32_t>()[i]) << "pixel " << i;
}

TEST(LabelPng, RoundTripIndexAndRgb) {
  using namespace dl::data;
  TempDir dir;
  std::mt19937 rng(5);
  const dl::Tensor labels = random_labels(rng, 13, 17, kCamVidNumClasses);
  const std::string index_path = (dir.path() / "index.png").string(), rgb_path = (dir.path() / "rgb.png").string();
  write_label_png(index_path, labels, LabelPngFormat::kIndex);
  write_label_png(rgb_path, labels.to(dl::DType::kInt32), LabelPngFormat::kCamVidRgb);
  LabelPngFormat f1{}, f2{};
  expect_equal_maps(labels, read_label_png(index_path, &f1));
  expect_equal_maps(labels, read_label_png(rgb_path, &f2));
  EXPECT_EQ(f1, LabelPngFormat::kIndex);
  EXPECT_EQ(f2, LabelPngFormat::kCamVidRgb);
  // Index PNGs keep any 8-bit label, e.g. for more than 11 classes.
  const dl::Tensor many = random_labels(rng, 4, 5, 200);
  write_label_png(index_path, many, LabelPngFormat::kIndex);
  expect_equal_maps(many, read_label_png(index_path));
}

TEST(LabelPng, ErrorsNameTheFile) {
  using namespace dl::data;
  TempDir dir;
  const std::string missing = (dir.path() / "missing.png").string(), junk = (dir.path() / "junk.png").string();
  std::ofstream(junk) << "not a png";
  for (const std::string& p : {missing, junk}) {
    try {
      read_label_png(p);
      FAIL() << "expected dl::Error for " << p;
    } catch (const dl::Error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(write_label_png(junk, dl::Tensor::full({2, 2}, 300, dl::DType::kInt32), LabelPngFormat::kIndex),
               dl::Error);
}

// The error of add_label_folders (the empty string when none).
std::string folders_error(const fs::path& pred, const fs::path& truth, int classes = dl::data::kCamVidNumClasses) {
  SegmentationEvaluator ev(classes);
  try {
    dl::data::add_label_folders(pred.string(), truth.string(), ev);
  } catch (const dl::Error& e) {
    return e.what();
  }
  return "";
}

TEST(LabelFolders, MatchByNameAndScoreLikeTheEvaluator) {
  using namespace dl::data;
  TempDir dir;
  const fs::path pred = dir.path() / "pred", truth = dir.path() / "truth";
  fs::create_directories(pred);
  fs::create_directories(truth);
  std::mt19937 rng(11);
  SegmentationEvaluator expected(kCamVidNumClasses);
  const std::vector<int> classes = {0, 1, 3, 4, 5, 8, 9};  // 2, 6, 7 and 10 absent from the truth
  for (int i = 0; i < 4; ++i) {
    const Map t = random_truth(rng, 60, 80, classes);
    Map p = random_prediction(rng, t, kCamVidNumClasses, classes);
    for (auto& v : p.v) v = v >= kCamVidNumClasses ? kVoid : v;  // palette PNGs hold classes or void
    const std::string name = "img" + std::to_string(i);
    write_label_png((pred / (name + ".png")).string(), to_tensor(p), LabelPngFormat::kIndex);
    // Ground truth as CamVid RGB "_L" files, but for one as an index PNG with the plain name.
    write_label_png((truth / (i == 2 ? name + ".png" : name + "_L.png")).string(), to_tensor(t),
                    i == 2 ? LabelPngFormat::kIndex : LabelPngFormat::kCamVidRgb);
    expected.add(to_tensor(p), to_tensor(t));
  }
  SegmentationEvaluator got(kCamVidNumClasses);
  add_label_folders(pred.string(), truth.string(), got);
  const SegmentationMetrics m = expected.result(), g = got.result();
  expect_near_or_nan(m.global_accuracy, g.global_accuracy, "GlobalAccuracy");
  expect_near_or_nan(m.mean_iou, g.mean_iou, "MeanIoU");
  expect_near_or_nan(m.mean_bf_score, g.mean_bf_score, "MeanBFScore");
  for (size_t c = 0; c < m.class_iou.size(); ++c) expect_near_or_nan(m.class_iou[c], g.class_iou[c], "ClassIoU");
  EXPECT_EQ(m.confusion, g.confusion);
}

TEST(LabelFolders, ErrorsNameTheFile) {
  using namespace dl::data;
  TempDir dir;
  const fs::path pred = dir.path() / "pred", truth = dir.path() / "truth";
  EXPECT_NE(folders_error(pred, truth).find(pred.string()), std::string::npos);  // no folder
  fs::create_directories(pred);
  fs::create_directories(truth);
  write_label_png((pred / "a.png").string(), dl::Tensor::zeros({4, 4}, dl::DType::kUInt8), LabelPngFormat::kIndex);
  write_label_png((pred / "b.png").string(), dl::Tensor::zeros({4, 4}, dl::DType::kUInt8), LabelPngFormat::kIndex);
  write_label_png((truth / "a_L.png").string(), dl::Tensor::zeros({4, 4}, dl::DType::kUInt8),
                  LabelPngFormat::kCamVidRgb);
  EXPECT_NE(folders_error(pred, truth).find("b.png"), std::string::npos);  // b.png has no ground truth
  write_label_png((truth / "b.png").string(), dl::Tensor::zeros({4, 5}, dl::DType::kUInt8), LabelPngFormat::kIndex);
  EXPECT_NE(folders_error(pred, truth).find("4 x 5"), std::string::npos);  // size mismatch
  std::ofstream((truth / "b.png").string(), std::ios::trunc) << "junk";
  EXPECT_NE(folders_error(pred, truth).find((truth / "b.png").string()), std::string::npos);  // unreadable
  // A predicted label outside [0, C) names the files and the label.
  write_label_png((truth / "b.png").string(), dl::Tensor::zeros({4, 4}, dl::DType::kUInt8), LabelPngFormat::kIndex);
  write_label_png((pred / "b.png").string(), dl::Tensor::full({4, 4}, 12, dl::DType::kUInt8), LabelPngFormat::kIndex);
  const std::string bad = folders_error(pred, truth);
  EXPECT_NE(bad.find("predicted label 12"), std::string::npos) << bad;
  EXPECT_NE(bad.find("b.png"), std::string::npos) << bad;
  write_label_png((pred / "b.png").string(), dl::Tensor::zeros({4, 4}, dl::DType::kUInt8), LabelPngFormat::kIndex);
  EXPECT_EQ(folders_error(pred, truth), "");
}

}  // namespace
