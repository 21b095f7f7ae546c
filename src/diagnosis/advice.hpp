// Advice: the fixes the diagnosis knows for each finding, kept apart from the config edits they
// become, so that several compose into one remedy: a residual rewrite carries the other fixes'
// activation and init into its layers, where separate edits would fight over the same keys.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "diagnosis/init_theory.hpp"
#include "diagnosis/measures.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"

namespace gradscope::diagnosis_detail {

struct Fix {
  enum class Kind {
    kActivation,
    kInit,
    kResidual,
    kNorm,
    kLearningRate,
    kAdam,
    kOutput,
    kInput,
    kBias,
    kEdits,  // the edits as they stand (attention, transformer)
    kNote    // a sentence without a config change: shown, never re-run, not in the remedy
  };
  Kind kind = Kind::kActivation;
  std::string text;                      // one sentence: what and why
  std::vector<std::string> paths;        // config paths of the layers it changes
  ActivationSpec activation{};           // kActivation, kOutput
  bool with_init = false;                // kActivation: the activation comes with an init
  InitSpec init{};                       // kActivation (with_init), kInit
  bool init_all_parameters = false;      // spell the init with every parameter (InitEdit)
  NormKind norm = NormKind::kLayerNorm;  // kNorm
  double learning_rate = 0.0;            // kLearningRate
  std::vector<ConfigEdit> input_edits;   // kInput: the input spec's keys to set
  std::vector<ConfigEdit> edits;         // kEdits

  // Changes the network (and so its gradients), as opposed to the optimizer.
  bool structural() const {
    return kind != Kind::kLearningRate && kind != Kind::kAdam && kind != Kind::kNote;
  }
};

bool same_fix(const Fix& a, const Fix& b);

// Whether two fixes set the same thing differently (two activations for the same layers, two
// inits, a learning rate and another optimizer).
bool conflicts(const Fix& a, const Fix& b);

class Advisor {
 public:
  Advisor(const Report& r, const Shape& s, const InitAdvice& init) : r_(r), s_(s), init_(init) {}

  // The fixes for a root finding, the one gradscope would apply first leading.
  std::vector<Fix> fixes(FindingCode code, bool measured_problem) const;

  // The config edits of a set of fixes applied together, each key once.
  std::vector<ConfigEdit> render(const std::vector<Fix>& fixes) const;

  Advice advice(const Fix& f, const std::string& addresses) const;

  // The residual rewrite's sentence for the activation it ends up with.
  std::string residual_text(const std::vector<Fix>& fixes) const;

 private:
  const LayerReport& at(int i) const { return r_.layers[static_cast<std::size_t>(i)]; }
  // Distinct config paths of the layers `indices` names, in order.
  std::vector<std::string> paths_of(const std::vector<int>& indices) const;

  // The fixes (fixes.cpp), each for the network as it is, or none where it does not apply.
  std::optional<Fix> switch_bounded_activation() const;
  std::optional<Fix> theory_init_fix() const;
  std::optional<Fix> residual_blocks() const;
  std::optional<Fix> standard_input() const;
  std::optional<Fix> init_gain_fix() const;
  std::optional<Fix> negative_bias() const;
  std::optional<Fix> leaky_relu() const;
  std::optional<Fix> layer_norm_for_batch_norm() const;
  std::optional<Fix> learning_rate() const;
  std::optional<Fix> adam() const;
  std::optional<Fix> linear_output() const;
  // The sequence findings' fixes.
  std::optional<Fix> attention_skips() const;
  std::optional<Fix> attention_scale_fix() const;
  std::optional<Fix> attention_init_fix() const;
  std::optional<Fix> transformer_fix(TransformerKey key) const;
  // Every unscaled residual's branch scaled by 1/sqrt(L), L the residual blocks of the network.
  std::optional<Fix> residual_scale_fix() const;

  std::string residual_sentence(const std::optional<ActivationSpec>& activation) const;
  bool residual_applies() const;
  std::vector<ConfigEdit> residual_edits(const std::optional<ActivationSpec>& activation,
                                         const std::optional<InitSpec>& init,
                                         const std::optional<ActivationSpec>& output_act,
                                         bool zero_bias) const;

  const Report& r_;
  const Shape& s_;
  const InitAdvice& init_;
};

}  // namespace gradscope::diagnosis_detail
