// Dropout: in training, each element is zeroed with probability p and the others scaled by 1 / (1 - p);
// outside training, the identity. float32 or float64, any shape.
#pragma once
#include "dl/core/rng.h"
#include "dl/core/tensor.h"

namespace dl::ops {

// The mask comes from one 64-bit draw of `gen` (the generator's state is all there is to reproduce a
// run) through a counter-based hash of the element's index: the CPU and CUDA draw the same mask for the
// same draw, and the backward recomputes it rather than storing it. p in [0, 1); p = 0 or
// training = false returns x itself.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());

}  // namespace dl::ops
