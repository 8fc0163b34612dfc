// train_unet: the UNet (dl/nn/unet.h) learns to segment discs and squares on noisy images, generated
// here, in a training loop written by hand: forward, loss, backward, optimiser step. Prints the loss and
// the held-out pixel accuracy and mean IoU (MATLAB's definitions, dl/metrics/segmentation.h).
//
//   build/bin/train_unet [--steps 150] [--batch 8] [--size 32] [--device cpu|cuda] [--check-iou 0.6]
//
// --check-iou makes the program fail (status 1) when the held-out mean IoU stays below the value: the
// test suite runs it that way.
#include <dl/dl.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct Args {
  int steps = 150, batch = 8, size = 32;
  std::string device = "cpu";
  double check_iou = -1;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    DL_CHECK(i + 1 < argc, "train_unet: option ", k, " needs a value");
    const std::string v = argv[++i];
    if (k == "--steps")
      a.steps = std::stoi(v);
    else if (k == "--batch")
      a.batch = std::stoi(v);
    else if (k == "--size")
      a.size = std::stoi(v);
    else if (k == "--device")
      a.device = v;
    else if (k == "--check-iou")
      a.check_iou = std::stod(v);
    else
      DL_THROW("train_unet: unknown option ", k, " (expected --steps, --batch, --size, --device, --check-iou)");
  }
  DL_CHECK(a.steps >= 1 && a.batch >= 1 && a.size >= 8 && a.size % 4 == 0,
           "train_unet: expected steps, batch >= 1 and a size >= 8 divisible by 4");
  return a;
}

// N images 1 x S x S of noise with one disc (class 1) and one square (class 2) each, and their labels.
std::pair<dl::Tensor, dl::Tensor> make_batch(int n, int s, dl::Generator& gen) {
  std::vector<float> img(static_cast<size_t>(n) * s * s);
  std::vector<int32_t> lab(img.size(), 0);
  for (int i = 0; i < n; ++i) {
    const double cx = s * (0.2 + 0.6 * gen.uniform()), cy = s * (0.2 + 0.6 * gen.uniform());
    const double r = s * (0.1 + 0.1 * gen.uniform());
    const int qx = static_cast<int>(gen.below(static_cast<uint64_t>(s - s / 4))),
              qy = static_cast<int>(gen.below(static_cast<uint64_t>(s - s / 4)));
    for (int y = 0; y < s; ++y)
      for (int x = 0; x < s; ++x) {
        const size_t k = (static_cast<size_t>(i) * s + y) * s + x;
        int c = 0;
        if (x >= qx && x < qx + s / 4 && y >= qy && y < qy + s / 4) c = 2;
        if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r) c = 1;
        lab[k] = c;
        img[k] = static_cast<float>((c == 0 ? 0.0 : c == 1 ? 1.0 : -1.0) + 0.5 * gen.normal());
      }
  }
  return {dl::Tensor::from_vector<float>({n, 1, s, s}, img), dl::Tensor::from_vector<int32_t>({n, s, s}, lab)};
}

int run(const Args& a) {
  const dl::Device device = dl::Device::parse(a.device);
  dl::Generator gen(7);
  dl::nn::UNetOptions o;
  o.in_channels = 1;
  o.num_classes = 3;
  o.base_channels = 8;
  o.levels = 3;
  dl::nn::UNet model(o, gen);
  model.to(device);
  dl::optim::Adam opt(model.parameter_refs(), {.learning_rate = 0.01});
  for (int step = 1; step <= a.steps; ++step) {
    auto [x, y] = make_batch(a.batch, a.size, gen);
    const dl::Tensor loss = dl::ops::cross_entropy(model(x.to(device)), y.to(device));
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step == 1 || step % 25 == 0 || step == a.steps)
      std::printf("step %4d  loss %.4f\n", step, loss.to(dl::Device::cpu()).item<float>());
  }
  model.eval();
  dl::autograd::NoGradGuard no_grad;
  dl::metrics::SegmentationEvaluator ev(3);
  dl::Generator held_out(12345);
  for (int b = 0; b < 4; ++b) {
    auto [x, y] = make_batch(a.batch, a.size, held_out);
    ev.add(dl::ops::argmax(model(x.to(device)), 1), y.to(device));
  }
  const dl::metrics::SegmentationMetrics m = ev.result();
  std::printf("held out: pixel accuracy %.4f, mean IoU %.4f\n", m.global_accuracy, m.mean_iou);
  if (a.check_iou >= 0 && !(m.mean_iou >= a.check_iou)) {
    std::fprintf(stderr, "train_unet: mean IoU %.4f is below --check-iou %.4f\n", m.mean_iou, a.check_iou);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
