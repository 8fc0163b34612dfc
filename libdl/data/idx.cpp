// IDX reader (plain or gzip, detected by the magic bytes 1f 8b) and an atomic ubyte IDX writer.
#include "dl/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <limits>

#include "dl/core/file_io.h"

namespace dl::data {

const char* idx_type_name(IdxType t) {
  switch (t) {
    case IdxType::kUInt8:
      return "ubyte";
    case IdxType::kInt8:
      return "sbyte";
    case IdxType::kInt16:
      return "short";
    case IdxType::kInt32:
      return "int";
    case IdxType::kFloat32:
      return "float";
    case IdxType::kFloat64:
      return "double";
  }
  return "unknown";
}

size_t idx_type_size(IdxType t) {
  switch (t) {
    case IdxType::kUInt8:
      return 1;
    case IdxType::kInt8:
      return 1;
    case IdxType::kInt16:
      return 2;
    case IdxType::kInt32:
      return 4;
    case IdxType::kFloat32:
      return 4;
    case IdxType::kFloat64:
      return 8;
  }
  return 0;
}

namespace {

bool valid_type_byte(uint8_t b) { return b == 0x08 || b == 0x09 || b == 0x0B || b == 0x0C || b == 0x0D || b == 0x0E; }

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

// The bytes of an IDX file after its first two, plain or through gzip, read in order and never more
// than asked for: the header is read and checked before the data is allocated.
class IdxSource {
 public:
  IdxSource(FileReader& file, const uint8_t* head, size_t head_len, bool gz)
      : file_(file), gz_(gz), head_(head, head + head_len) {
    if (gz_) {
      DL_CHECK(inflateInit2(&zs_, 16 + MAX_WBITS) == Z_OK, "cannot initialise zlib to read '", file_.path(), "'");
      zlib_open_ = true;
      in_.assign(head_.begin(), head_.end());
      zs_.next_in = in_.data();
      zs_.avail_in = static_cast<uInt>(in_.size());
      head_.clear();
    }
  }
  ~IdxSource() {
    if (zlib_open_) inflateEnd(&zs_);
  }
  bool gzip() const { return gz_; }

  // Reads up to n bytes; fewer only at the end of the (decompressed) content.
  size_t read(uint8_t* dst, size_t n) {
    if (!gz_) {
      size_t done = 0;
      while (done < n && head_pos_ < head_.size()) dst[done++] = head_[head_pos_++];
      return done + file_.read_some(dst + done, n - done);
    }
    size_t done = 0;
    while (done < n && !finished_) {
      if (zs_.avail_in == 0) refill();
      if (stream_ended_) {  // between gzip members: another member, or the end of the file
        if (zs_.avail_in == 0) {
          finished_ = true;
          break;
        }
        DL_CHECK(zs_.avail_in >= 2 || file_.remaining() > 0, "corrupt gzip file '", file_.path(),
                 "': expected the end of the file after the gzip stream, found more bytes");
        if (zs_.avail_in < 2) refill_keep();
        DL_CHECK(zs_.next_in[0] == 0x1f && zs_.next_in[1] == 0x8b, "corrupt gzip file '", file_.path(),
                 "': expected the end of the file after the gzip stream at byte ", consumed(), ", found ",
                 zs_.avail_in + file_.remaining(), " more bytes");
        inflateReset(&zs_);
        stream_ended_ = false;
      }
      zs_.next_out = dst + done;
      zs_.avail_out = static_cast<uInt>(std::min<size_t>(n - done, size_t{1} << 30));
      const uInt out_before = zs_.avail_out, in_before = zs_.avail_in;
      const int ret = inflate(&zs_, Z_NO_FLUSH);
      done += out_before - zs_.avail_out;
      if (ret == Z_STREAM_END) {
        stream_ended_ = true;
        continue;
      }
      if (ret == Z_BUF_ERROR || (ret == Z_OK && in_before == zs_.avail_in && out_before == zs_.avail_out)) {
        DL_CHECK(!(zs_.avail_in == 0 && file_.remaining() == 0), "truncated gzip file '", file_.path(),
                 "': the compressed stream ends early (", file_.size(), " bytes read, end of stream not reached)");
        continue;
      }
      DL_CHECK(ret == Z_OK, "corrupt gzip file '", file_.path(), "': ", (zs_.msg ? zs_.msg : "zlib error"),
               " (zlib code ", ret, ", at compressed byte ", consumed(), " of ", file_.size(), ")");
    }
    return done;
  }

  // How many bytes follow what was read, counting at most `cap` (for gzip: what the members still
  // decompress to; 0 when the last member ends exactly at the file's end).
  uint64_t count_rest(uint64_t cap) {
    uint8_t buf[4096];
    uint64_t n = 0;
    while (n < cap) {
      const size_t got = read(buf, sizeof buf);
      if (got == 0) break;
      n += got;
    }
    return n;
  }

 private:
  uint64_t consumed() const { return file_.offset() - zs_.avail_in; }
  void refill() {
    in_.resize(1 << 16);
    const size_t got = file_.read_some(in_.data(), in_.size());
    zs_.next_in = in_.data();
    zs_.avail_in = static_cast<uInt>(got);
  }
  // Moves the unread input to the front and appends more (a gzip magic split across two reads).
  void refill_keep() {
    std::vector<uint8_t> rest(zs_.next_in, zs_.next_in + zs_.avail_in);
    rest.resize(rest.size() + (1 << 16));
    const size_t got = file_.read_some(rest.data() + zs_.avail_in, 1 << 16);
    rest.resize(zs_.avail_in + got);
    in_.swap(rest);
    zs_.next_in = in_.data();
    zs_.avail_in = static_cast<uInt>(in_.size());
  }

  FileReader& file_;
  bool gz_;
  std::vector<uint8_t> head_;
  size_t head_pos_ = 0;
  z_stream zs_{};
  bool zlib_open_ = false, stream_ended_ = false, finished_ = false;
  std::vector<uint8_t> in_;
};

uint32_t read_be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

template <typename T>
constexpr IdxType idx_type_of();
template <>
constexpr IdxType idx_type_of<uint8_t>() {
  return IdxType::kUInt8;
}
template <>
constexpr IdxType idx_type_of<int8_t>() {
  return IdxType::kInt8;
}
template <>
constexpr IdxType idx_type_of<int16_t>() {
  return IdxType::kInt16;
}
template <>
constexpr IdxType idx_type_of<int32_t>() {
  return IdxType::kInt32;
}
template <>
constexpr IdxType idx_type_of<float>() {
  return IdxType::kFloat32;
}
template <>
constexpr IdxType idx_type_of<double>() {
  return IdxType::kFloat64;
}

template <typename Src, typename Dst>
void convert(const IdxArray& a, Tensor& t) {
  const Src* s = a.as<Src>();
  Dst* d = t.data<Dst>();
  const int64_t n = a.numel();
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<Dst>(s[i]);
}

}  // namespace

int64_t IdxArray::numel() const {
  // What was read: the product of the sizes, without forming it (a zero size beside huge ones).
  return static_cast<int64_t>(bytes.size() / idx_type_size(type));
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
  DL_CHECK(dims.size() <= static_cast<size_t>(kMaxDims), "IDX file '", path, "' has ", dims.size(), " dimensions ",
           dims_str(), "; a tensor has at most ", kMaxDims);
  const Shape shape(dims);
  switch (type) {
    case IdxType::kUInt8: {
      Tensor t = Tensor::empty(shape, DType::kUInt8);
      if (!bytes.empty()) std::memcpy(t.data<uint8_t>(), bytes.data(), bytes.size());
      return t;
    }
    case IdxType::kInt8: {
      Tensor t = Tensor::empty(shape, DType::kInt32);
      convert<int8_t, int32_t>(*this, t);
      return t;
    }
    case IdxType::kInt16: {
      Tensor t = Tensor::empty(shape, DType::kInt32);
      convert<int16_t, int32_t>(*this, t);
      return t;
    }
    case IdxType::kInt32: {
      Tensor t = Tensor::empty(shape, DType::kInt32);
      convert<int32_t, int32_t>(*this, t);
      return t;
    }
    case IdxType::kFloat32: {
      Tensor t = Tensor::empty(shape, DType::kFloat32);
      convert<float, float>(*this, t);
      return t;
    }
    case IdxType::kFloat64: {
      Tensor t = Tensor::empty(shape, DType::kFloat64);
      convert<double, double>(*this, t);
      return t;
    }
  }
  DL_THROW("IDX file '", path, "': unknown element type");
}

IdxArray read_idx(const std::string& path) {
  FileReader file(path, "IDX file");
  uint8_t first[2] = {};
  const size_t first_len = file.read_some(first, 2);
  const bool gz = first_len == 2 && first[0] == 0x1f && first[1] == 0x8b;
  IdxSource src(file, first, first_len, gz);
  const char* how = gz ? " (after gzip decompression)" : "";

  uint8_t c[4] = {};
  const size_t got = src.read(c, 4);
  DL_CHECK(got == 4, "'", path, "' is not an IDX file: expected a 4-byte magic number 00 00 <type> <ndims>, found ",
           got, " bytes", how);
  DL_CHECK(c[0] == 0 && c[1] == 0 && valid_type_byte(c[2]), "'", path,
           "' is not an IDX file: expected the magic 00 00 <type> <ndims> with type one of 08 (ubyte), 09 (sbyte), "
           "0b (short), 0c (int), 0d (float), 0e (double); found ",
           hex_byte(c[0]), " ", hex_byte(c[1]), " ", hex_byte(c[2]), " ", hex_byte(c[3]), how,
           gz ? std::string() : ": " + describe_file(path));
  IdxArray a;
  a.path = path;
  a.type = static_cast<IdxType>(c[2]);
  const size_t ndims = c[3];
  DL_CHECK(ndims >= 1, "'", path, "': expected at least one dimension in the IDX header, found 0");
  std::vector<uint8_t> dims_bytes(4 * ndims);
  const size_t dims_got = src.read(dims_bytes.data(), dims_bytes.size());
  DL_CHECK(dims_got == dims_bytes.size(), "'", path, "': truncated IDX header: expected ", 4 + 4 * ndims, " bytes for ",
           ndims, " dimensions, found ", 4 + dims_got, how);
  // Element count; `saturated` once it passes 2^61, so that count * 8 never overflows (255 dimensions
  // of up to 2^31 would overflow any integer).
  bool any_zero = false, saturated = false;
  uint64_t count = 1;
  for (size_t i = 0; i < ndims; ++i) {
    const uint32_t d = read_be32(dims_bytes.data() + 4 * i);
    DL_CHECK(d <= static_cast<uint32_t>(INT32_MAX), "'", path, "': dimension ", i, " of the IDX header is ", d,
             ", expected a non-negative 32-bit integer");
    a.dims.push_back(d);
    if (d == 0)
      any_zero = true;
    else if (count > std::numeric_limits<uint64_t>::max() / 8 / d)
      saturated = true;
    else
      count *= d;
  }
  if (any_zero) count = 0, saturated = false;
  const size_t esize = idx_type_size(a.type);
  const uint64_t header = 4 + 4 * ndims;
  // The data the header declares must be possible before it is allocated: exactly the rest of a plain
  // file; for gzip, at most what deflate's best ratio (1032:1) can expand the compressed bytes to.
  const uint64_t compressed = file.size();
  const uint64_t plain_found = gz ? 0 : file.size() - header;
  const bool possible = !saturated && (gz ? count * esize <= compressed * 1032 + 1024 : count * esize == plain_found);
  if (!possible) {
    const std::string expected = saturated ? std::string("more than 2^61") : std::to_string(count * esize);
    if (gz)
      DL_THROW("'", path, "': the IDX header declares dims ", a.dims_str(), " of ", idx_type_name(a.type), " (",
               expected, " bytes), more than the ", compressed, "-byte gzip file can hold");
    const std::string what = (saturated || count * esize > plain_found)
                                 ? std::string(" (the file is truncated or the dims are wrong)")
                                 : " (" + std::to_string(plain_found - count * esize) + " trailing bytes)";
    DL_THROW("'", path, "': expected ", expected, " bytes of data for dims ", a.dims_str(), " of ",
             idx_type_name(a.type), " (", esize, " byte", esize == 1 ? "" : "s", " each), found ", plain_found, what);
  }
  a.bytes.resize(static_cast<size_t>(count * esize));
  const size_t data_got = src.read(a.bytes.data(), a.bytes.size());
  if (data_got != a.bytes.size())
    DL_THROW("'", path, "': expected ", count * esize, " bytes of data for dims ", a.dims_str(), " of ",
             idx_type_name(a.type), ", found ", data_got, how, " (the file is truncated or the dims are wrong)");
  constexpr uint64_t kCountCap = uint64_t{1} << 20;
  const uint64_t rest = src.count_rest(kCountCap);
  DL_CHECK(rest == 0, "'", path, "': expected ", count * esize, " bytes of data for dims ", a.dims_str(), " of ",
           idx_type_name(a.type), ", found ", rest >= kCountCap ? "more than " : "", count * esize + rest, how, " (",
           rest, rest >= kCountCap ? "+" : "", " trailing bytes)");
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
    if (d == 0)
      any_zero = true;
    else if (count > std::numeric_limits<uint64_t>::max() / d)
      saturated = true;
    else
      count *= d;
  }
  if (any_zero) count = 0, saturated = false;
  DL_CHECK(!saturated && count == bytes.size(), "write_idx_u8('", path, "'): dims ", dims_to_string(dims), " need ",
           saturated ? std::string("more than 2^64") : std::to_string(count), " bytes, got ", bytes.size());

  std::vector<uint8_t> header = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (int64_t d : dims) {
    const auto u = static_cast<uint32_t>(d);
    header.insert(header.end(), {uint8_t(u >> 24), uint8_t(u >> 16), uint8_t(u >> 8), uint8_t(u)});
  }

  std::string out(header.begin(), header.end());
  out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  write_file_atomically(path, out);
}

}  // namespace dl::data
