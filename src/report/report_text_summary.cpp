// The text report's theory table (mean-field predictions beside measurements), its summary of the
// run, and the input-output Jacobian's singular values.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/report/report_text.hpp"
#include "report/criticality_text.hpp"
#include "report/report_text_detail.hpp"
#include "report/text_format.hpp"

namespace gradscope::report_text_detail {

namespace {

using namespace text_format;

// Practitioners' rule of thumb for one optimizer step: ||dW|| / ||W|| around 1e-3 (much lower
// learns slowly, much higher is unstable).
constexpr std::string_view kUpdateRuleOfThumb = "rule of thumb ~1e-3";

// "3, 5-8, 12": sorted 1-based indices as ranges.
std::string index_ranges(std::vector<int> indices) {
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < indices.size();) {
    std::size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    parts.push_back(j == i ? std::to_string(indices[i])
                           : fmt::format("{}-{}", indices[i], indices[j]));
    i = j + 1;
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

// A ratio in scientific notation, to compare at a glance with the 1e-3 rule of thumb.
std::string format_ratio(const Magnitude& m) {
  if (std::isnormal(m.value)) return fmt::format("{:.2e}", m.value);
  return format_magnitude(m);
}

// "min 2.10e-04, median 1.02e-03, max 3.16e-03 (rule of thumb ~1e-3)" over the dense layers'
// update-to-weight ratios; the median of an even count is the geometric mean of the middle two.
std::string update_summary(const std::vector<LayerReport>& layers) {
  std::vector<double> log10s;
  std::size_t undefined = 0;
  for (const LayerReport& l : layers) {
    if (l.kind != OpKind::kDense || !l.backward.has_update) continue;
    const double v = l.backward.update_to_weight.log10;
    if (std::isnan(v)) {
      ++undefined;
    } else {
      log10s.push_back(v);
    }
  }
  std::string out;
  if (log10s.empty()) {
    out = "no dense layer with a defined ratio";
  } else {
    const auto [lo, hi] = std::minmax_element(log10s.begin(), log10s.end());
    out = fmt::format("min {}, median {}, max {}", format_ratio(magnitude_from_log10(*lo)),
                      format_ratio(magnitude_from_log10(median(log10s))),
                      format_ratio(magnitude_from_log10(*hi)));
  }
  if (undefined > 0) out += fmt::format("; {} nan", undefined);
  return fmt::format("{} ({})", out, kUpdateRuleOfThumb);
}

// The second table: each kept layer's mean-field predictions beside what was measured. Columns
// are right-aligned under their headers, two blanks apart; the note needs no blank before it.
constexpr std::string_view kTheoryTitle = "mean-field theory beside measurement";
constexpr std::string_view kBeyondNote = "beyond 3 spreads";
struct TheoryTableColumn {
  std::string_view head;
  int width;
};
// The q columns reach "1.23e+300"; dev reaches "-999.9s" (fewer decimals beyond).
constexpr TheoryTableColumn kTheoryColumns[] = {
    {"layer", kLayerW}, {"q measured", 10},      {"q theory", 9},       {"dev", 8},
    {"chi theory", 10}, {"gain^2 measured", 15}, {"corr measured", 13}, {"corr theory", 11}};
constexpr int theory_table_width() {
  int w = 0;
  for (const TheoryTableColumn& c : kTheoryColumns) w += c.width + 2;
  return w + static_cast<int>(kBeyondNote.size());
}
static_assert(theory_table_width() <= static_cast<int>(kLineWidth),
              "the theory table with its note must fit 120 columns");

// A magnitude squared, from its log10 where the square leaves double's normal range.
Magnitude squared(const Magnitude& m) {
  const double v = m.value * m.value;
  if (std::isnormal(m.value) && std::isnormal(v)) return {v, 2.0 * m.log10};
  return magnitude_from_log10(2.0 * m.log10);
}

// ln(measured / predicted) in units of its expected spread: "+0.4s", one decimal, fewer when the
// column is too narrow for it.
std::string spreads_cell(double deviation, double spread, int width) {
  const double s = deviation / spread;
  if (!std::isfinite(s)) return undefined_or_nonfinite(s);
  std::string out = fmt::format("{:+.1f}s", s);
  // A sign below the shown resolution says nothing.
  if (out == "+0.0s" || out == "-0.0s") return "0.0s";
  if (out.size() > static_cast<std::size_t>(width)) out = fmt::format("{:+.0f}s", s);
  return cell(out, width);
}

std::string theory_table_row(const LayerReport& l, const Painter& paint) {
  const LayerTheory& t = l.theory;
  const ForwardStats& f = l.forward;
  // q measured is the preact's second moment; over no finite entries there is none.
  const std::string q_measured =
      f.preact.finite == 0 ? "n/a"
                           : format_magnitude(squared(magnitude_from_scaled(f.preact.rms, 0)));
  // Blank where there is no prediction: a number there would be made up.
  const std::string cells[] = {
      std::to_string(l.index),
      q_measured,
      t.forward ? format_number(t.q) : "",
      t.forward ? spreads_cell(t.log_q_deviation, t.log_q_spread, kTheoryColumns[3].width) : "",
      t.backward ? format_number(t.grad_factor) : "",
      magnitude_cell(squared(l.backward.gain)),
      undefined_or_nonfinite_number(f.correlation),
      t.forward ? format_number(t.correlation) : ""};
  static_assert(std::size(cells) == std::size(kTheoryColumns));
  std::string out;
  for (std::size_t c = 0; c < std::size(cells); ++c) {
    const int w = kTheoryColumns[c].width;
    out += fmt::format("{}{:>{}}", c == 0 ? "" : "  ", cell(cells[c], w), w);
  }
  if (t.flagged) out += fmt::format("  {}", kBeyondNote);
  out.erase(out.find_last_not_of(' ') + 1);
  return paint(out, t.flagged ? kYellow : std::string_view{});
}

}  // namespace

std::string theory_table_block(const Report& r, const RowSelection& rows, const Painter& paint) {
  std::string out;
  if (r.layers.empty()) return out;
  const bool any = std::any_of(r.layers.begin(), r.layers.end(), [](const LayerReport& l) {
    return l.theory.forward || l.theory.backward;
  });
  if (!any) {
    // The engine's reason at the first layer is where the prediction stopped, and so why no
    // layer has one.
    const std::string& reason = r.layers.front().theory.reason;
    const std::string text = reason.empty() ? "no layer has a prediction" : sanitize(reason);
    const std::string title = fmt::format("{}:", kTheoryTitle);
    append_line(out, paint(title, kBold) + fit(" " + text, kLineWidth - display_width(title)));
    return out;
  }
  append_line(out, paint(std::string(kTheoryTitle), kBold));
  std::string head;
  for (const TheoryTableColumn& c : kTheoryColumns) {
    head += fmt::format("{}{:>{}}", head.empty() ? "" : "  ", c.head, c.width);
  }
  append_line(out, paint(head, kBold));
  append_rows(out, rows.keep, paint,
              [&](std::size_t i) { return theory_table_row(r.layers[i], paint); });
  append_line(out, fit("q: E[h^2] per pre-activation unit; dev: ln(q measured / q theory) in "
                       "expected spreads (from finite width)",
                       kLineWidth));
  append_line(out, fit("chi: predicted E[g^2] over the next layer's (the output's for the last); "
                       "gain^2: its measurement; blank: not predicted",
                       kLineWidth));
  bool shown_flagged = false;
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    shown_flagged = shown_flagged || (rows.keep[i] && r.layers[i].theory.flagged);
  }
  if (shown_flagged) {
    append_line(out,
                fit("beyond 3 spreads: the measured q, or the gradient rms of the table above, "
                    "is beyond 3 expected spreads of the prediction",
                    kLineWidth));
  }
  return out;
}

namespace {

// How the run compares with the mean-field prediction, over the layers that have one.
std::string theory_summary(const Report& r) {
  const std::vector<int>& flagged = r.summary.theory_flagged_layers;
  const auto predicted = std::count_if(r.layers.begin(), r.layers.end(), [](const LayerReport& l) {
    return l.theory.forward || l.theory.backward;
  });
  if (!flagged.empty()) {
    const bool one = flagged.size() == 1;
    return fmt::format("{} layer{} beyond 3 spreads of the mean-field prediction (layer{} {})",
                       flagged.size(), one ? "" : "s", one ? "" : "s", index_ranges(flagged));
  }
  if (predicted == 0) return "no layer has a mean-field prediction";
  std::string out = "every predicted layer within 3 spreads";
  if (static_cast<std::size_t>(predicted) < r.layers.size()) {
    out += fmt::format(" ({} of {} layers predicted)", predicted, r.layers.size());
  }
  return out;
}

// Why the first-to-last gradient ratio is undefined: no finite gradient at an end, or 0 / 0.
std::string undefined_ratio_words(const Report& r) {
  const Magnitude& first = r.layers.front().backward.grad_preact_rms;
  const Magnitude& last = r.layers.back().backward.grad_preact_rms;
  if (first.value == 0.0 && last.value == 0.0) {
    return "n/a (0 / 0: the gradient is exactly zero at the first and the last layer)";
  }
  return "n/a (the first or the last layer has no finite gradient)";
}

}  // namespace

std::string summary_block(const Report& r, const Painter& paint) {
  const Summary& s = r.summary;
  std::string out;
  append_line(out, paint("summary", kBold));
  constexpr std::size_t kKeyW = 40;  // two spaces of indent and the key
  // The value is fitted before it is painted, so colour codes never count towards the width.
  const auto row = [&](std::string_view key, const std::string& value, std::string_view code = {}) {
    append_line(out, fmt::format("  {:<{}}{}", key, kKeyW - 2,
                                 paint(fit(value, kLineWidth - kKeyW), code)));
  };
  const Magnitude ratio = magnitude_from_log10(s.log10_grad_ratio_first_to_last);
  const bool undefined = std::isnan(s.log10_grad_ratio_first_to_last);
  row("log10 grad rms, first / last layer",
      std::isfinite(s.log10_grad_ratio_first_to_last)
          ? fmt::format("{:.2f}  (the first layer's gradient is {} x the last's)",
                        s.log10_grad_ratio_first_to_last, format_magnitude(ratio))
      : undefined ? undefined_ratio_words(r)
                  : format_log10(s.log10_grad_ratio_first_to_last));
  if (const double pooling = pooling_gradient_log10_share(r); pooling != 0.0 && !undefined) {
    row("  of which pooling's geometry",
        fmt::format(
            "{:.2f}  (max pool 2x2 halves the per-entry rms; findings judge the rest, {:.2f})",
            pooling, s.log10_grad_ratio_first_to_last - pooling));
  }
  row("mean per-layer gain",
      undefined
          ? std::string("n/a")
          : fmt::format("log10 {}, factor {}",
                        std::isfinite(s.mean_log10_gain) ? fmt::format("{:.4f}", s.mean_log10_gain)
                                                         : nonfinite_name(s.mean_log10_gain),
                        format_magnitude(magnitude_from_log10(s.mean_log10_gain))));
  row("output gradient rms (dL/dy)", format_magnitude(r.output_grad_rms));
  if (r.spec.loss.kind != LossKind::kProbe) {
    row(fmt::format("loss ({})", loss_name(r.spec.loss.kind)),
        std::isfinite(r.loss) ? fmt::format("{:.6g}", r.loss) : nonfinite_name(r.loss),
        std::isfinite(r.loss) ? std::string_view{} : kRed);
  }
  if (std::any_of(r.layers.begin(), r.layers.end(),
                  [](const LayerReport& l) { return l.backward.has_update; })) {
    row("update / weight, dense layers", update_summary(r.layers));
  }
  row("dead units", group_thousands(s.dead_units));
  if (std::isnan(s.saturated_fraction)) {
    row("saturated units",
        "n/a (no activation here saturates; relu's flat side is its dead units)");
  } else {
    row("saturated units", group_thousands(s.saturated_units));
    row("saturated fraction",
        format_percent(s.saturated_fraction) + " % of the entries of saturating activations");
  }
  if (s.nonfinite_layers.empty()) {
    row("non-finite layers", "none");
  } else {
    row("non-finite layers",
        fmt::format("{} layer{} (they begin at layer {}, in the {} pass): {}",
                    s.nonfinite_layers.size(), s.nonfinite_layers.size() == 1 ? "" : "s",
                    s.first_nonfinite_layer, s.nonfinite_in_forward ? "forward" : "backward",
                    index_ranges(s.nonfinite_layers)),
        kRed);
  }
  row("theory", theory_summary(r), s.theory_flagged_layers.empty() ? std::string_view{} : kYellow);
  return out;
}

// The Jacobian's singular values: extremes, mean square beside the theory, and a histogram of
// log10 s drawn as bars of '#' (scaled to the fullest bin).
std::string jacobian_block(const JacobianStats& j) {
  auto log10_text = [](double v) {
    return std::isfinite(v) ? fmt::format("{:.3f}", v) : undefined_or_nonfinite(v);
  };
  std::string out = fmt::format("\ninput-output Jacobian ({} examples, {} singular values each)\n",
                                j.examples, j.singular_values_per_example);
  out += fmt::format("  log10 singular values         max {}, min {}\n", log10_text(j.log10_max),
                     log10_text(j.log10_min));
  out += fmt::format("  log10 mean of s^2             {}", log10_text(j.log10_mean_square));
  if (j.has_prediction) {
    out += fmt::format("  (theory: {}, the product of chi)",
                       log10_text(j.predicted_log10_mean_square));
  }
  out += "\n";
  out += fmt::format("  log10 condition number        {}\n", log10_text(j.log10_condition));
  std::int64_t most = 1;
  for (std::int64_t c : j.histogram_counts) most = std::max(most, c);
  for (std::size_t b = 0; b < j.histogram_counts.size(); ++b) {
    const std::int64_t c = j.histogram_counts[b];
    const auto bar = static_cast<std::size_t>(
        std::llround(40.0 * static_cast<double>(c) / static_cast<double>(most)));
    std::string line = fmt::format("  {:>8.3f} .. {:>8.3f}  {:>6}  {}", j.histogram_edges[b],
                                   j.histogram_edges[b + 1], c, std::string(bar, '#'));
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string criticality_block(const CriticalityStats& c) {
  if (!c.measured()) {
    std::string out = "\npartial Jacobian norm J(l)\n";
    append_wrapped(out, "  ", "  ", text_format::criticality_sentence(c));
    return out;
  }
  std::string out = fmt::format(
      "\npartial Jacobian norm J(l) ({} examples x {} tangents, {} layers on the stream)\n",
      c.examples, c.tangents, c.layers.size());
  append_wrapped(out, "  law    ", "         ", text_format::criticality_sentence(c));
  append_wrapped(out, "  J at   ", "         ", text_format::criticality_samples(c));
  return out;
}

}  // namespace gradscope::report_text_detail
