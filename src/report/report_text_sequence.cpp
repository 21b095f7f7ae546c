// The text report's sections for sequence models: one row per attention op (its entropy beside a
// uniform row's, its largest logit, its peaked rows), and the per-parameter table (every learned
// tensor with its norm, gradient and update), shown for networks with attention or GLU ops or
// loaded weights.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/report/report_text.hpp"
#include "report/report_text_detail.hpp"
#include "report/text_format.hpp"

namespace gradscope::report_text_detail {

namespace {

using namespace text_format;

// ---- Attention

constexpr int kHeadsW = 5;
constexpr int kMaskW = 6;  // "causal", "full"
constexpr int kEntropyW = 8;
constexpr int kUniformW = 8;
constexpr int kLogitW = 9;
constexpr int kPeakedW = 8;

// entropy / uniform, the share of a uniform row's entropy left: low is entropy collapse.
double entropy_share(const LayerReport& l, int tokens) {
  return l.forward.attention_entropy / uniform_attention_entropy(tokens, l.attention.causal);
}

std::string attention_row(const LayerReport& l, int tokens, const RowFlag& flag,
                          const Painter& paint) {
  const ForwardStats& f = l.forward;
  std::string out = fmt::format(
      "{:>{}} {:>{}} {:>{}} {:>{}} {:>{}} {:>{}} {:>{}}", l.index, kLayerW, l.attention.heads,
      kHeadsW, l.attention.causal ? "causal" : "full", kMaskW,
      cell(format_number(f.attention_entropy), kEntropyW), kEntropyW,
      cell(format_number(uniform_attention_entropy(tokens, l.attention.causal)), kUniformW),
      kUniformW, cell(format_number(f.attention_max_logit), kLogitW), kLogitW,
      cell(format_percent(f.attention_peaked_fraction), kPeakedW), kPeakedW);
  if (!flag.note.empty()) out += "  " + paint(std::string(flag.note), kYellow);
  return out;
}

// ---- Parameters

constexpr int kNameW = 40;
constexpr int kShapeW = 12;
constexpr int kNormW = 9;
constexpr int kGradNormW = 9;
constexpr int kRatioW = 10;
constexpr int kParamUpdW = 9;
static_assert(kNameW + 1 + kLayerW + 1 + kShapeW + 1 + kNormW + 1 + kGradNormW + 1 + kRatioW + 1 +
                      kParamUpdW + 2 + kNoteW <=
                  static_cast<int>(kLineWidth),
              "the parameter table must fit 120 columns");

bool param_nonfinite(const ParamStats& p) {
  return p.grad_nonfinite > 0 || std::isnan(p.grad_norm.log10) || std::isinf(p.grad_norm.value);
}

std::string parameter_row(const ParameterReport& p, bool update, const RowFlag& flag,
                          const Painter& paint) {
  const ParamStats& s = p.stats;
  std::string out = fmt::format("{:<{}} {:>{}} {:<{}} {:>{}} ", cell(sanitize(p.name), kNameW),
                                kNameW, p.layer, kLayerW, cell(shape_label(s.shape), kShapeW),
                                kShapeW, cell(format_number(s.norm), kNormW), kNormW);
  out += paint(fmt::format("{:>{}}", cell(magnitude_cell(s.grad_norm), kGradNormW), kGradNormW),
               flag.nonfinite ? kRed : std::string_view{});
  out += fmt::format(" {:>{}}", cell(param_ratio_cell(grad_to_param(s), s.norm), kRatioW), kRatioW);
  if (update) {
    out += fmt::format(" {:>{}}",
                       cell(param_ratio_cell(s.update_to_weight, s.norm, s.has_update), kParamUpdW),
                       kParamUpdW);
  }
  if (!flag.note.empty()) {
    out += "  " + paint(cell(std::string(flag.note), kNoteW), flag.nonfinite ? kRed : kYellow);
  }
  // A blank update cell ends the line without a note: no trailing blanks.
  out.erase(out.find_last_not_of(' ') + 1);
  return out;
}

// The parameters' flags for select_rows: the first and the last, the first with a non-finite
// gradient, and the largest and smallest gradient-to-parameter ratios are always shown.
std::vector<RowFlag> parameter_flags(const std::vector<ParameterReport>& params) {
  std::vector<RowFlag> flags(params.size());
  if (params.empty()) return flags;
  flags.front().mandatory = true;
  flags.back().mandatory = true;
  bool seen_nonfinite = false;
  std::size_t lo = params.size();
  std::size_t hi = params.size();
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (param_nonfinite(params[i].stats)) {
      flags[i].nonfinite = true;
      flags[i].note = "non-finite";
      flags[i].mandatory = flags[i].mandatory || !seen_nonfinite;
      seen_nonfinite = true;
      continue;
    }
    const double v = grad_to_param(params[i].stats).log10;
    if (std::isnan(v)) continue;
    if (lo == params.size() || v < grad_to_param(params[lo].stats).log10) lo = i;
    if (hi == params.size() || v > grad_to_param(params[hi].stats).log10) hi = i;
  }
  if (lo != hi && lo < params.size()) {
    flags[lo].note = "smallest";
    flags[lo].mandatory = true;
  }
  if (lo != hi && hi < params.size()) {
    flags[hi].note = "largest";
    flags[hi].mandatory = true;
  }
  return flags;
}

}  // namespace

std::string attention_block(const Report& r, int max_rows, const Painter& paint) {
  std::vector<const LayerReport*> ops;
  for (const LayerReport& l : r.layers) {
    if (l.kind == OpKind::kAttention) ops.push_back(&l);
  }
  if (ops.empty()) return "";
  const int tokens = r.spec.input.tokens;
  const bool any_causal =
      std::any_of(ops.begin(), ops.end(), [](const LayerReport* l) { return l->attention.causal; });
  const bool any_full = std::any_of(ops.begin(), ops.end(),
                                    [](const LayerReport* l) { return !l->attention.causal; });
  std::string out;
  std::vector<std::string> uniform;
  if (any_full) {
    uniform.push_back(fmt::format("full mask, ln T = ln {} = {}", tokens,
                                  format_number(uniform_attention_entropy(tokens, false))));
  }
  if (any_causal) {
    uniform.push_back(fmt::format("causal, mean over queries t of ln(t + 1) = {}",
                                  format_number(uniform_attention_entropy(tokens, true))));
  }
  append_line(out,
              paint(fit(fmt::format("attention ({} op{}, {} tokens; entropy of a uniform row: {})",
                                    ops.size(), ops.size() == 1 ? "" : "s", tokens,
                                    fmt::join(uniform, "; ")),
                        kLineWidth),
                    kBold));
  append_line(
      out, paint(fmt::format("{:>{}} {:>{}} {:>{}} {:>{}} {:>{}} {:>{}} {:>{}}", "layer", kLayerW,
                             "heads", kHeadsW, "mask", kMaskW, "entropy", kEntropyW, "uniform",
                             kUniformW, "max logit", kLogitW, "peaked %", kPeakedW),
                 kBold));
  // The first and the last op, and the one furthest below its uniform entropy, always show.
  std::vector<RowFlag> flags(ops.size());
  flags.front().mandatory = true;
  flags.back().mandatory = true;
  std::size_t lowest = ops.size();
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const double share = entropy_share(*ops[i], tokens);
    if (std::isnan(share)) continue;
    if (lowest == ops.size() || share < entropy_share(*ops[lowest], tokens)) lowest = i;
  }
  if (lowest < ops.size() && ops.size() > 1) {
    flags[lowest].mandatory = true;
    flags[lowest].note = "lowest entropy";
  }
  const std::vector<bool> keep = select_rows(flags, max_rows);
  append_rows(
      out, keep, paint,
      [&](std::size_t i) { return attention_row(*ops[i], tokens, flags[i], paint); },
      "attention op");
  append_line(out, fit("entropy: mean over rows (example, head, query) of -sum P ln P, nats; far "
                       "below uniform: few keys seen (entropy collapse)",
                       kLineWidth));
  append_line(out, fit("entropy near uniform in every op with tokens cos near 1: attention "
                       "averages the tokens into one vector (rank collapse)",
                       kLineWidth));
  append_line(out, fit("max logit: largest scaled logit q.k over unmasked entries (large: "
                       "saturated softmax); peaked %: rows with max P > 0.99",
                       kLineWidth));
  return out;
}

std::string parameters_block(const Report& r, int max_rows, const Painter& paint) {
  if (!shows_parameters(r)) return "";
  const std::vector<ParameterReport>& params = r.parameter_list;
  const bool update = std::any_of(params.begin(), params.end(),
                                  [](const ParameterReport& p) { return p.stats.has_update; });
  std::string out;
  append_line(out,
              paint(fmt::format("parameters ({} learned tensors, input side first)", params.size()),
                    kBold));
  std::string head =
      fmt::format("{:<{}} {:>{}} {:<{}} {:>{}} {:>{}} {:>{}}", "name", kNameW, "layer", kLayerW,
                  "shape", kShapeW, "norm", kNormW, "grad norm", kGradNormW, "grad/param", kRatioW);
  if (update) head += fmt::format(" {:>{}}", "update", kParamUpdW);
  append_line(out, paint(head, kBold));
  const std::vector<RowFlag> flags = parameter_flags(params);
  const std::vector<bool> keep = select_rows(flags, max_rows);
  append_rows(
      out, keep, paint,
      [&](std::size_t i) { return parameter_row(params[i], update, flags[i], paint); },
      "parameter");
  append_line(out, fit("grad/param: ||dL/dp|| / ||p||, - for a tensor that is 0; largest, "
                       "smallest: its extremes over the tensors",
                       kLineWidth));
  if (update) {
    append_line(
        out, fit("update: ||one optimizer step on p|| / ||p|| (rule of thumb ~1e-3)", kLineWidth));
  }
  return out;
}

}  // namespace gradscope::report_text_detail

namespace gradscope {

std::vector<bool> parameters_to_show(const Report& report, int max_rows) {
  using namespace report_text_detail;
  return select_rows(parameter_flags(report.parameter_list), max_rows);
}

}  // namespace gradscope
