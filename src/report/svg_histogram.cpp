// The SVG stacked histograms: one row of bars per position, each scaled to its own peak, a spike
// cut at the top, and rows over their own ranges when one shared axis cannot hold them all.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/report/svg.hpp"
#include "report/svg_detail.hpp"
#include "report/text_format.hpp"

namespace gradscope {

namespace {

using namespace svg_detail;
using namespace text_format;

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

bool drawable(const HistogramRow& row) {
  return !row.counts.empty() && std::isfinite(row.lo) && std::isfinite(row.hi) && row.lo <= row.hi;
}

// The rows drawn, by position (equal positions keep their order); beyond the limit, an even
// subset that keeps the first and the last row. `total` counts them all.
struct RowOrder {
  std::vector<std::size_t> order;
  std::size_t total = 0;
};

RowOrder row_order(const HistogramStack& stack) {
  std::vector<std::size_t> order(stack.rows.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return stack.rows[a].position < stack.rows[b].position;
  });
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
  return {order, total};
}

// The drawn rows' values together: their range, and whether they need ranges of their own.
struct StackRange {
  double lo = 0.0, hi = 0.0;
  double narrowest = 0.0, widest = 0.0;
  bool own_range = false;
  bool straddles_zero = false;  // some row has values on both sides of 0
};

StackRange stack_range(const HistogramStack& stack, const std::vector<std::size_t>& order) {
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
  bool straddles_zero = false;
  for (const std::size_t i : order) {
    const HistogramRow& row = stack.rows[i];
    straddles_zero = straddles_zero || (drawable(row) && row.lo < 0.0 && row.hi > 0.0);
  }
  return {lo, hi, narrowest, widest, own_range, straddles_zero};
}

// What the reader needs to know to read the rows: how they are scaled, cut and spanned.
std::string stack_caption(const HistogramStack& stack, const RowOrder& rows,
                          const StackRange& range) {
  const std::vector<std::size_t>& order = rows.order;
  const std::size_t n = order.size();
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
  if (range.own_range) {
    caption += fmt::format(
        " Each row spans its own range, from its smallest value (left) to its largest (right), "
        "given beside it{}. The rows' ranges differ {}-fold, too much for one shared axis.",
        range.straddles_zero ? "; a dotted line marks 0" : "",
        compact_number(range.widest / range.narrowest));
  }
  if (rows.total > n) {
    caption =
        fmt::format("Showing {} of {} rows, evenly spaced (first and last kept). ", n, rows.total) +
        caption;
  }
  if (n == 0) caption = "No rows.";
  return caption;
}

// Where a value of this row lands: on the shared axis, or across the frame from lo to hi.
double row_x(const Frame& f, const HistogramRow& row, bool own_range, double v) {
  if (!own_range) return f.to_x(v);
  if (!(row.hi > row.lo)) return (f.left + f.right) / 2.0;
  return f.left + half_span(row.lo, v) / half_span(row.lo, row.hi) * (f.right - f.left);
}

// A row's bars, from `base` up to 90% of the pitch at its peak; a spike is cut and notched.
void draw_bars(Svg& svg, const Frame& f, const HistogramRow& row, bool own_range, double base,
               double pitch) {
  const auto to_x = [&](double v) { return row_x(f, row, own_range, v); };
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
    const double h = cut_here ? bar_room
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
}

// Row r of n: its stripe, label, base line, own range and zero line where it has them, its bars.
void draw_row(Svg& svg, const Frame& f, const HistogramRow& row, std::size_t r, std::size_t n,
              double pitch, bool own_range) {
  // Labels of every row when they fit, else of every k-th (the first and the last always).
  const auto label_every = static_cast<std::size_t>(std::ceil(12.0 / pitch));
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
    return;
  }
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
          px(row_x(f, row, own_range, 0.0)), px(top), px(base)));
    }
  }
  draw_bars(svg, f, row, own_range, base, pitch);
  svg.raw("</g>\n");
}

}  // namespace

std::string histogram_stack_svg(const HistogramStack& stack) {
  const RowOrder rows = row_order(stack);
  const std::vector<std::size_t>& order = rows.order;
  const std::size_t n = order.size();
  const StackRange range = stack_range(stack, order);
  const bool own_range = range.own_range;

  // Rows get a pitch between 10 and 36 pixels; the chart grows with their number. Rows over their
  // own ranges print them in a column at the right.
  const double pitch = n == 0 ? 36.0 : std::clamp(320.0 / static_cast<double>(n), 10.0, 36.0);
  Frame f{170.0, 48.0, kWidth - (own_range ? 150.0 : 24.0),
          48.0 + pitch * static_cast<double>(std::max<std::size_t>(n, 1))};
  if (!own_range) f.x = linear_axis(range.lo, range.hi, 7.0, false, true);
  f.y.lo = 0.0;
  f.y.hi = 1.0;

  const std::vector<std::string> caption_lines =
      wrap_text(stack_caption(stack, rows, range), kWidth - 32.0, 11.0);
  const double caption_top = f.bottom + 62.0;
  const double height = caption_top + 14.0 * static_cast<double>(caption_lines.size()) + 2.0;

  Svg svg(kWidth, height, stack.title);
  draw_axes(
      svg, f,
      own_range ? std::string(stack.x_label) + " (each row over its own range)" : stack.x_label,
      stack.y_label, false);

  svg.raw("<g class=\"rows\" shape-rendering=\"crispEdges\">\n");
  for (std::size_t r = 0; r < n; ++r)
    draw_row(svg, f, stack.rows[order[r]], r, n, pitch, own_range);
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

}  // namespace gradscope
