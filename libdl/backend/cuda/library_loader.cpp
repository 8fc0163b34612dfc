// Opening the CUDA libraries that libdl does not link (library_loader.h).
#include "backend/cuda/library_loader.h"

#include <dlfcn.h>

#include "dl/core/error.h"

namespace dl::cuda {

void* open_library(const std::string& file, const char* what, const std::string& hint) {
  void* lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    DL_THROW("cannot load ", what, " (", file, ", the major version libdl was compiled against): ", why ? why : "",
             "; ", hint);
  }
  return lib;
}

void* library_symbol(void* lib, const char* name, const std::string& file, const char* what) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    const char* why = dlerror();
    DL_THROW(what, ": ", file, " has no entry point ", name, " (", why ? why : "", ")");
  }
  return sym;
}

}  // namespace dl::cuda
