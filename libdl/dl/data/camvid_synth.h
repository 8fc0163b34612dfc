// A generated stand-in for CamVid: street scenes drawn with their label maps in the real 32-colour
// palette and written in exactly CamVid's layout, so that the whole segmentation pipeline (reader,
// split, training, evaluation) runs offline when the user has no CamVid.
//
// Each scene has sky, buildings (with windows, sometimes walls), a road in perspective with dashed
// lane marks (LaneMkgsDriv), pavement (sidewalk, sometimes a road shoulder), trees and bushes, poles
// with signs or traffic lights, fences, cars (cars, SUVs, buses), pedestrians (adults, children) and
// cyclists; some pixels are void (boundary pixels, unlabelled clutter). Image colours follow the
// classes loosely (bluish-grey sky, dark textured road, green foliage...) with per-scene jitter,
// textures, lighting and noise, so the task is learnable but not trivial.
//
// Files written by write_synthetic_camvid(dir, o):
//   dir/701_StillsRaw_full/Synth_00001.png ...          the images (RGB)
//   dir/LabeledApproved_full/Synth_00001_L.png ...      the labels (RGB, CamVid palette)
//   dir/synthetic_camvid.txt                            "images N size HxW seed S", written last
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dl::data {

struct SynthOptions {
  int64_t images = 120;
  int64_t height = 180, width = 240;  // CamVid's 720 x 960 divided by 4
  uint64_t seed = 1;
};

struct SynthScene {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> image;      // H x W x 3 RGB
  std::vector<uint8_t> label_rgb;  // H x W x 3, colours of the CamVid palette (void = 0,0,0)
};

// Draws scene `index` of the set seeded by `seed`: a pure function of (height, width, seed, index).
SynthScene render_synthetic_scene(int64_t height, int64_t width, uint64_t seed, int64_t index);

// "Synth_00001" for index 0: the file name (without extension) of scene `index`.
std::string synthetic_camvid_name(int64_t index);

// Writes the set into `dir` (created when missing; files written to a temporary and renamed). Throws
// dl::Error naming the file that cannot be written.
void write_synthetic_camvid(const std::string& dir, const SynthOptions& o);

// Writes the set unless `dir` already holds one made with the same options (its
// synthetic_camvid.txt); returns true when it wrote.
bool ensure_synthetic_camvid(const std::string& dir, const SynthOptions& o);

}  // namespace dl::data
