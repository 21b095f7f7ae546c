// `gradscope compare` on structs: two reports matched layer by layer (by index) and finding by
// finding (by code), and whether the proposed one is a regression. Reading them is io's.
#include "gradscope/app/compare.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/io/report_json.hpp"

namespace gradscope {

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// `gradscope run` always writes OUT/<name>.json, whatever --format prints; --out names a folder.
constexpr std::string_view kReportHint =
    "compare takes two JSON reports that gradscope run writes: `gradscope run CONFIG --out DIR` "
    "writes DIR/<name>.json (<name>: the config's name, or --name); then `gradscope compare "
    "DIR/BASE.json DIR/PROPOSED.json`";

constexpr std::array<std::string_view, 3> kSeverities = {"info", "warning", "error"};
constexpr std::array<std::string_view, 3> kVerdicts = {"healthy", "warning", "error"};

// The rank of `name` in `names` (least serious first), or -1.
int rank_of(std::string_view name, const std::array<std::string_view, 3>& names) {
  const auto it = std::find(names.begin(), names.end(), name);
  return it == names.end() ? -1 : static_cast<int>(it - names.begin());
}

// ---- What is compared of a layer, as the JSON report states it.

// forward.act.rms: undefined (NaN) without a finite entry, as the report writes it.
double act_rms(const LayerReport& l) {
  return l.forward.act.finite == 0 ? kNan : l.forward.act.rms;
}

// What a finding measured: its first evidence with a relation (the tested value), else the
// first; empty without any.
FindingMetric finding_metric(const Finding& f) {
  if (f.evidence.empty()) return {};
  const auto tested = std::find_if(f.evidence.begin(), f.evidence.end(),
                                   [](const Evidence& e) { return !e.relation.empty(); });
  const Evidence& e = tested == f.evidence.end() ? f.evidence.front() : *tested;
  return FindingMetric{e.quantity, e.value, e.relation, e.threshold, e.layer};
}

// ---- Comparing.

// Whether two values differ: beyond `tolerance` when both are finite, otherwise when they are not
// the same non-finite value (NaN against NaN is no change).
bool differ(double a, double b, double tolerance) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) != std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a != b;
  return std::abs(a - b) > tolerance;
}

bool layer_changed(const LayerDelta& d) {
  if (d.base_kind != d.proposed_kind) return true;  // also where a side lacks the layer
  const double act_tol =
      kCompareActRmsRelTol * std::max(std::abs(d.base_act_rms), std::abs(d.proposed_act_rms));
  return differ(d.base_log10_grad, d.proposed_log10_grad, kCompareLog10GradTol) ||
         differ(d.base_act_rms, d.proposed_act_rms, act_tol) ||
         differ(d.base_dead_fraction, d.proposed_dead_fraction, kCompareFractionTol) ||
         differ(d.base_saturated_fraction, d.proposed_saturated_fraction, kCompareFractionTol);
}

std::vector<LayerDelta> match_layers(const Report& base, const Report& proposed) {
  std::map<int, LayerDelta> by_index;
  const auto blank = [](int index) {
    LayerDelta d;
    d.index = index;
    d.base_log10_grad = d.proposed_log10_grad = kNan;
    d.base_act_rms = d.proposed_act_rms = kNan;
    d.base_dead_fraction = d.proposed_dead_fraction = kNan;
    d.base_saturated_fraction = d.proposed_saturated_fraction = kNan;
    return d;
  };
  for (const LayerReport& l : base.layers) {
    LayerDelta& d = by_index.try_emplace(l.index, blank(l.index)).first->second;
    d.base_kind = std::string(layer_kind_name(l.kind));
    d.base_log10_grad = l.backward.grad_preact_rms.log10;
    d.base_act_rms = act_rms(l);
    d.base_dead_fraction = l.forward.dead_fraction;
    d.base_saturated_fraction = l.forward.saturated_fraction;
  }
  for (const LayerReport& l : proposed.layers) {
    LayerDelta& d = by_index.try_emplace(l.index, blank(l.index)).first->second;
    d.proposed_kind = std::string(layer_kind_name(l.kind));
    d.proposed_log10_grad = l.backward.grad_preact_rms.log10;
    d.proposed_act_rms = act_rms(l);
    d.proposed_dead_fraction = l.forward.dead_fraction;
    d.proposed_saturated_fraction = l.forward.saturated_fraction;
  }
  std::vector<LayerDelta> out;
  for (auto& [index, d] : by_index) {
    d.changed = layer_changed(d);
    out.push_back(std::move(d));
  }
  return out;
}

// One side of a finding: `change` gets its severity, layer and metric on the `base` side or the
// proposed one; code, explanation and cause are the caller's to choose.
void set_side(FindingChange& change, const Finding& f, bool base) {
  (base ? change.base_severity : change.proposed_severity) = std::string(severity_name(f.severity));
  (base ? change.base_layer : change.proposed_layer) = f.layer;
  (base ? change.base_metric : change.proposed_metric) = finding_metric(f);
}

// Findings matched by code. The diagnosis writes one finding per code, at the first layer where
// the problem shows, so a finding whose layer moved is the same problem starting elsewhere: it is
// matched, and listed as changed. A report may hold a code twice (compare reads any report): those
// pair at the same layer first, then the rest in the order of the reports.
void match_findings(const Report& base, const Report& proposed, Comparison& c) {
  constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> partner(proposed.findings.size(), kNone);  // index into base.findings
  std::vector<bool> taken(base.findings.size(), false);
  for (const bool same_layer_only : {true, false}) {
    for (std::size_t p = 0; p < proposed.findings.size(); ++p) {
      if (partner[p] != kNone) continue;
      const Finding& pf = proposed.findings[p];
      for (std::size_t b = 0; b < base.findings.size(); ++b) {
        const Finding& bf = base.findings[b];
        if (taken[b] || bf.code != pf.code || (same_layer_only && bf.layer != pf.layer)) continue;
        partner[p] = b;
        taken[b] = true;
        break;
      }
    }
  }
  for (std::size_t p = 0; p < proposed.findings.size(); ++p) {
    const Finding& pf = proposed.findings[p];
    FindingChange change;
    change.code = pf.code;
    change.explanation = pf.explanation;
    change.cause = pf.cause;
    set_side(change, pf, false);
    if (partner[p] == kNone) {
      c.appeared.push_back(std::move(change));
      continue;
    }
    const Finding& bf = base.findings[partner[p]];
    set_side(change, bf, true);
    const bool same = bf.severity == pf.severity && bf.layer == pf.layer;
    (same ? c.persisted : c.changed).push_back(std::move(change));
  }
  for (std::size_t b = 0; b < base.findings.size(); ++b) {
    if (taken[b]) continue;
    const Finding& bf = base.findings[b];
    FindingChange change;
    change.code = bf.code;
    change.explanation = bf.explanation;
    change.cause = bf.cause;
    set_side(change, bf, true);
    c.disappeared.push_back(std::move(change));
  }
}

// The layers' (index, kind) in index order.
std::vector<std::pair<int, OpKind>> architecture(const Report& r) {
  std::vector<std::pair<int, OpKind>> out;
  for (const LayerReport& l : r.layers) out.emplace_back(l.index, l.kind);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

bool same_architecture(const Report& base, const Report& proposed) {
  return architecture(base) == architecture(proposed);
}

// Two decimals through std::to_chars: the same text in every locale, whatever fmt would do.
std::string fixed2(double v) {
  std::array<char, 64> buf{};
  const auto [end, ec] =
      std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed, 2);
  if (ec != std::errc()) return "?";
  return std::string(buf.data(), end);
}

std::string where(int layer) {
  return layer == 0 ? std::string("in the whole network") : "at layer " + std::to_string(layer);
}

// "3, 7-9, 12": sorted indices with runs collapsed.
std::string index_ranges(std::vector<int> indices) {
  std::sort(indices.begin(), indices.end());
  std::string out;
  for (std::size_t i = 0; i < indices.size();) {
    std::size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += std::to_string(indices[i]);
    if (j > i) {
      // Appended in two steps: `"-" + std::to_string(...)` trips g++ 12's false -Wrestrict.
      out += '-';
      out += std::to_string(indices[j]);
    }
    i = j + 1;
  }
  return out;
}

// The criteria documented at Comparison::regression, and nothing else.
void judge(Comparison& c) {
  const int base_verdict = rank_of(c.base_verdict, kVerdicts);
  const int proposed_verdict = rank_of(c.proposed_verdict, kVerdicts);
  if (proposed_verdict > base_verdict) {
    c.regression_reasons.push_back("the verdict got worse: " + c.base_verdict + " -> " +
                                   c.proposed_verdict);
  }
  for (const FindingChange& f : c.appeared) {
    if (rank_of(f.proposed_severity, kSeverities) < rank_of("warning", kSeverities)) continue;
    c.regression_reasons.push_back(
        std::string(f.proposed_severity == "error" ? "an error" : "a warning") +
        " appeared: " + f.code + " " + where(f.proposed_layer) +
        (f.cause.empty() ? "" : " (a consequence of " + f.cause + ")"));
  }
  for (const FindingChange& f : c.changed) {
    if (rank_of(f.proposed_severity, kSeverities) <= rank_of(f.base_severity, kSeverities)) {
      continue;
    }
    c.regression_reasons.push_back(f.code + " got more severe: " + f.base_severity + " -> " +
                                   f.proposed_severity);
  }
  // NaN compares false here: a ratio that became NaN comes with non-finite layers, caught below.
  const double growth = std::abs(c.proposed_log10_ratio) - std::abs(c.base_log10_ratio);
  if (growth > kRegressionRatioDecades) {
    c.regression_reasons.push_back("the first-to-last gradient ratio moved " + fixed2(growth) +
                                   " decades further from 1: log10 " + fixed2(c.base_log10_ratio) +
                                   " -> " + fixed2(c.proposed_log10_ratio));
  }
  std::vector<int> new_nonfinite;
  for (const int l : c.proposed_nonfinite_layers) {
    if (std::find(c.base_nonfinite_layers.begin(), c.base_nonfinite_layers.end(), l) ==
        c.base_nonfinite_layers.end()) {
      new_nonfinite.push_back(l);
    }
  }
  if (!new_nonfinite.empty()) {
    c.regression_reasons.push_back(std::string("non-finite values appeared at layer") +
                                   (new_nonfinite.size() == 1 ? " " : "s ") +
                                   index_ranges(new_nonfinite));
  }
  c.regression = !c.regression_reasons.empty();
}

// A report read for compare: errors name the file and the JSON path, as report_from_json's do.
Report read_report_to_compare(const std::string& text, const std::string& path) {
  try {
    return report_from_json(text, path);
  } catch (const Error& e) {
    // The reader's general hint, said for compare: what to run to get the two reports.
    if (e.hint() != kReportFileHint) throw;
    throw Error(e.what(), std::string(kReportHint), e.code());
  }
}

}  // namespace

Comparison compare_reports(const Report& base, const Report& proposed, const std::string& base_path,
                           const std::string& proposed_path) {
  Comparison c;
  c.base_name = base.spec.name;
  c.proposed_name = proposed.spec.name;
  c.base_path = base_path;
  c.proposed_path = proposed_path;
  c.base_verdict = std::string(verdict_name(base.verdict));
  c.proposed_verdict = std::string(verdict_name(proposed.verdict));
  c.base_log10_ratio = base.summary.log10_grad_ratio_first_to_last;
  c.proposed_log10_ratio = proposed.summary.log10_grad_ratio_first_to_last;
  c.base_layer_count = static_cast<int>(base.layers.size());
  c.proposed_layer_count = static_cast<int>(proposed.layers.size());
  c.base_nonfinite_layers = base.summary.nonfinite_layers;
  c.proposed_nonfinite_layers = proposed.summary.nonfinite_layers;
  std::sort(c.base_nonfinite_layers.begin(), c.base_nonfinite_layers.end());
  std::sort(c.proposed_nonfinite_layers.begin(), c.proposed_nonfinite_layers.end());
  c.layers = match_layers(base, proposed);
  match_findings(base, proposed, c);
  c.same_architecture = same_architecture(base, proposed);
  judge(c);
  c.no_change =
      c.same_architecture && c.base_verdict == c.proposed_verdict && c.appeared.empty() &&
      c.disappeared.empty() && c.changed.empty() &&
      c.base_nonfinite_layers == c.proposed_nonfinite_layers &&
      !differ(c.base_log10_ratio, c.proposed_log10_ratio, kCompareLog10GradTol) &&
      std::none_of(c.layers.begin(), c.layers.end(), [](const LayerDelta& d) { return d.changed; });
  return c;
}

Comparison compare_report_json(const std::string& base_json, const std::string& proposed_json,
                               const std::string& base_path, const std::string& proposed_path) {
  const Report base = read_report_to_compare(base_json, base_path);
  const Report proposed = read_report_to_compare(proposed_json, proposed_path);
  return compare_reports(base, proposed, base_path, proposed_path);
}

}  // namespace gradscope
