// Reading and writing the libdl tensor file, with bounds checks on every record.
#include "dl/core/serialize.h"

#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "dl/core/file_io.h"

namespace dl {

namespace {
constexpr char kMagic[8] = {'D', 'L', 'T', 'E', 'N', 'S', 'R', '1'};
constexpr uint32_t kVersion = 1;

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_str(std::string& out, const std::string& s) {
  put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out += s;
}

// A cursor over the file that names the file and the record on every overrun, keeps the CRC-32 of
// what it has read, and never reads into the trailing checksum.
struct Reader {
  FileReader& file;
  uLong crc = crc32(0L, Z_NULL, 0);
  uint64_t body_end() const { return file.size() - 4; }
  void need(uint64_t n, const char* what) const {
    DL_CHECK(n <= body_end() - file.offset(), file.path(), ": truncated or corrupt tensor file: ", what, " needs ", n,
             " bytes at offset ", file.offset(), ", only ", body_end() - file.offset(), " remain");
  }
  void read(void* dst, size_t n, const char* what) {
    need(n, what);
    file.read_exact(dst, n, what);
    crc = crc32_z(crc, static_cast<const Bytef*>(dst), n);
  }
  template <typename T>
  T get(const char* what) {
    T v;
    read(&v, sizeof(T), what);
    return v;
  }
  std::string get_str(const char* what) {
    const uint32_t n = get<uint32_t>(what);
    need(n, what);
    std::string s(n, '\0');
    read(s.data(), n, what);
    return s;
  }
};
}  // namespace

const Tensor* TensorFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

void save_tensor_file(const std::string& path, const TensorFile& file, const TensorIoOptions& o) {
  if (!o.allow_non_finite)
    for (const auto& [name, t] : file.tensors) check_all_finite(t, path + " (not written)", name);
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

std::optional<std::pair<int64_t, double>> first_non_finite(const Tensor& t) {
  if (!t.defined() || !is_floating_point(t.dtype())) return std::nullopt;
  const Tensor c = t.to(Device::cpu());
  const int64_t n = c.numel();
  auto scan = [&](const auto* p) -> std::optional<std::pair<int64_t, double>> {
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(static_cast<double>(p[i]))) return std::make_pair(i, static_cast<double>(p[i]));
    return std::nullopt;
  };
  switch (c.dtype()) {
    case DType::kFloat32:
      return scan(c.data<float>());
    case DType::kFloat64:
      return scan(c.data<double>());
    case DType::kBFloat16:
      return scan(c.data<BFloat16>());
    default:
      return scan(c.data<Float16>());
  }
}

void check_bool_bytes(const Tensor& t, const std::string& origin, const std::string& name) {
  if (t.dtype() != DType::kBool) return;
  const Tensor c = t.to(Device::cpu());
  const auto* bytes = static_cast<const uint8_t*>(c.raw_data());
  for (int64_t i = 0; i < c.numel(); ++i)
    DL_CHECK(bytes[i] <= 1, origin, ": bool tensor '", name, "' holds the byte ", int(bytes[i]), " at element ", i,
             "; a bool is 0 or 1");
}

void check_all_finite(const Tensor& t, const std::string& origin, const std::string& name) {
  if (const auto bad = first_non_finite(t))
    DL_THROW(origin, ": tensor '", name, "' ", t.shape().str(), " holds ", bad->second, " at element ", bad->first,
             " (non-finite values are refused; the allow_non_finite option accepts them)");
}

TensorFile load_tensor_file(const std::string& path, const TensorIoOptions& o) {
  FileReader file(path, "libdl tensor file");
  char magic[sizeof(kMagic)] = {};
  const size_t got = file.read_some(magic, sizeof magic);
  DL_CHECK(got == sizeof(kMagic) && std::memcmp(magic, kMagic, sizeof(kMagic)) == 0, path,
           ": expected a libdl tensor file (magic DLTENSR1), got ", describe_file_signature(magic, got), " of ",
           file.size(), " bytes");
  DL_CHECK(file.size() >= sizeof(kMagic) + 4 + 8 + 8 + 4, path, ": truncated libdl tensor file (", file.size(),
           " bytes; the smallest holds ", sizeof(kMagic) + 4 + 8 + 8 + 4, ")");
  Reader r{file};
  r.crc = crc32_z(r.crc, reinterpret_cast<const Bytef*>(magic), sizeof magic);
  const uint32_t version = r.get<uint32_t>("version");
  DL_CHECK(version == kVersion, path, ": tensor file version ", version, ", this libdl reads version ", kVersion,
           " (or the file is corrupt)");
  TensorFile out;
  const uint64_t nmeta = r.get<uint64_t>("metadata count");
  for (uint64_t i = 0; i < nmeta; ++i) {
    std::string k = r.get_str("metadata key");
    out.metadata[k] = r.get_str("metadata value");
  }
  const uint64_t count = r.get<uint64_t>("tensor count");
  for (uint64_t i = 0; i < count; ++i) {
    std::string name = r.get_str("tensor name");
    const uint8_t dt = r.get<uint8_t>("dtype");
    DL_CHECK(dt < kNumDTypes, path, ": tensor '", name, "' has unknown dtype code ", int(dt), " (0 to ", kNumDTypes - 1,
             " are known)");
    const uint8_t ndim = r.get<uint8_t>("ndim");
    DL_CHECK(ndim <= kMaxDims, path, ": tensor '", name, "' has ", int(ndim), " dimensions, at most ", kMaxDims);
    std::vector<int64_t> dims(ndim);
    for (auto& d : dims) d = r.get<int64_t>("dimension");
    const DType dtype = static_cast<DType>(dt);
    const uint64_t want = checked_byte_count(dims, dtype_size(dtype), path + ": tensor '" + name + "'");
    const uint64_t nbytes = r.get<uint64_t>("byte count");
    DL_CHECK(nbytes == want, path, ": tensor '", name, "' ", Shape(dims).str(), " ", dtype_name(dtype), " should hold ",
             want, " bytes, the record says ", nbytes);
    r.need(nbytes, "tensor data");
    Tensor t = Tensor::empty(Shape(dims), dtype);
    if (nbytes) r.read(t.raw_data(), nbytes, "tensor data");
    check_bool_bytes(t, path, name);
    out.tensors.emplace_back(std::move(name), std::move(t));
  }
  DL_CHECK(file.offset() == r.body_end(), path, ": ", r.body_end() - file.offset(),
           " unexpected bytes after the last tensor (a corrupt file)");
  uint32_t stored = 0;
  file.read_exact(&stored, 4, "checksum");
  const auto actual = static_cast<uint32_t>(r.crc);
  DL_CHECK(stored == actual, path, ": checksum mismatch (stored ", stored, ", computed ", actual,
           "): the file is corrupt or truncated");
  if (!o.allow_non_finite)
    for (const auto& [name, t] : out.tensors) check_all_finite(t, path, name);
  return out;
}

}  // namespace dl
