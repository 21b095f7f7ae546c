// The SVG line chart: series with optional bands and per-point markers, coinciding series drawn as
// nested bands with their markers set apart, and a legend that names the overlaps.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/report/svg.hpp"
#include "report/svg_detail.hpp"
#include "report/text_format.hpp"

namespace gradscope {

namespace {

using namespace svg_detail;
using namespace text_format;

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

void check_series(const LineChart& chart) {
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
}

// The plot frame with its axes, and whether there is any finite point at all.
struct Plot {
  Frame f{72.0, 44.0, kWidth - 24.0, kHeight - 56.0};
  bool empty = false;
};

Plot plot_for(const LineChart& chart) {
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
  Plot plot;
  plot.empty = x_lo > x_hi;
  if (!plot.empty) {
    for (const double v : chart.y_include) {
      if (!std::isfinite(v)) continue;
      y_lo = std::min(y_lo, v);
      y_hi = std::max(y_hi, v);
    }
  }
  Frame& f = plot.f;
  f.inset_x = 10.0;
  f.inset_y = 6.0;
  f.x = linear_axis(x_lo, x_hi, 8.0, integer_x, false);
  f.y = chart.log10_y ? decade_axis(y_lo, y_hi) : linear_axis(y_lo, y_hi, 6.0, false, true);
  return plot;
}

// Each series' style index and its finite points in pixels.
struct Placement {
  std::vector<int> style_of;
  std::vector<Placed> placed;
};

Placement place(const LineChart& chart, const Frame& f) {
  const std::size_t n = chart.series.size();
  Placement out;
  std::vector<int>& style_of = out.style_of;
  std::vector<Placed>& placed = out.placed;
  style_of.resize(n);
  placed.resize(n);
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
  return out;
}

// Series of other styles that lie on top of each other (the lesson's ReLU under leaky ReLU):
// a pair coincides when most points of the shorter one lie on the other; groups are closed
// under it. Within a group the first drawn is widest, and the markers are set apart.
struct Overlaps {
  std::vector<std::size_t> group;                 // union-find parents
  std::vector<std::vector<int>> relation;         // 1 overlaps, 2 the same
  std::vector<std::vector<std::size_t>> members;  // per group root, in order
  std::size_t find(std::size_t i) const {
    while (group[i] != i) i = group[i];
    return i;
  }
};

Overlaps overlaps_of(const LineChart& chart, const Placement& placement) {
  const std::vector<int>& style_of = placement.style_of;
  const std::vector<Placed>& placed = placement.placed;
  const std::size_t n = chart.series.size();
  Overlaps o;
  std::vector<std::size_t>& group = o.group;
  group.resize(n);
  std::iota(group.begin(), group.end(), std::size_t{0});
  const auto find = [&](std::size_t i) { return o.find(i); };
  std::vector<std::vector<int>>& relation = o.relation;
  relation.assign(n, std::vector<int>(n, 0));
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
  o.members.resize(n);
  for (std::size_t i = 0; i < n; ++i) o.members[find(i)].push_back(i);
  return o;
}

// The key of a group of more than two coinciding series: one line naming them all.
LegendEntry group_entry(const LineChart& chart, const Series& s,
                        const std::vector<std::size_t>& mates,
                        const std::vector<std::vector<int>>& relation) {
  bool all_same = true;
  std::string names;
  for (std::size_t k = 0; k < mates.size(); ++k) {
    for (std::size_t q = k + 1; q < mates.size(); ++q) {
      all_same = all_same && relation[mates[k]][mates[q]] == 2;
    }
    names += (k == 0 ? "" : k + 1 == mates.size() ? " and " : ", ") + chart.series[mates[k]].label;
  }
  LegendEntry e{fmt::format("{}: {}, drawn as nested bands", names,
                            all_same ? "one and the same line" : "lines on top of each other"),
                kKeyColour, s.dashed, false};
  e.mark = false;
  e.key = true;
  e.line_width = 6.0;
  return e;
}

// A pair that coincides is named in each other's entries; a larger group in one line of its
// own, after the series, rather than in every member's entry. Then the chart's keys.
std::vector<LegendEntry> line_legend(const LineChart& chart, const Placement& placement,
                                     const Overlaps& overlaps) {
  const std::size_t n = chart.series.size();
  std::vector<LegendEntry> legend;
  std::vector<LegendEntry> groups;
  for (std::size_t si = 0; si < n; ++si) {
    const Series& s = chart.series[si];
    if (!s.in_legend) continue;
    const Style style = series_style(placement.style_of[si]);
    std::vector<std::size_t> mates;
    for (const std::size_t m : overlaps.members[overlaps.find(si)]) {
      if (chart.series[m].in_legend) mates.push_back(m);
    }
    std::string label = s.label;
    if (mates.size() == 2) {
      const std::size_t other = mates[0] == si ? mates[1] : mates[0];
      label +=
          fmt::format(" ({} {})", overlaps.relation[si][other] == 2 ? "same line as" : "overlaps",
                      chart.series[other].label);
    } else if (mates.size() > 2 && mates.front() == si) {
      groups.push_back(group_entry(chart, s, mates, overlaps.relation));
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
  return legend;
}

// One closed polygon per run of points where the band is finite: low edge out, high back.
void draw_band(Svg& svg, const Frame& f, const Series& s, std::string_view colour) {
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
      d += fmt::format("{}{},{} ", q == i ? "M" : "L", px(f.to_x(s.x[q])), px(f.to_y(s.y_low[q])));
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
        "<path class=\"band\" d=\"{}\" fill=\"{}\" fill-opacity=\"0.18\" stroke=\"none\"/>\n", d,
        colour));
  }
}

// A non-finite point lifts the pen: the next finite point starts a new subpath.
void draw_line(Svg& svg, const Frame& f, const Series& s, std::string_view colour, double width) {
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
    svg.raw(
        fmt::format("<path class=\"line\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" "
                    "stroke-linejoin=\"round\"{}/>\n",
                    d, colour, px(width), s.dashed ? " stroke-dasharray=\"6 4\"" : ""));
  }
}

// Markers: filled for measurements; for dashed lines (predictions) a larger empty ring, which
// leaves a measured point under it in sight: a ring around a dot is a prediction that holds.
// Smaller when dense. `shift` sets them apart from a coinciding series' markers.
void draw_markers(Svg& svg, const Series& s, const Style& style, const Placed& placed,
                  double shift) {
  const std::string_view colour = style.colour;
  const double r = (placed.x.size() > 80 ? 2.0 : 3.0) + (s.dashed ? 1.5 : 0.0);
  const std::string paint = fmt::format("fill=\"{}\" stroke=\"{}\" stroke-width=\"1.2\"",
                                        s.dashed ? "none" : colour, colour);
  for (std::size_t p = 0; p < placed.at.size(); ++p) {
    const std::size_t i = placed.at[p];
    const Marker shape =
        !s.point_markers.empty() ? s.point_markers[i] : s.marker.value_or(style.marker);
    const std::string note = s.point_notes.empty() || s.point_notes[i].empty()
                                 ? std::string()
                                 : "<title>" + xml_escape(s.point_notes[i]) + "</title>";
    svg.raw(marker_svg(shape, placed.x[p] + shift, placed.y[p], r,
                       fmt::format("class=\"point {}\" {} data-x=\"{}\" data-y=\"{}\"",
                                   marker_name(shape), paint, datum(s.x[i]), datum(s.y[i])),
                       note));
    svg.raw("\n");
  }
}

// One series: its band, its line and its markers. Its place in a group of coinciding series
// makes it wider than those drawn over it, with its markers apart.
void draw_series(Svg& svg, const Frame& f, const LineChart& chart, std::size_t si,
                 const Placement& placement, const Overlaps& overlaps) {
  const std::vector<Placed>& placed = placement.placed;
  const Series& s = chart.series[si];
  const Style style = series_style(placement.style_of[si]);
  const std::string_view colour = style.colour;
  const std::vector<std::size_t>& mates = overlaps.members[overlaps.find(si)];
  const auto k = static_cast<double>(mates.size());
  const auto rank = static_cast<double>(std::find(mates.begin(), mates.end(), si) - mates.begin());
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
  if (!s.y_low.empty()) draw_band(svg, f, s, colour);
  draw_line(svg, f, s, colour, width);
  draw_markers(svg, s, style, placed[si], shift);
  svg.raw("</g>\n");
}

}  // namespace

std::string line_chart_svg(const LineChart& chart) {
  check_series(chart);
  const Plot plot = plot_for(chart);
  const Frame& f = plot.f;
  const Placement placement = place(chart, f);
  const Overlaps overlaps = overlaps_of(chart, placement);
  const std::vector<LegendEntry> legend = line_legend(chart, placement, overlaps);
  const LegendLayout layout = legend_layout(legend, kWidth);
  const double legend_top = f.bottom + 52.0;
  const double height = legend.empty() ? kHeight : legend_top + layout.height + 6.0;

  Svg svg(kWidth, height, chart.title);
  draw_axes(svg, f, chart.x_label, chart.y_label, chart.log10_y);
  if (plot.empty) {
    svg.raw(text((f.left + f.right) / 2.0, (f.top + f.bottom) / 2.0, chart.empty_note,
                 "class=\"note\" text-anchor=\"middle\" fill=\"#666666\""));
  }
  for (std::size_t si = 0; si < chart.series.size(); ++si) {
    draw_series(svg, f, chart, si, placement, overlaps);
  }
  draw_legend(svg, legend, layout, legend_top);
  return svg.finish();
}

}  // namespace gradscope
