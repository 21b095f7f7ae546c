// Dependency-free SVG charts from plain data (line charts, stacked histograms, phase diagrams) for
// gradscope's reports, sweeps and comparisons. Same input, same bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gradscope {

// Every chart is one <svg> document with a <title>, sized by its viewBox (width and height give
// its natural size in pixels; a page scales it to its column with CSS), with no scripts and no
// external resources. Each plotted datum carries its value as given (%.17g, so it reads back
// exactly) in data-* attributes:
//   line chart:  <g class="series" data-label="..."> holding one marker of class "point SHAPE"
//                (a <circle>, or a <path> for the other shapes; SHAPE is circle, square,
//                triangle, diamond, triangle-down or plus) with data-x="..." data-y="..." for
//                each finite point;
//   histograms:  <g class="row" data-position data-label data-lo data-hi> holding
//                <rect class="bar" data-count="..."> for each bin;
//   phase chart: <rect class="cell" data-sb2 data-sw2 data-phase> for each sample, and
//                <g class="critical-line"> holding <circle data-sb2 data-sw2> for each finite
//                critical sw2.
// Axis ticks are <g class="tick x"|"tick y" data-value="..."> (data-decade for log axes). The
// legend sits under the plot, <g class="legend-entry" data-label="SERIES LABEL"> per entry (class
// "legend-entry key" for a LegendKey), its text wrapped onto as many lines as it needs and never
// cut.

// Marker shapes. A series' style is a colour and a shape: kSeriesStyles series look different
// from each other before a style repeats.
enum class Marker : int { kCircle, kSquare, kTriangle, kDiamond, kTriangleDown, kPlus };
inline constexpr int kMarkerShapes = 6;
inline constexpr int kLineColours = 7;
inline constexpr int kSeriesStyles = kLineColours * kMarkerShapes;

struct Series {
  std::string label;
  std::vector<double> x, y;
  std::vector<double> y_low, y_high;  // an optional spread band (same size as x), empty when none
  bool dashed = false;
  // Index into the styles (colour, then shape); -1 takes the series' position. Lets a dashed
  // prediction share the style of the measurement it belongs to.
  int colour = -1;
  std::optional<Marker> marker;          // the style's shape unless set
  std::vector<Marker> point_markers;     // a shape per point (same size as x), empty when none
  std::vector<std::string> point_notes;  // a tooltip per point (same size as x), empty when none
  double line_width = 2.0;
  bool in_legend = true;  // false: a LegendKey on the chart explains it (a theory line, say)
};

// A legend entry in grey for what a style means rather than a series: "dashed: theory", or
// what a marker shape stands for.
struct LegendKey {
  std::string label;
  Marker marker = Marker::kCircle;
  bool dashed = false;
  bool hollow = false;
  bool line = true;  // false: the marker alone
};

// A point whose x or y is NaN or infinite is not drawn and breaks the line there.
// x and y (and a band, point_markers, point_notes when given) must have the same size
// (gradscope::Error, exit code 1 otherwise). Series of different styles and equal dashing that lie
// on top of each other (most points within 2 pixels) are all kept visible: the lower ones drawn
// wider, the markers of each set a little apart, and the legend says which coincide.
struct LineChart {
  std::string title, x_label, y_label;
  bool log10_y = false;  // y given as log10 values; ticks labelled 10^k
  std::vector<Series> series;
  std::vector<LegendKey> keys;  // after the series' entries
  // Shown in the plot area when no point can be drawn: the caller knows why (every value zero on
  // a log scale, or non-finite) and says it here.
  std::string empty_note = "no finite data";
  // Values the y axis reaches whatever the data (0 and 1 for a cosine), when there is data.
  std::vector<double> y_include;
};
std::string line_chart_svg(const LineChart& chart);

struct HistogramRow {
  double position;  // where the row sits in the stack (a layer index): rows are sorted by it
  std::string label;
  double lo, hi;  // the counts are equal bins from lo to hi
  std::vector<std::int64_t> counts;
};

// One small histogram per row, each scaled to its own peak, stacked top (lowest position) to
// bottom (a ridge plot). A bin more than 4 times as tall as the row's next tallest (ReLU's exact
// zeros) is cut at the row's top with a notch (class "bar cut"), and the row scaled to the next
// tallest, so the rest of the distribution stays in sight. The rows share an x axis over the union
// of their ranges unless the widest range is more than kHistogramOwnRangeRatio times the narrowest
// (an exploding stack: 1 at the input, 1e19 deep down, where a shared axis would leave most rows a
// line at 0): then each row spans its own min..max, printed beside it, and the axis title and
// caption say so. Beyond kHistogramStackMaxRows rows an evenly spaced subset is drawn (first and
// last kept), and a caption says so.
struct HistogramStack {
  std::string title, x_label, y_label;
  std::vector<HistogramRow> rows;
};
inline constexpr int kHistogramStackMaxRows = 60;
inline constexpr double kHistogramOwnRangeRatio = 100.0;
std::string histogram_stack_svg(const HistogramStack& stack);

// The mean-field phase diagram: x is sw2, y is sb2; a coloured cell per sample and the edge of
// chaos (critical_sw2 against sb2) as a line. phase must have sb2.size() rows of
// sw2_samples.size() entries, and critical_sw2 sb2.size() entries or none (gradscope::Error, exit
// code 1 otherwise). The x axis is logarithmic when every sw2 (samples and critical) is positive.
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
