// The broadcasting element-wise family's shared vocabulary: the strided index that maps an output
// element to the elements of its operands (NumPy broadcasting is a stride of 0), and the binary ops as
// functors, one per op, templated on the element type: operator()(a, b) = y, and grad_a / grad_b (a, b,
// y, dy) the partial derivatives times dy. The CUDA kernels of broadcast.cuh and the CPU loops of
// backend/cpu/broadcast.cpp both run these functors, so the math is written once; the front ends
// (ops/elementwise.cpp) pass them as the tag that names the op to both backends. Adding an op: its
// functor here and its name in DL_BINARY_OPS (or DL_COMPARE_OPS). Host/device code only, no CUDA
// vocabulary, so that host-only code can name the ops.
#pragma once
#include <cmath>
#include <cstdint>

#include "hostdevice.cuh"

namespace dl::kern {

// The most dimensions a broadcast index takes (dl::kMaxDims; a static_assert in ops/broadcast.cpp).
constexpr int kMaxIndexDims = 8;

// Element offsets of N operands for each linear index of a row-major iteration space of `size`
// (ndim 0: one element at offset 0). stride[k][d] is operand k's step in elements along dimension d,
// 0 where it is broadcast.
template <int N>
struct StridedIndex {
  int ndim = 0;
  int64_t size[kMaxIndexDims] = {};
  int64_t stride[N][kMaxIndexDims] = {};

  DL_HD void offsets(int64_t i, int64_t (&o)[N]) const {
    for (int k = 0; k < N; ++k) o[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t q = i / size[d];
      const int64_t r = i - q * size[d];
      for (int k = 0; k < N; ++k) o[k] += r * stride[k][d];
      i = q;
    }
  }
  DL_HD int64_t offset(int64_t i) const {  // N == 1
    int64_t o[N];
    offsets(i, o);
    return o[0];
  }
};

// What each partial derivative reads, so that the front end saves only that for the backward
// (kGradA, kGradB of each functor; the backward kernels take null for what was not saved).
enum : unsigned { kUsesA = 1, kUsesB = 2, kUsesY = 4 };

// float and double math under one name (the device has no std:: overloads).
DL_HD float math_pow(float a, float b) { return powf(a, b); }
DL_HD double math_pow(double a, double b) { return pow(a, b); }
DL_HD float math_log(float a) { return logf(a); }
DL_HD double math_log(double a) { return log(a); }

struct AddOp {
  static constexpr bool kLinear = true;  // the gradients are dy and dy: no kernel needed
  static constexpr unsigned kGradA = 0, kGradB = 0;
  template <typename T>
  DL_HD T operator()(T a, T b) const {
    return a + b;
  }
  template <typename T>
  DL_HD T grad_a(T, T, T, T dy) const {
    return dy;
  }
  template <typename T>
  DL_HD T grad_b(T, T, T, T dy) const {
    return dy;
  }
};

struct SubOp {
  static constexpr bool kLinear = true;  // dy and -dy
  static constexpr unsigned kGradA = 0, kGradB = 0;
  template <typename T>
  DL_HD T operator()(T a, T b) const {
    return a - b;
  }
  template <typename T>
  DL_HD T grad_a(T, T, T, T dy) const {
    return dy;
  }
  template <typename T>
  DL_HD T grad_b(T, T, T, T dy) const {
    return -dy;
  }
};

struct MulOp {
  static constexpr bool kLinear = false;
  static constexpr unsigned kGradA = kUsesB, kGradB = kUsesA;
  template <typename T>
  DL_HD T operator()(T a, T b) const {
    return a * b;
  }
  template <typename T>
  DL_HD T grad_a(T, T b, T, T dy) const {
    return dy * b;
  }
  template <typename T>
  DL_HD T grad_b(T a, T, T, T dy) const {
    return dy * a;
  }
};

struct DivOp {
  static constexpr bool kLinear = false;
  static constexpr unsigned kGradA = kUsesB, kGradB = kUsesB | kUsesY;
  template <typename T>
  DL_HD T operator()(T a, T b) const {
    return a / b;
  }
  template <typename T>
  DL_HD T grad_a(T, T b, T, T dy) const {
    return dy / b;
  }
  template <typename T>
  DL_HD T grad_b(T, T b, T y, T dy) const {  // -dy a / b^2, as (a / b) / b: no overflow of b^2
    return -dy * y / b;
  }
};

// a^b. As PyTorch: the gradient for a is 0 where b == 0 (also at a == 0), and for b it is 0 where
// a == 0 and b >= 0 (the limit of a^b log a); elsewhere a^b log a, NaN for a < 0.
struct PowOp {
  static constexpr bool kLinear = false;
  static constexpr unsigned kGradA = kUsesA | kUsesB, kGradB = kUsesA | kUsesB | kUsesY;
  template <typename T>
  DL_HD T operator()(T a, T b) const {
    return math_pow(a, b);
  }
  template <typename T>
  DL_HD T grad_a(T a, T b, T, T dy) const {
    return b == T(0) ? T(0) : dy * b * math_pow(a, b - T(1));
  }
  template <typename T>
  DL_HD T grad_b(T a, T b, T y, T dy) const {
    return a == T(0) && b >= T(0) ? T(0) : dy * y * math_log(a);
  }
};

// max(a, b); on a tie each side gets half of dy, and a side gets 0 only where it is strictly the smaller
// (so a NaN operand gives dy to both), as PyTorch.
struct MaximumOp {
  static constexpr bool kLinear = false;
  static constexpr unsigned kGradA = kUsesA | kUsesB, kGradB = kUsesA | kUsesB;
  template <typename T>
  DL_HD T operator()(T a, T b) const {
    return a != a || a > b ? a : b;  // NaN propagates from either side
  }
  template <typename T>
  DL_HD T grad_a(T a, T b, T, T dy) const {
    return a < b ? T(0) : (a == b ? T(0.5) * dy : dy);
  }
  template <typename T>
  DL_HD T grad_b(T a, T b, T, T dy) const {
    return b < a ? T(0) : (a == b ? T(0.5) * dy : dy);
  }
};

struct MinimumOp {
  static constexpr bool kLinear = false;
  static constexpr unsigned kGradA = kUsesA | kUsesB, kGradB = kUsesA | kUsesB;
  template <typename T>
  DL_HD T operator()(T a, T b) const {
    return a != a || a < b ? a : b;
  }
  template <typename T>
  DL_HD T grad_a(T a, T b, T, T dy) const {
    return a > b ? T(0) : (a == b ? T(0.5) * dy : dy);
  }
  template <typename T>
  DL_HD T grad_b(T a, T b, T, T dy) const {
    return b > a ? T(0) : (a == b ? T(0.5) * dy : dy);
  }
};

// Comparisons: 1 where true, else 0 (a uint8 mask); NaN compares false except in NeOp, as IEEE.
struct EqOp {
  template <typename T>
  DL_HD bool operator()(T a, T b) const {
    return a == b;
  }
};
struct NeOp {
  template <typename T>
  DL_HD bool operator()(T a, T b) const {
    return a != b;
  }
};
struct LtOp {
  template <typename T>
  DL_HD bool operator()(T a, T b) const {
    return a < b;
  }
};
struct LeOp {
  template <typename T>
  DL_HD bool operator()(T a, T b) const {
    return a <= b;
  }
};
struct GtOp {
  template <typename T>
  DL_HD bool operator()(T a, T b) const {
    return a > b;
  }
};
struct GeOp {
  template <typename T>
  DL_HD bool operator()(T a, T b) const {
    return a >= b;
  }
};

// Every functor above, X(name) each, for the explicit instantiations of both backends.
#define DL_BINARY_OPS(X) X(AddOp) X(SubOp) X(MulOp) X(DivOp) X(PowOp) X(MaximumOp) X(MinimumOp)
#define DL_COMPARE_OPS(X) X(EqOp) X(NeOp) X(LtOp) X(LeOp) X(GtOp) X(GeOp)

}  // namespace dl::kern
