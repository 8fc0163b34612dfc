// DeviceStager (dl/data/device_stager.h): two staging slots used in turn, each with page-locked buffers
// and an event recorded after its copies, which says both when the device may read the batch and when
// the buffers may be refilled.
#include "dl/data/device_stager.h"

#include <cstring>
#include <deque>

#include "dl/config.h"
#include "dl/core/error.h"
#if DL_WITH_CUDA
#include "backend/cuda/runtime.h"
#endif

namespace dl::data {

#if DL_WITH_CUDA
namespace {
struct Slot {
  cuda::PinnedBuffer inputs, targets;
  cudaEvent_t copied = nullptr;
  Batch batch;  // on the device
};
}  // namespace

// The CUDA path.
struct DeviceSlots {
  int device = 0;
  Slot slots[DeviceStager::kSlots];
  std::deque<int> pending;  // slots holding a staged batch, oldest first
  int next_slot = 0;

  explicit DeviceSlots(int d) : device(d) {
    cuda::DeviceGuard guard(device);
    for (Slot& s : slots) DL_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
  }
  ~DeviceSlots() {
    for (Slot& s : slots) {
      if (!s.copied) continue;
      // The pinned buffers, and the device blocks of batches never taken, must outlive their copies.
      static_cast<void>(cudaEventSynchronize(s.copied));
      static_cast<void>(cudaEventDestroy(s.copied));
    }
  }

  Tensor stage_one(const Tensor& host, cuda::PinnedBuffer& pinned, cudaEvent_t copied) {
    if (!host.defined()) return host;
    DL_CHECK(host.device().is_cpu(), "DeviceStager: expected a CPU tensor, got one on ", host.device().str());
    const size_t bytes = host.nbytes();
    if (pinned.bytes() < bytes) pinned = cuda::PinnedBuffer(bytes);
    if (bytes > 0) std::memcpy(pinned.get(), host.raw_data(), bytes);
    Tensor out = Tensor::empty(host.shape(), host.dtype(), Device::cuda(device));
    cuda::copy_to_device_async(out.raw_data(), pinned.get(), bytes, device, copied);
    return out;
  }

  void prefetch(const Batch& host) {
    const int k = next_slot;
    next_slot = (next_slot + 1) % DeviceStager::kSlots;
    Slot& s = slots[k];
    // This slot's last copies were queued kSlots batches ago; normally long finished.
    DL_CUDA_CHECK(cudaEventSynchronize(s.copied));
    s.batch.inputs = stage_one(host.inputs, s.inputs, s.copied);
    s.batch.targets = stage_one(host.targets, s.targets, s.copied);  // `copied` now covers both copies
    pending.push_back(k);
  }

  Batch next() {
    Slot& s = slots[pending.front()];
    pending.pop_front();
    cuda::compute_wait(device, s.copied);
    return std::move(s.batch);
  }
};
#endif

struct DeviceStager::Impl {
  std::deque<Batch> host_queue;  // the CPU path: batches pass through in order
#if DL_WITH_CUDA
  std::unique_ptr<DeviceSlots> cuda;
#endif
  int staged() const {
#if DL_WITH_CUDA
    if (cuda) return static_cast<int>(cuda->pending.size());
#endif
    return static_cast<int>(host_queue.size());
  }
};

DeviceStager::DeviceStager(Device device) : device_(device), impl_(std::make_unique<Impl>()) {
  check_device_usable(device);
#if DL_WITH_CUDA
  if (device.is_cuda()) impl_->cuda = std::make_unique<DeviceSlots>(device.index);
#endif
}

DeviceStager::~DeviceStager() = default;

int DeviceStager::staged() const { return impl_->staged(); }

void DeviceStager::prefetch(const Batch& host) {
  DL_CHECK(staged() < kSlots, "DeviceStager: ", kSlots, " batches are staged already; take one with next() first");
#if DL_WITH_CUDA
  if (impl_->cuda) return impl_->cuda->prefetch(host);
#endif
  impl_->host_queue.push_back(host);
}

Batch DeviceStager::next() {
  DL_CHECK(staged() > 0, "DeviceStager::next: no batch staged");
#if DL_WITH_CUDA
  if (impl_->cuda) return impl_->cuda->next();
#endif
  Batch b = std::move(impl_->host_queue.front());
  impl_->host_queue.pop_front();
  return b;
}

}  // namespace dl::data
