// A small command-line parser for the example programs: "--name value" or "--name=value", several
// names per option (--max-epochs and --epochs), --help lists every option with its default.
// An unknown flag, a value that does not parse or one out of its range throws dl::Error naming both.
#pragma once
#include <cmath>
#include <functional>
#include <limits>
#include <new>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "dl/core/error.h"
#include "dl/core/parse.h"
#include "../sweep/units.h"

namespace dl::examples {

class Flags {
 public:
  explicit Flags(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

  // A value option; numbers are parsed strictly (dl/core/parse.h) and must lie in [lo, hi] (a double
  // takes infinity only when hi is infinite).
  template <typename T>
  void add(std::vector<std::string> names, T* target, std::string help, T lo = std::numeric_limits<T>::lowest(),
           T hi = std::numeric_limits<T>::max()) {
    std::ostringstream def;
    def << *target;
    options_.push_back({std::move(names), std::move(help), def.str(), false, [target, lo, hi](const std::string& v) {
                          if constexpr (std::is_same_v<T, std::string>) {
                            *target = v;
                          } else if constexpr (std::is_floating_point_v<T>) {
                            *target = static_cast<T>(dl::parse_double(v, lo, hi, "the value", std::isinf(hi)));
                          } else if constexpr (std::is_unsigned_v<T>) {
                            const uint64_t u = dl::parse_uint(v, hi, "the value");
                            DL_CHECK(u >= lo, "the value: expected at least ", lo, ", got '", v, "'");
                            *target = static_cast<T>(u);
                          } else {
                            *target = static_cast<T>(dl::parse_int(v, lo, hi, "the value"));
                          }
                          return true;
                        }});
  }
  void add_switch(std::vector<std::string> names, bool* target, std::string help) {
    options_.push_back({std::move(names), std::move(help), *target ? "on" : "off", true, [target](const std::string& v) {
                          if (v == "" || v == "1" || v == "true" || v == "on") *target = true;
                          else if (v == "0" || v == "false" || v == "off") *target = false;
                          else return false;
                          return true;
                        }});
  }

  // Returns false when --help was given (the usage has been printed).
  bool parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        usage(std::cout);
        return false;
      }
      DL_CHECK(arg.rfind("--", 0) == 0, program_, ": expected an option like --name, got '", arg, "' (see --help)");
      std::string value;
      bool has_value = false;
      const auto eq = arg.find('=');
      if (eq != std::string::npos) {
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
      bool ok = false;
      try {
        ok = opt->set(value);
      } catch (const dl::Error& e) {
        DL_THROW(program_, ": option ", arg, ": ", e.what());
      }
      DL_CHECK(ok, program_, ": option ", arg, " cannot take the value '", value, "'");
    }
    return true;
  }

  void usage(std::ostream& os) const {
    os << "Usage: " << program_ << " [options]\n" << summary_ << "\n\nOptions:\n";
    for (const auto& o : options_) {
      std::string names;
      for (const auto& n : o.names) names += (names.empty() ? "--" : ", --") + n;
      os << "  " << names << (o.is_switch ? "" : " VALUE") << "\n      " << o.help << " (default: " << o.default_text
         << ")\n";
    }
  }

 private:
  struct Option {
    std::vector<std::string> names;
    std::string help, default_text;
    bool is_switch;
    std::function<bool(const std::string&)> set;
  };
  static bool is_bool_word(const std::string& v) {
    return v == "0" || v == "1" || v == "true" || v == "false" || v == "on" || v == "off";
  }
  Option* find(const std::string& name) {
    for (auto& o : options_)
      for (const auto& n : o.names)
        if (n == name) return &o;
    return nullptr;
  }
  std::string program_, summary_;
  std::vector<Option> options_;
};

// The message of an exception that ended a program: dl::Error's own text; for anything else (a bug,
// or memory running out outside the allocator) what happened in words, never a bare C++ type name.
inline std::string error_message(const std::exception& e) {
  if (dynamic_cast<const dl::Error*>(&e)) return e.what();
  if (dynamic_cast<const std::bad_alloc*>(&e)) return std::string("out of memory (") + e.what() + ")";
  return std::string("internal error, please report it: ") + e.what();
}

// --memory-limit: 0 (none) or a size of at least 1 MiB ("512MiB", "2G"); a fraction of a byte or a
// limit no program can run under is an error, never "unlimited".
inline int64_t parse_memory_limit(const std::string& text) {
  int64_t bytes = 0;
  try {
    bytes = dl::sweep::parse_bytes(text);
  } catch (const dl::Error& e) {
    DL_THROW("--memory-limit: ", e.what());
  }
  DL_CHECK(bytes == 0 || bytes >= (int64_t{1} << 20), "--memory-limit: expected 0 (no limit) or at least 1MiB, got '",
           text, "' (", bytes, " bytes)");
  return bytes;
}

}  // namespace dl::examples
