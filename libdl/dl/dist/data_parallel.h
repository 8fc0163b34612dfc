// Data-parallel training on a ProcessGroup: every rank holds the whole model, computes the gradients
// of its share of the mini-batch, and the GradientReducer averages them across the ranks before the
// update, so that every rank applies the same update to the same weights.
//
//   dl::dist::broadcast_state(model, group);           // every rank starts from rank 0's weights
//   dl::dist::GradientReducer reducer(model.parameter_refs(), group);
//   ... loss = f(model(x_shard)) ...
//   reducer.backward(loss);                              // backward, reducing buckets as they fill
//   optimizer.step();
//
// Note [gradient buckets]: the gradients are grouped into buckets of about bucket_bytes, in the
// reverse order of the parameters (the order in which backward produces them). When the last gradient
// of a bucket is ready (autograd::GradReadyHook), the bucket is packed and its all-reduce (average)
// starts while the rest of the backward runs; buckets start in the same order on every rank. After
// the backward, the reducer starts what is left, waits, and writes the averages back into grad(). A
// parameter that got no gradient on a rank counts as zeros there; one that got none on any rank keeps
// none (the optimiser skips it, as in one process). Averaging: each rank's loss is the
// mean over its share; a rank whose share is not 1/size of the batch scales its loss by
// share * size / batch first (the Trainer does), so that the average is the gradient of the batch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "dl/dist/process_group.h"
#include "dl/nn/module.h"

namespace dl::dist {

// Copies every parameter and buffer of `model` from `root` to the other ranks.
void broadcast_state(nn::Module& model, ProcessGroup& group, int root = 0);
// Only the buffers (batch-norm statistics): before an evaluation, so that every rank's model is rank 0's.
void broadcast_buffers(nn::Module& model, ProcessGroup& group, int root = 0);

struct GradientReducerOptions {
  size_t bucket_bytes = size_t{25} << 20;  // PyTorch DDP's bucket_cap_mb
  bool overlap = true;  // start each bucket during backward (false: all of them after it, for comparison)
};

class GradientReducer {
 public:
  GradientReducer(std::vector<nn::ParamRef> params, ProcessGroup& group, const GradientReducerOptions& o = {});
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // loss.backward() with the buckets reduced as they fill, then finish().
  void backward(const Tensor& loss);
  // Reduces the gradients as they are (every bucket at once): a rank without samples in this step
  // calls it instead of backward(), and contributes zeros.
  void finish();

  int num_buckets() const { return static_cast<int>(buckets_.size()); }
  // Buckets started during the last backward (before finish): what overlapped with computation.
  int started_during_backward() const { return started_early_; }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    std::vector<int64_t> offsets;
    int64_t numel = 0;
    Tensor buffer;  // made on first use, beside the parameters
    size_t ready = 0;
    Work work;
  };
  void on_ready(const Tensor& leaf);
  void start(Bucket& b);

  std::vector<nn::ParamRef> params_;
  ProcessGroup& group_;
  GradientReducerOptions o_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;     // per parameter
  std::vector<uint8_t> param_ready_;  // per parameter, this step
  size_t next_ = 0;                   // the next bucket to start
  int started_early_ = 0;
};

}  // namespace dl::dist
