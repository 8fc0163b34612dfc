// Label maps as PNG files: reading the two forms a segmentation data set uses, writing either.
//
//   kIndex      8-bit single channel: the pixel value is the class index, 255 = void.
//   kCamVidRgb  RGB (or RGBA, alpha ignored) in the CamVid palette (dl/data/camvid_palette.h):
//               every colour of the table maps to its class, any other colour to void (255).
//
// A label map in memory is an H x W uint8 tensor on the CPU (class index or 255 = void); use
// .to(DType::kInt32) for the int32 labels of the loss. Decoding goes through stb_image, encoding
// through stb_image_write (both compiled once, in libdl/data/stb_impl.cpp).
#pragma once
#include <cstdint>
#include <string>

#include "dl/core/tensor.h"

namespace dl::data {

enum class LabelPngFormat { kIndex, kCamVidRgb };

// Reads a label PNG into an H x W uint8 tensor. One channel (or grey + alpha) is read as class indices,
// three or four channels as CamVid colours. `format`, when given, receives which of the two it was.
// Throws dl::Error naming the file when it cannot be opened or decoded, or has 16-bit samples.
Tensor read_label_png(const std::string& path, LabelPngFormat* format = nullptr);

// Writes an H x W label map (uint8, or int32 with values in [0, 255]) as a PNG: kIndex as 8-bit grey
// with the labels as they are, kCamVidRgb as RGB in each class's display colour (void and labels
// outside [0, 11) black). Throws dl::Error naming the file when it cannot be written.
void write_label_png(const std::string& path, const Tensor& labels, LabelPngFormat format);

}  // namespace dl::data
