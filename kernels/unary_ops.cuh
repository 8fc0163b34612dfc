// The element-wise unary ops of dl/ops/activation.h and dl/ops/elementwise.h as functors, one per op: forward(x) = y
// and backward(x, y, dy) = dx, in float. The CUDA kernel family of elementwise.cuh runs them (and the tests run that
// same source under the emulation); the front ends pass them as the tag that names the op to both backends, whose CPU
// bodies (backend/cpu/elementwise.cpp) are Eigen expressions of the same math. Adding an op: its functor here and its
// name in DL_UNARY_OPS. Only host/device code here (no CUDA vocabulary), so that host-only code can name the ops.
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

// ---- math (dl/ops/elementwise.h) ----
struct ExpOp {
  DL_HD float forward(float x) const { return expf(x); }
  DL_HD float backward(float, float y, float dy) const { return dy * y; }
};

struct LogOp {  // the natural logarithm; the gradient 1/x
  DL_HD float forward(float x) const { return logf(x); }
  DL_HD float backward(float x, float, float dy) const { return dy / x; }
};

struct SqrtOp {
  DL_HD float forward(float x) const { return sqrtf(x); }
  DL_HD float backward(float, float y, float dy) const { return dy * 0.5f / y; }
};

struct RsqrtOp {  // 1 / sqrt(x); the gradient -y^3 / 2
  DL_HD float forward(float x) const { return 1.f / sqrtf(x); }
  DL_HD float backward(float, float y, float dy) const { return dy * -0.5f * y * y * y; }
};

struct AbsOp {  // the gradient sign(x), 0 at 0 as PyTorch
  DL_HD float forward(float x) const { return fabsf(x); }
  DL_HD float backward(float x, float, float dy) const { return x > 0.f ? dy : (x < 0.f ? -dy : 0.f); }
};

struct NegOp {
  DL_HD float forward(float x) const { return -x; }
  DL_HD float backward(float, float, float dy) const { return -dy; }
};

// min(max(x, lo), hi); the gradient passes where lo <= x <= hi (both ends included, as PyTorch).
struct ClampOp {
  float lo = 0.f, hi = 1.f;
  DL_HD float forward(float x) const { return x < lo ? lo : (x > hi ? hi : x); }
  DL_HD float backward(float x, float, float dy) const { return x >= lo && x <= hi ? dy : 0.f; }
};

// Every functor above: X(name) each, for the explicit instantiations of both backends.
#define DL_UNARY_OPS(X) \
  X(SigmoidOp)          \
  X(TanhOp)             \
  X(GeluOp) X(SiluOp) X(LeakyReluOp) X(EluOp) X(ExpOp) X(LogOp) X(SqrtOp) X(RsqrtOp) X(AbsOp) X(NegOp) X(ClampOp)

}  // namespace dl::kern
