// The CamVid colour table: the 32 colours of the CamVid label images (31 named classes and Void)
// grouped into the 11 classes of the segmentation task (issue 4), any other colour being void.
//
//   class 0 Sky         Sky (128,128,128)
//   class 1 Building    Bridge (0,128,64), Building (128,0,0), Wall (64,192,0), Tunnel (64,0,64),
//                       Archway (192,0,128)
//   class 2 Pole        Column_Pole (192,192,128), TrafficCone (0,0,64)
//   class 3 Road        Road (128,64,128), LaneMkgsDriv (128,0,192), LaneMkgsNonDriv (192,0,64)
//   class 4 Pavement    Sidewalk (0,0,192), ParkingBlock (64,192,128), RoadShoulder (128,128,192)
//   class 5 Tree        Tree (128,128,0), VegetationMisc (192,192,0)
//   class 6 SignSymbol  SignSymbol (192,128,128), Misc_Text (128,128,64), TrafficLight (0,64,64)
//   class 7 Fence       Fence (64,64,128)
//   class 8 Car         Car (64,0,128), SUVPickupTruck (64,128,192), Truck_Bus (192,128,192),
//                       Train (192,64,128), OtherMoving (128,64,64)
//   class 9 Pedestrian  Pedestrian (64,64,0), Child (192,128,64), CartLuggagePram (64,0,192),
//                       Animal (64,128,64)
//   class 10 Bicyclist  Bicyclist (0,128,192), MotorcycleScooter (192,0,192)
//   void (255)          Void (0,0,0) and every colour not listed
//
// A class is drawn in its first listed colour (Sky (128,128,128), Building (128,0,0), ...) when a
// label map is written as a palette PNG; void is drawn black, so such a PNG reads back unchanged.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dl::data {

inline constexpr int kCamVidNumClasses = 11;
// The label of a pixel that belongs to no class: it counts nowhere in the loss and the metrics.
inline constexpr uint8_t kVoidLabel = 255;

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

// One row of the CamVid colour table: the original CamVid class name, its colour, its class (0..10,
// or kVoidLabel for "Void").
struct CamVidColour {
  const char* camvid_name;
  Rgb rgb;
  uint8_t label;
};

// The 32 colours, in the order of the table above (Void last).
std::span<const CamVidColour> camvid_colours();

// Colour -> class in [0, 11), or kVoidLabel for (0,0,0) and every colour not in the table.
uint8_t camvid_label_of(Rgb colour);

// Class -> its display colour (the first CamVid colour of the class); kVoidLabel and any label outside
// [0, 11) -> black (0,0,0).
Rgb camvid_colour_of(int label);

// "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
// "Bicyclist". Throws dl::Error for a label outside [0, 11).
const char* camvid_class_name(int label);
std::vector<std::string> camvid_class_names();

// Converts `pixels` interleaved RGB pixels (3 bytes each; `channels` = 3, or 4 with alpha ignored) into
// labels (one byte each). `rgb` and `labels` must not overlap.
void camvid_rgb_to_labels(const uint8_t* rgb, int64_t pixels, int channels, uint8_t* labels);
// The inverse for display: labels -> 3-byte RGB pixels by camvid_colour_of.
void camvid_labels_to_rgb(const uint8_t* labels, int64_t pixels, uint8_t* rgb);

}  // namespace dl::data
