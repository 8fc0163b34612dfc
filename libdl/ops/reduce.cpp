// The variance and standard deviation over dimensions (dl/ops/reduce.h): compositions of the mean, the
// broadcasting subtraction and the sum, so that their gradients are those ops' own.
#include "dl/ops/reduce.h"

#include <algorithm>

#include "dl/ops/elementwise.h"
#include "ops/dispatch.h"

namespace dl::ops {

using namespace detail;

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  if (is_bf16(x)) return var(float32_of(x), dims, correction, keepdim);  // Note [bf16 activations]
  check_float(x, "var", "x");
  DL_CHECK(correction >= 0, "var: expected a correction of at least 0, got ", correction);
  const Tensor m = mean(x, dims, true);  // checks the dimensions; the reduced ones keep a size of 1
  int64_t count = x.numel();             // no dimensions named: all of them
  if (!dims.empty()) {
    count = 1;
    std::vector<bool> reduced(static_cast<size_t>(x.dim()), false);
    for (int64_t d : dims) reduced[static_cast<size_t>(d < 0 ? d + x.dim() : d)] = true;
    for (int d = 0; d < x.dim(); ++d)
      if (reduced[static_cast<size_t>(d)]) count *= x.size(d);
  }
  const Tensor dev = sub(x, m);
  const Tensor ss = sum(mul(dev, dev), dims, keepdim);
  // As PyTorch: the divisor is max(0, count - correction), so too few elements give inf or NaN.
  return div(ss, static_cast<double>(std::max<int64_t>(0, count - correction)));
}

Tensor std(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  return sqrt(var(x, dims, correction, keepdim));
}

}  // namespace dl::ops
