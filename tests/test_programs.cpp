// What the programs of examples/ share, as library code (dl/train/flags.h, observer.h, run_report.h,
// program.h): typed options parsed by MATLAB's names, the flag parser, the observers of training
// (progress table, CSV log, a program's own), the run report, the probe and main's error frame, and
// the one path of batches to a device (DeviceBatches). No program binary is run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dl/dl.h"
#include "dl/train/program.h"

namespace {

namespace fs = std::filesystem;
using namespace dl::train;

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("libdl_programs_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const dl::Error& e) {
    return e.what();
  }
  return "";
}

// Parses a command line given as words (argv[0] added).
bool parse(Flags& f, std::vector<std::string> words) {
  words.insert(words.begin(), "program");
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  return f.parse(static_cast<int>(argv.size()), argv.data());
}

// 40 samples of 1 x 4 x 4 whose class (0 or 1) is the sign of their mean: learnt in a few steps.
std::shared_ptr<dl::data::TensorDataset> signs(int n) {
  dl::Generator gen(3);
  dl::Tensor x = dl::Tensor::randn({n, 1, 4, 4}, gen);
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    float s = 0;
    for (int k = 0; k < 16; ++k) s += x.data<float>()[i * 16 + k];
    y[static_cast<size_t>(i)] = s > 0;
  }
  return std::make_shared<dl::data::TensorDataset>(x, dl::Tensor::from_vector<int32_t>({n}, y));
}

dl::nn::MnistCnnOptions tiny_cnn() {
  return {.filters = {2}, .in_channels = 1, .height = 4, .width = 4, .num_classes = 2};
}

TEST(Options, MatlabNamesParseToTypedValuesAndBack) {
  EXPECT_EQ(parse_option<Solver>("adam", "solver"), Solver::kAdam);
  EXPECT_EQ(parse_option<Solver>("rmsprop", "solver"), Solver::kRmsProp);
  EXPECT_EQ(parse_option<Solver>("adamw", "solver"), Solver::kAdamW);
  EXPECT_EQ(parse_option<LearnRateSchedule>("piecewise", "s"), LearnRateSchedule::kPiecewise);
  EXPECT_EQ(parse_option<Shuffle>("every-epoch", "s"), Shuffle::kEveryEpoch);
  EXPECT_EQ(parse_option<GradientThresholdMethod>("global-l2norm", "g"), GradientThresholdMethod::kGlobalL2Norm);
  EXPECT_EQ(parse_option<OutputNetwork>("best-validation-loss", "o"), OutputNetwork::kBestValidationLoss);
  EXPECT_EQ(option_name(Shuffle::kNever), "never");
  EXPECT_EQ(option_name(GradientThresholdMethod::kAbsoluteValue), "absolute-value");
  EXPECT_EQ(option_names<Solver>(), "sgdm, adam, rmsprop or adamw");
  // The error names the option, what was expected and what came.
  const std::string e = error_of([] { parse_option<Shuffle>("Every-Epoch", "TrainingOptions::shuffle"); });
  EXPECT_NE(e.find("TrainingOptions::shuffle: expected once, every-epoch or never, got 'Every-Epoch'"),
            std::string::npos)
      << e;
  TrainingOptions o;
  o.solver = static_cast<Solver>(7);  // a value without a name
  EXPECT_THROW(o.validate(), dl::Error);
}

TEST(Flags, ParseNamesRangesSwitchesAndEnums) {
  TrainingOptions o;
  std::string data = "here";
  Flags f("prog", "a program");
  add_training_flags(f, o);
  f.add({"data"}, &data, "the data");
  EXPECT_TRUE(parse(f, {"--solver", "adam", "--epochs=3", "--lr", "0.5", "--shuffle", "never", "--verbose", "off",
                        "--gradient-threshold", "inf", "--data", "there", "--output-network=best-validation-loss"}));
  EXPECT_EQ(o.solver, Solver::kAdam);
  EXPECT_EQ(o.max_epochs, 3);
  EXPECT_EQ(o.initial_learn_rate, 0.5);
  EXPECT_EQ(o.shuffle, Shuffle::kNever);
  EXPECT_FALSE(o.verbose);
  EXPECT_TRUE(std::isinf(o.gradient_threshold));
  EXPECT_EQ(o.output_network, OutputNetwork::kBestValidationLoss);
  EXPECT_EQ(data, "there");
  EXPECT_TRUE(parse(f, {"--verbose"}));
  EXPECT_TRUE(o.verbose);

  const auto err = [&](std::vector<std::string> words) { return error_of([&] { parse(f, words); }); };
  EXPECT_NE(err({"--solver", "Adam"}).find("option --solver: expected sgdm, adam, rmsprop or adamw, got 'Adam'"),
            std::string::npos);
  EXPECT_NE(err({"--epochs", "0"}).find("--epochs"), std::string::npos);
  EXPECT_NE(err({"--epochs", "2.5"}).find("got '2.5'"), std::string::npos);
  EXPECT_NE(err({"--no-such-flag", "1"}).find("unknown option '--no-such-flag'"), std::string::npos);
  EXPECT_NE(err({"--lr"}).find("needs a value"), std::string::npos);
  EXPECT_NE(err({"stray"}).find("expected an option like --name, got 'stray'"), std::string::npos);
  EXPECT_NE(err({"--verbose=maybe"}).find("got 'maybe'"), std::string::npos);

  std::ostringstream usage;
  f.usage(usage);
  EXPECT_NE(usage.str().find("--solver VALUE"), std::string::npos);
  EXPECT_NE(usage.str().find("(sgdm, adam, rmsprop or adamw) (default: sgdm)"), std::string::npos) << usage.str();
  EXPECT_NE(usage.str().find("--max-epochs, --epochs VALUE"), std::string::npos);
}

TEST(Flags, MemoryLimitAndErrorMessages) {
  EXPECT_EQ(parse_memory_limit("0"), 0);
  EXPECT_EQ(parse_memory_limit("512MiB"), int64_t{512} << 20);
  EXPECT_EQ(parse_memory_limit("2G"), int64_t{2} << 30);
  EXPECT_NE(error_of([] { parse_memory_limit("1K"); }).find("at least 1MiB"), std::string::npos);
  EXPECT_NE(error_of([] { parse_memory_limit("lots"); }).find("--memory-limit"), std::string::npos);
  EXPECT_EQ(error_message(std::bad_alloc()).rfind("out of memory", 0), 0u);
  EXPECT_EQ(error_message(std::runtime_error("x")).rfind("internal error", 0), 0u);
}

// An observer that records what fit() told it.
struct Recorder : TrainingObserver {
  std::vector<std::string> calls;
  FitStart start;
  void on_start(const FitStart& s) override {
    start = s;
    calls.push_back("start");
  }
  void on_iteration(const IterationRecord& r) override {
    calls.push_back("iteration " + std::to_string(r.iteration) + (std::isnan(r.validation_loss) ? "" : " validated"));
  }
  void on_epoch_end(const IterationRecord& last, double) override {
    calls.push_back("epoch " + std::to_string(last.epoch));
  }
  void on_end(const TrainingReport& r) override { calls.push_back("end " + std::to_string(r.iterations)); }
};

TEST(Observers, FitTellsEveryObserverInOrder) {
  dl::Generator gen(1);
  dl::nn::MnistCnn model(tiny_cnn(), gen);
  TrainingOptions o;
  o.max_epochs = 2;
  o.mini_batch_size = 20;
  o.validation_frequency = 0;  // once per epoch
  o.verbose = false;
  Trainer t(model, o);
  t.set_validation_data(signs(10));
  Recorder rec;
  t.add_observer(rec);
  t.fit(signs(40));
  const std::vector<std::string> want = {"start",
                                         "iteration 1 validated",
                                         "iteration 2 validated",
                                         "epoch 1",
                                         "iteration 3",
                                         "iteration 4 validated",
                                         "epoch 2",
                                         "end 4"};
  EXPECT_EQ(rec.calls, want);
  EXPECT_EQ(rec.start.last_iteration, 4);
}

TEST(Observers, ProgressTableAndCsvLog) {
  const fs::path dir = temp_dir("observers");
  dl::Generator gen(1);
  dl::nn::MnistCnn model(tiny_cnn(), gen);
  TrainingOptions o;
  o.max_epochs = 3;
  o.mini_batch_size = 10;
  o.verbose_frequency = 5;
  o.validation_frequency = 6;
  o.log_csv = (dir / "log.csv").string();
  std::ostringstream out;
  Trainer t(model, o);
  t.set_output(&out);
  t.set_progress(ProgressMode::kPlain);
  t.set_validation_data(signs(10));
  t.fit(signs(40));
  const std::string table = out.str();
  EXPECT_NE(table.find("|  Epoch  |  Iteration  |  Time Elapsed  |"), std::string::npos) << table;
  // The options the run trained with, by MATLAB's names, once before the table.
  EXPECT_EQ(table.rfind("Training with Solver sgdm, InitialLearnRate 0.01, LearnRateSchedule none, MaxEpochs 3, "
                        "MiniBatchSize 10, Shuffle once, L2Regularization 0.0001, Momentum 0.9, ",
                        0),
            0u)
      << table;
  EXPECT_NE(table.find("ValidationFrequency 6, ValidationPatience Inf"), std::string::npos) << table;
  int rows = 0;  // iterations 1, 5, 6 (validated), 10, 12 (validated, the last)
  std::istringstream lines(table);
  for (std::string line; std::getline(lines, line);) rows += line.rfind("|       ", 0) == 0 && std::isdigit(line[8]);
  EXPECT_EQ(rows, 5) << table;
  EXPECT_NE(table.find("epoch 3/3 | iteration 12/12"), std::string::npos) << table;  // the plain progress line
  const std::string csv = slurp(o.log_csv);
  EXPECT_EQ(csv.rfind("epoch,iteration,time_s,learn_rate,loss,accuracy,validation_loss,validation_accuracy\n", 0), 0u);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 12);
  fs::remove_all(dir);
}

TEST(DeviceBatches, EveryBatchInOrderOnTheCpu) {
  auto d = signs(10);
  std::vector<int64_t> firsts, sizes;
  dl::data::for_each_batch(*d, 4, dl::Device::cpu(), [&](const dl::data::Batch& b, int64_t first) {
    firsts.push_back(first);
    sizes.push_back(b.size());
    EXPECT_EQ(b.inputs.to_vector_f32()[0], d->get_batch({first}).inputs.to_vector_f32()[0]);
  });
  EXPECT_EQ(firsts, (std::vector<int64_t>{0, 4, 8}));
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2}));
  EXPECT_THROW(dl::data::for_each_batch(*d, 0, dl::Device::cpu(), [](const dl::data::Batch&, int64_t) {}), dl::Error);
}

TEST(RunReport, WritesStatusConfigAndMemory) {
  const fs::path dir = temp_dir("report");
  RunReport r("prog");
  r.config()["answer"] = 42;
  r.write("ok");  // no path: nothing written
  r.set_path((dir / "r.json").string());
  r.write("failed", "it broke");
  const dl::Json j = dl::Json::parse(slurp(dir / "r.json"));
  EXPECT_EQ(j.string_at("program"), "prog");
  EXPECT_EQ(j.string_at("status"), "failed");
  EXPECT_EQ(j.string_at("error"), "it broke");
  EXPECT_EQ(j.number_at("config.answer"), 42);
  EXPECT_GT(j.number_at("memory.peak_rss_bytes"), 0);
  EXPECT_EQ(j.string_at("memory.device"), "cpu");
  fs::remove_all(dir);
}

TEST(RunMain, ErrorsBecomeStatusOneAndAFailedReport) {
  std::string reported;
  EXPECT_EQ(run_main("prog", [] {}), 0);
  EXPECT_EQ(run_main(
                "prog", [] { DL_THROW("bad input"); }, [&](const std::string& e) { reported = e; }),
            1);
  EXPECT_NE(reported.find("bad input"), std::string::npos);
}

TEST(TrainingProgram, ProbeTrainsExactlyTheStepsAndReports) {
  const fs::path dir = temp_dir("probe");
  TrainingOptions recipe;
  recipe.mini_batch_size = 8;
  recipe.verbose = false;
  TrainingProgram p("prog", "a program", recipe);
  const std::string report = (dir / "r.json").string();
  std::string words[] = {"prog", "--probe-steps", "3",   "--max-epochs", "5", "--report-json",
                         report, "--progress",    "off", "--seed",       "4"};
  char* argv[std::size(words)];
  for (size_t i = 0; i < std::size(words); ++i) argv[i] = words[i].data();
  TrainingReport r;
  const int status = p.run(static_cast<int>(std::size(words)), argv, [&] {
    dl::nn::MnistCnn model(tiny_cnn());
    Trainer t(model, p.options());
    t.set_validation_data(signs(10));  // dropped by the probe
    r = p.fit(t, signs(5));            // fewer samples than 3 batches: repeated
  });
  EXPECT_EQ(status, 0);
  EXPECT_TRUE(p.probing());
  EXPECT_EQ(r.iterations, 3);
  EXPECT_EQ(r.epochs_completed, 1);
  EXPECT_TRUE(std::isnan(r.validation_loss));
  const dl::Json j = dl::Json::parse(slurp(report));
  EXPECT_EQ(j.string_at("status"), "ok");
  EXPECT_EQ(j.number_at("training.iterations"), 3);
  EXPECT_EQ(j.number_at("config.max_epochs"), 1);
  EXPECT_EQ(j.number_at("config.seed"), 4);
  EXPECT_EQ(j.string_at("config.solver"), "sgdm");

  // A bad flag value fails before the body runs.
  std::string bad[] = {"prog", "--shuffle", "sometimes"};
  char* bad_argv[] = {bad[0].data(), bad[1].data(), bad[2].data()};
  bool ran = false;
  EXPECT_EQ(TrainingProgram("prog", "", recipe).run(3, bad_argv, [&] { ran = true; }), 1);
  EXPECT_FALSE(ran);
  fs::remove_all(dir);
}

TEST(TrainingProgram, FirstNRepeatsTheDataSet) {
  auto d = signs(3);
  EXPECT_EQ(first_n(d, 0), d);
  const auto f = first_n(d, 7);
  EXPECT_EQ(f->size(), 7);
  EXPECT_EQ(f->get_batch({4}).inputs.to_vector_f32(), d->get_batch({1}).inputs.to_vector_f32());
}

}  // namespace
