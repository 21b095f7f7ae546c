// The diagnosis: from a report's measurements and its spec, the findings (what is wrong, where,
// the evidence, a plain-words explanation, advice as config changes) and a verdict; and the check
// that re-runs the network with each advice applied to prove that it helps.
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/report.hpp"
#include "gradscope/diagnosis/config_edit.hpp"

namespace gradscope {

// Measured problems first, then the common mistakes that cause them.
enum class FindingCode : int {
  kVanishingGradients,
  kExplodingGradients,
  kCollapsingActivations,
  kExplodingActivations,
  kNonFinite,
  kDeadUnits,
  kSaturatedUnits,
  kCorrelationCollapse,
  kFp16GradientUnderflow,
  kFp16ActivationOverflow,
  kBf16GradientUnderflow,
  kUpdateRatio,
  kRankCollapse,
  kAttentionEntropyCollapse,
  kAttentionUniform,
  kExplodingAttentionLogits,
  kPostnormGradientImbalance,
  kResidualStreamGrowth,
  kExplodingPartialJacobian,
  kSaturatingHiddenActivation,
  kMismatchedInit,
  kSigmoidOutputMulticlass,
  kPlainDeepStack,
  kUnnormalizedInput,
};
inline constexpr int kFindingCodeCount = 24;

struct FindingInfo {
  FindingCode code;
  std::string_view name;         // the stable code, e.g. "vanishing_gradients"
  std::string_view description;  // one line for `gradscope list` and the README
  // The problem metric --check-advice compares before and after (higher is worse).
  std::string_view metric;
  bool measured;  // a measured problem (true) or a common mistake that causes one (false)
};

// The registry, indexed by static_cast<int>(FindingCode).
const std::array<FindingInfo, kFindingCodeCount>& finding_table();
const FindingInfo& finding_info(FindingCode code);
std::optional<FindingCode> finding_from_name(std::string_view name);
std::vector<std::string_view> finding_names();

std::string_view severity_name(Severity s);  // "info", "warning", "error"
std::optional<Severity> severity_from_name(std::string_view name);
std::string_view verdict_name(Verdict v);  // "healthy", "warning", "error"

// Fills report.findings (most severe first, then by layer) and report.verdict from the
// measurements, the theory and report.spec.diagnosis's thresholds. Deterministic.
void diagnose(Report& report);

// log10 of the share of the first-to-last gradient rms ratio that the pooling ops' geometry alone
// accounts for (max pooling 2x2 halves the per-entry rms, global average pooling over H x W
// divides it by H W); 0 without pooling. The gradient findings judge the ratio net of it.
double pooling_gradient_log10_share(const Report& report);

// A finding's problem metric on a report, whether or not the finding fired: value >= threshold
// is a problem, and higher is worse.
struct ProblemMetric {
  double value = 0.0;
  double threshold = 0.0;
};
ProblemMetric problem_metric(FindingCode code, const Report& report);

// The finding code of each row of the rules table, in order: one row per code, each a metric
// and the rule that reads it (compile-time checked; exposed for the tests).
std::vector<FindingCode> rule_codes();

// Whether an advice helped: the finding it addresses is gone from the re-run, or its metric is
// now on the healthy side of its threshold; and the verdict did not get worse.
bool advice_helped(const ProblemMetric& after, bool finding_gone, Verdict verdict_before,
                   Verdict verdict_after);

// set_argument (the `--set` argument of a ConfigChange) is declared in config_edit.hpp.

// Runs the network `spec` describes (the run's own spec with an advice's edits applied, see
// apply_edits) and returns the diagnosed report.
using Rerun = std::function<Report(const RunSpec& spec)>;

// --check-advice: re-runs every distinct advice once (its edits applied to report.spec), records
// its effect on the finding's problem metric, and moves advice that did not help to
// rejected_advice. Then re-runs the remedy as a whole and without each of its pieces in turn (the
// last first), drops the pieces the rest do as well without, and records the verdict and findings
// after it in remedy.check.
void check_advice(Report& report, const Rerun& rerun);

}  // namespace gradscope
