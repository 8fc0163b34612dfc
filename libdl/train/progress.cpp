// The progress line: formatting, ETA and the terminal/plain-line decision.
#include "dl/train/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>

#include "dl/core/error.h"

namespace dl::train {

std::string format_hms(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return buf;
}

ProgressMode parse_progress_mode(const std::string& text) {
  if (text == "off") return ProgressMode::kOff;
  if (text == "auto") return ProgressMode::kAuto;
  if (text == "in-place") return ProgressMode::kInPlace;
  if (text == "plain") return ProgressMode::kPlain;
  DL_THROW("progress: expected off, auto, in-place or plain, got '", text, "'");
}

ProgressLine::ProgressLine(std::ostream* out, ProgressMode mode) : out_(out), mode_(out ? mode : ProgressMode::kOff) {
  if (mode_ == ProgressMode::kAuto)
    mode_ = (out_ == &std::cout && isatty(STDOUT_FILENO)) ? ProgressMode::kInPlace : ProgressMode::kPlain;
}

std::string ProgressLine::format(const ProgressState& s) {
  std::string line;
  char buf[96];
  std::snprintf(buf, sizeof buf, "epoch %d/%d | iteration %lld", s.epoch, s.max_epochs,
                static_cast<long long>(s.iteration));
  line += buf;
  if (s.max_iterations > 0) line.append("/").append(std::to_string(s.max_iterations));
  line += " | " + format_hms(s.elapsed_seconds) + " elapsed";
  const int64_t left = s.max_iterations - s.iteration;
  if (s.max_iterations > 0 && s.iterations_this_run > 0) {
    const double eta = s.elapsed_seconds / static_cast<double>(s.iterations_this_run) * static_cast<double>(left);
    line += " | ETA " + format_hms(eta);
  }
  if (!std::isnan(s.loss)) {
    std::snprintf(buf, sizeof buf, " | loss %.4f", s.loss);
    line += buf;
  }
  if (!std::isnan(s.validation_accuracy)) {
    std::snprintf(buf, sizeof buf, " | validation %.2f%%", 100.0 * s.validation_accuracy);
    line += buf;
  }
  return line;
}

void ProgressLine::update(const ProgressState& s, bool end_of_epoch) {
  if (mode_ == ProgressMode::kOff) return;
  last_ = format(s);
  if (mode_ == ProgressMode::kPlain) {
    if (end_of_epoch) *out_ << last_ << '\n' << std::flush;
    return;
  }
  // Redraw at most five times a second, and always at the end of an epoch or after clear().
  if (!end_of_epoch && visible_ && s.elapsed_seconds - last_draw_ < 0.2) return;
  last_draw_ = s.elapsed_seconds;
  redraw();
}

void ProgressLine::clear() {
  if (mode_ != ProgressMode::kInPlace || !visible_) return;
  *out_ << "\r\033[K" << std::flush;
  visible_ = false;
}

void ProgressLine::redraw() {
  if (mode_ != ProgressMode::kInPlace || last_.empty()) return;
  *out_ << "\r" << last_ << "\033[K" << std::flush;
  visible_ = true;
}

void ProgressLine::finish() {
  if (mode_ != ProgressMode::kInPlace || !visible_) return;
  *out_ << '\n' << std::flush;
  visible_ = false;
}

}  // namespace dl::train
