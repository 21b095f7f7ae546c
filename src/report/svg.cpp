// What the SVG charts share: numbers spelled for SVG, series styles and markers, axes, the plot
// frame, the document and the legend. Every number goes through fmt with a fixed precision and no
// locale, so the same input gives the same bytes everywhere. The charts are one a file beside it.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "report/svg_detail.hpp"
#include "report/text_format.hpp"

namespace gradscope::svg_detail {

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

namespace {

// Okabe & Ito (2008), colour-blind safe; yellow left out of the line colours (too faint on white).
constexpr std::array<std::string_view, kLineColours> kLineColourValues = {
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"};

}  // namespace

Style series_style(int index) {
  const int i = ((index % kSeriesStyles) + kSeriesStyles) % kSeriesStyles;
  return {kLineColourValues[static_cast<std::size_t>(i % kLineColours)],
          static_cast<Marker>(i / kLineColours)};
}

namespace {

// The shapes' names, as the markers' second class.
constexpr std::array<std::string_view, kMarkerShapes> kMarkerNames = {
    "circle", "square", "triangle", "diamond", "triangle-down", "plus"};
static_assert(static_cast<int>(Marker::kPlus) + 1 == kMarkerShapes);

}  // namespace

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

// ---- Text width

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

// ---- The document

Svg::Svg(double width, double height, std::string_view title) {
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

namespace {

constexpr double kLegendMargin = 16.0;  // left and right of the legend
constexpr double kLegendFont = 12.0;
constexpr double kLegendLine = 15.0;  // baseline to baseline within a label
constexpr double kLegendGap = 6.0;    // between rows of entries
constexpr double kSwatch = 32.0;      // the swatch and the gap after it
constexpr double kColumnGap = 14.0;   // after a label, before the next column

}  // namespace

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

}  // namespace gradscope::svg_detail
