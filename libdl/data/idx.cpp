// IDX reader (plain or gzip, detected by the magic bytes 1f 8b) and an atomic ubyte IDX writer.
#include "dl/data/idx.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <limits>

namespace dl::data {

const char* idx_type_name(IdxType t) {
  switch (t) {
    case IdxType::kUInt8: return "ubyte";
    case IdxType::kInt8: return "sbyte";
    case IdxType::kInt16: return "short";
    case IdxType::kInt32: return "int";
    case IdxType::kFloat32: return "float";
    case IdxType::kFloat64: return "double";
  }
  return "unknown";
}

size_t idx_type_size(IdxType t) {
  switch (t) {
    case IdxType::kUInt8: return 1;
    case IdxType::kInt8: return 1;
    case IdxType::kInt16: return 2;
    case IdxType::kInt32: return 4;
    case IdxType::kFloat32: return 4;
    case IdxType::kFloat64: return 8;
  }
  return 0;
}

namespace {

bool valid_type_byte(uint8_t b) {
  return b == 0x08 || b == 0x09 || b == 0x0B || b == 0x0C || b == 0x0D || b == 0x0E;
}

std::string hex_byte(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02x", b);
  return buf;
}

std::string dims_to_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  DL_CHECK(f != nullptr, "cannot open IDX file '", path, "': ", std::strerror(errno));
  std::vector<uint8_t> content;
  uint8_t buf[1 << 16];
  for (;;) {
    const size_t n = std::fread(buf, 1, sizeof buf, f);
    content.insert(content.end(), buf, buf + n);
    if (n < sizeof buf) break;
  }
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  DL_CHECK(!failed, "error reading IDX file '", path, "': ", std::strerror(err));
  return content;
}

// Inflates a gzip file held in memory (several concatenated members allowed, as gzip allows).
std::vector<uint8_t> gunzip(const std::string& path, const std::vector<uint8_t>& in) {
  z_stream zs{};
  DL_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "cannot initialise zlib to read '", path, "'");
  struct Guard {
    z_stream* zs;
    ~Guard() { inflateEnd(zs); }
  } guard{&zs};

  // The gzip trailer's ISIZE (size mod 2^32 of the last member) as a first guess of the size.
  size_t guess = size_t{1} << 16;
  if (in.size() >= 18) {
    const size_t n = in.size();
    const uint32_t isize = uint32_t(in[n - 4]) | uint32_t(in[n - 3]) << 8 | uint32_t(in[n - 2]) << 16 |
                           uint32_t(in[n - 1]) << 24;
    guess = std::clamp<size_t>(isize, guess, std::min<size_t>(size_t{1} << 30, in.size() * 1032));
  }
  std::vector<uint8_t> out(guess);
  size_t produced = 0;
  constexpr size_t kMaxChunk = size_t{1} << 30;
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = 0;
  for (;;) {
    size_t in_pos = static_cast<size_t>(zs.next_in - in.data());
    if (zs.avail_in == 0 && in_pos < in.size())
      zs.avail_in = static_cast<uInt>(std::min(in.size() - in_pos, kMaxChunk));
    if (produced == out.size()) out.resize(out.size() * 2);
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(std::min(out.size() - produced, kMaxChunk));
    const uInt in_before = zs.avail_in, out_before = zs.avail_out;
    const int ret = inflate(&zs, Z_NO_FLUSH);
    produced += out_before - zs.avail_out;
    in_pos = static_cast<size_t>(zs.next_in - in.data());
    if (ret == Z_STREAM_END) {
      if (in_pos == in.size()) break;
      const size_t rest = in.size() - in_pos;
      if (rest >= 2 && in[in_pos] == 0x1f && in[in_pos + 1] == 0x8b) {  // another gzip member
        inflateReset(&zs);
        continue;
      }
      DL_THROW("corrupt gzip file '", path, "': expected the end of the file after the gzip stream at byte ",
               in_pos, ", found ", rest, " more bytes");
    }
    if (ret == Z_OK) continue;
    if (ret == Z_BUF_ERROR) {
      if (zs.avail_in == 0 && in_pos == in.size())
        DL_THROW("truncated gzip file '", path, "': the compressed stream ends early (", in.size(),
                 " bytes read, ", produced, " bytes decompressed, end of stream not reached)");
      if (in_before == zs.avail_in && out_before == zs.avail_out && zs.avail_out != 0)
        DL_THROW("corrupt gzip file '", path, "': zlib made no progress at byte ", in_pos);
      continue;
    }
    DL_THROW("corrupt gzip file '", path, "': ", (zs.msg ? zs.msg : "zlib error"), " (zlib code ", ret,
             ", at compressed byte ", in_pos, " of ", in.size(), ")");
  }
  out.resize(produced);
  return out;
}

uint32_t read_be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

template <typename T>
constexpr IdxType idx_type_of();
template <> constexpr IdxType idx_type_of<uint8_t>() { return IdxType::kUInt8; }
template <> constexpr IdxType idx_type_of<int8_t>() { return IdxType::kInt8; }
template <> constexpr IdxType idx_type_of<int16_t>() { return IdxType::kInt16; }
template <> constexpr IdxType idx_type_of<int32_t>() { return IdxType::kInt32; }
template <> constexpr IdxType idx_type_of<float>() { return IdxType::kFloat32; }
template <> constexpr IdxType idx_type_of<double>() { return IdxType::kFloat64; }

template <typename Src, typename Dst>
void convert(const IdxArray& a, Tensor& t) {
  const Src* s = a.as<Src>();
  Dst* d = t.data<Dst>();
  const int64_t n = a.numel();
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<Dst>(s[i]);
}

}  // namespace

int64_t IdxArray::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::string IdxArray::dims_str() const { return dims_to_string(dims); }

template <typename T>
const T* IdxArray::as() const {
  DL_CHECK(type == idx_type_of<T>(), "IDX file '", path, "' holds ", idx_type_name(type),
           " elements, but they were read as ", idx_type_name(idx_type_of<T>()));
  return reinterpret_cast<const T*>(bytes.data());
}
template const uint8_t* IdxArray::as<uint8_t>() const;
template const int8_t* IdxArray::as<int8_t>() const;
template const int16_t* IdxArray::as<int16_t>() const;
template const int32_t* IdxArray::as<int32_t>() const;
template const float* IdxArray::as<float>() const;
template const double* IdxArray::as<double>() const;

Tensor IdxArray::to_tensor() const {
  DL_CHECK(dims.size() <= static_cast<size_t>(kMaxDims), "IDX file '", path, "' has ", dims.size(),
           " dimensions ", dims_str(), "; a tensor has at most ", kMaxDims);
  const Shape shape(dims);
  switch (type) {
    case IdxType::kUInt8: {
      Tensor t = Tensor::empty(shape, DType::kUInt8);
      if (!bytes.empty()) std::memcpy(t.data<uint8_t>(), bytes.data(), bytes.size());
      return t;
    }
    case IdxType::kInt8: { Tensor t = Tensor::empty(shape, DType::kInt32); convert<int8_t, int32_t>(*this, t); return t; }
    case IdxType::kInt16: { Tensor t = Tensor::empty(shape, DType::kInt32); convert<int16_t, int32_t>(*this, t); return t; }
    case IdxType::kInt32: { Tensor t = Tensor::empty(shape, DType::kInt32); convert<int32_t, int32_t>(*this, t); return t; }
    case IdxType::kFloat32: { Tensor t = Tensor::empty(shape, DType::kFloat32); convert<float, float>(*this, t); return t; }
    case IdxType::kFloat64: { Tensor t = Tensor::empty(shape, DType::kFloat64); convert<double, double>(*this, t); return t; }
  }
  DL_THROW("IDX file '", path, "': unknown element type");
}

IdxArray read_idx(const std::string& path) {
  std::vector<uint8_t> raw = read_file(path);
  const bool gz = raw.size() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b;
  std::vector<uint8_t> content = gz ? gunzip(path, raw) : std::move(raw);
  const char* how = gz ? " (after gzip decompression)" : "";
  const size_t size = content.size();

  DL_CHECK(size >= 4, "'", path, "' is not an IDX file: expected a 4-byte magic number 00 00 <type> <ndims>, found ",
           size, " bytes", how);
  const uint8_t* c = content.data();
  DL_CHECK(c[0] == 0 && c[1] == 0 && valid_type_byte(c[2]), "'", path,
           "' is not an IDX file: expected the magic 00 00 <type> <ndims> with type one of 08 (ubyte), 09 (sbyte), "
           "0b (short), 0c (int), 0d (float), 0e (double); found ",
           hex_byte(c[0]), " ", hex_byte(c[1]), " ", hex_byte(c[2]), " ", hex_byte(c[3]), how);
  IdxArray a;
  a.path = path;
  a.type = static_cast<IdxType>(c[2]);
  const size_t ndims = c[3];
  DL_CHECK(ndims >= 1, "'", path, "': expected at least one dimension in the IDX header, found 0");
  const size_t header = 4 + 4 * ndims;
  DL_CHECK(size >= header, "'", path, "': truncated IDX header: expected ", header, " bytes for ", ndims,
           " dimensions, found ", size, how);
  // Element count; `saturated` once it passes 2^61, so that count * 8 never overflows (255 dimensions
  // of up to 2^31 would overflow any integer).
  bool any_zero = false, saturated = false;
  uint64_t count = 1;
  for (size_t i = 0; i < ndims; ++i) {
    const uint32_t d = read_be32(c + 4 + 4 * i);
    DL_CHECK(d <= static_cast<uint32_t>(INT32_MAX), "'", path, "': dimension ", i, " of the IDX header is ", d,
             ", expected a non-negative 32-bit integer");
    a.dims.push_back(d);
    if (d == 0) any_zero = true;
    else if (count > std::numeric_limits<uint64_t>::max() / 8 / d) saturated = true;
    else count *= d;
  }
  if (any_zero) count = 0, saturated = false;
  const size_t esize = idx_type_size(a.type);
  const size_t found = size - header;
  if (saturated || count * esize != found) {
    const std::string expected = saturated ? std::string("more than 2^61") : std::to_string(count * esize);
    const std::string what = (saturated || count * esize > found)
                                 ? std::string(" (the file is truncated or the dims are wrong)")
                                 : " (" + std::to_string(found - count * esize) + " trailing bytes)";
    DL_THROW("'", path, "': expected ", expected, " bytes of data for dims ", a.dims_str(), " of ",
             idx_type_name(a.type), " (", esize, " byte", esize == 1 ? "" : "s", " each), found ", found, how, what);
  }
  a.bytes.assign(content.begin() + static_cast<std::ptrdiff_t>(header), content.end());
  if (esize > 1 && std::endian::native == std::endian::little) {
    for (size_t i = 0; i < a.bytes.size(); i += esize) std::reverse(a.bytes.begin() + i, a.bytes.begin() + i + esize);
  }
  return a;
}

void write_idx_u8(const std::string& path, const std::vector<int64_t>& dims, const std::vector<uint8_t>& bytes) {
  DL_CHECK(!dims.empty() && dims.size() <= 255, "write_idx_u8('", path, "'): expected 1 to 255 dimensions, got ",
           dims.size());
  bool any_zero = false, saturated = false;
  uint64_t count = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    DL_CHECK(dims[i] >= 0 && dims[i] <= INT32_MAX, "write_idx_u8('", path, "'): dimension ", i, " is ", dims[i],
             ", expected 0 to 2^31-1");
    const auto d = static_cast<uint64_t>(dims[i]);
    if (d == 0) any_zero = true;
    else if (count > std::numeric_limits<uint64_t>::max() / d) saturated = true;
    else count *= d;
  }
  if (any_zero) count = 0, saturated = false;
  DL_CHECK(!saturated && count == bytes.size(), "write_idx_u8('", path, "'): dims ", dims_to_string(dims), " need ",
           saturated ? std::string("more than 2^64") : std::to_string(count), " bytes, got ", bytes.size());

  std::vector<uint8_t> header = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (int64_t d : dims) {
    const auto u = static_cast<uint32_t>(d);
    header.insert(header.end(), {uint8_t(u >> 24), uint8_t(u >> 16), uint8_t(u >> 8), uint8_t(u)});
  }

  std::string tmp = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  DL_CHECK(fd >= 0, "cannot create a temporary file beside '", path, "': ", std::strerror(errno));
  auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    DL_THROW("cannot write IDX file '", path, "' (", what, " of '", tmp, "'): ", std::strerror(err));
  };
  auto write_all = [&](const uint8_t* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("write");
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  };
  write_all(header.data(), header.size());
  write_all(bytes.data(), bytes.size());
  if (::fchmod(fd, 0644) != 0) fail("chmod");
  if (::fsync(fd) != 0) fail("fsync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    DL_THROW("cannot write IDX file '", path, "' (close of '", tmp, "'): ", std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    DL_THROW("cannot write IDX file '", path, "' (rename from '", tmp, "'): ", std::strerror(err));
  }
}

}  // namespace dl::data
