// dl::Json: the one JSON value of libdl, read strictly and written in order.
//
// Read by the safetensors header, the run reports, the sweep and its reports. Parsing follows RFC 8259
// and nothing more (Note [strict JSON] in core/json.cpp): a file from a stranger that is not JSON, nests
// deeper than `JsonLimits::max_depth`, repeats a name in an object or holds invalid UTF-8 gets a
// dl::Error naming what was expected and the byte where it was not. Objects keep their members in the
// order they were read or inserted, so reports read in the order they were written. A number keeps the
// text it was read from, so an integer above 2^53 (a safetensors offset) is read exactly by `to_u64`.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dl {

struct JsonLimits {
  int max_depth = 64;        // objects and arrays nested deeper are refused, not recursed into
  bool unique_names = true;  // an object that repeats a name is refused
};

class Json {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::kBool), bool_(b) {}
  Json(double d) : type_(Type::kNumber), num_(d) {}
  Json(int v) : Json(static_cast<long long>(v)) {}
  Json(long v) : Json(static_cast<long long>(v)) {}
  Json(unsigned v) : Json(static_cast<unsigned long long>(v)) {}
  Json(long long v);
  Json(unsigned long v);
  Json(unsigned long long v);
  Json(std::string s) : type_(Type::kString), str_(std::move(s)) {}
  Json(const char* s) : Json(std::string(s)) {}
  static Json array();
  static Json object();

  // Parses all of `text` (whitespace may surround the value); throws dl::Error "json: <what> at byte N".
  static Json parse(std::string_view text, const JsonLimits& limits = {});

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // Objects: the member `key`, inserted as null when missing (a null value becomes an object first).
  Json& operator[](const std::string& key);
  // The member `key`, or null when this is not an object or has no such member.
  const Json* find(std::string_view key) const;
  // Follows a dotted path ("test.accuracy"); null when any step is missing.
  const Json* at_path(std::string_view path) const;

  double number(double fallback = kNaN) const { return type_ == Type::kNumber ? num_ : fallback; }
  bool boolean(bool fallback = false) const { return type_ == Type::kBool ? bool_ : fallback; }
  const std::string& string() const;  // empty when this is not a string
  double number_at(std::string_view path, double fallback = kNaN) const;
  std::string string_at(std::string_view path, const std::string& fallback = "") const;
  // A number written as a non-negative integer that fits 64 bits, read from its digits (never through a
  // double); nothing for anything else (a fraction, an exponent, a sign, a string).
  std::optional<uint64_t> to_u64() const;
  // The number as it was read or written ("1e3", "42"); empty for values that are not numbers.
  std::string number_text() const;

  void push_back(Json v);
  const std::vector<Json>& items() const { return arr_; }
  const std::vector<std::pair<std::string, Json>>& members() const { return obj_; }
  size_t size() const { return type_ == Type::kArray ? arr_.size() : type_ == Type::kObject ? obj_.size() : 0; }

  // Compact on one line with indent < 0 (JSON Lines), else pretty with `indent` spaces. Doubles are
  // written in the shortest form that reads back to the same value; NaN and infinity as null.
  std::string dump(int indent = -1) const;
  // `s` as a JSON string literal, quotes included.
  static std::string quote(std::string_view s);

 private:
  friend class JsonParser;
  static constexpr double kNaN = __builtin_nan("");
  void write(std::string& out, int indent, int depth) const;

  Type type_ = Type::kNull;
  bool bool_ = false;
  double num_ = 0;
  std::string str_;  // a string's value, or a number's text when it was read or is an integer
  std::vector<Json> arr_;
  std::vector<std::pair<std::string, Json>> obj_;
};

// True when `s` is valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s);

}  // namespace dl
