// The gradient reducer of data-parallel training (Note [gradient buckets]) and the state broadcasts.
#include "dl/dist/data_parallel.h"

#include <algorithm>

#include "dl/autograd/engine.h"
#include "dl/core/error.h"

namespace dl::dist {

void broadcast_state(nn::Module& model, ProcessGroup& group, int root) {
  if (group.size() == 1) return;
  for (auto& [name, t] : model.state()) {
    Tensor data = t.detach();
    group.broadcast(data, root);
  }
}

void broadcast_buffers(nn::Module& model, ProcessGroup& group, int root) {
  if (group.size() == 1) return;
  for (auto& [name, t] : model.named_buffers()) {
    Tensor data = t.detach();
    group.broadcast(data, root);
  }
}

GradientReducer::GradientReducer(std::vector<nn::ParamRef> params, ProcessGroup& group, const GradientReducerOptions& o)
    : params_(std::move(params)), group_(group), o_(o) {
  DL_CHECK(o.bucket_bytes > 0, "GradientReducer: expected bucket_bytes > 0");
  bucket_of_.assign(params_.size(), 0);
  param_ready_.assign(params_.size(), 0);
  // Reverse order: the last layers' gradients come first out of backward.
  for (size_t k = params_.size(); k-- > 0;) {
    const Tensor& t = params_[k].tensor;
    DL_CHECK(t.dtype() == DType::kFloat32 || t.dtype() == DType::kFloat64, "GradientReducer: parameter '",
             params_[k].name, "' is ", dtype_name(t.dtype()), "; expected float32 or float64");
    const bool fits = !buckets_.empty() && buckets_.back().numel > 0 &&
                      (buckets_.back().numel + t.numel()) * static_cast<int64_t>(dtype_size(t.dtype())) <=
                          static_cast<int64_t>(o.bucket_bytes);
    const bool same_kind = !buckets_.empty() && !buckets_.back().params.empty() &&
                           params_[buckets_.back().params.front()].tensor.dtype() == t.dtype() &&
                           params_[buckets_.back().params.front()].tensor.device() == t.device();
    if (!fits || !same_kind) buckets_.emplace_back();
    Bucket& b = buckets_.back();
    b.params.push_back(k);
    b.offsets.push_back(b.numel);
    b.numel += t.numel();
    bucket_of_[k] = buckets_.size() - 1;
  }
  // Every rank must hold the same parameters in the same order, or the buckets would not match.
  if (group_.size() > 1) {
    Tensor layout = Tensor::zeros({static_cast<int64_t>(buckets_.size()) + 1}, DType::kFloat64);
    layout.data<double>()[0] = static_cast<double>(params_.size());
    for (size_t b = 0; b < buckets_.size(); ++b) layout.data<double>()[b + 1] = static_cast<double>(buckets_[b].numel);
    const Tensor all = group_.all_gather(layout);
    const double* mine = layout.data<double>();
    for (int r = 0; r < group_.size(); ++r) {
      const double* theirs = all.data<double>() + static_cast<size_t>(r) * buckets_.size() + r;
      DL_CHECK(std::equal(mine, mine + buckets_.size() + 1, theirs), "GradientReducer: rank ", r,
               "'s model has other parameters than rank ", group_.rank(), "'s (", params_.size(), " parameters in ",
               buckets_.size(), " buckets here): every rank must build the same model");
    }
  }
}

void GradientReducer::start(Bucket& b) {
  const Tensor& first = params_[b.params.front()].tensor;
  if (!b.buffer.defined()) b.buffer = Tensor::empty({b.numel}, first.dtype(), first.device());
  for (size_t i = 0; i < b.params.size(); ++i) {
    const Tensor& p = params_[b.params[i]].tensor;
    Tensor slot = b.buffer.slice(b.offsets[i], b.offsets[i] + p.numel()).view(p.shape());
    const Tensor g = p.grad();
    if (g.defined())
      slot.copy_(g);
    else
      slot.zero_();
  }
  b.work = group_.all_reduce_async(b.buffer, ReduceOp::kAverage);
}

void GradientReducer::on_ready(const Tensor& leaf) {
  // Parameters are found by their TensorImpl: a map made once would outlive a model that moved its
  // tensors, so search the (short) list.
  for (size_t k = 0; k < params_.size(); ++k) {
    if (params_[k].tensor.impl() != leaf.impl() || param_ready_[k]) continue;
    param_ready_[k] = 1;
    ++buckets_[bucket_of_[k]].ready;
    break;
  }
  while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].params.size()) {
    start(buckets_[next_++]);
    ++started_early_;
  }
  if (started_early_ > 0) group_.poll();  // the buckets in flight move on while backward runs
}

void GradientReducer::backward(const Tensor& loss) {
  started_early_ = 0;
  if (group_.size() == 1 || !o_.overlap) {
    loss.backward();
  } else {
    const autograd::GradReadyHook hook([this](const Tensor& leaf) { on_ready(leaf); });
    loss.backward();
  }
  finish();
}

void GradientReducer::finish() {
  if (group_.size() == 1) return;
  while (next_ < buckets_.size()) start(buckets_[next_++]);
  // Which parameters got a gradient on some rank: the others stay without one, as in one process
  // (an optimiser skips them), rather than getting zeros. A host tensor: no device synchronisation.
  Tensor had = Tensor::empty({static_cast<int64_t>(params_.size())}, DType::kInt32);
  for (size_t k = 0; k < params_.size(); ++k) had.data<int32_t>()[k] = params_[k].tensor.grad().defined() ? 1 : 0;
  group_.all_reduce_async(had, ReduceOp::kMax).wait();
  for (Bucket& b : buckets_) {
    b.work.wait();
    for (size_t i = 0; i < b.params.size(); ++i) {
      Tensor& p = params_[b.params[i]].tensor;
      if (!had.data<int32_t>()[b.params[i]]) continue;
      const Tensor slot = b.buffer.slice(b.offsets[i], b.offsets[i] + p.numel()).view(p.shape());
      Tensor g = p.grad();
      if (g.defined())
        g.copy_(slot);
      else
        p.set_grad(slot.clone());
    }
    b.ready = 0;
  }
  group_.check();  // a failed device communicator's buckets must not reach the weights
  std::fill(param_ready_.begin(), param_ready_.end(), 0);
  next_ = 0;
}

}  // namespace dl::dist
