// The text report: a header block, a per-layer table within 120 columns with a log-scale bar for
// the gradient and the mean-field prediction beside it, a second table of the mean-field
// predictions (q, chi, correlation) beside their measurements, the summary, and the diagnosis (the
// verdict and each finding with its evidence and advice). Values beyond double's range are printed
// from their log10.
#include "gradscope/report/report_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/init.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/version.hpp"
#include "text_format.hpp"

namespace gradscope {

namespace {

using namespace text_format;

constexpr std::size_t kLineWidth = 120;

// Table columns: widths in characters, one space between columns, two before the bar. Columns are
// as narrow as their headers allow; the measured and predicted log10 grad rms share a group header
// on a line of its own, so each needs only the width of its values.
constexpr int kLayerW = 5;
constexpr int kWidthW = 6;
constexpr int kActW = 10;      // the longest registry name, leaky_relu
constexpr int kActWideW = 14;  // with ops of other kinds: act:leaky_relu, residual x0.5
constexpr int kActRmsW = 9;
constexpr int kZeroW = 6;
constexpr int kDeadW = 5;
constexpr int kSatW = 5;
constexpr int kCorrW = 5;    // "-0.25"
constexpr int kLogW = 8;     // "measured"; values to "-9999.99" (fewer decimals beyond)
constexpr int kTheoryW = 7;  // "-999.99" (fewer decimals beyond)
constexpr int kGainW = 9;
constexpr int kUpdW = 5;  // log10 update / weight, one decimal: "-12.3"
constexpr int kBarW = 26;
constexpr int kNoteW = 10;
// Every column up to the bar but the kind column and the optional upd/w column.
constexpr int kFixedCoreW = kLayerW + 1 + kWidthW + 1 + 1 + kActRmsW + 1 + kZeroW + 1 + kDeadW + 1 +
                            kSatW + 1 + kCorrW + 1 + kLogW + 1 + kTheoryW + 1 + kGainW + 2;
// The bar gives way to the extra columns; below this it would no longer show a slope (and the
// widest stand-in, "(zero)", must fit).
constexpr int kMinBarW = 12;
static_assert(kFixedCoreW + kActWideW + 1 + kUpdW + kMinBarW + 1 + kNoteW <=
                  static_cast<int>(kLineWidth),
              "the widest table (wide kind column and upd/w) must fit 120 columns");
static_assert(kFixedCoreW + kActW + 20 + 1 + kNoteW <= static_cast<int>(kLineWidth),
              "a dense-only table must keep a bar of 20 characters");

// Practitioners' rule of thumb for one optimizer step: ||dW|| / ||W|| around 1e-3 (much lower
// learns slowly, much higher is unstable).
constexpr std::string_view kUpdateRuleOfThumb = "rule of thumb ~1e-3";

// A gradient rms below 1e-7 is lost when a float32 update lr * g meets an O(1) weight (float32's
// epsilon is 1.2e-7), so such layers are shown red along with non-finite ones.
constexpr double kTinyGradLog10 = -7.0;

// Sharp-change thresholds used to keep layers through elision (see select_rows).
const double kGainJumpLog10 = std::log10(2.0);
constexpr std::ptrdiff_t kGainNeighbours = 2;  // like ops on each side a gain is compared with
constexpr double kDeadJump = 0.25;
// The engine flags a layer whose measurement is beyond this many expected spreads of the theory.
constexpr double kTheorySpreads = 3.0;

constexpr std::string_view kRed = "\x1b[31m";
constexpr std::string_view kYellow = "\x1b[33m";
constexpr std::string_view kBold = "\x1b[1m";
constexpr std::string_view kDim = "\x1b[2m";
constexpr std::string_view kReset = "\x1b[0m";

struct Painter {
  bool color = false;
  // Wraps already padded text, so colour never changes a column's width.
  std::string operator()(std::string_view text, std::string_view code) const {
    if (!color || code.empty() || text.empty()) return std::string(text);
    return fmt::format("{}{}{}", code, text, kReset);
  }
};

// Display columns of UTF-8 text: one per code point (run names may hold non-ASCII).
std::size_t display_width(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// Cuts `s` to at most `width` display columns, ending in "..." when cut.
std::string fit(std::string_view s, std::size_t width) {
  if (display_width(s) <= width) return std::string(s);
  if (width < 3) return std::string(width, '.');
  std::string out;
  std::size_t cols = 0;
  for (const char c : s) {
    const bool starts_code_point = (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    if (starts_code_point && ++cols > width - 3) break;
    out += c;
  }
  return out + "...";
}

// A user-supplied name must not carry control characters (an ESC would be an injected colour).
std::string sanitize(std::string_view s) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7F) ? '?' : c;
  }
  return out;
}

// Keeps a table cell within its column whatever the value.
std::string cell(std::string s, int width) { return fit(s, static_cast<std::size_t>(width)); }

std::string activation_label(const ActivationSpec& spec) {
  const ActivationInfo& info = activation_info(spec.kind);
  if (info.param_name.empty()) return std::string(info.name);
  return fmt::format("{}({}={:g})", info.name, info.param_name, spec.param);
}

// The header's census of op kinds: norms by their name, since which norm matters.
std::string kind_census_name(const LayerReport& l) {
  switch (l.kind) {
    case OpKind::kNorm:
      return std::string(norm_name(l.norm.kind));
    case OpKind::kResidualBegin:
    case OpKind::kResidualEnd:
      return "residual";
    default:
      return std::string(op_kind_name(l.kind));
  }
}

// "dense x49, layer_norm x24, residual x24": each kind's count, in order of first appearance.
std::string kinds_label(const std::vector<LayerReport>& layers) {
  std::vector<std::pair<std::string, int>> counts;
  for (const LayerReport& l : layers) {
    const std::string name = kind_census_name(l);
    const auto it =
        std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == name; });
    if (it == counts.end()) {
      counts.emplace_back(name, 1);
    } else {
      ++it->second;
    }
  }
  std::vector<std::string> parts;
  for (const auto& [name, count] : counts) parts.push_back(fmt::format("{} x{}", name, count));
  return fmt::format("{}", fmt::join(parts, ", "));
}

// Distinct values in order of first appearance, joined by `separator`.
std::string distinct_joined(const std::vector<std::string>& values, std::string_view separator) {
  std::vector<std::string> seen;
  for (const std::string& v : values) {
    if (std::find(seen.begin(), seen.end(), v) == seen.end()) seen.push_back(v);
  }
  return seen.empty() ? "none" : fmt::format("{}", fmt::join(seen, separator));
}

std::string init_label(const InitSpec& init, const BiasInitSpec& bias) {
  std::string out(init_info(init.kind).name);
  std::vector<std::string> params;
  if (init.gain != 1.0) params.push_back(fmt::format("gain={:g}", init.gain));
  switch (init.kind) {
    case Init::kNormal:
      params.push_back(fmt::format("std={:g}", init.std));
      break;
    case Init::kUniform:
      params.push_back(fmt::format("limit={:g}", init.limit));
      break;
    case Init::kHeNormal:
    case Init::kHeUniform:
      if (init.mode == FanMode::kFanOut) params.emplace_back("mode=fan_out");
      break;
    case Init::kVariance:
      params.push_back(fmt::format("weight_var={:g}", init.weight_var));
      break;
    default:
      break;
  }
  if (!params.empty()) out += fmt::format("({})", fmt::join(params, ", "));
  out += fmt::format(", bias {}", bias_init_table()[static_cast<std::size_t>(bias.kind)].name);
  if (bias.kind == BiasInit::kConstant) out += fmt::format("({:g})", bias.value);
  if (bias.kind == BiasInit::kNormal) out += fmt::format("(std={:g})", bias.std);
  return out;
}

// "16 -> 32 (x2) -> 4": the input width, then runs of equal layer widths.
std::string widths_label(const std::vector<LayerReport>& layers) {
  if (layers.empty()) return "no layers";
  std::string out = std::to_string(layers.front().fan_in);
  for (std::size_t i = 0; i < layers.size();) {
    std::size_t j = i;
    while (j < layers.size() && layers[j].width == layers[i].width) ++j;
    out += fmt::format(" -> {}", layers[i].width);
    if (j - i > 1) out += fmt::format(" (x{})", j - i);
    i = j;
  }
  return out;
}

// A "layers" architecture's widths: the runs when they fit, else the input, range and output.
std::string op_widths_label(const std::vector<LayerReport>& layers, std::size_t room) {
  std::string runs = widths_label(layers);
  if (layers.empty() || display_width(runs) <= room) return runs;
  int lo = layers.front().width;
  int hi = lo;
  for (const LayerReport& l : layers) {
    lo = std::min(lo, l.width);
    hi = std::max(hi, l.width);
  }
  return fmt::format("{} -> {}..{} -> {} (input, range over the ops, output)",
                     layers.front().fan_in, lo, hi, layers.back().width);
}

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

bool layer_nonfinite(const LayerReport& l) {
  const Magnitude& g = l.backward.grad_preact_rms;
  // log10 = -inf with value 0 is an exact zero gradient: finite, if alarming.
  return l.forward.nonfinite > 0 || l.backward.nonfinite > 0 ||
         (!std::isfinite(g.log10) && g.value != 0.0);
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  const std::size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double upper = v[mid];
  if (v.size() % 2 == 1) return upper;
  const double lower = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
  return 0.5 * (lower + upper);
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

// Why a layer is worth keeping through elision.
struct RowFlag {
  std::string_view note;   // shown at the end of the row; empty when nothing is remarkable
  double score = 0.0;      // > 0 for a sharp change; larger is sharper
  bool mandatory = false;  // first, last, first non-finite
  bool nonfinite = false;  // any NaN/Inf in the layer's statistics (shown red)
};

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

// The table's variable columns, chosen per report so a dense-only stack keeps its classic layout.
struct Layout {
  int act_w = kActW;
  bool update = false;  // the upd/w column: some op has an optimizer step to report
  int bar_w = kBarW;
};

Layout layout_for(const std::vector<LayerReport>& layers) {
  Layout lay;
  for (const LayerReport& l : layers) {
    if (l.kind != OpKind::kDense) lay.act_w = kActWideW;
    if (l.backward.has_update) lay.update = true;
  }
  const int fixed = kFixedCoreW + lay.act_w + (lay.update ? 1 + kUpdW : 0) + 1 + kNoteW;
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

std::string theory_legend(const std::vector<LayerReport>& layers, const TheoryColumn& theory) {
  if (theory.anchor == 0) {
    return "theory: no mean-field prediction of the gradient" + missing_theory_reason(layers);
  }
  return fmt::format(
      "theory: mean-field prediction of log10 grad rms, equal to the measured one at layer {}; "
      "blank: not predicted",
      theory.anchor);
}

void append_line(std::string& out, std::string_view line) {
  out += line;
  out += '\n';
}

std::string header_block(const Report& r, const Painter& paint) {
  const RunSpec& spec = r.spec;
  std::string out;
  append_line(out, paint(fit(fmt::format("gradscope {} | run: {}", kVersion, sanitize(spec.name)),
                             kLineWidth),
                         kBold));
  const auto row = [&](std::string_view key, const std::string& value) {
    append_line(out, fit(fmt::format("  {:<12}{}", key, value), kLineWidth));
  };
  if (spec.layers.empty()) {
    std::string depth = fmt::format("{} layers", r.layers.size());
    if (spec.output && r.layers.size() == static_cast<std::size_t>(spec.stack.depth) + 1) {
      depth += fmt::format(" ({} stack + 1 output)", spec.stack.depth);
    }
    row("depth", depth);
    row("widths", widths_label(r.layers));
    std::string act = activation_label(spec.stack.layer.activation);
    std::string init = init_label(spec.stack.layer.init, spec.stack.layer.bias);
    if (spec.output) {
      act += "; output " + activation_label(spec.output->activation);
      init += "; output " + init_label(spec.output->init, spec.output->bias);
    }
    row("activation", act);
    row("init", init);
  } else {
    // A "layers" list can be long and irregular: summarise it from the ops actually reported.
    const auto dense = std::count_if(r.layers.begin(), r.layers.end(),
                                     [](const LayerReport& l) { return l.kind == OpKind::kDense; });
    row("depth",
        fmt::format("{} ops, {} dense layer{}", r.layers.size(), dense, dense == 1 ? "" : "s"));
    row("widths", op_widths_label(r.layers, kLineWidth - 14));
    row("ops", kinds_label(r.layers));
    std::vector<std::string> acts;
    std::vector<std::string> inits;
    for (const LayerReport& l : r.layers) {
      if (l.kind == OpKind::kDense || l.kind == OpKind::kActivation) {
        acts.push_back(activation_label(l.activation));
      }
      if (l.kind == OpKind::kDense) inits.push_back(init_label(l.init, l.bias));
    }
    row("activation", distinct_joined(acts, ", "));
    row("init", distinct_joined(inits, "; "));  // an init label holds a comma itself
  }
  // A stack config shows the loss only when it is not the default probe, so its header reads as
  // it always has.
  if (!spec.layers.empty() || spec.loss.kind != LossKind::kProbe ||
      spec.optimizer.kind != OptimizerKind::kNone) {
    std::string loss(loss_name(spec.loss.kind));
    if (spec.optimizer.kind != OptimizerKind::kNone) {
      loss += fmt::format(" | optimizer {} (lr {:g})", optimizer_name(spec.optimizer.kind),
                          spec.optimizer.learning_rate);
    }
    row("loss", loss);
  }
  row("precision", fmt::format("{} | seed {} | batch {}", precision_name(spec.precision), spec.seed,
                               spec.input.batch));
  row("parameters", group_thousands(r.parameters));
  row("memory",
      fmt::format("{} estimated (weights {}, cache {}, work {}, statistics and report {})",
                  format_bytes(r.memory.estimate_bytes()), format_bytes(r.memory.weights_bytes),
                  format_bytes(r.memory.cache_bytes), format_bytes(r.memory.work_bytes),
                  format_bytes(r.memory.report_bytes)));
  const MemoryPlan& plan = r.memory.plan;
  if (plan.weights == WeightStorage::kRegenerated || plan.checkpointed()) {
    std::string text = plan.weights == WeightStorage::kRegenerated ? "weights drawn again" : "";
    if (plan.checkpointed()) {
      text += fmt::format("{}checkpoints every {} ops ({} segments, {} ops computed again)",
                          text.empty() ? "" : ", ", plan.checkpoint_every, plan.segments,
                          group_thousands(plan.recomputed_ops));
    }
    row("memory plan", fmt::format("{}; {} expected at peak", text, format_bytes(plan.peak_bytes)));
  }
  return out;
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

std::string table_row(const LayerReport& l, double theory, const RowFlag& flag,
                      const BarScale& scale, const Layout& lay, const Painter& paint) {
  const Magnitude& g = l.backward.grad_preact_rms;
  const bool nonfinite = flag.nonfinite;
  const bool tiny = std::isfinite(g.log10) ? g.log10 < kTinyGradLog10 : g.value == 0.0;
  const std::string_view grad_color = nonfinite || tiny ? kRed : std::string_view{};

  const std::string act_rms = l.forward.act.finite == 0 ? "n/a" : format_number(l.forward.act.rms);
  std::string out = fmt::format("{:>{}} {:>{}} {:<{}} {:>{}} {:>{}} {:>{}} {:>{}} {:>{}} ", l.index,
                                kLayerW, l.width, kWidthW, cell(op_label(l), lay.act_w), lay.act_w,
                                cell(act_rms, kActRmsW), kActRmsW,
                                cell(format_percent(l.forward.zero_fraction), kZeroW), kZeroW,
                                cell(std::to_string(l.forward.dead_units), kDeadW), kDeadW,
                                cell(sat_cell(l.forward.saturated_fraction), kSatW), kSatW,
                                cell(corr_cell(l.forward.correlation), kCorrW), kCorrW);
  out += paint(fmt::format("{:>{}}", log10_cell(g.log10, kLogW), kLogW), grad_color);
  // Blank without a gradient prediction: a number there would be made up.
  const std::string predicted = l.theory.backward ? log10_cell(theory, kTheoryW) : "";
  out += fmt::format(" {:>{}}", predicted, kTheoryW);
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

// The rows both tables show: the same layers, elided the same way.
struct RowSelection {
  std::vector<RowFlag> flags;
  std::vector<bool> keep;
};

// One line per kept layer (from `row(i)`) and one "... N layers elided ..." line per gap.
template <typename RowFn>
void append_rows(std::string& out, const std::vector<bool>& keep, const Painter& paint,
                 const RowFn& row) {
  std::size_t elided = 0;
  const auto flush_elided = [&] {
    if (elided == 0) return;
    append_line(
        out,
        paint(fmt::format("  ... {} layer{} elided ...", elided, elided == 1 ? "" : "s"), kDim));
    elided = 0;
  };
  for (std::size_t i = 0; i < keep.size(); ++i) {
    if (!keep[i]) {
      ++elided;
      continue;
    }
    flush_elided();
    append_line(out, row(i));
  }
  flush_elided();
}

std::string table_block(const Report& r, const RowSelection& rows, const Painter& paint) {
  std::string out;
  const Layout lay = layout_for(r.layers);
  std::string head = fmt::format(
      "{:>{}} {:>{}} {:<{}} {:>{}} {:>{}} {:>{}} {:>{}} {:>{}} {:>{}} {:>{}}", "layer", kLayerW,
      "width", kWidthW, "activation", lay.act_w, "act rms", kActRmsW, "zero %", kZeroW, "dead",
      kDeadW, "sat %", kSatW, "corr", kCorrW, "measured", kLogW, "theory", kTheoryW);
  // The group header sits over the measured and theory columns, centred, on a line of its own.
  const std::size_t group_w = static_cast<std::size_t>(kLogW + 1 + kTheoryW);
  const std::string_view group = "log10 grad rms";
  const std::size_t group_at = head.size() - group_w + (group_w - group.size()) / 2;
  head += fmt::format(" {:>{}}", "gain", kGainW);
  if (lay.update) head += fmt::format(" {:>{}}", "upd/w", kUpdW);
  const auto room = static_cast<std::size_t>(lay.bar_w + 1 + kNoteW);
  const std::string_view bar_head = "gradient rms (log scale)";
  head +=
      fmt::format("  {}", fit(bar_head.size() <= room ? bar_head : "grad rms (log scale)", room));
  append_line(out, paint(std::string(group_at, ' ') + std::string(group), kBold));
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
  append_line(out, fit(theory_legend(r.layers, theory), kLineWidth));
  append_line(out, fit("corr: mean cosine between two examples' outputs (measured); near 1, the "
                       "layer no longer tells its inputs apart",
                       kLineWidth));
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

// ---- The diagnosis.

// Greedy word wrap into lines of at most `width` display columns. A word longer than a line (a
// JSON value in a --set) is cut across lines rather than let overflow: the JSON report has it
// whole.
std::vector<std::string> wrap(std::string_view text, std::size_t width) {
  std::vector<std::string> lines;
  std::string line;
  std::size_t line_w = 0;
  const auto flush = [&] {
    if (!line.empty()) lines.push_back(line);
    line.clear();
    line_w = 0;
  };
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = std::min(text.find(' ', at), text.size());
    std::string_view word = text.substr(at, end - at);
    at = end + 1;
    std::size_t w = display_width(word);
    while (w > width) {
      // The cut word starts on the current line, so "--set path=" stays with its value.
      if (line_w > 0 && line_w + 1 < width) {
        line += ' ';
        ++line_w;
      } else {
        flush();
      }
      std::size_t cut = 0;
      for (std::size_t cols = line_w; cut < word.size(); ++cut) {
        const bool starts_code_point = (static_cast<unsigned char>(word[cut]) & 0xC0) != 0x80;
        if (starts_code_point && ++cols > width) break;
      }
      line += word.substr(0, cut);
      flush();
      word.remove_prefix(cut);
      w = display_width(word);
    }
    if (w == 0) continue;
    if (line_w > 0 && line_w + 1 + w > width) flush();
    if (line_w > 0) {
      line += ' ';
      ++line_w;
    }
    line += word;
    line_w += w;
  }
  flush();
  return lines;
}

// `text` wrapped within 120 columns: the first line after `first`, the others after `rest` (plain
// indents; `first` no wider than `rest`).
void append_wrapped(std::string& out, std::string_view first, std::string_view rest,
                    std::string_view text) {
  const std::vector<std::string> lines = wrap(sanitize(text), kLineWidth - display_width(rest));
  for (std::size_t i = 0; i < lines.size(); ++i) {
    append_line(out, std::string(i == 0 ? first : rest) + lines[i]);
  }
}

std::string_view severity_color(Severity s) {
  switch (s) {
    case Severity::kError:
      return kRed;
    case Severity::kWarning:
      return kYellow;
    case Severity::kInfo:
      break;
  }
  return kDim;
}

// "log10_grad_ratio_first_to_last = -3 (threshold <= -2)"; context evidence (a NaN threshold)
// has no threshold to show.
std::string evidence_text(const Evidence& e, int finding_layer) {
  std::string out = e.quantity;
  if (e.layer != 0 && e.layer != finding_layer) out += fmt::format(" at layer {}", e.layer);
  out += " = " + format_number(e.value);
  if (!std::isnan(e.threshold)) {
    out += fmt::format(" (threshold {} {})", e.relation, format_number(e.threshold));
  }
  return out;
}

std::string check_text(const AdviceCheck& c) {
  const std::string after = c.findings_after.empty()
                                ? "no findings"
                                : fmt::format("{}", fmt::join(c.findings_after, ", "));
  return fmt::format("checked: {} {} -> {}; {}; after: {} ({})", c.metric, format_number(c.before),
                     format_number(c.after), c.helped ? "helped" : "did not help",
                     verdict_name(c.verdict_after), after);
}

// One advice: its sentence after `marker`, then one line per change and the check, under it.
void append_advice(std::string& out, std::string_view marker, const Advice& a) {
  constexpr std::string_view kIndent = "    ";
  const std::string first = std::string(kIndent) + std::string(marker);
  const std::string under = std::string(kIndent) + std::string(display_width(marker), ' ');
  append_wrapped(out, first, under, a.text);
  for (const ConfigChange& c : a.changes) {
    append_wrapped(out, under, under + "  ", set_argument(c));
  }
  if (a.check) append_wrapped(out, under, under + "  ", check_text(*a.check));
}

// One finding at `indent`: its head, explanation, evidence and advice.
void append_finding(std::string& out, const Finding& f, const Painter& paint,
                    const std::string& indent, const Report& r) {
  const std::string tag = fmt::format("[{}]", severity_name(f.severity));
  const std::string where =
      f.layer == 0 ? std::string("(whole network)") : fmt::format("at layer {}", f.layer);
  const std::string head = fmt::format(" {} {}", sanitize(f.code), where);
  // The tag is painted after the line is fitted, so colour never counts towards the width.
  append_line(out, indent + paint(tag, severity_color(f.severity)) +
                       fit(head, kLineWidth - indent.size() - display_width(tag)));
  const std::string body = indent + "  ";
  append_wrapped(out, body, body, f.explanation);
  for (const Evidence& e : f.evidence) {
    append_wrapped(out, body, body + "  ", evidence_text(e, f.layer));
  }
  for (const Advice& a : f.advice) append_advice(out, "-> ", a);
  if (f.cause.empty() && f.advice.empty() && f.severity != Severity::kInfo) {
    const std::string pieces = remedy_pieces_for(r, f.code);
    if (!pieces.empty()) {
      append_line(
          out, body + "-> fixed by the remedy's piece " + pieces + " (advice listed once, above)");
    }
  }
  if (!f.rejected_advice.empty()) {
    append_line(out, body + "tried and rejected (the check showed no improvement):");
    for (const Advice& a : f.rejected_advice) append_advice(out, "x  ", a);
  }
}

std::string diagnosis_block(const Report& r, const Painter& paint) {
  std::string out;
  std::string verdict = fmt::format("Verdict: {}", verdict_name(r.verdict));
  if (!r.findings.empty()) verdict += fmt::format(" ({})", finding_counts(r.findings));
  append_line(out, paint(verdict, kBold));
  if (r.findings.empty()) {
    append_line(out, "Findings: none");
    return out;
  }
  append_line(out, paint("Findings", kBold));
  for (const Finding& f : r.findings) {
    if (!f.cause.empty()) continue;
    append_finding(out, f, paint, "  ", r);
    if (f.consequences.empty()) continue;
    append_line(out, fmt::format("    consequences of {} (fixed with it):", sanitize(f.code)));
    for (const Finding& c : r.findings) {
      if (c.cause == f.code) append_finding(out, c, paint, "      ", r);
    }
  }
  return out;
}

// The one remedy, at the top: its pieces, the --set arguments that apply them all, and the check.
std::string remedy_block(const Report& r, const Painter& paint) {
  std::string out;
  if (!r.remedy) return out;
  const Remedy& remedy = *r.remedy;
  append_line(out, paint(fit(fmt::format("Remedy: {} ({})", remedy_headline(remedy, r.findings),
                                         remedy_status(remedy)),
                             kLineWidth),
                         kBold));
  for (std::size_t k = 0; k < remedy.pieces.size(); ++k) {
    const RemedyPiece& p = remedy.pieces[k];
    const std::string first = fmt::format("  {}. ", k + 1);
    append_wrapped(out, first, std::string(first.size(), ' '),
                   fmt::format("{} (for {})", p.text, fmt::join(p.addresses, ", ")));
  }
  if (!remedy.changes.empty()) {
    append_line(out,
                remedy.pieces.size() == 1 ? "  apply it with:" : "  apply them together with:");
    for (const ConfigChange& c : remedy.changes) {
      append_wrapped(out, "    ", "      ", set_argument(c));
    }
  }
  if (!remedy.not_addressed.empty()) {
    append_wrapped(out, "  ", "    ",
                   fmt::format("not addressed: {} (gradscope knows no fix for it, or none that "
                               "composes with the pieces chosen)",
                               fmt::join(remedy.not_addressed, ", ")));
  }
  if (remedy.check) {
    const RemedyCheck& c = *remedy.check;
    append_wrapped(
        out, "  ", "    ",
        fmt::format("after it: {}", c.findings_after.empty()
                                        ? std::string("no findings")
                                        : fmt::format("{}", fmt::join(c.findings_after, ", "))));
    for (const std::string& d : c.dropped) {
      append_wrapped(out, "  ", "    ", "dropped (the rest did as well without it): " + d);
    }
    for (const std::string& a : c.added) {
      append_wrapped(out, "  ", "    ",
                     "added (the re-run's own diagnosis, and it fixed more): " + a);
    }
  }
  return out;
}

}  // namespace

std::vector<bool> rows_to_show(const Report& report, int max_rows) {
  return select_rows(flag_rows(report.layers, report.summary), max_rows);
}

std::string report_to_text(const Report& report, const TextOptions& options) {
  const Painter paint{options.color};
  std::string out = header_block(report, paint);
  out += '\n';
  // First, what to do; the evidence follows.
  if (report.remedy) out += remedy_block(report, paint) + '\n';
  RowSelection rows;
  rows.flags = flag_rows(report.layers, report.summary);
  rows.keep = select_rows(rows.flags, options.max_rows);
  out += table_block(report, rows, paint);
  const std::string theory = theory_table_block(report, rows, paint);
  if (!theory.empty()) out += '\n' + theory;
  out += '\n';
  out += summary_block(report, paint);
  if (report.jacobian) out += jacobian_block(*report.jacobian);
  // Last, where a terminal leaves it in view: what the measurements above add up to.
  out += '\n';
  out += diagnosis_block(report, paint);
  return out;
}

}  // namespace gradscope
