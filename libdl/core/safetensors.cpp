// Reading and writing safetensors files with a small, strict JSON reader for the header.
#include "dl/core/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "dl/core/json.h"
#include "dl/core/serialize.h"

namespace dl {

namespace {

// Note [strict safetensors header]: the header is read by dl::Json (Note [strict JSON]): RFC 8259 as the
// format's reference reader accepts it, valid UTF-8, no duplicate names, nesting at most 8 deep; at the
// top an object whose members are tensors and an optional __metadata__ object of strings. The sizes
// and offsets of tensors are integers that fit 64 bits, read from their digits, never through a double.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the format's own limit

// A JSON number that must be a non-negative integer of at most 64 bits.
uint64_t to_u64(const Json& j, const std::string& path, const std::string& tensor, const char* field) {
  const std::optional<uint64_t> v = j.to_u64();
  DL_CHECK(v.has_value(), path, ": tensor '", tensor, "' has ", field, " '",
           j.is_number() ? j.number_text() : std::string("not a number"),
           "', expected a non-negative integer below 2^64");
  return *v;
}

// The dtypes of the format. libdl reads F32, F64, I32, I64 and U8 as they are, F16 and BF16 as float32.
struct DTypeInfo {
  const char* code;
  size_t size;
  bool readable;
};
DTypeInfo info_of(const std::string& code, const std::string& path, const std::string& tensor) {
  static const DTypeInfo kTable[] = {{"F32", 4, true},  {"F64", 8, true},      {"I32", 4, true},     {"U8", 1, true},
                                     {"I64", 8, true},  {"F16", 2, true},      {"BF16", 2, true},    {"BOOL", 1, true},
                                     {"I8", 1, false},  {"I16", 2, false},     {"U16", 2, false},    {"U32", 4, false},
                                     {"U64", 8, false}, {"F8_E4M3", 1, false}, {"F8_E5M2", 1, false}};
  for (const auto& d : kTable)
    if (code == d.code) {
      DL_CHECK(d.readable, path, ": tensor '", tensor, "' has dtype ", code,
               "; libdl reads F32, F64, F16, BF16, I32, I64, U8 and BOOL");
      return d;
    }
  DL_THROW(path, ": tensor '", tensor, "' has dtype '", code, "', which is not a safetensors dtype");
}

DType dtype_of(const std::string& code) {
  if (code == "F64") return DType::kFloat64;
  if (code == "I32") return DType::kInt32;
  if (code == "I64") return DType::kInt64;
  if (code == "U8") return DType::kUInt8;
  if (code == "BOOL") return DType::kBool;
  if (code == "BF16") return DType::kBFloat16;
  if (code == "F16") return DType::kFloat16;
  return DType::kFloat32;
}

struct Entry {
  std::string name;
  DTypeInfo info;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

const char* code_of(DType t) {
  switch (t) {
    case DType::kFloat32:
      return "F32";
    case DType::kFloat64:
      return "F64";
    case DType::kInt32:
      return "I32";
    case DType::kUInt8:
      return "U8";
    case DType::kInt64:
      return "I64";
    case DType::kBool:
      return "BOOL";
    case DType::kBFloat16:
      return "BF16";
    case DType::kFloat16:
      return "F16";
  }
  return "?";
}
}  // namespace

SafeTensors load_safetensors(const std::string& path, const TensorIoOptions& o) {
  FileReader file(path, "safetensors file");
  unsigned char len_bytes[8] = {};
  const size_t got = file.read_some(len_bytes, 8);
  DL_CHECK(got == 8, path, ": expected a safetensors file (an 8-byte header length, then a JSON header), got ",
           describe_file_signature(len_bytes, got), " of ", file.size(), " bytes");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  DL_CHECK(header_len <= kMaxHeaderBytes, path, ": safetensors header length ", header_len,
           " is over the format's limit of ", kMaxHeaderBytes, " bytes (", describe_file_signature(len_bytes, 8), ")");
  DL_CHECK(header_len >= 2 && header_len <= file.remaining(), path, ": safetensors header length ", header_len,
           " does not fit the file (", file.remaining(), " bytes after the length)");
  std::string header(static_cast<size_t>(header_len), '\0');
  file.read_exact(header.data(), header.size(), "safetensors header");
  DL_CHECK(valid_utf8(header), path, ": the safetensors header is not valid UTF-8");
  Json root;
  try {
    root = Json::parse(header, JsonLimits{.max_depth = 8});
  } catch (const Error& e) {
    DL_THROW(path, ": malformed safetensors header: ", e.what(), " of the header");
  }
  DL_CHECK(root.is_object(), path, ": malformed safetensors header: expected a JSON object, got ",
           root.dump().substr(0, 40));
  const uint64_t data_size = file.remaining();

  // Everything is checked from the header before a byte of data is read or a tensor allocated.
  SafeTensors out;
  std::vector<Entry> entries;
  for (const auto& [name, v] : root.members()) {
    if (name == "__metadata__") {
      DL_CHECK(v.is_object(), path, ": __metadata__ is not an object of strings");
      for (const auto& [k, m] : v.members()) {
        DL_CHECK(m.is_string(), path, ": metadata '", k, "' is not a string");
        out.metadata[k] = m.string();
      }
      continue;
    }
    const Json* dt = v.find("dtype");
    const Json* shape = v.find("shape");
    const Json* offsets = v.find("data_offsets");
    DL_CHECK(v.is_object() && v.size() == 3 && dt && dt->is_string() && shape && shape->is_array() && offsets &&
                 offsets->is_array() && offsets->items().size() == 2,
             path, ": tensor '", name,
             "' needs exactly dtype (a string), shape (an array) and data_offsets (two integers)");
    Entry e;
    e.name = name;
    e.info = info_of(dt->string(), path, name);
    std::vector<int64_t> dims;
    for (const Json& d : shape->items()) {
      const uint64_t u = to_u64(d, path, name, "a dimension");
      DL_CHECK(u <= static_cast<uint64_t>(kMaxElements), path, ": tensor '", name, "' has dimension ", u,
               ", over 2^56");
      dims.push_back(static_cast<int64_t>(u));
    }
    DL_CHECK(dims.size() <= static_cast<size_t>(kMaxDims), path, ": tensor '", name, "' has ", dims.size(),
             " dimensions; libdl supports ", kMaxDims);
    const uint64_t want = checked_byte_count(dims, e.info.size, path + ": tensor '" + name + "'");
    e.shape = Shape(dims);
    e.begin = to_u64(offsets->items()[0], path, name, "a data offset");
    e.end = to_u64(offsets->items()[1], path, name, "a data offset");
    DL_CHECK(e.begin <= e.end && e.end <= data_size, path, ": tensor '", name, "' data [", e.begin, ", ", e.end,
             ") lies outside the ", data_size, " data bytes");
    DL_CHECK(e.end - e.begin == want, path, ": tensor '", name, "' ", e.shape.str(), " ", e.info.code, " needs ", want,
             " bytes, its offsets give ", e.end - e.begin);
    entries.push_back(std::move(e));
  }
  // The tensors must tile the data exactly: no hole, no overlap, nothing after the last.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (const Entry& e : entries) {
    DL_CHECK(e.begin >= covered, path, ": tensor '", e.name, "' data [", e.begin, ", ", e.end,
             ") overlaps the tensor before it, which ends at ", covered);
    DL_CHECK(e.begin == covered, path, ": the data has a hole of ", e.begin - covered, " bytes at [", covered, ", ",
             e.begin, ") before tensor '", e.name, "'");
    covered = e.end;
  }
  DL_CHECK(covered == data_size, path, ": ", data_size - covered, " bytes after the last tensor's data (", covered,
           " of ", data_size, " data bytes are described by the header)");

  // One pass over the data, straight into the tensors (every readable dtype is one of libdl's).
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, dtype_of(e.info.code));
    if (e.end > e.begin) file.read_exact(t.raw_data(), e.end - e.begin, "tensor data");
    check_bool_bytes(t, path, e.name);
    if (!o.allow_non_finite) check_all_finite(t, path, e.name);
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata, const TensorIoOptions& o) {
  if (!o.allow_non_finite)
    for (const auto& [name, t] : tensors) check_all_finite(t, path + " (not written)", name);
  Json root = Json::object();
  if (!metadata.empty()) {
    Json& m = root["__metadata__"] = Json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    DL_CHECK(t.defined(), path, ": tensor '", name, "' is undefined");
    DL_CHECK(name != "__metadata__" && !root.find(name), path, ": two tensors are named '", name,
             "' (or one is named __metadata__); safetensors names must be unique");
    Json& entry = root[name] = Json::object();
    entry["dtype"] = code_of(t.dtype());
    Json& shape = entry["shape"] = Json::array();
    for (int d = 0; d < t.dim(); ++d) shape.push_back(t.size(d));
    Json& offsets = entry["data_offsets"] = Json::array();
    offsets.push_back(offset);
    offsets.push_back(offset + t.nbytes());
    offset += t.nbytes();
  }
  std::string header = root.dump();
  while ((8 + header.size()) % 8) header += ' ';  // align the data to 8 bytes, as the reference writer does
  std::string out(8, '\0');
  uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  out += header;
  for (const auto& [name, t] : tensors) {
    const Tensor c = t.to(Device::cpu());
    out.append(static_cast<const char*>(c.raw_data()), c.nbytes());
  }
  write_file_atomically(path, out);
}

}  // namespace dl
