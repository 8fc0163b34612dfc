// Reading images from strangers and writing PNGs.
//
// Note [image decoders]: a file is recognised by its signature, never by its name, and only two
// formats are decoded: PNG through libspng and JPEG through libjpeg-turbo; anything else (GIF, BMP,
// TGA, PSD, HDR, PNM, ...) is refused naming what it is. Before a PNG is decoded its chunk structure
// is walked here: the signature, every chunk's length and CRC-32, IHDR first, IEND last and at the
// very end of the file; libspng then checks the zlib stream's Adler-32, the filters and the palette
// indices. libspng was chosen over stb_image (which decodes nine formats whatever the name, checks
// neither CRCs nor Adler-32, and crashed on hostile files) and over libpng (setjmp error handling,
// CRC errors of ancillary chunks only warned about by default). JPEG has no checksum: libjpeg-turbo's
// own checks apply, and its warnings about corrupt data are errors here. Dimensions are bounded
// from the header before any pixel is allocated, and the compressed size must be able to hold them.
// Pixel buffers come from CpuAllocator (HostVector), so the memory limit covers them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dl/core/allocator.h"

namespace dl::data {

struct ImageLimits {
  int64_t max_side = 16384;               // pixels, either side
  int64_t max_pixels = int64_t(1) << 27;  // height x width (134 M)
  uint64_t max_file_bytes = uint64_t(1) << 30;
};

struct ImageInfo {
  int64_t height = 0, width = 0;
  std::string format;  // "PNG" or "JPEG"
};

// An 8-bit image, H x W x channels, row-major.
struct Image {
  int64_t height = 0, width = 0;
  int channels = 0;
  HostVector<uint8_t> pixels;
};

// The size of a PNG or JPEG image from its header (the whole PNG structure is checked too).
ImageInfo read_image_info(const std::string& path, const ImageLimits& limits = {});
// A PNG or JPEG image as 8-bit RGB (grey and palette expanded, alpha dropped, 16-bit scaled).
Image read_rgb_image(const std::string& path, const ImageLimits& limits = {});

// A PNG's samples as stored, one byte per sample (1/2/4-bit samples unpacked, not scaled; 16-bit
// samples kept in two bytes, big-endian), with its colour type and palette: what a label reader
// needs to read class indices exactly.
struct PngSamples {
  int64_t height = 0, width = 0;
  int bit_depth = 0;
  int color_type = 0;            // 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA
  int channels = 0;              // samples per pixel: 1, 3, 1, 2, 4
  std::vector<uint8_t> palette;  // RGB triplets of the PLTE chunk (colour type 3)
  HostVector<uint8_t> samples;   // height x width x channels x (bit_depth == 16 ? 2 : 1)
};
PngSamples read_png_samples(const std::string& path, const ImageLimits& limits = {});

// Encodes 8-bit pixels (1 channel: grey, 3: RGB) as a PNG file's bytes.
std::string encode_png(const uint8_t* pixels, int64_t height, int64_t width, int channels);
// Writes them atomically (dl::write_file_atomically).
void write_png(const std::string& path, const uint8_t* pixels, int64_t height, int64_t width, int channels);

}  // namespace dl::data
