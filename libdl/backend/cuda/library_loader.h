// The CUDA libraries libdl opens on first use instead of linking them (cuBLAS, cuDNN, NCCL: see
// cublas_loader.h, cudnn_loader.h, dist/nccl_loader.h): opening a library and its entry points with
// errors that name the file and what to install, and a table of entry points loaded once per process.
#pragma once
#include <atomic>
#include <mutex>
#include <string>

namespace dl::cuda {

// dlopen(file); throws dl::Error naming `what`, the file, the loader's message and `hint` when it fails.
void* open_library(const std::string& file, const char* what, const std::string& hint);
// dlsym(lib, name); throws dl::Error naming `what`, the file and the entry point when it is missing.
void* library_symbol(void* lib, const char* name, const std::string& file, const char* what);

// A table of entry points that `load` fills (and throws when it cannot): loaded on the first get(),
// then read with one atomic load per call. A failed load is not kept, so each later call says why
// again (and succeeds once the library is there). Tables live as long as the process.
template <typename Api>
class LazyApi {
 public:
  // constexpr: a table is constant-initialised, so it works even when called during static initialisation.
  constexpr explicit LazyApi(const Api* (*load)()) : load_(load) {}
  const Api& get() {
    if (const Api* api = loaded_.load(std::memory_order_acquire)) return *api;
    std::lock_guard<std::mutex> lock(mu_);
    if (const Api* api = loaded_.load(std::memory_order_relaxed)) return *api;
    const Api* api = load_();
    loaded_.store(api, std::memory_order_release);
    return *api;
  }
  const Api* if_loaded() const { return loaded_.load(std::memory_order_acquire); }  // never throws

 private:
  const Api* (*load_)();
  std::atomic<const Api*> loaded_{nullptr};
  std::mutex mu_;
};

}  // namespace dl::cuda
