// The coordinate check's charts, drawn by the line chart (report/svg.hpp): log2 of a size against
// log2 of the width or depth, so that a slope on the chart is the slope the check fitted.
#include "gradscope/report/coordcheck_svg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/report/svg.hpp"
#include "report/text_format.hpp"

namespace gradscope {

namespace {

using namespace text_format;

// log2 of a size, NaN where it has none on a log scale (not finite, 0 or negative): the line
// chart leaves such a point out and lifts the pen there.
double log2_size(double v) { return std::isfinite(v) && v > 0.0 ? std::log2(v) : std::nan(""); }

// One series over the check's widths (or depths) `xs`: x = log2 of each, y = log2 of the value,
// each marker's tooltip the values as read in the tables.
Series size_series(const std::string& label, const std::vector<int>& xs,
                   const std::vector<double>& values, std::string_view x_name,
                   std::string_view y_name) {
  Series s;
  s.label = label;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double v = i < values.size() ? values[i] : std::nan("");
    s.x.push_back(xs[i] > 0 ? std::log2(static_cast<double>(xs[i])) : std::nan(""));
    s.y.push_back(log2_size(v));
    s.point_notes.push_back(
        fmt::format("{}: {} {}, {} {}", label, x_name, xs[i], y_name, format_number(v)));
  }
  return s;
}

// "log2 width (6 is 64, 10 is 1024)": the axis is read in log2, the check was asked in units.
std::string axis_label(std::string_view name, const std::vector<int>& v) {
  if (v.empty()) return fmt::format("log2 {}", name);
  const int lo = *std::min_element(v.begin(), v.end());
  const int hi = *std::max_element(v.begin(), v.end());
  if (lo <= 0 || lo == hi) return fmt::format("log2 {}", name);
  return fmt::format("log2 {} ({} is {}, {} is {})", name, format_shortest(std::log2(lo)), lo,
                     format_shortest(std::log2(hi)), hi);
}

std::string quantity_chart(const CoordCheckResult& r, int step, CoordQuantity quantity,
                           std::string_view what) {
  LineChart chart;
  chart.title = fmt::format("Coordinate check {} ({}), step {}: {} against width", r.name,
                            parametrization_name(r.spec.parametrization), step, what);
  const bool size = quantity == CoordQuantity::kSize;
  chart.x_label = axis_label("width", r.spec.widths);
  chart.y_label = size ? "log2 mean |x|" : "log2 mean |x - x at init|";
  bool any_row = false;
  for (const CoordRow& row : r.rows) {
    if (row.step != step || row.quantity != quantity) continue;
    any_row = true;
    chart.series.push_back(
        size_series(row.label, r.spec.widths, row.l1, "width", size ? "mean |x|" : "mean change"));
  }
  if (!any_row) {
    chart.empty_note = fmt::format("no {} rows at step {}", coord_quantity_name(quantity), step);
  } else if (quantity == CoordQuantity::kChange && step == 0) {
    chart.empty_note = "nothing has changed at init (step 0): every change is 0";
  } else {
    chart.empty_note = "no finite, positive size at any width (overflowed or exactly 0)";
  }
  return line_chart_svg(chart);
}

}  // namespace

std::string coordcheck_width_chart_svg(const CoordCheckResult& r, int step) {
  return quantity_chart(r, step, CoordQuantity::kSize, "each op's output size");
}

std::string coordcheck_change_chart_svg(const CoordCheckResult& r, int step) {
  return quantity_chart(r, step, CoordQuantity::kChange, "each op's change since init");
}

std::string coordcheck_depth_chart_svg(const CoordCheckResult& r) {
  LineChart chart;
  chart.title =
      fmt::format("Coordinate check {} ({}): the final stream's size and change against depth",
                  r.name, parametrization_name(r.spec.parametrization));
  chart.x_label = axis_label("depth", r.spec.depths);
  chart.y_label = "log2 rms of the final stream (its size, its change since init)";
  for (const DepthRow& row : r.depth_rows) {
    if (!row.stream) continue;
    const bool size = row.quantity == CoordQuantity::kSize;
    chart.series.push_back(size_series(
        size ? fmt::format("size, step {}", row.step) : fmt::format("change, step {}", row.step),
        r.spec.depths, row.rms, "depth", size ? "rms" : "rms change"));
    // A step's change dashed in its size's colour.
    chart.series.back().dashed = !size;
    chart.series.back().colour = row.step;
  }
  chart.empty_note = r.depth_rows.empty()
                         ? "no depth check (run with several depths)"
                         : "no finite, positive rms at any depth (overflowed or exactly 0)";
  return line_chart_svg(chart);
}

}  // namespace gradscope
