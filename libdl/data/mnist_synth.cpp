// Generated MNIST-format digits (see dl/data/mnist_synth.h).
#include "dl/data/mnist_synth.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "dl/core/error.h"
#include "dl/core/rng.h"
#include "dl/data/idx.h"

namespace dl::data {

namespace {

struct Pt {
  double x, y;  // in the unit box, y down
};
using Stroke = std::vector<Pt>;

// Each digit as pen strokes (polylines) in the unit box.
const std::vector<Stroke>& strokes_of(int label) {
  static const std::vector<std::vector<Stroke>> kDigits = {
      {{{0.5, 0.1},
        {0.75, 0.2},
        {0.8, 0.5},
        {0.75, 0.8},
        {0.5, 0.9},
        {0.25, 0.8},
        {0.2, 0.5},
        {0.25, 0.2},
        {0.5, 0.1}}},
      {{{0.35, 0.25}, {0.55, 0.1}, {0.55, 0.9}}},
      {{{0.2, 0.25}, {0.45, 0.1}, {0.75, 0.2}, {0.7, 0.45}, {0.2, 0.9}, {0.8, 0.9}}},
      {{{0.2, 0.15}, {0.75, 0.12}, {0.45, 0.45}, {0.78, 0.65}, {0.6, 0.88}, {0.2, 0.82}}},
      {{{0.65, 0.9}, {0.65, 0.1}, {0.2, 0.62}, {0.85, 0.62}}},
      {{{0.78, 0.1}, {0.28, 0.1}, {0.24, 0.45}, {0.65, 0.42}, {0.8, 0.65}, {0.6, 0.9}, {0.2, 0.85}}},
      {{{0.7, 0.1}, {0.35, 0.35}, {0.22, 0.7}, {0.45, 0.9}, {0.75, 0.78}, {0.7, 0.52}, {0.3, 0.55}}},
      {{{0.2, 0.12}, {0.8, 0.12}, {0.42, 0.9}}, {{0.4, 0.5}, {0.7, 0.5}}},
      {{{0.5, 0.1}, {0.75, 0.25}, {0.5, 0.47}, {0.25, 0.25}, {0.5, 0.1}},
       {{0.5, 0.47}, {0.8, 0.7}, {0.5, 0.9}, {0.2, 0.7}, {0.5, 0.47}}},
      {{{0.75, 0.42}, {0.35, 0.45}, {0.25, 0.22}, {0.5, 0.1}, {0.75, 0.2}, {0.75, 0.42}, {0.65, 0.9}}},
  };
  return kDigits[static_cast<size_t>(label)];
}

double segment_distance(double px, double py, Pt a, Pt b) {
  const double dx = b.x - a.x, dy = b.y - a.y;
  const double len2 = dx * dx + dy * dy;
  const double t = len2 > 0 ? std::clamp(((px - a.x) * dx + (py - a.y) * dy) / len2, 0.0, 1.0) : 0.0;
  const double ex = a.x + t * dx - px, ey = a.y + t * dy - py;
  return std::sqrt(ex * ex + ey * ey);
}

}  // namespace

std::vector<uint8_t> render_synthetic_digit(int label, uint64_t seed, int64_t index) {
  DL_CHECK(label >= 0 && label <= 9, "render_synthetic_digit: expected a label in 0..9, got ", label);
  Generator g(seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(index) * 0xbf58476d1ce4e5b9ULL + 1);
  const double scale = 17.0 + 4.0 * g.uniform();  // digit height in pixels
  const double aspect = 0.8 + 0.4 * g.uniform();
  const double angle = (g.uniform() - 0.5) * 0.4, slant = (g.uniform() - 0.5) * 0.5;
  const double cx = 14.0 + (g.uniform() - 0.5) * 4.0, cy = 14.0 + (g.uniform() - 0.5) * 4.0;
  const double pen = 0.9 + 1.1 * g.uniform();
  const double ca = std::cos(angle), sa = std::sin(angle);
  // The strokes mapped to pixel coordinates, each point jittered a little (a hand is not a plotter).
  std::vector<Stroke> strokes;
  for (const Stroke& s : strokes_of(label)) {
    Stroke m;
    for (const Pt& p : s) {
      const double u = (p.x - 0.5 + 0.03 * g.normal()) * scale * aspect, v = (p.y - 0.5 + 0.03 * g.normal()) * scale;
      const double su = u + slant * v;
      m.push_back({cx + ca * su - sa * v, cy + sa * su + ca * v});
    }
    strokes.push_back(std::move(m));
  }
  std::vector<uint8_t> px(28 * 28);
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x) {
      double d = 1e9;
      for (const Stroke& s : strokes)
        for (size_t k = 1; k < s.size(); ++k) d = std::min(d, segment_distance(x + 0.5, y + 0.5, s[k - 1], s[k]));
      const double ink = std::clamp(pen + 0.5 - d, 0.0, 1.0) + 0.08 * g.normal();
      px[static_cast<size_t>(y * 28 + x)] = static_cast<uint8_t>(std::lround(std::clamp(ink, 0.0, 1.0) * 255.0));
    }
  return px;
}

void write_synthetic_mnist(const std::string& dir, const SynthMnistOptions& o) {
  DL_CHECK(o.train > 0 && o.test > 0 && o.train <= 1000000 && o.test <= 1000000,
           "write_synthetic_mnist: expected 1 to 10^6 training and test images, got ", o.train, " and ", o.test);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  DL_CHECK(!ec, "write_synthetic_mnist: cannot create '", dir, "': ", ec.message());
  const auto write_split = [&](const char* prefix, int64_t n, uint64_t seed) {
    std::vector<uint8_t> images(static_cast<size_t>(n) * 784), labels(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const int label = static_cast<int>(i % 10);
      const std::vector<uint8_t> px = render_synthetic_digit(label, seed, i);
      std::copy(px.begin(), px.end(), images.begin() + i * 784);
      labels[static_cast<size_t>(i)] = static_cast<uint8_t>(label);
    }
    const std::string base = dir + "/" + prefix;
    write_idx_u8(base + "-images-idx3-ubyte", {n, 28, 28}, images);
    write_idx_u8(base + "-labels-idx1-ubyte", {n}, labels);
  };
  write_split("train", o.train, o.seed);
  write_split("t10k", o.test, o.seed + 0x5eed);
}

}  // namespace dl::data
