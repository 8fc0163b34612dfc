// DeviceStager (dl/data/device_stager.h): on a device, kSlots staging slots used in turn through the
// device's uploader (page-locked buffers and an event per slot: Note [device interface] in
// core/device_backend.h); on the CPU, batches pass through in order.
#include "dl/data/device_stager.h"

#include <deque>

#include "core/device_backend.h"
#include "dl/core/error.h"

namespace dl::data {

struct DeviceStager::Impl {
  std::unique_ptr<DeviceUploader> uploader;  // null on the CPU
  std::deque<std::pair<int, Batch>> queue;   // staged batches, oldest first, with their slot
  int next_slot = 0;
};

DeviceStager::DeviceStager(Device device) : device_(device), impl_(std::make_unique<Impl>()) {
  if (!device.is_cpu()) impl_->uploader = device_backend(device).make_uploader(device.index, kSlots);
}

DeviceStager::~DeviceStager() = default;

int DeviceStager::staged() const { return static_cast<int>(impl_->queue.size()); }

void DeviceStager::prefetch(const Batch& host) {
  DL_CHECK(staged() < kSlots, "DeviceStager: ", kSlots, " batches are staged already; take one with next() first");
  if (!impl_->uploader || host.size() == 0) {  // an empty share of a sharded batch has nothing to copy
    impl_->queue.emplace_back(-1, host);
    return;
  }
  const int slot = impl_->next_slot;
  impl_->next_slot = (slot + 1) % kSlots;
  std::vector<Tensor> tensors{host.inputs, host.targets};
  tensors.insert(tensors.end(), host.extra_inputs.begin(), host.extra_inputs.end());
  const std::vector<Tensor> staged = impl_->uploader->upload(slot, tensors);
  Batch batch = host;
  batch.inputs = staged[0];
  batch.targets = staged[1];
  for (size_t i = 0; i < batch.extra_inputs.size(); ++i) batch.extra_inputs[i] = staged[2 + i];
  impl_->queue.emplace_back(slot, std::move(batch));
}

Batch DeviceStager::next() {
  DL_CHECK(staged() > 0, "DeviceStager::next: no batch staged");
  auto [slot, batch] = std::move(impl_->queue.front());
  impl_->queue.pop_front();
  if (impl_->uploader && slot >= 0) impl_->uploader->wait(slot);
  return batch;
}

void DeviceBatches::start_epoch() {
  loader_.start_epoch();
  fetch();
}

bool DeviceBatches::fetch() {
  Batch host;
  if (!loader_.next(host)) return false;
  stager_.prefetch(host);
  return true;
}

bool DeviceBatches::next(Batch& out) {
  if (stager_.staged() == 0 && !fetch()) return false;
  out = stager_.next();
  if (!stager_.device().is_cpu()) fetch();  // copied while `out` is used
  return true;
}

void for_each_batch(const Dataset& d, int64_t batch_size, Device device,
                    const std::function<void(const Batch&, int64_t)>& f) {
  DL_CHECK(batch_size > 0, "for_each_batch: the batch size must be positive, got ", batch_size);
  const std::shared_ptr<const Dataset> view(std::shared_ptr<const Dataset>(), &d);  // not owned
  DataLoader loader(view, {.batch_size = batch_size, .shuffle = false, .prefetch = 0});
  DeviceBatches batches(loader, device);
  batches.start_epoch();
  Batch batch;
  for (int64_t first = 0; batches.next(batch); first += batch.size()) f(batch, first);
}

}  // namespace dl::data
