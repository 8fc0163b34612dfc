// A counter-based uniform draw shared by the CPU bodies and the CUDA kernels: splitmix64 of
// seed + i * (the golden ratio in 64 bits), so element i of a call never depends on the launch shape
// or the thread count. Host/device code only (no CUDA vocabulary).
#pragma once
#include <cstdint>

#include "hostdevice.cuh"

namespace dl::kern {

// A uniform float in [0, 1) with 24 random bits, for element i of the call seeded by `seed`.
DL_HD float dropout_uniform(uint64_t seed, int64_t i) {
  uint64_t z = seed + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.f / 16777216.f);
}

}  // namespace dl::kern
