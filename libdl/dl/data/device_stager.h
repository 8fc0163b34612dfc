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
#pragma once
#include <memory>

#include "dl/core/device.h"
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

}  // namespace dl::data
