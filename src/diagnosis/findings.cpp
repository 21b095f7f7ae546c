// The finding registry: every finding's stable code, one line on it, its problem metric in words,
// and whether it is measured; the severity and verdict names.
#include <string_view>

#include "gradscope/diagnosis/diagnosis.hpp"

namespace gradscope {

namespace {

constexpr std::array<FindingInfo, kFindingCodeCount> kFindings{{
    {FindingCode::kVanishingGradients, "vanishing_gradients",
     "the gradient shrinks from the last layer to the first by more than the threshold",
     "decades of shrink, -log10 rms(dL/dh first) / rms(dL/dh last)", true},
    {FindingCode::kExplodingGradients, "exploding_gradients",
     "the gradient grows from the last layer to the first by more than the threshold",
     "decades of growth, log10 rms(dL/dh first) / rms(dL/dh last)", true},
    {FindingCode::kCollapsingActivations, "collapsing_activations",
     "a layer's output rms falls below the input's by more than the threshold",
     "decades below the input, -min_l log10 rms(y_l) / rms(x)", true},
    {FindingCode::kExplodingActivations, "exploding_activations",
     "a layer's output rms rises above the input's by more than the threshold",
     "decades above the input, max_l log10 rms(y_l) / rms(x)", true},
    {FindingCode::kNonFinite, "non_finite", "NaN or infinity in a layer's values or gradients",
     "layers with a non-finite value", true},
    {FindingCode::kDeadUnits, "dead_units",
     "a ReLU layer loses a share of its units to zero output for the whole batch",
     "largest share of a layer's units dead for the whole batch", true},
    {FindingCode::kSaturatedUnits, "saturated_units",
     "a sigmoid/tanh-like layer has a share of its entries on the flat tails",
     "largest share of a bounded-activation layer's entries saturated", true},
    {FindingCode::kCorrelationCollapse, "correlation_collapse",
     "different examples' outputs point in nearly the same direction",
     "largest mean cosine between examples' outputs", true},
    {FindingCode::kFp16GradientUnderflow, "fp16_gradient_underflow",
     "a layer's gradient rms falls below float16's smallest normal (2^-14)",
     "decades below float16's smallest normal", true},
    {FindingCode::kFp16ActivationOverflow, "fp16_activation_overflow",
     "a layer's largest |value| exceeds float16's largest (65504)",
     "decades above float16's largest value", true},
    {FindingCode::kBf16GradientUnderflow, "bf16_gradient_underflow",
     "a layer's gradient rms falls below bfloat16's smallest normal (2^-126)",
     "decades below bfloat16's smallest normal", true},
    {FindingCode::kUpdateRatio, "update_ratio",
     "the optimizer's first step moves a layer's weights too much or too little",
     "decades outside [update_ratio_min, update_ratio_max]", true},
    {FindingCode::kRankCollapse, "rank_collapse",
     "the tokens of each example point in nearly the same direction at the output",
     "mean cosine between an example's tokens at the output", true},
    {FindingCode::kAttentionEntropyCollapse, "attention_entropy_collapse",
     "an attention op's rows put nearly all their weight on one key",
     "1 - the lowest attention entropy over its uniform value", true},
    {FindingCode::kAttentionUniform, "attention_uniform",
     "every attention op weighs the keys almost uniformly: attention does not select",
     "the lowest attention entropy over its uniform value", true},
    {FindingCode::kExplodingAttentionLogits, "exploding_attention_logits",
     "an attention op's largest scaled query-key logit saturates the softmax",
     "largest scaled query-key logit of any attention op", true},
    {FindingCode::kPostnormGradientImbalance, "postnorm_gradient_imbalance",
     "a post-norm residual stack's branch gradient grows from the first block to the last",
     "rms branch gradient at the last block over the first's", true},
    {FindingCode::kResidualStreamGrowth, "residual_stream_growth",
     "a pre-norm residual stack's stream grows with depth",
     "rms of the stream at the last residual over the first's", true},
    {FindingCode::kExplodingPartialJacobian, "exploding_partial_jacobian",
     "a residual network's partial Jacobian norm grows exponentially with depth",
     "partial Jacobian norm at the last layer over the first's, J(last) / J(first)", true},
    {FindingCode::kMeanShift, "mean_shift",
     "an image network's residual stream carries a shared channel mean that outweighs its spread",
     "largest share of the stream's channel second moment that is squared mean, "
     "mean^2 / (mean^2 + var), over the residual blocks",
     true},
    {FindingCode::kSaturatingHiddenActivation, "saturating_hidden_activation",
     "sigmoid or tanh in many hidden layers of a plain stack",
     "problem score of the measured findings (warning 1, error 2)", false},
    {FindingCode::kMismatchedInit, "mismatched_init",
     "the init's weight variance is far from what the activation needs to keep the signal",
     "problem score of the measured findings (warning 1, error 2)", false},
    {FindingCode::kSigmoidOutputMulticlass, "sigmoid_output_multiclass",
     "a bounded output activation (sigmoid) before a softmax cross-entropy over several classes",
     "the loss floor the bounded outputs impose, in nats", false},
    {FindingCode::kPlainDeepStack, "plain_deep_stack",
     "many dense layers with neither normalization nor residual connections",
     "problem score of the measured findings (warning 1, error 2)", false},
    {FindingCode::kUnnormalizedInput, "unnormalized_input",
     "the input is not standardised: its rms is 100x off 1, or its mean 10x its spread",
     "decades beyond a standardised input, max(|log10 rms| - 2, log10 |mean| / std - 1)", false},
}};

static_assert(kFindings.size() == static_cast<std::size_t>(kFindingCodeCount));

constexpr std::array<std::string_view, 3> kSeverityNames{"info", "warning", "error"};
constexpr std::array<std::string_view, 3> kVerdictNames{"healthy", "warning", "error"};

}  // namespace

constexpr bool findings_in_enum_order() {
  for (std::size_t i = 0; i < kFindings.size(); ++i) {
    if (static_cast<std::size_t>(kFindings[i].code) != i) return false;
  }
  return true;
}
static_assert(findings_in_enum_order(), "kFindings must follow FindingCode's order");

const std::array<FindingInfo, kFindingCodeCount>& finding_table() { return kFindings; }

const FindingInfo& finding_info(FindingCode code) {
  return kFindings[static_cast<std::size_t>(code)];
}

std::optional<FindingCode> finding_from_name(std::string_view name) {
  for (const FindingInfo& f : kFindings) {
    if (f.name == name) return f.code;
  }
  return std::nullopt;
}

std::vector<std::string_view> finding_names() {
  std::vector<std::string_view> names;
  for (const FindingInfo& f : kFindings) names.push_back(f.name);
  return names;
}

std::string_view severity_name(Severity s) { return kSeverityNames[static_cast<std::size_t>(s)]; }

std::optional<Severity> severity_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kSeverityNames.size(); ++i) {
    if (kSeverityNames[i] == name) return static_cast<Severity>(i);
  }
  return std::nullopt;
}

std::string_view verdict_name(Verdict v) { return kVerdictNames[static_cast<std::size_t>(v)]; }

}  // namespace gradscope
