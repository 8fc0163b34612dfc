// The CamVid model file, prediction and evaluation of a split (see camvid_model.h).
#include "camvid_model.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

#include "dl/autograd/engine.h"
#include "dl/config.h"
#include "dl/core/parse.h"
#include "dl/core/safetensors.h"
#include "dl/core/threads.h"
#include "dl/data/device_stager.h"
#include "dl/data/image_io.h"
#include "dl/nn/state.h"
#include "report.h"

namespace dl::examples::camvid {

namespace {
constexpr const char* kNormalisationName = "input_normalisation";
constexpr const char* kKind = "deeplabv3plus-camvid";

int64_t meta_int(const SafeTensors& f, const std::string& key, const std::string& path, int64_t lo, int64_t hi) {
  const auto it = f.metadata.find(key);
  DL_CHECK(it != f.metadata.end(), path, ": not a train_camvid model (no metadata '", key, "')");
  return parse_int(it->second, lo, hi, path + ": metadata '" + key + "'");
}
// N x C x H x W logits (any device) -> N x H x W int32 argmax over C on the CPU (the first maximum).
Tensor argmax_channels(const Tensor& logits_any) {
  const Tensor logits = logits_any.to(Device::cpu()).to(DType::kFloat32);
  DL_CHECK(logits.dim() == 4, "argmax over classes: expected N x C x H x W logits, got ", logits.shape().str());
  const int64_t n = logits.size(0), c = logits.size(1), hw = logits.size(2) * logits.size(3);
  Tensor labels = Tensor::empty(Shape({n, logits.size(2), logits.size(3)}), DType::kInt32);
  const float* l = logits.data<float>();
  int32_t* out = labels.data<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < hw; ++p) {
      const float* lp = l + i * c * hw + p;
      int64_t best = 0;
      for (int64_t k = 1; k < c; ++k)
        if (lp[k * hw] > lp[best * hw]) best = k;
      out[i * hw + p] = static_cast<int32_t>(best);
    }
  return labels;
}

}  // namespace

data::SynthOptions default_synth_options() {
  data::SynthOptions o;
  o.images = 120;
  o.height = 96;
  o.width = 128;
  o.seed = 1;
  return o;
}

std::string resolve_data_dir(const std::string& data_dir, const std::string& program) {
  if (!data_dir.empty()) return data_dir;
  const data::SynthOptions o = default_synth_options();
  std::printf("%s: no --data: using the generated CamVid-format set in %s (%lld images of %lldx%lld, seed %llu)\n",
              program.c_str(), kDefaultSynthDir, static_cast<long long>(o.images), static_cast<long long>(o.height),
              static_cast<long long>(o.width), static_cast<unsigned long long>(o.seed));
  std::fflush(stdout);
  if (data::ensure_synthetic_camvid(kDefaultSynthDir, o))
    std::printf("%s: generated %s\n", program.c_str(), kDefaultSynthDir);
  return kDefaultSynthDir;
}

void save_camvid_model(const std::string& path, const nn::DeepLabV3Plus& model, const ModelInfo& info) {
  std::vector<std::pair<std::string, Tensor>> tensors = model.state();
  for (auto& [name, t] : tensors) {
    DL_CHECK(name != kNormalisationName, "save_camvid_model: the model has a tensor named ", name);
    t = t.to(Device::cpu());
  }
  tensors.emplace_back(kNormalisationName, data::normalisation_to_tensor(info.normalisation));
  save_safetensors(path, tensors,
                   {{"format", "pt"},
                    {"producer", "libdl train_camvid"},
                    {"kind", kKind},
                    {"num_classes", std::to_string(info.num_classes)},
                    {"image_pooling", info.image_pooling ? "1" : "0"},
                    {"height", std::to_string(info.height)},
                    {"width", std::to_string(info.width)},
                    {"split_seed", std::to_string(info.split_seed)}});
}

LoadedModel load_camvid_model(const std::string& path) {
  SafeTensors f = load_safetensors(path);
  const auto kind = f.metadata.find("kind");
  DL_CHECK(kind != f.metadata.end() && kind->second == kKind, path, ": not a train_camvid model (metadata kind '",
           kind == f.metadata.end() ? std::string() : kind->second, "', expected '", kKind, "')");
  LoadedModel m;
  const data::ImageLimits limits;
  m.info.num_classes = static_cast<int>(meta_int(f, "num_classes", path, 1, 254));
  m.info.image_pooling = meta_int(f, "image_pooling", path, 0, 1) != 0;
  m.info.height = meta_int(f, "height", path, 1, limits.max_side);
  m.info.width = meta_int(f, "width", path, 1, limits.max_side);
  DL_CHECK(m.info.height * m.info.width <= limits.max_pixels, path, ": input size ", m.info.height, "x", m.info.width,
           " is over ", limits.max_pixels, " pixels");
  const auto seed = f.metadata.find("split_seed");
  DL_CHECK(seed != f.metadata.end(), path, ": not a train_camvid model (no metadata 'split_seed')");
  m.info.split_seed = parse_uint(seed->second, std::numeric_limits<uint64_t>::max(), path + ": metadata 'split_seed'");

  nn::NamedTensors state;
  bool found = false;
  for (auto& [name, t] : f.tensors) {
    if (name == kNormalisationName) {
      m.info.normalisation = data::normalisation_from_tensor(t);
      found = true;
    } else {
      state.emplace_back(name, t);
    }
  }
  DL_CHECK(found, path, ": no '", kNormalisationName, "' tensor (the input normalisation)");
  nn::DeepLabV3PlusOptions o;
  o.num_classes = m.info.num_classes;
  o.image_pooling = m.info.image_pooling;
  m.net = std::make_unique<nn::DeepLabV3Plus>(o);
  nn::load_state(*m.net, state, path);
  m.net->eval();
  return m;
}

Tensor predict_labels(nn::Layer& model, const Tensor& inputs) {
  const bool was_training = model.is_training();
  model.eval();
  Tensor labels;
  {
    autograd::NoGradGuard no_grad;
    labels = argmax_channels(model.forward(inputs));
  }
  model.train(was_training);
  return labels;
}

double evaluate_segmentation(nn::Layer& model, const data::Dataset& d, int64_t batch_size,
                             metrics::SegmentationEvaluator& ev, const ops::CrossEntropyOptions* loss) {
  const bool was_training = model.is_training();
  model.eval();
  autograd::NoGradGuard no_grad;
  double loss_sum = 0;
  // Batches go where the model is; so do the class weights of the loss.
  const std::vector<Tensor> params = model.parameters();
  const Device device = params.empty() ? Device::cpu() : params.front().device();
  ops::CrossEntropyOptions loss_on_device = loss ? *loss : ops::CrossEntropyOptions{};
  if (loss_on_device.class_weights.defined()) loss_on_device.class_weights = loss_on_device.class_weights.to(device);
  data::for_each_batch(d, batch_size, device, [&](const data::Batch& batch, int64_t) {
    const Tensor logits = model.forward(batch.inputs);  // N x C x H x W
    if (loss)
      loss_sum +=
          ops::cross_entropy(logits, batch.targets, loss_on_device).item<double>() * static_cast<double>(batch.size());
    ev.add(argmax_channels(logits), batch.targets.to(Device::cpu()));
  });
  model.train(was_training);
  return loss && d.size() ? loss_sum / static_cast<double>(d.size()) : std::numeric_limits<double>::quiet_NaN();
}

ModelInfo model_info(const data::CamVidDatasets& sets, bool image_pooling, uint64_t split_seed) {
  return {.num_classes = data::kCamVidNumClasses,
          .image_pooling = image_pooling,
          .height = sets.test->data().height,
          .width = sets.test->data().width,
          .split_seed = split_seed,
          .normalisation = sets.normalisation};
}

data::CamVidDatasets load_datasets(const std::string& data_dir, const std::string& image_size, uint64_t split_seed,
                                   train::TrainingProgram& p, bool image_pooling, bool augment) {
  const std::string dir = resolve_data_dir(data_dir, "train_camvid");
  const data::ImageSize size = image_size.empty() ? data::ImageSize{} : data::parse_image_size(image_size);
  auto images = std::make_shared<const data::CamVidImages>(data::load_camvid(dir, size));
  data::CamVidSplit split = data::split_camvid(images->size(), split_seed);
  DL_CHECK(!split.train.empty() && !split.validation.empty() && !split.test.empty(), "train_camvid: ", dir, " holds ",
           images->size(), " images, too few for a 60/20/20 split (at least 5)");
  const int64_t batch = p.options().mini_batch_size;
  if (image_pooling && static_cast<int64_t>(split.train.size()) % batch == 1 && !p.probing()) {
    std::printf("train_camvid: leaving out training image %s so that no mini-batch holds a single image\n",
                images->names[static_cast<size_t>(split.train.back())].c_str());
    split.train.pop_back();
  }
  data::CamVidDatasets sets = data::make_camvid_datasets(images, split, p.options().seed);
  if (!augment) sets.train = std::make_shared<data::CamVidDataset>(images, split.train, sets.normalisation);
  Json& cfg = p.report().config();
  cfg["data"] = dir;
  cfg["split_seed"] = split_seed;
  cfg["image_size"] = std::to_string(images->height) + "x" + std::to_string(images->width);
  cfg["image_height"] = images->height;
  cfg["image_width"] = images->width;
  cfg["train_images"] = sets.train->size();
  cfg["validation_images"] = sets.validation->size();
  cfg["test_images"] = sets.test->size();
  std::printf("libdl %s | CamVid from %s at %lldx%lld: %lld training, %lld validation, %lld test images | %d threads\n",
              DL_VERSION, dir.c_str(), static_cast<long long>(images->height), static_cast<long long>(images->width),
              static_cast<long long>(sets.train->size()), static_cast<long long>(sets.validation->size()),
              static_cast<long long>(sets.test->size()), num_threads());
  std::printf("Class weights (median frequency):");
  const std::vector<std::string> names = class_names(data::kCamVidNumClasses, "", "train_camvid");
  for (int c = 0; c < data::kCamVidNumClasses; ++c)
    std::printf(" %s %.3f", names[static_cast<size_t>(c)].c_str(), sets.class_weights.data<float>()[c]);
  std::printf("\n");
  return sets;
}

}  // namespace dl::examples::camvid
