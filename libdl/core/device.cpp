// Device parsing and printing. Whether a device can be used is the backends' answer
// (core/device_backend.cpp).
#include "dl/core/device.h"

#include "dl/core/error.h"

namespace dl {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      const int index = std::stoi(text.substr(5), &used);
      if (used == text.size() - 5 && index >= 0) return cuda(index);
    } catch (const std::exception&) {
    }
  }
  DL_THROW("expected a device 'cpu', 'cuda' or 'cuda:N', got '", text, "'");
}

std::string Device::str() const { return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index); }

}  // namespace dl
