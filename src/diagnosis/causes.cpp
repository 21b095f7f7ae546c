// Root causes: which finding explains which, so that one cause shows once with its symptoms
// folded under it.
#include "diagnosis/causes.hpp"

#include <algorithm>
#include <array>

namespace gradscope::diagnosis_detail {

namespace {

// One cause often shows as several findings: an init far too large makes the activations explode,
// overflow and leave every gradient NaN; sigmoid's slope makes gradients vanish and half-precision
// underflow. The diagnosis names the cause once and folds the symptoms under it. A finding is a
// consequence of the first root below that is present and explains it; roots are the common
// mistakes (the causes gradscope knows), then the measured problems that bring others with them.

bool is_magnitude(FindingCode c) {
  switch (c) {
    case FindingCode::kVanishingGradients:
    case FindingCode::kExplodingGradients:
    case FindingCode::kCollapsingActivations:
    case FindingCode::kExplodingActivations:
    case FindingCode::kNonFinite:
    case FindingCode::kFp16GradientUnderflow:
    case FindingCode::kBf16GradientUnderflow:
    case FindingCode::kFp16ActivationOverflow:
    case FindingCode::kUpdateRatio:
      return true;
    default:
      return false;
  }
}

// Whether root `root` (its finding r) explains finding `c` (its finding f).
bool explains(FindingCode root, const Finding& r, FindingCode c, const Finding& f,
              const Report& report, bool sigmoid_hidden) {
  if (root == c) return false;
  const bool forward_overflow = report.summary.nonfinite_in_forward;
  switch (root) {
    case FindingCode::kUnnormalizedInput:
      // The activation findings measure against the input's rms, which is what is off; a large
      // input is large in float16 too.
      return c == FindingCode::kCollapsingActivations || c == FindingCode::kExplodingActivations ||
             c == FindingCode::kFp16ActivationOverflow;
    case FindingCode::kMismatchedInit: {
      // Theory predicted the problem from the init: every magnitude finding it brings, and with
      // zero weights (every unit outputs its bias) the dead units too.
      if (r.severity == Severity::kInfo) return false;
      const bool zero = !r.evidence.empty() && r.evidence.front().quantity == "sw2" &&
                        r.evidence.front().value == 0.0;
      return is_magnitude(c) || (zero && c == FindingCode::kDeadUnits);
    }
    case FindingCode::kSaturatingHiddenActivation:
      if (r.severity == Severity::kInfo) return false;
      // For sigmoid hidden layers the activation is the cause, and relu makes their init's
      // mismatch moot (the init theory finds for sigmoid is one nobody would use).
      if (c == FindingCode::kMismatchedInit) return sigmoid_hidden;
      return c == FindingCode::kVanishingGradients || c == FindingCode::kSaturatedUnits ||
             c == FindingCode::kFp16GradientUnderflow || c == FindingCode::kBf16GradientUnderflow ||
             c == FindingCode::kCorrelationCollapse || c == FindingCode::kUpdateRatio;
    case FindingCode::kPlainDeepStack:
      // Depth without norms or skips: dead units and examples growing alike compound with it.
      return r.severity != Severity::kInfo &&
             (c == FindingCode::kDeadUnits || c == FindingCode::kCorrelationCollapse);
    case FindingCode::kExplodingActivations:
      return c == FindingCode::kFp16ActivationOverflow ||
             (c == FindingCode::kNonFinite && forward_overflow && f.layer > r.layer) ||
             c == FindingCode::kExplodingGradients;
    case FindingCode::kNonFinite:
      return forward_overflow && c == FindingCode::kFp16ActivationOverflow;
    case FindingCode::kDeadUnits:
      // A layer dead for every example cuts the gradient off below it.
      return r.severity == Severity::kError &&
             (c == FindingCode::kVanishingGradients || c == FindingCode::kCollapsingActivations);
    case FindingCode::kExplodingAttentionLogits:
      // Logits that large are what makes the rows one-hot.
      return c == FindingCode::kAttentionEntropyCollapse;
    case FindingCode::kRankCollapse:
      // Tokens alike give every key the same logit: the rows turn uniform.
      return c == FindingCode::kAttentionUniform;
    case FindingCode::kVanishingGradients:
      return c == FindingCode::kFp16GradientUnderflow || c == FindingCode::kBf16GradientUnderflow ||
             c == FindingCode::kUpdateRatio;
    case FindingCode::kExplodingGradients:
      return c == FindingCode::kUpdateRatio;
    default:
      return false;
  }
}

// The order in which roots claim their consequences.
constexpr std::array<FindingCode, 12> kRootOrder{FindingCode::kUnnormalizedInput,
                                                 FindingCode::kMismatchedInit,
                                                 FindingCode::kSaturatingHiddenActivation,
                                                 FindingCode::kExplodingActivations,
                                                 FindingCode::kNonFinite,
                                                 FindingCode::kDeadUnits,
                                                 FindingCode::kPlainDeepStack,
                                                 FindingCode::kExplodingAttentionLogits,
                                                 FindingCode::kRankCollapse,
                                                 FindingCode::kVanishingGradients,
                                                 FindingCode::kExplodingGradients,
                                                 FindingCode::kCollapsingActivations};

}  // namespace

void assign_causes(std::vector<Draft>& drafts, const Report& report, const Shape& shape) {
  // Sigmoid hidden layers are the cause before their init is: the saturating activation first.
  const bool sigmoid_hidden = shape.hidden_activation.kind == Activation::kSigmoid;
  std::vector<FindingCode> order(kRootOrder.begin(), kRootOrder.end());
  if (sigmoid_hidden) std::swap(order[1], order[2]);
  for (FindingCode root : order) {
    int ri = -1;
    for (std::size_t i = 0; i < drafts.size(); ++i) {
      if (drafts[i].code == root && drafts[i].cause < 0) ri = static_cast<int>(i);
    }
    if (ri < 0) continue;
    for (std::size_t i = 0; i < drafts.size(); ++i) {
      Draft& d = drafts[i];
      if (static_cast<int>(i) == ri || d.cause >= 0) continue;
      // A root that has already taken consequences stays a root.
      bool is_root = false;
      for (const Draft& e : drafts) is_root |= e.cause == static_cast<int>(i);
      if (is_root) continue;
      if (explains(root, drafts[static_cast<std::size_t>(ri)].f, d.code, d.f, report,
                   sigmoid_hidden)) {
        d.cause = ri;
      }
    }
  }
}

}  // namespace gradscope::diagnosis_detail
