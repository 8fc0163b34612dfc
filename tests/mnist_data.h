// The MNIST folder of the end-to-end tests: DL_MNIST_DIR when set, else data/mnist when
// scripts/fetch_mnist.sh has filled it, else a generated set (dl/data/mnist_synth.h) written once
// into the build's temporary folder. The tests never skip for want of data.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "dl/data/mnist_synth.h"

namespace dl::testing {

inline std::string mnist_dir() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("DL_MNIST_DIR")) return env;
  const auto complete = [](const fs::path& d) {
    for (const char* f :
         {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
      if (!fs::exists(d / f) && !fs::exists(d / (std::string(f) + ".gz"))) return false;
    return true;
  };
  const fs::path real = fs::path(DL_SOURCE_DIR) / "data" / "mnist";
  if (complete(real)) return real.string();
  const fs::path synth = fs::temp_directory_path() / "libdl_test_synthetic_mnist_v1";
  if (!complete(synth)) dl::data::write_synthetic_mnist(synth.string());
  std::printf("no MNIST in %s: using the generated digits of %s\n", real.c_str(), synth.c_str());
  return synth.string();
}

}  // namespace dl::testing
