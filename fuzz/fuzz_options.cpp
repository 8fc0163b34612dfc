// libFuzzer target: the programs' option parser (dl/train/flags.h) with every training flag,
// TrainingOptions::validate, image sizes and memory limits. The input is the command line, one
// argument a line.
#include <vector>

#include "dl/data/camvid.h"
#include "dl/train/flags.h"
#include "dl/train/options.h"
#include "dl/train/run_report.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args = {"fuzz"};
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\n') {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += static_cast<char>(data[i]);
    }
  }
  if (!cur.empty()) args.push_back(cur);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());

  dl::train::TrainingOptions o;
  std::string image_size, memory_limit = "0";
  int threads = 0;
  uint64_t seed = 0;
  int64_t subset = 0;
  bool augment = false;
  dl::train::Flags f("fuzz", "options fuzzer");
  dl::train::add_training_flags(f, o);
  f.add({"threads"}, &threads, "", 0, 1024);
  f.add({"seed"}, &seed, "");
  f.add({"train-subset"}, &subset, "", int64_t{0}, int64_t{1} << 40);
  f.add({"image-size"}, &image_size, "");
  f.add({"memory-limit"}, &memory_limit, "");
  f.add_switch({"augment"}, &augment, "");
  dl::fuzz::expect_clean([&] {
    std::ostringstream sink;
    if (!f.parse(static_cast<int>(argv.size()), argv.data())) return;
    o.validate();
    (void)dl::train::parse_memory_limit(memory_limit);
    if (!image_size.empty()) (void)dl::data::parse_image_size(image_size);
  });
  return 0;
}
