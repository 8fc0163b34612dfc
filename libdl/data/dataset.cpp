// In-memory datasets and row gathering.
#include "dl/data/dataset.h"

#include <cstring>

namespace dl::data {

Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& indices) {
  DL_CHECK(t.dim() >= 1, "gather_rows: expected a tensor with a sample dimension, got ", t.shape().str());
  Shape s = t.shape();
  const int64_t n = s[0];
  s[0] = static_cast<int64_t>(indices.size());
  Tensor out = Tensor::empty(s, t.dtype(), t.device());
  const size_t row = n ? t.nbytes() / static_cast<size_t>(n) : 0;
  const char* src = static_cast<const char*>(t.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  for (size_t i = 0; i < indices.size(); ++i) {
    DL_CHECK(indices[i] >= 0 && indices[i] < n, "gather_rows: index ", indices[i], " outside [0, ", n, ")");
    std::memcpy(dst + i * row, src + static_cast<size_t>(indices[i]) * row, row);
  }
  return out;
}

const Tensor& Batch::input(size_t i) const {
  DL_CHECK(i < input_count(), "Batch::input: expected an input index below ", input_count(), ", got ", i);
  return i == 0 ? inputs : extra_inputs[i - 1];
}

TensorDataset::TensorDataset(Tensor inputs, Tensor targets)
    : TensorDataset(std::vector<Tensor>{std::move(inputs)}, std::move(targets)) {}

TensorDataset::TensorDataset(std::vector<Tensor> inputs, Tensor targets) : targets_(std::move(targets)) {
  DL_CHECK(!inputs.empty(), "TensorDataset: expected at least one input tensor, got none");
  DL_CHECK(targets_.defined() && targets_.dim() >= 1, "TensorDataset: expected targets with a sample dimension");
  for (size_t i = 0; i < inputs.size(); ++i) {
    DL_CHECK(inputs[i].defined() && inputs[i].dim() >= 1, "TensorDataset: expected input ", i,
             " with a sample dimension");
    DL_CHECK(inputs[i].size(0) == targets_.size(0), "TensorDataset: ", inputs[i].size(0), " samples in input ", i,
             " but ", targets_.size(0), " targets");
  }
  inputs_ = std::move(inputs[0]);
  extra_inputs_.assign(std::make_move_iterator(inputs.begin() + 1), std::make_move_iterator(inputs.end()));
}

Batch TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  Batch b{gather_rows(inputs_, indices), gather_rows(targets_, indices)};
  for (const Tensor& x : extra_inputs_) b.extra_inputs.push_back(gather_rows(x, indices));
  return b;
}

SubsetDataset::SubsetDataset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
  for (int64_t i : indices_)
    DL_CHECK(i >= 0 && i < base_->size(), "SubsetDataset: index ", i, " outside [0, ", base_->size(), ")");
}

Batch SubsetDataset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<int64_t> mapped;
  mapped.reserve(indices.size());
  for (int64_t i : indices) {
    DL_CHECK(i >= 0 && i < size(), "SubsetDataset: index ", i, " outside [0, ", size(), ")");
    mapped.push_back(indices_[static_cast<size_t>(i)]);
  }
  return base_->get_batch(mapped);
}

}  // namespace dl::data
