// make_camvid: writes a synthetic CamVid-format data set (dl/data/camvid_synth.h) into --out:
// 701_StillsRaw_full/<name>.png, LabeledApproved_full/<name>_L.png in the 32-colour palette, and
// synthetic_camvid.txt. train_camvid and evaluate read it like the real CamVid.
//
//   make_camvid --out data/camvid_synth --images 120 --size 180x240 --seed 1
#include <chrono>
#include <iostream>

#include "dl/data/camvid.h"
#include "dl/data/camvid_synth.h"
#include "dl/train/program.h"

int main(int argc, char** argv) {
  try {
    dl::data::SynthOptions o;
    std::string out = "data/camvid_synth", size = "180x240";
    long long images = o.images;
    unsigned long long seed = o.seed;
    dl::train::Flags flags("make_camvid", "Writes a synthetic street-scene data set in CamVid's layout.");
    flags.add({"out"}, &out, "output folder (created when missing)");
    flags.add({"images"}, &images, "number of images");
    flags.add({"size"}, &size, "image size HxW (CamVid's own is 720x960)");
    flags.add({"seed"}, &seed, "random seed: the same seed writes the same files");
    if (!flags.parse(argc, argv)) return 0;
    const dl::data::ImageSize s = dl::data::parse_image_size(size);
    o.images = images;
    o.height = s.height;
    o.width = s.width;
    o.seed = seed;
    const auto t0 = std::chrono::steady_clock::now();
    dl::data::write_synthetic_camvid(out, o);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "make_camvid: wrote " << o.images << " images of " << o.height << "x" << o.width << " (seed " << o.seed
              << ") to " << out << " in " << seconds << " s\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "make_camvid: " << dl::train::error_message(e) << "\n";
    return 1;
  }
}
