// Flags: the command line of a program, "--name value" or "--name=value", several names per option
// (--max-epochs and --epochs), --help listing every option with its default. Numbers are parsed
// strictly (dl/core/parse.h) within a range; the word-valued training options (dl/train/options.h)
// by MATLAB's names. An unknown flag, a value that does not parse or one out of its range throws
// dl::Error naming the flag, what was expected and what came.
//
//   dl::train::Flags f("train_mnist", "Trains the MNIST CNN.");
//   f.add({"max-epochs", "epochs"}, &o.max_epochs, "epochs to train", 1, 1000000);
//   f.add({"solver"}, &o.solver, "the optimiser");      // "sgdm, adam, rmsprop or adamw" is added to the help
//   add_training_flags(f, o);                            // every option of TrainingOptions at once
//   if (!f.parse(argc, argv)) return 0;                  // --help was given
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "dl/core/parse.h"
#include "dl/train/options.h"

namespace dl::train {

class Flags {
 public:
  Flags(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

  // A value option: a string, a number in [lo, hi] (a double takes infinity only when hi is
  // infinite) or a word-valued training option.
  template <typename T>
  void add(std::vector<std::string> names, T* target, std::string help, T lo = std::numeric_limits<T>::lowest(),
           T hi = std::numeric_limits<T>::max()) {
    std::string def;
    if constexpr (std::is_enum_v<T>) {
      help += " (" + option_names<T>() + ")";
      def = option_name(*target);
    } else {
      std::ostringstream s;
      s << *target;
      def = s.str();
    }
    add_option(std::move(names), std::move(help), def, false, [target, lo, hi](const std::string& v) {
      if constexpr (std::is_same_v<T, std::string> || std::is_enum_v<T>) {
        (void)lo, (void)hi;  // words have no range
      }
      if constexpr (std::is_same_v<T, std::string>) {
        *target = v;
      } else if constexpr (std::is_enum_v<T>) {
        *target = parse_option<T>(v, "");
      } else if constexpr (std::is_floating_point_v<T>) {
        *target = static_cast<T>(parse_double(v, lo, hi, "the value", std::isinf(hi)));
      } else if constexpr (std::is_unsigned_v<T>) {
        *target = static_cast<T>(parse_in_range(parse_uint(v, hi, "the value"), lo, v));
      } else {
        *target = static_cast<T>(parse_int(v, lo, hi, "the value"));
      }
    });
  }
  // An on/off option: "--verbose", "--verbose off", "--verbose=0".
  void add_switch(std::vector<std::string> names, bool* target, std::string help);

  // Returns false when --help was given (the usage has been printed to std::cout).
  bool parse(int argc, char** argv);
  void usage(std::ostream& os) const;
  const std::string& program() const { return program_; }

 private:
  struct Option {
    std::vector<std::string> names;
    std::string help, default_text;
    bool is_switch;
    std::function<void(const std::string&)> set;  // throws dl::Error on a bad value
  };
  void add_option(std::vector<std::string> names, std::string help, std::string def, bool is_switch,
                  std::function<void(const std::string&)> set);
  static uint64_t parse_in_range(uint64_t u, uint64_t lo, const std::string& text);
  Option* find(const std::string& name);

  std::string program_, summary_;
  std::vector<Option> options_;
};

// Every option of TrainingOptions as a flag with MATLAB's name in kebab case (--solver,
// --initial-learn-rate/--lr, --max-epochs/--epochs, --mini-batch-size/--batch-size, --shuffle, ...),
// except device and seed, which are the program's (dl/train/program.h).
void add_training_flags(Flags& f, TrainingOptions& o);

}  // namespace dl::train
