// The JSON reader and writer of dl/core/json.h.
#include "dl/core/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "dl/core/error.h"

namespace dl {

// Note [strict JSON]: libdl reads JSON written by strangers (a safetensors header from a model hub) and
// by itself (run reports, sweep records), and one reader serves both. It accepts RFC 8259 exactly: one
// value, whitespace around it, valid UTF-8 everywhere, no raw control characters in strings, escapes
// and surrogate pairs as the RFC spells them, numbers by the JSON grammar (no NaN, no hex, no leading
// '+' or '0'), no trailing commas. Two limits keep a hostile file from costing more than its size:
// nesting deeper than JsonLimits::max_depth is refused before recursing, and a repeated name in an
// object is refused (a hash set per object, so a header with a million names is linear, not quadratic)
// because two readers that resolve a duplicate differently read two different files. Numbers keep the
// text they were read from: a double for arithmetic, the digits for integers that a double would round.

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80)
      len = 1, cp = c;
    else if ((c & 0xe0) == 0xc0)
      len = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
      len = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
      len = 4, cp = c & 0x07;
    else
      return false;
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = cp << 6 | (d & 0x3f);
    }
    static constexpr uint32_t kMinCodePoint[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinCodePoint[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

class JsonParser {
 public:
  JsonParser(std::string_view text, const JsonLimits& limits) : s_(text), limits_(limits) {}

  Json parse() {
    if (!valid_utf8(s_)) fail("the text is not valid UTF-8");
    Json v = value(0);
    skip();
    if (pos_ != s_.size()) fail("unexpected text after the value");
    return v;
  }

 private:
  [[noreturn]] void fail(const char* what) const { DL_THROW("json: ", what, " at byte ", pos_); }
  static bool digit(char c) { return c >= '0' && c <= '9'; }
  void skip() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
  }
  char peek() {
    skip();
    if (pos_ >= s_.size()) fail("unexpected end of text");
    return s_[pos_];
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Json value(int depth) {
    const char c = peek();
    if (c == '{' || c == '[') {
      if (depth >= limits_.max_depth) fail("nesting deeper than the limit");
      return c == '{' ? object(depth) : array(depth);
    }
    if (c == '"') return Json(string());
    if (literal("null")) return Json();
    if (literal("true")) return Json(true);
    if (literal("false")) return Json(false);
    if (c == '-' || digit(c)) return number();
    fail("expected a value");
  }

  Json object(int depth) {
    Json v = Json::object();
    ++pos_;
    if (peek() == '}') return ++pos_, v;
    std::unordered_set<std::string> seen;  // decoded names: "a" and "\u0061" are one name
    for (;;) {
      if (peek() != '"') fail("expected a name in quotes");
      const size_t at = pos_;
      std::string name = string();
      if (limits_.unique_names && !seen.insert(name).second) {
        pos_ = at;
        fail("duplicate name in an object");
      }
      if (peek() != ':') fail("expected ':'");
      ++pos_;
      v.obj_.emplace_back(std::move(name), value(depth + 1));
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') fail("expected ',' or '}'");
      ++pos_;
      return v;
    }
  }

  Json array(int depth) {
    Json v = Json::array();
    ++pos_;
    if (peek() == ']') return ++pos_, v;
    for (;;) {
      v.arr_.push_back(value(depth + 1));
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != ']') fail("expected ',' or ']'");
      ++pos_;
      return v;
    }
  }

  // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
  Json number() {
    const size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    if (pos_ >= s_.size() || !digit(s_[pos_])) fail("expected a digit");
    if (s_[pos_] == '0')
      ++pos_;
    else
      while (pos_ < s_.size() && digit(s_[pos_])) ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (pos_ >= s_.size() || !digit(s_[pos_])) fail("expected a digit after '.'");
      while (pos_ < s_.size() && digit(s_[pos_])) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (pos_ >= s_.size() || !digit(s_[pos_])) fail("expected a digit in the exponent");
      while (pos_ < s_.size() && digit(s_[pos_])) ++pos_;
    }
    Json v;
    v.type_ = Json::Type::kNumber;
    v.str_ = std::string(s_.substr(start, pos_ - start));
    double d = 0;
    const auto r = std::from_chars(v.str_.data(), v.str_.data() + v.str_.size(), d);
    // Out of range: the grammar has been checked, so the number is finite text with a huge exponent.
    if (r.ec == std::errc::result_out_of_range) d = v.str_[0] == '-' ? -HUGE_VAL : HUGE_VAL;
    v.num_ = d;
    return v;
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("bad \\u escape (expected four hex digits)");
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      code <<= 4;
      if (digit(h))
        code |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f')
        code |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        code |= static_cast<unsigned>(h - 'A' + 10);
      else
        fail("bad \\u escape (expected four hex digits)");
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
    ++pos_;  // the opening quote
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const char ch = s_[pos_++];
      if (ch == '"') return out;
      if (static_cast<unsigned char>(ch) < 0x20) fail("control character in a string");
      if (ch != '\\') {
        out += ch;
        continue;
      }
      if (pos_ >= s_.size()) fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
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
        default:
          --pos_, fail("unknown escape");
      }
    }
  }

  std::string_view s_;
  JsonLimits limits_;
  size_t pos_ = 0;
};

Json Json::parse(std::string_view text, const JsonLimits& limits) { return JsonParser(text, limits).parse(); }

Json::Json(long long v) : type_(Type::kNumber), num_(static_cast<double>(v)), str_(std::to_string(v)) {}
Json::Json(unsigned long v) : Json(static_cast<unsigned long long>(v)) {}
Json::Json(unsigned long long v) : type_(Type::kNumber), num_(static_cast<double>(v)), str_(std::to_string(v)) {}

Json Json::array() {
  Json j;
  j.type_ = Type::kArray;
  return j;
}

Json Json::object() {
  Json j;
  j.type_ = Type::kObject;
  return j;
}

Json& Json::operator[](const std::string& key) {
  if (type_ == Type::kNull) type_ = Type::kObject;
  DL_CHECK(type_ == Type::kObject, "json: [\"", key, "\"] on a value that is not an object");
  for (auto& [k, v] : obj_)
    if (k == key) return v;
  obj_.emplace_back(key, Json());
  return obj_.back().second;
}

const Json* Json::find(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  for (const auto& [k, v] : obj_)
    if (k == key) return &v;
  return nullptr;
}

const Json* Json::at_path(std::string_view path) const {
  const Json* j = this;
  for (;;) {
    const size_t dot = path.find('.');
    j = j->find(path.substr(0, dot));
    if (!j || dot == std::string_view::npos) return j;
    path.remove_prefix(dot + 1);
  }
}

const std::string& Json::string() const {
  static const std::string empty;
  return type_ == Type::kString ? str_ : empty;
}

double Json::number_at(std::string_view path, double fallback) const {
  const Json* j = at_path(path);
  return j ? j->number(fallback) : fallback;
}

std::string Json::string_at(std::string_view path, const std::string& fallback) const {
  const Json* j = at_path(path);
  return j && j->is_string() ? j->str_ : fallback;
}

std::optional<uint64_t> Json::to_u64() const {
  if (type_ != Type::kNumber || str_.empty() || str_.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (const char c : str_)
    if (c < '0' || c > '9' || __builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, uint64_t(c - '0'), &v))
      return std::nullopt;
  return v;
}

std::string Json::number_text() const {
  if (type_ != Type::kNumber) return {};
  if (!str_.empty()) return str_;
  if (!std::isfinite(num_)) return "null";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, num_);
  return std::string(buf, r.ptr);
}

void Json::push_back(Json v) {
  if (type_ == Type::kNull) type_ = Type::kArray;
  DL_CHECK(type_ == Type::kArray, "json: push_back on a value that is not an array");
  arr_.push_back(std::move(v));
}

std::string Json::quote(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

std::string Json::dump(int indent) const {
  std::string out;
  write(out, indent, 0);
  return out;
}

void Json::write(std::string& out, int indent, int depth) const {
  const auto newline = [&](int d) {
    if (indent >= 0) out.append("\n").append(static_cast<size_t>(indent * d), ' ');
  };
  switch (type_) {
    case Type::kNull:
      out += "null";
      break;
    case Type::kBool:
      out += bool_ ? "true" : "false";
      break;
    case Type::kNumber:
      out += number_text();
      break;
    case Type::kString:
      out += quote(str_);
      break;
    case Type::kArray:
      out += '[';
      for (size_t i = 0; i < arr_.size(); ++i) {
        if (i) out += indent >= 0 ? "," : ", ";
        newline(depth + 1);
        arr_[i].write(out, indent, depth + 1);
      }
      if (!arr_.empty()) newline(depth);
      out += ']';
      break;
    case Type::kObject:
      out += '{';
      for (size_t i = 0; i < obj_.size(); ++i) {
        if (i) out += indent >= 0 ? "," : ", ";
        newline(depth + 1);
        out.append(quote(obj_[i].first)).append(": ");
        obj_[i].second.write(out, indent, depth + 1);
      }
      if (!obj_.empty()) newline(depth);
      out += '}';
      break;
  }
}

}  // namespace dl
