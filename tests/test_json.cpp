// dl::Json (dl/core/json.h): the strict reader that safetensors headers, run reports and the sweep
// share, and its writer. Every rule of RFC 8259 that a lax reader would let slip is tried here.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "dl/core/error.h"
#include "dl/core/json.h"

namespace {

using dl::Json;

// The message of the dl::Error that parsing `text` throws (fails the test when nothing is thrown).
std::string parse_error(const std::string& text, const dl::JsonLimits& limits = {}) {
  try {
    Json::parse(text, limits);
  } catch (const dl::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "parsed without an error: " << text;
  return {};
}

TEST(Json, ReadsEveryKindOfValueAndKeepsMemberOrder) {
  const Json j = Json::parse(R"( {"z": 1, "a": [true, false, null, "s\u00e9\n", -0.5e-3], "m": {"k": {"v": 7}}} )");
  ASSERT_TRUE(j.is_object());
  ASSERT_EQ(j.members().size(), 3u);
  EXPECT_EQ(j.members()[0].first, "z");  // insertion order, not sorted
  EXPECT_EQ(j.members()[1].first, "a");
  const Json& a = *j.find("a");
  ASSERT_EQ(a.size(), 5u);
  EXPECT_TRUE(a.items()[0].boolean());
  EXPECT_FALSE(a.items()[1].boolean(true));
  EXPECT_TRUE(a.items()[2].is_null());
  EXPECT_EQ(a.items()[3].string(), "s\xc3\xa9\n");
  EXPECT_DOUBLE_EQ(a.items()[4].number(), -0.5e-3);
  EXPECT_EQ(j.number_at("m.k.v"), 7);
  EXPECT_TRUE(std::isnan(j.number_at("m.k.missing")));
  EXPECT_EQ(j.string_at("a", "fallback"), "fallback");  // not a string
  EXPECT_EQ(j.find("nope"), nullptr);
}

TEST(Json, SurrogatePairsDecodeToOneCodePoint) {
  EXPECT_EQ(Json::parse(R"("\ud83d\ude00")").string(), "\xf0\x9f\x98\x80");
  EXPECT_NE(parse_error(R"("\ud83d")").find("lone high surrogate"), std::string::npos);
  EXPECT_NE(parse_error(R"("\ude00")").find("lone low surrogate"), std::string::npos);
  EXPECT_NE(parse_error(R"("\ud83d\u0041")").find("surrogate pair"), std::string::npos);
}

TEST(Json, RefusesWhatRfc8259Refuses) {
  const char* bad[] = {"",
                       "  ",
                       "{",
                       "[1,]",
                       "{\"a\":1,}",
                       "{'a':1}",
                       "01",
                       "+1",
                       "1.",
                       ".5",
                       "1e",
                       "-",
                       "NaN",
                       "Infinity",
                       "0x10",
                       "tru",
                       "nul",
                       "\"a",
                       "\"\\x\"",
                       "\"\\u12\"",
                       "{\"a\" 1}",
                       "{1:2}",
                       "[1 2]",
                       "1 2",
                       "\"tab\there\"",
                       "{\"a\":1}}",
                       "[\"\\uZZZZ\"]"};
  for (const char* text : bad) {
    const std::string message = parse_error(text);
    EXPECT_NE(message.find("json: "), std::string::npos) << text << " -> " << message;
    EXPECT_NE(message.find(" at byte "), std::string::npos) << text << " -> " << message;
  }
  EXPECT_NE(parse_error("[1, 2,]").find("at byte 6"), std::string::npos);
  EXPECT_NE(parse_error("\"\xff\"").find("UTF-8"), std::string::npos);
  EXPECT_NE(parse_error("\"\xc0\xaf\"").find("UTF-8"), std::string::npos);      // overlong '/'
  EXPECT_NE(parse_error("\"\xed\xa0\x80\"").find("UTF-8"), std::string::npos);  // an encoded surrogate
}

TEST(Json, RefusesDuplicateNamesAsWrittenAndAsDecoded) {
  EXPECT_NE(parse_error(R"({"a": 1, "b": 2, "a": 3})").find("duplicate name"), std::string::npos);
  EXPECT_NE(parse_error(R"({"a": 1, "\u0061": 3})").find("duplicate name"), std::string::npos);
  EXPECT_NO_THROW(Json::parse(R"({"a": {"a": 1}, "b": {"a": 2}})"));  // per object, not per file
  EXPECT_EQ(Json::parse(R"({"a": 1, "a": 2})", {.unique_names = false}).size(), 2u);
}

TEST(Json, NestingDeeperThanTheLimitIsRefusedBeforeRecursing) {
  const auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_NO_THROW(Json::parse(nested(64)));
  EXPECT_NE(parse_error(nested(65)).find("nesting"), std::string::npos);
  EXPECT_NE(parse_error(nested(3), {.max_depth = 2}).find("nesting"), std::string::npos);
  // A million brackets: refused at the limit, not a stack overflow.
  EXPECT_NE(parse_error(std::string(1'000'000, '[')).find("nesting"), std::string::npos);
}

TEST(Json, IntegersAreReadExactlyFromTheirDigits) {
  const Json j = Json::parse("[18446744073709551615, 9007199254740993, 18446744073709551616, 1.0, 1e3, -1, 0]");
  EXPECT_EQ(j.items()[0].to_u64(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(j.items()[1].to_u64(), 9007199254740993ull);  // 2^53 + 1: a double would round it
  EXPECT_FALSE(j.items()[2].to_u64().has_value());        // 2^64 does not fit
  EXPECT_FALSE(j.items()[3].to_u64().has_value());
  EXPECT_FALSE(j.items()[4].to_u64().has_value());
  EXPECT_FALSE(j.items()[5].to_u64().has_value());
  EXPECT_EQ(j.items()[6].to_u64(), 0u);
  EXPECT_FALSE(Json("12").to_u64().has_value());  // a string is not a number
  EXPECT_EQ(j.items()[4].number_text(), "1e3");
  EXPECT_EQ(j.items()[4].number(), 1000.0);
  EXPECT_TRUE(std::isinf(Json::parse("1e999").number()));
}

TEST(Json, WritesWhatItReadsAndDoublesRoundTrip) {
  Json j = Json::object();
  j["name"] = "quote \" backslash \\ newline \n bell \x07";
  j["pi"] = 3.141592653589793;
  j["third"] = 1.0 / 3.0;
  j["big"] = uint64_t{18446744073709551615ull};
  j["neg"] = int64_t{-9007199254740993};
  j["nan"] = std::nan("");
  j["list"].push_back(1);
  j["list"].push_back(Json::object());
  j["empty"] = Json::array();
  for (int indent : {-1, 0, 2}) {
    const Json back = Json::parse(j.dump(indent));
    EXPECT_EQ(back.string_at("name"), j.string_at("name"));
    EXPECT_EQ(back.number_at("pi"), 3.141592653589793);  // shortest form that reads back exactly
    EXPECT_EQ(back.number_at("third"), 1.0 / 3.0);
    EXPECT_EQ(back.find("big")->to_u64(), 18446744073709551615ull);
    EXPECT_EQ(back.find("neg")->number_text(), "-9007199254740993");
    EXPECT_TRUE(back.find("nan")->is_null());  // JSON has no NaN
    EXPECT_EQ(back.find("list")->size(), 2u);
    EXPECT_EQ(back.dump(), j.dump());
  }
  EXPECT_EQ(Json::parse(j.dump(2)).dump(2), j.dump(2));
  EXPECT_EQ(Json::quote("a\x01"), "\"a\\u0001\"");
  EXPECT_THROW(Json(1)["key"], dl::Error);
  EXPECT_THROW(Json("s").push_back(1), dl::Error);
}

}  // namespace
