// What the libFuzzer targets share: the input written to a file of this process (the readers take
// paths), and the rule every target checks: bad input ends in dl::Error, never in a crash, a hang, a
// sanitizer report or another exception (std::bad_alloc, std::length_error: those escape and libFuzzer
// reports them).
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "dl/core/error.h"

namespace dl::fuzz {

inline std::string input_file(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string path = "/tmp/dl_fuzz_" + std::to_string(::getpid()) + suffix;
  static const struct Remove {
    const std::string& p;
    ~Remove() { ::unlink(p.c_str()); }
  } remove_at_exit{path};
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return path;
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

// Runs f; a dl::Error is the expected answer to a bad input.
template <typename F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const dl::Error&) {
  }
}

}  // namespace dl::fuzz
