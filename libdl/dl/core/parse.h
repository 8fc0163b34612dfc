// Numbers from text that people and files write, parsed strictly: the whole text, no overflow, no
// wrap-around of negatives into unsigned values, no NaN where a number is expected, and a range.
// Every error names `what`, the range and the text that came.
#pragma once
#include <cstdint>
#include <limits>
#include <string>

namespace dl {

int64_t parse_int(const std::string& text, int64_t lo, int64_t hi, const std::string& what);
uint64_t parse_uint(const std::string& text, uint64_t hi, const std::string& what);
// Finite unless allow_inf ("inf", "Inf", "infinity"); never NaN.
double parse_double(const std::string& text, double lo, double hi, const std::string& what, bool allow_inf = false);
// A size in bytes as people write it: "123", "64K", "64KiB", "512M", "512MiB", "2G", "2GiB", "1.5GiB"
// (powers of 1024; "KB"/"MB"/"GB" are powers of 1000), a whole number of bytes.
int64_t parse_bytes(const std::string& text);

}  // namespace dl
