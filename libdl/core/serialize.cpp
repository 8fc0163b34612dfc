// Reading and writing the libdl tensor file, with bounds checks on every record.
#include "dl/core/serialize.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace dl {

namespace {
constexpr char kMagic[8] = {'D', 'L', 'T', 'E', 'N', 'S', 'R', '1'};
constexpr uint32_t kVersion = 1;

template <typename T> void put(std::string& out, T v) { out.append(reinterpret_cast<const char*>(&v), sizeof(T)); }
void put_str(std::string& out, const std::string& s) {
  put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out += s;
}

// A cursor over the file's bytes that names the file and the record on every overrun.
struct Reader {
  const std::string& path;
  const std::string& bytes;
  size_t pos = 0;
  size_t end;
  void need(size_t n, const char* what) const {
    DL_CHECK(n <= end - pos, path, ": truncated or corrupt tensor file: ", what, " needs ", n, " bytes at offset ", pos,
             ", only ", end - pos, " remain");
  }
  template <typename T> T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string get_str(const char* what) {
    const uint32_t n = get<uint32_t>(what);
    need(n, what);
    std::string s = bytes.substr(pos, n);
    pos += n;
    return s;
  }
};
}  // namespace

const Tensor* TensorFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  DL_CHECK(fd >= 0, path, ": cannot create temporary file ", tmp, ": ", std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      DL_THROW(path, ": write failed after ", done, " of ", bytes.size(), " bytes: ", std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    DL_THROW(path, ": cannot ", synced ? "rename the temporary file over it" : "flush the temporary file", ": ",
             std::strerror(err));
  }
}

void save_tensor_file(const std::string& path, const TensorFile& file) {
  std::string out(kMagic, sizeof(kMagic));
  put<uint32_t>(out, kVersion);
  put<uint64_t>(out, file.metadata.size());
  for (const auto& [k, v] : file.metadata) {
    put_str(out, k);
    put_str(out, v);
  }
  put<uint64_t>(out, file.tensors.size());
  for (const auto& [name, t] : file.tensors) {
    DL_CHECK(t.defined(), path, ": tensor '", name, "' is undefined");
    const Tensor c = t.to(Device::cpu());
    put_str(out, name);
    put<uint8_t>(out, static_cast<uint8_t>(c.dtype()));
    put<uint8_t>(out, static_cast<uint8_t>(c.dim()));
    for (int d = 0; d < c.dim(); ++d) put<int64_t>(out, c.size(d));
    put<uint64_t>(out, c.nbytes());
    out.append(static_cast<const char*>(c.raw_data()), c.nbytes());
  }
  put<uint32_t>(out, static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(out.data()), out.size())));
  write_file_atomically(path, out);
}

TensorFile load_tensor_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DL_CHECK(in.good(), path, ": cannot open tensor file: ", std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  DL_CHECK(bytes.size() >= sizeof(kMagic) + 4 + 4 && std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) == 0, path,
           ": not a libdl tensor file (expected magic DLTENSR1, file of ", bytes.size(), " bytes)");
  uint32_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
  const uint32_t actual =
      static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size() - 4));
  DL_CHECK(stored == actual, path, ": checksum mismatch (stored ", stored, ", computed ", actual,
           "): the file is corrupt or truncated");

  Reader r{path, bytes, sizeof(kMagic), bytes.size() - 4};
  const uint32_t version = r.get<uint32_t>("version");
  DL_CHECK(version == kVersion, path, ": tensor file version ", version, ", this libdl reads version ", kVersion);
  TensorFile file;
  const uint64_t nmeta = r.get<uint64_t>("metadata count");
  for (uint64_t i = 0; i < nmeta; ++i) {
    std::string k = r.get_str("metadata key");
    file.metadata[k] = r.get_str("metadata value");
  }
  const uint64_t count = r.get<uint64_t>("tensor count");
  for (uint64_t i = 0; i < count; ++i) {
    std::string name = r.get_str("tensor name");
    const uint8_t dt = r.get<uint8_t>("dtype");
    DL_CHECK(dt <= static_cast<uint8_t>(DType::kUInt8), path, ": tensor '", name, "' has unknown dtype code ", int(dt));
    const uint8_t ndim = r.get<uint8_t>("ndim");
    DL_CHECK(ndim <= kMaxDims, path, ": tensor '", name, "' has ", int(ndim), " dimensions, at most ", kMaxDims);
    std::vector<int64_t> dims(ndim);
    for (auto& d : dims) {
      d = r.get<int64_t>("dimension");
      DL_CHECK(d >= 0 && d < (int64_t(1) << 40), path, ": tensor '", name, "' has invalid dimension ", d);
    }
    const Shape shape(dims);
    const uint64_t nbytes = r.get<uint64_t>("byte count");
    const DType dtype = static_cast<DType>(dt);
    DL_CHECK(nbytes == static_cast<uint64_t>(shape.numel()) * dtype_size(dtype), path, ": tensor '", name, "' ",
             shape.str(), " ", dtype_name(dtype), " should hold ", shape.numel() * dtype_size(dtype), " bytes, record says ",
             nbytes);
    r.need(nbytes, "tensor data");
    Tensor t = Tensor::empty(shape, dtype);
    if (nbytes) std::memcpy(t.raw_data(), bytes.data() + r.pos, nbytes);
    r.pos += nbytes;
    file.tensors.emplace_back(std::move(name), std::move(t));
  }
  DL_CHECK(r.pos == r.end, path, ": ", r.end - r.pos, " unexpected bytes after the last tensor");
  return file;
}

}  // namespace dl
