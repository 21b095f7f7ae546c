// What changed between two reports (a base and a proposed change), and whether the change is a
// regression, as plain data. Comparing is app/compare.hpp; the writers io/ (JSON) and report/.
#pragma once

#include <string>
#include <vector>

namespace gradscope {

// A layer's value counts as changed beyond these: a hundredth of a decade in gradient (the text
// report prints log10 with two decimals), 1% of the activation rms, a tenth of a percentage point
// in the fractions (the reports print percentages with one decimal).
inline constexpr double kCompareLog10GradTol = 0.01;
inline constexpr double kCompareActRmsRelTol = 0.01;
inline constexpr double kCompareFractionTol = 0.001;
// The regression criterion on |log10 first-to-last gradient ratio|: one decade, a factor of ten.
inline constexpr double kRegressionRatioDecades = 1.0;

// One layer index, as each report has it. A side that lacks the layer has an empty kind and NaN
// values; a value the report wrote as null keeps its meaning (NaN, +-inf) from "<key>_status".
struct LayerDelta {
  int index = 0;
  std::string base_kind;  // "dense", "norm", ...; empty where the base lacks the layer
  std::string proposed_kind;
  double base_log10_grad = 0.0;  // log10 rms(dL/dh) (backward.grad_preact.log10_rms)
  double proposed_log10_grad = 0.0;
  double base_act_rms = 0.0;  // forward.act.rms
  double proposed_act_rms = 0.0;
  double base_dead_fraction = 0.0;  // forward.dead_fraction
  double proposed_dead_fraction = 0.0;
  double base_saturated_fraction = 0.0;  // forward.act.saturated_fraction
  double proposed_saturated_fraction = 0.0;
  // A side lacks the layer, the kinds differ, or a value moved beyond its tolerance above.
  bool changed = false;
};

// What a finding measured: its first evidence with a relation, the value the diagnosis tested
// against a threshold (the first evidence where none has one). An empty quantity: no evidence.
struct FindingMetric {
  std::string quantity;  // e.g. "dead_fraction", as the report's evidence names it
  double value = 0.0;    // NaN, +-inf where the report wrote null with a status
  std::string relation;  // ">=", "<=", ">", "<"; empty for context evidence
  double threshold = 0.0;
  int layer = 0;  // the layer the value is from (often the worst, not the finding's first); 0: all
};

// A finding matched by code across the two reports. The side without it has an empty severity
// (and layer 0, and an empty metric); layer 0 is also a whole-network finding, as in the reports.
struct FindingChange {
  std::string code;
  std::string base_severity;  // "info", "warning", "error"; empty: not in the base
  std::string proposed_severity;
  int base_layer = 0;  // the first layer where it shows
  int proposed_layer = 0;
  std::string explanation;  // the proposed report's; the base's for a finding that disappeared
  std::string cause;        // the root finding's code when this one is its consequence; else ""
  FindingMetric base_metric;
  FindingMetric proposed_metric;
};

struct Comparison {
  std::string base_name, proposed_name;  // config.name
  std::string base_path, proposed_path;  // as given to compare_reports, for the reader
  std::string base_verdict, proposed_verdict;
  double base_log10_ratio = 0.0;  // summary.log10_grad_ratio_first_to_last
  double proposed_log10_ratio = 0.0;
  int base_layer_count = 0;
  int proposed_layer_count = 0;
  std::vector<int> base_nonfinite_layers, proposed_nonfinite_layers;
  std::vector<LayerDelta> layers;          // every index of either report, in order
  std::vector<FindingChange> appeared;     // in the proposed report only
  std::vector<FindingChange> disappeared;  // in the base only
  std::vector<FindingChange> changed;      // in both, with another severity or layer
  // In both with the same severity and layer: what keeps the proposed verdict where it is. Their
  // metrics may have moved; each list is in the order of the proposed report (of the base's for
  // disappeared).
  std::vector<FindingChange> persisted;
  bool same_architecture = true;  // the same number of layers, of the same kinds
  // Nothing to report: same architecture, verdict, findings (by code, severity and layer) and
  // non-finite layers, no layer changed and the ratio within the layers' tolerance. A persisted
  // finding's metric is not compared: it is measured on the layers, which are.
  bool no_change = true;
  // The proposed report is worse by one of these criteria, and by nothing else: the verdict got
  // worse (healthy < warning < error); a warning or an error appeared, or a finding got more
  // severe; |log10 first-to-last gradient ratio| grew by more than kRegressionRatioDecades; a
  // layer index not in the base's summary.nonfinite_layers is in the proposed one's. Each one
  // that fired is in regression_reasons, in plain words. A persisted finding is never one, even
  // when its metric moved towards or further past its threshold: the severity is the judgement.
  bool regression = false;
  std::vector<std::string> regression_reasons;
};

}  // namespace gradscope
