// The element-wise unary ops of dl/ops/activation.h as functors, one per op: forward(x) = y and
// backward(x, y, dy) = dx, in float. The CUDA kernel family of elementwise.cuh runs them (and the tests
// run that same source under the emulation); the front ends pass them as the tag that names the op to
// both backends, whose CPU bodies (backend/cpu/elementwise.cpp) are Eigen expressions of the same math.
// Adding an op: its functor here and its name in DL_UNARY_OPS. Only host/device code here (no CUDA
// vocabulary), so that host-only code can name the ops.
#pragma once
#include <cmath>

#include "hostdevice.cuh"

namespace dl::kern {

struct SigmoidOp {  // 1 / (1 + e^-x)
  DL_HD float forward(float x) const { return 1.f / (1.f + expf(-x)); }
  DL_HD float backward(float, float y, float dy) const { return dy * y * (1.f - y); }
};

struct TanhOp {
  DL_HD float forward(float x) const { return tanhf(x); }
  DL_HD float backward(float, float y, float dy) const { return dy * (1.f - y * y); }
};

// x Phi(x), Phi the standard normal distribution function in its erf form (PyTorch's default GELU).
struct GeluOp {
  DL_HD float forward(float x) const { return 0.5f * x * (1.f + erff(x * 0.70710678118654752f)); }
  DL_HD float backward(float x, float, float dy) const {
    return dy * (0.5f * (1.f + erff(x * 0.70710678118654752f)) + x * 0.39894228040143268f * expf(-0.5f * x * x));
  }
};

struct SiluOp {  // x sigmoid(x)
  DL_HD float forward(float x) const { return x / (1.f + expf(-x)); }
  DL_HD float backward(float x, float, float dy) const {
    const float s = 1.f / (1.f + expf(-x));
    return dy * s * (1.f + x * (1.f - s));
  }
};

struct LeakyReluOp {  // x > 0 ? x : slope x
  float slope = 0.01f;
  DL_HD float forward(float x) const { return x > 0.f ? x : slope * x; }
  DL_HD float backward(float x, float, float dy) const { return x > 0.f ? dy : slope * dy; }
};

struct EluOp {  // x > 0 ? x : alpha (e^x - 1)
  float alpha = 1.f;
  DL_HD float forward(float x) const { return x > 0.f ? x : alpha * expm1f(x); }
  DL_HD float backward(float x, float y, float dy) const { return x > 0.f ? dy : dy * (y + alpha); }
};

// Every functor above: X(name) each, for the explicit instantiations of both backends.
#define DL_UNARY_OPS(X) X(SigmoidOp) X(TanhOp) X(GeluOp) X(SiluOp) X(LeakyReluOp) X(EluOp)

}  // namespace dl::kern
