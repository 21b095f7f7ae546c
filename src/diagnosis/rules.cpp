// The rules table: for each finding code its problem metric and its rule, checked against the
// registry's enum, and problem_metric, which reads the same table.
#include "diagnosis/rules.hpp"

#include <algorithm>
#include <cmath>

namespace gradscope::diagnosis_detail {

namespace {

// ---- The problem metrics (diagnosis.hpp's problem_metric)

// Undefined gradients (NaN) are as bad as any; an exactly-zero one vanishes completely.
ProblemMetric gradient_metric(const RuleContext& c, bool vanishing) {
  const LayerReport& first = c.r.layers.front();
  const LayerReport& last = c.r.layers.back();
  if (!gradient_valid(first) || !gradient_valid(last)) return {kInf, c.d.gradient_warning_decades};
  // Net of what pooling's geometry alone takes from the per-entry rms (measures.hpp).
  const double ratio = c.r.summary.log10_grad_ratio_first_to_last - c.s.pool_share.front();
  if (std::isnan(ratio)) return {kInf, c.d.gradient_warning_decades};
  return {vanishing ? -ratio : ratio, c.d.gradient_warning_decades};
}
ProblemMetric vanishing_metric(const RuleContext& c) { return gradient_metric(c, true); }
ProblemMetric exploding_metric(const RuleContext& c) { return gradient_metric(c, false); }

ProblemMetric activation_metric(const RuleContext& c, bool low) {
  double worst = -kInf;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) {
      if (!low) worst = kInf;  // an overflow is the furthest an explosion goes
      break;
    }
    if (c.s.is_zero_by_design(l)) continue;  // a zero-initialised branch's zeros (Fixup)
    const double a = act_log10_rel_input(l, c.s);
    if (!std::isnan(a)) worst = std::max(worst, low ? -a : a);
  }
  return {worst, c.d.activation_warning_decades};
}
ProblemMetric collapsing_metric(const RuleContext& c) { return activation_metric(c, true); }
ProblemMetric exploding_act_metric(const RuleContext& c) { return activation_metric(c, false); }

ProblemMetric non_finite_metric(const RuleContext& c) {
  return {static_cast<double>(c.r.summary.nonfinite_layers.size()), 1.0};
}

ProblemMetric unit_metric(const RuleContext& c, bool dead) {
  double worst = 0.0;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) break;
    if (!(l.kind == OpKind::kDense || l.kind == OpKind::kActivation)) continue;
    if (is_bounded(l.activation.kind) == dead || c.s.is_zero_by_design(l)) continue;
    worst = std::max(worst, dead ? l.forward.dead_fraction : l.forward.saturated_fraction);
  }
  return {worst, dead ? c.d.dead_fraction : c.d.saturated_fraction};
}
ProblemMetric dead_metric(const RuleContext& c) { return unit_metric(c, true); }
ProblemMetric saturated_metric(const RuleContext& c) { return unit_metric(c, false); }

ProblemMetric correlation_metric(const RuleContext& c) {
  double worst = -1.0;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) break;
    if (std::isfinite(l.forward.correlation)) worst = std::max(worst, l.forward.correlation);
  }
  return {worst, c.d.correlation};
}

ProblemMetric fp16_gradient_metric(const RuleContext& c) {
  return {kFp16MinNormalLog10 - gradient_range(c).lowest, 0.0};
}
ProblemMetric bf16_gradient_metric(const RuleContext& c) {
  return {kBf16MinNormalLog10 - gradient_range(c).lowest, 0.0};
}

ProblemMetric fp16_activation_metric(const RuleContext& c) {
  double largest = -kInf;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) {
      largest = kInf;
      break;
    }
    const double v = max_abs_act(l);
    if (v > 0 && std::isfinite(v)) largest = std::max(largest, std::log10(v));
  }
  return {largest - kFp16MaxLog10, 0.0};
}

ProblemMetric update_metric(const RuleContext& c) { return {update_scan(c.r).excess, 0.0}; }

// A common mistake that causes no measured problem is only worth a note: its metric is the
// measured findings' problem score.
ProblemMetric score_metric(const RuleContext& c) {
  const int score = c.score ? *c.score : problem_score(measured_findings(c));
  return {static_cast<double>(score), 1.0};
}

ProblemMetric output_floor_metric(const RuleContext& c) {
  return {bounded_output_loss_floor(c.r, c.s), 1e-9};
}

ProblemMetric input_metric(const RuleContext& c) { return {input_scale_excess(c.s), 0.0}; }

constexpr std::array<Rule, kFindingCodeCount> kRules{{
    {FindingCode::kVanishingGradients, vanishing_metric, vanishing_gradients},
    {FindingCode::kExplodingGradients, exploding_metric, exploding_gradients},
    {FindingCode::kCollapsingActivations, collapsing_metric, collapsing_activations},
    {FindingCode::kExplodingActivations, exploding_act_metric, exploding_activations},
    {FindingCode::kNonFinite, non_finite_metric, non_finite},
    {FindingCode::kDeadUnits, dead_metric, dead_units},
    {FindingCode::kSaturatedUnits, saturated_metric, saturated_units},
    {FindingCode::kCorrelationCollapse, correlation_metric, correlation_collapse},
    {FindingCode::kFp16GradientUnderflow, fp16_gradient_metric, fp16_gradient_underflow},
    {FindingCode::kFp16ActivationOverflow, fp16_activation_metric, fp16_activation_overflow},
    {FindingCode::kBf16GradientUnderflow, bf16_gradient_metric, bf16_gradient_underflow},
    {FindingCode::kUpdateRatio, update_metric, update_ratio},
    {FindingCode::kRankCollapse, token_cosine_metric, rank_collapse},
    {FindingCode::kAttentionEntropyCollapse, entropy_collapse_metric, attention_entropy_collapse},
    {FindingCode::kAttentionUniform, entropy_uniform_metric, attention_uniform},
    {FindingCode::kExplodingAttentionLogits, max_logit_metric, exploding_attention_logits},
    {FindingCode::kPostnormGradientImbalance, postnorm_metric, postnorm_gradient_imbalance},
    {FindingCode::kResidualStreamGrowth, residual_growth_metric, residual_stream_growth},
    {FindingCode::kExplodingPartialJacobian, apjn_growth_metric, exploding_partial_jacobian},
    {FindingCode::kSaturatingHiddenActivation, score_metric, saturating_hidden_activation},
    {FindingCode::kMismatchedInit, score_metric, mismatched_init},
    {FindingCode::kSigmoidOutputMulticlass, output_floor_metric, sigmoid_output_multiclass},
    {FindingCode::kPlainDeepStack, score_metric, plain_deep_stack},
    {FindingCode::kUnnormalizedInput, input_metric, unnormalized_input},
}};

// One row per finding code, in the enum's order: a code added to the registry without a rule
// (or a rule out of place) fails to compile.
static_assert(kRules.size() == static_cast<std::size_t>(kFindingCodeCount));
constexpr bool rules_in_enum_order() {
  for (std::size_t i = 0; i < kRules.size(); ++i) {
    if (static_cast<std::size_t>(kRules[i].code) != i) return false;
  }
  return true;
}
static_assert(rules_in_enum_order(), "kRules must follow FindingCode's order");

std::vector<Draft> run_rows(const RuleContext& c, bool measured) {
  std::vector<Draft> out;
  for (const Rule& rule : kRules) {
    if (finding_info(rule.code).measured != measured) continue;
    const ProblemMetric m = rule.metric(c);
    if (std::optional<Finding> f = rule.evaluate(c, m)) out.push_back({rule.code, *f, m});
  }
  return out;
}

}  // namespace

const std::array<Rule, kFindingCodeCount>& rule_table() { return kRules; }

std::vector<Draft> measured_findings(const RuleContext& c) { return run_rows(c, true); }

std::vector<Draft> mistake_findings(const RuleContext& c) { return run_rows(c, false); }

int problem_score(const std::vector<Draft>& measured) {
  int score = 0;
  for (const Draft& d : measured) {
    if (d.f.severity == Severity::kWarning) score += 1;
    if (d.f.severity == Severity::kError) score += 2;
  }
  return score;
}

Finding make(FindingCode code, Severity severity, int layer) {
  Finding f;
  f.code = std::string(finding_info(code).name);
  f.severity = severity;
  f.layer = layer;
  return f;
}

Evidence ev(std::string quantity, double value, std::string relation, double threshold, int layer) {
  return Evidence{std::move(quantity), value, std::move(relation), threshold, layer};
}

Evidence context(std::string quantity, double value, int layer) {
  return Evidence{std::move(quantity), value, "", kNaN, layer};
}

GradientRange gradient_range(const RuleContext& c) {
  // Exactly-zero gradients are the vanishing rule's; non-finite ones are undefined.
  GradientRange g;
  for (const LayerReport& l : c.r.layers) {
    if (!gradient_valid(l)) continue;
    const double v = grad_log10(l) + c.s.grad_scale_log10;
    if (!std::isfinite(v)) continue;
    if (v < g.lowest) {
      g.lowest = v;
      g.lowest_layer = l.index;
    }
    g.highest = std::max(g.highest, v);
  }
  return g;
}

}  // namespace gradscope::diagnosis_detail

namespace gradscope {

ProblemMetric problem_metric(FindingCode code, const Report& r) {
  const diagnosis_detail::RuleContext c(r);
  return diagnosis_detail::rule_table()[static_cast<std::size_t>(code)].metric(c);
}

std::vector<FindingCode> rule_codes() {
  std::vector<FindingCode> codes;
  for (const diagnosis_detail::Rule& rule : diagnosis_detail::rule_table())
    codes.push_back(rule.code);
  return codes;
}

}  // namespace gradscope
