// MNIST loader on top of the IDX reader.
#include "dl/data/mnist.h"

#include <sys/stat.h>

#include "dl/data/idx.h"

namespace dl::data {

namespace {

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// dir/name when it exists, else dir/name.gz; throws naming both when neither does.
std::string find_idx(const std::string& dir, const std::string& name) {
  const std::string base = (dir.empty() || dir.back() == '/') ? dir + name : dir + "/" + name;
  if (is_regular_file(base)) return base;
  if (is_regular_file(base + ".gz")) return base + ".gz";
  DL_THROW("MNIST file not found: expected '", base, "' or '", base,
           ".gz' (run scripts/fetch_mnist.sh to download or generate the data set)");
}

}  // namespace

MnistSplit load_mnist_files(const std::string& images_path, const std::string& labels_path) {
  const IdxArray images = read_idx(images_path);
  DL_CHECK(images.type == IdxType::kUInt8 && images.dims.size() == 3, "'", images_path,
           "': expected MNIST images as ubyte N x H x W, found ", idx_type_name(images.type), " ", images.dims_str());
  const IdxArray labels = read_idx(labels_path);
  DL_CHECK(labels.type == IdxType::kUInt8 && labels.dims.size() == 1, "'", labels_path,
           "': expected MNIST labels as ubyte N, found ", idx_type_name(labels.type), " ", labels.dims_str());
  const int64_t n = images.dims[0], h = images.dims[1], w = images.dims[2];
  DL_CHECK(labels.dims[0] == n, "'", labels_path, "' holds ", labels.dims[0], " labels, expected ", n,
           " to match the images of '", images_path, "' ", images.dims_str());

  MnistSplit split;
  split.labels = Tensor::empty(Shape{n}, DType::kInt32);
  const uint8_t* lab = labels.as<uint8_t>();
  int32_t* out_lab = split.labels.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    DL_CHECK(lab[i] <= 9, "'", labels_path, "': label ", int(lab[i]), " at index ", i, " is outside 0..9");
    out_lab[i] = lab[i];
  }

  split.images = Tensor::empty(Shape{n, 1, h, w}, DType::kFloat32);
  const uint8_t* px = images.as<uint8_t>();
  float* out = split.images.data<float>();
  const int64_t total = n * h * w;
  constexpr float kScale = 1.0f / 255.0f;
  for (int64_t i = 0; i < total; ++i) out[i] = static_cast<float>(px[i]) * kScale;
  return split;
}

MnistSplit load_mnist(const std::string& dir, bool train) {
  const char* prefix = train ? "train" : "t10k";
  const std::string images = find_idx(dir, std::string(prefix) + "-images-idx3-ubyte");
  const std::string labels = find_idx(dir, std::string(prefix) + "-labels-idx1-ubyte");
  return load_mnist_files(images, labels);
}

}  // namespace dl::data
