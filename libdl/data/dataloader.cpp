// The DataLoader's epoch order and its one-thread prefetching pipeline.
#include "dl/data/dataloader.h"

#include <numeric>

namespace dl::data {

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, const DataLoaderOptions& o)
    : dataset_(std::move(dataset)), o_(o), gen_(o.seed) {
  DL_CHECK(dataset_ != nullptr, "DataLoader: no dataset");
  DL_CHECK(o.batch_size >= 1, "DataLoader: expected batch_size >= 1, got ", o.batch_size);
  DL_CHECK(o.shard_count >= 1 && o.shard_index >= 0 && o.shard_index < o.shard_count, "DataLoader: shard ",
           o.shard_index, " of ", o.shard_count, " does not exist");
  DL_CHECK(o.prefetch >= 0, "DataLoader: expected prefetch >= 0, got ", o.prefetch);
}

DataLoader::~DataLoader() { stop(); }

size_t DataLoader::order_size() const { return static_cast<size_t>(dataset_->size()); }

namespace {
// Shard s's part [first, last) of the samples [begin, end) of a batch.
std::pair<int64_t, int64_t> share(int64_t begin, int64_t end, int s, int shards) {
  const int64_t len = end - begin;
  return {begin + len * s / shards, begin + len * (s + 1) / shards};
}
}  // namespace

int64_t DataLoader::samples_per_epoch() const {
  int64_t n = 0;
  for (int64_t b = 0; b < batches_per_epoch(); ++b) {
    const int64_t begin = b * o_.batch_size;
    const int64_t end = std::min<int64_t>(begin + o_.batch_size, static_cast<int64_t>(order_size()));
    const auto [first, last] = share(begin, end, o_.shard_index, o_.shard_count);
    n += last - first;
  }
  return n;
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = static_cast<int64_t>(order_size());
  return o_.drop_last ? n / o_.batch_size : (n + o_.batch_size - 1) / o_.batch_size;
}

void DataLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = false;
  ready_.clear();
  error_ = nullptr;
}

void DataLoader::start_epoch() {
  stop();
  std::vector<int64_t> all(static_cast<size_t>(dataset_->size()));
  if (o_.shuffle)
    all = random_permutation(dataset_->size(), gen_);
  else
    std::iota(all.begin(), all.end(), 0);
  order_ = std::move(all);
  next_batch_ = 0;
  if (o_.prefetch > 0) worker_ = std::thread(&DataLoader::producer, this);
}

std::vector<int64_t> DataLoader::batch_indices(int64_t b) const {
  const int64_t begin = b * o_.batch_size;
  const int64_t end = std::min<int64_t>(begin + o_.batch_size, static_cast<int64_t>(order_.size()));
  const auto [first, last] = share(begin, end, o_.shard_index, o_.shard_count);
  return {order_.begin() + first, order_.begin() + last};
}

Batch DataLoader::gather(int64_t b) const {
  const std::vector<int64_t> indices = batch_indices(b);
  Batch batch;
  if (!indices.empty()) batch = dataset_->get_batch(indices);
  const int64_t begin = b * o_.batch_size;
  batch.global_size = std::min<int64_t>(begin + o_.batch_size, static_cast<int64_t>(order_.size())) - begin;
  return batch;
}

void DataLoader::producer() {
  const int64_t total = batches_per_epoch();
  for (int64_t b = 0; b < total; ++b) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || static_cast<int>(ready_.size()) < o_.prefetch; });
      if (stopping_) return;
    }
    Batch batch;
    try {
      batch = gather(b);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    ready_.push_back(std::move(batch));
    cv_.notify_all();
  }
}

bool DataLoader::next(Batch& out) {
  if (next_batch_ >= batches_per_epoch()) return false;
  if (o_.prefetch == 0) {
    out = gather(next_batch_++);
    return true;
  }
  DL_CHECK(worker_.joinable(), "DataLoader::next called before start_epoch()");
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !ready_.empty() || error_ != nullptr; });
  if (ready_.empty() && error_) std::rethrow_exception(error_);
  out = std::move(ready_.front());
  ready_.pop_front();
  ++next_batch_;
  cv_.notify_all();
  return true;
}

}  // namespace dl::data
