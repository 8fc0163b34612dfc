// libFuzzer target: the image readers (PNG through the structure check and libspng, JPEG through
// libjpeg-turbo, anything else refused) and the label reader on the same bytes.
#include "dl/data/image_io.h"
#include "dl/data/label_image.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dl::fuzz::input_file(data, size, ".png");
  // Smaller limits than the defaults keep each run fast; the checks are the same.
  dl::data::ImageLimits limits;
  limits.max_side = 4096;
  limits.max_pixels = 1 << 22;
  dl::fuzz::expect_clean([&] { (void)dl::data::read_image_info(path, limits); });
  dl::fuzz::expect_clean([&] { (void)dl::data::read_rgb_image(path, limits); });
  dl::fuzz::expect_clean([&] { (void)dl::data::read_png_samples(path, limits); });
  dl::fuzz::expect_clean([&] { (void)dl::data::read_label_png(path); });
  return 0;
}
