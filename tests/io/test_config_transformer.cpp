// Sequence models in the config: input.tokens, a residual's skip, attention and GLU items, and
// the transformer shorthand's expansion with each depth scaling's constants, their errors, and
// the resolved config's round trip.
#include <gtest/gtest.h>

#include <cmath>

#include "config_test_support.hpp"

namespace {

using namespace config_test;
using gradscope::AttentionScaleKind;
using gradscope::InitSpec;

// Scaling constants come from std::pow and std::sqrt; the expected values are Python's float64
// of the same closed forms, equal to within a few ulp.
constexpr double kUlps = 1e-15;

std::string layers(const std::string& items, const std::string& input = R"({"width": 64})") {
  return R"({"input": )" + input + R"(, "layers": [)" + items + "]}";
}

// ---------------------------------------------------------------------------------------------
// input.tokens and residual skip

TEST(ConfigSequence, TokensAreReadAndDefaultToOne) {
  EXPECT_EQ(parse("{}").input.tokens, 1);
  EXPECT_EQ(parse(R"({"input": {"tokens": 16}})").input.tokens, 16);
  const Error zero = config_error(R"({"input": {"tokens": 0}})");
  EXPECT_TRUE(Contains(what(zero), "cfg.json: input.tokens: expected a positive integer, got 0"));
  const Error text = config_error(R"({"input": {"tokens": "8"}})");
  EXPECT_TRUE(Contains(text.hint(), "remove the quotes: 8"));
}

TEST(ConfigSequence, ResidualSkipIsReadAndDefaultsToOne) {
  const RunSpec spec = parse(layers(
      R"({"repeat": 2, "residual": {"scale": 0.5, "skip": 1.5}, "block": [{"width": 64}]},
         {"repeat": 1, "residual": true, "block": [{"width": 64}]})"));
  EXPECT_EQ(spec.layers[0].residual->skip, 1.5);
  EXPECT_EQ(spec.layers[0].residual->scale, 0.5);
  EXPECT_EQ(spec.layers[1].residual->skip, 1.0);
  const Error e =
      config_error(layers(R"({"residual": {"skip": "big"}, "block": [{"width": 64}]})"));
  EXPECT_TRUE(Contains(what(e), "layers[0].residual.skip: expected a number"));
}

// ---------------------------------------------------------------------------------------------
// Attention and GLU items

TEST(ConfigAttention, EveryKeyIsRead) {
  const RunSpec spec = parse(layers(
      R"({"attention": {"heads": 4, "causal": false, "scale": "1/d_head", "bias": true,
          "output_projection": false, "init": {"name": "orthogonal", "gain": 0.5}}})"));
  ASSERT_EQ(spec.layers.size(), 1U);
  const gradscope::AttentionSpec& a = spec.layers[0].op.attention;
  EXPECT_EQ(spec.layers[0].op.kind, OpKind::kAttention);
  EXPECT_EQ(spec.layers[0].path, "layers[0]");
  EXPECT_EQ(a.heads, 4);
  EXPECT_FALSE(a.causal);
  EXPECT_EQ(a.scale_kind, AttentionScaleKind::kInvHead);
  EXPECT_TRUE(a.bias);
  EXPECT_FALSE(a.output_projection);
  for (const InitSpec& init : a.init) {
    EXPECT_EQ(init.kind, Init::kOrthogonal);
    EXPECT_EQ(init.gain, 0.5);
  }
  EXPECT_EQ(spec.input.width, 64);
}

TEST(ConfigAttention, AnEmptyObjectIsTheDefaults) {
  const RunSpec spec = parse(layers(R"({"attention": {}})"));
  const gradscope::AttentionSpec& a = spec.layers[0].op.attention;
  EXPECT_EQ(a.heads, 1);
  EXPECT_TRUE(a.causal);
  EXPECT_EQ(a.scale_kind, AttentionScaleKind::kInvSqrtHead);
  EXPECT_FALSE(a.bias);
  EXPECT_TRUE(a.output_projection);
  for (const InitSpec& init : a.init) EXPECT_EQ(init.kind, Init::kXavierUniform);
}

TEST(ConfigAttention, ScaleMayBeANumberAndInitsMayBeNamedPerProjection) {
  const RunSpec spec = parse(layers(
      R"({"attention": {"scale": 0.125, "init": {"value": "he_normal",
          "output": {"name": "xavier_normal", "gain": 0.25}}}})"));
  const gradscope::AttentionSpec& a = spec.layers[0].op.attention;
  EXPECT_EQ(a.scale_kind, AttentionScaleKind::kConstant);
  EXPECT_EQ(a.scale, 0.125);
  EXPECT_EQ(a.init[0].kind, Init::kXavierUniform);  // query: the default
  EXPECT_EQ(a.init[1].kind, Init::kXavierUniform);  // key: the default
  EXPECT_EQ(a.init[2].kind, Init::kHeNormal);
  EXPECT_EQ(a.init[3].kind, Init::kXavierNormal);
  EXPECT_EQ(a.init[3].gain, 0.25);
}

TEST(ConfigAttention, ErrorsNameTheKeyAndSayWhatToWrite) {
  const Error unknown = config_error(layers(R"({"attention": {"head": 4}})"));
  EXPECT_TRUE(Contains(what(unknown), "cfg.json: layers[0].attention.head: unknown key"));
  EXPECT_TRUE(Contains(unknown.hint(), "did you mean \"heads\"?"));
  const Error heads = config_error(layers(R"({"attention": {"heads": 0}})"));
  EXPECT_TRUE(Contains(what(heads), "layers[0].attention.heads: expected a positive integer"));
  const Error negative = config_error(layers(R"({"attention": {"scale": -1}})"));
  EXPECT_TRUE(Contains(what(negative), "layers[0].attention.scale: must be greater than 0"));
  const Error name = config_error(layers(R"j({"attention": {"scale": "1/sqrt(d)"}})j"));
  EXPECT_TRUE(Contains(what(name), "unknown attention scale \"1/sqrt(d)\""));
  EXPECT_TRUE(Contains(name.hint(), "1/sqrt(d_head)"));
  const Error type = config_error(layers(R"({"attention": {"scale": true}})"));
  EXPECT_TRUE(Contains(what(type), "expected \"1/sqrt(d_head)\", \"1/d_head\" or a number"));
  const Error causal = config_error(layers(R"({"attention": {"causal": "yes"}})"));
  EXPECT_TRUE(Contains(what(causal), "layers[0].attention.causal: expected true or false"));
  const Error projection =
      config_error(layers(R"({"attention": {"init": {"quary": "he_normal"}}})"));
  EXPECT_TRUE(Contains(what(projection), "layers[0].attention.init.quary: unknown key"));
  EXPECT_TRUE(Contains(projection.hint(), "did you mean \"query\"?"));
  const Error init = config_error(layers(R"({"attention": {"init": {"key": "he"}}})"));
  EXPECT_TRUE(Contains(what(init), "layers[0].attention.init.key: unknown init \"he\""));
  const Error array = config_error(layers(R"({"attention": {"init": [1]}})"));
  EXPECT_TRUE(Contains(what(array), "expected an init or an object of inits"));
  const Error not_object = config_error(layers(R"({"attention": 4})"));
  EXPECT_TRUE(Contains(what(not_object), "layers[0].attention: expected an object"));
  const Error mixed = config_error(layers(R"({"attention": {}, "width": 64})"));
  EXPECT_TRUE(Contains(what(mixed), "cannot be in one item"));
}

TEST(ConfigGlu, EveryKeyIsReadAndHiddenIsRequired) {
  const RunSpec spec = parse(layers(
      R"({"glu": {"hidden": 96, "activation": "gelu", "bias": true,
          "init": {"down": {"name": "xavier_normal", "gain": 0.5}}}})"));
  const gradscope::GluSpec& g = spec.layers[0].op.glu;
  EXPECT_EQ(spec.layers[0].op.kind, OpKind::kGlu);
  EXPECT_EQ(g.hidden, 96);
  EXPECT_EQ(g.activation.kind, Activation::kGelu);
  EXPECT_TRUE(g.bias);
  EXPECT_EQ(g.init[0].kind, Init::kXavierUniform);
  EXPECT_EQ(g.init[2].kind, Init::kXavierNormal);
  EXPECT_EQ(g.init[2].gain, 0.5);
  EXPECT_EQ(parse(layers(R"({"glu": {"hidden": 8}})")).layers[0].op.glu.activation.kind,
            Activation::kSilu);

  const Error missing = config_error(layers(R"({"glu": {"activation": "silu"}})"));
  EXPECT_TRUE(Contains(what(missing), "layers[0].glu: missing \"hidden\""));
  const Error unknown = config_error(layers(R"({"glu": {"hidden": 8, "hiden": 8}})"));
  EXPECT_TRUE(Contains(what(unknown), "layers[0].glu.hiden: unknown key"));
  const Error role =
      config_error(layers(R"({"glu": {"hidden": 8, "init": {"query": "he_normal"}}})"));
  EXPECT_TRUE(Contains(what(role), "layers[0].glu.init.query: unknown key"));
  EXPECT_TRUE(Contains(role.hint(), "gate, up, down"));
}

// ---------------------------------------------------------------------------------------------
// The transformer shorthand

const OpSpec& op_of(const LayerItem& item) { return item.op; }

TEST(ConfigTransformer, PreNormExpandsToGptBlocksAndAFinalNorm) {
  const RunSpec spec = parse(layers(R"({"transformer": {"blocks": 2, "heads": 4}})"));
  ASSERT_EQ(spec.layers.size(), 2U);
  const LayerItem& blocks = spec.layers[0];
  EXPECT_EQ(blocks.repeat, 2);
  EXPECT_FALSE(blocks.residual.has_value());
  EXPECT_EQ(blocks.path, "layers[0]");
  ASSERT_EQ(blocks.block.size(), 2U);
  const LayerItem& attention = blocks.block[0];
  ASSERT_TRUE(attention.residual.has_value());
  EXPECT_EQ(attention.residual->scale, 1.0);
  EXPECT_EQ(attention.residual->skip, 1.0);
  EXPECT_FALSE(attention.post_norm.has_value());
  ASSERT_EQ(attention.block.size(), 2U);
  EXPECT_EQ(op_of(attention.block[0]).kind, OpKind::kNorm);
  EXPECT_EQ(op_of(attention.block[0]).norm.kind, NormKind::kLayerNorm);
  const OpSpec& attn = op_of(attention.block[1]);
  EXPECT_EQ(attn.kind, OpKind::kAttention);
  EXPECT_EQ(attn.attention.heads, 4);
  EXPECT_TRUE(attn.attention.causal);
  EXPECT_TRUE(attn.attention.output_projection);
  for (const InitSpec& init : attn.attention.init) {
    EXPECT_EQ(init.kind, Init::kXavierNormal);
    EXPECT_EQ(init.gain, 1.0);
  }
  const LayerItem& mlp = blocks.block[1];
  ASSERT_EQ(mlp.block.size(), 3U);
  EXPECT_EQ(op_of(mlp.block[0]).kind, OpKind::kNorm);
  EXPECT_EQ(op_of(mlp.block[1]).dense.width, 256);  // mlp_ratio 4 * 64
  EXPECT_EQ(op_of(mlp.block[1]).dense.activation.kind, Activation::kGelu);
  EXPECT_EQ(op_of(mlp.block[2]).dense.width, 64);
  EXPECT_EQ(op_of(mlp.block[2]).dense.activation.kind, Activation::kLinear);
  EXPECT_EQ(op_of(mlp.block[2]).dense.bias.kind, BiasInit::kZeros);
  EXPECT_EQ(op_of(spec.layers[1]).kind, OpKind::kNorm);  // GPT's ln_f
  EXPECT_EQ(spec.layers[1].path, "layers[0]");
  for (const LayerItem& inner : mlp.block) EXPECT_EQ(inner.path, "layers[0]");

  // 2 x (begin, norm, attention, end, begin, norm, dense, dense, end) + the final norm.
  EXPECT_EQ(gradscope::expand_ops(spec).size(), 19U);
  for (const std::string& path : gradscope::op_config_paths(spec)) EXPECT_EQ(path, "layers[0]");
}

TEST(ConfigTransformer, KeysSetHeadsRatioActivationNormAndInit) {
  const RunSpec spec = parse(layers(
      R"({"transformer": {"blocks": 1, "heads": 2, "width": 64, "mlp_ratio": 2.5,
          "activation": "relu", "norm": {"name": "rms_norm", "eps": 1e-6}, "causal": false,
          "init": {"name": "he_normal", "gain": 0.5}}})"));
  const LayerItem& blocks = spec.layers[0];
  const OpSpec& attn = op_of(blocks.block[0].block[1]);
  EXPECT_EQ(attn.attention.heads, 2);
  EXPECT_FALSE(attn.attention.causal);
  EXPECT_EQ(attn.attention.init[0].kind, Init::kHeNormal);
  EXPECT_EQ(attn.attention.init[3].gain, 0.5);
  EXPECT_EQ(op_of(blocks.block[0].block[0]).norm.kind, NormKind::kRmsNorm);
  EXPECT_EQ(op_of(blocks.block[0].block[0]).norm.eps, 1e-6);
  EXPECT_EQ(op_of(blocks.block[1].block[1]).dense.width, 160);
  EXPECT_EQ(op_of(blocks.block[1].block[1]).dense.activation.kind, Activation::kRelu);
}

TEST(ConfigTransformer, Gpt2ScalesTheProjectionsIntoTheStream) {
  const RunSpec spec =
      parse(layers(R"({"transformer": {"blocks": 6, "scaling": "gpt2", "activation": "swiglu",
                      "mlp_ratio": 2}})"));
  const double s = 0.2886751345948129;  // 1/sqrt(12)
  const LayerItem& blocks = spec.layers[0];
  const OpSpec& attn = op_of(blocks.block[0].block[1]);
  EXPECT_EQ(attn.attention.init[0].gain, 1.0);
  EXPECT_EQ(attn.attention.init[1].gain, 1.0);
  EXPECT_EQ(attn.attention.init[2].gain, 1.0);
  EXPECT_NEAR(attn.attention.init[3].gain, s, kUlps);
  ASSERT_EQ(blocks.block[1].block.size(), 2U);
  const OpSpec& glu = op_of(blocks.block[1].block[1]);
  EXPECT_EQ(glu.kind, OpKind::kGlu);
  EXPECT_EQ(glu.glu.hidden, 128);
  EXPECT_EQ(glu.glu.activation.kind, Activation::kSilu);
  EXPECT_EQ(glu.glu.init[0].gain, 1.0);
  EXPECT_EQ(glu.glu.init[1].gain, 1.0);
  EXPECT_NEAR(glu.glu.init[2].gain, s, kUlps);
}

TEST(ConfigTransformer, DeepNormIsPostNormWithAlphaAndBeta) {
  const RunSpec spec = parse(layers(
      R"({"transformer": {"blocks": 6, "scaling": "deepnorm", "init": {"name": "xavier_normal",
          "gain": 0.5}}})"));
  const double alpha = 1.8612097182041991;  // 12^(1/4)
  const double beta = 0.37991784282579627;  // 48^(-1/4)
  ASSERT_EQ(spec.layers.size(), 1U);        // post-norm: no final norm
  const LayerItem& blocks = spec.layers[0];
  for (const LayerItem& sub : blocks.block) {
    ASSERT_TRUE(sub.residual.has_value());
    EXPECT_NEAR(sub.residual->skip, alpha, kUlps);
    EXPECT_EQ(sub.residual->scale, 1.0);
    ASSERT_TRUE(sub.post_norm.has_value());
    EXPECT_EQ(sub.post_norm->kind, NormKind::kLayerNorm);
  }
  ASSERT_EQ(blocks.block[0].block.size(), 1U);
  const OpSpec& attn = op_of(blocks.block[0].block[0]);
  EXPECT_EQ(attn.attention.init[0].gain, 0.5);  // query and key keep their init
  EXPECT_EQ(attn.attention.init[1].gain, 0.5);
  EXPECT_NEAR(attn.attention.init[2].gain, 0.5 * beta, kUlps);
  EXPECT_NEAR(attn.attention.init[3].gain, 0.5 * beta, kUlps);
  ASSERT_EQ(blocks.block[1].block.size(), 2U);
  EXPECT_NEAR(op_of(blocks.block[1].block[0]).dense.init.gain, 0.5 * beta, kUlps);
  EXPECT_NEAR(op_of(blocks.block[1].block[1]).dense.init.gain, 0.5 * beta, kUlps);

  const RunSpec glu = parse(
      layers(R"({"transformer": {"blocks": 6, "scaling": "deepnorm", "activation": "swiglu"}})"));
  for (const InitSpec& init : op_of(glu.layers[0].block[1].block[0]).glu.init) {
    EXPECT_NEAR(init.gain, beta, kUlps);
  }
}

TEST(ConfigTransformer, SubLnAddsANormBeforeEachOutputProjection) {
  const RunSpec spec = parse(layers(R"({"transformer": {"blocks": 3, "scaling": "subln"}})"));
  const double gamma = 1.3385661990458504;  // sqrt(ln 6)
  const LayerItem& blocks = spec.layers[0];
  const std::vector<LayerItem>& attention = blocks.block[0].block;
  ASSERT_EQ(attention.size(), 4U);
  EXPECT_EQ(op_of(attention[0]).kind, OpKind::kNorm);
  EXPECT_EQ(op_of(attention[1]).kind, OpKind::kAttention);
  EXPECT_FALSE(op_of(attention[1]).attention.output_projection);
  EXPECT_EQ(op_of(attention[1]).attention.init[0].gain, 1.0);
  EXPECT_NEAR(op_of(attention[1]).attention.init[2].gain, gamma, kUlps);
  EXPECT_EQ(op_of(attention[2]).kind, OpKind::kNorm);
  EXPECT_EQ(op_of(attention[3]).dense.width, 64);
  EXPECT_EQ(op_of(attention[3]).dense.activation.kind, Activation::kLinear);
  EXPECT_NEAR(op_of(attention[3]).dense.init.gain, gamma, kUlps);
  const std::vector<LayerItem>& mlp = blocks.block[1].block;
  ASSERT_EQ(mlp.size(), 4U);
  EXPECT_EQ(op_of(mlp[0]).kind, OpKind::kNorm);
  EXPECT_EQ(op_of(mlp[1]).dense.width, 256);
  EXPECT_NEAR(op_of(mlp[1]).dense.init.gain, gamma, kUlps);
  EXPECT_EQ(op_of(mlp[2]).kind, OpKind::kNorm);
  EXPECT_NEAR(op_of(mlp[3]).dense.init.gain, gamma, kUlps);
  ASSERT_EQ(spec.layers.size(), 2U);  // and the final norm
}

TEST(ConfigTransformer, TFixupAndReZeroUseNoNorms) {
  const RunSpec tfixup = parse(layers(R"({"transformer": {"blocks": 4, "scaling": "tfixup"}})"));
  const double s = 0.408248290463863;  // 36^(-1/4)
  ASSERT_EQ(tfixup.layers.size(), 1U);
  const LayerItem& blocks = tfixup.layers[0];
  ASSERT_EQ(blocks.block[0].block.size(), 1U);
  EXPECT_FALSE(blocks.block[0].post_norm.has_value());
  const OpSpec& attn = op_of(blocks.block[0].block[0]);
  EXPECT_EQ(attn.attention.init[1].gain, 1.0);
  EXPECT_NEAR(attn.attention.init[2].gain, s, kUlps);
  EXPECT_NEAR(attn.attention.init[3].gain, s, kUlps);
  ASSERT_EQ(blocks.block[1].block.size(), 2U);
  EXPECT_NEAR(op_of(blocks.block[1].block[0]).dense.init.gain, s, kUlps);
  EXPECT_NEAR(op_of(blocks.block[1].block[1]).dense.init.gain, s, kUlps);

  const RunSpec rezero = parse(layers(R"({"transformer": {"blocks": 4, "scaling": "rezero"}})"));
  ASSERT_EQ(rezero.layers.size(), 1U);
  for (const LayerItem& sub : rezero.layers[0].block) {
    EXPECT_EQ(sub.residual->scale, 0.0);
    EXPECT_EQ(sub.residual->skip, 1.0);
    for (const LayerItem& inner : sub.block) EXPECT_NE(op_of(inner).kind, OpKind::kNorm);
  }
  EXPECT_EQ(op_of(rezero.layers[0].block[0].block[0]).attention.init[3].gain, 1.0);
}

TEST(ConfigTransformer, WidthComesFromTheStreamOrTheItem) {
  const RunSpec after_dense = parse(
      R"({"layers": [{"width": 32, "activation": "linear"}, {"transformer": {"blocks": 1}}]})");
  EXPECT_EQ(after_dense.input.width, 32);
  EXPECT_EQ(op_of(after_dense.layers[1].block[1].block[2]).dense.width, 32);
  const RunSpec first = parse(R"({"layers": [{"transformer": {"blocks": 1, "width": 48}}]})");
  EXPECT_EQ(first.input.width, 48);  // the input defaults to the transformer's width
  EXPECT_EQ(op_of(first.layers[0].block[1].block[1]).dense.width, 192);

  const Error differs = config_error(layers(R"({"transformer": {"blocks": 1, "width": 32}})"));
  EXPECT_TRUE(Contains(
      what(differs), "cfg.json: layers[0].transformer.width: 32, but the stream is 64 wide here"));
  EXPECT_TRUE(Contains(differs.hint(), "put a dense item before it"));
  const Error missing = config_error(R"({"layers": [{"transformer": {"blocks": 1}}]})");
  EXPECT_TRUE(Contains(what(missing), "layers[0].transformer: missing \"width\""));
}

TEST(ConfigTransformer, ErrorsNameTheKeyAndTheRule) {
  const auto error = [](const std::string& body) {
    return config_error(layers(R"({"transformer": )" + body + "}"));
  };
  EXPECT_TRUE(Contains(what(error("{}")), "layers[0].transformer: missing \"blocks\""));
  EXPECT_TRUE(Contains(what(error(R"({"blocks": 0})")),
                       "layers[0].transformer.blocks: expected a positive integer"));
  const Error unknown = error(R"({"blocks": 1, "block": 2})");
  EXPECT_TRUE(Contains(what(unknown), "layers[0].transformer.block: unknown key"));
  EXPECT_TRUE(Contains(unknown.hint(), "did you mean \"blocks\"?"));
  EXPECT_TRUE(Contains(what(error(R"({"blocks": 1, "mlp_ratio": 0.001})")),
                       "layers[0].transformer.mlp_ratio: gives a hidden width of 0"));
  EXPECT_TRUE(Contains(what(error(R"({"blocks": 1, "mlp_ratio": -1})")),
                       "layers[0].transformer.mlp_ratio: must be greater than 0"));
  EXPECT_TRUE(Contains(what(error(R"({"blocks": 1, "scaling": "fixup"})")),
                       "layers[0].transformer.scaling: unknown scaling \"fixup\""));
  EXPECT_TRUE(Contains(what(error(R"({"blocks": 1, "activation": "swishglu"})")),
                       "layers[0].transformer.activation: unknown activation"));
  EXPECT_TRUE(Contains(what(error(R"({"blocks": 1, "norm": "batch_norm"})")),
                       "layers[0].transformer.norm: a transformer normalises each token"));
  EXPECT_TRUE(Contains(what(error(R"({"blocks": 1, "placement": "middle"})")),
                       "layers[0].transformer.placement: unknown placement"));
  EXPECT_TRUE(
      Contains(what(error(R"({"blocks": 1, "scaling": "deepnorm", "placement": "pre_norm"})")),
               "layers[0].transformer.placement: deepnorm is a post-norm scaling"));
  EXPECT_TRUE(
      Contains(what(error(R"({"blocks": 1, "scaling": "subln", "placement": "post_norm"})")),
               "layers[0].transformer.placement: subln is a pre-norm scaling"));
  EXPECT_TRUE(Contains(what(error(R"({"blocks": 1, "scaling": "subln", "activation": "swiglu"})")),
                       "layers[0].transformer.activation: subln does not support a swiglu MLP"));
  EXPECT_TRUE(Contains(what(error(R"({"blocks": 1, "scaling": "tfixup", "norm": "rms_norm"})")),
                       "layers[0].transformer.norm: tfixup uses no norms"));
  EXPECT_TRUE(
      Contains(what(error(R"({"blocks": 1, "scaling": "rezero", "placement": "post_norm"})")),
               "layers[0].transformer.placement: rezero uses no norms, so no post_norm"));
  EXPECT_TRUE(Contains(what(error(R"({"blocks": 1, "causal": 1})")),
                       "layers[0].transformer.causal: expected true or false"));
  EXPECT_TRUE(Contains(what(error("[]")), "layers[0].transformer: expected an object"));
}

// The spec's rules (validate.hpp) run on the expanded items; their errors name the user's key.
TEST(ConfigTransformer, RulesOnTheExpandedItemsNameTheTransformersKeys) {
  const Error heads = config_error(layers(R"({"transformer": {"blocks": 2, "heads": 3}})"));
  EXPECT_TRUE(Contains(what(heads), "cfg.json: layers[0].transformer.heads: 3 heads"));
}

TEST(ConfigTransformer, OverridesReachTheShorthandAndAreNamedInErrors) {
  const RunSpec spec = parse(layers(R"({"transformer": {"blocks": 2}})"),
                             {{"layers[0].transformer.scaling", "deepnorm", "--set"}});
  EXPECT_NEAR(spec.layers[0].block[0].residual->skip, std::pow(4.0, 0.25), kUlps);
  const Error e = config_error(layers(R"({"transformer": {"blocks": 2}})"),
                               {{"layers[0].transformer.heads", "0", "--set"}});
  EXPECT_TRUE(Contains(what(e), "--set: layers[0].transformer.heads: expected a positive integer"))
      << what(e);
}

TEST(ConfigTransformer, PostNormWithoutScalingHasNoFinalNorm) {
  const RunSpec spec = parse(
      layers(R"({"transformer": {"blocks": 2, "placement": "post_norm", "norm": "rms_norm"}})"));
  ASSERT_EQ(spec.layers.size(), 1U);
  for (const LayerItem& sub : spec.layers[0].block) {
    ASSERT_TRUE(sub.post_norm.has_value());
    EXPECT_EQ(sub.post_norm->kind, NormKind::kRmsNorm);
    EXPECT_EQ(sub.residual->skip, 1.0);
  }
}

// ---------------------------------------------------------------------------------------------
// The resolved config

TEST(ConfigSequenceWrite, AttentionAndGluItemsAreWrittenInFull) {
  const RunSpec spec = parse(layers(R"({"attention": {"scale": 0.25}}, {"glu": {"hidden": 8}})",
                                    R"({"width": 64, "tokens": 4})"));
  const Json j = Json::parse(gradscope::run_spec_to_json(spec));
  EXPECT_EQ(j["input"]["tokens"], 4);
  const Json& a = j["layers"][0]["attention"];
  EXPECT_EQ(keys_of(a), (std::vector<std::string>{"heads", "causal", "scale", "bias",
                                                  "output_projection", "init"}));
  EXPECT_EQ(a["scale"], 0.25);
  EXPECT_EQ(keys_of(a["init"]), (std::vector<std::string>{"query", "key", "value", "output"}));
  EXPECT_EQ(a["init"]["output"]["name"], "xavier_uniform");
  const Json& g = j["layers"][1]["glu"];
  EXPECT_EQ(keys_of(g), (std::vector<std::string>{"hidden", "activation", "bias", "init"}));
  EXPECT_EQ(keys_of(g["init"]), (std::vector<std::string>{"gate", "up", "down"}));
  EXPECT_EQ(g["activation"], "silu");
  expect_round_trip(spec);

  // The configs of vectors and plain residuals read as before: no tokens and no skip keys.
  const Json plain = Json::parse(gradscope::run_spec_to_json(
      parse(layers(R"({"residual": true, "block": [{"width": 64}]})"))));
  EXPECT_FALSE(plain["input"].contains("tokens"));
  EXPECT_FALSE(plain["layers"][0]["residual"].contains("skip"));
  EXPECT_EQ(Json::parse(gradscope::run_spec_to_json(parse(layers(
                R"({"attention": {"scale": "1/d_head"}})"))))["layers"][0]["attention"]["scale"],
            "1/d_head");
}

TEST(ConfigSequenceWrite, EveryScalingRoundTrips) {
  for (const std::string scaling : {"none", "gpt2", "deepnorm", "subln", "tfixup", "rezero"}) {
    SCOPED_TRACE(scaling);
    expect_round_trip(parse(
        layers(R"({"transformer": {"blocks": 3, "heads": 2, "scaling": ")" + scaling + R"("}})",
               R"({"width": 64, "tokens": 8})")));
  }
  expect_round_trip(parse(layers(R"({"transformer": {"blocks": 2, "activation": "swiglu"}})")));
  const RunSpec deepnorm =
      parse(layers(R"({"transformer": {"blocks": 6, "scaling": "deepnorm"}})"));
  const Json j = Json::parse(gradscope::run_spec_to_json(deepnorm));
  EXPECT_EQ(j["layers"][0]["block"][0]["residual"]["skip"].get<double>(),
            deepnorm.layers[0].block[0].residual->skip);
}

}  // namespace
