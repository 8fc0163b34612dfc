// Reading and writing safetensors files with a small, strict JSON reader for the header.
#include "dl/core/safetensors.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "dl/core/serialize.h"

namespace dl {

namespace {

// Note [strict safetensors header]: the header is JSON as RFC 8259 defines it and the format's
// reference reader accepts: valid UTF-8, an object at the top, no duplicate names, strings without raw
// control characters, numbers by the JSON grammar; the sizes and offsets of tensors are integers that
// fit 64 bits (read from their digits, never through a double). Only spaces may follow the object.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the format's own limit

struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  std::string text;  // a string's value, or a number's digits as written
  std::vector<Json> items;
  std::vector<std::string> keys;  // an object's names, and its values in `items`
  const Json* get(const std::string& key) const {
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &items[i];
    return nullptr;
  }
};

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) len = 1, cp = c;
    else if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07;
    else return false;
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = cp << 6 | (d & 0x3f);
    }
    const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

class JsonReader {
 public:
  JsonReader(const std::string& text, const std::string& path) : s_(text), path_(path) {}
  Json parse() {
    skip();
    if (pos_ >= s_.size() || s_[pos_] != '{') fail("expected the header to be a JSON object");
    Json v = value(0);
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;  // the writer's padding
    if (pos_ != s_.size()) fail("unexpected characters after the header's object");
    return v;
  }

 private:
  [[noreturn]] void fail(const char* what) { DL_THROW(path_, ": malformed safetensors header: ", what, " at byte ", pos_, " of the header"); }
  void skip() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
  }
  char peek() {
    skip();
    if (pos_ >= s_.size()) fail("unexpected end");
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) fail(c == ':' ? "expected ':'" : c == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    ++pos_;
  }
  bool literal(const char* word) {
    const size_t n = std::strlen(word);
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }
  static bool digit(char c) { return c >= '0' && c <= '9'; }
  Json value(int depth) {
    if (depth > 8) fail("nesting too deep");
    Json v;
    const char c = peek();
    if (c == '{') {
      v.kind = Json::kObject;
      ++pos_;
      if (peek() == '}') return ++pos_, v;
      std::unordered_set<std::string> seen;  // a header may hold millions of names: no quadratic search
      for (;;) {
        if (peek() != '"') fail("expected a name in quotes");
        std::string key = string();
        if (!seen.insert(key).second) fail("duplicate name");
        expect(':');
        v.keys.push_back(std::move(key));
        v.items.push_back(value(depth + 1));
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::kArray;
      ++pos_;
      if (peek() == ']') return ++pos_, v;
      for (;;) {
        v.items.push_back(value(depth + 1));
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Json::kString;
      v.text = string();
      return v;
    }
    if (literal("null")) return v;
    if (literal("true") || literal("false")) return v.kind = Json::kBool, v;
    // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    const size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (pos_ >= s_.size() || !digit(s_[pos_])) fail("unexpected character");
    if (s_[pos_] == '0') ++pos_;
    else
      while (pos_ < s_.size() && digit(s_[pos_])) ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (pos_ >= s_.size() || !digit(s_[pos_])) fail("bad number");
      while (pos_ < s_.size() && digit(s_[pos_])) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (pos_ >= s_.size() || !digit(s_[pos_])) fail("bad number");
      while (pos_ < s_.size() && digit(s_[pos_])) ++pos_;
    }
    v.kind = Json::kNumber;
    v.text = s_.substr(start, pos_ - start);
    return v;
  }
  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("bad \\u escape");
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      code <<= 4;
      if (digit(h)) code |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') code |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') code |= static_cast<unsigned>(h - 'A' + 10);
      else fail("bad \\u escape");
    }
    return code;
  }
  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | cp >> 6);
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | cp >> 12);
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | cp >> 18);
      out += static_cast<char>(0x80 | (cp >> 12 & 0x3f));
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail("unterminated string");
      char ch = s_[pos_++];
      if (ch == '"') return out;
      if (static_cast<unsigned char>(ch) < 0x20) fail("control character in a string");
      if (ch != '\\') {
        out += ch;
        continue;
      }
      if (pos_ >= s_.size()) fail("bad escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xdc00 && cp <= 0xdfff) fail("lone low surrogate in a \\u escape");
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (!(pos_ + 2 <= s_.size() && s_[pos_] == '\\' && s_[pos_ + 1] == 'u')) fail("lone high surrogate");
            pos_ += 2;
            const uint32_t lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          put_utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
  }
  const std::string& s_;
  const std::string& path_;
  size_t pos_ = 0;
};

// A JSON number that must be a non-negative integer of at most 64 bits.
uint64_t to_u64(const Json& j, const std::string& path, const std::string& tensor, const char* field) {
  bool ok = j.kind == Json::kNumber && !j.text.empty() && j.text.size() <= 20;
  uint64_t v = 0;
  for (size_t i = 0; ok && i < j.text.size(); ++i) {
    const char c = j.text[i];
    ok = c >= '0' && c <= '9' && !__builtin_mul_overflow(v, 10u, &v) && !__builtin_add_overflow(v, uint64_t(c - '0'), &v);
  }
  DL_CHECK(ok, path, ": tensor '", tensor, "' has ", field, " '", j.kind == Json::kNumber ? j.text : std::string("not a number"),
           "', expected a non-negative integer below 2^64");
  return v;
}

// The dtypes of the format. libdl reads F32, F64, I32 and U8 as they are, I64 as int32 (range
// checked), F16 and BF16 as float32.
struct DTypeInfo {
  const char* code;
  size_t size;
  bool readable;
};
DTypeInfo info_of(const std::string& code, const std::string& path, const std::string& tensor) {
  static const DTypeInfo kTable[] = {
      {"F32", 4, true},  {"F64", 8, true},   {"I32", 4, true},  {"U8", 1, true},        {"I64", 8, true},
      {"F16", 2, true},  {"BF16", 2, true},  {"BOOL", 1, false}, {"I8", 1, false},      {"I16", 2, false},
      {"U16", 2, false}, {"U32", 4, false},  {"U64", 8, false},  {"F8_E4M3", 1, false}, {"F8_E5M2", 1, false}};
  for (const auto& d : kTable)
    if (code == d.code) {
      DL_CHECK(d.readable, path, ": tensor '", tensor, "' has dtype ", code,
               "; libdl reads F32, F64, F16, BF16, I32, I64 and U8");
      return d;
    }
  DL_THROW(path, ": tensor '", tensor, "' has dtype '", code, "', which is not a safetensors dtype");
}

DType dtype_of(const std::string& code) {
  if (code == "F64") return DType::kFloat64;
  if (code == "I32" || code == "I64") return DType::kInt32;
  if (code == "U8") return DType::kUInt8;
  return DType::kFloat32;  // F32, F16, BF16
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) return (sign ? -1.0f : 1.0f) * std::ldexp(static_cast<float>(mant), -24);
  uint32_t bits;
  if (exp == 31) bits = sign | 0x7f800000u | (mant << 13);
  else bits = sign | ((exp + 112) << 23) | (mant << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

struct Entry {
  std::string name;
  DTypeInfo info;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

const char* code_of(DType t) {
  switch (t) {
    case DType::kFloat32: return "F32";
    case DType::kFloat64: return "F64";
    case DType::kInt32: return "I32";
    case DType::kUInt8: return "U8";
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
  DL_CHECK(header_len <= kMaxHeaderBytes, path, ": safetensors header length ", header_len, " is over the format's limit of ",
           kMaxHeaderBytes, " bytes (", describe_file_signature(len_bytes, 8), ")");
  DL_CHECK(header_len >= 2 && header_len <= file.remaining(), path, ": safetensors header length ", header_len,
           " does not fit the file (", file.remaining(), " bytes after the length)");
  std::string header(static_cast<size_t>(header_len), '\0');
  file.read_exact(header.data(), header.size(), "safetensors header");
  DL_CHECK(valid_utf8(header), path, ": the safetensors header is not valid UTF-8");
  const Json root = JsonReader(header, path).parse();
  const uint64_t data_size = file.remaining();

  // Everything is checked from the header before a byte of data is read or a tensor allocated.
  SafeTensors out;
  std::vector<Entry> entries;
  for (size_t member = 0; member < root.keys.size(); ++member) {
    const std::string& name = root.keys[member];
    const Json& v = root.items[member];
    if (name == "__metadata__") {
      DL_CHECK(v.kind == Json::kObject, path, ": __metadata__ is not an object of strings");
      for (size_t i = 0; i < v.keys.size(); ++i) {
        const std::string& k = v.keys[i];
        const Json& m = v.items[i];
        DL_CHECK(m.kind == Json::kString, path, ": metadata '", k, "' is not a string");
        out.metadata[k] = m.text;
      }
      continue;
    }
    const Json* dt = v.get("dtype");
    const Json* shape = v.get("shape");
    const Json* offsets = v.get("data_offsets");
    DL_CHECK(v.kind == Json::kObject && v.keys.size() == 3 && dt && dt->kind == Json::kString && shape &&
                 shape->kind == Json::kArray && offsets && offsets->kind == Json::kArray && offsets->items.size() == 2,
             path, ": tensor '", name, "' needs exactly dtype (a string), shape (an array) and data_offsets (two integers)");
    Entry e;
    e.name = name;
    e.info = info_of(dt->text, path, name);
    std::vector<int64_t> dims;
    for (const Json& d : shape->items) {
      const uint64_t u = to_u64(d, path, name, "a dimension");
      DL_CHECK(u <= static_cast<uint64_t>(kMaxElements), path, ": tensor '", name, "' has dimension ", u, ", over 2^56");
      dims.push_back(static_cast<int64_t>(u));
    }
    DL_CHECK(dims.size() <= static_cast<size_t>(kMaxDims), path, ": tensor '", name, "' has ", dims.size(),
             " dimensions; libdl supports ", kMaxDims);
    const uint64_t want = checked_byte_count(dims, e.info.size, path + ": tensor '" + name + "'");
    e.shape = Shape(dims);
    e.begin = to_u64(offsets->items[0], path, name, "a data offset");
    e.end = to_u64(offsets->items[1], path, name, "a data offset");
    DL_CHECK(e.begin <= e.end && e.end <= data_size, path, ": tensor '", name, "' data [", e.begin, ", ", e.end,
             ") lies outside the ", data_size, " data bytes");
    DL_CHECK(e.end - e.begin == want, path, ": tensor '", name, "' ", e.shape.str(), " ", e.info.code, " needs ", want,
             " bytes, its offsets give ", e.end - e.begin);
    entries.push_back(std::move(e));
  }
  // The tensors must tile the data exactly: no hole, no overlap, nothing after the last.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t covered = 0;
  for (const Entry& e : entries) {
    DL_CHECK(e.begin >= covered, path, ": tensor '", e.name, "' data [", e.begin, ", ", e.end,
             ") overlaps the tensor before it, which ends at ", covered);
    DL_CHECK(e.begin == covered, path, ": the data has a hole of ", e.begin - covered, " bytes at [", covered, ", ",
             e.begin, ") before tensor '", e.name, "'");
    covered = e.end;
  }
  DL_CHECK(covered == data_size, path, ": ", data_size - covered, " bytes after the last tensor's data (",
           covered, " of ", data_size, " data bytes are described by the header)");

  // One pass over the data, straight into the tensors (conversions through a small buffer).
  std::vector<unsigned char> chunk;
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, dtype_of(e.info.code));
    const int64_t n = e.shape.numel();
    const std::string code = e.info.code;
    if (code == "F32" || code == "F64" || code == "I32" || code == "U8") {
      if (n) file.read_exact(t.raw_data(), e.end - e.begin, "tensor data");
    } else {
      constexpr int64_t kChunk = 1 << 14;
      chunk.resize(static_cast<size_t>(kChunk * 8));
      for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
        const int64_t m = std::min(kChunk, n - i0);
        file.read_exact(chunk.data(), static_cast<size_t>(m) * e.info.size, "tensor data");
        for (int64_t i = 0; i < m; ++i) {
          const unsigned char* p = chunk.data() + i * e.info.size;
          if (code == "I64") {
            int64_t v64;
            std::memcpy(&v64, p, 8);
            DL_CHECK(v64 >= std::numeric_limits<int32_t>::min() && v64 <= std::numeric_limits<int32_t>::max(), path,
                     ": tensor '", e.name, "' holds the I64 value ", v64, ", outside int32");
            t.data<int32_t>()[i0 + i] = static_cast<int32_t>(v64);
          } else {
            uint16_t h;
            std::memcpy(&h, p, 2);
            t.data<float>()[i0 + i] = code == "F16" ? half_to_float(h) : bf16_to_float(h);
          }
        }
      }
    }
    if (!o.allow_non_finite) check_all_finite(t, path, e.name);
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata, const TensorIoOptions& o) {
  if (!o.allow_non_finite)
    for (const auto& [name, t] : tensors) check_all_finite(t, path + " (not written)", name);
  std::string header = "{";
  uint64_t offset = 0;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      header += (first ? "\"" : ",\"") + json_escape(k) + "\":\"" + json_escape(v) + "\"";
      first = false;
    }
    header += "}";
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    DL_CHECK(t.defined(), path, ": tensor '", name, "' is undefined");
    if (header.size() > 1) header += ",";
    header += "\"" + json_escape(name) + "\":{\"dtype\":\"" + code_of(t.dtype()) + "\",\"shape\":[";
    for (int d = 0; d < t.dim(); ++d) header += (d ? "," : "") + std::to_string(t.size(d));
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.nbytes()) + "]}";
    offset += t.nbytes();
  }
  header += "}";
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
