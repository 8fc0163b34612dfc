// Label PNG reading (by bit depth and colour type, over libspng) and writing.
#include "dl/data/label_image.h"

#include <vector>

#include "dl/data/camvid_palette.h"
#include "dl/data/image_io.h"

namespace dl::data {

Tensor read_label_png(const std::string& path, LabelPngFormat* format) {
  const PngSamples png = read_png_samples(path);
  Tensor out = Tensor::empty({png.height, png.width}, DType::kUInt8);
  uint8_t* dst = out.data<uint8_t>();
  const int64_t n = png.height * png.width;
  const uint8_t* s = png.samples.data();
  const int ch = png.channels;
  if (png.color_type == 0 || png.color_type == 4) {  // grey (+ alpha): the grey sample is the class index
    if (png.bit_depth == 16) {
      for (int64_t i = 0; i < n; ++i) {
        const unsigned v = unsigned(s[2 * i * ch]) << 8 | s[2 * i * ch + 1];
        DL_CHECK(v <= 255, "label PNG '", path, "': 16-bit class index ", v, " at pixel (", i / png.width, ", ",
                 i % png.width, ") does not fit in 8 bits");
        dst[i] = static_cast<uint8_t>(v);
      }
    } else {
      for (int64_t i = 0; i < n; ++i) dst[i] = s[i * ch];
    }
    if (format) *format = LabelPngFormat::kIndex;
    return out;
  }
  DL_CHECK(png.bit_depth <= 8, "label PNG '", path, "' has 16-bit colour samples; a colour label PNG has 8-bit RGB");
  if (png.color_type == 3) {  // palette: the colour each index stands for, as for RGB labels
    const int64_t entries = static_cast<int64_t>(png.palette.size() / 3);
    std::vector<uint8_t> rgb(static_cast<size_t>(n) * 3);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = s[i];
      DL_CHECK(k < entries, "corrupt label PNG '", path, "': palette index ", k, " at pixel (", i / png.width, ", ",
               i % png.width, ") is past the palette's ", entries, " entries");
      for (int c = 0; c < 3; ++c) rgb[i * 3 + c] = png.palette[k * 3 + c];
    }
    camvid_rgb_to_labels(rgb.data(), n, 3, dst);
  } else {  // RGB or RGBA
    camvid_rgb_to_labels(s, n, ch, dst);
  }
  if (format) *format = LabelPngFormat::kCamVidRgb;
  return out;
}

void write_label_png(const std::string& path, const Tensor& labels, LabelPngFormat format) {
  DL_CHECK(labels.defined() && labels.dim() == 2, "write_label_png('", path, "'): expected an H x W label map, got ",
           labels.defined() ? labels.shape().str() : "undefined");
  DL_CHECK(labels.dtype() == DType::kUInt8 || labels.dtype() == DType::kInt32, "write_label_png('", path,
           "'): expected uint8 or int32 labels, got ", dtype_name(labels.dtype()));
  const Tensor cpu = labels.to(Device::cpu());
  const int h = static_cast<int>(cpu.size(0)), w = static_cast<int>(cpu.size(1));
  DL_CHECK(h > 0 && w > 0, "write_label_png('", path, "'): empty label map ", cpu.shape().str());
  const int64_t n = cpu.numel();

  std::vector<uint8_t> index(static_cast<size_t>(n));
  if (cpu.dtype() == DType::kUInt8) {
    const uint8_t* src = cpu.data<uint8_t>();
    index.assign(src, src + n);
  } else {
    const int32_t* src = cpu.data<int32_t>();
    for (int64_t i = 0; i < n; ++i) {
      DL_CHECK(src[i] >= 0 && src[i] <= 255, "write_label_png('", path, "'): label ", src[i], " at pixel (", i / w,
               ", ", i % w, ") does not fit in 8 bits");
      index[i] = static_cast<uint8_t>(src[i]);
    }
  }

  if (format == LabelPngFormat::kIndex) {
    write_png(path, index.data(), h, w, 1);
  } else {
    std::vector<uint8_t> rgb(static_cast<size_t>(n) * 3);
    camvid_labels_to_rgb(index.data(), n, rgb.data());
    write_png(path, rgb.data(), h, w, 3);
  }
}

}  // namespace dl::data
