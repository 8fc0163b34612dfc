// segment: labels one image with a model trained by train_camvid.
//
//   segment --model FILE --image IN.png --out-labels OUT.png [--overlay OUT2.png] [--image-size HxW]
//
// The image (PNG or JPEG, any size) is normalised with the model's input normalisation, resized
// bilinearly (align_corners = false) to the model's training size (or --image-size), labelled by the
// argmax of the logits, and the label map resized back to the image's size with nearest neighbours.
// --out-labels gets it as an RGB PNG in the CamVid palette (void black; `evaluate --pred` reads it),
// --overlay the image blended with the class colours (--alpha of colour, void pixels left as they are).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "camvid_model.h"
#include "dl/autograd/engine.h"
#include "dl/core/file_io.h"
#include "dl/core/threads.h"
#include "dl/data/camvid_palette.h"
#include "dl/data/image_io.h"
#include "dl/data/label_image.h"
#include "dl/ops/resize.h"
#include "dl/train/program.h"

namespace {

namespace camvid = dl::examples::camvid;

using dl::data::Image;  // H x W x 3 RGB

// H x W x 3 uint8 -> 1 x 3 x H x W float, (pixel / 255 - mean[c]) / std[c].
dl::Tensor to_input(const Image& im, const dl::data::Normalisation& n) {
  const int64_t hw = static_cast<int64_t>(im.height) * im.width;
  dl::Tensor x = dl::Tensor::empty(dl::Shape({1, 3, im.height, im.width}), dl::DType::kFloat32);
  float* out = x.data<float>();
  for (int c = 0; c < 3; ++c)
    for (int64_t p = 0; p < hw; ++p) out[c * hw + p] = (im.pixels[p * 3 + c] / 255.f - n.mean[c]) / n.std[c];
  return x;
}

// h x w int32 labels -> out_h x out_w, nearest: source pixel floor((o + 0.5) * in / out) (the reader's rule).
dl::Tensor resize_nearest(const dl::Tensor& labels, int64_t out_h, int64_t out_w) {
  const int64_t h = labels.size(0), w = labels.size(1);
  dl::Tensor out = dl::Tensor::empty(dl::Shape({out_h, out_w}), dl::DType::kInt32);
  const int32_t* in = labels.data<int32_t>();
  int32_t* o = out.data<int32_t>();
  for (int64_t y = 0; y < out_h; ++y) {
    const int64_t sy = std::min(h - 1, static_cast<int64_t>((y + 0.5) * h / out_h));
    for (int64_t x = 0; x < out_w; ++x) {
      const int64_t sx = std::min(w - 1, static_cast<int64_t>((x + 0.5) * w / out_w));
      o[y * out_w + x] = in[sy * w + sx];
    }
  }
  return out;
}

void write_overlay(const std::string& path, const Image& im, const dl::Tensor& labels, double alpha) {
  const int64_t hw = static_cast<int64_t>(im.height) * im.width;
  std::vector<uint8_t> rgb(static_cast<size_t>(hw * 3));
  const int32_t* l = labels.data<int32_t>();
  for (int64_t p = 0; p < hw; ++p) {
    const bool is_class = l[p] >= 0 && l[p] < dl::data::kCamVidNumClasses;
    const dl::data::Rgb c = dl::data::camvid_colour_of(l[p]);
    const uint8_t colour[3] = {c.r, c.g, c.b};
    for (int k = 0; k < 3; ++k) {
      const double v = im.pixels[p * 3 + k];
      rgb[p * 3 + k] = static_cast<uint8_t>(is_class ? (1 - alpha) * v + alpha * colour[k] + 0.5 : v);
    }
  }
  dl::data::write_png(path, rgb.data(), im.height, im.width, 3);
}

int run(int argc, char** argv) {
  std::string model_path, image_path, labels_path, overlay_path, image_size;
  double alpha = 0.5;
  int threads = 0;
  dl::train::Flags f("segment", "Labels an image with a model trained by train_camvid: a palette PNG and an overlay.");
  f.add({"model"}, &model_path, "model file written by train_camvid --save");
  f.add({"image"}, &image_path, "the image to label (PNG or JPEG)");
  f.add({"out-labels"}, &labels_path, "write the label map here: RGB PNG in the CamVid palette, the image's size");
  f.add({"overlay"}, &overlay_path, "write the image blended with the class colours here (empty: none)");
  f.add({"alpha"}, &alpha, "weight of the class colour in the overlay", 0.0, 1.0);
  f.add({"image-size"}, &image_size, "run the network at this size HxW (empty: the model's training size)");
  f.add({"threads"}, &threads, "CPU threads (0: all)", 0, 1024);
  if (!f.parse(argc, argv)) return 0;
  DL_CHECK(!model_path.empty() && !image_path.empty() && !labels_path.empty(),
           "segment: give --model FILE --image IN.png --out-labels OUT.png (see --help)");
  DL_CHECK(alpha >= 0 && alpha <= 1, "segment: --alpha must be in [0, 1], got ", alpha);
  dl::check_output_paths({{labels_path, "label map"}, {overlay_path, "overlay"}});
  if (threads > 0) dl::set_num_threads(threads);

  camvid::LoadedModel m = camvid::load_camvid_model(model_path);
  const dl::data::ImageSize size =
      image_size.empty() ? dl::data::ImageSize{m.info.height, m.info.width} : dl::data::parse_image_size(image_size);
  const Image im = dl::data::read_rgb_image(image_path);
  dl::Tensor x = to_input(im, m.info.normalisation);
  if (x.size(2) != size.height || x.size(3) != size.width) {
    dl::autograd::NoGradGuard no_grad;
    x = dl::ops::resize_bilinear(x, size.height, size.width);
  }
  const dl::Tensor net_labels = camvid::predict_labels(*m.net, x);  // 1 x h x w
  const dl::Tensor labels = resize_nearest(net_labels.view(dl::Shape({size.height, size.width})), im.height, im.width);
  dl::data::write_label_png(labels_path, labels, dl::data::LabelPngFormat::kCamVidRgb);
  std::printf("segment: %s (%lldx%lld, run at %lldx%lld) -> %s", image_path.c_str(), static_cast<long long>(im.height),
              static_cast<long long>(im.width), static_cast<long long>(size.height), static_cast<long long>(size.width),
              labels_path.c_str());
  if (!overlay_path.empty()) {
    write_overlay(overlay_path, im, labels, alpha);
    std::printf(", %s", overlay_path.c_str());
  }
  std::printf("\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "segment: error: %s\n", dl::train::error_message(e).c_str());
    return 1;
  }
}
