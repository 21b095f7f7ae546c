// The diagnosis's typed advice: the rules table has one row per finding code, and every kind of
// config edit spells a `--set` argument the config reader accepts, while applying the edit to a
// RunSpec (what --check-advice re-runs) gives the spec the reader gives for that argument.
#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "gradscope/diagnosis/config_edit.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/io/config.hpp"
#include "support/paths.hpp"

namespace gradscope {
namespace {

// Everything of a spec the reader sets: the resolved config (which leaves out a "layers" config's
// unused stack, so that is written on its own), and each op's config path.
std::string spec_text(const RunSpec& s) {
  RunSpec stack_only = s;
  stack_only.layers.clear();
  std::string text = run_spec_to_json(s) + "\n" + run_spec_to_json(stack_only) + "\n";
  for (const std::string& p : op_config_paths(s)) text += p + "\n";
  return text;
}

std::vector<ConfigOverride> as_overrides(const std::vector<ConfigChange>& changes) {
  std::vector<ConfigOverride> out;
  for (const ConfigChange& c : changes) out.push_back({c.path, c.value, "advice " + c.path});
  return out;
}

// The reader's spec for `text` with the edits spelled as --set, and the edits applied directly.
void expect_applied_as_read(const std::string& text, const std::vector<ConfigEdit>& edits,
                            const std::string& label) {
  SCOPED_TRACE(label);
  const RunSpec base = parse_run_spec(text, "cfg.json", "cfg");
  const std::vector<ConfigChange> changes = spell_edits(edits);
  std::optional<RunSpec> read;
  EXPECT_NO_THROW(read = parse_run_spec(text, "cfg.json", "cfg", as_overrides(changes)));
  if (!read) return;
  EXPECT_EQ(spec_text(apply_edits(base, edits)), spec_text(*read));
}

TEST(RuleTable, EveryFindingCodeHasExactlyOneRuleRow) {
  const std::vector<FindingCode> codes = rule_codes();
  ASSERT_EQ(codes.size(), static_cast<std::size_t>(kFindingCodeCount));
  std::set<FindingCode> seen;
  for (std::size_t i = 0; i < codes.size(); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(codes[i]), i) << "rows follow the registry's order";
    EXPECT_TRUE(seen.insert(codes[i]).second) << finding_info(codes[i]).name << " has two rows";
  }
  for (const FindingInfo& f : finding_table()) EXPECT_EQ(seen.count(f.code), 1u) << f.name;
}

constexpr const char* kStackWithOutput = R"({
  "input": {"width": 8, "batch": 8},
  "stack": {"depth": 3, "width": 8, "activation": "tanh", "init": "torch_default"},
  "output": {"width": 4}
})";

constexpr const char* kNegativeBias = R"({
  "input": {"width": 8, "batch": 8},
  "stack": {"depth": 3, "width": 8, "bias_init": {"name": "constant", "value": -0.5}},
  "output": {"width": 4, "activation": "sigmoid"},
  "loss": "softmax_cross_entropy",
  "optimizer": "sgd"
})";

constexpr const char* kLayers = R"({
  "input": {"width": 8, "batch": 8, "distribution": "uniform"},
  "layers": [
    {"width": 8, "activation": "relu", "init": {"name": "he_normal", "gain": 4}},
    {"repeat": 2, "block": [{"width": 8, "activation": "sigmoid", "norm": "batch_norm",
                             "norm_position": "after_activation"}]},
    {"width": 8, "activation": "relu", "norm": "batch_norm"},
    {"activation": "relu"},
    {"width": 4, "activation": "linear"}
  ],
  "optimizer": {"name": "sgd", "learning_rate": 0.01}
})";

constexpr const char* kResidual = R"({
  "input": {"width": 8, "batch": 4},
  "layers": [{"width": 8, "activation": "relu", "init": "he_normal"},
             {"repeat": 3, "residual": {"scale": 1.0},
              "block": [{"width": 8, "activation": "relu", "init": "he_normal"}]}]
})";

constexpr const char* kPostNorm = R"({
  "input": {"width": 16, "batch": 2, "tokens": 4},
  "layers": [{"transformer": {"blocks": 2, "heads": 2, "placement": "post_norm"}},
             {"width": 4, "activation": "linear"}]
})";

constexpr const char* kPreNorm = R"({
  "input": {"width": 16, "batch": 2, "tokens": 4},
  "layers": [{"width": 16, "activation": "linear"},
             {"transformer": {"blocks": 3, "heads": 2, "init": {"name": "normal", "std": 0.2}}}]
})";

constexpr const char* kPreNormGlu = R"({
  "input": {"width": 16, "batch": 2, "tokens": 4},
  "layers": [{"transformer": {"blocks": 2, "heads": 4, "activation": "swiglu", "norm": "rms_norm"}}]
})";

constexpr const char* kAttention = R"({
  "input": {"width": 8, "batch": 2, "tokens": 4},
  "layers": [{"norm": "layer_norm"}, {"attention": {"heads": 2, "scale": 3, "init": "xavier_normal"}},
             {"repeat": 2, "block": [{"attention": {"causal": false}}]}]
})";

LayerItem dense_item(int width, Activation a) {
  LayerItem item;
  item.op.kind = OpKind::kDense;
  item.op.dense.width = width;
  item.op.dense.activation = default_spec(a);
  return item;
}

LayerItem norm_item() {
  LayerItem item;
  item.op.kind = OpKind::kNorm;
  return item;
}

TEST(ConfigEdit, EveryKindSpellsASetArgumentTheReaderAppliesAsApplyEditsDoes) {
  InitEdit variance{"stack", {}, false};
  variance.init.kind = Init::kVariance;
  variance.init.weight_var = 2.15;
  InitEdit gain_reset{"layers[0]", {}, true};
  gain_reset.init.gain = 1.0;
  OptimizerSpec adam;
  adam.kind = OptimizerKind::kAdam;
  LayersEdit rewrite;
  LayerItem blocks;
  blocks.repeat = 2;
  blocks.residual = ResidualSpec{};
  blocks.block = {norm_item(), dense_item(8, Activation::kRelu)};
  rewrite.items = {dense_item(8, Activation::kRelu), blocks, norm_item(),
                   dense_item(4, Activation::kLinear)};

  const std::vector<std::pair<std::string, std::vector<ConfigEdit>>> cases{
      // The stack's init reaches the output layer, which takes it, and torch_default's bias goes.
      {kStackWithOutput,
       {ActivationEdit{"stack", default_spec(Activation::kRelu)}, InitEdit{"stack", {}, false}}},
      {kStackWithOutput, {variance, ActivationEdit{"output", {Activation::kLeakyRelu, 0.2}}}},
      {kNegativeBias,
       {BiasEdit{"stack", {}}, ActivationEdit{"output", default_spec(Activation::kLinear)}}},
      {kNegativeBias, {NumberEdit{NumberKey::kLearningRate, 2e-5}}},
      {kNegativeBias, {OptimizerEdit{adam}}},
      {kStackWithOutput,
       {RemoveEdit{ConfigSection::kStack}, RemoveEdit{ConfigSection::kOutput}, rewrite}},
      {kLayers,
       {gain_reset, ActivationEdit{"layers[1].block[0]", default_spec(Activation::kRelu)},
        InitEdit{"layers[1].block[0]", {}, false}}},
      {kLayers,
       {NormEdit{"layers[1].block[0]", NormKind::kLayerNorm},
        NormEdit{"layers[2]", NormKind::kLayerNorm}}},
      // An activation after its norm (before_activation), and a separate activation item.
      {kLayers,
       {ActivationEdit{"layers[2]", {Activation::kLeakyRelu, 0.01}},
        ActivationEdit{"layers[3]", default_spec(Activation::kGelu)}}},
      {kLayers,
       {InputDistributionEdit{InputDistribution::kNormal}, NumberEdit{NumberKey::kInputMean, 0.0},
        NumberEdit{NumberKey::kInputStd, 1.0}}},
      // The transformer shorthand's keys rewrite its expanded items as the reader expands them.
      {kPostNorm, {TransformerEdit{"layers[0]", TransformerKey::kPlacementPreNorm}}},
      {kPreNorm, {TransformerEdit{"layers[1]", TransformerKey::kScalingGpt2}}},
      {kPreNormGlu, {TransformerEdit{"layers[0]", TransformerKey::kScalingGpt2}}},
      // Every repetition of the residual item takes the branch scale.
      {kResidual, {ResidualScaleEdit{"layers[1]", 0.577}}},
      {kAttention,
       {AttentionScaleEdit{"layers[1]"},
        AttentionInitEdit{"layers[1]",
                          {InitSpec{Init::kXavierNormal, 0.25}, InitSpec{Init::kXavierNormal, 0.25},
                           InitSpec{Init::kXavierNormal}, InitSpec{Init::kXavierNormal}}},
        AttentionInitEdit{"layers[2].block[0]", {}}}},
  };
  std::set<std::size_t> kinds;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    for (const ConfigEdit& e : cases[i].second) kinds.insert(e.index());
    expect_applied_as_read(cases[i].first, cases[i].second, "case " + std::to_string(i));
  }
  EXPECT_EQ(kinds.size(), std::variant_size_v<ConfigEdit>) << "a kind of edit is not tested";
}

TEST(ConfigEdit, SpellingsAreTheConfigReadersSyntax) {
  InitEdit variance{"stack", {}, false};
  variance.init.kind = Init::kVariance;
  variance.init.weight_var = 2.15;
  EXPECT_EQ(spell_edit(variance).value, R"({"name": "variance", "weight_var": 2.15})");
  EXPECT_EQ(spell_edit(InitEdit{"stack", {}, true}).value,
            R"({"name": "he_normal", "gain": 1, "mode": "fan_in"})");
  EXPECT_EQ(spell_edit(BiasEdit{"layers[0]", {}}).path, "layers[0].bias_init");
  EXPECT_EQ(spell_edit(BiasEdit{"layers[0]", {}}).value, "zeros");
  EXPECT_EQ(spell_edit(NumberEdit{NumberKey::kLearningRate, 2e-5}).value, "2e-05");
  EXPECT_EQ(spell_edit(RemoveEdit{ConfigSection::kOutput}).value, "null");
  OptimizerSpec adam;
  adam.kind = OptimizerKind::kAdam;
  EXPECT_EQ(spell_edit(OptimizerEdit{adam}).value, R"({"name": "adam", "learning_rate": 0.001})");
  EXPECT_EQ(set_argument(spell_edit(AttentionScaleEdit{"layers[1]"})),
            "--set 'layers[1].attention.scale=1/sqrt(d_head)'");
  EXPECT_EQ(set_argument(spell_edit(TransformerEdit{"layers[0]", TransformerKey::kScalingGpt2})),
            "--set 'layers[0].transformer.scaling=gpt2'");
  EXPECT_EQ(
      set_argument(spell_edit(TransformerEdit{"layers[2]", TransformerKey::kPlacementPreNorm})),
      "--set 'layers[2].transformer.placement=pre_norm'");
}

// Every advice the shipped configs (and a few mistakes set on top) get: its edits spell its
// changes, and applied to the run's spec they give what the reader gives for the changes.
TEST(ConfigEdit, EveryAdviceAppliesAsTheReaderReadsIt) {
  struct Run {
    std::string config;
    std::vector<ConfigOverride> sets;
  };
  const std::string dir = std::string(GRADSCOPE_SOURCE_DIR) + "/configs/";
  const std::vector<Run> runs{
      {dir + "relu-torch-default.json", {}},
      {dir + "sigmoid-deep.json", {}},
      {dir + "relu-xavier-batchnorm.json", {}},
      {dir + "relu-xavier-plain.json", {}},
      {dir + "relu-he.json",
       {{"stack.depth", "12", "test"},
        {"stack.bias_init", R"({"name": "constant", "value": -0.5})", "test"},
        {"output", R"({"width": 10, "activation": "sigmoid"})", "test"},
        {"loss", "softmax_cross_entropy", "test"},
        {"input.mean", "300", "test"}}},
  };
  for (const Run& run : runs) {
    SCOPED_TRACE(run.config);
    const Report r = run_diagnostic(load_run_spec(run.config, run.sets));
    const auto check = [&](const std::vector<ConfigEdit>& edits,
                           const std::vector<ConfigChange>& changes, const std::string& what) {
      SCOPED_TRACE(what);
      const std::vector<ConfigChange> spelled = spell_edits(edits);
      ASSERT_EQ(spelled.size(), changes.size());
      for (std::size_t i = 0; i < spelled.size(); ++i) {
        EXPECT_EQ(spelled[i].path, changes[i].path);
        EXPECT_EQ(spelled[i].value, changes[i].value);
      }
      std::vector<ConfigOverride> with = run.sets;
      for (const ConfigOverride& o : as_overrides(changes)) with.push_back(o);
      std::optional<RunSpec> read;
      EXPECT_NO_THROW(read = load_run_spec(run.config, with));
      if (read) {
        EXPECT_EQ(spec_text(apply_edits(r.spec, edits)), spec_text(*read));
      }
    };
    int advice = 0;
    for (const Finding& f : r.findings) {
      for (const Advice& a : f.advice) {
        check(a.edits, a.changes, f.code + ": " + a.text);
        ++advice;
      }
    }
    EXPECT_GT(advice, 0);
    if (r.remedy) {
      check(r.remedy->edits, r.remedy->changes, "remedy");
      for (const RemedyPiece& p : r.remedy->pieces) check(p.edits, p.changes, p.text);
      for (const auto& edits : r.remedy->compositions) check(edits, spell_edits(edits), "subset");
    }
  }
}

}  // namespace
}  // namespace gradscope
