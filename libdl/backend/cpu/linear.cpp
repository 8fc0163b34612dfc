// CPU fully connected layer: Eigen GEMMs over row-major maps (x N x I, w O x I).
#include <Eigen/Core>

#include "backend/cpu/parallel.h"

namespace dl::cpu {

namespace {
template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Mat = Eigen::Map<RowMat<T>>;
template <typename T>
using CMat = Eigen::Map<const RowMat<T>>;
template <typename T>
using RowVec = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
template <typename T>
using CRowVec = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;
}  // namespace

template <typename T>
void linear_forward(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in, int64_t out) {
  Mat<T> Y(y, n, out);
  Y.noalias() = CMat<T>(x, n, in) * CMat<T>(w, out, in).transpose();
  if (b) Y.rowwise() += CRowVec<T>(b, out);
}

template <typename T>
void linear_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, int64_t n, int64_t in, int64_t out) {
  CMat<T> dY(dy, n, out);
  if (dx) Mat<T>(dx, n, in).noalias() = dY * CMat<T>(w, out, in);
  if (dw) Mat<T>(dw, out, in).noalias() = dY.transpose() * CMat<T>(x, n, in);
  if (db) RowVec<T>(db, out) = dY.colwise().sum();
}

template void linear_forward<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t);
template void linear_forward<double>(const double*, const double*, const double*, double*, int64_t, int64_t, int64_t);
template void linear_backward<float>(const float*, const float*, const float*, float*, float*, float*, int64_t, int64_t,
                                     int64_t);
template void linear_backward<double>(const double*, const double*, const double*, double*, double*, double*, int64_t,
                                      int64_t, int64_t);

}  // namespace dl::cpu
