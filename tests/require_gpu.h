// What the gpu-labelled tests share: why CUDA cannot be used here, and a skip that says so.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "dl/core/device.h"
#include "dl/core/error.h"

namespace dl::testing {

// Why CUDA cannot be used here, or "" when it can.
inline std::string why_no_gpu() {
  try {
    dl::check_device_usable(dl::Device::cuda(0));
    return "";
  } catch (const dl::Error& e) {
    return e.what();
  }
}

}  // namespace dl::testing

// Skips the test, saying why, without a usable CUDA device (ctest's SKIP_REGULAR_EXPRESSION of the gpu
// tests matches "no usable CUDA device").
#define DL_REQUIRE_GPU()                                                        \
  do {                                                                          \
    const std::string dl_why_ = ::dl::testing::why_no_gpu();                    \
    if (!dl_why_.empty()) GTEST_SKIP() << "no usable CUDA device: " << dl_why_; \
  } while (0)
