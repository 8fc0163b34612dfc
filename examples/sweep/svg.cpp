// The SVG line chart.
#include "svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dl/core/error.h"
#include "dl/core/file_io.h"

namespace dl::sweep {

namespace {
constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}
std::string label(double v) {
  char buf[32];
  if (v != 0 && (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-3))
    std::snprintf(buf, sizeof buf, "%.2g", v);
  else
    std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
}  // namespace

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, count);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

std::string render_svg(const LineChart& c) {
  const double left = 70, right = 20, top = 40, bottom = 55;
  const double pw = c.width - left - right, ph = c.height - top - bottom;
  auto tx = [&](double x) { return c.log2_x ? std::log2(x) : x; };

  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : c.series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (c.log2_x && s.x[i] <= 0)) continue;
      x0 = std::min(x0, tx(s.x[i]));
      x1 = std::max(x1, tx(s.x[i]));
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  const bool empty = !std::isfinite(x0);
  if (empty) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (c.y_from_zero) y0 = std::min(0.0, y0);
  if (x1 == x0) x0 -= 1, x1 += 1;
  if (y1 == y0) y0 -= std::max(1e-9, std::fabs(y0) * 0.1), y1 += std::max(1e-9, std::fabs(y1) * 0.1);
  std::vector<double> yt = nice_ticks(y0, y1, 5);
  if (yt.size() >= 2 && yt.back() < y1 - 1e-12) yt.push_back(yt.back() + (yt[1] - yt[0]));  // a tick above the top
  y0 = std::min(y0, yt.front());
  y1 = std::max(y1, yt.back());
  auto px = [&](double x) { return left + (tx(x) - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return top + (1 - (y - y0) / (y1 - y0)) * ph; };

  std::string o;
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(c.width) + "\" height=\"" +
       std::to_string(c.height) + "\" viewBox=\"0 0 " + std::to_string(c.width) + " " + std::to_string(c.height) +
       "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o += "<text x=\"" + fmt(c.width / 2.0) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" +
       xml_escape(c.title) + "</text>\n";
  // Grid and ticks.
  for (double t : yt) {
    o += "<line x1=\"" + fmt(left) + "\" x2=\"" + fmt(left + pw) + "\" y1=\"" + fmt(py(t)) + "\" y2=\"" + fmt(py(t)) +
         "\" stroke=\"#e0e0e0\"/>\n";
    o += "<text x=\"" + fmt(left - 6) + "\" y=\"" + fmt(py(t) + 4) + "\" text-anchor=\"end\">" + label(t) + "</text>\n";
  }
  std::vector<double> xt;
  if (c.log2_x) {
    for (double e = std::ceil(x0 - 1e-9); e <= x1 + 1e-9; e += 1) xt.push_back(std::exp2(e));
  } else {
    xt = nice_ticks(x0, x1, 6);
  }
  for (double t : xt) {
    const double x = px(t);
    if (x < left - 0.5 || x > left + pw + 0.5) continue;
    o += "<line x1=\"" + fmt(x) + "\" x2=\"" + fmt(x) + "\" y1=\"" + fmt(top) + "\" y2=\"" + fmt(top + ph) +
         "\" stroke=\"#e0e0e0\"/>\n";
    o += "<text x=\"" + fmt(x) + "\" y=\"" + fmt(top + ph + 16) + "\" text-anchor=\"middle\">" + label(t) + "</text>\n";
  }
  o += "<rect x=\"" + fmt(left) + "\" y=\"" + fmt(top) + "\" width=\"" + fmt(pw) + "\" height=\"" + fmt(ph) +
       "\" fill=\"none\" stroke=\"#333\"/>\n";
  o += "<text x=\"" + fmt(left + pw / 2) + "\" y=\"" + fmt(c.height - 12.0) + "\" text-anchor=\"middle\">" +
       xml_escape(c.x_label) + "</text>\n";
  o += "<text transform=\"translate(16," + fmt(top + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
       xml_escape(c.y_label) + "</text>\n";
  if (empty)
    o += "<text x=\"" + fmt(left + pw / 2) + "\" y=\"" + fmt(top + ph / 2) +
         "\" text-anchor=\"middle\">no data</text>\n";

  // Series and legend.
  for (size_t k = 0; k < c.series.size(); ++k) {
    const Series& s = c.series[k];
    const std::string color = kColors[k % (sizeof kColors / sizeof *kColors)];
    std::string path;
    bool pen_down = false;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (c.log2_x && s.x[i] <= 0)) continue;  // gaps join
      path += (pen_down ? " L" : "M") + fmt(px(s.x[i])) + " " + fmt(py(s.y[i]));
      pen_down = true;
      if (s.markers)
        o += "<circle cx=\"" + fmt(px(s.x[i])) + "\" cy=\"" + fmt(py(s.y[i])) + "\" r=\"3.5\" fill=\"" + color +
             "\"/>\n";
    }
    if (!path.empty())
      o += "<path d=\"" + path + "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.8\"" +
           (s.dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>\n";
    const double ly = top + 14 + 16.0 * static_cast<double>(k);
    o += "<line x1=\"" + fmt(left + pw - 150) + "\" x2=\"" + fmt(left + pw - 128) + "\" y1=\"" + fmt(ly - 4) +
         "\" y2=\"" + fmt(ly - 4) + "\" stroke=\"" + color + "\" stroke-width=\"2\"" +
         (s.dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>\n";
    o += "<text x=\"" + fmt(left + pw - 122) + "\" y=\"" + fmt(ly) + "\">" + xml_escape(s.name) + "</text>\n";
  }
  o += "</svg>\n";
  return o;
}

void write_svg(const std::string& path, const LineChart& chart) { write_file_atomically(path, render_svg(chart)); }

}  // namespace dl::sweep
