// The "layers" architectures: items, blocks, residuals and norms as parsed into the tree and
// expanded into ops, and every error an item can raise.
#include <gtest/gtest.h>

#include "config_test_support.hpp"

namespace {

using namespace config_test;

// ---------------------------------------------------------------------------------------------
// "layers": parsing

TEST(ConfigLayers, IssueExampleParsesIntoTheTreeItDescribes) {
  const RunSpec spec = parse(kIssueExample);
  ASSERT_EQ(spec.layers.size(), 3U);
  const LayerItem& first = spec.layers[0];
  ASSERT_TRUE(first.block.empty());
  EXPECT_EQ(first.op.kind, OpKind::kDense);
  EXPECT_EQ(first.op.dense.width, 512);
  EXPECT_EQ(first.op.dense.activation.kind, Activation::kGelu);
  EXPECT_EQ(first.op.dense.init.kind, Init::kHeNormal);
  EXPECT_EQ(first.op.dense.bias.kind, BiasInit::kZeros);

  const LayerItem& block = spec.layers[1];
  EXPECT_EQ(block.repeat, 24);
  ASSERT_TRUE(block.residual.has_value());
  EXPECT_EQ(block.residual->scale, 1.0);
  EXPECT_FALSE(block.residual->projection);
  EXPECT_FALSE(block.post_norm.has_value());
  ASSERT_EQ(block.block.size(), 3U);
  EXPECT_EQ(block.block[0].op.kind, OpKind::kNorm);
  EXPECT_EQ(block.block[0].op.norm.kind, NormKind::kLayerNorm);
  EXPECT_EQ(block.block[0].op.norm.eps, 1e-5);
  EXPECT_EQ(block.block[1].op.dense.width, 2048);
  EXPECT_EQ(block.block[1].op.dense.activation.kind, Activation::kGelu);
  EXPECT_EQ(block.block[2].op.dense.width, 512);
  EXPECT_EQ(block.block[2].op.dense.activation.kind, Activation::kLinear);
  EXPECT_EQ(block.block[2].op.dense.init.kind, Init::kXavierNormal);

  const LayerItem& last = spec.layers[2];
  EXPECT_EQ(last.op.dense.width, 10);
  EXPECT_EQ(last.op.dense.activation.kind, Activation::kSoftmax);
  EXPECT_EQ(last.op.dense.init.kind, Init::kHeNormal);

  EXPECT_EQ(spec.input.width, 512);  // the first dense op's width
  EXPECT_FALSE(spec.output.has_value());
  EXPECT_EQ(spec.loss.kind, LossKind::kProbe);
  EXPECT_EQ(spec.optimizer.kind, OptimizerKind::kNone);
}

TEST(ConfigLayers, IssueExampleExpandsToTheRightOpsAndWidths) {
  const RunSpec spec = parse(kIssueExample);
  std::vector<OpKind> kinds{OpKind::kDense};
  std::vector<int> widths{512};
  for (int r = 0; r < 24; ++r) {
    kinds.insert(kinds.end(), {OpKind::kResidualBegin, OpKind::kNorm, OpKind::kDense,
                               OpKind::kDense, OpKind::kResidualEnd});
    widths.insert(widths.end(), {512, 512, 2048, 512, 512});
  }
  kinds.push_back(OpKind::kDense);
  widths.push_back(10);
  const std::vector<OpSpec> ops = gradscope::expand_ops(spec);
  EXPECT_EQ(kinds_of(ops), kinds);
  EXPECT_EQ(gradscope::op_widths(spec, ops), widths);
  // Both ends of a residual connection carry its spec, for the engine to build it from either.
  EXPECT_EQ(ops[1].residual.scale, 1.0);
  EXPECT_EQ(ops[5].residual.scale, 1.0);
  EXPECT_EQ(ops[3].dense.width, 2048);
  EXPECT_EQ(ops.back().dense.activation.kind, Activation::kSoftmax);
}

TEST(ConfigLayers, DenseItemDefaultsMatchTheStack) {
  const RunSpec spec = parse(with_layers(R"([{"width": 7}, {"width": 5, "init": "torch_default"},
      {"width": 3, "init": "torch_default", "bias_init": "zeros"},
      {"width": 2, "bias_init": {"name": "constant", "value": 0.5}}])"));
  ASSERT_EQ(spec.layers.size(), 4U);
  const LayerSpec& plain = spec.layers[0].op.dense;
  EXPECT_EQ(plain.activation.kind, Activation::kRelu);
  EXPECT_EQ(plain.init.kind, Init::kHeNormal);
  EXPECT_EQ(plain.bias.kind, BiasInit::kZeros);
  EXPECT_EQ(spec.layers[1].op.dense.bias.kind, BiasInit::kTorchDefault);
  EXPECT_EQ(spec.layers[2].op.dense.bias.kind, BiasInit::kZeros);
  EXPECT_EQ(spec.layers[3].op.dense.bias.kind, BiasInit::kConstant);
  EXPECT_EQ(spec.layers[3].op.dense.bias.value, 0.5);
}

TEST(ConfigLayers, InputWidthDefaultsToTheFirstDenseOp) {
  // The first dense op may sit inside a block, after width-keeping ops.
  const RunSpec nested = parse(with_layers(
      R"([{"norm": "rms_norm"}, {"repeat": 2, "block": [{"dropout": 0.5}, {"width": 32}]},
          {"width": 4}])"));
  EXPECT_EQ(nested.input.width, 32);
  const RunSpec given =
      parse(R"({"input": {"width": 3}, "layers": [{"width": 32}, {"width": 4}]})");
  EXPECT_EQ(given.input.width, 3);
  EXPECT_EQ(widths_of(given), (std::vector<int>{32, 4}));

  const Error none =
      config_error(with_layers(R"([{"norm": "layer_norm"}, {"activation": "tanh"}])"));
  EXPECT_EQ(what(none),
            "cfg.json: input.width: missing: \"layers\" has no dense item whose width it could "
            "default to");
  EXPECT_TRUE(Contains(none.hint(), "\"input\": {\"width\": 256}"));
  EXPECT_EQ(parse(R"({"input": {"width": 6}, "layers": [{"norm": "layer_norm"}]})").input.width, 6);
}

TEST(ConfigLayers, NormItemsTakeANameOrAnObjectWithEps) {
  const RunSpec spec = parse(with_layers(R"([{"width": 4}, {"norm": "batch_norm"},
      {"norm": "layer_norm"}, {"norm": {"name": "rms_norm", "eps": 0.001}},
      {"norm": {"name": "batch_norm"}}])"));
  ASSERT_EQ(spec.layers.size(), 5U);
  EXPECT_EQ(spec.layers[1].op.norm.kind, NormKind::kBatchNorm);
  EXPECT_EQ(spec.layers[1].op.norm.eps, 1e-5);
  EXPECT_EQ(spec.layers[2].op.norm.kind, NormKind::kLayerNorm);
  EXPECT_EQ(spec.layers[3].op.norm.kind, NormKind::kRmsNorm);
  EXPECT_EQ(spec.layers[3].op.norm.eps, 0.001);
  EXPECT_EQ(spec.layers[4].op.norm.eps, 1e-5);
}

TEST(ConfigLayers, ActivationAndDropoutItems) {
  const RunSpec spec = parse(with_layers(
      R"([{"width": 4, "activation": "linear"}, {"activation": {"name": "leaky_relu", "slope": 0.2}},
          {"dropout": 0.25}, {"dropout": 0}, {"activation": "swish"}])"));
  EXPECT_EQ(op_kinds(spec),
            (std::vector<OpKind>{OpKind::kDense, OpKind::kActivation, OpKind::kDropout,
                                 OpKind::kDropout, OpKind::kActivation}));
  EXPECT_EQ(spec.layers[1].op.activation.kind, Activation::kLeakyRelu);
  EXPECT_EQ(spec.layers[1].op.activation.param, 0.2);
  EXPECT_EQ(spec.layers[2].op.dropout, 0.25);
  EXPECT_EQ(spec.layers[3].op.dropout, 0.0);
  EXPECT_EQ(spec.layers[4].op.activation.kind, Activation::kSilu);
}

TEST(ConfigLayers, DenseWithANormExpandsBeforeTheActivationByDefault) {
  const RunSpec before = parse(with_layers(
      R"([{"width": 16, "activation": "tanh", "init": "xavier_normal", "norm": "batch_norm"}])"));
  ASSERT_EQ(before.layers.size(), 3U);
  EXPECT_EQ(before.layers[0].op.kind, OpKind::kDense);
  EXPECT_EQ(before.layers[0].op.dense.width, 16);
  EXPECT_EQ(before.layers[0].op.dense.activation.kind, Activation::kLinear);
  EXPECT_EQ(before.layers[0].op.dense.init.kind, Init::kXavierNormal);
  EXPECT_EQ(before.layers[1].op.kind, OpKind::kNorm);
  EXPECT_EQ(before.layers[1].op.norm.kind, NormKind::kBatchNorm);
  EXPECT_EQ(before.layers[2].op.kind, OpKind::kActivation);
  EXPECT_EQ(before.layers[2].op.activation.kind, Activation::kTanh);
  EXPECT_EQ(widths_of(before), (std::vector<int>{16, 16, 16}));

  const RunSpec explicit_before = parse(with_layers(
      R"([{"width": 16, "activation": "tanh", "init": "xavier_normal", "norm": "batch_norm",
           "norm_position": "before_activation"}])"));
  expect_same_items(explicit_before.layers, before.layers);

  const RunSpec after = parse(with_layers(
      R"([{"width": 16, "activation": "tanh", "norm": {"name": "layer_norm", "eps": 1e-6},
           "norm_position": "after_activation"}])"));
  ASSERT_EQ(after.layers.size(), 2U);
  EXPECT_EQ(after.layers[0].op.dense.activation.kind, Activation::kTanh);
  EXPECT_EQ(after.layers[1].op.norm.kind, NormKind::kLayerNorm);
  EXPECT_EQ(after.layers[1].op.norm.eps, 1e-6);

  // A linear activation after the norm would be the identity: no op for it.
  const RunSpec linear =
      parse(with_layers(R"([{"width": 16, "activation": "linear", "norm": "rms_norm"}])"));
  EXPECT_EQ(op_kinds(linear), (std::vector<OpKind>{OpKind::kDense, OpKind::kNorm}));
  // The default activation is relu, as for any dense item.
  const RunSpec relu = parse(with_layers(R"([{"width": 16, "norm": "rms_norm"}])"));
  ASSERT_EQ(relu.layers.size(), 3U);
  EXPECT_EQ(relu.layers[2].op.activation.kind, Activation::kRelu);
}

TEST(ConfigLayers, BlockWithoutAResidualRepeatsItsItems) {
  const RunSpec spec =
      parse(with_layers(R"([{"repeat": 3, "block": [{"width": 8}, {"dropout": 0.1}]}])"));
  ASSERT_EQ(spec.layers.size(), 1U);
  EXPECT_EQ(spec.layers[0].repeat, 3);
  EXPECT_FALSE(spec.layers[0].residual.has_value());
  std::vector<OpKind> expected;
  for (int r = 0; r < 3; ++r) expected.insert(expected.end(), {OpKind::kDense, OpKind::kDropout});
  EXPECT_EQ(op_kinds(spec), expected);

  const RunSpec no_residual = parse(with_layers(
      R"([{"repeat": 3, "residual": false, "block": [{"width": 8}, {"dropout": 0.1}]}])"));
  expect_same_items(no_residual.layers, spec.layers);
  // repeat defaults to 1.
  EXPECT_EQ(parse(with_layers(R"([{"block": [{"width": 8}]}])")).layers[0].repeat, 1);
}

TEST(ConfigLayers, ResidualScaleDefaultsToOneAndMayBeZeroOrNegative) {
  const auto residual_of = [](const char* residual) {
    std::string text = R"([{"width": 8}, {"residual": )";
    text += residual;
    text += R"(, "block": [{"width": 8}]}])";
    return *parse(with_layers(text)).layers[1].residual;
  };
  EXPECT_EQ(residual_of("true").scale, 1.0);
  EXPECT_FALSE(residual_of("true").projection);
  EXPECT_EQ(residual_of("{}").scale, 1.0);
  EXPECT_EQ(residual_of(R"({"scale": 0})").scale, 0.0);  // ReZero / SkipInit start at 0
  EXPECT_EQ(residual_of(R"({"scale": -0.5})").scale, -0.5);
  EXPECT_EQ(residual_of(R"({"scale": 0.1, "placement": "pre_norm"})").scale, 0.1);
}

TEST(ConfigLayers, NestedBlocksExpandInsideOut) {
  const RunSpec spec = parse(with_layers(R"([{"width": 8},
      {"repeat": 2, "residual": true, "block": [
          {"norm": "layer_norm"},
          {"repeat": 3, "residual": {"scale": 0.5}, "block": [{"width": 8, "activation": "tanh"}]},
          {"width": 8}]}])"));
  std::vector<OpKind> kinds{OpKind::kDense};
  for (int outer = 0; outer < 2; ++outer) {
    kinds.insert(kinds.end(), {OpKind::kResidualBegin, OpKind::kNorm});
    for (int inner = 0; inner < 3; ++inner) {
      kinds.insert(kinds.end(), {OpKind::kResidualBegin, OpKind::kDense, OpKind::kResidualEnd});
    }
    kinds.insert(kinds.end(), {OpKind::kDense, OpKind::kResidualEnd});
  }
  const std::vector<OpSpec> ops = gradscope::expand_ops(spec);
  EXPECT_EQ(kinds_of(ops), kinds);
  EXPECT_EQ(ops[1].residual.scale, 1.0);  // the outer block's begin
  EXPECT_EQ(ops[3].residual.scale, 0.5);  // the inner block's first begin
  EXPECT_EQ(gradscope::op_widths(spec, ops), std::vector<int>(ops.size(), 8));
}

TEST(ConfigLayers, ProjectionLetsAResidualBlockChangeTheWidth) {
  const RunSpec spec = parse(with_layers(R"([{"width": 8},
      {"residual": {"projection": true}, "block": [{"width": 16}, {"width": 16}]},
      {"residual": {"projection": {"name": "xavier_normal", "gain": 0.5}},
       "block": [{"width": 4}]}])"));
  const gradscope::ResidualSpec& first = *spec.layers[1].residual;
  EXPECT_TRUE(first.projection);
  EXPECT_EQ(first.projection_init.kind, Init::kOrthogonal);
  EXPECT_EQ(first.projection_init.gain, 1.0);
  const gradscope::ResidualSpec& second = *spec.layers[2].residual;
  EXPECT_TRUE(second.projection);
  EXPECT_EQ(second.projection_init.kind, Init::kXavierNormal);
  EXPECT_EQ(second.projection_init.gain, 0.5);
  // A residual end outputs the branch's width, to which P maps the skip path.
  EXPECT_EQ(widths_of(spec), (std::vector<int>{8, 8, 16, 16, 16, 16, 4, 4}));
  EXPECT_EQ(op_kinds(spec),
            (std::vector<OpKind>{OpKind::kDense, OpKind::kResidualBegin, OpKind::kDense,
                                 OpKind::kDense, OpKind::kResidualEnd, OpKind::kResidualBegin,
                                 OpKind::kDense, OpKind::kResidualEnd}));
  // A projection is allowed where the widths agree too (a fixed random rotation of the skip).
  EXPECT_TRUE(parse(with_layers(R"([{"width": 8}, {"residual": {"projection": true},
                                     "block": [{"width": 8}]}])"))
                  .layers[1]
                  .residual->projection);
  EXPECT_FALSE(parse(with_layers(R"([{"width": 8}, {"residual": {"projection": false},
                                      "block": [{"width": 8}]}])"))
                   .layers[1]
                   .residual->projection);
}

TEST(ConfigLayers, PostNormAppliesItsNormAfterTheAddition) {
  const RunSpec spec = parse(with_layers(R"([{"width": 8},
      {"repeat": 2, "residual": {"placement": "post_norm", "norm": "layer_norm"},
       "block": [{"width": 8}]}])"));
  const LayerItem& block = spec.layers[1];
  ASSERT_TRUE(block.post_norm.has_value());
  EXPECT_EQ(block.post_norm->kind, NormKind::kLayerNorm);
  EXPECT_EQ(block.post_norm->eps, 1e-5);
  EXPECT_EQ(op_kinds(spec),
            (std::vector<OpKind>{OpKind::kDense, OpKind::kResidualBegin, OpKind::kDense,
                                 OpKind::kResidualEnd, OpKind::kNorm, OpKind::kResidualBegin,
                                 OpKind::kDense, OpKind::kResidualEnd, OpKind::kNorm}));
}

TEST(ConfigLayers, SoftmaxIsAllowedAsTheVeryLastOp) {
  for (const char* layers : {
           R"([{"width": 8}, {"width": 3, "activation": "softmax"}])",
           R"([{"width": 8}, {"width": 3, "activation": "linear"}, {"activation": "softmax"}])",
           R"([{"width": 8, "activation": "softmax", "norm": "layer_norm"}])",
           R"([{"width": 8}, {"block": [{"width": 3, "activation": "softmax"}]}])",
       }) {
    SCOPED_TRACE(layers);
    const RunSpec spec = parse(with_layers(layers));
    const std::vector<OpSpec> ops = gradscope::expand_ops(spec);
    const OpSpec& last = ops.back();
    EXPECT_EQ(last.kind == OpKind::kDense ? last.dense.activation.kind : last.activation.kind,
              Activation::kSoftmax);
  }
}

// ---------------------------------------------------------------------------------------------
// "layers": errors

TEST(ConfigLayersErrors, SoftmaxAnywhereButTheLastOpSaysWhatFollowsIt) {
  const Error followed =
      config_error(with_layers(R"([{"width": 8, "activation": "softmax"}, {"width": 4}])"));
  EXPECT_EQ(what(followed),
            "cfg.json: layers[0].activation: softmax may only be the network's very last op, but "
            "layers[1] follows it");
  EXPECT_TRUE(Contains(followed.hint(), "normalises across the units of a layer"));
  EXPECT_TRUE(Contains(followed.hint(), "relu, leaky_relu"));
  EXPECT_TRUE(Contains(followed.hint(), "softmax only on the last item"));

  EXPECT_TRUE(Contains(
      what(config_error(
          with_layers(R"([{"repeat": 2, "block": [{"width": 8, "activation": "softmax"}]}])"))),
      "layers[0].block[0].activation: softmax may only be the network's very last op, but "
      "layers[0] repeats it 2 times"));
  EXPECT_TRUE(Contains(
      what(config_error(with_layers(
          R"([{"residual": true, "block": [{"width": 8, "activation": "softmax"}]}])"))),
      "layers[0].block[0].activation: softmax may only be the network's very last op, but the "
      "residual addition of layers[0] follows it"));
  EXPECT_TRUE(Contains(what(config_error(with_layers(
                           R"([{"width": 8, "activation": "softmax", "norm": "layer_norm",
                                "norm_position": "after_activation"}])"))),
                       "layers[0].activation: softmax may only be the network's very last op, "
                       "but its norm follows it"));
  EXPECT_TRUE(Contains(what(config_error(with_layers(
                           R"([{"width": 8}, {"activation": "softmax"}, {"dropout": 0.1}])"))),
                       "layers[1].activation: softmax may only be the network's very last op, "
                       "but layers[2] follows it"));
  EXPECT_TRUE(Contains(what(config_error(with_layers(
                           R"([{"width": 8}, {"block": [{"width": 3, "activation": "softmax"}]},
                               {"norm": "layer_norm"}])"))),
                       "layers[1].block[0].activation: softmax may only be the network's very "
                       "last op, but layers[2] follows it"));
}

TEST(ConfigLayersErrors, EmptyLayersAndEmptyBlocks) {
  const Error layers = config_error(R"({"layers": []})");
  EXPECT_EQ(what(layers), "cfg.json: layers: empty: a network needs at least one item");
  EXPECT_TRUE(Contains(layers.hint(), "\"stack\""));
  const Error block = config_error(with_layers(R"([{"width": 4}, {"repeat": 2, "block": []}])"));
  EXPECT_EQ(what(block), "cfg.json: layers[1].block: empty: a block needs at least one item");
  EXPECT_TRUE(Contains(block.hint(), "\"block\": [{\"width\": 256}]"));
}

TEST(ConfigLayersErrors, ItemsMustBeObjectsOfOneKind) {
  const Error empty = config_error(with_layers("[{}]"));
  EXPECT_EQ(what(empty), "cfg.json: layers[0]: an empty item");
  EXPECT_TRUE(Contains(empty.hint(), R"({"norm": "layer_norm"})"));
  EXPECT_TRUE(Contains(empty.hint(), R"({"dropout": 0.1})"));

  const Error number = config_error(with_layers("[4]"));
  EXPECT_EQ(what(number), "cfg.json: layers[0]: expected an item {...}, got 4");

  const Error three =
      config_error(with_layers(R"([{"width": 512, "norm": "layer_norm", "dropout": 0.1}])"));
  EXPECT_EQ(what(three), "cfg.json: layers[0]: \"width\" and \"dropout\" cannot be in one item");
  EXPECT_TRUE(Contains(three.hint(),
                       "\"width\" makes it a dense layer and \"dropout\" a "
                       "dropout layer: write them as separate items"));

  const Error norm_activation =
      config_error(with_layers(R"([{"norm": "layer_norm", "activation": "relu"}])"));
  EXPECT_EQ(what(norm_activation),
            "cfg.json: layers[0]: \"norm\" and \"activation\" cannot be in one item");
  EXPECT_TRUE(Contains(norm_activation.hint(), "a dense layer with a norm needs its \"width\""));

  const Error block_dropout =
      config_error(with_layers(R"([{"dropout": 0.1, "repeat": 2, "block": [{"width": 3}]}])"));
  EXPECT_EQ(what(block_dropout),
            "cfg.json: layers[0]: \"dropout\" and \"repeat\" cannot be in one item");

  const Error block_width = config_error(with_layers(R"([{"block": [{"width": 3}], "width": 3}])"));
  EXPECT_TRUE(
      Contains(what(block_width), "layers[0]: \"block\" and \"width\" cannot be in one item"));
}

TEST(ConfigLayersErrors, UnknownKeysSuggestTheClosestValidKey) {
  const Error item = config_error(with_layers(R"([{"widht": 8}])"));
  EXPECT_EQ(what(item), "cfg.json: layers[0].widht: unknown key");
  EXPECT_EQ(item.hint(),
            "did you mean \"width\"? valid keys here: width, activation, init, bias_init, norm, "
            "norm_position, dropout, repeat, residual, block, attention, glu, transformer, "
            "conv, pool, flatten");

  const Error nested =
      config_error(with_layers(R"([{"block": [{"width": 8}, {"dropuot": 0.1}]}])"));
  EXPECT_EQ(what(nested), "cfg.json: layers[0].block[1].dropuot: unknown key");
  EXPECT_TRUE(Contains(nested.hint(), "did you mean \"dropout\"?"));

  const Error residual = config_error(
      with_layers(R"([{"width": 8}, {"residual": {"scael": 1}, "block": [{"width": 8}]}])"));
  EXPECT_EQ(what(residual), "cfg.json: layers[1].residual.scael: unknown key");
  EXPECT_EQ(residual.hint(),
            "did you mean \"scale\"? valid keys here: scale, skip, projection, placement, norm, "
            "preset");

  const Error norm =
      config_error(with_layers(R"([{"width": 8}, {"norm": {"name": "layer_norm", "esp": 1}}])"));
  EXPECT_EQ(what(norm), "cfg.json: layers[1].norm.esp: unknown key");
  EXPECT_EQ(norm.hint(), "did you mean \"eps\"? valid keys here: name, eps");

  const Error norm_name = config_error(with_layers(R"([{"width": 8, "norm": "layernorm"}])"));
  EXPECT_EQ(what(norm_name), "cfg.json: layers[0].norm: unknown norm \"layernorm\"");
  EXPECT_EQ(norm_name.hint(),
            "did you mean \"layer_norm\"? choose one of: batch_norm, layer_norm, rms_norm");

  const Error position = config_error(
      with_layers(R"([{"width": 8, "norm": "layer_norm", "norm_position": "after"}])"));
  EXPECT_TRUE(Contains(what(position), "layers[0].norm_position: unknown norm_position \"after\""));
  EXPECT_TRUE(Contains(position.hint(), "before_activation, after_activation"));

  const Error placement = config_error(with_layers(
      R"([{"width": 8}, {"residual": {"placement": "postnorm"}, "block": [{"width": 8}]}])"));
  EXPECT_TRUE(
      Contains(what(placement), "layers[1].residual.placement: unknown placement \"postnorm\""));
  EXPECT_TRUE(Contains(placement.hint(), "did you mean \"post_norm\"?"));
}

TEST(ConfigLayersErrors, ResidualBlockThatChangesTheWidthNeedsAProjection) {
  const Error e =
      config_error(with_layers(R"([{"width": 512}, {"repeat": 4, "residual": {"scale": 1},
                                   "block": [{"width": 2048}]}])"));
  EXPECT_EQ(what(e),
            "cfg.json: layers[1].residual: the block's input is 512 wide but its output is 2048 "
            "wide, so the skip path cannot be added to it");
  EXPECT_TRUE(Contains(e.hint(), "add \"projection\": true"));
  EXPECT_TRUE(Contains(e.hint(), "end 512 wide"));

  // From the input width, when the block comes first.
  EXPECT_TRUE(Contains(what(config_error(R"({"input": {"width": 3}, "layers": [{"residual": true,
                            "block": [{"width": 8}]}]})")),
                       "layers[0].residual: the block's input is 3 wide but its output is 8 wide"));

  // Fine in the first repetition of the enclosing block, wrong from its second on.
  const Error second = config_error(with_layers(R"([{"width": 8}, {"repeat": 3, "block": [
      {"residual": true, "block": [{"width": 8}]}, {"width": 16}]}])"));
  EXPECT_EQ(what(second),
            "cfg.json: layers[1].block[0].residual: the block's input is 16 wide but its output "
            "is 8 wide, so the skip path cannot be added to it (in the second repetition of "
            "layers[1], whose input is the first's output)");
  // The same block repeated once has no second repetition.
  EXPECT_NO_THROW(parse(with_layers(R"([{"width": 8}, {"repeat": 1, "block": [
      {"residual": true, "block": [{"width": 8}]}, {"width": 16}]}])")));
}

TEST(ConfigLayersErrors, PostNormNeedsANormAndPreNormRefusesOne) {
  const Error post = config_error(with_layers(
      R"([{"width": 8}, {"residual": {"placement": "post_norm"}, "block": [{"width": 8}]}])"));
  EXPECT_EQ(what(post),
            "cfg.json: layers[1].residual.placement: \"post_norm\" needs a \"norm\" to apply "
            "after the addition");
  EXPECT_TRUE(Contains(post.hint(), "\"norm\": \"layer_norm\""));

  const Error pre = config_error(with_layers(
      R"([{"width": 8}, {"residual": {"norm": "layer_norm"}, "block": [{"width": 8}]}])"));
  EXPECT_EQ(what(pre),
            "cfg.json: layers[1].residual.norm: a pre-norm residual (the default) takes no "
            "\"norm\": its norms go inside the block");
  EXPECT_TRUE(Contains(pre.hint(), "put the norm first in the block"));
  EXPECT_TRUE(Contains(pre.hint(), "\"placement\": \"post_norm\""));

  const Error explicit_pre = config_error(with_layers(
      R"([{"width": 8}, {"residual": {"placement": "pre_norm", "norm": "layer_norm"},
          "block": [{"width": 8}]}])"));
  EXPECT_TRUE(
      Contains(what(explicit_pre), "layers[1].residual.norm: a pre-norm residual takes no"));
}

TEST(ConfigLayersErrors, LayersAndStackOrOutputAreExclusive) {
  const Error stack = config_error(R"({"stack": {"depth": 3}, "layers": [{"width": 8}]})");
  EXPECT_EQ(what(stack), "cfg.json: stack: \"stack\" cannot be used together with \"layers\"");
  EXPECT_TRUE(Contains(stack.hint(), "use one"));
  const Error output = config_error(R"({"layers": [{"width": 8}], "output": {"width": 2}})");
  EXPECT_EQ(what(output), "cfg.json: output: \"output\" cannot be used together with \"layers\"");

  // null removes either side, so an override can switch a file from one form to the other.
  EXPECT_EQ(parse(R"({"stack": null, "output": null, "layers": [{"width": 8}]})").layers.size(),
            1U);
  EXPECT_EQ(parse(R"({"stack": {"depth": 3}, "layers": null})").stack.depth, 3);
  const RunSpec switched =
      parse(R"({"stack": {"depth": 3}})",
            {{"stack", "null", "--set stack"}, {"layers", R"([{"width": 8}])", "--set layers"}});
  EXPECT_EQ(switched.layers.size(), 1U);

  // A stack flag on a layers file names the flag.
  const Error flag =
      config_error(R"({"layers": [{"width": 8}]})", {{"stack.depth", "5", "--depth"}});
  EXPECT_EQ(what(flag), "--depth: stack: \"stack\" cannot be used together with \"layers\"");
}

TEST(ConfigLayersErrors, TheBuiltInDefaultsStackGivesWayToLayers) {
  const RunSpec spec =
      gradscope::load_run_spec(std::nullopt, {{"layers", R"([{"width": 8}])", "--set layers"}});
  ASSERT_EQ(spec.layers.size(), 1U);
  EXPECT_EQ(spec.input.width, 8);
  // ... but not a stack that a flag chose.
  const Error e = error_of([] {
    gradscope::load_run_spec(std::nullopt, {{"stack.depth", "5", "--depth"},
                                            {"layers", R"([{"width": 8}])", "--set layers"}});
  });
  EXPECT_TRUE(Contains(what(e), "\"stack\" cannot be used together with \"layers\""));
}

TEST(ConfigLayersErrors, ValuesOutOfRangeOrOfTheWrongType) {
  const Error layers_object = config_error(R"({"layers": {"width": 8}})");
  EXPECT_TRUE(Contains(what(layers_object), "cfg.json: layers: expected an array [...] of items"));
  EXPECT_TRUE(Contains(what(config_error(with_layers(R"([{"block": {"width": 8}}])"))),
                       "layers[0].block: expected an array [...] of items"));

  const Error dropout = config_error(with_layers(R"([{"width": 8}, {"dropout": 1}])"));
  EXPECT_EQ(what(dropout), "cfg.json: layers[1].dropout: must be in [0, 1), got 1");
  EXPECT_TRUE(Contains(what(config_error(with_layers(R"([{"width": 8}, {"dropout": -0.1}])"))),
                       "layers[1].dropout: must be in [0, 1), got -0.1"));
  EXPECT_TRUE(Contains(what(config_error(with_layers(R"([{"width": 8}, {"dropout": "0.1"}])"))),
                       "layers[1].dropout: expected a number"));

  EXPECT_TRUE(
      Contains(what(config_error(with_layers(R"([{"repeat": 0, "block": [{"width": 8}]}])"))),
               "layers[0].repeat: expected a positive integer, got 0"));
  EXPECT_TRUE(Contains(what(config_error(with_layers(R"([{"width": 0}])"))),
                       "layers[0].width: expected a positive integer, got 0"));
  EXPECT_TRUE(Contains(what(config_error(with_layers(
                           R"([{"width": 8, "norm": {"name": "layer_norm", "eps": 0}}])"))),
                       "layers[0].norm.eps: must be greater than 0, got 0"));
  EXPECT_TRUE(Contains(
      what(config_error(
          with_layers(R"([{"width": 8}, {"residual": "yes", "block": [{"width": 8}]}])"))),
      "layers[1].residual: expected true, false or an object {...}, got \"yes\" (a string)"));
  EXPECT_TRUE(
      Contains(what(config_error(with_layers(
                   R"([{"width": 8}, {"residual": {"projection": 1}, "block": [{"width": 8}]}])"))),
               "layers[1].residual.projection: expected true, false, an init or {\"init\": ..., "
               "\"norm\": ...}, got 1"));
  EXPECT_TRUE(
      Contains(what(config_error(with_layers(
                   R"([{"width": 8}, {"residual": {"scale": null}, "block": [{"width": 8}]}])"))),
               "layers[1].residual.scale: expected a number, got null"));
  EXPECT_TRUE(Contains(
      what(config_error(with_layers(
          R"([{"width": 8}, {"residual": {"projection": "orthogonl"}, "block": [{"width": 8}]}])"))),
      "layers[1].residual.projection: unknown init \"orthogonl\""));

  const Error missing_width = config_error(with_layers(R"([{"init": "he_normal"}])"));
  EXPECT_EQ(what(missing_width), "cfg.json: layers[0]: missing \"width\"");
  const Error missing_block = config_error(with_layers(R"([{"repeat": 2, "residual": true}])"));
  EXPECT_EQ(what(missing_block), "cfg.json: layers[0]: missing \"block\"");
  const Error position =
      config_error(with_layers(R"([{"width": 8, "norm_position": "after_activation"}])"));
  EXPECT_EQ(what(position),
            "cfg.json: layers[0].norm_position: \"norm_position\" without a \"norm\"");
  // A hidden activation item may not be softmax either; its activation names are the registry's.
  EXPECT_TRUE(Contains(what(config_error(with_layers(R"([{"width": 8}, {"activation": "rleu"}])"))),
                       "layers[1].activation: unknown activation \"rleu\""));
}

TEST(ConfigLayersErrors, NetworksThatExpandBeyondTheOpLimitAreRefused) {
  const Error nested = config_error(with_layers(
      R"([{"repeat": 1000000, "block": [{"repeat": 1000, "block": [{"width": 3}]}]}])"));
  EXPECT_EQ(what(nested),
            "cfg.json: layers[0].repeat: this block expands to 1000000000 ops (1000000 x 1000), "
            "more than the 2000000 a network may have");
  const Error sum = config_error(
      with_layers(R"([{"repeat": 1000000, "block": [{"width": 3}, {"width": 3}]}, {"width": 3}])"));
  EXPECT_EQ(what(sum),
            "cfg.json: layers: the network expands to 2000001 ops, more than the 2000000 it may "
            "have");
  // The limit itself is allowed (counted, not expanded).
  EXPECT_NO_THROW(
      parse(with_layers(R"([{"repeat": 1000000, "block": [{"width": 3}, {"width": 3}]}])")));
}

}  // namespace
