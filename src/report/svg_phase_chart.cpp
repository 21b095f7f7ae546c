// The SVG phase diagram: a cell per (sb2, sw2) sample coloured by its phase, and the edge of chaos
// (chi1 = 1) as a line across them.
#include <fmt/format.h>

#include <algorithm>
#include <array>
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

void check_chart(const PhaseChart& chart) {
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
}

// The cells in axis coordinates: sw2 on a log axis when every value allows it.
struct Grid {
  bool log_x = false;
  std::vector<std::pair<double, double>> x_edges, y_edges;
  double ax(double sw2) const { return log_x ? std::log10(sw2) : sw2; }
};

Grid grid_of(const PhaseChart& chart) {
  const std::size_t rows = chart.sb2.size();
  const std::size_t cols = chart.sw2_samples.size();
  Grid g;
  // sw2 samples are usually geometric (0.25 ... 8): a log axis gives them equal room.
  bool log_x = cols > 0;
  for (const double v : chart.sw2_samples) log_x = log_x && std::isfinite(v) && v > 0.0;
  for (const double v : chart.critical_sw2) log_x = log_x && (std::isnan(v) || v > 0.0);
  g.log_x = log_x;

  std::vector<double> xc;
  for (const double v : chart.sw2_samples) xc.push_back(g.ax(v));
  g.x_edges = cell_edges(xc, 0.5);
  g.y_edges = cell_edges(chart.sb2, 0.05);
  // Variances are never negative: cells stop at 0 rather than suggest a negative sb2 or sw2.
  for (std::size_t r = 0; r < rows; ++r) {
    if (chart.sb2[r] >= 0.0) g.y_edges[r].first = std::max(g.y_edges[r].first, 0.0);
  }
  if (!log_x) {
    for (std::size_t c = 0; c < cols; ++c) {
      if (chart.sw2_samples[c] >= 0.0) g.x_edges[c].first = std::max(g.x_edges[c].first, 0.0);
    }
  }
  return g;
}

// The frame over every finite cell and point of the edge of chaos; on a log axis, ticks at the
// sampled sw2 values themselves: they are the columns.
Frame phase_frame(const PhaseChart& chart, const Grid& g) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double x_lo = kInf, x_hi = -kInf, y_lo = kInf, y_hi = -kInf;
  for (const auto& e : g.x_edges) {
    if (std::isfinite(e.first) && std::isfinite(e.second)) {
      x_lo = std::min(x_lo, e.first);
      x_hi = std::max(x_hi, e.second);
    }
  }
  for (const auto& e : g.y_edges) {
    if (std::isfinite(e.first) && std::isfinite(e.second)) {
      y_lo = std::min(y_lo, e.first);
      y_hi = std::max(y_hi, e.second);
    }
  }
  for (std::size_t r = 0; r < chart.critical_sw2.size(); ++r) {
    const double c = chart.critical_sw2[r];
    if (!std::isfinite(c) || !std::isfinite(chart.sb2[r])) continue;
    x_lo = std::min(x_lo, g.ax(c));
    x_hi = std::max(x_hi, g.ax(c));
  }

  Frame f{72.0, 44.0, kWidth - 24.0, kHeight - 56.0};
  if (g.log_x && x_lo <= x_hi) {
    f.x.lo = x_lo;
    f.x.hi = x_hi;
    for (const double v : chart.sw2_samples)
      f.x.ticks.push_back({g.ax(v), fmt::format("{:g}", v), ""});
  } else {
    f.x = linear_axis(x_lo, x_hi, 6.0, false, false);
  }
  f.y = linear_axis(y_lo, y_hi, 6.0, false, false);
  return f;
}

void draw_cells(Svg& svg, const Frame& f, const PhaseChart& chart, const Grid& g) {
  const std::size_t rows = chart.sb2.size();
  const std::size_t cols = chart.sw2_samples.size();
  svg.raw("<g class=\"cells\" stroke=\"#ffffff\" stroke-width=\"1\">\n");
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      const double x0 = f.to_x(g.x_edges[c].first);
      const double x1 = f.to_x(g.x_edges[c].second);
      const double y0 = f.to_y(g.y_edges[r].second);
      const double y1 = f.to_y(g.y_edges[r].first);
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
}

// The edge of chaos: a NaN (no critical point at that sb2) breaks the line.
void draw_critical_line(Svg& svg, const Frame& f, const PhaseChart& chart, const Grid& g) {
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
    const double x = f.to_x(g.ax(c));
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
}

}  // namespace

std::string phase_chart_svg(const PhaseChart& chart) {
  check_chart(chart);
  const Grid grid = grid_of(chart);
  const Frame f = phase_frame(chart, grid);

  std::vector<LegendEntry> legend;
  for (const PhaseStyle& p : kPhases) {
    legend.push_back({std::string(p.legend), p.colour, false, true});
  }
  legend.push_back({"edge of chaos: chi1 = 1", "#000000", false, false});
  const LegendLayout layout = legend_layout(legend, kWidth);

  const double legend_top = f.bottom + 52.0;
  Svg svg(kWidth, legend_top + layout.height + 6.0, chart.title);
  draw_axes(svg, f,
            grid.log_x ? "sw2 = weight variance \u00d7 fan-in (log scale)"
                       : "sw2 = weight variance \u00d7 fan-in",
            "sb2 = bias variance", false);
  draw_cells(svg, f, chart, grid);
  draw_critical_line(svg, f, chart, grid);
  draw_legend(svg, legend, layout, legend_top);
  return svg.finish();
}

}  // namespace gradscope
