// The comparison of two reports as text (a terminal, within 120 columns) and as Markdown (a pull
// request): the verdicts first, then the findings (those that moved, then those in both with
// their metric before -> after), then the layers that changed.
#include "gradscope/report/compare_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/report.hpp"
#include "report/text_format.hpp"

namespace gradscope {

namespace {

using namespace text_format;

constexpr std::size_t kLineWidth = 120;
// Deep stacks change at every layer: the table keeps the first and the last changed layers, as
// many as a reader scans, and the JSON output has them all.
constexpr std::size_t kHeadRows = 50;
constexpr std::size_t kTailRows = 50;

// ---- Shared by both formats.

std::string plural(std::size_t n, std::string_view word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

// "3, 7-9, 12" (the lists are sorted by compare_reports).
std::string index_ranges(const std::vector<int>& indices) {
  if (indices.empty()) return "none";
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < indices.size();) {
    std::size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    parts.push_back(j > i ? fmt::format("{}-{}", indices[i], indices[j])
                          : fmt::to_string(indices[i]));
    i = j + 1;
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

std::string ratio_text(double log10) {
  return fmt::format("{} (log10 {})", format_magnitude(magnitude_from_log10(log10)),
                     format_log10(log10));
}

// "0.01 in log10 grad rms, ...": what "unchanged" allows, after "within".
std::string tolerance_text() {
  return fmt::format("{:g} in log10 grad rms, {:g}% in act rms, {:g} points in dead % and sat %",
                     kCompareLog10GradTol, 100.0 * kCompareActRmsRelTol,
                     100.0 * kCompareFractionTol);
}

std::string architecture_text(const Comparison& c) {
  if (c.same_architecture) {
    return fmt::format("the same, {}",
                       plural(static_cast<std::size_t>(c.base_layer_count), "layer"));
  }
  return fmt::format(
      "different ({} in the base, {} in the proposed report): layers are compared by index, a "
      "kind that differs shown as base/proposed",
      plural(static_cast<std::size_t>(c.base_layer_count), "layer"),
      plural(static_cast<std::size_t>(c.proposed_layer_count), "layer"));
}

// "layer 3" or "whole network" (layer 0), as the Markdown report names a finding's place.
std::string where(int layer) {
  return layer == 0 ? std::string("whole network") : fmt::format("layer {}", layer);
}

// The same in a sentence, as the text report says it: "at layer 3", "in the whole network".
std::string at_where(int layer) {
  return layer == 0 ? std::string("in the whole network") : fmt::format("at layer {}", layer);
}

// Where a metric was measured: " at layer 46"; a whole-network value says nothing unless
// `say_whole` (the other side was measured at a layer).
std::string measured_at(int layer, bool say_whole) {
  if (layer != 0) return fmt::format(" at layer {}", layer);
  return say_whole ? std::string(" in the whole network") : std::string();
}

// ">= 0.25", what the value was tested against; empty for context evidence.
std::string threshold_text(const FindingMetric& m) {
  if (m.relation.empty()) return {};
  return fmt::format("{} {}", m.relation, format_number(m.threshold));
}

// One side's metric in full: "dead_fraction 0.441 at layer 46 (>= 0.25)".
std::string metric_text(const FindingMetric& m) {
  if (m.quantity.empty()) return "no evidence";
  std::string out = m.quantity + " " + format_number(m.value) + measured_at(m.layer, false);
  const std::string threshold = threshold_text(m);
  return threshold.empty() ? out : out + " (" + threshold + ")";
}

// A matched finding's metric before -> after, the layer and threshold said once where both sides
// agree: "dead_fraction 0.441 -> 0.375 at layer 46 (>= 0.25)". Empty where neither side has one.
std::string metric_change(const FindingMetric& b, const FindingMetric& p) {
  if (b.quantity.empty() && p.quantity.empty()) return {};
  if (b.quantity != p.quantity) return metric_text(b) + " -> " + metric_text(p);
  const bool moved = b.layer != p.layer;
  std::string out = fmt::format("{} {}{} -> {}{}", b.quantity, format_number(b.value),
                                moved ? measured_at(b.layer, true) : std::string(),
                                format_number(p.value), measured_at(p.layer, moved));
  const std::string before = threshold_text(b);
  const std::string after = threshold_text(p);
  if (before == after) return before.empty() ? out : out + " (" + after + ")";
  const auto shown = [](const std::string& t) { return t.empty() ? std::string("-") : t; };
  return out + " (" + shown(before) + " -> " + shown(after) + ")";
}

std::string kind_label(const LayerDelta& d) {
  if (d.base_kind == d.proposed_kind) return d.base_kind;
  const auto side = [](const std::string& k) { return k.empty() ? std::string("-") : k; };
  return side(d.base_kind) + "/" + side(d.proposed_kind);
}

std::size_t changed_count(const Comparison& c) {
  return static_cast<std::size_t>(std::count_if(c.layers.begin(), c.layers.end(),
                                                [](const LayerDelta& d) { return d.changed; }));
}

// The changed layers the table shows, in order; `elided` is how many it leaves out, after the
// first kHeadRows.
struct Rows {
  std::vector<const LayerDelta*> head, tail;
  std::size_t elided = 0;
};

Rows rows_to_show(const Comparison& c) {
  std::vector<const LayerDelta*> changed;
  for (const LayerDelta& d : c.layers) {
    if (d.changed) changed.push_back(&d);
  }
  Rows rows;
  if (changed.size() <= kHeadRows + kTailRows) {
    rows.head = changed;
    return rows;
  }
  rows.head.assign(changed.begin(), changed.begin() + kHeadRows);
  rows.tail.assign(changed.end() - kTailRows, changed.end());
  rows.elided = changed.size() - kHeadRows - kTailRows;
  return rows;
}

// One side's value of a layer: "-" where the report lacks the layer.
std::string side_value(bool present, const std::string& text) { return present ? text : "-"; }

// The cells of a row, after the index and the kind.
std::array<std::string, 9> value_cells(const LayerDelta& d) {
  const bool b = !d.base_kind.empty();
  const bool p = !d.proposed_kind.empty();
  const double delta = d.proposed_log10_grad - d.base_log10_grad;
  return {side_value(b, format_log10(d.base_log10_grad)),
          side_value(p, format_log10(d.proposed_log10_grad)),
          b && p && std::isfinite(delta) ? fmt::format("{:+.2f}", delta) : std::string(),
          side_value(b, format_number(d.base_act_rms)),
          side_value(p, format_number(d.proposed_act_rms)),
          side_value(b, format_percent(d.base_dead_fraction)),
          side_value(p, format_percent(d.proposed_dead_fraction)),
          side_value(b, format_percent(d.base_saturated_fraction)),
          side_value(p, format_percent(d.proposed_saturated_fraction))};
}

// ---- Text.

// Control characters from a report (a name, a path) would move the cursor: blanks instead.
std::string sanitize(std::string_view text) {
  std::string out;
  for (const char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    out += (u < 0x20 || u == 0x7F) ? ' ' : ch;
  }
  return out;
}

// Columns on a terminal: one per UTF-8 code point (the reports hold no wide characters).
std::size_t display_width(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char ch) {
    return (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  }));
}

// The first `columns` code points of `word`, as bytes.
std::size_t prefix_bytes(std::string_view word, std::size_t columns) {
  std::size_t cols = 0;
  for (std::size_t i = 0; i < word.size(); ++i) {
    if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80 && cols++ == columns) return i;
  }
  return word.size();
}

// Greedy word wrap to `width` columns; a word longer than a line (a long path) is cut.
std::vector<std::string> wrap(std::string_view text, std::size_t width) {
  std::vector<std::string> lines;
  std::string line;
  std::size_t line_w = 0;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = std::min(text.find(' ', at), text.size());
    std::string_view word = text.substr(at, end - at);
    at = end + 1;
    if (word.empty()) continue;
    if (line_w > 0 && line_w + 1 + display_width(word) > width) {
      lines.push_back(line);
      line.clear();
      line_w = 0;
    }
    while (display_width(word) > width) {
      const std::size_t cut = prefix_bytes(word, width);
      lines.emplace_back(word.substr(0, cut));
      word.remove_prefix(cut);
    }
    if (word.empty()) continue;
    if (line_w > 0) {
      line += ' ';
      ++line_w;
    }
    line += word;
    line_w += display_width(word);
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

// `text` wrapped within kLineWidth: the first line after `first`, the others after `rest`, both
// plain indents of the same width.
void append_wrapped(std::string& out, std::string_view first, std::string_view rest,
                    std::string_view text) {
  const std::vector<std::string> lines = wrap(sanitize(text), kLineWidth - display_width(rest));
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += std::string(i == 0 ? first : rest) + lines[i] + "\n";
  }
}

void append_text_findings(std::string& out, const Comparison& c) {
  if (c.appeared.empty() && c.disappeared.empty() && c.changed.empty() && c.persisted.empty()) {
    out += "\nfindings: no change\n";
    return;
  }
  out += "\nfindings\n";
  if (!c.appeared.empty()) out += fmt::format("  appeared ({})\n", c.appeared.size());
  for (const FindingChange& f : c.appeared) {
    out += fmt::format("    [{}] {} {}{}\n", f.proposed_severity, sanitize(f.code),
                       at_where(f.proposed_layer),
                       f.cause.empty() ? "" : " (a consequence of " + sanitize(f.cause) + ")");
    append_wrapped(out, "      ", "      ", f.explanation);
  }
  if (!c.disappeared.empty()) out += fmt::format("  disappeared ({})\n", c.disappeared.size());
  for (const FindingChange& f : c.disappeared) {
    out +=
        fmt::format("    [{}] {} {}\n", f.base_severity, sanitize(f.code), at_where(f.base_layer));
  }
  if (!c.changed.empty()) out += fmt::format("  changed ({})\n", c.changed.size());
  for (const FindingChange& f : c.changed) {
    std::string line =
        fmt::format("{}: {} {} -> {} {}", f.code, f.base_severity, at_where(f.base_layer),
                    f.proposed_severity, at_where(f.proposed_layer));
    const std::string metric = metric_change(f.base_metric, f.proposed_metric);
    if (!metric.empty()) line += "; " + metric;
    append_wrapped(out, "    ", "        ", line);
    append_wrapped(out, "      ", "      ", f.explanation);
  }
  if (!c.persisted.empty()) {
    out += fmt::format("  persisted ({}), same severity and layer\n", c.persisted.size());
  }
  for (const FindingChange& f : c.persisted) {
    std::string line =
        fmt::format("[{}] {} {}", f.proposed_severity, f.code, at_where(f.proposed_layer));
    const std::string metric = metric_change(f.base_metric, f.proposed_metric);
    if (!metric.empty()) line += ": " + metric;
    append_wrapped(out, "    ", "        ", line);
    append_wrapped(out, "      ", "      ", f.explanation);
  }
}

// Columns of the layer table, one space between the columns of a group and two between groups.
constexpr int kLayerW = 5;
constexpr int kLogW = 8;    // "-9999.99"
constexpr int kDeltaW = 7;  // "+999.99"
constexpr int kRmsW = 9;    // "-1.23e+04" and "proposed"
constexpr int kPctW = 8;    // "proposed"
static_assert(kLayerW + 2 + 21 + 2 + (kLogW + 1 + kLogW + 1 + kDeltaW) + 2 + (kRmsW * 2 + 1) + 2 +
                      (kPctW * 2 + 1) * 2 + 2 <=
                  static_cast<int>(kLineWidth),
              "the table with the widest kind label (activation/residual, and a margin) must fit");

std::string text_row(const std::string& layer, const std::string& kind, std::size_t kind_w,
                     const std::array<std::string, 9>& v) {
  std::string line = fmt::format(
      "{:>{}}  {:<{}}  {:>{}} {:>{}} {:>{}}  {:>{}} {:>{}}  {:>{}} {:>{}}  {:>{}} {:>{}}", layer,
      kLayerW, kind, kind_w, v[0], kLogW, v[1], kLogW, v[2], kDeltaW, v[3], kRmsW, v[4], kRmsW,
      v[5], kPctW, v[6], kPctW, v[7], kPctW, v[8], kPctW);
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line + "\n";
}

void append_text_layers(std::string& out, const Comparison& c) {
  const std::size_t changed = changed_count(c);
  const std::size_t unchanged = c.layers.size() - changed;
  std::string summary = fmt::format("layers: {} of {} changed", changed, c.layers.size());
  if (unchanged > 0)
    summary += fmt::format(" ({} unchanged, within {})", unchanged, tolerance_text());
  out += "\n";
  append_wrapped(out, "", "  ", summary);
  if (changed == 0) return;
  const Rows rows = rows_to_show(c);
  std::size_t kind_w = 4;
  for (const auto* list : {&rows.head, &rows.tail}) {
    for (const LayerDelta* d : *list) kind_w = std::max(kind_w, display_width(kind_label(*d)));
  }
  // Group headers centred over their columns.
  const int grad_w = kLogW + 1 + kLogW + 1 + kDeltaW;
  const int rms_w = 2 * kRmsW + 1;
  const int pct_w = 2 * kPctW + 1;
  std::string groups =
      fmt::format("{:{}}  {:{}}  {:^{}}  {:^{}}  {:^{}}  {:^{}}", "", kLayerW, "", kind_w,
                  "log10 grad rms", grad_w, "act rms", rms_w, "dead %", pct_w, "sat %", pct_w);
  while (!groups.empty() && groups.back() == ' ') groups.pop_back();
  out += groups + "\n";
  out += text_row(
      "layer", "kind", kind_w,
      {"base", "proposed", "delta", "base", "proposed", "base", "proposed", "base", "proposed"});
  for (const LayerDelta* d : rows.head) {
    out += text_row(fmt::to_string(d->index), sanitize(kind_label(*d)), kind_w, value_cells(*d));
  }
  if (rows.elided > 0) {
    out += fmt::format("{:>{}}  {} changed not shown (the JSON output has every layer)\n", "...",
                       kLayerW, plural(rows.elided, "layer"));
  }
  for (const LayerDelta* d : rows.tail) {
    out += text_row(fmt::to_string(d->index), sanitize(kind_label(*d)), kind_w, value_cells(*d));
  }
}

// ---- Markdown.

std::string md_row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const std::string& cell : cells) out += " " + cell + " |";
  return out + "\n";
}

std::string md_verdict_line(const Comparison& c) {
  std::string status = "no regression";
  if (c.no_change) status = "no change";
  if (c.regression) status = "**regression**";
  return fmt::format("**Verdict: {} -> {}** - {}\n", markdown_escape(c.base_verdict),
                     markdown_escape(c.proposed_verdict), status);
}

std::string md_sides_table(const Comparison& c) {
  std::string out = md_row({"", "base", "proposed"});
  out += "|:---|:---|:---|\n";
  out += md_row({"report", markdown_escape(c.base_path), markdown_escape(c.proposed_path)});
  out += md_row({"verdict", markdown_escape(c.base_verdict), markdown_escape(c.proposed_verdict)});
  out += md_row({"gradient rms, first / last layer", ratio_text(c.base_log10_ratio),
                 ratio_text(c.proposed_log10_ratio)});
  out += md_row(
      {"layers", fmt::to_string(c.base_layer_count), fmt::to_string(c.proposed_layer_count)});
  out += md_row({"non-finite layers", index_ranges(c.base_nonfinite_layers),
                 index_ranges(c.proposed_nonfinite_layers)});
  return out;
}

void append_md_findings(std::string& out, const Comparison& c) {
  out += "## Findings\n\n";
  if (c.appeared.empty() && c.disappeared.empty() && c.changed.empty() && c.persisted.empty()) {
    out += "No change.\n\n";
    return;
  }
  if (!c.appeared.empty()) {
    out += fmt::format("### Appeared ({})\n\n", c.appeared.size());
    for (const FindingChange& f : c.appeared) {
      out += fmt::format("- **{}** {} ({}{}): {}\n", markdown_escape(f.proposed_severity),
                         markdown_code(f.code), where(f.proposed_layer),
                         f.cause.empty() ? "" : ", a consequence of " + markdown_code(f.cause),
                         markdown_escape(f.explanation));
    }
    out += "\n";
  }
  if (!c.disappeared.empty()) {
    out += fmt::format("### Disappeared ({})\n\n", c.disappeared.size());
    for (const FindingChange& f : c.disappeared) {
      out += fmt::format("- **{}** {} ({})\n", markdown_escape(f.base_severity),
                         markdown_code(f.code), where(f.base_layer));
    }
    out += "\n";
  }
  if (!c.changed.empty()) {
    out += fmt::format("### Changed ({})\n\n", c.changed.size());
    for (const FindingChange& f : c.changed) {
      const std::string metric = metric_change(f.base_metric, f.proposed_metric);
      out += fmt::format("- {}: {} ({}) -> {} ({}){}: {}\n", markdown_code(f.code),
                         markdown_escape(f.base_severity), where(f.base_layer),
                         markdown_escape(f.proposed_severity), where(f.proposed_layer),
                         metric.empty() ? std::string() : "; " + markdown_escape(metric),
                         markdown_escape(f.explanation));
    }
    out += "\n";
  }
  if (!c.persisted.empty()) {
    out += fmt::format("### Persisted ({}), same severity and layer\n\n", c.persisted.size());
    for (const FindingChange& f : c.persisted) {
      const std::string metric = metric_change(f.base_metric, f.proposed_metric);
      out += fmt::format("- **{}** {} ({}){}: {}\n", markdown_escape(f.proposed_severity),
                         markdown_code(f.code), where(f.proposed_layer),
                         metric.empty() ? std::string() : ", " + markdown_escape(metric),
                         markdown_escape(f.explanation));
    }
    out += "\n";
  }
}

void append_md_layers(std::string& out, const Comparison& c) {
  const std::size_t changed = changed_count(c);
  const std::size_t unchanged = c.layers.size() - changed;
  out += "## Layers\n\n";
  // GitHub renders Markdown inside <details> only with blank lines around it.
  out += fmt::format("<details><summary>{} of {} changed</summary>\n\n", changed,
                     plural(c.layers.size(), "layer"));
  if (changed > 0) {
    out += md_row({"layer", "kind", "log10 grad rms: base", "proposed", "delta", "act rms: base",
                   "proposed", "dead %: base", "proposed", "sat %: base", "proposed"});
    out += "|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    const Rows rows = rows_to_show(c);
    const auto row = [&](const LayerDelta& d) {
      std::vector<std::string> cells = {fmt::to_string(d.index), markdown_escape(kind_label(d))};
      for (const std::string& v : value_cells(d)) cells.push_back(v);
      out += md_row(cells);
    };
    for (const LayerDelta* d : rows.head) row(*d);
    if (rows.elided > 0) {
      std::vector<std::string> cells(11);
      cells[0] = "...";
      cells[1] = fmt::format("*{} not shown*", plural(rows.elided, "layer"));
      out += md_row(cells);
    }
    for (const LayerDelta* d : rows.tail) row(*d);
    out += "\n";
  }
  if (unchanged > 0) {
    out +=
        fmt::format("{} unchanged, within {}.\n\n", plural(unchanged, "layer"), tolerance_text());
  }
  out += "</details>\n";
}

}  // namespace

std::string comparison_to_text(const Comparison& c) {
  std::string out = "gradscope compare\n";
  append_wrapped(out, "", "  ", fmt::format("base: {} ({})", c.base_name, c.base_path));
  append_wrapped(out, "", "  ", fmt::format("proposed: {} ({})", c.proposed_name, c.proposed_path));
  out += fmt::format("verdict: {} -> {}\n", c.base_verdict, c.proposed_verdict);
  out += fmt::format("gradient rms, first / last layer: {} -> {}\n", ratio_text(c.base_log10_ratio),
                     ratio_text(c.proposed_log10_ratio));
  append_wrapped(out, "", "  ", "architecture: " + architecture_text(c));
  if (c.base_nonfinite_layers != c.proposed_nonfinite_layers) {
    out += fmt::format("non-finite layers: {} -> {}\n", index_ranges(c.base_nonfinite_layers),
                       index_ranges(c.proposed_nonfinite_layers));
  }
  if (c.no_change) {
    append_wrapped(out, "", "  ", "no change: the two reports agree within " + tolerance_text());
    return out;
  }
  if (c.regression) {
    out += "regression: yes\n";
    for (const std::string& reason : c.regression_reasons)
      append_wrapped(out, "  - ", "    ", reason);
  } else {
    out += "regression: no\n";
  }
  append_text_findings(out, c);
  append_text_layers(out, c);
  return out;
}

std::string comparison_to_markdown(const Comparison& c) {
  std::string out = fmt::format("# gradscope compare: {} -> {}\n\n", markdown_escape(c.base_name),
                                markdown_escape(c.proposed_name));
  out += md_verdict_line(c) + "\n";
  out += md_sides_table(c) + "\n";
  out += fmt::format("Architecture: {}.\n\n", markdown_escape(architecture_text(c)));
  if (c.no_change) {
    out += fmt::format("No change: the two reports agree within {}.\n", tolerance_text());
    return out;
  }
  if (c.regression) {
    out += "## Regression\n\n";
    for (const std::string& reason : c.regression_reasons)
      out += "- " + markdown_escape(reason) + "\n";
    out += "\n";
  }
  append_md_findings(out, c);
  append_md_layers(out, c);
  return out;
}

}  // namespace gradscope
