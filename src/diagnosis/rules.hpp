// The rules as a table: one row per finding code (its problem metric and the rule that raises the
// finding), so that each finding's metric is the one --check-advice compares, by construction.
#pragma once

#include <array>
#include <optional>
#include <vector>

#include "diagnosis/init_theory.hpp"
#include "diagnosis/measures.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"

namespace gradscope::diagnosis_detail {

// A finding as a rule raises it, before root causes group the findings.
struct Draft {
  FindingCode code;
  Finding f;
  ProblemMetric metric;  // its row's metric on the report: what problem_metric gives
  int cause = -1;        // grouping: the index of the root draft this is a consequence of
};

// What the rules read: the report, its thresholds and the network's shape; the common mistakes'
// rows also the problem score of the measured findings and theory's init.
struct RuleContext {
  explicit RuleContext(const Report& report)
      : r(report), d(report.spec.diagnosis), s(shape_of(report)) {}
  const Report& r;
  const DiagnosisSpec& d;
  Shape s;
  std::optional<int> score;          // set before the common mistakes' rows run
  const InitAdvice* init = nullptr;  // likewise
  const LayerReport& at(int i) const { return r.layers[static_cast<std::size_t>(i)]; }
};

// A row: the finding's problem metric (value >= threshold is a problem, higher is worse), and the
// rule, which gets that metric and raises the finding or not.
struct Rule {
  FindingCode code;
  ProblemMetric (*metric)(const RuleContext&);
  std::optional<Finding> (*evaluate)(const RuleContext&, const ProblemMetric&);
};

// Indexed by FindingCode, like the registry.
const std::array<Rule, kFindingCodeCount>& rule_table();

// The measured problems' rows, in table order.
std::vector<Draft> measured_findings(const RuleContext& c);
// The common mistakes' rows; c.score and c.init must be set.
std::vector<Draft> mistake_findings(const RuleContext& c);
// Warnings count 1, errors 2.
int problem_score(const std::vector<Draft>& measured);

// ---- For the rows (rules_measured.cpp, rules_mistakes.cpp)

Finding make(FindingCode code, Severity severity, int layer);
Evidence ev(std::string quantity, double value, std::string relation, double threshold, int layer);
Evidence context(std::string quantity, double value, int layer);

using RuleResult = std::optional<Finding>;
RuleResult vanishing_gradients(const RuleContext& c, const ProblemMetric& m);
RuleResult exploding_gradients(const RuleContext& c, const ProblemMetric& m);
RuleResult collapsing_activations(const RuleContext& c, const ProblemMetric& m);
RuleResult exploding_activations(const RuleContext& c, const ProblemMetric& m);
RuleResult non_finite(const RuleContext& c, const ProblemMetric& m);
RuleResult dead_units(const RuleContext& c, const ProblemMetric& m);
RuleResult saturated_units(const RuleContext& c, const ProblemMetric& m);
RuleResult correlation_collapse(const RuleContext& c, const ProblemMetric& m);
RuleResult fp16_gradient_underflow(const RuleContext& c, const ProblemMetric& m);
RuleResult fp16_activation_overflow(const RuleContext& c, const ProblemMetric& m);
RuleResult bf16_gradient_underflow(const RuleContext& c, const ProblemMetric& m);
RuleResult update_ratio(const RuleContext& c, const ProblemMetric& m);
RuleResult rank_collapse(const RuleContext& c, const ProblemMetric& m);
RuleResult attention_entropy_collapse(const RuleContext& c, const ProblemMetric& m);
RuleResult attention_uniform(const RuleContext& c, const ProblemMetric& m);
RuleResult exploding_attention_logits(const RuleContext& c, const ProblemMetric& m);
RuleResult postnorm_gradient_imbalance(const RuleContext& c, const ProblemMetric& m);
RuleResult residual_stream_growth(const RuleContext& c, const ProblemMetric& m);
RuleResult exploding_partial_jacobian(const RuleContext& c, const ProblemMetric& m);
ProblemMetric mean_shift_metric(const RuleContext& c);
RuleResult mean_shift(const RuleContext& c, const ProblemMetric& m);
RuleResult saturating_hidden_activation(const RuleContext& c, const ProblemMetric& m);
RuleResult mismatched_init(const RuleContext& c, const ProblemMetric& m);
RuleResult sigmoid_output_multiclass(const RuleContext& c, const ProblemMetric& m);
RuleResult plain_deep_stack(const RuleContext& c, const ProblemMetric& m);
RuleResult unnormalized_input(const RuleContext& c, const ProblemMetric& m);

// The sequence findings' metrics (rules_measured.cpp, beside their rules).
ProblemMetric token_cosine_metric(const RuleContext& c);
ProblemMetric entropy_collapse_metric(const RuleContext& c);
ProblemMetric entropy_uniform_metric(const RuleContext& c);
ProblemMetric max_logit_metric(const RuleContext& c);
ProblemMetric postnorm_metric(const RuleContext& c);
ProblemMetric residual_growth_metric(const RuleContext& c);
ProblemMetric apjn_growth_metric(const RuleContext& c);

// The lowest and highest gradient rms of any layer (log10, at the scale of a mean-over-batch
// loss) and where the lowest is: what the half-precision underflow rows and metrics read.
struct GradientRange {
  double lowest = kInf;
  double highest = -kInf;
  int lowest_layer = 0;
};
GradientRange gradient_range(const RuleContext& c);

}  // namespace gradscope::diagnosis_detail
