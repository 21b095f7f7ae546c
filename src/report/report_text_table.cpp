// The text report's per-layer table: which layers it keeps when the stack is deep (the elision
// rule), its columns, and the log-scale bar of the gradient with the mean-field prediction in it.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/report/report_text.hpp"
#include "report/report_text_detail.hpp"
#include "report/text_format.hpp"

namespace gradscope::report_text_detail {

namespace {

using namespace text_format;

// A gradient rms below 1e-7 is lost when a float32 update lr * g meets an O(1) weight (float32's
// epsilon is 1.2e-7), so such layers are shown red along with non-finite ones.
constexpr double kTinyGradLog10 = -7.0;

// Sharp-change thresholds used to keep layers through elision (see select_rows).
const double kGainJumpLog10 = std::log10(2.0);
constexpr std::ptrdiff_t kGainNeighbours = 2;  // like ops on each side a gain is compared with
constexpr double kDeadJump = 0.25;
// The engine flags a layer whose measurement is beyond this many expected spreads of the theory.
constexpr double kTheorySpreads = 3.0;

bool layer_nonfinite(const LayerReport& l) {
  const Magnitude& g = l.backward.grad_preact_rms;
  // log10 = -inf with value 0 is an exact zero gradient: finite, if alarming.
  return l.forward.nonfinite > 0 || l.backward.nonfinite > 0 ||
         (!std::isfinite(g.log10) && g.value != 0.0);
}

// How far beyond the flag threshold a flagged layer's measurement lies (see flag_rows).
double theory_score(const LayerTheory& t) {
  double score = 0.0;
  const auto consider = [&](bool predicted, double deviation, double spread) {
    const double excess = std::abs(deviation) / (kTheorySpreads * spread);
    if (predicted && !std::isnan(excess)) score = std::max(score, excess);
  };
  consider(t.forward, t.log_q_deviation, t.log_q_spread);
  consider(t.backward, t.log10_grad_deviation, t.log10_grad_spread);
  return score > 0.0 ? score : 1.0;
}

}  // namespace

// The elision rule. A stack deeper than max_rows shows max_rows layer rows (or just the mandatory
// ones, should they be more), chosen in this order:
//   1. mandatory: the first layer, the last layer, and the first non-finite layer (a layer in
//      summary.nonfinite_layers, or with NaN/Inf entries counted in its forward or backward
//      statistics, or a NaN/+inf gradient rms);
//   2. sharp changes, ranked by score when there are more than the budget left:
//      - gain jump: |log10 gain - the median log10 gain of its neighbours like it| > log10(2),
//        i.e. the layer scales the gradient by more than twice or less than half what the ops
//        like it nearby do (an exact zero gain counts, with an infinite score). Like it: the same
//        kind, activation (or norm) and width, followed by an op of the same kind, activation and
//        width (or, for the last op, by the output), since a gain is the ratio of an op's gradient
//        to the next op's: a residual add followed by its block's norm and the final residual add
//        followed by the output head have different gains by construction, and so do a dense
//        layer and the norm after it. Its neighbours: the two ops like it before it and the two
//        after, so a gain that drifts with depth is compared with its surroundings rather than
//        with the whole stack, and one sharp op does not make its successor look sharp too. An op
//        with no op like it is never flagged; score = the excess in units of log10(2);
//      - dead jump: the dead fraction changes by more than 0.25 from the previous layer that has
//        a derivative statistic (dense and activation ops; a norm, dropout or residual between
//        two ReLU layers reports 0 dead units and must not read as a jump);
//        score = the change in units of 0.25;
//      - theory dev: the engine flagged the layer (theory.flagged: its q or its gradient is beyond
//        3 expected spreads of the mean-field prediction); score = the larger |deviation| / spread
//        in units of those 3 spreads, so that it ranks with the two jumps, each in units of its
//        own threshold (1 if the deviations do not say, e.g. are NaN);
//      a layer with several sharp changes is noted, and ranked, by its sharpest;
//      later non-finite layers are marked "non-finite" but not kept for it: the first one is the
//      news, and a NaN usually fills every layer after it;
//   3. the rest of the budget goes to the first and last layers, half each, so the table shows
//      how the stack starts and ends. Each gap between kept rows prints one "... N layers elided"
//      line (these lines do not count towards max_rows).
std::vector<RowFlag> flag_rows(const std::vector<LayerReport>& layers, const Summary& summary) {
  std::vector<RowFlag> flags(layers.size());
  if (layers.empty()) return flags;
  auto group_of = [](const LayerReport& l) {
    return std::string(op_kind_name(l.kind)) + "/" +
           std::to_string(static_cast<int>(l.activation.kind)) + "/" +
           std::to_string(static_cast<int>(l.norm.kind)) + "/" + std::to_string(l.width);
  };
  // The ops like each (same group, followed by the same group), in order, with a finite gain.
  std::map<std::string, std::vector<std::size_t>> like;
  std::vector<std::string> like_key(layers.size());
  for (std::size_t i = 0; i < layers.size(); ++i) {
    like_key[i] = group_of(layers[i]) + " -> " +
                  (i + 1 < layers.size() ? group_of(layers[i + 1]) : std::string("output"));
    if (std::isfinite(layers[i].backward.gain.log10)) like[like_key[i]].push_back(i);
  }
  // The median log10 gain of the (up to) two like ops before layer i and two after; NaN if none.
  const auto typical_gain = [&](std::size_t i) {
    const std::vector<std::size_t>& ops = like[like_key[i]];
    const auto at = std::lower_bound(ops.begin(), ops.end(), i);
    std::vector<double> near;
    for (auto it = at; it != ops.begin() && at - it < kGainNeighbours;) {
      --it;
      near.push_back(layers[*it].backward.gain.log10);
    }
    auto after = at;
    if (after != ops.end() && *after == i) ++after;
    for (int k = 0; k < kGainNeighbours && after != ops.end(); ++k, ++after) {
      near.push_back(layers[*after].backward.gain.log10);
    }
    return near.empty() ? std::nan("") : median(near);
  };
  bool seen_nonfinite = false;
  const LayerReport* previous_phi = nullptr;  // the last dense or activation op before this one
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const LayerReport& l = layers[i];
    RowFlag& f = flags[i];
    const bool has_phi = l.kind == OpKind::kDense || l.kind == OpKind::kActivation;
    const LayerReport* compare_with = previous_phi;
    if (has_phi) previous_phi = &l;
    const bool listed = std::find(summary.nonfinite_layers.begin(), summary.nonfinite_layers.end(),
                                  l.index) != summary.nonfinite_layers.end();
    if (listed || layer_nonfinite(l)) {
      f.nonfinite = true;
      f.note = "non-finite";
      f.mandatory = !seen_nonfinite;
      seen_nonfinite = true;
      continue;
    }
    const double g = l.backward.gain.log10;
    const double typical = typical_gain(i);
    if (!std::isnan(typical) && !std::isnan(g)) {
      const double excess = std::abs(g - typical) / kGainJumpLog10;
      if (excess > 1.0) {
        f.note = "gain jump";
        f.score = excess;
      }
    }
    if (has_phi && compare_with != nullptr) {
      const double jump = std::abs(l.forward.dead_fraction - compare_with->forward.dead_fraction);
      if (jump > kDeadJump && jump / kDeadJump > f.score) {
        f.note = "dead jump";
        f.score = jump / kDeadJump;
      }
    }
    if (l.theory.flagged) {
      const double score = theory_score(l.theory);
      if (score > f.score) {
        f.note = "theory dev";
        f.score = score;
      }
    }
  }
  flags.front().mandatory = true;
  flags.back().mandatory = true;
  return flags;
}

std::vector<bool> select_rows(const std::vector<RowFlag>& flags, int max_rows) {
  const std::size_t n = flags.size();
  const std::size_t budget = static_cast<std::size_t>(std::max(max_rows, 2));
  std::vector<bool> keep(n, n <= budget);
  if (n <= budget) return keep;

  std::size_t used = 0;
  std::vector<std::size_t> candidates;
  for (std::size_t i = 0; i < n; ++i) {
    if (flags[i].mandatory) {
      keep[i] = true;
      ++used;
    } else if (flags[i].score > 0.0) {
      candidates.push_back(i);
    }
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](std::size_t a, std::size_t b) { return flags[a].score > flags[b].score; });
  for (const std::size_t i : candidates) {
    if (used >= budget) break;
    keep[i] = true;
    ++used;
  }
  // Fill from both ends towards the middle, alternating: 0, n-1, 1, n-2, ...
  for (std::size_t k = 0; k < n && used < budget; ++k) {
    const std::size_t i = k % 2 == 0 ? k / 2 : n - 1 - k / 2;
    if (keep[i]) continue;
    keep[i] = true;
    ++used;
  }
  return keep;
}

namespace {

// The table's variable columns, chosen per report so a dense-only stack keeps its classic layout.
struct Layout {
  int act_w = kActW;
  bool update = false;  // the upd/w column: some op has an optimizer step to report
  bool tokens = false;  // sequence inputs: token columns instead of corr and theory
  int bar_w = kBarW;
};

Layout layout_for(const Report& r) {
  Layout lay;
  for (const LayerReport& l : r.layers) {
    if (l.kind != OpKind::kDense) lay.act_w = kActWideW;
    if (l.backward.has_update) lay.update = true;
  }
  lay.tokens = r.spec.input.tokens > 1;
  const int fixed = (lay.tokens ? kFixedTokensW : kFixedCoreW) + lay.act_w +
                    (lay.update ? 1 + kUpdW : 0) + 1 + kNoteW;
  lay.bar_w = std::min(kBarW, static_cast<int>(kLineWidth) - fixed);
  return lay;
}

// The theory column: each layer's predicted log10 grad rms on the measured scale, NaN where there
// is no gradient prediction. The engine predicts log10 grad rms relative to the last layer with a
// prediction (the anchor); adding the anchor's measured log10 grad rms puts the prediction on the
// scale of the measured column, equal to it at the anchor, so the two read side by side.
struct TheoryColumn {
  std::vector<double> log10;
  int anchor = 0;  // layers[].index of the anchor; 0 when no layer has a gradient prediction
};

TheoryColumn theory_column(const std::vector<LayerReport>& layers) {
  TheoryColumn c;
  c.log10.assign(layers.size(), std::nan(""));
  const auto anchor = std::find_if(layers.rbegin(), layers.rend(),
                                   [](const LayerReport& l) { return l.theory.backward; });
  if (anchor == layers.rend()) return c;
  c.anchor = anchor->index;
  // The anchor's own prediction is 0 by definition; subtracting it keeps the column exact at the
  // anchor should it not be.
  const double offset = anchor->backward.grad_preact_rms.log10 - anchor->theory.log10_grad_rel_last;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].theory.backward) c.log10[i] = layers[i].theory.log10_grad_rel_last + offset;
  }
  return c;
}

constexpr double kMinBarDecades = 2.0;

struct BarScale {
  bool any = false;     // some layer has a finite log10 grad rms, measured or predicted
  bool theory = false;  // some predicted value is on the axis ('|' marks)
  double lo = 0.0;
  double hi = 0.0;
};

// One axis for the measured and the predicted values, so a '|' sits where the theory expects the
// bar to end.
BarScale bar_scale(const std::vector<LayerReport>& layers, const TheoryColumn& theory) {
  BarScale s;
  const auto include = [&](double v) {
    if (!std::isfinite(v)) return false;
    s.lo = s.any ? std::min(s.lo, v) : v;
    s.hi = s.any ? std::max(s.hi, v) : v;
    s.any = true;
    return true;
  };
  for (const LayerReport& l : layers) include(l.backward.grad_preact_rms.log10);
  for (const double v : theory.log10) s.theory = include(v) || s.theory;
  // The axis spans at least two decades, anchored at the largest value, so that a healthy stack
  // whose gradient wobbles by 0.1 in log10 shows nearly full bars instead of an exaggerated slope.
  if (s.any) s.lo = std::min(s.lo, s.hi - kMinBarDecades);
  return s;
}

// Where a finite log10 value falls on the axis: from 1 character at its smallest value to `width`
// at its largest.
std::size_t bar_cells(double log10, const BarScale& s, int width) {
  const auto w = static_cast<std::size_t>(width);
  if (s.hi <= s.lo) return w;
  const double t = (log10 - s.lo) / (s.hi - s.lo);
  const auto n = static_cast<std::size_t>(1.0 + std::round(t * (width - 1)));
  return std::clamp<std::size_t>(n, 1, w);
}

// The bar of one row: '#' up to the measured log10 grad rms (a stand-in when it is not finite) and
// '|' at the predicted one, inside the bar or after it. Where the two fall in the same cell the
// bar is left whole: a '|' on every agreeing row would hide the rows that disagree, and would turn
// one-cell bars into a lone '|'. Only the '#'s are painted and the text never ends in blanks, so
// coloured output with its escape codes removed is the plain output.
struct BarText {
  std::string text;
  std::size_t width = 0;  // display columns
};

BarText bar(double log10, double predicted, const BarScale& s, int width, const Painter& paint,
            std::string_view code) {
  if (std::isnan(log10)) return {paint("(n/a)", code), 5};
  if (std::isinf(log10)) {
    if (log10 > 0) return {paint("(inf)", code), 5};
    return {paint("(zero)", code), 6};
  }
  const std::size_t n = bar_cells(log10, s, width);
  if (!std::isfinite(predicted)) return {paint(std::string(n, '#'), code), n};
  const std::size_t mark = bar_cells(predicted, s, width);
  if (mark == n) return {paint(std::string(n, '#'), code), n};
  if (mark < n) {
    return {paint(std::string(mark - 1, '#'), code) + "|" + paint(std::string(n - mark, '#'), code),
            n};
  }
  return {paint(std::string(n, '#'), code) + std::string(mark - n - 1, ' ') + "|", mark};
}

std::string legend(const BarScale& s, int width) {
  std::string out;
  if (!s.any) {
    out = "bar: no layer has a finite gradient";
  } else if (s.hi <= s.lo) {
    out = fmt::format("bar: every layer's log10 grad rms is {}", format_log10(s.lo));
  } else {
    out = fmt::format(
        "bar: log10 grad rms on a linear axis from {} (1 #) to {} ({} #), 1 # = {:.3g} in log10",
        format_log10(s.lo), format_log10(s.hi), width, (s.hi - s.lo) / (width - 1));
    if (s.theory) out += "; | theory where apart";
  }
  return out;
}

// Why no layer has a gradient prediction: the reason of the layer where the forward prediction
// stopped, which is the cause of the others' ("the forward prediction stopped here").
std::string missing_theory_reason(const std::vector<LayerReport>& layers) {
  const auto stopped = std::find_if(layers.begin(), layers.end(), [](const LayerReport& l) {
    return !l.theory.forward && !l.theory.reason.empty();
  });
  const auto any = std::find_if(layers.begin(), layers.end(),
                                [](const LayerReport& l) { return !l.theory.reason.empty(); });
  const auto it = stopped != layers.end() ? stopped : any;
  if (it == layers.end()) return "";
  std::string_view reason = it->theory.reason;
  constexpr std::string_view kPrefix = "no prediction: ";
  if (reason.substr(0, kPrefix.size()) == kPrefix) reason.remove_prefix(kPrefix.size());
  return fmt::format(" (layer {}: {})", it->index, sanitize(reason));
}

std::string theory_legend(const std::vector<LayerReport>& layers, const TheoryColumn& theory,
                          bool in_bar_only) {
  if (theory.anchor == 0) {
    return "theory: no mean-field prediction of the gradient" + missing_theory_reason(layers);
  }
  if (in_bar_only) {
    return fmt::format(
        "theory: the mean-field prediction of log10 grad rms is the bar's |, equal to the measured "
        "one at layer {}",
        theory.anchor);
  }
  return fmt::format(
      "theory: mean-field prediction of log10 grad rms, equal to the measured one at layer {}; "
      "blank: not predicted",
      theory.anchor);
}

// log10 of the update-to-weight ratio with one decimal; blank for ops without an update.
std::string update_cell(const BackwardStats& b) {
  if (!b.has_update) return "";
  const double v = b.update_to_weight.log10;
  if (!std::isfinite(v)) return undefined_or_nonfinite(v);
  return fmt::format("{:.1f}", v);
}

// A log10 value in a column of `width`: two decimals, fewer when that does not fit (a 4000-layer
// stack reaches -1200), so a cell is never cut.
std::string log10_cell(double v, int width) {
  if (!std::isfinite(v)) return undefined_or_nonfinite(v);
  std::string out;
  for (int decimals = 2; decimals >= 0; --decimals) {
    out = fmt::format("{:.{}f}", v, decimals);
    if (out.size() <= static_cast<std::size_t>(width)) break;
  }
  return cell(out, width);
}

std::string corr_cell(double c) {
  if (!std::isfinite(c)) return undefined_or_nonfinite(c);
  // A sign below the shown resolution says nothing: -0.003 reads as 0.00.
  const std::string out = fmt::format("{:.2f}", c);
  return out == "-0.00" ? "0.00" : out;
}

// The token statistics of one op: "-" where it has none (an op before the tokens exist).
std::string tokens_cells(const ForwardStats& f) {
  if (!f.has_tokens) return fmt::format("{:>{}} {:>{}} ", "-", kTokCosW, "-", kTokCrmsW);
  return fmt::format("{:>{}} {:>{}} ", cell(corr_cell(f.token_mean_cosine), kTokCosW), kTokCosW,
                     cell(format_number(f.token_centered_rms), kTokCrmsW), kTokCrmsW);
}

std::string table_row(const LayerReport& l, double theory, const RowFlag& flag,
                      const BarScale& scale, const Layout& lay, const Painter& paint) {
  const Magnitude& g = l.backward.grad_preact_rms;
  const bool nonfinite = flag.nonfinite;
  const bool tiny = std::isfinite(g.log10) ? g.log10 < kTinyGradLog10 : g.value == 0.0;
  const std::string_view grad_color = nonfinite || tiny ? kRed : std::string_view{};

  const std::string act_rms = l.forward.act.finite == 0 ? "n/a" : format_number(l.forward.act.rms);
  std::string out =
      fmt::format("{:>{}} {:>{}} {:<{}} {:>{}} {:>{}} {:>{}} {:>{}} ", l.index, kLayerW, l.width,
                  kWidthW, cell(op_label(l), lay.act_w), lay.act_w, cell(act_rms, kActRmsW),
                  kActRmsW, cell(format_percent(l.forward.zero_fraction), kZeroW), kZeroW,
                  cell(std::to_string(l.forward.dead_units), kDeadW), kDeadW,
                  cell(sat_cell(l.forward.saturated_fraction), kSatW), kSatW);
  if (lay.tokens) {
    out += tokens_cells(l.forward);
  } else {
    out += fmt::format("{:>{}} ", cell(corr_cell(l.forward.correlation), kCorrW), kCorrW);
  }
  out += paint(fmt::format("{:>{}}", log10_cell(g.log10, kLogW), kLogW), grad_color);
  if (!lay.tokens) {
    // Blank without a gradient prediction: a number there would be made up.
    const std::string predicted = l.theory.backward ? log10_cell(theory, kTheoryW) : "";
    out += fmt::format(" {:>{}}", predicted, kTheoryW);
  }
  out += fmt::format(" {:>{}}", cell(magnitude_cell(l.backward.gain), kGainW), kGainW);
  if (lay.update) out += fmt::format(" {:>{}}", cell(update_cell(l.backward), kUpdW), kUpdW);
  out += "  ";
  const BarText bar_text = bar(g.log10, theory, scale, lay.bar_w, paint, grad_color);
  out += bar_text.text;
  if (!flag.note.empty()) {
    out += std::string(static_cast<std::size_t>(lay.bar_w + 1) - bar_text.width, ' ');
    out += paint(cell(std::string(flag.note), kNoteW), nonfinite ? kRed : kYellow);
  }
  return out;
}

}  // namespace

std::string table_block(const Report& r, const RowSelection& rows, const Painter& paint) {
  std::string out;
  const Layout lay = layout_for(r);
  std::string head = fmt::format("{:>{}} {:>{}} {:<{}} {:>{}} {:>{}} {:>{}} {:>{}}", "layer",
                                 kLayerW, "width", kWidthW, "activation", lay.act_w, "act rms",
                                 kActRmsW, "zero %", kZeroW, "dead", kDeadW, "sat %", kSatW);
  std::string group_line;
  if (lay.tokens) {
    // Two group headers on their line: "tokens" over cos and crms, "log10 grad" over measured.
    const std::size_t tokens_at = head.size() + 1;
    head +=
        fmt::format(" {:>{}} {:>{}} {:>{}}", "cos", kTokCosW, "crms", kTokCrmsW, "measured", kLogW);
    const std::size_t tokens_w = static_cast<std::size_t>(kTokCosW + 1 + kTokCrmsW);
    const std::string_view tokens = "tokens";
    group_line = std::string(tokens_at + (tokens_w - tokens.size()) / 2, ' ') + std::string(tokens);
    // Wider than the measured column: it ends where the column does.
    const std::string_view grad = "log10 grad";
    group_line += std::string(head.size() - grad.size() - group_line.size(), ' ');
    group_line += grad;
  } else {
    head +=
        fmt::format(" {:>{}} {:>{}} {:>{}}", "corr", kCorrW, "measured", kLogW, "theory", kTheoryW);
    // The group header sits over the measured and theory columns, centred, on a line of its own.
    const std::size_t group_w = static_cast<std::size_t>(kLogW + 1 + kTheoryW);
    const std::string_view group = "log10 grad rms";
    const std::size_t group_at = head.size() - group_w + (group_w - group.size()) / 2;
    group_line = std::string(group_at, ' ') + std::string(group);
  }
  head += fmt::format(" {:>{}}", "gain", kGainW);
  if (lay.update) head += fmt::format(" {:>{}}", "upd/w", kUpdW);
  const auto room = static_cast<std::size_t>(lay.bar_w + 1 + kNoteW);
  const std::string_view bar_head = "gradient rms (log scale)";
  head +=
      fmt::format("  {}", fit(bar_head.size() <= room ? bar_head : "grad rms (log scale)", room));
  append_line(out, paint(group_line, kBold));
  append_line(out, paint(head, kBold));
  if (r.layers.empty()) {
    append_line(out, "  (no layers)");
    return out;
  }
  const std::vector<RowFlag>& flags = rows.flags;
  const TheoryColumn theory = theory_column(r.layers);
  const BarScale scale = bar_scale(r.layers, theory);
  append_rows(out, rows.keep, paint, [&](std::size_t i) {
    return table_row(r.layers[i], theory.log10[i], flags[i], scale, lay, paint);
  });
  append_line(out, fit(legend(scale, lay.bar_w), kLineWidth));
  append_line(out, fit(theory_legend(r.layers, theory, lay.tokens), kLineWidth));
  if (lay.tokens) {
    append_line(out, fit("tokens cos: mean cosine between two tokens' outputs of one example; near "
                         "1, they are one vector (rank collapse)",
                         kLineWidth));
    append_line(out, fit("tokens crms: rms of each token's output minus its example's mean token, "
                         "what tells tokens apart (see act rms)",
                         kLineWidth));
  } else {
    append_line(out, fit("corr: mean cosine between two examples' outputs (measured); near 1, the "
                         "layer no longer tells its inputs apart",
                         kLineWidth));
  }
  if (std::any_of(r.layers.begin(), r.layers.end(), [](const LayerReport& l) {
        return std::isnan(l.backward.grad_preact_rms.log10) || l.forward.act.finite == 0;
      })) {
    append_line(out, fit("n/a: undefined, no finite value to measure (the values or the gradient "
                         "are NaN or infinite there)",
                         kLineWidth));
  }
  if (std::any_of(r.layers.begin(), r.layers.end(),
                  [](const LayerReport& l) { return std::isnan(l.forward.saturated_fraction); })) {
    append_line(out, fit("sat % -: the op has no saturating activation (relu's flat side is its "
                         "dead units)",
                         kLineWidth));
  }
  if (std::any_of(flags.begin(), flags.end(),
                  [](const RowFlag& f) { return f.note == "theory dev"; })) {
    append_line(out,
                fit("theory dev: the measured E[h^2] or gradient rms is beyond 3 expected spreads "
                    "(from finite width) of the prediction",
                    kLineWidth));
  }
  if (lay.update) {
    append_line(out, fit("upd/w: log10 ||one optimizer step on W||_F / ||W||_F, dense layers only",
                         kLineWidth));
  }
  return out;
}

}  // namespace gradscope::report_text_detail
