// DeviceStager: moves mini-batches from the host to a training device so that the next batch's copy
// runs while the current step computes. On a CUDA device a batch is copied into page-locked staging
// buffers (two slots, used in turn), then to the device on the copy stream; next() makes the compute
// stream wait for that copy (an event, no host synchronisation). On the CPU batches pass through.
//   DeviceStager stager(Device::cuda(0));
//   stager.prefetch(first);                  // returns at once
//   while (...) {
//     Batch batch = stager.next();           // the oldest staged batch, on the device
//     if (loader.next(host)) stager.prefetch(host);   // copied while `batch` trains
//     ... step on batch ...
//   }
//
// DeviceBatches is the one path of mini-batches to a device, for training and evaluation alike: a
// DataLoader's epoch through a DeviceStager.
#pragma once
#include <functional>
#include <memory>

#include "dl/core/device.h"
#include "dl/data/dataloader.h"
#include "dl/data/dataset.h"

namespace dl::data {

class DeviceStager {
 public:
  static constexpr int kSlots = 2;  // batches staged and not yet taken, at most

  explicit DeviceStager(Device device);
  ~DeviceStager();  // waits for the copies still in flight
  DeviceStager(const DeviceStager&) = delete;
  DeviceStager& operator=(const DeviceStager&) = delete;

  Device device() const { return device_; }
  // Queues the copy of `host` (CPU tensors); throws dl::Error when kSlots batches are already staged.
  void prefetch(const Batch& host);
  // The oldest staged batch, on the device, safe to use in work queued after this call.
  Batch next();
  int staged() const;

 private:
  Device device_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A DataLoader's batches on `device`. On a device the next batch's copy is queued before a batch is
// handed out, so that copy and step overlap; on the CPU the next batch is read only when asked for.
class DeviceBatches {
 public:
  DeviceBatches(DataLoader& loader, Device device) : loader_(loader), stager_(device) {}
  void start_epoch();     // starts the loader's epoch and stages its first batch
  bool next(Batch& out);  // the next batch of the epoch on the device; false at its end

 private:
  bool fetch();
  DataLoader& loader_;
  DeviceStager stager_;
};

// Calls f(batch, index of its first sample) for the batches of `d` in order, `batch_size` samples
// each (the last may be short), on `device` by DeviceBatches. For evaluation: no shuffling, no
// background thread.
void for_each_batch(const Dataset& d, int64_t batch_size, Device device,
                    const std::function<void(const Batch&, int64_t)>& f);

}  // namespace dl::data
