// libFuzzer target: the IDX reader (plain and gzip) and the MNIST loader's checks.
#include "dl/data/idx.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dl::fuzz::input_file(data, size, ".idx");
  dl::fuzz::expect_clean([&] {
    const dl::data::IdxArray a = dl::data::read_idx(path);
    if (a.dims.size() <= 5) (void)a.to_tensor();
  });
  return 0;
}
