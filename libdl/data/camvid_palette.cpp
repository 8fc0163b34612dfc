// The CamVid colour table and the colour <-> class conversions.
#include "dl/data/camvid_palette.h"

#include <array>

#include "dl/core/error.h"

namespace dl::data {

namespace {

constexpr std::array<CamVidColour, 32> kColours = {{
    {"Sky", {128, 128, 128}, 0},
    {"Bridge", {0, 128, 64}, 1},
    {"Building", {128, 0, 0}, 1},
    {"Wall", {64, 192, 0}, 1},
    {"Tunnel", {64, 0, 64}, 1},
    {"Archway", {192, 0, 128}, 1},
    {"Column_Pole", {192, 192, 128}, 2},
    {"TrafficCone", {0, 0, 64}, 2},
    {"Road", {128, 64, 128}, 3},
    {"LaneMkgsDriv", {128, 0, 192}, 3},
    {"LaneMkgsNonDriv", {192, 0, 64}, 3},
    {"Sidewalk", {0, 0, 192}, 4},
    {"ParkingBlock", {64, 192, 128}, 4},
    {"RoadShoulder", {128, 128, 192}, 4},
    {"Tree", {128, 128, 0}, 5},
    {"VegetationMisc", {192, 192, 0}, 5},
    {"SignSymbol", {192, 128, 128}, 6},
    {"Misc_Text", {128, 128, 64}, 6},
    {"TrafficLight", {0, 64, 64}, 6},
    {"Fence", {64, 64, 128}, 7},
    {"Car", {64, 0, 128}, 8},
    {"SUVPickupTruck", {64, 128, 192}, 8},
    {"Truck_Bus", {192, 128, 192}, 8},
    {"Train", {192, 64, 128}, 8},
    {"OtherMoving", {128, 64, 64}, 8},
    {"Pedestrian", {64, 64, 0}, 9},
    {"Child", {192, 128, 64}, 9},
    {"CartLuggagePram", {64, 0, 192}, 9},
    {"Animal", {64, 128, 64}, 9},
    {"Bicyclist", {0, 128, 192}, 10},
    {"MotorcycleScooter", {192, 0, 192}, 10},
    {"Void", {0, 0, 0}, kVoidLabel},
}};

constexpr std::array<const char*, kCamVidNumClasses> kClassNames = {
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"};

// Every CamVid colour has components in {0, 64, 128, 192}: a colour is looked up by its three 2-bit
// digits (a 64-entry table) once its low six bits are known to be zero.
constexpr std::array<uint8_t, 64> make_lookup() {
  std::array<uint8_t, 64> t{};
  for (auto& v : t) v = kVoidLabel;
  for (const auto& c : kColours) t[(c.rgb.r >> 6) * 16 + (c.rgb.g >> 6) * 4 + (c.rgb.b >> 6)] = c.label;
  return t;
}
constexpr std::array<uint8_t, 64> kLookup = make_lookup();

inline uint8_t lookup(uint8_t r, uint8_t g, uint8_t b) {
  if ((r | g | b) & 0x3f) return kVoidLabel;
  return kLookup[(r >> 6) * 16 + (g >> 6) * 4 + (b >> 6)];
}

constexpr std::array<Rgb, kCamVidNumClasses> make_display() {
  std::array<Rgb, kCamVidNumClasses> d{};
  std::array<bool, kCamVidNumClasses> seen{};
  for (const auto& c : kColours)
    if (c.label < kCamVidNumClasses && !seen[c.label]) {
      d[c.label] = c.rgb;
      seen[c.label] = true;
    }
  return d;
}
constexpr std::array<Rgb, kCamVidNumClasses> kDisplay = make_display();

}  // namespace

std::span<const CamVidColour> camvid_colours() { return kColours; }

uint8_t camvid_label_of(Rgb colour) { return lookup(colour.r, colour.g, colour.b); }

Rgb camvid_colour_of(int label) {
  if (label < 0 || label >= kCamVidNumClasses) return {0, 0, 0};
  return kDisplay[label];
}

const char* camvid_class_name(int label) {
  DL_CHECK(label >= 0 && label < kCamVidNumClasses, "camvid_class_name: label ", label, " is not a class in [0, ",
           kCamVidNumClasses, ")");
  return kClassNames[label];
}

std::vector<std::string> camvid_class_names() { return {kClassNames.begin(), kClassNames.end()}; }

void camvid_rgb_to_labels(const uint8_t* rgb, int64_t pixels, int channels, uint8_t* labels) {
  DL_CHECK(channels == 3 || channels == 4, "camvid_rgb_to_labels: expected 3 or 4 channels, got ", channels);
  for (int64_t i = 0; i < pixels; ++i) {
    const uint8_t* p = rgb + i * channels;
    labels[i] = lookup(p[0], p[1], p[2]);
  }
}

void camvid_labels_to_rgb(const uint8_t* labels, int64_t pixels, uint8_t* rgb) {
  for (int64_t i = 0; i < pixels; ++i) {
    const Rgb c = camvid_colour_of(labels[i]);
    rgb[3 * i] = c.r;
    rgb[3 * i + 1] = c.g;
    rgb[3 * i + 2] = c.b;
  }
}

}  // namespace dl::data
