// Dependency-free SVG charts from plain data (line charts, stacked histograms, phase diagrams) for
// gradscope's reports, sweeps and comparisons. Same input, same bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gradscope {

// Every chart is one <svg> document with a <title>, sized by its viewBox, with no scripts and no
// external resources. Each plotted datum carries its value as given (%.17g, so it reads back
// exactly) in data-* attributes:
//   line chart:  <g class="series" data-label="..."> holding <circle data-x="..." data-y="...">
//                for each finite point;
//   histograms:  <g class="row" data-position data-label data-lo data-hi> holding
//                <rect class="bar" data-count="..."> for each bin;
//   phase chart: <rect class="cell" data-sb2 data-sw2 data-phase> for each sample, and
//                <g class="critical-line"> holding <circle data-sb2 data-sw2> for each finite
//                critical sw2.
// Axis ticks are <g class="tick x"|"tick y" data-value="..."> (data-decade for log axes).

struct Series {
  std::string label;
  std::vector<double> x, y;
  std::vector<double> y_low, y_high;  // an optional spread band (same size as x), empty when none
  bool dashed = false;
  // Index into the palette; -1 takes the series' position. Lets a dashed prediction share the
  // colour of the measurement it belongs to.
  int colour = -1;
};

// A point whose x or y is NaN or infinite is not drawn and breaks the line there.
// x and y must have the same size (std::invalid_argument otherwise).
struct LineChart {
  std::string title, x_label, y_label;
  bool log10_y = false;  // y given as log10 values; ticks labelled 10^k
  std::vector<Series> series;
};
std::string line_chart_svg(const LineChart& chart);

struct HistogramRow {
  double position;  // where the row sits in the stack (a layer index): rows are sorted by it
  std::string label;
  double lo, hi;  // the counts are equal bins from lo to hi
  std::vector<std::int64_t> counts;
};

// One small histogram per row, each scaled to its own peak, stacked top (lowest position) to
// bottom on a shared x axis over the union of the rows' ranges (a ridge plot). Beyond
// kHistogramStackMaxRows rows an evenly spaced subset is drawn (first and last kept), and a
// caption says so.
struct HistogramStack {
  std::string title, x_label, y_label;
  std::vector<HistogramRow> rows;
};
inline constexpr int kHistogramStackMaxRows = 60;
std::string histogram_stack_svg(const HistogramStack& stack);

// The mean-field phase diagram: x is sw2, y is sb2; a coloured cell per sample and the edge of
// chaos (critical_sw2 against sb2) as a line. phase must have sb2.size() rows of
// sw2_samples.size() entries, and critical_sw2 sb2.size() entries or none (std::invalid_argument
// otherwise). The x axis is logarithmic when every sw2 (samples and critical) is positive.
struct PhaseChart {
  std::string title;
  std::vector<double> sb2;
  std::vector<double> sw2_samples;
  // [sb2 row][sw2 col]: "ordered", "critical", "chaotic", "unbounded"
  std::vector<std::vector<std::string>> phase;
  std::vector<double> critical_sw2;  // per sb2 row, NaN when none
};
std::string phase_chart_svg(const PhaseChart& chart);

}  // namespace gradscope
