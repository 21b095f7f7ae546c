// The signal-propagation plot's rows, table and chart (signal_propagation.hpp), and the text
// report's block of it.
#include "report/signal_propagation.hpp"

#include <fmt/format.h>

#include <cmath>
#include <string>
#include <utility>

#include "gradscope/report/svg.hpp"
#include "report/report_text_detail.hpp"
#include "report/text_format.hpp"

namespace gradscope::signal_propagation {

using text_format::magnitude_cell;

Rows rows(const Report& r) {
  Rows out;
  for (const LayerReport& l : r.layers) {
    if (l.kind == OpKind::kResidualEnd && l.forward.has_branch_var) out.ops.push_back(&l);
  }
  out.per_block = !out.ops.empty();
  if (out.per_block) return out;
  for (const LayerReport& l : r.layers) {
    if (l.forward.has_channels) out.ops.push_back(&l);
  }
  return out;
}

std::string shape_text(const ImageShape& image) {
  return fmt::format("{} x {} x {}", image.channels, image.height, image.width);
}

namespace {

constexpr std::string_view kDefinitions =
    "mean^2: (1/C) sum_c mu_c^2 and var: (1/C) sum_c sigma_c^2, with mu_c and sigma_c^2 the mean "
    "and variance of channel c over the examples and positions";
constexpr std::string_view kBranchDefinition =
    "; branch var: the same variance of the residual branch's output F(x), before its scale and "
    "the skip are added";

std::string definitions(const Rows& rows) {
  return std::string(kDefinitions) + (rows.per_block ? std::string(kBranchDefinition) : "");
}

// The channels left out of the moments (non-finite) and the channels that are exactly zero (a
// ReLU convolution's dead filters).
std::string channel_note(const LayerReport& l) {
  std::string note;
  if (l.forward.channels_nonfinite > 0) {
    note =
        fmt::format("{} of {} channels non-finite", l.forward.channels_nonfinite, l.image.channels);
  }
  if (l.forward.zero_channels > 0) {
    note += fmt::format("{}{} of {} channels all zero", note.empty() ? "" : "; ",
                        l.forward.zero_channels, l.image.channels);
  }
  return note;
}

std::string row_name(const Rows& rows, std::size_t i) {
  return rows.per_block ? fmt::format("{}", i + 1) : text_format::op_label(*rows.ops[i]);
}

}  // namespace

std::string markdown(const Report& r) {
  const Rows rs = rows(r);
  if (rs.ops.empty()) return "";
  std::string out = "## Signal propagation\n\n";
  out += rs.per_block ? "One row per residual block, at its output (after the skip is added).\n\n"
                      : "One row per op with an image output (the network has no residual "
                        "blocks).\n\n";
  out += rs.per_block
             ? "| block | layer | shape | mean^2 | var | branch var | note |\n"
               "|---:|---:|---|---:|---:|---:|---|\n"
             : "| op | layer | shape | mean^2 | var | note |\n|---|---:|---|---:|---:|---|\n";
  for (std::size_t i = 0; i < rs.ops.size(); ++i) {
    const LayerReport& l = *rs.ops[i];
    const ForwardStats& f = l.forward;
    std::string row =
        fmt::format("| {} | {} | {} | {} | {} |", row_name(rs, i), l.index, shape_text(l.image),
                    magnitude_cell(f.channel_mean_sq), magnitude_cell(f.channel_var));
    if (rs.per_block) row += fmt::format(" {} |", magnitude_cell(f.branch_var));
    out += row + fmt::format(" {} |\n", channel_note(l));
  }
  out += fmt::format("\n{}.\n\n", definitions(rs));
  return out;
}

std::string html_table(const Report& r) {
  const Rows rs = rows(r);
  if (rs.ops.empty()) return "";
  std::string out = rs.per_block
                        ? "<table><tr><th>block</th><th>layer</th><th class=\"l\">shape</th>"
                          "<th>mean^2</th><th>var</th><th>branch var</th><th class=\"l\">note</th>"
                          "</tr>\n"
                        : "<table><tr><th class=\"l\">op</th><th>layer</th><th class=\"l\">shape"
                          "</th><th>mean^2</th><th>var</th><th class=\"l\">note</th></tr>\n";
  for (std::size_t i = 0; i < rs.ops.size(); ++i) {
    const LayerReport& l = *rs.ops[i];
    const ForwardStats& f = l.forward;
    out += fmt::format("<tr><td{}>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>",
                       rs.per_block ? "" : " class=\"l\"", text_format::xml_escape(row_name(rs, i)),
                       l.index, shape_text(l.image), magnitude_cell(f.channel_mean_sq),
                       magnitude_cell(f.channel_var));
    if (rs.per_block) out += fmt::format("<td>{}</td>", magnitude_cell(f.branch_var));
    out += fmt::format("<td class=\"l\">{}</td></tr>\n", channel_note(l));
  }
  out += fmt::format("</table>\n<p class=\"muted\">{}.</p>\n",
                     text_format::xml_escape(definitions(rs)));
  return out;
}

std::string svg(const Report& r) {
  const Rows rs = rows(r);
  LineChart chart;
  chart.title = fmt::format("Signal propagation: {}", r.spec.name);
  chart.x_label = rs.per_block ? "residual block (input side first)" : "layer (input side first)";
  chart.y_label = "per-channel moment";
  chart.log10_y = true;
  Series mean_sq;
  mean_sq.label = "average squared channel mean";
  mean_sq.colour = 0;
  mean_sq.marker = Marker::kCircle;
  Series var;
  var.label = "average channel variance";
  var.colour = 1;
  var.marker = Marker::kSquare;
  Series branch;
  branch.label = "residual branch: average channel variance";
  branch.colour = 2;
  branch.dashed = true;
  branch.marker = Marker::kTriangle;
  for (std::size_t i = 0; i < rs.ops.size(); ++i) {
    const LayerReport& l = *rs.ops[i];
    const double x = rs.per_block ? static_cast<double>(i + 1) : static_cast<double>(l.index);
    const std::string where = rs.per_block
                                  ? fmt::format("block {} (layer {})", i + 1, l.index)
                                  : fmt::format("layer {}: {}", l.index, text_format::op_label(l));
    const auto add = [&](Series& s, const Magnitude& m, std::string_view what) {
      s.x.push_back(x);
      s.y.push_back(m.log10);
      s.point_notes.push_back(fmt::format("{}, {}: {}", where, what, magnitude_cell(m)));
    };
    add(mean_sq, l.forward.channel_mean_sq, "squared channel mean");
    add(var, l.forward.channel_var, "channel variance");
    if (rs.per_block) add(branch, l.forward.branch_var, "branch variance");
  }
  chart.series.push_back(std::move(mean_sq));
  chart.series.push_back(std::move(var));
  if (rs.per_block) chart.series.push_back(std::move(branch));
  chart.empty_note = "no image op has finite channel moments";
  return line_chart_svg(chart);
}

}  // namespace gradscope::signal_propagation

namespace gradscope::report_text_detail {

std::string signal_propagation_block(const Report& r, int max_rows, const Painter& paint) {
  using signal_propagation::Rows;
  using text_format::magnitude_cell;
  const Rows rs = signal_propagation::rows(r);
  if (rs.ops.empty()) return "";
  constexpr int kRowW = 12;
  constexpr int kShapeW = 16;
  constexpr int kValueW = 10;
  std::string out;
  append_line(out,
              paint(rs.per_block ? fmt::format("signal propagation ({} residual blocks, at "
                                               "each block's output)",
                                               rs.ops.size())
                                 : fmt::format("signal propagation ({} image ops)", rs.ops.size()),
                    kBold));
  std::string head =
      fmt::format("{:<{}} {:>{}} {:<{}} {:>{}} {:>{}}", rs.per_block ? "block" : "op", kRowW,
                  "layer", kLayerW, "shape", kShapeW, "mean^2", kValueW, "var", kValueW);
  if (rs.per_block) head += fmt::format(" {:>{}}", "branch var", kValueW);
  append_line(out, paint(head, kBold));
  // The first and the last always show; the others by the elision rule's budget.
  std::vector<RowFlag> flags(rs.ops.size());
  flags.front().mandatory = true;
  flags.back().mandatory = true;
  for (std::size_t i = 0; i < rs.ops.size(); ++i) {
    flags[i].nonfinite = rs.ops[i]->forward.channels_nonfinite > 0;
    flags[i].mandatory = flags[i].mandatory || flags[i].nonfinite;
  }
  const std::vector<bool> keep = select_rows(flags, max_rows);
  append_rows(
      out, keep, paint,
      [&](std::size_t i) {
        const LayerReport& l = *rs.ops[i];
        const ForwardStats& f = l.forward;
        std::string row = fmt::format(
            "{:<{}} {:>{}} {:<{}} {:>{}} {:>{}}", cell(signal_propagation::row_name(rs, i), kRowW),
            kRowW, l.index, kLayerW, signal_propagation::shape_text(l.image), kShapeW,
            magnitude_cell(f.channel_mean_sq), kValueW, magnitude_cell(f.channel_var), kValueW);
        if (rs.per_block) row += fmt::format(" {:>{}}", magnitude_cell(f.branch_var), kValueW);
        if (f.channels_nonfinite > 0 || f.zero_channels > 0) {
          row += "  " + paint(signal_propagation::channel_note(l),
                              f.channels_nonfinite > 0 ? kRed : kYellow);
        }
        return row;
      },
      rs.per_block ? "block" : "op");
  for (const std::string& line : wrap(signal_propagation::definitions(rs) + ".", kLineWidth)) {
    append_line(out, line);
  }
  return out;
}

}  // namespace gradscope::report_text_detail
