// What the SVG charts share (private to src/report/): number spelling, series styles and markers,
// axes, the plot frame, the document, and the legend. Defined in svg.cpp; one chart a file beside
// it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gradscope/report/svg.hpp"

namespace gradscope::svg_detail {

// ---- Text and numbers

// At most `max_chars` code points, with an ellipsis when cut: legends and row labels have a fixed
// room. Cuts only at a code point boundary, so the result stays valid UTF-8.
std::string shorten(std::string_view text, std::size_t max_chars);

// A pixel coordinate: two decimals are below any screen's resolution; no "-0.00".
std::string px(double v);

// A datum as given: 17 significant digits read back to the same double.
std::string datum(double v);

// A value in at most three significant digits and few characters: 1.23e19, -0.5, 1e-07 -> 1e-7.
std::string compact_number(double v);

inline constexpr std::string_view kKeyColour = "#555555";  // legend keys: a meaning, not a series

// A series' style: the colours first, then each colour again with the next marker shape, so the
// first kSeriesStyles series differ in colour or shape (and in colour alone up to seven).
struct Style {
  std::string_view colour;
  Marker marker;
};

Style series_style(int index);

// The shape's name, as the markers' second class.
std::string_view marker_name(Marker shape);

// A marker of `shape` centred at (x, y), about 2r across, with the given attributes and content
// (a tooltip <title>, or nothing). Circles stay <circle>; the other shapes are closed paths.
std::string marker_svg(Marker shape, double x, double y, double r, std::string_view attributes,
                       std::string_view content);

inline constexpr double kWidth = 840.0;
inline constexpr double kHeight = 420.0;

// `text` cut into lines no wider than `room` at `size`, at blanks where it can, inside a word that
// is wider than a line on its own. Never shortened: every character is on some line.
std::vector<std::string> wrap_text(std::string_view text, double room, double size);

// ---- Axes

struct Tick {
  double value;
  std::string label;        // plain text
  std::string superscript;  // for 10^k labels: k, drawn raised after the label
};

// A linear axis: [lo, hi] widened outward to whole steps; integer data gets integer steps.
struct Axis {
  double lo = 0.0;
  double hi = 1.0;
  std::vector<Tick> ticks;
  std::vector<double> minor;  // unlabelled marks between ticks
};

// Half of hi - lo, computed without overflow: data may span the whole double range.
inline double half_span(double lo, double hi) { return hi * 0.5 - lo * 0.5; }

Axis linear_axis(double lo, double hi, double target, bool integers, bool round_outward);

// An axis of log10 values: whole decades, labelled 10^k, every decade up to 8 of them.
Axis decade_axis(double lo, double hi);

// The plot area and the maps from data to pixels (in halves, so no difference overflows).
struct Frame {
  Frame(double l, double t, double r, double b) : left(l), top(t), right(r), bottom(b) {}
  double left, top, right, bottom;
  double inset_x = 0.0;  // keep markers off the frame
  double inset_y = 0.0;
  Axis x, y;
  double to_x(double v) const {
    const double t = half_span(x.lo, v) / half_span(x.lo, x.hi);
    return left + inset_x + t * (right - left - 2.0 * inset_x);
  }
  double to_y(double v) const {
    const double t = half_span(y.lo, v) / half_span(y.lo, y.hi);
    return bottom - inset_y - t * (bottom - top - 2.0 * inset_y);
  }
};

// ---- The document

class Svg {
 public:
  Svg(double width, double height, std::string_view title);
  void raw(std::string_view s) { out_ += s; }
  std::string finish() {
    out_ += "</svg>\n";
    return std::move(out_);
  }

 private:
  std::string out_;
};

std::string text(double x, double y, std::string_view content, std::string_view attributes);

// Gridlines, tick marks and labels of both axes, the frame, and the axis titles.
void draw_axes(Svg& svg, const Frame& f, std::string_view x_label, std::string_view y_label,
               bool log_y);

// A legend entry: a swatch (a line, dashed or not, with a marker; a marker alone; or a filled
// square) and a label.
struct LegendEntry {
  std::string label;
  std::string_view colour;
  bool dashed = false;
  bool square = false;  // a filled square: the phase chart's cells
  Marker marker = Marker::kCircle;
  bool hollow = false;
  bool line = true;
  bool key = false;  // a key (a meaning, not a series): after the series, in columns of its own
  bool mark = true;  // false: the line alone
  double line_width = 2.0;
  std::string name{};  // data-label: the series' label, when the text says more; else the text
};

// The legend under the plot. The series' entries, then the keys (marker shapes apart from lines),
// each in as many columns (four at most) as their widest label allows, left to right then down; a
// label is wrapped onto more lines where one column is too narrow.
struct LegendLayout {
  std::vector<double> x, y;                     // per entry: the swatch's left, the entry's top
  std::vector<std::vector<std::string>> lines;  // per entry
  double height = 0.0;
};

LegendLayout legend_layout(const std::vector<LegendEntry>& entries, double width);

void draw_legend(Svg& svg, const std::vector<LegendEntry>& entries, const LegendLayout& lay,
                 double top);

bool finite_point(double x, double y);

}  // namespace gradscope::svg_detail
