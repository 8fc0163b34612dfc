// A small SVG line-chart writer for the sweep's pictures: training curves and time or memory
// against batch size. No dependencies; the output is plain SVG 1.1 that browsers and Markdown
// viewers show. Points with NaN coordinates are skipped (a validation curve has gaps).
#pragma once
#include <string>
#include <vector>

namespace dl::sweep {

struct Series {
  std::string name;
  std::vector<double> x{}, y{};
  bool markers = false;  // a dot at each point (few points: sweeps)
  bool dashed = false;
};

struct LineChart {
  std::string title{}, x_label{}, y_label{};
  std::vector<Series> series{};
  bool log2_x = false;  // batch sizes: ticks at powers of two
  bool y_from_zero = false;
  int width = 640, height = 400;
};

// The SVG document. Throws nothing: an empty chart draws its frame and "no data".
std::string render_svg(const LineChart& chart);
// Writes render_svg(chart) to path (through a temporary, renamed). Throws dl::Error on failure.
void write_svg(const std::string& path, const LineChart& chart);
// Escapes &, <, >, " for SVG text.
std::string xml_escape(const std::string& s);
// "Nice" tick values covering [lo, hi] (about `count` of them).
std::vector<double> nice_ticks(double lo, double hi, int count = 5);

}  // namespace dl::sweep
