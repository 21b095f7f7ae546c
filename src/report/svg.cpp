// SVG line charts, stacked histograms and phase diagrams from plain data. Every number goes through
// fmt with a fixed precision and no locale, so the same input gives the same bytes everywhere.
#include "gradscope/report/svg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/error.hpp"
#include "text_format.hpp"

namespace gradscope {

namespace {

using namespace text_format;

// ---- Text and numbers

// At most `max_chars` code points, with an ellipsis when cut: legends and row labels have a fixed
// room. Cuts only at a code point boundary, so the result stays valid UTF-8.
std::string shorten(std::string_view text, std::size_t max_chars) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto u = static_cast<unsigned char>(text[i]);
    if ((u & 0xC0) == 0x80) continue;  // a continuation byte
    if (chars == max_chars - 1) {
      // Is there more than one code point left? Then cut here.
      std::size_t rest = 0;
      for (std::size_t j = i; j < text.size(); ++j) {
        if ((static_cast<unsigned char>(text[j]) & 0xC0) != 0x80) ++rest;
      }
      if (rest > 1) return std::string(text.substr(0, i)) + "\u2026";
      return std::string(text);
    }
    ++chars;
  }
  return std::string(text);
}

// A pixel coordinate: two decimals are below any screen's resolution; no "-0.00".
std::string px(double v) {
  std::string s = fmt::format("{:.2f}", v);
  if (s == "-0.00") s = "0.00";
  return s;
}

// A datum as given: 17 significant digits read back to the same double.
std::string datum(double v) { return fmt::format("{:.17g}", v); }

// A value in at most three significant digits and few characters: 1.23e19, -0.5, 1e-07 -> 1e-7.
std::string compact_number(double v) {
  std::string s = fmt::format("{:.3g}", v);
  const std::size_t e = s.find('e');
  if (e == std::string::npos) return s;
  std::string exponent = s.substr(e + 1);
  const bool negative = exponent.front() == '-';
  exponent.erase(0, 1);
  while (exponent.size() > 1 && exponent.front() == '0') exponent.erase(0, 1);
  return s.substr(0, e + 1) + (negative ? "-" : "") + exponent;
}

// Okabe & Ito (2008), colour-blind safe; yellow left out of the line colours (too faint on white).
constexpr std::array<std::string_view, kLineColours> kLineColourValues = {
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"};
constexpr std::string_view kKeyColour = "#555555";  // legend keys: a meaning, not a series

// A series' style: the colours first, then each colour again with the next marker shape, so the
// first kSeriesStyles series differ in colour or shape (and in colour alone up to seven).
struct Style {
  std::string_view colour;
  Marker marker;
};

Style series_style(int index) {
  const int i = ((index % kSeriesStyles) + kSeriesStyles) % kSeriesStyles;
  return {kLineColourValues[static_cast<std::size_t>(i % kLineColours)],
          static_cast<Marker>(i / kLineColours)};
}

// The shapes' names, as the markers' second class.
constexpr std::array<std::string_view, kMarkerShapes> kMarkerNames = {
    "circle", "square", "triangle", "diamond", "triangle-down", "plus"};
static_assert(static_cast<int>(Marker::kPlus) + 1 == kMarkerShapes);

std::string_view marker_name(Marker shape) { return kMarkerNames[static_cast<std::size_t>(shape)]; }

// A marker of `shape` centred at (x, y), about 2r across, with the given attributes and content
// (a tooltip <title>, or nothing). Circles stay <circle>; the other shapes are closed paths.
std::string marker_svg(Marker shape, double x, double y, double r, std::string_view attributes,
                       std::string_view content) {
  const auto pt = [&](double dx, double dy) {
    return fmt::format("{},{}", px(x + dx * r), px(y + dy * r));
  };
  std::string d;
  switch (shape) {
    case Marker::kCircle:
      break;
    case Marker::kSquare:
      d = fmt::format("M{} L{} L{} L{} Z", pt(-0.9, -0.9), pt(0.9, -0.9), pt(0.9, 0.9),
                      pt(-0.9, 0.9));
      break;
    case Marker::kTriangle:
      d = fmt::format("M{} L{} L{} Z", pt(0.0, -1.2), pt(1.1, 0.75), pt(-1.1, 0.75));
      break;
    case Marker::kDiamond:
      d = fmt::format("M{} L{} L{} L{} Z", pt(0.0, -1.3), pt(1.1, 0.0), pt(0.0, 1.3),
                      pt(-1.1, 0.0));
      break;
    case Marker::kTriangleDown:
      d = fmt::format("M{} L{} L{} Z", pt(0.0, 1.2), pt(1.1, -0.75), pt(-1.1, -0.75));
      break;
    case Marker::kPlus:
      d = fmt::format("M{} L{} L{} L{} L{} L{} L{} L{} L{} L{} L{} L{} Z", pt(-0.4, -1.2),
                      pt(0.4, -1.2), pt(0.4, -0.4), pt(1.2, -0.4), pt(1.2, 0.4), pt(0.4, 0.4),
                      pt(0.4, 1.2), pt(-0.4, 1.2), pt(-0.4, 0.4), pt(-1.2, 0.4), pt(-1.2, -0.4),
                      pt(-0.4, -0.4));
      break;
  }
  const std::string open =
      shape == Marker::kCircle
          ? fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"{}\" {}", px(x), px(y), px(r), attributes)
          : fmt::format("<path d=\"{}\" {}", d, attributes);
  if (content.empty()) return open + "/>";
  return fmt::format("{}>{}</{}>", open, content, shape == Marker::kCircle ? "circle" : "path");
}

constexpr double kWidth = 840.0;
constexpr double kHeight = 420.0;

// ---- Text width

// About how wide `text` is set in a sans-serif font at `size` pixels, erring wide: the advances are
// DejaVu Sans's (the widest common sans, and Debian's default), and any other code point counts as
// a full em. Legends are laid out from it, so a label is wrapped before it would leave its column.
double text_width(std::string_view text, double size) {
  double em = 0.0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto u = static_cast<unsigned char>(text[i]);
    if ((u & 0xC0) == 0x80) continue;  // a continuation byte
    if (u >= 0x80) {
      em += 1.0;
      continue;
    }
    const char c = text[i];
    if (std::string_view("il.,:;|!'` ").find(c) != std::string_view::npos) {
      em += 0.34;
    } else if (std::string_view("fjtr()[]{}-/\\").find(c) != std::string_view::npos) {
      em += 0.43;
    } else if (c == 'm' || c == 'w' || c == 'W' || c == '%' || c == '@') {
      em += 1.0;
    } else if (std::string_view("=+<>~^#&").find(c) != std::string_view::npos ||
               (c >= 'A' && c <= 'Z')) {
      em += 0.86;
    } else {
      em += 0.65;  // the other lower-case letters, digits, _ * and the rest
    }
  }
  return em * size;
}

// `text` cut into lines no wider than `room` at `size`, at blanks where it can (a blank stays at
// the end of its line, so the lines put together are the text again), inside a word that is wider
// than a line on its own. Never shortened: every character is on some line.
std::vector<std::string> wrap_text(std::string_view text, double room, double size) {
  std::vector<std::string> lines(1);
  std::size_t i = 0;
  while (i < text.size()) {
    // The next word with the blanks after it; trailing blanks do not count against the room.
    std::size_t end = i;
    while (end < text.size() && text[end] != ' ') ++end;
    const std::string trimmed(text.substr(i, end - i));
    while (end < text.size() && text[end] == ' ') ++end;
    const std::string_view word = text.substr(i, end - i);
    i = end;
    if (!lines.back().empty() && text_width(lines.back() + trimmed, size) > room) {
      lines.emplace_back();
    }
    if (!lines.back().empty() || text_width(trimmed, size) <= room) {
      lines.back() += word;
      continue;
    }
    // A word wider than a line on its own: as many code points as fit on each line.
    std::size_t c = 0;
    while (c < word.size()) {
      std::size_t e = c + 1;
      while (e < word.size() && (static_cast<unsigned char>(word[e]) & 0xC0) == 0x80) ++e;
      const std::string_view point = word.substr(c, e - c);
      if (point != " " && !lines.back().empty() &&
          text_width(lines.back() + std::string(point), size) > room) {
        lines.emplace_back();
      }
      lines.back() += point;
      c = e;
    }
  }
  return lines;
}

// ---- Axes

struct Tick {
  double value;
  std::string label;        // plain text
  std::string superscript;  // for 10^k labels: k, drawn raised after the label
};

// A step of 1, 2 or 5 times a power of ten giving about `target` intervals over `span`.
double nice_step(double span, double target) {
  const double raw = span / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  const double factor = norm < 1.5 ? 1.0 : norm < 3.0 ? 2.0 : norm < 7.0 ? 5.0 : 10.0;
  return factor * magnitude;
}

// Tick labels with as many decimals as the step needs (0.25 steps of 0.05 need 2), in scientific
// notation for very large or very small numbers.
std::string tick_label(double value, double step, double largest) {
  if (value == 0.0) return "0";
  if (largest >= 1e6 || step < 1e-4) return fmt::format("{:.3g}", value);
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  std::string s = fmt::format("{:.{}f}", value, decimals);
  return s;
}

// A linear axis: [lo, hi] widened outward to whole steps; integer data gets integer steps.
struct Axis {
  double lo = 0.0;
  double hi = 1.0;
  std::vector<Tick> ticks;
  std::vector<double> minor;  // unlabelled marks between ticks
};

// Half of hi - lo, computed without overflow: data may span the whole double range.
double half_span(double lo, double hi) { return hi * 0.5 - lo * 0.5; }

// The whole multiples of `step` in [lo, hi], or none when there would be absurdly many or the
// multipliers do not fit an integer (values near the ends of the double range).
std::vector<double> multiples(double lo, double hi, double step) {
  const double first = std::ceil(lo / step - 1e-9);
  const double last = std::floor(hi / step + 1e-9);
  std::vector<double> out;
  if (!(std::isfinite(first) && std::isfinite(last) && last - first <= 100.0)) return out;
  if (std::abs(first) > 1e15 || std::abs(last) > 1e15) return out;
  for (auto k = static_cast<std::int64_t>(first); k <= static_cast<std::int64_t>(last); ++k) {
    const double v = static_cast<double>(k) * step + 0.0;  // + 0.0: no "-0" tick
    if (std::isfinite(v)) out.push_back(v);
  }
  return out;
}

// Rounds a bound outward to a multiple of step, unless that leaves the double range.
double round_out(double v, double step, bool up) {
  const double r = (up ? std::ceil(v / step - 1e-9) : std::floor(v / step + 1e-9)) * step;
  return std::isfinite(r) ? r : v;
}

Axis linear_axis(double lo, double hi, double target, bool integers, bool round_outward) {
  if (!(lo <= hi)) {
    lo = 0.0;
    hi = 1.0;
  }
  if (lo == 0.0 && hi == 0.0) {
    // All zero (no dead unit anywhere, say): 0 sits at the bottom, not in the middle of -1..1,
    // which would suggest negative values.
    hi = 1.0;
  } else if (lo == hi) {
    double pad = std::abs(lo) * 0.1;
    if (!(pad > 0.0) || lo - pad == lo) pad = 1.0;  // 0, or a subnormal that pads by nothing
    lo -= pad;
    hi += pad;
  }
  // span / target, as half the span over half the target so that the span cannot overflow.
  double step = nice_step(half_span(lo, hi), target * 0.5);
  if (integers) step = std::max(step, 1.0);
  Axis axis;
  axis.lo = round_outward ? round_out(lo, step, false) : lo;
  axis.hi = round_outward ? round_out(hi, step, true) : hi;
  const double largest = std::max(std::abs(axis.lo), std::abs(axis.hi));
  for (const double v : multiples(axis.lo, axis.hi, step)) {
    axis.ticks.push_back({v, tick_label(v, step, largest), ""});
  }
  return axis;
}

// An axis of log10 values: whole decades, labelled 10^k, every decade up to 8 of them.
Axis decade_axis(double lo, double hi) {
  if (!(lo <= hi)) {
    lo = -1.0;
    hi = 0.0;
  }
  double a = std::floor(lo);
  double b = std::ceil(hi);
  if (a == b) {
    a -= 1.0;
    b += 1.0;
  }
  // About 6 ticks: half the span over 3.
  const double step = b - a <= 8.0 ? 1.0 : std::max(1.0, nice_step(half_span(a, b), 3.0));
  Axis axis;
  axis.lo = round_out(a, step, false);
  axis.hi = round_out(b, step, true);
  for (const double k : multiples(axis.lo, axis.hi, step)) {
    axis.ticks.push_back({k, "10", fmt::format("{:.0f}", k)});
  }
  // Over a few decades, marks at 2..9 x 10^k let a reader place a point within its decade.
  if (step == 1.0 && axis.hi - axis.lo <= 4.0) {
    for (double k = axis.lo; k < axis.hi; k += 1.0) {
      for (int m = 2; m <= 9; ++m) axis.minor.push_back(k + std::log10(m));
    }
  }
  return axis;
}

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
  Svg(double width, double height, std::string_view title) {
    out_ += fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {0} {1}\" width=\"{0}\" "
        "height=\"{1}\" font-family=\"sans-serif\" font-size=\"12\" role=\"img\">\n",
        px(width), px(height));
    out_ += fmt::format("<title>{}</title>\n", xml_escape(title));
    // Opaque, so the chart reads the same on a dark page.
    out_ += "<rect class=\"background\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
    out_ += fmt::format(
        "<text class=\"chart-title\" x=\"{}\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" "
        "font-weight=\"bold\">{}</text>\n",
        px(width / 2.0), xml_escape(title));
  }
  void raw(std::string_view s) { out_ += s; }
  std::string finish() {
    out_ += "</svg>\n";
    return std::move(out_);
  }

 private:
  std::string out_;
};

std::string text(double x, double y, std::string_view content, std::string_view attributes) {
  return fmt::format("<text x=\"{}\" y=\"{}\"{}{}>{}</text>\n", px(x), px(y),
                     attributes.empty() ? "" : " ", attributes, xml_escape(content));
}

// Gridlines, tick marks and labels of both axes, the frame, and the axis titles.
void draw_axes(Svg& svg, const Frame& f, std::string_view x_label, std::string_view y_label,
               bool log_y) {
  svg.raw("<g class=\"axes\" font-size=\"12\" fill=\"#333333\">\n");
  for (const Tick& t : f.x.ticks) {
    const double x = f.to_x(t.value);
    svg.raw(fmt::format("<g class=\"tick x\" data-value=\"{}\">", datum(t.value)));
    svg.raw(fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#e6e6e6\"/>",
                        px(x), px(f.top), px(f.bottom)));
    svg.raw(fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#333333\"/>",
                        px(x), px(f.bottom), px(f.bottom + 5.0)));
    svg.raw(text(x, f.bottom + 18.0, t.label, "text-anchor=\"middle\""));
    svg.raw("</g>\n");
  }
  for (const double v : f.y.minor) {
    const double y = f.to_y(v);
    svg.raw(
        fmt::format("<g class=\"minor-tick y\"><line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" "
                    "stroke=\"#f3f3f3\"/><line x1=\"{3}\" y1=\"{1}\" x2=\"{0}\" y2=\"{1}\" "
                    "stroke=\"#333333\"/></g>\n",
                    px(f.left), px(y), px(f.right), px(f.left - 4.0)));
  }
  for (const Tick& t : f.y.ticks) {
    const double y = f.to_y(t.value);
    svg.raw(fmt::format("<g class=\"tick y\" data-value=\"{}\"{}>", datum(t.value),
                        log_y ? fmt::format(" data-decade=\"{}\"", t.superscript) : ""));
    svg.raw(fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#e6e6e6\"/>",
                        px(f.left), px(y), px(f.right)));
    svg.raw(fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#333333\"/>",
                        px(f.left - 5.0), px(y), px(f.left)));
    if (t.superscript.empty()) {
      svg.raw(text(f.left - 8.0, y + 4.0, t.label, "text-anchor=\"end\""));
    } else {
      // "10" then the exponent raised; the text ends at the tick, whatever the exponent's length.
      svg.raw(fmt::format(
          "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}<tspan dy=\"-6\" "
          "font-size=\"9\">{}</tspan></text>",
          px(f.left - 8.0), px(y + 4.0), xml_escape(t.label), xml_escape(t.superscript)));
    }
    svg.raw("</g>\n");
  }
  svg.raw(fmt::format(
      "<rect class=\"frame\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" "
      "stroke=\"#999999\"/>\n",
      px(f.left), px(f.top), px(f.right - f.left), px(f.bottom - f.top)));
  svg.raw(text((f.left + f.right) / 2.0, f.bottom + 38.0, x_label,
               "class=\"axis-label x\" text-anchor=\"middle\" font-size=\"13\""));
  const double cy = (f.top + f.bottom) / 2.0;
  svg.raw(fmt::format(
      "<text class=\"axis-label y\" x=\"0\" y=\"0\" transform=\"translate({},{}) rotate(-90)\" "
      "text-anchor=\"middle\" font-size=\"13\">{}</text>\n",
      px(16.0), px(cy), xml_escape(y_label)));
  svg.raw("</g>\n");
}

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

constexpr double kLegendMargin = 16.0;  // left and right of the legend
constexpr double kLegendFont = 12.0;
constexpr double kLegendLine = 15.0;  // baseline to baseline within a label
constexpr double kLegendGap = 6.0;    // between rows of entries
constexpr double kSwatch = 32.0;      // the swatch and the gap after it
constexpr double kColumnGap = 14.0;   // after a label, before the next column

LegendLayout legend_layout(const std::vector<LegendEntry>& entries, double width) {
  LegendLayout lay;
  lay.x.resize(entries.size());
  lay.y.resize(entries.size());
  lay.lines.resize(entries.size());
  const double across = width - 2.0 * kLegendMargin;
  std::size_t begin = 0;
  while (begin < entries.size()) {
    std::size_t end = begin;
    while (end < entries.size() && entries[end].key == entries[begin].key &&
           entries[end].line == entries[begin].line) {
      ++end;
    }
    double widest = 0.0;
    for (std::size_t i = begin; i < end; ++i) {
      widest = std::max(widest, text_width(entries[i].label, kLegendFont));
    }
    std::size_t columns = 4;
    while (columns > 1 && widest > across / static_cast<double>(columns) - kSwatch - kColumnGap) {
      --columns;
    }
    columns = std::min(columns, end - begin);
    // A few short entries keep to the left rather than spread over the whole width.
    const double column_width = std::min(across / static_cast<double>(columns),
                                         std::max(across / 4.0, widest + kSwatch + kColumnGap));
    for (std::size_t i = begin; i < end; ++i) {
      lay.lines[i] = wrap_text(entries[i].label, column_width - kSwatch - kColumnGap, kLegendFont);
    }
    for (std::size_t first = begin; first < end; first += columns) {
      std::size_t tallest = 1;
      for (std::size_t i = first; i < std::min(first + columns, end); ++i) {
        lay.x[i] = kLegendMargin + column_width * static_cast<double>(i - first);
        lay.y[i] = lay.height;
        tallest = std::max(tallest, lay.lines[i].size());
      }
      lay.height += static_cast<double>(tallest) * kLegendLine + kLegendGap;
    }
    begin = end;
  }
  return lay;
}

void draw_legend(Svg& svg, const std::vector<LegendEntry>& entries, const LegendLayout& lay,
                 double top) {
  if (entries.empty()) return;
  svg.raw(fmt::format("<g class=\"legend\" font-size=\"{}\">\n", kLegendFont));
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const LegendEntry& e = entries[i];
    const double x = lay.x[i];
    const double y = top + lay.y[i] + 8.0;  // the first line's middle
    svg.raw(fmt::format("<g class=\"legend-entry{}\" data-label=\"{}\">", e.key ? " key" : "",
                        xml_escape(e.name.empty() ? e.label : e.name)));
    if (e.square) {
      svg.raw(fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"12\" fill=\"{}\" stroke=\"#666666\" "
          "stroke-width=\"0.5\"/>",
          px(x + 5.0), px(y - 6.0), e.colour));
    } else {
      if (e.line) {
        svg.raw(fmt::format(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"{}\"{}/>",
            px(x), px(y), px(x + 24.0), px(y), e.colour, px(e.line_width),
            e.dashed ? " stroke-dasharray=\"6 4\"" : ""));
        if (e.line_width > 2.0) {
          // Nested bands: a narrower white line and a line over it, as the chart draws them.
          svg.raw(
              fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#ffffff\" "
                          "stroke-width=\"{3}\"/><line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" "
                          "stroke=\"{4}\" stroke-width=\"1.5\"/>",
                          px(x), px(y), px(x + 24.0), px(e.line_width - 3.0), e.colour));
        }
      }
      if (e.mark)
        svg.raw(marker_svg(e.marker, x + 12.0, y, e.hollow ? 4.5 : 3.5,
                           fmt::format("fill=\"{}\" stroke=\"{}\" stroke-width=\"1.2\"",
                                       e.hollow ? "none" : e.colour, e.colour),
                           ""));
    }
    // Every line of the label, so the text put together is the label itself, never cut.
    const std::vector<std::string>& lines = lay.lines[i];
    svg.raw(fmt::format("<text x=\"{}\" y=\"{}\">", px(x + kSwatch), px(y + 4.0)));
    for (std::size_t k = 0; k < lines.size(); ++k) {
      svg.raw(k == 0 ? fmt::format("<tspan>{}</tspan>", xml_escape(lines[k]))
                     : fmt::format("<tspan x=\"{}\" dy=\"{}\">{}</tspan>", px(x + kSwatch),
                                   kLegendLine, xml_escape(lines[k])));
    }
    svg.raw("</text></g>\n");
  }
  svg.raw("</g>\n");
}

bool finite_point(double x, double y) { return std::isfinite(x) && std::isfinite(y); }

}  // namespace

// ---- Line chart

namespace {

// A series' finite points in pixels, in the order given.
struct Placed {
  std::vector<std::size_t> at;  // index into the series
  std::vector<double> x, y;
};

// How many of a's points lie on b: a point of b at the same pixel column and within 2 pixels.
std::size_t points_on(const Placed& a, const Placed& b) {
  std::vector<std::pair<double, double>> sorted;
  for (std::size_t i = 0; i < b.x.size(); ++i) sorted.emplace_back(b.x[i], b.y[i]);
  std::sort(sorted.begin(), sorted.end());
  std::size_t on = 0;
  for (std::size_t i = 0; i < a.x.size(); ++i) {
    auto it =
        std::lower_bound(sorted.begin(), sorted.end(),
                         std::make_pair(a.x[i] - 0.5, -std::numeric_limits<double>::infinity()));
    for (; it != sorted.end() && it->first <= a.x[i] + 0.5; ++it) {
      if (std::abs(it->second - a.y[i]) <= 2.0) {
        ++on;
        break;
      }
    }
  }
  return on;
}

}  // namespace

std::string line_chart_svg(const LineChart& chart) {
  for (const Series& s : chart.series) {
    if (s.x.size() != s.y.size()) {
      throw contract_error(fmt::format("line_chart_svg: series '{}' has {} x and {} y", s.label,
                                       s.x.size(), s.y.size()));
    }
    const bool band = !s.y_low.empty() || !s.y_high.empty();
    if (band && (s.y_low.size() != s.x.size() || s.y_high.size() != s.x.size())) {
      throw contract_error(
          fmt::format("line_chart_svg: series '{}' has {} x but a band of {} low and {} high",
                      s.label, s.x.size(), s.y_low.size(), s.y_high.size()));
    }
    if ((!s.point_markers.empty() && s.point_markers.size() != s.x.size()) ||
        (!s.point_notes.empty() && s.point_notes.size() != s.x.size())) {
      throw contract_error(fmt::format(
          "line_chart_svg: series '{}' has {} x but {} point markers and {} point notes", s.label,
          s.x.size(), s.point_markers.size(), s.point_notes.size()));
    }
  }

  // The ranges over every finite point and band edge.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double x_lo = kInf, x_hi = -kInf, y_lo = kInf, y_hi = -kInf;
  bool integer_x = true;
  for (const Series& s : chart.series) {
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!finite_point(s.x[i], s.y[i])) continue;
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i]);
      y_hi = std::max(y_hi, s.y[i]);
      integer_x = integer_x && s.x[i] == std::round(s.x[i]);
      if (!s.y_low.empty() && std::isfinite(s.y_low[i]) && std::isfinite(s.y_high[i])) {
        y_lo = std::min(y_lo, s.y_low[i]);
        y_hi = std::max(y_hi, s.y_high[i]);
      }
    }
  }
  const bool empty = x_lo > x_hi;

  Frame f{72.0, 44.0, kWidth - 24.0, kHeight - 56.0};
  f.inset_x = 10.0;
  f.inset_y = 6.0;
  f.x = linear_axis(x_lo, x_hi, 8.0, integer_x, false);
  f.y = chart.log10_y ? decade_axis(y_lo, y_hi) : linear_axis(y_lo, y_hi, 6.0, false, true);

  const std::size_t n = chart.series.size();
  std::vector<int> style_of(n);
  std::vector<Placed> placed(n);
  for (std::size_t si = 0; si < n; ++si) {
    const Series& s = chart.series[si];
    style_of[si] = s.colour >= 0 ? s.colour : static_cast<int>(si);
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!finite_point(s.x[i], s.y[i])) continue;
      placed[si].at.push_back(i);
      placed[si].x.push_back(f.to_x(s.x[i]));
      placed[si].y.push_back(f.to_y(s.y[i]));
    }
  }

  // Series of other styles that lie on top of each other (the lesson's ReLU under leaky ReLU):
  // a pair coincides when most points of the shorter one lie on the other; groups are closed
  // under it. Within a group the first drawn is widest, and the markers are set apart.
  std::vector<std::size_t> group(n);
  std::iota(group.begin(), group.end(), std::size_t{0});
  const auto find = [&](std::size_t i) {
    while (group[i] != i) i = group[i];
    return i;
  };
  std::vector<std::vector<int>> relation(n, std::vector<int>(n, 0));  // 1 overlaps, 2 the same
  for (std::size_t a = 0; a < n; ++a) {
    for (std::size_t b = a + 1; b < n; ++b) {
      if (style_of[a] == style_of[b] || chart.series[a].dashed != chart.series[b].dashed) continue;
      const std::size_t na = placed[a].x.size();
      const std::size_t nb = placed[b].x.size();
      const std::size_t on =
          points_on(na <= nb ? placed[a] : placed[b], na <= nb ? placed[b] : placed[a]);
      if (on < 2 || static_cast<double>(on) < 0.8 * static_cast<double>(std::min(na, nb))) continue;
      relation[a][b] = relation[b][a] = on == na && on == nb ? 2 : 1;
      group[find(b)] = find(a);
    }
  }
  std::vector<std::vector<std::size_t>> members(n);
  for (std::size_t i = 0; i < n; ++i) members[find(i)].push_back(i);

  // A pair that coincides is named in each other's entries; a larger group in one line of its
  // own, after the series, rather than in every member's entry.
  std::vector<LegendEntry> legend;
  std::vector<LegendEntry> groups;
  for (std::size_t si = 0; si < n; ++si) {
    const Series& s = chart.series[si];
    if (!s.in_legend) continue;
    const Style style = series_style(style_of[si]);
    std::vector<std::size_t> mates;
    for (const std::size_t m : members[find(si)]) {
      if (chart.series[m].in_legend) mates.push_back(m);
    }
    std::string label = s.label;
    if (mates.size() == 2) {
      const std::size_t other = mates[0] == si ? mates[1] : mates[0];
      label += fmt::format(" ({} {})", relation[si][other] == 2 ? "same line as" : "overlaps",
                           chart.series[other].label);
    } else if (mates.size() > 2 && mates.front() == si) {
      bool all_same = true;
      std::string names;
      for (std::size_t k = 0; k < mates.size(); ++k) {
        for (std::size_t q = k + 1; q < mates.size(); ++q) {
          all_same = all_same && relation[mates[k]][mates[q]] == 2;
        }
        names += (k == 0                  ? ""
                  : k + 1 == mates.size() ? " and "
                                          : ", ") +
                 chart.series[mates[k]].label;
      }
      LegendEntry e{fmt::format("{}: {}, drawn as nested bands", names,
                                all_same ? "one and the same line" : "lines on top of each other"),
                    kKeyColour, s.dashed, false};
      e.mark = false;
      e.key = true;
      e.line_width = 6.0;
      groups.push_back(e);
    }
    LegendEntry e{label, style.colour, s.dashed, false, s.marker.value_or(style.marker), s.dashed};
    e.name = s.label;
    legend.push_back(e);
  }
  legend.insert(legend.end(), groups.begin(), groups.end());
  for (const LegendKey& k : chart.keys) {
    LegendEntry e{k.label, kKeyColour, k.dashed, false, k.marker, k.hollow, k.line};
    e.key = true;
    legend.push_back(e);
  }
  const LegendLayout layout = legend_layout(legend, kWidth);
  const double legend_top = f.bottom + 52.0;
  const double height = legend.empty() ? kHeight : legend_top + layout.height + 6.0;

  Svg svg(kWidth, height, chart.title);
  draw_axes(svg, f, chart.x_label, chart.y_label, chart.log10_y);
  if (empty) {
    svg.raw(text((f.left + f.right) / 2.0, (f.top + f.bottom) / 2.0, chart.empty_note,
                 "class=\"note\" text-anchor=\"middle\" fill=\"#666666\""));
  }

  for (std::size_t si = 0; si < n; ++si) {
    const Series& s = chart.series[si];
    const Style style = series_style(style_of[si]);
    const std::string_view colour = style.colour;
    // Its place in a group of coinciding series: wider than those drawn over it, markers apart.
    const std::vector<std::size_t>& mates = members[find(si)];
    const auto k = static_cast<double>(mates.size());
    const auto rank =
        static_cast<double>(std::find(mates.begin(), mates.end(), si) - mates.begin());
    double gap = 9.0;  // the narrowest step between the group's points, in pixels
    for (const std::size_t m : mates) {
      std::vector<double> xs = placed[m].x;
      std::sort(xs.begin(), xs.end());
      for (std::size_t i = 1; i < xs.size(); ++i) {
        if (xs[i] - xs[i - 1] > 0.5) gap = std::min(gap, xs[i] - xs[i - 1]);
      }
    }
    const double shift = (rank - (k - 1.0) / 2.0) * std::min(4.0, 0.8 * gap / k);
    const double width = s.line_width + 3.0 * (k - 1.0 - rank);

    svg.raw(fmt::format("<g class=\"series\" data-label=\"{}\">\n", xml_escape(s.label)));
    if (!s.y_low.empty()) {
      // One closed polygon per run of points where the band is finite: low edge out, high back.
      std::string d;
      std::size_t i = 0;
      while (i < s.x.size()) {
        const auto ok = [&](std::size_t j) {
          return std::isfinite(s.x[j]) && std::isfinite(s.y_low[j]) && std::isfinite(s.y_high[j]);
        };
        if (!ok(i)) {
          ++i;
          continue;
        }
        std::size_t j = i;
        while (j < s.x.size() && ok(j)) ++j;
        for (std::size_t q = i; q < j; ++q) {
          d += fmt::format("{}{},{} ", q == i ? "M" : "L", px(f.to_x(s.x[q])),
                           px(f.to_y(s.y_low[q])));
        }
        for (std::size_t q = j; q-- > i;) {
          d += fmt::format("L{},{} ", px(f.to_x(s.x[q])), px(f.to_y(s.y_high[q])));
        }
        d += "Z ";
        i = j;
      }
      if (!d.empty()) {
        d.pop_back();
        svg.raw(fmt::format(
            "<path class=\"band\" d=\"{}\" fill=\"{}\" fill-opacity=\"0.18\" stroke=\"none\"/>\n",
            d, colour));
      }
    }

    // A non-finite point lifts the pen: the next finite point starts a new subpath.
    std::string d;
    bool pen_down = false;
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!finite_point(s.x[i], s.y[i])) {
        pen_down = false;
        continue;
      }
      d += fmt::format("{}{},{} ", pen_down ? "L" : "M", px(f.to_x(s.x[i])), px(f.to_y(s.y[i])));
      pen_down = true;
    }
    if (!d.empty()) {
      d.pop_back();
      svg.raw(fmt::format(
          "<path class=\"line\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" "
          "stroke-linejoin=\"round\"{}/>\n",
          d, colour, px(width), s.dashed ? " stroke-dasharray=\"6 4\"" : ""));
    }
    // Markers: filled for measurements; for dashed lines (predictions) a larger empty ring, which
    // leaves a measured point under it in sight: a ring around a dot is a prediction that holds.
    // Smaller when dense.
    const double r = (placed[si].x.size() > 80 ? 2.0 : 3.0) + (s.dashed ? 1.5 : 0.0);
    const std::string paint = fmt::format("fill=\"{}\" stroke=\"{}\" stroke-width=\"1.2\"",
                                          s.dashed ? "none" : colour, colour);
    for (std::size_t p = 0; p < placed[si].at.size(); ++p) {
      const std::size_t i = placed[si].at[p];
      const Marker shape =
          !s.point_markers.empty() ? s.point_markers[i] : s.marker.value_or(style.marker);
      const std::string note = s.point_notes.empty() || s.point_notes[i].empty()
                                   ? std::string()
                                   : "<title>" + xml_escape(s.point_notes[i]) + "</title>";
      svg.raw(marker_svg(shape, placed[si].x[p] + shift, placed[si].y[p], r,
                         fmt::format("class=\"point {}\" {} data-x=\"{}\" data-y=\"{}\"",
                                     marker_name(shape), paint, datum(s.x[i]), datum(s.y[i])),
                         note));
      svg.raw("\n");
    }
    svg.raw("</g>\n");
  }
  draw_legend(svg, legend, layout, legend_top);
  return svg.finish();
}

// ---- Stacked histograms

namespace {

// A bin that towers over the rest of its row.
constexpr std::int64_t kSpikeRatio = 4;

struct Spike {
  std::size_t at = 0;     // the tallest bin (the first of equals)
  std::int64_t next = 0;  // the tallest of the others
  bool cut = false;       // more than kSpikeRatio times next, which is positive
};

Spike spike_of(const std::vector<std::int64_t>& counts) {
  Spike s;
  s.at = static_cast<std::size_t>(std::max_element(counts.begin(), counts.end()) - counts.begin());
  for (std::size_t b = 0; b < counts.size(); ++b) {
    if (b != s.at) s.next = std::max(s.next, counts[b]);
  }
  // Divided first, so no product overflows.
  s.cut = s.next > 0 && counts[s.at] / kSpikeRatio >= s.next && counts[s.at] > kSpikeRatio * s.next;
  return s;
}

}  // namespace

std::string histogram_stack_svg(const HistogramStack& stack) {
  // Rows by position; equal positions keep their order.
  std::vector<std::size_t> order(stack.rows.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return stack.rows[a].position < stack.rows[b].position;
  });
  // Beyond the limit, an even subset that keeps the first and the last row.
  const std::size_t total = order.size();
  const auto max_rows = static_cast<std::size_t>(kHistogramStackMaxRows);
  if (total > max_rows) {
    std::vector<std::size_t> subset;
    for (std::size_t i = 0; i < max_rows; ++i) {
      // Integer arithmetic, so the choice cannot depend on rounding: floor(i (n-1) / (m-1) + 1/2).
      const std::size_t k = (2 * i * (total - 1) + (max_rows - 1)) / (2 * (max_rows - 1));
      subset.push_back(order[k]);
    }
    order = subset;
  }
  const std::size_t n = order.size();

  const auto drawable = [](const HistogramRow& row) {
    return !row.counts.empty() && std::isfinite(row.lo) && std::isfinite(row.hi) &&
           row.lo <= row.hi;
  };
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double lo = kInf, hi = -kInf;
  // The narrowest and widest ranges of one row (half spans: no overflow), zero-width rows aside.
  double narrowest = kInf, widest = 0.0;
  for (const std::size_t i : order) {
    const HistogramRow& row = stack.rows[i];
    if (!drawable(row)) continue;
    lo = std::min(lo, row.lo);
    hi = std::max(hi, row.hi);
    const double span = half_span(row.lo, row.hi);
    if (span > 0.0) {
      narrowest = std::min(narrowest, span);
      widest = std::max(widest, span);
    }
  }
  const bool own_range = widest > 0.0 && widest / narrowest > kHistogramOwnRangeRatio;
  bool straddles_zero = false;  // some row has values on both sides of 0
  for (const std::size_t i : order) {
    const HistogramRow& row = stack.rows[i];
    straddles_zero = straddles_zero || (drawable(row) && row.lo < 0.0 && row.hi > 0.0);
  }

  // Rows get a pitch between 10 and 36 pixels; the chart grows with their number. Rows over their
  // own ranges print them in a column at the right.
  const double pitch = n == 0 ? 36.0 : std::clamp(320.0 / static_cast<double>(n), 10.0, 36.0);
  Frame f{170.0, 48.0, kWidth - (own_range ? 150.0 : 24.0),
          48.0 + pitch * static_cast<double>(std::max<std::size_t>(n, 1))};
  if (!own_range) f.x = linear_axis(lo, hi, 7.0, false, true);
  f.y.lo = 0.0;
  f.y.hi = 1.0;

  bool any_cut = false;
  for (const std::size_t i : order) {
    any_cut = any_cut || (drawable(stack.rows[i]) && spike_of(stack.rows[i].counts).cut);
  }
  std::string caption = "Each row is scaled to its own peak.";
  if (any_cut) {
    caption = fmt::format(
        "Each row is scaled to its own peak; a bar more than {} times the row's next tallest "
        "(ReLU's "
        "exact zeros, say) is cut at the top, where a white notch marks it, and the row is scaled "
        "to the next tallest.",
        kSpikeRatio);
  }
  if (own_range) {
    caption += fmt::format(
        " Each row spans its own range, from its smallest value (left) to its largest (right), "
        "given beside it{}. The rows' ranges differ {}-fold, too much for one shared axis.",
        straddles_zero ? "; a dotted line marks 0" : "", compact_number(widest / narrowest));
  }
  if (total > n) {
    caption =
        fmt::format("Showing {} of {} rows, evenly spaced (first and last kept). ", n, total) +
        caption;
  }
  if (n == 0) caption = "No rows.";
  const std::vector<std::string> caption_lines = wrap_text(caption, kWidth - 32.0, 11.0);
  const double caption_top = f.bottom + 62.0;
  const double height = caption_top + 14.0 * static_cast<double>(caption_lines.size()) + 2.0;

  Svg svg(kWidth, height, stack.title);
  draw_axes(
      svg, f,
      own_range ? std::string(stack.x_label) + " (each row over its own range)" : stack.x_label,
      stack.y_label, false);

  // Labels of every row when they fit, else of every k-th (the first and the last always).
  const auto label_every = static_cast<std::size_t>(std::ceil(12.0 / pitch));
  svg.raw("<g class=\"rows\" shape-rendering=\"crispEdges\">\n");
  for (std::size_t r = 0; r < n; ++r) {
    const HistogramRow& row = stack.rows[order[r]];
    const double top = f.top + pitch * static_cast<double>(r);
    const double base = top + pitch;
    svg.raw(fmt::format(
        "<g class=\"row\" data-position=\"{}\" data-label=\"{}\" data-lo=\"{}\" data-hi=\"{}\">\n",
        datum(row.position), xml_escape(row.label), datum(row.lo), datum(row.hi)));
    if (r % 2 == 1) {
      // Alternate shading guides the eye along a row.
      svg.raw(
          fmt::format("<rect class=\"stripe\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
                      "fill=\"#f4f4f4\"/>\n",
                      px(f.left), px(top), px(f.right - f.left), px(pitch)));
    }
    // The last row is always labelled, so a regular label too close above it is left out.
    const bool labelled = (r % label_every == 0 && r + label_every < n) || r + 1 == n;
    const std::string_view small = pitch < 14.0 ? "font-size=\"9\"" : "font-size=\"11\"";
    if (labelled) {
      svg.raw(text(f.left - 8.0, top + pitch / 2.0 + 4.0, shorten(row.label, 22),
                   fmt::format("class=\"row-label\" text-anchor=\"end\" {}", small)));
    }
    svg.raw(
        fmt::format("<line x1=\"{0}\" y1=\"{2}\" x2=\"{1}\" y2=\"{2}\" stroke=\"#999999\" "
                    "stroke-width=\"0.5\"/>\n",
                    px(f.left), px(f.right), px(base)));
    if (!drawable(row)) {
      svg.raw(text(f.right - 6.0, top + pitch / 2.0 + 4.0, "no finite values",
                   "class=\"note\" text-anchor=\"end\" font-size=\"9\" fill=\"#666666\""));
      svg.raw("</g>\n");
      continue;
    }
    // Where a value of this row lands: on the shared axis, or across the frame from lo to hi.
    const auto to_x = [&](double v) {
      if (!own_range) return f.to_x(v);
      if (!(row.hi > row.lo)) return (f.left + f.right) / 2.0;
      return f.left + half_span(row.lo, v) / half_span(row.lo, row.hi) * (f.right - f.left);
    };
    if (own_range) {
      if (labelled) {
        svg.raw(text(f.right + 6.0, top + pitch / 2.0 + 4.0,
                     fmt::format("{} \u2026 {}", compact_number(row.lo), compact_number(row.hi)),
                     fmt::format("class=\"row-range\" {} fill=\"#333333\"", small)));
      }
      if (row.lo < 0.0 && row.hi > 0.0) {
        svg.raw(fmt::format(
            "<line class=\"zero\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#555555\" "
            "stroke-width=\"0.75\" stroke-dasharray=\"1 2\"/>\n",
            px(to_x(0.0)), px(top), px(base)));
      }
    }
    const Spike spike = spike_of(row.counts);
    const std::int64_t peak = spike.cut ? spike.next : row.counts[spike.at];
    const double bins = static_cast<double>(row.counts.size());
    const double bar_room = pitch * 0.9;
    for (std::size_t b = 0; b < row.counts.size(); ++b) {
      // lo (1 - t) + hi t: exact at both ends, and no term overflows.
      const double t0 = static_cast<double>(b) / bins;
      const double t1 = static_cast<double>(b + 1) / bins;
      const double b0 = row.lo * (1.0 - t0) + row.hi * t0;
      const double b1 = row.lo * (1.0 - t1) + row.hi * t1;
      // A row whose range is one value has bins of no width: keep them visible as a spike.
      const double w = std::max(to_x(b1) - to_x(b0), 1.5);
      const double x0 = std::min(to_x(b0), f.right - w);
      // A negative count is none a histogram can hold: drawn as empty, reported as given.
      const bool cut_here = spike.cut && b == spike.at;
      const double h =
          cut_here ? bar_room
          : peak > 0 && row.counts[b] > 0
              ? bar_room * static_cast<double>(row.counts[b]) / static_cast<double>(peak)
              : 0.0;
      svg.raw(fmt::format(
          "<rect class=\"bar{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#0072B2\" "
          "data-count=\"{}\"/>\n",
          cut_here ? " cut" : "", px(x0), px(base - h), px(w), px(h), row.counts[b]));
      if (cut_here) {
        const double notch = base - h + std::min(3.0, h / 3.0);
        svg.raw(fmt::format(
            "<line class=\"notch\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ffffff\" "
            "stroke-width=\"1.2\"/>\n",
            px(x0 - 1.0), px(notch + 1.0), px(x0 + w + 1.0), px(notch - 1.0)));
      }
    }
    svg.raw("</g>\n");
  }
  svg.raw("</g>\n");

  svg.raw(
      fmt::format("<text class=\"caption\" x=\"16\" y=\"{}\" font-size=\"11\" fill=\"#555555\">",
                  px(caption_top)));
  for (std::size_t k = 0; k < caption_lines.size(); ++k) {
    svg.raw(
        k == 0 ? fmt::format("<tspan>{}</tspan>", xml_escape(caption_lines[k]))
               : fmt::format("<tspan x=\"16\" dy=\"14\">{}</tspan>", xml_escape(caption_lines[k])));
  }
  svg.raw("</text>\n");
  return svg.finish();
}

// ---- Phase diagram

namespace {

struct PhaseStyle {
  std::string_view name;
  std::string_view colour;
  std::string_view legend;
};
// Okabe-Ito: cool for ordered (vanishing), warm for chaotic (exploding).
constexpr std::array<PhaseStyle, 4> kPhases = {{
    {"ordered", "#56B4E9", "ordered: vanishing"},
    {"critical", "#F0E442", "critical"},
    {"chaotic", "#E69F00", "chaotic: exploding"},
    {"unbounded", "#CC79A7", "unbounded: no q*"},
}};

std::string_view phase_colour(std::string_view phase) {
  for (const PhaseStyle& p : kPhases) {
    if (p.name == phase) return p.colour;
  }
  return "#ffffff";
}

// Cell edges around sorted-or-not centres (in axis coordinates): halfway to each neighbour, and
// the outer cells as wide as their inner half. One centre gets +-half_single.
std::vector<std::pair<double, double>> cell_edges(const std::vector<double>& centres,
                                                  double half_single) {
  const std::size_t n = centres.size();
  std::vector<std::pair<double, double>> edges(n);
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return centres[a] < centres[b]; });
  for (std::size_t k = 0; k < n; ++k) {
    const double c = centres[order[k]];
    const double left_half = k > 0   ? half_span(centres[order[k - 1]], c)
                             : n > 1 ? half_span(c, centres[order[1]])
                                     : half_single;
    const double right_half = k + 1 < n ? half_span(c, centres[order[k + 1]])
                              : n > 1   ? half_span(centres[order[n - 2]], c)
                                        : half_single;
    edges[order[k]] = {c - left_half, c + right_half};
  }
  return edges;
}

}  // namespace

std::string phase_chart_svg(const PhaseChart& chart) {
  const std::size_t rows = chart.sb2.size();
  const std::size_t cols = chart.sw2_samples.size();
  if (chart.phase.size() != rows) {
    throw contract_error(
        fmt::format("phase_chart_svg: {} phase rows for {} sb2 values", chart.phase.size(), rows));
  }
  for (const std::vector<std::string>& row : chart.phase) {
    if (row.size() != cols) {
      throw contract_error(fmt::format(
          "phase_chart_svg: a phase row has {} entries for {} sw2 samples", row.size(), cols));
    }
  }
  if (!chart.critical_sw2.empty() && chart.critical_sw2.size() != rows) {
    throw contract_error(fmt::format("phase_chart_svg: {} critical sw2 values for {} rows",
                                     chart.critical_sw2.size(), rows));
  }

  // sw2 samples are usually geometric (0.25 ... 8): a log axis gives them equal room.
  bool log_x = cols > 0;
  for (const double v : chart.sw2_samples) log_x = log_x && std::isfinite(v) && v > 0.0;
  for (const double v : chart.critical_sw2) log_x = log_x && (std::isnan(v) || v > 0.0);
  const auto ax = [&](double sw2) { return log_x ? std::log10(sw2) : sw2; };

  std::vector<double> xc;
  for (const double v : chart.sw2_samples) xc.push_back(ax(v));
  std::vector<std::pair<double, double>> x_edges = cell_edges(xc, 0.5);
  std::vector<std::pair<double, double>> y_edges = cell_edges(chart.sb2, 0.05);
  // Variances are never negative: cells stop at 0 rather than suggest a negative sb2 or sw2.
  for (std::size_t r = 0; r < rows; ++r) {
    if (chart.sb2[r] >= 0.0) y_edges[r].first = std::max(y_edges[r].first, 0.0);
  }
  if (!log_x) {
    for (std::size_t c = 0; c < cols; ++c) {
      if (chart.sw2_samples[c] >= 0.0) x_edges[c].first = std::max(x_edges[c].first, 0.0);
    }
  }

  constexpr double kInf = std::numeric_limits<double>::infinity();
  double x_lo = kInf, x_hi = -kInf, y_lo = kInf, y_hi = -kInf;
  for (const auto& e : x_edges) {
    if (std::isfinite(e.first) && std::isfinite(e.second)) {
      x_lo = std::min(x_lo, e.first);
      x_hi = std::max(x_hi, e.second);
    }
  }
  for (const auto& e : y_edges) {
    if (std::isfinite(e.first) && std::isfinite(e.second)) {
      y_lo = std::min(y_lo, e.first);
      y_hi = std::max(y_hi, e.second);
    }
  }
  for (std::size_t r = 0; r < chart.critical_sw2.size(); ++r) {
    const double c = chart.critical_sw2[r];
    if (!std::isfinite(c) || !std::isfinite(chart.sb2[r])) continue;
    x_lo = std::min(x_lo, ax(c));
    x_hi = std::max(x_hi, ax(c));
  }

  std::vector<LegendEntry> legend;
  for (const PhaseStyle& p : kPhases) {
    legend.push_back({std::string(p.legend), p.colour, false, true});
  }
  legend.push_back({"edge of chaos: chi1 = 1", "#000000", false, false});
  const LegendLayout layout = legend_layout(legend, kWidth);

  Frame f{72.0, 44.0, kWidth - 24.0, kHeight - 56.0};
  if (log_x && x_lo <= x_hi) {
    // Ticks at the sampled sw2 values themselves: they are the columns.
    f.x.lo = x_lo;
    f.x.hi = x_hi;
    for (const double v : chart.sw2_samples)
      f.x.ticks.push_back({ax(v), fmt::format("{:g}", v), ""});
  } else {
    f.x = linear_axis(x_lo, x_hi, 6.0, false, false);
  }
  f.y = linear_axis(y_lo, y_hi, 6.0, false, false);

  const double legend_top = f.bottom + 52.0;
  Svg svg(kWidth, legend_top + layout.height + 6.0, chart.title);
  draw_axes(svg, f,
            log_x ? "sw2 = weight variance \u00d7 fan-in (log scale)"
                  : "sw2 = weight variance \u00d7 fan-in",
            "sb2 = bias variance", false);

  svg.raw("<g class=\"cells\" stroke=\"#ffffff\" stroke-width=\"1\">\n");
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      const double x0 = f.to_x(x_edges[c].first);
      const double x1 = f.to_x(x_edges[c].second);
      const double y0 = f.to_y(y_edges[r].second);
      const double y1 = f.to_y(y_edges[r].first);
      if (!(std::isfinite(x0) && std::isfinite(x1) && std::isfinite(y0) && std::isfinite(y1))) {
        continue;
      }
      const std::string& phase = chart.phase[r][c];
      svg.raw(fmt::format(
          "<rect class=\"cell\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" "
          "data-sb2=\"{}\" data-sw2=\"{}\" data-phase=\"{}\"/>\n",
          px(x0), px(y0), px(std::max(x1 - x0, 0.0)), px(std::max(y1 - y0, 0.0)),
          phase_colour(phase), datum(chart.sb2[r]), datum(chart.sw2_samples[c]),
          xml_escape(phase)));
    }
  }
  svg.raw("</g>\n");
  if (rows == 0 || cols == 0) {
    svg.raw(text((f.left + f.right) / 2.0, (f.top + f.bottom) / 2.0, "no phase samples",
                 "class=\"note\" text-anchor=\"middle\" fill=\"#666666\""));
  }

  // The edge of chaos: a NaN (no critical point at that sb2) breaks the line.
  svg.raw("<g class=\"critical-line\">\n");
  std::string d;
  bool pen_down = false;
  std::string markers;
  for (std::size_t r = 0; r < chart.critical_sw2.size(); ++r) {
    const double c = chart.critical_sw2[r];
    if (!finite_point(c, chart.sb2[r])) {
      pen_down = false;
      continue;
    }
    const double x = f.to_x(ax(c));
    const double y = f.to_y(chart.sb2[r]);
    d += fmt::format("{}{},{} ", pen_down ? "L" : "M", px(x), px(y));
    pen_down = true;
    markers += fmt::format(
        "<circle cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"#000000\" data-sb2=\"{}\" "
        "data-sw2=\"{}\"/>\n",
        px(x), px(y), datum(chart.sb2[r]), datum(c));
  }
  if (!d.empty()) {
    d.pop_back();
    svg.raw(fmt::format(
        "<path class=\"line\" d=\"{}\" fill=\"none\" stroke=\"#000000\" stroke-width=\"2.5\" "
        "stroke-linejoin=\"round\"/>\n",
        d));
  }
  svg.raw(markers);
  svg.raw("</g>\n");

  draw_legend(svg, legend, layout, legend_top);
  return svg.finish();
}

}  // namespace gradscope
