// The training loop, validation, the verbose table, the CSV log and checkpoints.
#include "dl/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <algorithm>
#include <iostream>
#include <numeric>

#include "dl/autograd/engine.h"
#include "dl/core/allocator.h"
#include "dl/core/file_io.h"
#include "dl/core/parse.h"
#include "dl/core/serialize.h"
#include "dl/data/dataloader.h"
#include "dl/data/device_stager.h"
#include "dl/metrics/accuracy.h"
#include "dl/nn/state.h"
#include "dl/train/resources.h"

namespace dl::train {

namespace {
using Clock = std::chrono::steady_clock;
constexpr int kTableWidth = 118;  // between the outer bars of the verbose table
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A batch on the training device (a plain copy: evaluation is not where copies need to overlap).
data::Batch stage_to(data::Batch b, Device device) {
  if (device.is_cpu()) return b;
  b.inputs = b.inputs.to(device);
  b.targets = b.targets.to(device);
  return b;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const nn::Layer& model, const TrainingOptions& o) {
  auto params = model.parameter_refs();
  if (o.solver == "adam")
    return std::make_unique<optim::Adam>(params, optim::AdamOptions{o.initial_learn_rate, o.gradient_decay_factor,
                                                                    o.squared_gradient_decay_factor, o.epsilon,
                                                                    o.l2_regularization});
  if (o.solver == "rmsprop") {
    // MATLAB's rmsprop default SquaredGradientDecayFactor is 0.9; 0.999 is Adam's.
    const double decay = o.squared_gradient_decay_factor == 0.999 ? 0.9 : o.squared_gradient_decay_factor;
    return std::make_unique<optim::RmsProp>(params,
                                            optim::RmsPropOptions{o.initial_learn_rate, decay, o.epsilon, o.l2_regularization});
  }
  return std::make_unique<optim::Sgdm>(params, optim::SgdmOptions{o.initial_learn_rate, o.momentum, o.l2_regularization});
}

std::string percent(double v) {
  if (std::isnan(v)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * v);
  return buf;
}
std::string fixed4(double v) {
  if (std::isnan(v)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}
std::string csv_num(double v) {
  if (std::isnan(v)) return "";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
}  // namespace

std::string format_hms(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return buf;
}

Trainer::Trainer(nn::Layer& model, const TrainingOptions& options)
    : model_(model), o_(options), out_(&std::cout), shuffle_gen_(options.seed) {
  o_.validate();
  check_device_usable(o_.device);
  model_.to(o_.device);  // before the optimiser makes its state tensors beside the parameters
  optimizer_ = make_optimizer(model_, o_);
}

Trainer::~Trainer() = default;

void Trainer::set_validation_data(std::shared_ptr<const data::Dataset> validation) { validation_ = std::move(validation); }
void Trainer::set_loss_options(const ops::CrossEntropyOptions& loss) {
  loss_ = loss;
  if (loss_.class_weights.defined()) loss_.class_weights = loss_.class_weights.to(o_.device);
}
void Trainer::set_gradient_hook(std::function<void(const std::vector<nn::ParamRef>&)> hook) { hook_ = std::move(hook); }
void Trainer::set_output(std::ostream* out) { out_ = out; }
void Trainer::set_progress(ProgressMode mode) { progress_mode_ = mode; }

double Trainer::learn_rate_for(int epoch) const {
  return optim::PiecewiseSchedule{o_.initial_learn_rate, o_.learn_rate_drop_factor, o_.learn_rate_drop_period,
                                  o_.learn_rate_schedule == "piecewise"}
      .rate(epoch);
}

void Trainer::clip_gradients() {
  if (!std::isfinite(o_.gradient_threshold)) return;
  const auto& params = optimizer_->params();
  if (o_.gradient_threshold_method == "global-l2norm")
    optim::clip_grad_global_norm(params, o_.gradient_threshold);
  else if (o_.gradient_threshold_method == "absolute-value")
    optim::clip_grad_value(params, o_.gradient_threshold);
  else
    optim::clip_grad_norm_per_parameter(params, o_.gradient_threshold);
}

EvalResult Trainer::evaluate(const data::Dataset& d, int64_t batch_size) {
  if (batch_size <= 0) batch_size = o_.mini_batch_size;
  const bool was_training = model_.is_training();
  model_.eval();
  autograd::NoGradGuard no_grad;
  EvalResult r;
  double loss_sum = 0;
  metrics::Counts counts;
  std::vector<int64_t> idx;
  for (int64_t b = 0; b < d.size(); b += batch_size) {
    idx.resize(static_cast<size_t>(std::min(batch_size, d.size() - b)));
    std::iota(idx.begin(), idx.end(), b);
    const data::Batch batch = stage_to(d.get_batch(idx), o_.device);
    const Tensor logits = model_.forward(batch.inputs);
    const double loss = ops::cross_entropy(logits, batch.targets, loss_).item<double>();
    // On a device, labels are checked only when the loss says something is wrong (ops::cross_entropy
    // throws on the CPU); a batch whose labels are all ignored is an error there as on the CPU.
    if (!std::isfinite(loss) && !batch.targets.device().is_cpu()) {
      ops::check_labels(batch.targets, logits.size(1), loss_.ignore_index);
      DL_CHECK(metrics::count_correct(logits, batch.targets, loss_.ignore_index).total > 0,
               "evaluation: no sample counted (every label ignored) in the batch at sample ", b);
    }
    loss_sum += loss * static_cast<double>(idx.size());
    const metrics::Counts c = metrics::count_correct(logits, batch.targets, loss_.ignore_index);
    counts.correct += c.correct;
    counts.total += c.total;
    r.samples += static_cast<int64_t>(idx.size());
  }
  model_.train(was_training);
  r.loss = r.samples ? loss_sum / static_cast<double>(r.samples) : std::numeric_limits<double>::quiet_NaN();
  r.accuracy = counts.accuracy();
  return r;
}

void Trainer::print_header() const {
  if (!out_ || !o_.verbose) return;
  const std::string rule(kTableWidth, '=');
  *out_ << "|" << rule << "|\n"
        << "|  Epoch  |  Iteration  |  Time Elapsed  |  Mini-batch  |  Validation  |  Mini-batch  |  Validation  |"
           "  Base Learning  |\n"
        << "|         |             |   (hh:mm:ss)   |   Accuracy   |   Accuracy   |     Loss     |     Loss     |"
           "      Rate       |\n"
        << "|" << rule << "|\n";
}

void Trainer::print_row(const IterationRecord& r) const {
  if (!out_ || !o_.verbose) return;
  if (progress_) progress_->clear();  // the in-place progress line makes room for the row
  char buf[256];
  std::snprintf(buf, sizeof buf, "| %7d | %11lld | %14s | %12s | %12s | %12s | %12s | %15s |\n", r.epoch,
                static_cast<long long>(r.iteration), format_hms(r.seconds).c_str(), percent(r.accuracy).c_str(),
                percent(r.validation_accuracy).c_str(), fixed4(r.loss).c_str(), fixed4(r.validation_loss).c_str(),
                fixed4(r.learn_rate).c_str());
  *out_ << buf << std::flush;
}

TrainingReport Trainer::fit(std::shared_ptr<const data::Dataset> train) {
  DL_CHECK(train && train->size() > 0, "Trainer::fit: the training set is empty");
  const auto t0 = Clock::now();
  reset_allocator_peak(o_.device);

  // "once" shuffles a single time from the seed, so a resumed run sees the same order.
  std::shared_ptr<const data::Dataset> source = train;
  if (o_.shuffle == "once") {
    Generator once(o_.seed ^ 0x9e3779b97f4a7c15ULL);
    source = std::make_shared<data::SubsetDataset>(train, random_permutation(train->size(), once));
  }
  data::DataLoaderOptions lo;
  lo.batch_size = o_.mini_batch_size;
  lo.shuffle = o_.shuffle == "every-epoch";
  data::DataLoader loader(source, lo);
  data::DeviceStager stager(o_.device);
  loader.generator().set_state(shuffle_gen_.state());

  CheckedAppendFile csv;  // every row's write checked: a full disk stops training with the file's name
  if (!o_.log_csv.empty()) {
    const bool fresh = iteration_ == 0 || !std::filesystem::exists(o_.log_csv);
    csv = CheckedAppendFile(o_.log_csv, fresh);
    if (fresh) csv.write("epoch,iteration,time_s,learn_rate,loss,accuracy,validation_loss,validation_accuracy\n");
  }
  if (!o_.checkpoint_path.empty()) {
    std::filesystem::create_directories(o_.checkpoint_path);
    check_output_path(o_.checkpoint_path + "/checkpoint_epoch1.dlck", "checkpoint");
    remove_stale_temporaries(o_.checkpoint_path);  // of a run killed while writing one
  }
  last_finite_check_ = iteration_;

  TrainingReport report;
  progress_ = std::make_unique<ProgressLine>(out_, progress_mode_);
  const int64_t first_iteration = iteration_;
  print_header();
  const int64_t per_epoch = loader.batches_per_epoch();
  const int64_t last_iteration = static_cast<int64_t>(o_.max_epochs) * per_epoch;
  int64_t images = 0;
  bool stop = false;
  double first_loss = std::numeric_limits<double>::quiet_NaN();  // Note [divergence]
  model_.train();
  while (epoch_ < o_.max_epochs && !stop) {
    const int epoch = epoch_ + 1;
    const auto te = Clock::now();
    optimizer_->set_learning_rate(learn_rate_for(epoch));
    loader.start_epoch();
    // On a device the next batch's copy is queued before the current step's work (DeviceStager), so they
    // overlap; on the CPU the next batch is read after the step, as it always was.
    const bool overlap = !o_.device.is_cpu();
    data::Batch host;
    const auto fetch = [&] {
      if (loader.next(host)) stager.prefetch(host);
    };
    fetch();
    while (!stop && stager.staged() > 0) {
      const data::Batch batch = stager.next();
      if (overlap) fetch();
      const auto ts = Clock::now();
      const Tensor logits = model_.forward(batch.inputs);
      const Tensor loss = ops::cross_entropy(logits, batch.targets, loss_);
      optimizer_->zero_grad();
      loss.backward();
      // Read after the backward is queued, so that a device computes it while the host waits; before the
      // update, so that a non-finite loss changes no weight.
      const double loss_value = loss.item<double>();
      if (std::isfinite(loss_value) && std::isnan(first_loss)) first_loss = loss_value;
      const double explosion = o_.divergence_loss_factor * std::max(1.0, std::isnan(first_loss) ? 1.0 : first_loss);
      if (std::isfinite(loss_value) && o_.divergence_loss_factor > 0 && loss_value > explosion)
        DL_THROW("training diverged: the mini-batch loss is ", loss_value, " at epoch ", epoch, ", iteration ",
                 iteration_ + 1, ", over ", o_.divergence_loss_factor, " times the first mini-batch loss ", first_loss,
                 " (learn rate ", optimizer_->learning_rate(),
                 "); lower InitialLearnRate or set GradientThreshold (TrainingOptions::divergence_loss_factor)");
      if (!std::isfinite(loss_value)) {
        // On a device, labels are checked only now (ops::cross_entropy); say so if one was out of range.
        if (!batch.targets.device().is_cpu()) ops::check_labels(batch.targets, logits.size(1), loss_.ignore_index);
        DL_THROW("training diverged: the mini-batch loss is ", loss_value, " at epoch ", epoch, ", iteration ",
                 iteration_ + 1, " (learn rate ", optimizer_->learning_rate(),
                 "); lower InitialLearnRate or set GradientThreshold",
                 batch.targets.device().is_cpu() ? "" : " (on a GPU a batch whose labels are all ignored gives NaN too)");
      }
      clip_gradients();
      if (hook_) hook_(optimizer_->params());
      optimizer_->step();
      ++iteration_;
      images += batch.size();
      report.train_seconds += since(ts);

      IterationRecord rec;
      rec.epoch = epoch;
      rec.iteration = iteration_;
      rec.learn_rate = optimizer_->learning_rate();
      rec.loss = loss_value;
      rec.accuracy = metrics::count_correct(logits, batch.targets, loss_.ignore_index).accuracy();
      const bool validate = validation_ && (iteration_ == 1 || iteration_ % o_.validation_frequency == 0 ||
                                            iteration_ == last_iteration);
      if (validate) {
        check_finite_state(epoch);
        const EvalResult v = evaluate(*validation_);
        rec.validation_loss = report.validation_loss = v.loss;
        rec.validation_accuracy = report.validation_accuracy = v.accuracy;
        if (v.loss < best_val_loss_) {
          best_val_loss_ = v.loss;
          patience_count_ = 0;
          if (o_.output_network == "best-validation-loss") {
            best_state_.clear();
            for (auto& [n, t] : model_.state()) best_state_.emplace_back(n, t.clone());
          }
        } else if (o_.validation_patience > 0 && ++patience_count_ >= o_.validation_patience) {
          stop = true;
          report.stopped_early = true;
          report.stop_reason = "validation loss did not improve for " + std::to_string(o_.validation_patience) +
                               " validations";
        }
      }
      rec.seconds = since(t0);
      report.history.push_back(rec);
      if (csv.is_open())
        csv.write(std::to_string(rec.epoch) + ',' + std::to_string(rec.iteration) + ',' + csv_num(rec.seconds) + ',' +
                  csv_num(rec.learn_rate) + ',' + csv_num(rec.loss) + ',' + csv_num(rec.accuracy) + ',' +
                  csv_num(rec.validation_loss) + ',' + csv_num(rec.validation_accuracy) + '\n');
      if (iteration_ == 1 || iteration_ % o_.verbose_frequency == 0 || validate || iteration_ == last_iteration)
        print_row(rec);
      if (progress_->in_place())
        progress_->update({epoch, o_.max_epochs, iteration_, last_iteration, rec.seconds, iteration_ - first_iteration,
                           rec.loss, report.validation_accuracy},
                          false);
      if (!overlap && !stop) fetch();
    }
    ++epoch_;
    shuffle_gen_.set_state(loader.generator().state());
    report.epoch_seconds.push_back(since(te));
    if (progress_->enabled() && !report.history.empty())
      progress_->update({epoch_, o_.max_epochs, iteration_, last_iteration, since(t0), iteration_ - first_iteration,
                         report.history.back().loss, report.validation_accuracy},
                        true);
    check_finite_state(epoch_);  // before any checkpoint: no checkpoint ever holds a diverged state
    if (!o_.checkpoint_path.empty()) {
      save_checkpoint(o_.checkpoint_path + "/checkpoint_epoch" + std::to_string(epoch_) + ".dlck");
      prune_checkpoints();
    }
  }
  csv.close();
  progress_->finish();
  progress_.reset();
  if (out_ && o_.verbose) *out_ << "|" << std::string(kTableWidth, '=') << "|\n";
  if (out_ && o_.verbose && report.stopped_early) *out_ << "Training stopped early: " << report.stop_reason << "\n";
  if (o_.output_network == "best-validation-loss" && !best_state_.empty())
    nn::load_state(model_, best_state_, "the best-validation network");

  report.epochs_completed = epoch_;
  report.iterations = iteration_;
  report.total_seconds = since(t0);
  report.images_per_second = report.train_seconds > 0 ? static_cast<double>(images) / report.train_seconds : 0;
  report.peak_rss_bytes = peak_rss_bytes();
  report.allocator_peak_bytes = allocator_stats(o_.device).peak_bytes;
  return report;
}

void Trainer::check_finite_state(int epoch) {
  if (iteration_ == last_finite_check_) return;
  const auto check = [&](const std::string& kind, const nn::NamedTensors& tensors) {
    for (const auto& [name, t] : tensors)
      if (const auto bad = first_non_finite(t))
        DL_THROW("training diverged between iterations ", last_finite_check_ + 1, " and ", iteration_, " (epoch ", epoch,
                 ", learn rate ", optimizer_->learning_rate(), "): ", kind, " tensor '", name, "' ", t.shape().str(),
                 " holds ", bad->second, " at element ", bad->first, "; lower InitialLearnRate or set GradientThreshold");
  };
  check("the model", model_.state());
  check("the optimiser state", optimizer_->state());
  last_finite_check_ = iteration_;
}

void Trainer::prune_checkpoints() const {
  if (o_.keep_checkpoints <= 0) return;
  std::vector<std::pair<int64_t, std::filesystem::path>> found;
  for (const auto& e : std::filesystem::directory_iterator(o_.checkpoint_path)) {
    const std::string name = e.path().filename().string();
    const std::string prefix = "checkpoint_epoch", suffix = ".dlck";
    if (!e.is_regular_file() || name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    found.emplace_back(std::stoll(digits), e.path());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = static_cast<size_t>(o_.keep_checkpoints); i < found.size(); ++i) {
    std::error_code ec;
    std::filesystem::remove(found[i].second, ec);
    DL_CHECK(!ec, found[i].second.string(), ": cannot remove an old checkpoint (keep_checkpoints = ",
             o_.keep_checkpoints, "): ", ec.message());
  }
}

void Trainer::save_checkpoint(const std::string& path) const {
  TensorFile f;
  f.metadata["kind"] = "training-state";
  f.metadata["solver"] = optimizer_->name();
  f.metadata["epoch"] = std::to_string(epoch_);
  f.metadata["iteration"] = std::to_string(iteration_);
  f.metadata["optimizer_steps"] = std::to_string(optimizer_->steps());
  f.metadata["best_validation_loss"] = csv_num(best_val_loss_);
  f.metadata["patience_count"] = std::to_string(patience_count_);
  const Generator::State g = shuffle_gen_.state();
  std::string gs;
  for (uint64_t w : g) gs += std::to_string(w) + " ";
  f.metadata["shuffle_generator"] = gs;
  for (auto& [n, t] : model_.state()) f.tensors.emplace_back("model." + n, t);
  for (auto& [n, t] : optimizer_->state()) f.tensors.emplace_back("optimizer." + n, t);
  for (auto& [n, t] : best_state_) f.tensors.emplace_back("best." + n, t);
  save_tensor_file(path, f);
}

void Trainer::load_checkpoint(const std::string& path) {
  const TensorFile f = load_tensor_file(path);
  auto meta = [&](const char* key) {
    auto it = f.metadata.find(key);
    DL_CHECK(it != f.metadata.end(), path, ": not a training checkpoint (no '", key, "' entry)");
    return it->second;
  };
  DL_CHECK(meta("kind") == "training-state", path, ": expected a training checkpoint, got a '", meta("kind"), "' file");
  DL_CHECK(meta("solver") == optimizer_->name(), path, ": checkpoint of solver '", meta("solver"),
           "', this trainer uses '", optimizer_->name(), "'");
  nn::NamedTensors model, optim, best;
  for (const auto& [n, t] : f.tensors) {
    if (n.rfind("model.", 0) == 0) model.emplace_back(n.substr(6), t);
    if (n.rfind("optimizer.", 0) == 0) optim.emplace_back(n.substr(10), t);
    if (n.rfind("best.", 0) == 0) best.emplace_back(n.substr(5), t);
  }
  nn::load_state(model_, model, path);  // checks every name and shape before copying
  const auto int_meta = [&](const char* key, int64_t hi) {
    return parse_int(meta(key), 0, hi, path + ": checkpoint entry '" + key + "'");
  };
  const int64_t steps = int_meta("optimizer_steps", int64_t{1} << 62);
  const int64_t epoch = int_meta("epoch", std::numeric_limits<int>::max());
  const int64_t iteration = int_meta("iteration", int64_t{1} << 62);
  const int64_t patience = int_meta("patience_count", std::numeric_limits<int>::max());
  const std::string bv = meta("best_validation_loss");
  const double best_val =
      bv.empty() ? std::numeric_limits<double>::infinity()
                 : parse_double(bv, 0, std::numeric_limits<double>::infinity(),
                                path + ": checkpoint entry 'best_validation_loss'", /*allow_inf=*/true);
  optimizer_->load_state(optim, steps, path);
  best_state_ = best;
  epoch_ = static_cast<int>(epoch);
  iteration_ = iteration;
  best_val_loss_ = best_val;
  patience_count_ = static_cast<int>(patience);
  Generator::State g{};
  std::istringstream gs(meta("shuffle_generator"));
  for (auto& w : g) gs >> w;
  DL_CHECK(!gs.fail(), path, ": corrupt shuffle_generator entry");
  shuffle_gen_.set_state(g);
}

}  // namespace dl::train
