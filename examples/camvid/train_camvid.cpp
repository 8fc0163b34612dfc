// train_camvid: trains DeepLabv3+ on a ResNet-18 encoder (output stride 16) for CamVid's 11 classes
// with the seed's recipe: SGD with momentum 0.9, learn rate 0.003 x0.3 every 10 epochs, L2 0.005,
// mini-batches of 8, 30 epochs, validation every epoch with patience 4, cross-entropy weighted by
// median-frequency class weights with void (255) ignored, random reflection and translation of the
// training images. Prints MATLAB's progress table, then MATLAB's segmentation metrics of the test split.
//
//   train_camvid [--data DIR] [--image-size HxW] [--init-weights resnet18.safetensors] [--save FILE]
//
// Without --data it trains on the generated CamVid-format set (camvid_model.h: data/camvid_synth,
// written on first use). The data set is split 60/20/20 by --split-seed (evaluate uses the same
// default). --save writes the model file of camvid_model.h (weights, input normalisation, metadata)
// that `evaluate --model` and `segment` read.
//
// For the sweep tools (examples/sweep): --report-json writes a summary of the run (also when it
// fails; the keys of train_mnist's plus the test split's segmentation metrics under "test"),
// --memory-limit caps the CPU allocator, --probe-steps trains a few steps at one batch size.
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "../common/flags.h"
#include "../common/run_report.h"
#include "../sweep/json.h"
#include "../sweep/units.h"
#include "camvid_model.h"
#include "dl/core/allocator.h"
#include "dl/dl.h"
#include "dl/train/progress.h"
#include "dl/train/resources.h"
#include "dl/train/trainer.h"
#include "report.h"

namespace {

using dl::sweep::Json;
namespace camvid = dl::examples::camvid;

// The report of --report-json, filled as the run goes so that a failure still says what it was.
Json g_report = Json::object();
std::string g_report_path;

using dl::examples::first_n;
using dl::examples::write_json_file;

void write_report(const std::string& status, const std::string& error = "") {
  dl::examples::write_run_report(g_report_path, g_report, status, error);
}

int run(int argc, char** argv) {
  dl::train::TrainingOptions o;
  o.solver = "sgdm";
  o.momentum = 0.9;
  o.initial_learn_rate = 0.003;
  o.learn_rate_schedule = "piecewise";
  o.learn_rate_drop_factor = 0.3;
  o.learn_rate_drop_period = 10;
  o.l2_regularization = 0.005;
  o.max_epochs = 30;
  o.mini_batch_size = 8;
  o.shuffle = "every-epoch";
  o.validation_frequency = 0;  // 0: the iterations of one epoch (set below)
  o.validation_patience = 4;
  o.verbose_frequency = 10;
  std::string data_dir, image_size, init_weights, device = "cpu", save, resume;
  int threads = 0;
  uint64_t seed = 0, split_seed = camvid::kDefaultSplitSeed;
  bool image_pooling = true, augment = true, class_weights = true;
  std::string report_json, memory_limit = "0", progress = "auto";
  int64_t probe_steps = 0;

  const dl::data::SynthOptions synth = camvid::default_synth_options();
  dl::examples::Flags f(
      "train_camvid",
      "Trains DeepLabv3+ (ResNet-18 encoder, output stride 16) on CamVid's 11 classes and evaluates the test split.\n"
      "Without --data it uses a generated CamVid-format set in " +
          std::string(camvid::kDefaultSynthDir) + " (" + std::to_string(synth.images) + " images of " +
          std::to_string(synth.height) + "x" + std::to_string(synth.width) +
          ", written on first use):\nits 72 training images take about "
          "8 s an epoch on 2 cores, the 30 epochs of the default recipe about 4 minutes.");
  f.add({"solver"}, &o.solver, "sgdm, adam or rmsprop");
  f.add({"initial-learn-rate", "lr"}, &o.initial_learn_rate, "initial learning rate", 1e-12, 1e6);
  f.add({"learn-rate-schedule"}, &o.learn_rate_schedule, "none or piecewise");
  f.add({"learn-rate-drop-factor"}, &o.learn_rate_drop_factor, "factor of each piecewise drop", 0.0, 1.0);
  f.add({"learn-rate-drop-period"}, &o.learn_rate_drop_period, "epochs between drops", 1, 1000000);
  f.add({"max-epochs", "epochs"}, &o.max_epochs, "epochs to train", 1, 1000000);
  f.add({"mini-batch-size", "batch-size"}, &o.mini_batch_size,
        "mini-batch size (at least 2: batch norm of image pooling)", int64_t{1}, int64_t{1} << 31);
  f.add({"shuffle"}, &o.shuffle, "once, every-epoch or never");
  f.add({"validation-frequency"}, &o.validation_frequency, "iterations between validations (0: once per epoch)", 0,
        1000000000);
  f.add({"validation-patience"}, &o.validation_patience, "validations without improvement before stopping (0: never)", 0,
        1000000000);
  f.add({"l2-regularization"}, &o.l2_regularization, "L2 regularisation factor", 0.0, 1e6);
  f.add({"momentum"}, &o.momentum, "sgdm momentum", 0.0, 0.999999);
  f.add({"gradient-decay-factor"}, &o.gradient_decay_factor, "adam beta1", 0.0, 0.999999);
  f.add({"squared-gradient-decay-factor"}, &o.squared_gradient_decay_factor, "adam beta2 / rmsprop decay", 0.0, 0.999999);
  f.add({"epsilon"}, &o.epsilon, "adam / rmsprop epsilon", 1e-30, 1.0);
  f.add({"gradient-threshold"}, &o.gradient_threshold, "gradient clipping threshold (inf: off)", 1e-30,
        std::numeric_limits<double>::infinity());
  f.add({"gradient-threshold-method"}, &o.gradient_threshold_method, "l2norm, global-l2norm or absolute-value");
  f.add_switch({"verbose"}, &o.verbose, "print the progress table");
  f.add({"verbose-frequency"}, &o.verbose_frequency, "iterations between table rows", 1, 1000000000);
  f.add({"checkpoint-path"}, &o.checkpoint_path, "folder for a checkpoint per epoch (empty: none)");
  f.add({"keep-checkpoints"}, &o.keep_checkpoints, "keep only the newest N checkpoints of --checkpoint-path (0: all)", 0,
        1000000);
  f.add({"output-network"}, &o.output_network, "last-iteration or best-validation-loss");
  f.add({"log-csv"}, &o.log_csv, "CSV file with a row per iteration (empty: none)");
  f.add({"data"}, &data_dir,
        "CamVid folder (701_StillsRaw_full + LabeledApproved_full, images/ + labels/, or flat); "
        "empty: the generated set");
  f.add({"image-size"}, &image_size, "train at this size HxW, e.g. 360x480 (empty: the files' size)");
  f.add({"split-seed"}, &split_seed, "seed of the 60/20/20 train/validation/test split");
  f.add({"init-weights"}, &init_weights,
        "torchvision ResNet-18 state_dict as safetensors: initialises the encoder (fc.* skipped)");
  f.add_switch({"image-pooling"}, &image_pooling, "the image-pooling branch of ASPP");
  f.add_switch({"augment"}, &augment, "random reflection and translation (+-10 px) of the training images");
  f.add_switch({"class-weights"}, &class_weights, "median-frequency class weights in the loss");
  f.add({"device"}, &device, "cpu or cuda");
  f.add({"threads"}, &threads, "CPU threads (0: all)", 0, 1024);
  f.add({"seed"}, &seed, "seed of initialisation, shuffling and augmentation");
  f.add({"save"}, &save, "write the trained model here (safetensors with the input normalisation)");
  f.add({"resume"}, &resume, "continue from a checkpoint written with --checkpoint-path");
  f.add({"report-json"}, &report_json, "write a JSON summary of the run here (also when it fails)");
  f.add({"memory-limit"}, &memory_limit, "cap on the CPU allocator's bytes, e.g. 2GiB (0: none)");
  f.add({"probe-steps"}, &probe_steps,
        "fit probe: train this many steps at the batch size on repeated training images, no validation (0: off)");
  f.add({"progress"}, &progress, "progress line with ETA: auto, in-place, plain or off");
  if (!f.parse(argc, argv)) return 0;

  {  // every option checked before any arithmetic on it (0 = once per epoch is resolved below)
    dl::train::TrainingOptions check = o;
    if (check.validation_frequency == 0) check.validation_frequency = 1;
    check.validate();
  }
  DL_CHECK(probe_steps >= 0, "train_camvid: --probe-steps must be >= 0, got ", probe_steps);
  dl::check_output_paths({{save, "model file"}, {report_json, "run report"}, {o.log_csv, "training log"}});
  g_report_path = report_json;
  g_report["program"] = "train_camvid";
  g_report["libdl_version"] = DL_VERSION;
  Json& cfg = g_report["config"];
  cfg["device"] = device;
  cfg["solver"] = o.solver;
  cfg["initial_learn_rate"] = o.initial_learn_rate;
  cfg["max_epochs"] = o.max_epochs;
  cfg["mini_batch_size"] = o.mini_batch_size;
  cfg["seed"] = seed;
  cfg["split_seed"] = split_seed;
  cfg["probe_steps"] = probe_steps;
  cfg["log_csv"] = o.log_csv;
  g_report["status"] = "running";

  dl::CpuAllocator::instance().set_limit(dl::examples::parse_memory_limit(memory_limit));
  const dl::train::ProgressMode progress_mode = dl::train::parse_progress_mode(progress);
  const dl::Device dev = dl::Device::parse(device);
  dl::examples::report_device() = dev;
  dl::check_device_usable(dev);
  o.device = dev;
  if (threads > 0) dl::set_num_threads(threads);
  dl::manual_seed(seed);
  o.seed = seed;
  cfg["threads"] = dl::num_threads();
  const dl::data::ImageSize size = image_size.empty() ? dl::data::ImageSize{} : dl::data::parse_image_size(image_size);

  // ---- data: decoded once into memory, split, normalised by the training split ----
  data_dir = camvid::resolve_data_dir(data_dir, "train_camvid");
  auto images = std::make_shared<const dl::data::CamVidImages>(dl::data::load_camvid(data_dir, size));
  dl::data::CamVidSplit split = dl::data::split_camvid(images->size(), split_seed);
  DL_CHECK(!split.train.empty() && !split.validation.empty() && !split.test.empty(), "train_camvid: ", data_dir,
           " holds ", images->size(), " images, too few for a 60/20/20 split (at least 5)");
  // Batch norm of the image-pooling branch needs 2 samples: never leave a last batch of one.
  if (image_pooling && static_cast<int64_t>(split.train.size()) % o.mini_batch_size == 1 && probe_steps == 0) {
    std::printf("train_camvid: leaving out training image %s so that no mini-batch holds a single image\n",
                images->names[static_cast<size_t>(split.train.back())].c_str());
    split.train.pop_back();
  }
  dl::data::CamVidDatasets sets = dl::data::make_camvid_datasets(images, split, seed);
  if (!augment) sets.train = std::make_shared<dl::data::CamVidDataset>(images, split.train, sets.normalisation);
  cfg["data"] = data_dir;
  cfg["image_size"] = std::to_string(images->height) + "x" + std::to_string(images->width);
  cfg["image_height"] = images->height;
  cfg["image_width"] = images->width;
  cfg["train_images"] = sets.train->size();
  cfg["validation_images"] = sets.validation->size();
  cfg["test_images"] = sets.test->size();
  const int64_t per_epoch = (sets.train->size() + o.mini_batch_size - 1) / o.mini_batch_size;
  if (o.validation_frequency == 0) o.validation_frequency = static_cast<int>(per_epoch);
  cfg["validation_frequency"] = o.validation_frequency;
  std::printf("libdl %s | CamVid from %s at %lldx%lld: %lld training, %lld validation, %lld test images | %d threads\n",
              DL_VERSION, data_dir.c_str(), static_cast<long long>(images->height),
              static_cast<long long>(images->width), static_cast<long long>(sets.train->size()),
              static_cast<long long>(sets.validation->size()), static_cast<long long>(sets.test->size()),
              dl::num_threads());
  const std::vector<std::string> names = camvid::class_names(dl::data::kCamVidNumClasses, "", "train_camvid");
  std::printf("Class weights (median frequency):");
  for (int c = 0; c < dl::data::kCamVidNumClasses; ++c)
    std::printf(" %s %.3f", names[c].c_str(), sets.class_weights.data<float>()[c]);
  std::printf("\n");

  // ---- model ----
  dl::nn::DeepLabV3PlusOptions mo;
  mo.num_classes = dl::data::kCamVidNumClasses;
  mo.image_pooling = image_pooling;
  dl::nn::DeepLabV3Plus model(mo);
  if (!init_weights.empty()) {
    dl::nn::LoadOptions lo;
    lo.allow_unexpected = true;  // torchvision's fc.weight and fc.bias
    dl::nn::load_weights(model.encoder(), init_weights, lo);
    std::printf("Encoder initialised from %s\n", init_weights.c_str());
  }
  cfg["init_weights"] = init_weights;

  dl::ops::CrossEntropyOptions loss;
  loss.ignore_index = dl::data::kVoidLabel;
  if (class_weights) loss.class_weights = sets.class_weights;

  std::shared_ptr<const dl::data::Dataset> train_set = sets.train;
  if (probe_steps > 0) {
    // Exactly probe_steps full batches of the requested size, one epoch, nothing else.
    train_set = first_n(train_set, probe_steps * o.mini_batch_size);
    o.max_epochs = 1;
    o.validation_patience = 0;
    cfg["max_epochs"] = 1;
  }
  dl::train::Trainer trainer(model, o);
  trainer.set_loss_options(loss);
  trainer.set_progress(progress_mode);
  if (probe_steps == 0) trainer.set_validation_data(sets.validation);
  if (!resume.empty()) {
    trainer.load_checkpoint(resume);
    // Augmentation is drawn per (epoch, sample): continue with the next epoch's draws.
    sets.train->set_epoch(trainer.epoch());
    std::printf("Resumed from %s after epoch %d (iteration %lld)\n", resume.c_str(), trainer.epoch(),
                static_cast<long long>(trainer.iteration()));
  }
  const dl::train::TrainingReport r = trainer.fit(train_set);
  g_report["training"] = dl::examples::training_json(r);
  if (probe_steps > 0) {
    std::printf("Probe: %lld steps at batch %lld fit; peak RSS %.1f MiB, allocator peak %.1f MiB\n",
                static_cast<long long>(r.iterations), static_cast<long long>(o.mini_batch_size),
                r.peak_rss_bytes / 1048576.0, r.allocator_peak_bytes / 1048576.0);
    write_report("ok");
    return 0;
  }

  if (!save.empty()) {
    camvid::ModelInfo info;
    info.num_classes = mo.num_classes;
    info.image_pooling = mo.image_pooling;
    info.height = images->height;
    info.width = images->width;
    info.split_seed = split_seed;
    info.normalisation = sets.normalisation;
    camvid::save_camvid_model(save, model, info);
  }

  // ---- the test split: MATLAB's metrics ----
  dl::metrics::SegmentationEvaluator ev(dl::data::kCamVidNumClasses, dl::data::kVoidLabel);
  const double test_loss = camvid::evaluate_segmentation(model, *sets.test, o.mini_batch_size, ev, &loss);
  const dl::metrics::SegmentationMetrics m = ev.result();
  Json& test = g_report["test"];
  test["loss"] = test_loss;
  test["accuracy"] = m.global_accuracy;
  const Json metrics_json = camvid::metrics_to_json(m, names);
  for (const auto& [k, v] : metrics_json.members()) test[k] = v;

  std::printf("\nTraining: %d epochs, %lld iterations, %s (%.1f s; %.2f s per epoch), %.1f images/s%s\n",
              r.epochs_completed, static_cast<long long>(r.iterations), dl::train::format_hms(r.total_seconds).c_str(),
              r.total_seconds, r.epoch_seconds.empty() ? 0.0 : r.total_seconds / r.epoch_seconds.size(),
              r.images_per_second, r.stopped_early ? " (stopped early)" : "");
  std::printf("Memory: peak RSS %.1f MiB, %s allocator peak %.1f MiB\n", r.peak_rss_bytes / 1048576.0,
              dev.str().c_str(), r.allocator_peak_bytes / 1048576.0);
  std::printf("Test loss: %.4f\n", test_loss);
  camvid::print_metrics(m, names);
  if (!save.empty()) std::printf("\nModel written to %s\n", save.c_str());
  write_report("ok");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "train_camvid: error: %s\n", dl::examples::error_message(e).c_str());
    try {
      write_report("failed", dl::examples::error_message(e));
    } catch (const std::exception& e2) {
      std::fprintf(stderr, "train_camvid: error: cannot write the report: %s\n", dl::examples::error_message(e2).c_str());
    }
    return 1;
  }
}
