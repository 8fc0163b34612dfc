// A small JSON value for the sweep tools and the reference programs' --report-json: objects keep
// their keys in insertion order (reports read in the order they were written), numbers are doubles,
// NaN and infinity are written as null. parse() throws dl::Error naming the offset of a syntax error.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dl/core/error.h"

namespace dl::sweep {

class Json {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::kBool), bool_(b) {}
  Json(double d) : type_(Type::kNumber), num_(d) {}
  Json(int v) : Json(static_cast<double>(v)) {}
  Json(int64_t v) : Json(static_cast<double>(v)) {}
  Json(long long v) : Json(static_cast<double>(v)) {}
  Json(uint64_t v) : Json(static_cast<double>(v)) {}
  Json(std::string s) : type_(Type::kString), str_(std::move(s)) {}
  Json(const char* s) : Json(std::string(s)) {}
  static Json array() { Json j; j.type_ = Type::kArray; return j; }
  static Json object() { Json j; j.type_ = Type::kObject; return j; }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_object() const { return type_ == Type::kObject; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }

  // Objects: inserts (or finds) `key`; a null value becomes an object first.
  Json& operator[](const std::string& key) {
    if (type_ == Type::kNull) type_ = Type::kObject;
    DL_CHECK(type_ == Type::kObject, "json: [\"", key, "\"] on a value that is not an object");
    for (auto& [k, v] : obj_)
      if (k == key) return v;
    obj_.emplace_back(key, Json());
    return obj_.back().second;
  }
  const Json* find(const std::string& key) const {
    if (type_ != Type::kObject) return nullptr;
    for (const auto& [k, v] : obj_)
      if (k == key) return &v;
    return nullptr;
  }
  // Follows a dotted path ("test.accuracy"); null when any step is missing.
  const Json* at_path(const std::string& path) const {
    const Json* j = this;
    size_t start = 0;
    while (j && start <= path.size()) {
      const size_t dot = path.find('.', start);
      j = j->find(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    return j;
  }
  double number(double fallback = std::nan("")) const { return type_ == Type::kNumber ? num_ : fallback; }
  bool boolean(bool fallback = false) const { return type_ == Type::kBool ? bool_ : fallback; }
  const std::string& string() const {
    static const std::string empty;
    return type_ == Type::kString ? str_ : empty;
  }
  double number_at(const std::string& path, double fallback = std::nan("")) const {
    const Json* j = at_path(path);
    return j ? j->number(fallback) : fallback;
  }
  std::string string_at(const std::string& path, const std::string& fallback = "") const {
    const Json* j = at_path(path);
    return j && j->is_string() ? j->string() : fallback;
  }

  void push_back(Json v) {
    if (type_ == Type::kNull) type_ = Type::kArray;
    DL_CHECK(type_ == Type::kArray, "json: push_back on a value that is not an array");
    arr_.push_back(std::move(v));
  }
  const std::vector<Json>& items() const { return arr_; }
  const std::vector<std::pair<std::string, Json>>& members() const { return obj_; }
  size_t size() const { return type_ == Type::kArray ? arr_.size() : obj_.size(); }

  // Compact with indent < 0 (one line: JSON Lines), else pretty with `indent` spaces.
  std::string dump(int indent = -1) const {
    std::string out;
    write(out, indent, 0);
    return out;
  }

  static Json parse(const std::string& text) {
    size_t pos = 0;
    Json j = parse_value(text, pos);
    skip_ws(text, pos);
    DL_CHECK(pos == text.size(), "json: unexpected text at offset ", pos);
    return j;
  }

  static std::string quote(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
    }
    return out + "\"";
  }

 private:
  void write(std::string& out, int indent, int depth) const {
    auto newline = [&](int d) {
      if (indent >= 0) out += "\n" + std::string(static_cast<size_t>(indent * d), ' ');
    };
    switch (type_) {
      case Type::kNull: out += "null"; break;
      case Type::kBool: out += bool_ ? "true" : "false"; break;
      case Type::kNumber: {
        if (!std::isfinite(num_)) {
          out += "null";
        } else {
          char buf[40];
          std::snprintf(buf, sizeof buf, "%.10g", num_);
          out += buf;
        }
        break;
      }
      case Type::kString: out += quote(str_); break;
      case Type::kArray:
        out += "[";
        for (size_t i = 0; i < arr_.size(); ++i) {
          if (i) out += indent >= 0 ? "," : ", ";
          if (indent >= 0) newline(depth + 1);
          arr_[i].write(out, indent, depth + 1);
        }
        if (indent >= 0 && !arr_.empty()) newline(depth);
        out += "]";
        break;
      case Type::kObject:
        out += "{";
        for (size_t i = 0; i < obj_.size(); ++i) {
          if (i) out += indent >= 0 ? "," : ", ";
          if (indent >= 0) newline(depth + 1);
          out += quote(obj_[i].first) + ": ";
          obj_[i].second.write(out, indent, depth + 1);
        }
        if (indent >= 0 && !obj_.empty()) newline(depth);
        out += "}";
        break;
    }
  }

  static void skip_ws(const std::string& t, size_t& p) {
    while (p < t.size() && (t[p] == ' ' || t[p] == '\n' || t[p] == '\r' || t[p] == '\t')) ++p;
  }
  static Json parse_value(const std::string& t, size_t& p) {
    skip_ws(t, p);
    DL_CHECK(p < t.size(), "json: unexpected end of text");
    const char c = t[p];
    if (c == '{') {
      Json j = object();
      ++p;
      skip_ws(t, p);
      if (p < t.size() && t[p] == '}') return ++p, j;
      while (true) {
        skip_ws(t, p);
        DL_CHECK(p < t.size() && t[p] == '"', "json: expected a key at offset ", p);
        std::string key = parse_string(t, p);
        skip_ws(t, p);
        DL_CHECK(p < t.size() && t[p] == ':', "json: expected ':' at offset ", p);
        ++p;
        j.obj_.emplace_back(std::move(key), parse_value(t, p));
        skip_ws(t, p);
        DL_CHECK(p < t.size(), "json: unterminated object");
        if (t[p] == ',') { ++p; continue; }
        DL_CHECK(t[p] == '}', "json: expected ',' or '}' at offset ", p);
        ++p;
        return j;
      }
    }
    if (c == '[') {
      Json j = array();
      ++p;
      skip_ws(t, p);
      if (p < t.size() && t[p] == ']') return ++p, j;
      while (true) {
        j.arr_.push_back(parse_value(t, p));
        skip_ws(t, p);
        DL_CHECK(p < t.size(), "json: unterminated array");
        if (t[p] == ',') { ++p; continue; }
        DL_CHECK(t[p] == ']', "json: expected ',' or ']' at offset ", p);
        ++p;
        return j;
      }
    }
    if (c == '"') return Json(parse_string(t, p));
    if (t.compare(p, 4, "null") == 0) return p += 4, Json();
    if (t.compare(p, 4, "true") == 0) return p += 4, Json(true);
    if (t.compare(p, 5, "false") == 0) return p += 5, Json(false);
    const char* begin = t.c_str() + p;
    char* end = nullptr;
    const double d = std::strtod(begin, &end);
    DL_CHECK(end != begin, "json: unexpected character '", c, "' at offset ", p);
    p += static_cast<size_t>(end - begin);
    return Json(d);
  }
  static std::string parse_string(const std::string& t, size_t& p) {
    ++p;  // opening quote
    std::string s;
    while (p < t.size() && t[p] != '"') {
      char c = t[p++];
      if (c == '\\') {
        DL_CHECK(p < t.size(), "json: unterminated escape");
        const char e = t[p++];
        switch (e) {
          case 'n': s += '\n'; break;
          case 'r': s += '\r'; break;
          case 't': s += '\t'; break;
          case 'b': s += '\b'; break;
          case 'f': s += '\f'; break;
          case 'u': {
            DL_CHECK(p + 4 <= t.size(), "json: short \\u escape");
            const unsigned code = static_cast<unsigned>(std::stoul(t.substr(p, 4), nullptr, 16));
            p += 4;
            if (code < 0x80) {
              s += static_cast<char>(code);
            } else if (code < 0x800) {
              s += static_cast<char>(0xC0 | (code >> 6));
              s += static_cast<char>(0x80 | (code & 0x3F));
            } else {
              s += static_cast<char>(0xE0 | (code >> 12));
              s += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
              s += static_cast<char>(0x80 | (code & 0x3F));
            }
            break;
          }
          default: s += e;
        }
      } else {
        s += c;
      }
    }
    DL_CHECK(p < t.size(), "json: unterminated string");
    ++p;
    return s;
  }

  Type type_ = Type::kNull;
  bool bool_ = false;
  double num_ = 0;
  std::string str_;
  std::vector<Json> arr_;
  std::vector<std::pair<std::string, Json>> obj_;
};

}  // namespace dl::sweep
