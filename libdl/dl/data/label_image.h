// Label maps as PNG files: reading the two forms a segmentation data set uses, writing either.
//
//   kIndex      grey (or grey + alpha) of 1, 2, 4, 8 or 16 bits: the sample value, unscaled, is the
//               class index (a 1-bit PNG holds classes 0 and 1), 255 = void; 16-bit values must fit 8 bits.
//   kCamVidRgb  8-bit RGB (or RGBA, alpha ignored), or a palette PNG of any depth (each index stands
//               for its palette colour, as PNG optimisers store RGB labels): colours in the CamVid
//               palette (dl/data/camvid_palette.h) map to their class, any other colour to void (255).
//
// A label map in memory is an H x W uint8 tensor on the CPU (class index or 255 = void); use
// .to(DType::kInt32) for the int32 labels of the loss. The file goes through the checks of
// dl/data/image_io.h (PNG only: signature, CRCs, Adler-32, palette indices, bounded size).
#pragma once
#include <cstdint>
#include <string>

#include "dl/core/tensor.h"

namespace dl::data {

enum class LabelPngFormat { kIndex, kCamVidRgb };

// Reads a label PNG into an H x W uint8 tensor. One channel (or grey + alpha) is read as class indices,
// three or four channels as CamVid colours. `format`, when given, receives which of the two it was.
// Throws dl::Error naming the file when it is not a PNG (naming what it is), is corrupt, has 16-bit
// colour samples or a palette index past its palette.
Tensor read_label_png(const std::string& path, LabelPngFormat* format = nullptr);

// Writes an H x W label map (uint8, or int32 with values in [0, 255]) as a PNG: kIndex as 8-bit grey
// with the labels as they are, kCamVidRgb as RGB in each class's display colour (void and labels
// outside [0, 11) black). Throws dl::Error naming the file when it cannot be written.
void write_label_png(const std::string& path, const Tensor& labels, LabelPngFormat format);

}  // namespace dl::data
