// DataLoader: an epoch of mini-batches over a Dataset, shuffled per epoch by its own Generator, the
// last partial batch kept (unless drop_last), and the next batch gathered on a background thread
// while the current one is used. shard_index/shard_count give one process its share of every
// mini-batch, for data-parallel training: every shard draws the same permutation, batch b of the
// epoch is the same batch_size samples everywhere (batch_size is the global mini-batch size, as in
// MATLAB), and shard s takes the s-th of shard_count contiguous parts of it (sizes differ by at most
// one; a part can be empty when the last batch has fewer samples than there are shards). Every shard
// has the same number of batches, so that the ranks of a run step together.
#pragma once
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "dl/core/rng.h"
#include "dl/data/dataset.h"

namespace dl::data {

struct DataLoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;
  int prefetch = 1;  // batches prepared ahead on the background thread; 0 gathers on the caller
  int shard_index = 0, shard_count = 1;
  uint64_t seed = 0;
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, const DataLoaderOptions& o);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Starts an epoch: draws the permutation (when shuffling) and starts prefetching.
  void start_epoch();
  // The next batch of the epoch; false at its end. Rethrows an error of the background thread.
  bool next(Batch& out);
  int64_t batches_per_epoch() const;
  int64_t samples_per_epoch() const;  // this shard's samples in an epoch

  Generator& generator() { return gen_; }  // saved in checkpoints: resumed epochs shuffle alike
  const DataLoaderOptions& options() const { return o_; }

 private:
  size_t order_size() const;                            // the samples of the epoch, all shards together
  std::vector<int64_t> batch_indices(int64_t b) const;  // this shard's samples of batch b
  Batch gather(int64_t b) const;
  void stop();
  void producer();

  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions o_;
  Generator gen_;
  std::vector<int64_t> order_;  // the sample order of the epoch (every shard's)
  int64_t next_batch_ = 0;      // consumer position

  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> ready_;
  std::exception_ptr error_;
  bool stopping_ = false;
};

}  // namespace dl::data
