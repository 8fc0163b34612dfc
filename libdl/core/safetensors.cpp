// Reading and writing safetensors files with a small, strict JSON reader for the header.
#include "dl/core/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "dl/core/serialize.h"

namespace dl {

namespace {

// A JSON value as far as safetensors headers need: objects, arrays, strings, integers.
struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  double number = 0;
  bool boolean = false;
  std::string str;
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;
  const Json* get(const std::string& key) const {
    for (const auto& [k, v] : members)
      if (k == key) return &v;
    return nullptr;
  }
};

class JsonReader {
 public:
  JsonReader(const std::string& text, const std::string& path) : s_(text), path_(path) {}
  Json parse() {
    Json v = value(0);
    skip();
    DL_CHECK(pos_ == s_.size(), path_, ": safetensors header has trailing characters at offset ", pos_);
    return v;
  }

 private:
  [[noreturn]] void fail(const char* what) { DL_THROW(path_, ": malformed safetensors header: ", what, " at offset ", pos_); }
  void skip() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
  }
  char peek() {
    skip();
    if (pos_ >= s_.size()) fail("unexpected end");
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) fail("unexpected character");
    ++pos_;
  }
  Json value(int depth) {
    if (depth > 16) fail("nesting too deep");
    Json v;
    const char c = peek();
    if (c == '{') {
      v.kind = Json::kObject;
      ++pos_;
      if (peek() == '}') return ++pos_, v;
      for (;;) {
        std::string key = string();
        expect(':');
        v.members.emplace_back(std::move(key), value(depth + 1));
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
      v.str = string();
      return v;
    }
    if (s_.compare(pos_, 4, "null") == 0) return pos_ += 4, v;
    if (s_.compare(pos_, 4, "true") == 0) return pos_ += 4, v.kind = Json::kBool, v.boolean = true, v;
    if (s_.compare(pos_, 5, "false") == 0) return pos_ += 5, v.kind = Json::kBool, v;
    const size_t start = pos_;
    while (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '-' || s_[pos_] == '+' ||
                                s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E'))
      ++pos_;
    if (start == pos_) fail("unexpected character");
    v.kind = Json::kNumber;
    try {
      v.number = std::stod(s_.substr(start, pos_ - start));
    } catch (const std::exception&) {
      fail("bad number");
    }
    return v;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char ch = s_[pos_++];
      if (ch == '\\') {
        if (pos_ >= s_.size()) fail("bad escape");
        const char e = s_[pos_++];
        switch (e) {
          case 'n': ch = '\n'; break;
          case 't': ch = '\t'; break;
          case 'r': ch = '\r'; break;
          case 'b': ch = '\b'; break;
          case 'f': ch = '\f'; break;
          case 'u': {
            if (pos_ + 4 > s_.size()) fail("bad \\u escape");
            const unsigned code = static_cast<unsigned>(std::stoul(s_.substr(pos_, 4), nullptr, 16));
            pos_ += 4;
            if (code >= 0x80) fail("non-ASCII \\u escape in a name");
            ch = static_cast<char>(code);
            break;
          }
          default: ch = e;
        }
      }
      out += ch;
    }
    if (pos_ >= s_.size()) fail("unterminated string");
    ++pos_;
    return out;
  }
  const std::string& s_;
  const std::string& path_;
  size_t pos_ = 0;
};

struct DTypeInfo {
  const char* name;
  size_t size;
};
DTypeInfo info_of(const std::string& code, const std::string& path, const std::string& tensor) {
  if (code == "F32") return {"F32", 4};
  if (code == "F64") return {"F64", 8};
  if (code == "I32") return {"I32", 4};
  if (code == "U8") return {"U8", 1};
  if (code == "I64") return {"I64", 8};
  DL_THROW(path, ": tensor '", tensor, "' has dtype ", code, "; libdl reads F32, F64, I32, U8 and I64");
}

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

SafeTensors load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DL_CHECK(in.good(), path, ": cannot open safetensors file: ", std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  DL_CHECK(bytes.size() >= 8, path, ": not a safetensors file (", bytes.size(), " bytes, expected an 8-byte header length)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[i]);
  DL_CHECK(header_len <= bytes.size() - 8, path, ": safetensors header length ", header_len, " exceeds the file (",
           bytes.size() - 8, " bytes after the length)");
  const std::string header = bytes.substr(8, header_len);
  const Json root = JsonReader(header, path).parse();
  DL_CHECK(root.kind == Json::kObject, path, ": safetensors header is not a JSON object");
  const size_t data_start = 8 + header_len, data_size = bytes.size() - data_start;

  SafeTensors out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, v] : root.members) {
    if (name == "__metadata__") {
      DL_CHECK(v.kind == Json::kObject, path, ": __metadata__ is not an object");
      for (const auto& [k, m] : v.members) {
        DL_CHECK(m.kind == Json::kString, path, ": metadata '", k, "' is not a string");
        out.metadata[k] = m.str;
      }
      continue;
    }
    const Json* dt = v.get("dtype");
    const Json* shape = v.get("shape");
    const Json* offsets = v.get("data_offsets");
    DL_CHECK(v.kind == Json::kObject && dt && dt->kind == Json::kString && shape && shape->kind == Json::kArray && offsets &&
                 offsets->kind == Json::kArray && offsets->items.size() == 2,
             path, ": tensor '", name, "' needs dtype, shape and two data_offsets");
    const DTypeInfo info = info_of(dt->str, path, name);
    std::vector<int64_t> dims;
    for (const Json& d : shape->items) {
      DL_CHECK(d.kind == Json::kNumber && d.number >= 0 && d.number < 1e12 && d.number == static_cast<int64_t>(d.number),
               path, ": tensor '", name, "' has an invalid dimension");
      dims.push_back(static_cast<int64_t>(d.number));
    }
    DL_CHECK(dims.size() <= static_cast<size_t>(kMaxDims), path, ": tensor '", name, "' has ", dims.size(),
             " dimensions; libdl supports ", kMaxDims);
    for (const Json& o : offsets->items)
      DL_CHECK(o.kind == Json::kNumber && o.number >= 0 && o.number == static_cast<double>(static_cast<uint64_t>(o.number)),
               path, ": tensor '", name, "' has an invalid data offset");
    const uint64_t begin = static_cast<uint64_t>(offsets->items[0].number);
    const uint64_t end = static_cast<uint64_t>(offsets->items[1].number);
    const Shape s(dims);
    const uint64_t want = static_cast<uint64_t>(s.numel()) * info.size;
    DL_CHECK(begin <= end && end <= data_size, path, ": tensor '", name, "' data [", begin, ", ", end,
             ") lies outside the ", data_size, " data bytes");
    DL_CHECK(end - begin == want, path, ": tensor '", name, "' ", s.str(), " ", info.name, " needs ", want,
             " bytes, its offsets give ", end - begin);
    ranges.emplace_back(begin, end);
    const char* src = bytes.data() + data_start + begin;
    Tensor t;
    if (dt->str == "I64") {
      t = Tensor::empty(s, DType::kInt32);
      int32_t* dst = t.data<int32_t>();
      for (int64_t i = 0; i < s.numel(); ++i) {
        int64_t v64;
        std::memcpy(&v64, src + i * 8, 8);
        DL_CHECK(v64 >= std::numeric_limits<int32_t>::min() && v64 <= std::numeric_limits<int32_t>::max(), path,
                 ": tensor '", name, "' holds the I64 value ", v64, ", outside int32");
        dst[i] = static_cast<int32_t>(v64);
      }
    } else {
      const DType dtype = dt->str == "F32" ? DType::kFloat32
                          : dt->str == "F64" ? DType::kFloat64
                          : dt->str == "I32" ? DType::kInt32
                                             : DType::kUInt8;
      t = Tensor::empty(s, dtype);
      if (want) std::memcpy(t.raw_data(), src, want);
    }
    out.tensors.emplace_back(name, std::move(t));
  }
  // Overlapping tensors mean a corrupt or hostile file.
  std::vector<std::pair<uint64_t, uint64_t>> sorted = ranges;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 1; i < sorted.size(); ++i)
    DL_CHECK(sorted[i].first >= sorted[i - 1].second || sorted[i].first == sorted[i].second, path,
             ": tensor data ranges overlap at byte ", sorted[i].first);
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
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
