// The command-line parser of the programs and the flags of TrainingOptions.
#include "dl/train/flags.h"

#include <iostream>

#include "dl/core/error.h"

namespace dl::train {

namespace {
bool is_bool_word(const std::string& v) {
  return v == "0" || v == "1" || v == "true" || v == "false" || v == "on" || v == "off";
}
}  // namespace

void Flags::add_option(std::vector<std::string> names, std::string help, std::string def, bool is_switch,
                       std::function<void(const std::string&)> set) {
  options_.push_back({std::move(names), std::move(help), std::move(def), is_switch, std::move(set)});
}

uint64_t Flags::parse_in_range(uint64_t u, uint64_t lo, const std::string& text) {
  DL_CHECK(u >= lo, "the value: expected at least ", lo, ", got '", text, "'");
  return u;
}

void Flags::add_switch(std::vector<std::string> names, bool* target, std::string help) {
  add_option(std::move(names), std::move(help), *target ? "on" : "off", true, [target](const std::string& v) {
    if (v == "" || v == "1" || v == "true" || v == "on")
      *target = true;
    else if (v == "0" || v == "false" || v == "off")
      *target = false;
    else
      DL_THROW("expected on, off, true, false, 1 or 0, got '", v, "'");
  });
}

bool Flags::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(std::cout);
      return false;
    }
    DL_CHECK(arg.rfind("--", 0) == 0, program_, ": expected an option like --name, got '", arg, "' (see --help)");
    std::string value;
    bool has_value = false;
    if (const auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    Option* opt = find(arg.substr(2));
    DL_CHECK(opt, program_, ": unknown option '", arg, "' (see --help)");
    if (!has_value && !opt->is_switch) {
      DL_CHECK(i + 1 < argc, program_, ": option ", arg, " needs a value");
      value = argv[++i];
    } else if (!has_value && i + 1 < argc && is_bool_word(argv[i + 1])) {
      value = argv[++i];  // "--verbose off"
    }
    try {
      opt->set(value);
    } catch (const Error& e) {
      DL_THROW(program_, ": option ", arg, ": ", e.what());
    }
  }
  return true;
}

void Flags::usage(std::ostream& os) const {
  os << "Usage: " << program_ << " [options]\n" << summary_ << "\n\nOptions:\n";
  for (const auto& o : options_) {
    std::string names;
    for (const auto& n : o.names) names += (names.empty() ? "--" : ", --") + n;
    os << "  " << names << (o.is_switch ? "" : " VALUE") << "\n      " << o.help << " (default: " << o.default_text
       << ")\n";
  }
}

Flags::Option* Flags::find(const std::string& name) {
  for (auto& o : options_)
    for (const auto& n : o.names)
      if (n == name) return &o;
  return nullptr;
}

void add_training_flags(Flags& f, TrainingOptions& o) {
  constexpr int kBig = 1000000000;
  f.add({"solver"}, &o.solver, "the optimiser");
  f.add({"initial-learn-rate", "lr"}, &o.initial_learn_rate, "initial learning rate", 1e-12, 1e6);
  f.add({"learn-rate-schedule"}, &o.learn_rate_schedule, "the learning-rate schedule");
  f.add({"learn-rate-drop-factor"}, &o.learn_rate_drop_factor, "factor of each piecewise drop (exponential: per epoch)",
        0.0, 1.0);
  f.add({"learn-rate-drop-period"}, &o.learn_rate_drop_period, "epochs between drops", 1, 1000000);
  f.add({"learn-rate-warmup"}, &o.learn_rate_warmup_iterations, "iterations of linear warm-up before the schedule", 0,
        kBig);
  f.add({"max-epochs", "epochs"}, &o.max_epochs, "epochs to train", 1, 1000000);
  f.add({"mini-batch-size", "batch-size"}, &o.mini_batch_size, "mini-batch size", int64_t{1}, int64_t{1} << 31);
  f.add({"shuffle"}, &o.shuffle, "when to shuffle the training data");
  f.add({"validation-frequency"}, &o.validation_frequency, "iterations between validations (0: once per epoch)", 0,
        kBig);
  f.add({"validation-patience"}, &o.validation_patience, "validations without improvement before stopping (0: never)",
        0, kBig);
  f.add({"l2-regularization"}, &o.l2_regularization, "L2 regularisation factor", 0.0, 1e6);
  f.add({"momentum"}, &o.momentum, "sgdm momentum", 0.0, 0.999999);
  f.add({"gradient-decay-factor"}, &o.gradient_decay_factor, "adam beta1", 0.0, 0.999999);
  f.add({"squared-gradient-decay-factor"}, &o.squared_gradient_decay_factor, "adam beta2 / rmsprop decay", 0.0,
        0.999999);
  f.add({"epsilon"}, &o.epsilon, "adam / rmsprop epsilon", 1e-30, 1.0);
  f.add({"gradient-threshold"}, &o.gradient_threshold, "gradient clipping threshold (inf: off)", 1e-30,
        std::numeric_limits<double>::infinity());
  f.add({"gradient-threshold-method"}, &o.gradient_threshold_method, "how gradients are clipped");
  f.add_switch({"verbose"}, &o.verbose, "print the progress table");
  f.add({"verbose-frequency"}, &o.verbose_frequency, "iterations between table rows", 1, kBig);
  f.add({"checkpoint-path"}, &o.checkpoint_path, "folder for a checkpoint per epoch (empty: none)");
  f.add({"keep-checkpoints"}, &o.keep_checkpoints, "keep only the newest N checkpoints of --checkpoint-path (0: all)",
        0, 1000000);
  f.add({"output-network"}, &o.output_network, "the network fit returns");
  f.add({"precision"}, &o.precision, "what convolution and linear compute in (weights and statistics stay fp32)");
  f.add({"memory-format"}, &o.memory_format, "the activations' memory format (the weights keep theirs)");
  f.add_switch({"loss-scaling"}, &o.loss_scaling,
               "dynamic loss scaling: skip a step whose gradients overflow (always on with fp16)");
  f.add({"log-csv"}, &o.log_csv, "CSV file with a row per iteration (empty: none)");
  f.add_switch({"sync-batch-norm"}, &o.sync_batch_norm,
               "under a launcher, batch-norm statistics of every rank's share together");
}

}  // namespace dl::train
