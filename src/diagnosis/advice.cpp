// Advice (advice.hpp): which fixes a finding gets, and how a set of fixes becomes config edits.
#include "diagnosis/advice.hpp"

#include <algorithm>

#include "gradscope/diagnosis/config_edit.hpp"

namespace gradscope::diagnosis_detail {

namespace {

// The init a fix sets, as the config reads it; empty when it sets none.
std::string init_text(const Fix& f) {
  if (f.kind != Fix::Kind::kInit && !(f.kind == Fix::Kind::kActivation && f.with_init)) return {};
  return spell_edit(InitEdit{"", f.init, f.init_all_parameters}).value;
}

// The edits of one fix on its own (a residual rewrite's are composed by render).
void fix_edits(const Fix& f, std::vector<ConfigEdit>& out) {
  switch (f.kind) {
    case Fix::Kind::kActivation:
      for (const std::string& p : f.paths) {
        out.push_back(ActivationEdit{p, f.activation});
        if (f.with_init) out.push_back(InitEdit{p, f.init, f.init_all_parameters});
      }
      break;
    case Fix::Kind::kInit:
      for (const std::string& p : f.paths) {
        out.push_back(InitEdit{p, f.init, f.init_all_parameters});
      }
      break;
    case Fix::Kind::kOutput:
      for (const std::string& p : f.paths) out.push_back(ActivationEdit{p, f.activation});
      break;
    case Fix::Kind::kNorm:
      for (const std::string& p : f.paths) out.push_back(NormEdit{p, f.norm});
      break;
    case Fix::Kind::kLearningRate:
      out.push_back(NumberEdit{NumberKey::kLearningRate, f.learning_rate});
      break;
    case Fix::Kind::kAdam: {
      OptimizerSpec adam;
      adam.kind = OptimizerKind::kAdam;
      adam.learning_rate = 1e-3;
      out.push_back(OptimizerEdit{adam});
      break;
    }
    case Fix::Kind::kInput:
      for (const ConfigEdit& e : f.input_edits) out.push_back(e);
      break;
    case Fix::Kind::kBias:
      for (const std::string& p : f.paths) out.push_back(BiasEdit{p, BiasInitSpec{}});
      break;
    case Fix::Kind::kEdits:
      for (const ConfigEdit& e : f.edits) out.push_back(e);
      break;
    case Fix::Kind::kResidual:
    case Fix::Kind::kNote:
      break;
  }
}

// A sentence of advice with no config change behind it.
Fix note(std::string text) {
  Fix f;
  f.kind = Fix::Kind::kNote;
  f.text = std::move(text);
  return f;
}

// The fixes a residual rewrite takes into its layers, rather than setting keys of layers it
// replaces.
bool goes_into_rewrite(Fix::Kind kind) {
  return kind == Fix::Kind::kActivation || kind == Fix::Kind::kInit || kind == Fix::Kind::kOutput ||
         kind == Fix::Kind::kBias;
}

}  // namespace

bool same_fix(const Fix& a, const Fix& b) {
  return a.kind == b.kind && a.paths == b.paths && a.activation.kind == b.activation.kind &&
         a.activation.param == b.activation.param && init_text(a) == init_text(b) &&
         a.norm == b.norm && a.learning_rate == b.learning_rate && a.with_init == b.with_init &&
         ((a.kind != Fix::Kind::kEdits && a.kind != Fix::Kind::kNote) || a.text == b.text);
}

bool conflicts(const Fix& a, const Fix& b) {
  if (same_fix(a, b)) return false;
  const auto overlap = [&] {
    for (const std::string& p : a.paths) {
      if (std::find(b.paths.begin(), b.paths.end(), p) != b.paths.end()) return true;
    }
    return false;
  };
  const auto sets_init = [](const Fix& f) {
    return f.kind == Fix::Kind::kInit || (f.kind == Fix::Kind::kActivation && f.with_init);
  };
  if (a.kind == b.kind) {
    switch (a.kind) {
      case Fix::Kind::kResidual:
      case Fix::Kind::kAdam:
      case Fix::Kind::kNote:
        return false;
      case Fix::Kind::kLearningRate:
        return true;
      default:
        return overlap();
    }
  }
  if (sets_init(a) && sets_init(b)) return overlap();
  const auto optimizer = [](const Fix& f) {
    return f.kind == Fix::Kind::kAdam || f.kind == Fix::Kind::kLearningRate;
  };
  return optimizer(a) && optimizer(b);
}

std::vector<Fix> Advisor::fixes(FindingCode code, bool measured_problem) const {
  std::vector<Fix> out;
  const auto add = [&](std::optional<Fix> a) {
    if (a) out.push_back(std::move(*a));
  };
  switch (code) {
    case FindingCode::kVanishingGradients:
    case FindingCode::kFp16GradientUnderflow:
    case FindingCode::kBf16GradientUnderflow:
      add(switch_bounded_activation());
      add(theory_init_fix());
      if (out.empty()) add(init_gain_fix());
      if (out.empty()) add(residual_blocks());
      break;
    case FindingCode::kExplodingGradients:
      add(theory_init_fix());
      if (out.empty()) add(init_gain_fix());
      add(layer_norm_for_batch_norm());
      break;
    case FindingCode::kCollapsingActivations:
    case FindingCode::kExplodingActivations:
    case FindingCode::kNonFinite:
    case FindingCode::kFp16ActivationOverflow:
      add(theory_init_fix());
      if (out.empty()) add(init_gain_fix());
      if (out.empty() && !s_.has_norm) add(residual_blocks());
      break;
    case FindingCode::kUnnormalizedInput:
      add(standard_input());
      break;
    case FindingCode::kDeadUnits:
      add(negative_bias());
      add(leaky_relu());
      add(residual_blocks());
      break;
    case FindingCode::kSaturatedUnits:
      add(theory_init_fix());
      add(switch_bounded_activation());
      break;
    case FindingCode::kCorrelationCollapse:
      add(residual_blocks());
      break;
    case FindingCode::kUpdateRatio:
      add(learning_rate());
      add(adam());
      break;
    case FindingCode::kSaturatingHiddenActivation:
      if (measured_problem) add(switch_bounded_activation());
      break;
    case FindingCode::kMismatchedInit:
      if (measured_problem) add(theory_init_fix());
      break;
    case FindingCode::kSigmoidOutputMulticlass:
      add(linear_output());
      break;
    case FindingCode::kPlainDeepStack:
      if (measured_problem) add(residual_blocks());
      break;
    case FindingCode::kRankCollapse:
      add(attention_skips());
      // A post-norm stack renormalises the sum after every branch, so the skip no longer keeps
      // the tokens' own vectors at their scale.
      add(transformer_fix(TransformerKey::kPlacementPreNorm));
      if (out.empty()) {
        out.push_back(note(
            "Keep a skip connection around every attention op (and a norm before it): the skip "
            "carries each token's own vector past the averaging, which keeps the tokens apart at "
            "any depth."));
      }
      break;
    case FindingCode::kAttentionEntropyCollapse:
    case FindingCode::kExplodingAttentionLogits:
      add(attention_scale_fix());
      add(attention_init_fix());
      if (out.empty()) {
        out.push_back(note(
            "Bring the query-key logits down: the 1/sqrt(d_head) scale, smaller query and key "
            "inits, or QK-norm (a norm on q and k before their product, which bounds the logits "
            "whatever the weights; not an option of this tool)."));
      }
      break;
    case FindingCode::kAttentionUniform:
      out.push_back(
          note("Nothing to change at init if the skips keep the tokens apart (no rank_collapse): "
               "attention learns to select as its query and key weights grow; in a stack without "
               "skips, add them, since averaging layer after layer makes the tokens alike."));
      break;
    case FindingCode::kPostnormGradientImbalance:
      add(transformer_fix(TransformerKey::kPlacementPreNorm));
      if (out.empty()) {
        out.push_back(note(
            "Put the norms at the start of the branches (pre-norm), or keep post-norm and scale "
            "the skips up as DeepNorm does (\"skip\": (2N)^(1/4) in each residual, the branch "
            "projections' gains times (8N)^(-1/4))."));
      }
      break;
    case FindingCode::kResidualStreamGrowth:
      add(transformer_fix(TransformerKey::kScalingGpt2));
      if (out.empty()) {
        out.push_back(note(
            "Scale the projections into the stream (each branch's last layer) by 1/sqrt(2N) for "
            "N blocks of two branches, as GPT-2 does, so the stream's variance grows by a "
            "constant factor over the whole depth rather than with it."));
      }
      break;
    case FindingCode::kExplodingPartialJacobian:
      add(residual_scale_fix());
      break;
    case FindingCode::kMeanShift:
      out.push_back(
          note("Remove the shared mean where it enters: batch norm before each convolution of the "
               "branches centres every channel, and so does standardising each filter's weights to "
               "zero mean (an NF-ResNet's scaled weight standardisation), which keeps the network "
               "free of norms."));
      break;
  }
  return out;
}

std::vector<ConfigEdit> Advisor::render(const std::vector<Fix>& fixes) const {
  std::vector<ConfigEdit> out;
  std::vector<std::string> keys;  // the config key each edit sets
  const auto put = [&](const ConfigEdit& e) {
    std::string key = spell_edit(e).path;
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) return;  // the first fix wins
    keys.push_back(std::move(key));
    out.push_back(e);
  };
  const Fix* residual = nullptr;
  for (const Fix& f : fixes) {
    if (f.kind == Fix::Kind::kResidual) residual = &f;
  }
  if (residual != nullptr) {
    // The rewrite replaces the hidden and output layers: the other fixes go into its layers.
    std::optional<ActivationSpec> activation;
    std::optional<InitSpec> init;
    std::optional<ActivationSpec> output;
    bool zero_bias = false;
    for (const Fix& f : fixes) {
      if (f.kind == Fix::Kind::kBias) zero_bias = true;
      if (f.kind == Fix::Kind::kActivation && !activation) {
        activation = f.activation;
        if (f.with_init && !init) init = f.init;
      }
      if (f.kind == Fix::Kind::kInit && !init) init = f.init;
      if (f.kind == Fix::Kind::kOutput && !output) output = f.activation;
    }
    for (const ConfigEdit& e : residual_edits(activation, init, output, zero_bias)) put(e);
  }
  for (const Fix& f : fixes) {
    if (residual != nullptr && goes_into_rewrite(f.kind)) continue;
    std::vector<ConfigEdit> edits;
    fix_edits(f, edits);
    for (const ConfigEdit& e : edits) put(e);
  }
  return out;
}

Advice Advisor::advice(const Fix& f, const std::string& addresses) const {
  std::vector<ConfigEdit> edits = render({f});
  std::vector<ConfigChange> changes = spell_edits(edits);
  return Advice{f.text, std::move(changes), std::nullopt, addresses, std::move(edits)};
}

std::string Advisor::residual_text(const std::vector<Fix>& fixes) const {
  std::optional<ActivationSpec> activation;
  for (const Fix& f : fixes) {
    if (f.kind == Fix::Kind::kActivation && !activation) activation = f.activation;
  }
  return residual_sentence(activation);
}

std::vector<std::string> Advisor::paths_of(const std::vector<int>& indices) const {
  std::vector<std::string> paths;
  for (int i : indices) {
    const std::string& p = s_.paths[static_cast<std::size_t>(i)];
    if (!p.empty() && std::find(paths.begin(), paths.end(), p) == paths.end()) paths.push_back(p);
  }
  return paths;
}

}  // namespace gradscope::diagnosis_detail
