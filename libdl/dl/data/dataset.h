// Dataset: indexed samples gathered into mini-batches. TensorDataset serves samples held in memory
// (the first dimension of inputs and targets indexes the samples). A batch has one input tensor, or
// several for a model with several inputs (the first is `inputs`, the others `extra_inputs`).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "dl/core/tensor.h"

namespace dl::data {

struct Batch {
  Tensor inputs;   // B x ...
  Tensor targets;  // B x ... (int32 labels for cross-entropy; any dtype for a loss of one's own)
  // The second, third, ... inputs of a model with several (each B x ...), carried to the device and
  // sharded like `inputs`; empty for a model with one input.
  std::vector<Tensor> extra_inputs{};
  // Under a sharded DataLoader, the size of the whole mini-batch of which this is one shard's share
  // (a share can be empty: then inputs and targets are undefined); otherwise size().
  int64_t global_size = 0;
  int64_t size() const { return inputs.defined() ? inputs.size(0) : 0; }
  // Input i: 0 is `inputs`, i > 0 is extra_inputs[i - 1]; throws dl::Error when there is no input i.
  const Tensor& input(size_t i) const;
  size_t input_count() const { return inputs.defined() ? 1 + extra_inputs.size() : 0; }
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Gathers the samples `indices` (each in [0, size())) into one batch, in that order.
  // Must be safe to call from the loader's background thread.
  virtual Batch get_batch(const std::vector<int64_t>& indices) const = 0;
};

class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor inputs, Tensor targets);
  // Several inputs (a batch's `inputs` and then its extra_inputs, in this order), as many samples each.
  TensorDataset(std::vector<Tensor> inputs, Tensor targets);
  int64_t size() const override { return inputs_.size(0); }
  Batch get_batch(const std::vector<int64_t>& indices) const override;
  const Tensor& inputs() const { return inputs_; }
  const std::vector<Tensor>& extra_inputs() const { return extra_inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor inputs_, targets_;
  std::vector<Tensor> extra_inputs_;
};

// The samples `indices` of another dataset, in that order (a split, a shard, a subset).
class SubsetDataset : public Dataset {
 public:
  SubsetDataset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Batch get_batch(const std::vector<int64_t>& indices) const override;

 private:
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
};

// Gathers rows `indices` of `t` (any dtype, CPU) into a new tensor.
Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& indices);

}  // namespace dl::data
