// Generator: the library's seeded random source (xoshiro256**). Same seed, same calls, same numbers
// on every machine; its state can be saved and restored, so a resumed run continues the sequence.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace dl {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) { manual_seed(seed); }
  void manual_seed(uint64_t seed);

  uint64_t next_u64();
  double uniform();            // [0, 1)
  double normal();             // N(0, 1), Box-Muller
  uint64_t below(uint64_t n);  // uniform in [0, n), unbiased

  using State = std::array<uint64_t, 6>;  // 4 words of xoshiro, a cached normal and its flag
  State state() const;
  void set_state(const State& s);

 private:
  std::array<uint64_t, 4> s_{};
  double cached_normal_ = 0.0;
  bool has_cached_normal_ = false;
};

// 0, 1, ..., n-1 in an order drawn from `g` (Fisher-Yates from the back: the one shuffle of libdl, so a
// data loader, a split and a trainer given the same generator state give the same order).
std::vector<int64_t> random_permutation(int64_t n, Generator& g);

// The process-wide generator used when none is passed (initialisers, shuffling by default).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace dl
