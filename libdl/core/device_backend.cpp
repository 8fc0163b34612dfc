// The registry of device backends (Note [device interface] in core/device_backend.h) and what the
// core answers through it: whether a device is usable, allocator statistics, synchronisation.
#include "core/device_backend.h"

#include <array>
#include <mutex>

#include "dl/core/error.h"

namespace dl {

namespace {
constexpr size_t kDeviceTypes = 2;

struct Registry {
  std::array<DeviceBackend*, kDeviceTypes> backends{};
  // Per type, the device count and why there is none, asked once.
  std::array<std::once_flag, kDeviceTypes> probed;
  std::array<int, kDeviceTypes> count{};
  std::array<std::string, kDeviceTypes> why_none;
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: backends are used until the process ends
  return *r;
}

size_t slot(DeviceType type) { return static_cast<size_t>(type); }

const char* type_name(DeviceType type) { return type == DeviceType::kCUDA ? "CUDA" : "CPU"; }

// The number of devices of `type`, probed once; 0 with the reason when there are none.
int device_count(DeviceType type, std::string* why) {
  Registry& r = registry();
  const size_t s = slot(type);
  std::call_once(r.probed[s], [&r, s, type] {
    DeviceBackend* b = r.backends[s];
    if (!b) {
      r.why_none[s] = std::string("libdl was built without its ") + type_name(type) +
                      " backend (DL_CUDA=OFF or no CUDA toolkit found)";
      return;
    }
    std::string reason;
    r.count[s] = b->device_count(reason);
    if (r.count[s] <= 0) {
      r.count[s] = 0;
      r.why_none[s] = reason.empty() ? std::string("the ") + type_name(type) + " runtime reports no devices" : reason;
    }
  });
  if (why) *why = r.why_none[s];
  return r.count[s];
}
}  // namespace

void register_device_backend(DeviceType type, DeviceBackend& backend) {
  DL_CHECK(type != DeviceType::kCPU, "register_device_backend: the CPU is the core's own device");
  Registry& r = registry();
  DL_CHECK(r.backends[slot(type)] == nullptr, "register_device_backend: a ", type_name(type),
           " backend is registered already");
  r.backends[slot(type)] = &backend;
}

bool cuda_available() { return device_count(DeviceType::kCUDA, nullptr) > 0; }
int cuda_device_count() { return device_count(DeviceType::kCUDA, nullptr); }

void check_device_usable(Device device) {
  if (device.is_cpu()) return;
  std::string why;
  const int count = device_count(device.type, &why);
  DL_CHECK(count > 0, "device ", device.str(), " requested but no ", type_name(device.type),
           " device is usable: ", why);
  DL_CHECK(device.index >= 0 && device.index < count, "device ", device.str(), " requested but only ", count, " ",
           type_name(device.type), " device(s) exist");
}

DeviceBackend& device_backend(Device device) {
  check_device_usable(device);
  return *registry().backends[slot(device.type)];
}

AllocatorStats allocator_stats(Device device) {
  if (device.is_cpu()) return CpuAllocator::instance().stats();
  return device_backend(device).allocator_stats(device.index);
}

void reset_allocator_peak(Device device) {
  if (device.is_cpu()) return CpuAllocator::instance().reset_peak();
  device_backend(device).reset_allocator_peak(device.index);
}

void synchronize(Device device) {
  if (!device.is_cpu()) device_backend(device).synchronize(device.index);
}

}  // namespace dl
