// Device: where a tensor's storage lives. A tensor lives on exactly one device; copies are explicit.
#pragma once
#include <string>

namespace dl {

enum class DeviceType { kCPU, kCUDA };

struct Device {
  DeviceType type = DeviceType::kCPU;
  int index = 0;

  static Device cpu() { return {DeviceType::kCPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::kCUDA, index}; }
  // Parses "cpu", "cuda" or "cuda:N"; throws dl::Error on anything else.
  static Device parse(const std::string& text);

  bool is_cpu() const { return type == DeviceType::kCPU; }
  bool is_cuda() const { return type == DeviceType::kCUDA; }
  bool operator==(const Device&) const = default;
  std::string str() const;
};

// True when libdl was built with its CUDA backend and a CUDA device answers.
bool cuda_available();
// The CUDA devices this process sees (0 without the CUDA backend, a driver or a device).
int cuda_device_count();
// Throws dl::Error saying why `device` cannot be used (no CUDA backend built, no device, ...).
void check_device_usable(Device device);
// Returns when the work queued on `device` so far has finished (nothing to wait for on the CPU).
void synchronize(Device device);

}  // namespace dl
