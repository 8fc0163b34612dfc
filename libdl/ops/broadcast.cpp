// Shapes and strided indices of the broadcasting element-wise family (ops/broadcast.h).
#include "ops/broadcast.h"

#include <algorithm>

#include "dl/core/error.h"

namespace dl::ops::detail {

static_assert(kMaxDims <= kern::kMaxIndexDims, "a broadcast index must hold every dimension of a tensor");

std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(static_cast<size_t>(s.ndim()), 1);
  for (int d = s.ndim() - 2; d >= 0; --d) st[d] = st[d + 1] * s[d + 1];
  return st;
}

namespace {

// Builds an index dimension by dimension, dropping sizes of 1 and merging a dimension into the one
// before it when every operand steps over both as over one (stride[before] == stride * size).
template <int N>
class IndexBuilder {
 public:
  void push(int64_t size, const std::array<int64_t, N>& strides) {
    if (size == 1) return;
    kern::StridedIndex<N>& ix = index_;
    if (ix.ndim > 0) {
      const int p = ix.ndim - 1;
      bool merge = true;
      for (int k = 0; k < N; ++k) merge = merge && ix.stride[k][p] == strides[k] * size;
      if (merge) {
        ix.size[p] *= size;
        for (int k = 0; k < N; ++k) ix.stride[k][p] = strides[k];
        return;
      }
    }
    ix.size[ix.ndim] = size;
    for (int k = 0; k < N; ++k) ix.stride[k][ix.ndim] = strides[k];
    ++ix.ndim;
  }
  const kern::StridedIndex<N>& get() const { return index_; }

 private:
  kern::StridedIndex<N> index_;
};

}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int nd = std::max(a.ndim(), b.ndim());
  std::vector<int64_t> out(static_cast<size_t>(nd));
  for (int i = 0; i < nd; ++i) {  // i counts from the right
    const int64_t da = i < a.ndim() ? a[a.ndim() - 1 - i] : 1;
    const int64_t db = i < b.ndim() ? b[b.ndim() - 1 - i] : 1;
    DL_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a.str(), " and ", b.str(),
             " do not broadcast (dimension ", nd - 1 - i, ": ", da, " vs ", db, ")");
    out[static_cast<size_t>(nd - 1 - i)] = da == 1 ? db : da;
  }
  return Shape(out);
}

template <int N>
kern::StridedIndex<N> broadcast_index(const Shape& out, const std::array<Shape, N>& ins) {
  std::array<std::vector<int64_t>, N> st;
  for (int k = 0; k < N; ++k) st[k] = contiguous_strides(ins[k]);
  IndexBuilder<N> b;
  for (int d = 0; d < out.ndim(); ++d) {
    std::array<int64_t, N> s{};
    for (int k = 0; k < N; ++k) {
      const int dk = d - (out.ndim() - ins[k].ndim());  // the operand's own dimension, aligned right
      s[k] = dk >= 0 && ins[k][dk] != 1 ? st[k][dk] : 0;
    }
    b.push(out[d], s);
  }
  return b.get();
}
template kern::StridedIndex<1> broadcast_index<1>(const Shape&, const std::array<Shape, 1>&);
template kern::StridedIndex<2> broadcast_index<2>(const Shape&, const std::array<Shape, 2>&);
template kern::StridedIndex<3> broadcast_index<3>(const Shape&, const std::array<Shape, 3>&);

ReduceIndex reduce_index(const Shape& x, const std::vector<bool>& reduce) {
  const std::vector<int64_t> st = contiguous_strides(x);
  IndexBuilder<1> kept, reduced;
  ReduceIndex r;
  for (int d = 0; d < x.ndim(); ++d) {
    if (reduce[static_cast<size_t>(d)]) {
      reduced.push(x[d], {st[d]});
      r.n_red *= x[d];
    } else {
      kept.push(x[d], {st[d]});
      r.n_out *= x[d];
    }
  }
  r.kept = kept.get();
  r.reduced = reduced.get();
  return r;
}

kern::StridedIndex<1> permute_index(const Shape& x, const std::vector<int>& perm) {
  const std::vector<int64_t> st = contiguous_strides(x);
  IndexBuilder<1> b;
  for (int p : perm) b.push(x[p], {st[static_cast<size_t>(p)]});
  return b.get();
}

kern::StridedIndex<1> part_index(const Shape& part, const Shape& whole, int dim, int64_t step) {
  const std::vector<int64_t> st = contiguous_strides(whole);
  IndexBuilder<1> b;
  for (int d = 0; d < part.ndim(); ++d) b.push(part[d], {st[static_cast<size_t>(d)] * (d == dim ? step : 1)});
  return b.get();
}

}  // namespace dl::ops::detail
