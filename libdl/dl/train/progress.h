// ProgressLine: one line of progress for long work, with the elapsed time and an ETA. On a terminal
// it is redrawn in place ("\r", then erase to the end of the line); elsewhere (CI logs, files) each
// update is a plain line of its own, so that a log reads top to bottom.
//
//   epoch 3/50 | iteration 24/400 | 00:00:12 elapsed | ETA 00:03:08 | loss 0.1234 | validation 97.50%
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>

namespace dl::train {

enum class ProgressMode {
  kOff,      // nothing
  kAuto,     // in place when the stream is std::cout and stdout is a terminal, else plain lines
  kInPlace,  // "\r" + line, redrawn
  kPlain,    // a line each update
};

// Parses "off", "auto", "in-place" or "plain"; throws dl::Error otherwise.
ProgressMode parse_progress_mode(const std::string& text);

// "hh:mm:ss" of a number of seconds (MATLAB's Time Elapsed).
std::string format_hms(double seconds);

struct ProgressState {
  int epoch = 0, max_epochs = 0;
  int64_t iteration = 0, max_iterations = 0;  // over the whole training (0: unknown)
  double elapsed_seconds = 0;                 // since this run started
  int64_t iterations_this_run = 0;            // for the rate behind the ETA (a resumed run starts at 0)
  double loss = 0;                            // NaN: not shown
  double validation_accuracy = 0;             // NaN: not shown
};

class ProgressLine {
 public:
  // `out` may be null (off). kAuto decides from isatty(STDOUT_FILENO) when out is &std::cout.
  ProgressLine(std::ostream* out, ProgressMode mode);

  bool enabled() const { return mode_ != ProgressMode::kOff; }
  bool in_place() const { return mode_ == ProgressMode::kInPlace; }

  // In place: redraws the line. Plain: writes a line only when `end_of_epoch`.
  void update(const ProgressState& s, bool end_of_epoch);
  // In place: erases the visible line so that other output can be written (call redraw after).
  void clear();
  // In place: writes the last line again after clear().
  void redraw();
  // In place: ends the line with a newline so that what follows starts on its own line.
  void finish();

  // The text of one line (no control characters); public for tests.
  static std::string format(const ProgressState& s);

 private:
  std::ostream* out_;
  ProgressMode mode_;
  std::string last_;
  bool visible_ = false;
  double last_draw_ = 0;
};

}  // namespace dl::train
