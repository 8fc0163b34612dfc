// dl::testing::gradcheck: finite-difference gradient checks of ops, libdl's own and users' (custom ops
// of dl/ops/custom.h), in float64 on the CPU (after Caffe's GradientChecker). No test framework needed:
// the result says what differs, and converts to GoogleTest's AssertionResult with that report.
//
// For a function f(inputs) -> Tensor of any shape, the checker forms the scalar L = sum(f(x) * R) with
// R a fixed random tensor (so every output element gets its own weight), back-propagates L for the
// analytic gradients, and compares them element by element with central differences
// (L(x + h e_i) - L(x - h e_i)) / 2h at a fixed step h.
//
// Note [gradcheck tolerance]: h = 1e-6 in double leaves a truncation error of O(h^2 f''') ~ 1e-12 and a
// rounding error of O(eps |L| / h) ~ 1e-10 |L|; an element passes when
// |analytic - numeric| <= 1e-6 + 1e-4 |numeric|. The step and the tolerance are fixed: never retried,
// never loosened per op. Ops with kinks (ReLU at 0, max pooling at ties) are checked on inputs that
// stay away from the kinks, not with looser bounds.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dl/core/tensor.h"

namespace dl::testing {

// Note [gradcheck tolerance]
inline constexpr double kGradcheckStep = 1e-6;
inline constexpr double kGradcheckAtol = 1e-6;
inline constexpr double kGradcheckRtol = 1e-4;

struct GradcheckOptions {
  uint64_t seed = 1234;  // of the output weights R
  int max_reported = 8;  // mismatches kept in the result and listed in its message
};

// One gradient element outside the bound.
struct GradcheckMismatch {
  size_t input = 0;     // index into the inputs
  int64_t element = 0;  // flat (row-major) index into that input
  double analytic = 0;  // from backward(); 0 where no gradient reached the input
  double numeric = 0;   // central difference
};

struct GradcheckResult {
  bool ok = false;
  int64_t checked = 0;                        // gradient elements compared
  int64_t failures = 0;                       // of those, outside the bound
  double worst = 0;                           // largest |analytic - numeric| / bound (<= 1 when ok)
  std::vector<GradcheckMismatch> mismatches;  // the first max_reported failures
  std::string message;                        // one line per reported mismatch, or the summary

  explicit operator bool() const { return ok; }
  // Throws dl::Error carrying `message` unless ok.
  void throw_if_failed() const;
  // To a test framework's assertion type built from a bool and streamed into (GoogleTest's
  // ::testing::AssertionResult): EXPECT_TRUE(dl::testing::gradcheck(...)) prints the report.
  template <typename Assertion>
  requires requires(Assertion& a, const std::string& s) {
    Assertion(true);
    a << s;
  }
  operator Assertion() const {
    Assertion a(ok);
    a << message;
    return a;
  }
};

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks the gradients of f with respect to the inputs flagged in `wrt` (all when empty). Those inputs
// must be float64 CPU tensors (the others, labels say, anything); they are cloned, so the caller's
// tensors are left untouched. f must return float64 with a graph, and is called 2 n + 1 times for n
// checked elements: it must be deterministic. Misuse (wrong dtype, device, `wrt` length, a result
// without a graph or of a gradient's wrong shape) throws dl::Error; differing gradients are the result.
GradcheckResult gradcheck(const GradFn& f, const std::vector<Tensor>& inputs, std::vector<bool> wrt = {},
                          const GradcheckOptions& options = {});

}  // namespace dl::testing
