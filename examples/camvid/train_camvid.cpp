// train_camvid: trains DeepLabv3+ on a ResNet-18 encoder (output stride 16) for CamVid's 11 classes
// with the seed's recipe: SGD with momentum 0.9, learn rate 0.003 x0.3 every 10 epochs, L2 0.005,
// mini-batches of 8, 30 epochs, validation every epoch with patience 4, cross-entropy weighted by
// median-frequency class weights with void (255) ignored, random reflection and translation of the
// training images. Prints MATLAB's progress table, then MATLAB's segmentation metrics of the test split.
//
//   train_camvid [--data DIR] [--image-size HxW] [--init-weights resnet18.safetensors] [--save FILE]
//
// Without --data it trains on the generated CamVid-format set (camvid_model.h). The data set is split
// 60/20/20 by --split-seed (evaluate uses the same default). --save writes the model file of
// camvid_model.h that `evaluate --model` and `segment` read. The flags every training program shares
// (--device, --report-json with the test metrics under "test", --probe-steps, ...) are dl/train/program.h's.
#include <cstdio>

#include "camvid_model.h"
#include "dl/nn/state.h"
#include "dl/train/program.h"
#include "report.h"

namespace {
namespace camvid = dl::examples::camvid;

// The seed's recipe, in MATLAB's trainingOptions.
dl::train::TrainingOptions recipe() {
  dl::train::TrainingOptions o;
  o.solver = dl::train::Solver::kSgdm;
  o.momentum = 0.9;
  o.initial_learn_rate = 0.003;
  o.learn_rate_schedule = dl::train::LearnRateSchedule::kPiecewise;
  o.learn_rate_drop_factor = 0.3;
  o.learn_rate_drop_period = 10;
  o.l2_regularization = 0.005;
  o.max_epochs = 30;
  o.mini_batch_size = 8;
  o.shuffle = dl::train::Shuffle::kEveryEpoch;
  o.validation_frequency = 0;  // once per epoch
  o.validation_patience = 4;
  o.verbose_frequency = 10;
  return o;
}
}  // namespace

int main(int argc, char** argv) {
  const dl::data::SynthOptions synth = camvid::default_synth_options();
  dl::train::TrainingProgram p(
      "train_camvid",
      "Trains DeepLabv3+ (ResNet-18 encoder, output stride 16) on CamVid's 11 classes and evaluates the test split.\n"
      "Without --data it uses a generated CamVid-format set in " +
          std::string(camvid::kDefaultSynthDir) + " (" + std::to_string(synth.images) + " images of " +
          std::to_string(synth.height) + "x" + std::to_string(synth.width) +
          ", written on first use):\nits 72 training images take about 8 s an epoch on 2 cores, the 30 epochs of the "
          "default recipe about 4 minutes.",
      recipe());
  std::string data_dir, image_size, init_weights;
  uint64_t split_seed = camvid::kDefaultSplitSeed;
  bool image_pooling = true, augment = true, class_weights = true;
  p.flags().add({"data"}, &data_dir, "CamVid folder (raw + labelled, images/ + labels/, or flat; empty: generated)");
  p.flags().add({"image-size"}, &image_size, "train at this size HxW, e.g. 360x480 (empty: the files' size)");
  p.flags().add({"split-seed"}, &split_seed, "seed of the 60/20/20 train/validation/test split");
  p.flags().add({"init-weights"}, &init_weights, "ResNet-18 safetensors of torchvision for the encoder (fc.* skipped)");
  p.flags().add_switch({"image-pooling"}, &image_pooling, "the image-pooling branch of ASPP");
  p.flags().add_switch({"augment"}, &augment, "random reflection and translation (+-10 px) of the training images");
  p.flags().add_switch({"class-weights"}, &class_weights, "median-frequency class weights in the loss");
  return p.run(argc, argv, [&] {
    const dl::data::CamVidDatasets sets =
        camvid::load_datasets(data_dir, image_size, split_seed, p, image_pooling, augment);
    dl::nn::DeepLabV3Plus model({.num_classes = dl::data::kCamVidNumClasses, .image_pooling = image_pooling});
    if (!init_weights.empty()) {
      dl::nn::load_weights(model.encoder(), init_weights, {.allow_unexpected = true});  // torchvision's fc.*
      std::printf("Encoder initialised from %s\n", init_weights.c_str());
    }
    p.report().config()["init_weights"] = init_weights;
    dl::ops::CrossEntropyOptions loss;
    loss.ignore_index = dl::data::kVoidLabel;
    if (class_weights) loss.class_weights = sets.class_weights;

    // The training.
    dl::train::Trainer trainer(model, p.options());
    trainer.set_loss_options(loss);
    trainer.set_validation_data(sets.validation);
    if (p.resume(trainer)) sets.train->set_epoch(trainer.epoch());  // augmentation is drawn per (epoch, sample)
    const dl::train::TrainingReport r = p.fit(trainer, sets.train);
    if (p.probing()) return;
    if (!p.save_path().empty())
      camvid::save_camvid_model(p.save_path(), model, camvid::model_info(sets, image_pooling, split_seed));

    // The test split: MATLAB's metrics.
    dl::metrics::SegmentationEvaluator ev(dl::data::kCamVidNumClasses, dl::data::kVoidLabel);
    const double test_loss = camvid::evaluate_segmentation(model, *sets.test, p.options().mini_batch_size, ev, &loss);
    const dl::metrics::SegmentationMetrics m = ev.result();
    const std::vector<std::string> names = camvid::class_names(dl::data::kCamVidNumClasses, "", "train_camvid");
    p.print_summary(r);
    std::printf("Test loss: %.4f\n", test_loss);
    camvid::print_metrics(m, names);
    if (!p.save_path().empty()) std::printf("\nModel written to %s\n", p.save_path().c_str());
    dl::Json& test = p.report()["test"] = camvid::metrics_to_json(m, names);
    test["loss"] = test_loss;
    test["accuracy"] = m.global_accuracy;
  });
}
