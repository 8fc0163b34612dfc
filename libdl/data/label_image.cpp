// Label PNG reading and writing over stb_image / stb_image_write.
#include "dl/data/label_image.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <memory>
#include <vector>

#include "dl/data/camvid_palette.h"

namespace dl::data {

Tensor read_label_png(const std::string& path, LabelPngFormat* format) {
  int w = 0, h = 0, channels = 0;
  DL_CHECK(stbi_info(path.c_str(), &w, &h, &channels), "read_label_png: cannot read '", path,
           "': ", stbi_failure_reason());
  DL_CHECK(!stbi_is_16_bit(path.c_str()), "read_label_png: '", path,
           "' has 16-bit samples; a label PNG has 8-bit class indices or 8-bit RGB colours");
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load(path.c_str(), &w, &h, &channels, 0), stbi_image_free);
  DL_CHECK(pixels, "read_label_png: cannot decode '", path, "': ", stbi_failure_reason());
  DL_CHECK(w > 0 && h > 0, "read_label_png: '", path, "' is empty (", h, " x ", w, ")");

  Tensor out = Tensor::empty({h, w}, DType::kUInt8);
  uint8_t* dst = out.data<uint8_t>();
  const int64_t n = static_cast<int64_t>(h) * w;
  if (channels <= 2) {  // grey, or grey + alpha: the grey value is the label
    for (int64_t i = 0; i < n; ++i) dst[i] = pixels.get()[i * channels];
    if (format) *format = LabelPngFormat::kIndex;
  } else {
    camvid_rgb_to_labels(pixels.get(), n, channels, dst);
    if (format) *format = LabelPngFormat::kCamVidRgb;
  }
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

  int ok = 0;
  if (format == LabelPngFormat::kIndex) {
    ok = stbi_write_png(path.c_str(), w, h, 1, index.data(), w);
  } else {
    std::vector<uint8_t> rgb(static_cast<size_t>(n) * 3);
    camvid_labels_to_rgb(index.data(), n, rgb.data());
    ok = stbi_write_png(path.c_str(), w, h, 3, rgb.data(), 3 * w);
  }
  DL_CHECK(ok, "write_label_png: cannot write '", path, "'");
}

}  // namespace dl::data
