// The Markdown report: a title with the verdict, a one-line network summary, the findings as a list
// (evidence, advice as --set changes, the check), and the per-layer table with a bar of Unicode
// blocks inside <details>. Text from the user is escaped; numbers go through fmt, never a locale.
#include "gradscope/report/report_md.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/report/report_text.hpp"
#include "report/criticality_text.hpp"
#include "report/signal_propagation.hpp"
#include "report/text_format.hpp"

namespace gradscope {

namespace {

using namespace text_format;

// ---- Text that must not change the document's structure.

// ---- Numbers: fixed significant digits through fmt, the same on every platform.

std::string plural(std::int64_t n, std::string_view word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

// ---- The head: the verdict first, then what was run.

std::string network_line(const Report& r) {
  const auto dense = std::count_if(r.layers.begin(), r.layers.end(),
                                   [](const LayerReport& l) { return l.kind == OpKind::kDense; });
  std::string depth = plural(dense, "dense layer");
  if (static_cast<std::size_t>(dense) != r.layers.size()) {
    depth = fmt::format("{} ops, {}", r.layers.size(), depth);
  }
  std::string loss(loss_name(r.spec.loss.kind));
  // The probe's "loss" is a projection, not a loss anyone minimises: no value to show.
  if (r.spec.loss.kind != LossKind::kProbe) loss += " = " + format_number(r.loss);
  // A batch of sequences is said so; a batch of vectors, as always, not at all.
  const std::string batch =
      r.spec.input.tokens > 1 ? " | batch " + batch_label(r.spec.input) : std::string();
  return fmt::format("{} | {} parameters | {}{} | loss: {}", depth, group_thousands(r.parameters),
                     precision_name(r.spec.precision), batch, loss);
}

std::string ratio_line(const Summary& s) {
  const double v = s.log10_grad_ratio_first_to_last;
  if (std::isnan(v)) {
    return "Gradient rms, first layer / last layer: n/a (an end has no finite gradient, or both "
           "are exactly 0)";
  }
  return fmt::format("Gradient rms, first layer / last layer: {} (log10 {})",
                     format_magnitude(magnitude_from_log10(v)), format_log10(v));
}

// ---- The findings.

std::string where(int layer) {
  return layer == 0 ? std::string("whole network") : fmt::format("layer {}", layer);
}

// "`dead_fraction` = 0.25 (threshold >= 0.1)"; context evidence (a NaN threshold) has none.
std::string evidence_text(const Evidence& e, int finding_layer) {
  std::string out = markdown_code(e.quantity);
  if (e.layer != 0 && e.layer != finding_layer) out += fmt::format(" at layer {}", e.layer);
  out += " = " + format_number(e.value);
  if (!std::isnan(e.threshold)) {
    out +=
        fmt::format(" (threshold {} {})", markdown_escape(e.relation), format_number(e.threshold));
  }
  return out;
}

std::string changes_text(const Advice& a) {
  std::string out;
  for (const ConfigChange& c : a.changes) {
    out += fmt::format(" {}", markdown_code(set_argument(c)));
  }
  return out;
}

std::string check_text(const AdviceCheck& c) {
  std::vector<std::string> after;
  for (const std::string& f : c.findings_after) after.push_back(markdown_escape(f));
  return fmt::format(
      "{} {} -> {}, {}; after: {} ({})", markdown_code(c.metric), format_number(c.before),
      format_number(c.after), c.helped ? "helped" : "did not help", verdict_name(c.verdict_after),
      after.empty() ? std::string("no findings") : fmt::format("{}", fmt::join(after, ", ")));
}

// A finding as a list item at `indent`; a root's consequences follow as nested items.
void append_finding(std::string& out, const Finding& f, const Report& r,
                    const std::string& indent = "") {
  out += fmt::format("{}- **{}** {} ({}): {}\n", indent, severity_name(f.severity),
                     markdown_code(f.code), where(f.layer), markdown_escape(f.explanation));
  if (!f.evidence.empty()) {
    std::vector<std::string> parts;
    for (const Evidence& e : f.evidence) parts.push_back(evidence_text(e, f.layer));
    out += fmt::format("{}  - Evidence: {}\n", indent, fmt::join(parts, "; "));
  }
  for (const Advice& a : f.advice) {
    out += fmt::format("  - Advice: {}{}\n", markdown_escape(a.text), changes_text(a));
    if (a.check) out += fmt::format("    - Checked: {}\n", check_text(*a.check));
  }
  if (f.cause.empty() && f.advice.empty() && f.severity != Severity::kInfo) {
    const std::string pieces = remedy_pieces_for(r, f.code);
    if (!pieces.empty()) {
      out += fmt::format("  - Advice: the remedy's piece {} (listed once, above)\n", pieces);
    }
  }
  for (const Advice& a : f.rejected_advice) {
    out += fmt::format("  - Tried and rejected: {}{}", markdown_escape(a.text), changes_text(a));
    if (a.check) out += fmt::format(" (checked: {})", check_text(*a.check));
    out += '\n';
  }
}

// ---- The per-layer table.

constexpr int kBarCells = 16;
constexpr int kEighths = 8 * kBarCells;
constexpr double kMinBarDecades = 2.0;  // as the text report: a healthy wobble reads as flat
// U+2588 FULL BLOCK, then U+2589..U+258F: seven eighths down to one eighth, in UTF-8.
constexpr std::string_view kFullBlock = "\u2588";
constexpr std::array<std::string_view, 8> kPartialBlock = {"",       "\u258F", "\u258E", "\u258D",
                                                           "\u258C", "\u258B", "\u258A", "\u2589"};

struct BarScale {
  bool any = false;
  double lo = 0.0;
  double hi = 0.0;
};

// The run's range of finite log10 grad rms, at least two decades, anchored at the largest value.
BarScale bar_scale(const std::vector<LayerReport>& layers) {
  BarScale s;
  for (const LayerReport& l : layers) {
    const double v = l.backward.grad_preact_rms.log10;
    if (!std::isfinite(v)) continue;
    s.lo = s.any ? std::min(s.lo, v) : v;
    s.hi = s.any ? std::max(s.hi, v) : v;
    s.any = true;
  }
  if (s.any) s.lo = std::min(s.lo, s.hi - kMinBarDecades);
  return s;
}

// From one eighth of a cell at the smallest value to kBarCells full cells at the largest, on a
// linear axis of log10; a value that is not finite is named instead.
std::string bar(double log10, const BarScale& s) {
  if (std::isnan(log10)) return "(n/a)";
  if (std::isinf(log10)) return log10 > 0 ? "(inf)" : "(zero)";
  const double t = s.hi > s.lo ? (log10 - s.lo) / (s.hi - s.lo) : 1.0;
  const auto eighths =
      std::clamp(1 + static_cast<int>(std::lround(t * (kEighths - 1))), 1, kEighths);
  std::string out;
  for (int i = 0; i < eighths / 8; ++i) out += kFullBlock;
  out += kPartialBlock[static_cast<std::size_t>(eighths % 8)];
  return out;
}

std::string kind_label(OpKind kind) {
  if (kind == OpKind::kResidualEnd) return "residual";
  return std::string(op_kind_name(kind));
}

// What the op applies: the activation, the norm, the dropout rate, or the residual's scale.
std::string applied_label(const LayerReport& l) {
  switch (l.kind) {
    case OpKind::kDense:
    case OpKind::kActivation: {
      const ActivationInfo& info = activation_info(l.activation.kind);
      if (info.param_name.empty()) return std::string(info.name);
      return fmt::format("{}({}={:g})", info.name, info.param_name, l.activation.param);
    }
    case OpKind::kNorm:
      return std::string(norm_name(l.norm.kind));
    case OpKind::kDropout:
      return fmt::format("p={:g}", l.dropout);
    case OpKind::kAttention:
      return fmt::format("{} heads, {}, scale {:g}", l.attention.heads,
                         l.attention.causal ? "causal" : "not causal",
                         attention_scale(l.attention, l.width));
    case OpKind::kConv:
      return fmt::format("{} ch, {}x{}, stride {}, pad {}{}, {}", l.conv.channels, l.conv.kernel_h,
                         l.conv.kernel_w, l.conv.stride_h, l.conv.pad_h,
                         l.conv.groups > 1 ? ", groups " + std::to_string(l.conv.groups) : "",
                         activation_info(l.activation.kind).name);
    case OpKind::kPool:
      return l.pool.kind == PoolKind::kGlobalAverage
                 ? std::string("global average")
                 : fmt::format("{} {}x{}, stride {}", pool_kind_name(l.pool.kind), l.pool.kernel_h,
                               l.pool.kernel_w, l.pool.stride_h);
    case OpKind::kFlatten:
      return "";
    case OpKind::kGlu:
      return fmt::format("{}, hidden {}", activation_info(l.glu.activation.kind).name,
                         l.glu.hidden);
    case OpKind::kResidualBegin:  // not reported: its block is reported at its end
    case OpKind::kResidualEnd:
      break;
  }
  return fmt::format("x{:g}{}", l.residual.scale, l.residual.projection ? " + projection" : "");
}

constexpr std::array<std::string_view, 10> kColumns = {
    "layer",    "kind", "width",  "activation/norm", "act rms",
    "grad rms", "gain", "dead %", "sat %",           "grad rms (log scale)"};
constexpr std::array<std::string_view, 10> kAlign = {
    "---:", ":---", "---:", ":---", "---:", "---:", "---:", "---:", "---:", ":---"};
// Sequence inputs (tokens > 1): the token statistics, before the bar.
constexpr std::array<std::string_view, 2> kTokenColumns = {"tok cos", "tok crms"};

std::string table_row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const std::string& c : cells) out += " " + c + " |";
  return out + "\n";
}

// The delimiter row has no blanks around its cells, by custom; it still has every column.
std::string delimiter_row(const std::vector<std::string>& align) {
  std::string out = "|";
  for (const std::string& a : align) out += a + "|";
  return out + "\n";
}

std::string token_cosine_cell(double c) {
  if (!std::isfinite(c)) return undefined_or_nonfinite(c);
  const std::string out = fmt::format("{:.2f}", c);
  return out == "-0.00" ? "0.00" : out;  // a sign below the shown resolution says nothing
}

std::string layer_row(const LayerReport& l, const BarScale& scale, bool tokens) {
  const std::string act_rms = l.forward.act.finite == 0 ? "n/a" : format_number(l.forward.act.rms);
  std::vector<std::string> cells = {std::to_string(l.index),
                                    kind_label(l.kind),
                                    std::to_string(l.width),
                                    markdown_escape(applied_label(l)),
                                    act_rms,
                                    magnitude_cell(l.backward.grad_preact_rms),
                                    magnitude_cell(l.backward.gain),
                                    format_percent(l.forward.dead_fraction),
                                    sat_cell(l.forward.saturated_fraction)};
  if (tokens) {
    cells.push_back(l.forward.has_tokens ? token_cosine_cell(l.forward.token_mean_cosine) : "-");
    cells.push_back(l.forward.has_tokens ? format_number(l.forward.token_centered_rms) : "-");
  }
  cells.push_back(bar(l.backward.grad_preact_rms.log10, scale));
  return table_row(cells);
}

std::string elided_row(std::size_t n, std::size_t columns, std::string_view noun = "layer") {
  std::vector<std::string> cells(columns);
  cells[0] = "...";
  cells[1] = fmt::format("*{} elided*", plural(static_cast<std::int64_t>(n), noun));
  return table_row(cells);
}

std::string bar_legend(const BarScale& s) {
  if (!s.any) return "Bar: no layer has a finite gradient.";
  return fmt::format(
      "Bar: log10 grad rms on a linear axis from {} ({} one eighth of a block) to {} ({} full "
      "blocks).",
      format_log10(s.lo), kPartialBlock[1], format_log10(s.hi), kBarCells);
}

std::string layers_block(const Report& r, const MarkdownOptions& options) {
  std::string out = "## Layers\n\n";
  // GitHub renders Markdown inside <details> only with blank lines around it.
  out += fmt::format("<details><summary>Per-layer table ({})</summary>\n\n",
                     plural(static_cast<std::int64_t>(r.layers.size()), "layer"));
  if (r.layers.empty()) {
    out += "No layers.\n\n</details>\n";
    return out;
  }
  const bool tokens = r.spec.input.tokens > 1;
  std::vector<std::string> head(kColumns.begin(), kColumns.end() - 1);
  std::vector<std::string> align(kAlign.begin(), kAlign.end() - 1);
  if (tokens) {
    head.insert(head.end(), kTokenColumns.begin(), kTokenColumns.end());
    align.insert(align.end(), kTokenColumns.size(), "---:");
  }
  head.emplace_back(kColumns.back());
  align.emplace_back(kAlign.back());
  out += table_row(head);
  out += delimiter_row(align);
  const BarScale scale = bar_scale(r.layers);
  const std::vector<bool> keep = rows_to_show(r, options.max_rows);
  std::size_t elided = 0;
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    if (!keep[i]) {
      ++elided;
      continue;
    }
    if (elided > 0) out += elided_row(elided, head.size());
    elided = 0;
    out += layer_row(r.layers[i], scale, tokens);
  }
  if (elided > 0) out += elided_row(elided, head.size());
  out += fmt::format("\n{}\n", bar_legend(scale));
  if (tokens) {
    out +=
        "\nTok cos: mean cosine between two tokens' outputs in one example; near 1, the tokens "
        "have collapsed into one (rank collapse).\n";
    out +=
        "Tok crms: rms of each token's output minus its example's mean token, what tells the "
        "tokens apart (compare with act rms).\n";
  }
  out += "\n</details>\n";
  return out;
}

// ---- Sequence models: the attention ops and every learned tensor.

std::string attention_section(const Report& r) {
  std::vector<const LayerReport*> ops;
  for (const LayerReport& l : r.layers) {
    if (l.kind == OpKind::kAttention) ops.push_back(&l);
  }
  if (ops.empty()) return "";
  const int tokens = r.spec.input.tokens;
  std::string out = "## Attention\n\n";
  out += fmt::format(
      "Entropy in nats beside a uniform row's: ln T = ln {} = {} for a full mask; for a causal "
      "one, query t sees t + 1 keys and the uniform entropy is the mean over t of ln(t + 1) = "
      "{}.\n\n",
      tokens, format_number(uniform_attention_entropy(tokens, false)),
      format_number(uniform_attention_entropy(tokens, true)));
  out += "| layer | heads | mask | entropy | uniform | max logit | peaked % |\n";
  out += "|---:|---:|:---|---:|---:|---:|---:|\n";
  for (const LayerReport* l : ops) {
    const ForwardStats& f = l->forward;
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", l->index, l->attention.heads,
                       l->attention.causal ? "causal" : "full", format_number(f.attention_entropy),
                       format_number(uniform_attention_entropy(tokens, l->attention.causal)),
                       format_number(f.attention_max_logit),
                       format_percent(f.attention_peaked_fraction));
  }
  out +=
      "\nEntropy: mean over rows (example, head, query) of -sum P ln P; far below uniform, queries "
      "attend to few keys (entropy collapse). Near uniform in every op while tok cos nears 1: "
      "attention averages the tokens into one vector (rank collapse). Max logit: the largest "
      "scaled "
      "logit q.k over unmasked entries (large: a saturated softmax). Peaked %: rows whose largest "
      "weight exceeds 0.99.\n\n";
  return out;
}

std::string parameters_section(const Report& r, const MarkdownOptions& options) {
  if (!shows_parameters(r)) return "";
  const std::vector<ParameterReport>& params = r.parameter_list;
  const bool update = std::any_of(params.begin(), params.end(),
                                  [](const ParameterReport& p) { return p.stats.has_update; });
  std::string out = "## Parameters\n\n";
  out += fmt::format("<details><summary>Every learned tensor ({})</summary>\n\n",
                     plural(static_cast<std::int64_t>(params.size()), "tensor"));
  std::vector<std::string> head = {"name", "layer", "shape", "norm", "grad norm", "grad/param"};
  std::vector<std::string> align = {":---", "---:", ":---", "---:", "---:", "---:"};
  if (update) {
    head.emplace_back("update");
    align.emplace_back("---:");
  }
  out += table_row(head);
  out += delimiter_row(align);
  const std::vector<bool> keep = parameters_to_show(r, options.max_rows);
  const auto row = [&](const ParameterReport& p) {
    const ParamStats& s = p.stats;
    std::vector<std::string> cells = {
        markdown_code(p.name),       std::to_string(p.layer),
        shape_label(s.shape),        format_number(s.norm),
        magnitude_cell(s.grad_norm), param_ratio_cell(grad_to_param(s), s.norm)};
    if (update) cells.push_back(param_ratio_cell(s.update_to_weight, s.norm, s.has_update));
    out += table_row(cells);
  };
  std::size_t elided = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!keep[i]) {
      ++elided;
      continue;
    }
    if (elided > 0) out += elided_row(elided, head.size(), "tensor");
    elided = 0;
    row(params[i]);
  }
  if (elided > 0) out += elided_row(elided, head.size(), "tensor");
  out += "\nGrad/param: ||dL/dp|| / ||p||.";
  if (update) out += " Update: ||one optimizer step on p|| / ||p|| (rule of thumb ~1e-3).";
  out += "\n\n</details>\n";
  return out;
}

}  // namespace

// The one remedy: what to change, the --set arguments for all of it, and the check.
std::string remedy_block(const Report& r) {
  const Remedy& remedy = *r.remedy;
  std::string out = fmt::format("## Remedy\n\n{} ({}).\n\n", remedy_headline(remedy, r.findings),
                                markdown_escape(remedy_status(remedy)));
  for (std::size_t k = 0; k < remedy.pieces.size(); ++k) {
    const RemedyPiece& p = remedy.pieces[k];
    std::vector<std::string> codes;
    for (const std::string& c : p.addresses) codes.push_back(markdown_code(c));
    out += fmt::format("{}. {} (for {})\n", k + 1, markdown_escape(p.text), fmt::join(codes, ", "));
  }
  if (!remedy.changes.empty()) {
    out += remedy.pieces.size() == 1 ? "\nApply it with:\n\n```sh\n"
                                     : "\nApply them together:\n\n```sh\n";
    for (const ConfigChange& c : remedy.changes) out += set_argument(c) + "\n";
    out += "```\n";
  }
  if (!remedy.not_addressed.empty()) {
    std::vector<std::string> codes;
    for (const std::string& c : remedy.not_addressed) codes.push_back(markdown_code(c));
    out += fmt::format(
        "\nNot addressed: {} (gradscope knows no fix for it, or none that composes with the pieces "
        "chosen).\n",
        fmt::join(codes, ", "));
  }
  if (remedy.check) {
    std::vector<std::string> after;
    for (const std::string& f : remedy.check->findings_after) after.push_back(markdown_escape(f));
    out +=
        fmt::format("\nAfter it: {}.\n", after.empty() ? std::string("no findings")
                                                       : fmt::format("{}", fmt::join(after, ", ")));
    for (const std::string& d : remedy.check->dropped) {
      out += fmt::format("- Dropped (the rest did as well without it): {}\n", markdown_escape(d));
    }
    for (const std::string& a : remedy.check->added) {
      out += fmt::format("- Added (the re-run's own diagnosis, and it fixed more): {}\n",
                         markdown_escape(a));
    }
  }
  return out + "\n";
}

std::string report_to_markdown(const Report& report, const MarkdownOptions& options) {
  std::string out = fmt::format("# gradscope: {}\n\n", markdown_escape(report.spec.name));
  out += fmt::format(
      "**Verdict: {}** - {}\n\n", verdict_name(report.verdict),
      report.findings.empty() ? std::string("no findings") : finding_counts(report.findings));
  out += network_line(report) + "\n\n";
  out += ratio_line(report.summary) + "\n\n";
  if (report.remedy) out += remedy_block(report);
  out += "## Findings\n\n";
  if (report.findings.empty()) out += "None.\n";
  for (const Finding& f : report.findings) {
    if (!f.cause.empty()) continue;
    append_finding(out, f, report);
    if (f.consequences.empty()) continue;
    out += fmt::format("  - Consequences of {} (fixed with it):\n", markdown_code(f.code));
    for (const Finding& c : report.findings) {
      if (c.cause == f.code) append_finding(out, c, report, "    ");
    }
  }
  out += '\n';
  if (report.criticality) {
    const CriticalityStats& c = *report.criticality;
    out += "## Partial Jacobian norm\n\n";
    out += markdown_escape(criticality_paragraph(c));
    if (c.measured()) {
      out += fmt::format(" J(l) = (1/N_l) E ||dx_l/dx_0||_F^2 over {} examples x {} tangents.\n\n",
                         c.examples, c.tangents);
      out += "J at layer " + markdown_escape(criticality_samples(c)) + "\n";
    } else {
      out += "\n";
    }
    out += '\n';
  }
  out += layers_block(report, options);
  const std::string attention = attention_section(report);
  if (!attention.empty()) out += '\n' + attention;
  const std::string channels = signal_propagation::markdown(report);
  if (!channels.empty()) out += (attention.empty() ? "\n" : "") + channels;
  const std::string parameters = parameters_section(report, options);
  if (!parameters.empty()) {
    out += (attention.empty() && channels.empty() ? "\n" : "") + parameters;
  }
  return out;
}

}  // namespace gradscope
