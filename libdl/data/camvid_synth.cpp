// The synthetic CamVid generator (dl/data/camvid_synth.h): a painter's-algorithm street scene drawn
// into an image and its CamVid-coloured label map at once, then PNG files in CamVid's layout.
#include "dl/data/camvid_synth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "dl/core/error.h"
#include "dl/core/file_io.h"
#include "dl/core/rng.h"
#include "dl/data/camvid_palette.h"
#include "dl/data/image_io.h"

namespace fs = std::filesystem;

namespace dl::data {

namespace {

struct Col {
  float r = 0, g = 0, b = 0;
};
Col operator*(Col c, float s) { return {c.r * s, c.g * s, c.b * s}; }
Col operator+(Col a, Col b) { return {a.r + b.r, a.g + b.g, a.b + b.b}; }
Col grey(float v) { return {v, v, v}; }

// The palette colour of a CamVid class name ("Sky", "LaneMkgsDriv", ...).
Rgb palette(const char* name) {
  for (const auto& c : camvid_colours())
    if (std::string(c.camvid_name) == name) return c.rgb;
  DL_THROW("camvid_synth: no CamVid colour named ", name);
}

// ---- noise: integer hashes, smooth value noise ----
uint32_t hash3(uint32_t x, uint32_t y, uint32_t salt) {
  uint32_t h = x * 0x8da6b343u ^ y * 0xd8163841u ^ salt * 0xcb1ab31fu;
  h ^= h >> 15;
  h *= 0x2c1b3c6du;
  h ^= h >> 12;
  h *= 0x297a2d39u;
  h ^= h >> 15;
  return h;
}
float hash01(int64_t x, int64_t y, uint32_t salt) {
  return static_cast<float>(hash3(static_cast<uint32_t>(x), static_cast<uint32_t>(y), salt) >> 8) * 0x1.0p-24f;
}
// Smooth noise in [0, 1) with features about one unit apart.
float value_noise(float x, float y, uint32_t salt) {
  const float fx = std::floor(x), fy = std::floor(y);
  const int64_t ix = static_cast<int64_t>(fx), iy = static_cast<int64_t>(fy);
  float tx = x - fx, ty = y - fy;
  tx = tx * tx * (3 - 2 * tx);
  ty = ty * ty * (3 - 2 * ty);
  const float a = hash01(ix, iy, salt), b = hash01(ix + 1, iy, salt);
  const float c = hash01(ix, iy + 1, salt), d = hash01(ix + 1, iy + 1, salt);
  return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
}
float fbm(float x, float y, uint32_t salt) {
  return 0.6f * value_noise(x, y, salt) + 0.3f * value_noise(2.1f * x, 2.1f * y, salt + 1) +
         0.1f * value_noise(4.3f * x, 4.3f * y, salt + 2);
}

using Shade = std::function<Col(double x, double y)>;
using Inside = std::function<bool(double x, double y)>;

class Scene {
 public:
  Scene(int64_t h, int64_t w, uint64_t seed)
      : h_(h), w_(w), gen_(seed), img_(static_cast<size_t>(h * w)), lab_(static_cast<size_t>(h * w)) {}

  double u(double a, double b) { return a + (b - a) * gen_.uniform(); }
  bool chance(double p) { return gen_.uniform() < p; }
  uint32_t salt() { return static_cast<uint32_t>(gen_.next_u64()); }
  int64_t below(int64_t n) { return static_cast<int64_t>(gen_.below(static_cast<uint64_t>(n))); }
  Col jitter(Col c, float amount) {
    return {c.r + static_cast<float>(u(-amount, amount)), c.g + static_cast<float>(u(-amount, amount)),
            c.b + static_cast<float>(u(-amount, amount))};
  }

  // Paints the pixels of the box [x0, x1) x [y0, y1) whose centres are inside.
  void paint(double x0, double y0, double x1, double y1, Rgb label, const Inside& inside, const Shade& shade) {
    const int64_t ya = std::max<int64_t>(0, static_cast<int64_t>(std::floor(y0)));
    const int64_t yb = std::min<int64_t>(h_, static_cast<int64_t>(std::ceil(y1)));
    const int64_t xa = std::max<int64_t>(0, static_cast<int64_t>(std::floor(x0)));
    const int64_t xb = std::min<int64_t>(w_, static_cast<int64_t>(std::ceil(x1)));
    for (int64_t y = ya; y < yb; ++y)
      for (int64_t x = xa; x < xb; ++x) {
        const double cx = x + 0.5, cy = y + 0.5;
        if (!inside(cx, cy)) continue;
        img_[y * w_ + x] = shade(cx, cy);
        lab_[y * w_ + x] = label;
      }
  }
  void rect(double x0, double y0, double x1, double y1, Rgb label, const Shade& shade) {
    paint(
        x0, y0, x1, y1, label, [](double, double) { return true; }, shade);
  }
  void ellipse(double cx, double cy, double rx, double ry, Rgb label, const Shade& shade) {
    paint(
        cx - rx, cy - ry, cx + rx, cy + ry, label,
        [=](double x, double y) { return sq((x - cx) / rx) + sq((y - cy) / ry) <= 1.0; }, shade);
  }
  // A thick segment (capsule) of half-width r.
  void segment(double ax, double ay, double bx, double by, double r, Rgb label, const Shade& shade) {
    const double dx = bx - ax, dy = by - ay, len2 = std::max(1e-9, dx * dx + dy * dy);
    paint(
        std::min(ax, bx) - r, std::min(ay, by) - r, std::max(ax, bx) + r, std::max(ay, by) + r, label,
        [=](double x, double y) {
          const double t = std::clamp(((x - ax) * dx + (y - ay) * dy) / len2, 0.0, 1.0);
          return sq(x - ax - t * dx) + sq(y - ay - t * dy) <= r * r;
        },
        shade);
  }
  // Darkens the image only (shadows): the labels stay.
  void shadow(double cx, double cy, double rx, double ry, float factor) {
    for (int64_t y = std::max<int64_t>(0, int64_t(cy - ry)); y < std::min<int64_t>(h_, int64_t(cy + ry) + 1); ++y)
      for (int64_t x = std::max<int64_t>(0, int64_t(cx - rx)); x < std::min<int64_t>(w_, int64_t(cx + rx) + 1); ++x)
        if (sq((x + 0.5 - cx) / rx) + sq((y + 0.5 - cy) / ry) <= 1.0) img_[y * w_ + x] = img_[y * w_ + x] * factor;
  }

  static double sq(double v) { return v * v; }
  int64_t h_, w_;
  Generator gen_;
  std::vector<Col> img_;
  std::vector<Rgb> lab_;
};

// A shade: a base colour modulated by smooth noise of `scale` pixels and per-pixel noise.
Shade textured(Col base, float smooth_amp, float scale, float pixel_amp, uint32_t salt) {
  return [=](double x, double y) {
    const float s = fbm(static_cast<float>(x / scale), static_cast<float>(y / scale), salt) - 0.5f;
    const float p = hash01(static_cast<int64_t>(x), static_cast<int64_t>(y), salt ^ 0x5bd1e995u) - 0.5f;
    return base * (1.f + smooth_amp * s) + grey(pixel_amp * p);
  };
}

// The street: every quantity is a fraction of H or W, so one seed gives the same scene at any size.
void draw_street(Scene& sc) {
  const double H = static_cast<double>(sc.h_), W = static_cast<double>(sc.w_);
  const double px = W / 240.0;  // one pixel at the default size
  const double horizon = H * sc.u(0.36, 0.5);
  const double vx = W * sc.u(0.35, 0.65);
  const double slope = sc.u(0.1, 0.3) * H / W;
  auto base = [=](double x) { return horizon + slope * std::abs(x - vx); };  // building foot line
  const double xl_bottom = W * sc.u(-0.3, 0.2), xr_bottom = W * sc.u(0.8, 1.3);
  auto depth = [=](double y) { return std::clamp((y - horizon) / (H - horizon), 0.0, 1.2); };
  auto road_left = [=](double y) { return vx - 0.01 * W + depth(y) * (xl_bottom - vx + 0.01 * W); };
  auto road_right = [=](double y) { return vx + 0.01 * W + depth(y) * (xr_bottom - vx - 0.01 * W); };

  // Sky: a bluish-grey gradient with clouds.
  const Col sky_top = sc.jitter({125, 145, 185}, 20), sky_low = sc.jitter({185, 190, 200}, 15);
  const uint32_t cloud = sc.salt();
  const float cloud_amp = static_cast<float>(sc.u(10, 45));
  sc.rect(0, 0, W, H, palette("Sky"), [=](double x, double y) {
    const float t = static_cast<float>(std::clamp(y / horizon, 0.0, 1.0));
    const float c = fbm(static_cast<float>(x / (40 * px)), static_cast<float>(y / (20 * px)), cloud) - 0.4f;
    return sky_top * (1 - t) + sky_low * t + grey(cloud_amp * std::max(0.f, c));
  });

  // Buildings along the skyline, taller towards the sides (closer), with windows; some walls.
  const Col facades[] = {{150, 80, 60},   {190, 170, 140}, {130, 130, 135},
                         {205, 200, 190}, {95, 85, 80},    {160, 120, 90}};
  for (double x = -W * sc.u(0, 0.1); x < W;) {
    const double bw = W * sc.u(0.07, 0.22), x1 = x + bw;
    if (sc.chance(0.1)) {  // a gap showing the sky
      x = x1;
      continue;
    }
    const double side = std::abs(0.5 * (x + x1) - vx) / W;
    const bool wall = sc.chance(0.15);
    const double top = wall ? horizon - H * sc.u(0.02, 0.08) : horizon - H * sc.u(0.08, 0.33) * (1 + 1.2 * side);
    const Col facade = sc.jitter(facades[sc.below(6)], 18);
    const Col glass = sc.jitter({60, 72, 90}, 15);
    const double cell_w = bw / static_cast<double>(3 + sc.below(4)), cell_h = H * sc.u(0.04, 0.08);
    const double fill = sc.u(0.4, 0.7);
    const uint32_t s = sc.salt();
    const Shade wall_shade = textured(facade, 0.25f, static_cast<float>(6 * px), 14, s);
    const Shade shade = [=](double px_, double py) {
      const double fx = std::fmod(px_ - x, cell_w) / cell_w, fy = std::fmod(py - top, cell_h) / cell_h;
      if (!wall && fx > (1 - fill) / 2 && fx < (1 + fill) / 2 && fy > 0.3 && fy < 0.8 && py < base(px_) - cell_h)
        return glass + grey(30 * hash01(int64_t((px_ - x) / cell_w), int64_t((py - top) / cell_h), s));
      return wall_shade(px_, py);
    };
    const double foot = std::max(base(x), base(x1));
    sc.paint(
        x, top, x1, foot, palette(wall ? "Wall" : "Building"), [=](double px_, double py) { return py < base(px_); },
        shade);
    x = x1;
  }

  // Pavement below the building line, with tiles.
  const Col paving = sc.jitter({150, 148, 145}, 15);
  const double tile = sc.u(5, 10) * px;
  const Shade pave_tex = textured(paving, 0.2f, static_cast<float>(10 * px), 16, sc.salt());
  sc.paint(
      0, horizon, W, H, palette("Sidewalk"), [=](double x, double y) { return y >= base(x); },
      [=](double x, double y) {
        const bool joint = std::fmod(x, tile) < 0.8 * px || std::fmod(y, tile * 0.7) < 0.8 * px;
        return pave_tex(x, y) * (joint ? 0.8f : 1.f);
      });

  // Road (with a road shoulder sometimes), dark and textured.
  const bool shoulder = sc.chance(0.3);
  const double shoulder_w = sc.u(0.02, 0.05);
  const Col asphalt = sc.jitter(grey(static_cast<float>(sc.u(62, 95))), 6);
  const Shade road_tex = textured(asphalt, 0.3f, static_cast<float>(12 * px), 22, sc.salt());
  if (shoulder)
    sc.paint(
        0, horizon, W, H, palette("RoadShoulder"),
        [=](double x, double y) {
          const double m = shoulder_w * (road_right(y) - road_left(y));
          return y > horizon && x >= road_left(y) - m && x < road_right(y) + m;
        },
        textured(asphalt * 1.35f, 0.3f, static_cast<float>(6 * px), 18, sc.salt()));
  sc.paint(
      0, horizon, W, H, palette("Road"),
      [=](double x, double y) { return y > horizon && x >= road_left(y) && x < road_right(y); }, road_tex);

  // Lane marks: a dashed centre line and, sometimes, solid edge lines.
  const double xc_bottom = 0.5 * (xl_bottom + xr_bottom) + W * sc.u(-0.1, 0.1);
  const double dash_freq = sc.u(2.5, 4.0), dash_phase = sc.u(0, 1);
  const Col paint_col = sc.chance(0.2) ? Col{215, 200, 120} : sc.jitter(grey(225), 10);
  const Shade mark_tex = textured(paint_col, 0.15f, static_cast<float>(4 * px), 20, sc.salt());
  sc.paint(
      0, horizon, W, H, palette("LaneMkgsDriv"),
      [=](double x, double y) {
        const double t = depth(y);
        const double xc = vx + t * (xc_bottom - vx), half = std::max(0.45 * px, t * W * 0.012);
        const double phase = std::log(t + 0.03) * dash_freq + dash_phase;
        return y > horizon && std::abs(x - xc) < half && phase - std::floor(phase) < 0.55;
      },
      mark_tex);
  if (sc.chance(0.6))
    sc.paint(
        0, horizon, W, H, palette("LaneMkgsDriv"),
        [=](double x, double y) {
          const double l = road_left(y), r = road_right(y), m = 0.04 * (r - l),
                       half = std::max(0.4 * px, depth(y) * W * 0.007);
          return y > horizon && (std::abs(x - (l + m)) < half || std::abs(x - (r - m)) < half);
        },
        mark_tex);

  // Fence along the building line on one side.
  if (sc.chance(0.5)) {
    const bool left = sc.chance(0.5);
    const double x0 = left ? 0 : vx + W * sc.u(0.05, 0.2), x1 = left ? vx - W * sc.u(0.05, 0.2) : W;
    const double fh = H * sc.u(0.03, 0.06), period = sc.u(4, 9) * px;
    const Shade tex = textured(sc.chance(0.5) ? sc.jitter({120, 95, 70}, 15) : sc.jitter(grey(140), 15), 0.2f,
                               static_cast<float>(5 * px), 14, sc.salt());
    sc.paint(
        x0, horizon - 4 * fh, x1, H, palette("Fence"),
        [=](double x, double y) {
          const double g = base(x) + 2 * px, hh = fh * (1 + 3 * std::abs(x - vx) / W);
          if (y > g || y < g - hh) return false;
          const double f = (g - y) / hh;
          return std::fmod(x, period) < 0.35 * period || std::abs(f - 0.3) < 0.08 || std::abs(f - 0.85) < 0.08;
        },
        tex);
  }

  // Standing objects, drawn far to near. Each draws at a ground row y_g with scale s = depth(y_g).
  std::vector<std::pair<double, std::function<void()>>> objects;
  auto beside_road = [&](double y, double s) {
    return sc.chance(0.5) ? road_left(y) - W * sc.u(0.02, 0.25) * s : road_right(y) + W * sc.u(0.02, 0.25) * s;
  };
  auto on_road = [&](double y, double lo, double hi) {
    return road_left(y) + (road_right(y) - road_left(y)) * sc.u(lo, hi);
  };

  for (int64_t n = sc.below(5), i = 0; i < n; ++i) {  // trees
    const double y = horizon + (H - horizon) * sc.u(0.05, 0.9), s = depth(y), x = beside_road(y, s);
    const double r = H * sc.u(0.12, 0.25) * s * 1.6, trunk = H * sc.u(0.2, 0.4) * s * 1.6;
    const Col leaves = sc.jitter({70, 110, 50}, 20), bark = sc.jitter({90, 70, 50}, 12);
    const uint32_t s1 = sc.salt(), s2 = sc.salt();
    const Rgb label = sc.chance(0.2) ? palette("VegetationMisc") : palette("Tree");
    objects.push_back(
        {y, [=, &sc] {
           sc.rect(x - 0.08 * r, y - trunk, x + 0.08 * r, y, palette("Tree"), textured(bark, 0.3f, 3, 12, s1));
           const double cy = y - trunk - 0.6 * r;
           const Shade leaf_tex = textured(leaves, 0.8f, static_cast<float>(std::max(2.0, 0.15 * r)), 25, s2);
           sc.paint(
               x - 1.3 * r, cy - 1.3 * r, x + 1.3 * r, cy + 1.3 * r, label,
               [=](double px_, double py) {
                 const double a = std::atan2(py - cy, px_ - x);
                 const double edge = 1 + 0.25 * (value_noise(static_cast<float>(3 * a + 10), 0.5f, s1) - 0.5);
                 return Scene::sq((px_ - x) / r) + Scene::sq((py - cy) / (0.85 * r)) <= edge * edge;
               },
               leaf_tex);
         }});
  }
  if (sc.chance(0.4)) {  // a row of bushes along the building line
    const double x0 = W * sc.u(0, 0.6), len = W * sc.u(0.1, 0.4), bh = H * sc.u(0.02, 0.05);
    const Shade tex = textured(sc.jitter({85, 120, 55}, 20), 0.7f, static_cast<float>(3 * px), 20, sc.salt());
    const uint32_t s = sc.salt();
    objects.push_back({base(x0), [=, &sc] {
                         sc.paint(
                             x0, horizon - 10 * bh, x0 + len, H, palette("VegetationMisc"),
                             [=](double x, double y) {
                               const double g = base(x) + px,
                                            top = g -
                                                  bh * (1 + 3 * std::abs(x - vx) / W) *
                                                      (0.6 + 0.8 * value_noise(static_cast<float>(x / (4 * px)), 0, s));
                               return y <= g && y >= top;
                             },
                             tex);
                       }});
  }
  for (int64_t n = 1 + sc.below(4), i = 0; i < n; ++i) {  // poles, with a sign or a traffic light
    const double y = horizon + (H - horizon) * sc.u(0.05, 0.95), s = depth(y), x = beside_road(y, s);
    const double ph = H * sc.u(0.5, 0.9) * s * 1.6, pw = std::max(0.8 * px, 0.016 * W * s);
    const Col metal = sc.jitter(grey(120), 20);
    const int64_t draw = sc.below(4);
    const int top_kind = draw == 0 ? 0 : draw == 3 ? 2 : 1;  // nothing 1/4, a sign 1/2, a traffic light 1/4
    const Col sign_cols[] = {{200, 40, 40}, {40, 70, 180}, {230, 230, 230}, {230, 190, 40}};
    const Col sign = sc.jitter(sign_cols[sc.below(4)], 15);
    const bool round = sc.chance(0.5);
    const double ss = 0.05 * W * s * 1.5;
    const uint32_t salt = sc.salt();
    objects.push_back(
        {y, [=, &sc] {
           sc.rect(x - pw / 2, y - ph, x + pw / 2, y, palette("Column_Pole"), textured(metal, 0.2f, 3, 10, salt));
           if (top_kind == 1 && round)
             sc.ellipse(x, y - ph - ss * 0.6, ss, ss, palette("SignSymbol"), textured(sign, 0.1f, 3, 12, salt));
           if (top_kind == 1 && !round)
             sc.rect(x - ss, y - ph - 1.2 * ss, x + ss, y - ph, palette("SignSymbol"),
                     textured(sign, 0.1f, 3, 12, salt));
           if (top_kind == 2) {
             sc.rect(x - 0.45 * ss, y - ph - 2.2 * ss, x + 0.45 * ss, y - ph, palette("TrafficLight"),
                     textured(grey(35), 0.1f, 3, 8, salt));
             const Col lit = (salt & 1) ? Col{230, 60, 40} : Col{60, 220, 90};
             sc.ellipse(x, y - ph - (salt & 1 ? 1.7 : 0.5) * ss, 0.3 * ss, 0.3 * ss, palette("TrafficLight"),
                        [=](double, double) { return lit; });
           }
         }});
  }
  for (int64_t n = sc.below(5), i = 0; i < n; ++i) {  // cars, SUVs, buses
    const double y = horizon + (H - horizon) * sc.u(0.08, 1.05), s = depth(y), x = on_road(y, 0.15, 0.85);
    const int kind = sc.chance(0.7) ? 0 : (sc.chance(0.65) ? 1 : 2);
    const double cw = W * 0.42 * s * (kind == 2 ? 1.3 : 1.0) * sc.u(0.85, 1.1);
    const double ch = cw * (kind == 0 ? sc.u(0.45, 0.55) : kind == 1 ? sc.u(0.6, 0.7) : sc.u(0.8, 0.95));
    const Col bodies[] = {{170, 30, 30}, {30, 60, 150}, {220, 220, 220}, {30, 30, 32}, {160, 162, 165}, {200, 170, 40}};
    const Col body = sc.jitter(bodies[sc.below(6)], 15), glass = sc.jitter({45, 55, 70}, 10);
    const char* name = kind == 0 ? "Car" : kind == 1 ? "SUVPickupTruck" : "Truck_Bus";
    const uint32_t salt = sc.salt();
    objects.push_back({y, [=, &sc] {
                         const Rgb l = palette(name);
                         sc.shadow(x, y, 0.6 * cw, 0.08 * ch, 0.55f);
                         const Shade paint_tex = textured(body, 0.15f, static_cast<float>(0.3 * cw), 10, salt);
                         const double cabin = kind == 2 ? 0.0 : 0.15 * cw;
                         sc.paint(
                             x - cw / 2, y - ch, x + cw / 2, y - 0.12 * ch, l,
                             [=](double px_, double py) {
                               if (py > y - 0.6 * ch) return true;  // lower body
                               const double inset = cabin * (y - 0.6 * ch - py) / (0.4 * ch) + 0.05 * cw;
                               return std::abs(px_ - x) < cw / 2 - inset;
                             },
                             [=](double px_, double py) {
                               const bool window = py < y - 0.65 * ch && py > y - 0.95 * ch &&
                                                   std::abs(px_ - x) < cw / 2 - cabin - 0.1 * cw;
                               return window ? glass + grey(25 * hash01(0, int64_t(py), salt)) : paint_tex(px_, py);
                             });
                         for (double side : {-1.0, 1.0})
                           sc.ellipse(x + side * 0.32 * cw, y - 0.12 * ch, 0.11 * cw, 0.13 * ch, l,
                                      textured(grey(25), 0.2f, 2, 8, salt));
                         sc.rect(x - 0.45 * cw, y - 0.45 * ch, x - 0.35 * cw, y - 0.38 * ch, l, [](double, double) {
                           return Col{230, 200, 120};
                         });
                       }});
  }
  for (int64_t n = sc.below(4), i = 0; i < n; ++i) {  // pedestrians (adults, children)
    const double y = horizon + (H - horizon) * sc.u(0.05, 1.0), s = depth(y),
                 x = beside_road(y, s) * 0.5 + 0.5 * (sc.chance(0.5) ? road_left(y) : road_right(y));
    const bool child = sc.chance(0.25);
    const double ph = H * 0.55 * s * 1.5 * (child ? 0.6 : sc.u(0.9, 1.1)), pw = 0.28 * ph;
    const Col skin = sc.jitter({200, 160, 130}, 30), top = sc.jitter({90, 90, 120}, 70),
              legs = sc.jitter({50, 50, 60}, 20);
    const uint32_t salt = sc.salt();
    const double stride = sc.u(-0.12, 0.12) * ph;
    objects.push_back(
        {y, [=, &sc] {
           const Rgb l = palette(child ? "Child" : "Pedestrian");
           const double r = std::max(0.5 * px, 0.06 * ph);
           sc.segment(x - 0.1 * pw, y - 0.5 * ph, x - 0.1 * pw + stride, y - r, r, l, textured(legs, 0.2f, 2, 8, salt));
           sc.segment(x + 0.1 * pw, y - 0.5 * ph, x + 0.1 * pw - stride, y - r, r, l, textured(legs, 0.2f, 2, 8, salt));
           sc.rect(x - pw / 2, y - 0.85 * ph, x + pw / 2, y - 0.45 * ph, l, textured(top, 0.2f, 3, 10, salt));
           sc.ellipse(x, y - 0.92 * ph, 0.09 * ph, 0.08 * ph, l, textured(skin, 0.1f, 2, 8, salt));
         }});
  }
  for (int64_t n = sc.chance(0.6) ? 1 + sc.below(2) : 0, i = 0; i < n; ++i) {  // cyclists
    const double y = horizon + (H - horizon) * sc.u(0.1, 1.0), s = depth(y);
    const double x = sc.chance(0.5) ? on_road(y, 0.04, 0.2) : on_road(y, 0.8, 0.96);
    const double size = H * 0.5 * s * 1.5, wr = 0.2 * size, t = std::max(0.5 * px, 0.03 * size);
    const Col frame = sc.jitter({150, 40, 40}, 60), clothes = sc.jitter({60, 90, 140}, 60);
    const char* name = sc.chance(0.2) ? "MotorcycleScooter" : "Bicyclist";
    const uint32_t salt = sc.salt();
    objects.push_back(
        {y, [=, &sc] {
           const Rgb l = palette(name);
           const Shade dark = textured(grey(30), 0.2f, 2, 8, salt), metal = textured(frame, 0.2f, 2, 8, salt);
           for (double side : {-1.0, 1.0}) {
             const double cx = x + side * 0.35 * size, cy = y - wr;
             sc.paint(
                 cx - wr, cy - wr, cx + wr, cy + wr, l,
                 [=](double px_, double py) { return std::abs(std::hypot(px_ - cx, py - cy) - wr + t) < t; }, dark);
           }
           sc.segment(x - 0.35 * size, y - wr, x, y - 0.5 * size, t, l, metal);
           sc.segment(x + 0.35 * size, y - wr, x, y - 0.5 * size, t, l, metal);
           sc.segment(x, y - 0.5 * size, x + 0.05 * size, y - 0.85 * size, 0.09 * size, l,
                      textured(clothes, 0.2f, 3, 10, salt));
           sc.ellipse(x + 0.08 * size, y - 0.97 * size, 0.08 * size, 0.08 * size, l,
                      textured({190, 150, 120}, 0.1f, 2, 8, salt));
         }});
  }
  for (int64_t n = sc.chance(0.5) ? 1 + sc.below(2) : 0, i = 0; i < n; ++i) {  // unlabelled clutter: void
    const double y = horizon + (H - horizon) * sc.u(0.1, 1.0), s = depth(y), x = beside_road(y, s);
    const double bw = W * sc.u(0.03, 0.08) * s * 1.5, bh = bw * sc.u(0.8, 2.0);
    const Shade tex = textured(sc.jitter(grey(110), 50), 0.3f, 3, 14, sc.salt());
    objects.push_back({y, [=, &sc] { sc.rect(x - bw / 2, y - bh, x + bw / 2, y, palette("Void"), tex); }});
  }
  std::stable_sort(objects.begin(), objects.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& o : objects) o.second();
}

// Void along some class boundaries (as in CamVid's hand labelling), then lighting and sensor noise.
void finish(Scene& sc, std::vector<uint8_t>& image, std::vector<uint8_t>& label_rgb) {
  const int64_t h = sc.h_, w = sc.w_;
  const double boundary_void = sc.u(0.0, 0.6);
  std::vector<Rgb> lab = sc.lab_;
  for (int64_t y = 0; y + 1 < h; ++y)
    for (int64_t x = 0; x + 1 < w; ++x) {
      const Rgb c = sc.lab_[y * w + x];
      if ((c != sc.lab_[y * w + x + 1] || c != sc.lab_[(y + 1) * w + x]) && sc.chance(boundary_void))
        lab[y * w + x] = Rgb{0, 0, 0};
    }
  const float brightness = static_cast<float>(sc.u(0.75, 1.15));
  const float cast[3] = {static_cast<float>(sc.u(0.92, 1.08)), static_cast<float>(sc.u(0.92, 1.08)),
                         static_cast<float>(sc.u(0.92, 1.08))};
  const float sigma = static_cast<float>(sc.u(2, 7)), vignette = static_cast<float>(sc.u(0, 0.35));
  image.resize(static_cast<size_t>(h * w * 3));
  label_rgb.resize(static_cast<size_t>(h * w * 3));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t i = y * w + x;
      const float dx = (x + 0.5f) / w - 0.5f, dy = (y + 0.5f) / h - 0.5f;
      const float light = brightness * (1 - vignette * (dx * dx + dy * dy) * 2);
      const Col c = sc.img_[i];
      const float v[3] = {c.r, c.g, c.b};
      for (int k = 0; k < 3; ++k) {
        const float out = v[k] * light * cast[k] + sigma * static_cast<float>(sc.gen_.normal());
        image[3 * i + k] = static_cast<uint8_t>(std::clamp(std::lround(out), 0L, 255L));
      }
      label_rgb[3 * i] = lab[i].r;
      label_rgb[3 * i + 1] = lab[i].g;
      label_rgb[3 * i + 2] = lab[i].b;
    }
}

// Atomically (dl::write_file_atomically): never a partial file under the final name.
void write_png_atomic(const fs::path& path, int64_t h, int64_t w, const std::vector<uint8_t>& rgb) {
  write_png(path.string(), rgb.data(), h, w, 3);
}

std::string stamp_text(const SynthOptions& o) {
  std::ostringstream s;
  s << "images " << o.images << " size " << o.height << "x" << o.width << " seed " << o.seed << "\n";
  return s.str();
}

const char* kStampFile = "synthetic_camvid.txt";

}  // namespace

SynthScene render_synthetic_scene(int64_t height, int64_t width, uint64_t seed, int64_t index) {
  DL_CHECK(height >= 8 && width >= 8, "render_synthetic_scene: size ", height, "x", width, " is below 8x8");
  const uint64_t mixed =
      (seed + 0x9e3779b97f4a7c15ULL) * 0xbf58476d1ce4e5b9ULL ^ static_cast<uint64_t>(index + 1) * 0x94d049bb133111ebULL;
  Scene sc(height, width, mixed);
  draw_street(sc);
  SynthScene out;
  out.height = height;
  out.width = width;
  finish(sc, out.image, out.label_rgb);
  return out;
}

std::string synthetic_camvid_name(int64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "Synth_%05lld", static_cast<long long>(index + 1));
  return buf;
}

void write_synthetic_camvid(const std::string& dir, const SynthOptions& o) {
  DL_CHECK(o.images > 0, "write_synthetic_camvid: expected a positive image count, got ", o.images);
  const fs::path root(dir), images = root / "701_StillsRaw_full", labels = root / "LabeledApproved_full";
  std::error_code ec;
  fs::create_directories(images, ec);
  DL_CHECK(!ec, "write_synthetic_camvid: cannot create ", images.string(), ": ", ec.message());
  fs::create_directories(labels, ec);
  DL_CHECK(!ec, "write_synthetic_camvid: cannot create ", labels.string(), ": ", ec.message());
  fs::remove(root / kStampFile, ec);
  // Scenes of an earlier, larger set would otherwise stay beside the new ones.
  for (const fs::path& d : {images, labels})
    for (const auto& e : fs::directory_iterator(d))
      if (e.path().filename().string().rfind("Synth_", 0) == 0) fs::remove(e.path(), ec);

  std::vector<std::string> errors(static_cast<size_t>(o.images));
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < o.images; ++i) {
    try {
      const SynthScene s = render_synthetic_scene(o.height, o.width, o.seed, i);
      const std::string name = synthetic_camvid_name(i);
      write_png_atomic(images / (name + ".png"), s.height, s.width, s.image);
      write_png_atomic(labels / (name + "_L.png"), s.height, s.width, s.label_rgb);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  }
  for (const auto& e : errors)
    if (!e.empty()) throw Error(e);

  write_file_atomically((root / kStampFile).string(), stamp_text(o));
}

bool ensure_synthetic_camvid(const std::string& dir, const SynthOptions& o) {
  const std::string stamp = (fs::path(dir) / kStampFile).string();
  if (fs::is_regular_file(stamp) && read_file(stamp, "data set stamp", 4096) == stamp_text(o)) return false;
  write_synthetic_camvid(dir, o);
  return true;
}

}  // namespace dl::data
