// The resolved config the writer prints (every key, in the documented order), its round trip
// back to an equal RunSpec, and spec.hpp's op expansion and enum names.
#include <gtest/gtest.h>

#include "config_test_support.hpp"

namespace {

using namespace config_test;

// ---------------------------------------------------------------------------------------------
// Resolved config

TEST(ConfigResolved, KeysComeInTheDocumentedOrder) {
  const RunSpec spec = parse(R"({"output": {"width": 3}, "stats": {}, "stack": {}, "seed": 2})");
  const Json j = Json::parse(gradscope::run_spec_to_json(spec));
  EXPECT_EQ(keys_of(j),
            (std::vector<std::string>{"name", "seed", "precision", "input", "stack", "output",
                                      "loss", "optimizer", "stats", "diagnosis"}));
  EXPECT_EQ(keys_of(j["input"]),
            (std::vector<std::string>{"width", "batch", "distribution", "mean", "std"}));
  EXPECT_EQ(keys_of(j["stack"]),
            (std::vector<std::string>{"depth", "width", "activation", "init", "bias_init"}));
  EXPECT_EQ(keys_of(j["output"]),
            (std::vector<std::string>{"width", "activation", "init", "bias_init"}));
  EXPECT_EQ(keys_of(j["stats"]), (std::vector<std::string>{"saturation_threshold"}));

  const Json uniform =
      Json::parse(gradscope::run_spec_to_json(parse(R"({"input": {"distribution": "uniform"}})")));
  EXPECT_EQ(keys_of(uniform["input"]),
            (std::vector<std::string>{"width", "batch", "distribution", "low", "high"}));
  EXPECT_FALSE(uniform.contains("output"));
}

TEST(ConfigResolved, ActivationIsAStringUnlessItTakesAParameter) {
  const Json relu = Json::parse(gradscope::run_spec_to_json(parse("{}")));
  EXPECT_EQ(relu["stack"]["activation"], "relu");
  const Json leaky =
      Json::parse(gradscope::run_spec_to_json(parse(R"({"stack": {"activation": "leaky_relu"}})")));
  EXPECT_EQ(keys_of(leaky["stack"]["activation"]), (std::vector<std::string>{"name", "slope"}));
  EXPECT_EQ(leaky["stack"]["activation"]["slope"].get<double>(),
            gradscope::activation_info(Activation::kLeakyRelu).param_default);
  const Json alias =
      Json::parse(gradscope::run_spec_to_json(parse(R"({"stack": {"activation": "swish"}})")));
  EXPECT_EQ(alias["stack"]["activation"], "silu");
}

TEST(ConfigResolved, InitIsAnObjectWithExactlyTheParametersItTakes) {
  const auto init_keys = [](const char* name) {
    const Json j = Json::parse(
        gradscope::run_spec_to_json(parse(std::string(R"({"stack": {"init": ")") + name + "\"}}")));
    return keys_of(j["stack"]["init"]);
  };
  using Keys = std::vector<std::string>;
  EXPECT_EQ(init_keys("he_normal"), (Keys{"name", "gain", "mode"}));
  EXPECT_EQ(init_keys("he_uniform"), (Keys{"name", "gain", "mode"}));
  EXPECT_EQ(init_keys("orthogonal"), (Keys{"name", "gain"}));
  EXPECT_EQ(init_keys("zeros"), (Keys{"name", "gain"}));
  EXPECT_EQ(init_keys("normal"), (Keys{"name", "gain", "std"}));
  EXPECT_EQ(init_keys("uniform"), (Keys{"name", "gain", "limit"}));
  EXPECT_EQ(init_keys("variance"), (Keys{"name", "gain", "weight_var"}));

  const Json j = Json::parse(gradscope::run_spec_to_json(parse("{}")));
  EXPECT_EQ(j["stack"]["init"]["mode"], "fan_in");
  EXPECT_EQ(keys_of(j["stack"]["bias_init"]), (Keys{"name"}));
  const Json constant =
      Json::parse(gradscope::run_spec_to_json(parse(R"({"stack": {"bias_init": "constant"}})")));
  EXPECT_EQ(keys_of(constant["stack"]["bias_init"]), (Keys{"name", "value"}));
}

TEST(ConfigResolved, BuiltInDefaultRoundTrips) {
  expect_round_trip(gradscope::load_run_spec(std::nullopt));
}

TEST(ConfigResolved, EveryActivationRoundTrips) {
  for (const gradscope::ActivationInfo& info : gradscope::activation_table()) {
    SCOPED_TRACE(std::string(info.name));
    const std::string name(info.name);
    if (info.output_only) {
      expect_round_trip(parse(R"({"output": {"width": 4, "activation": ")" + name + "\"}}"));
      continue;
    }
    expect_round_trip(parse(R"({"stack": {"activation": ")" + name + "\"}}"));
    if (!info.param_name.empty()) {
      // A parameter value with no short decimal form tests the shortest round-trip writer.
      expect_round_trip(parse(R"({"stack": {"activation": {"name": ")" + name + R"(", ")" +
                              std::string(info.param_name) + R"(": 0.30000000000000004}}})"));
    }
  }
}

// Gives every parameter the resolved config lists for this scheme a value other than its default.
Json with_unusual_params(Json object) {
  for (auto& item : object.items()) {
    if (item.key() == "name") continue;
    if (item.key() == "mode") {
      item.value() = "fan_out";
    } else if (item.key() == "value") {
      item.value() = -1.0 / 3.0;
    } else {
      item.value() = 0.7 + item.value().get<double>() / 7.0;
    }
  }
  return object;
}

TEST(ConfigResolved, EveryInitAndBiasInitRoundTripsWithItsParameters) {
  for (const gradscope::InitInfo& info : gradscope::init_table()) {
    SCOPED_TRACE(std::string(info.name));
    // A convolution's init: ConfigConv round-trips it on a conv item.
    if (info.kind == gradscope::Init::kDeltaOrthogonal) continue;
    const RunSpec plain = parse(R"({"stack": {"init": ")" + std::string(info.name) + "\"}}");
    expect_round_trip(plain);
    Json config = Json::object();
    config["stack"]["init"] =
        with_unusual_params(Json::parse(gradscope::run_spec_to_json(plain))["stack"]["init"]);
    config["output"]["width"] = 5;
    config["output"]["init"] = config["stack"]["init"];
    const RunSpec unusual = parse(config.dump());
    EXPECT_NE(unusual.stack.layer.init.gain, 1.0);
    expect_round_trip(unusual);
  }
  for (const gradscope::BiasInitInfo& info : gradscope::bias_init_table()) {
    SCOPED_TRACE(std::string(info.name));
    const RunSpec plain = parse(R"({"stack": {"bias_init": ")" + std::string(info.name) + "\"}}");
    expect_round_trip(plain);
    Json config = Json::object();
    config["stack"]["bias_init"] =
        with_unusual_params(Json::parse(gradscope::run_spec_to_json(plain))["stack"]["bias_init"]);
    expect_round_trip(parse(config.dump()));
  }
}

TEST(ConfigResolved, EveryTopLevelFieldRoundTrips) {
  expect_round_trip(parse(R"({
    "name": "everything.1", "seed": 18446744073709551615, "precision": "float64",
    "input": {"width": 7, "batch": 3, "distribution": "normal", "mean": 1e-300, "std": 0.1},
    "stack": {"depth": 1000000, "width": 16777216, "activation": "gelu_tanh"},
    "output": {"width": 1, "activation": "softmax", "bias_init": "torch_default"},
    "stats": {"saturation_threshold": 0.3333333333333333}})"));
  expect_round_trip(parse(R"({
    "input": {"distribution": "uniform", "low": -3, "high": 0.5},
    "stack": {"init": "torch_default"}})"));
}

// ---------------------------------------------------------------------------------------------
// spec.hpp helpers

TEST(SpecHelpers, ExpandLayersGivesDepthCopiesThenTheOutputLayer) {
  const RunSpec spec = parse(R"({"stack": {"depth": 3, "width": 8, "activation": "tanh"},
                                "output": {"width": 2, "activation": "softmax"}})");
  const std::vector<LayerSpec> layers = gradscope::expand_layers(spec);
  ASSERT_EQ(layers.size(), 4U);
  for (std::size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    expect_same_layer(layers[i], spec.stack.layer);
  }
  expect_same_layer(layers[3], *spec.output);
  EXPECT_EQ(gradscope::expand_layers(parse(R"({"stack": {"depth": 2}})")).size(), 2U);
}

TEST(SpecHelpers, EnumNames) {
  EXPECT_EQ(gradscope::precision_name(Precision::kFloat32), "float32");
  EXPECT_EQ(gradscope::precision_name(Precision::kFloat64), "float64");
  EXPECT_EQ(gradscope::input_distribution_name(InputDistribution::kNormal), "normal");
  EXPECT_EQ(gradscope::input_distribution_name(InputDistribution::kUniform), "uniform");
}

// ---------------------------------------------------------------------------------------------
// Resolved config of the new keys

TEST(ConfigResolved, StackConfigsGainOnlyLossAndOptimizer) {
  using Keys = std::vector<std::string>;
  const Json plain = Json::parse(gradscope::run_spec_to_json(parse("{}")));
  EXPECT_EQ(keys_of(plain), (Keys{"name", "seed", "precision", "input", "stack", "loss",
                                  "optimizer", "stats", "diagnosis"}));
  EXPECT_EQ(plain["loss"], "probe");
  EXPECT_EQ(plain["optimizer"], "none");
  EXPECT_FALSE(plain.contains("layers"));

  const Json full = Json::parse(
      gradscope::run_spec_to_json(parse(R"({"output": {"width": 4}, "loss": "softmax_cross_entropy",
                "optimizer": {"name": "sgd", "learning_rate": 0.5}})")));
  EXPECT_EQ(full["loss"], Json::parse(R"({"name": "softmax_cross_entropy", "classes": 4})"));
  EXPECT_EQ(keys_of(full["optimizer"]), (Keys{"name", "learning_rate", "momentum"}));
  EXPECT_EQ(full["optimizer"]["learning_rate"], 0.5);
  const Json adam =
      Json::parse(gradscope::run_spec_to_json(parse(R"({"optimizer": "adam", "loss": "mse"})")));
  EXPECT_EQ(keys_of(adam["optimizer"]), (Keys{"name", "learning_rate", "beta1", "beta2", "eps"}));
  EXPECT_EQ(adam["loss"], "mse");
}

TEST(ConfigResolved, LayersAreWrittenAsATreeWithEveryDefaultFilledIn) {
  using Keys = std::vector<std::string>;
  const Json j = Json::parse(gradscope::run_spec_to_json(parse(with_layers(R"([
      {"width": 8, "norm": "batch_norm"},
      {"repeat": 2, "residual": true, "block": [{"width": 8}]},
      {"residual": {"placement": "post_norm", "norm": "rms_norm", "projection": true},
       "block": [{"dropout": 0.5}, {"width": 4, "activation": "linear"}]},
      {"block": [{"width": 4, "activation": "linear"}]}])"))));
  EXPECT_EQ(keys_of(j), (Keys{"name", "seed", "precision", "input", "layers", "loss", "optimizer",
                              "stats", "diagnosis"}));
  const Json& layers = j["layers"];
  ASSERT_EQ(layers.size(), 6U);  // the dense item with a norm is written as its three ops
  EXPECT_EQ(keys_of(layers[0]), (Keys{"width", "activation", "init", "bias_init"}));
  EXPECT_EQ(layers[0]["activation"], "linear");
  EXPECT_EQ(layers[1], Json::parse(R"({"norm": {"name": "batch_norm", "eps": 1e-05}})"));
  EXPECT_EQ(layers[2], Json::parse(R"({"activation": "relu"})"));

  EXPECT_EQ(keys_of(layers[3]), (Keys{"repeat", "residual", "block"}));
  EXPECT_EQ(layers[3]["repeat"], 2);
  EXPECT_EQ(layers[3]["residual"],
            Json::parse(R"({"scale": 1.0, "projection": false, "placement": "pre_norm"})"));
  EXPECT_EQ(keys_of(layers[3]["block"][0]), (Keys{"width", "activation", "init", "bias_init"}));

  const Json& post = layers[4]["residual"];
  EXPECT_EQ(keys_of(post), (Keys{"scale", "projection", "placement", "norm"}));
  EXPECT_EQ(post["projection"], Json::parse(R"({"name": "orthogonal", "gain": 1.0})"));
  EXPECT_EQ(post["placement"], "post_norm");
  EXPECT_EQ(post["norm"], Json::parse(R"({"name": "rms_norm", "eps": 1e-05})"));
  EXPECT_EQ(layers[4]["block"][0], Json::parse(R"({"dropout": 0.5})"));

  EXPECT_EQ(layers[5]["residual"], false);
  EXPECT_EQ(layers[5]["repeat"], 1);
}

TEST(ConfigResolved, LayersConfigsRoundTrip) {
  expect_round_trip(parse(kIssueExample));
  expect_round_trip(parse(R"({
    "name": "everything-layers", "seed": 3, "precision": "float64",
    "input": {"width": 5, "batch": 7, "distribution": "uniform", "low": -2, "high": 2},
    "layers": [
      {"width": 8, "activation": {"name": "elu", "alpha": 0.3}, "norm": {"name": "batch_norm", "eps": 0.001},
       "init": {"name": "variance", "weight_var": 2.0000000000000004}, "bias_init": {"name": "normal", "std": 0.1}},
      {"width": 8, "activation": "tanh", "norm": "layer_norm", "norm_position": "after_activation"},
      {"repeat": 3, "residual": {"scale": 0.30000000000000004, "projection": {"name": "he_uniform", "mode": "fan_out"}},
       "block": [{"norm": "rms_norm"}, {"repeat": 2, "residual": {"scale": 0, "placement": "post_norm", "norm": "layer_norm"},
                  "block": [{"width": 12, "init": "torch_default"}, {"dropout": 0.1}, {"width": 8}]},
                 {"width": 8, "activation": "linear"}]},
      {"activation": "gelu_tanh"},
      {"block": [{"width": 3, "activation": "linear"}]}],
    "loss": "softmax_cross_entropy",
    "optimizer": {"name": "adam", "learning_rate": 0.0003, "beta1": 0.8, "beta2": 0.95, "eps": 1e-7},
    "stats": {"saturation_threshold": 0.1}})"));
  expect_round_trip(
      parse(R"({"layers": [{"width": 4, "activation": "linear"}], "loss": "sigmoid_bce",
                              "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0}})"));
  expect_round_trip(
      parse(R"({"layers": [{"width": 4}, {"activation": "softmax"}], "loss": "mse"})"));
}

TEST(ConfigResolved, StackConfigsWithLossAndOptimizerRoundTrip) {
  expect_round_trip(parse(R"({"output": {"width": 10}, "loss": "softmax_cross_entropy",
                              "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}})"));
  expect_round_trip(parse(R"({"loss": "mse", "optimizer": {"name": "adam", "eps": 1e-10}})"));
}

// ---------------------------------------------------------------------------------------------
// spec.hpp: op expansion and names

TEST(SpecHelpers, ExpandOpsOfAStackConfigIsItsDenseLayersInOrder) {
  const RunSpec spec = parse(R"({"input": {"width": 5}, "stack": {"depth": 3, "width": 8},
                                "output": {"width": 2, "activation": "softmax"}})");
  const std::vector<OpSpec> ops = gradscope::expand_ops(spec);
  const std::vector<LayerSpec> layers = gradscope::expand_layers(spec);
  ASSERT_EQ(ops.size(), layers.size());
  for (std::size_t i = 0; i < ops.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(ops[i].kind, OpKind::kDense);
    expect_same_layer(ops[i].dense, layers[i]);
  }
  EXPECT_EQ(gradscope::op_widths(spec, ops), (std::vector<int>{8, 8, 8, 2}));
}

TEST(SpecHelpers, OpWidthsFollowTheInputUntilTheFirstDenseOp) {
  const RunSpec spec = parse(R"({"input": {"width": 3}, "layers": [{"norm": "layer_norm"},
      {"dropout": 0.5}, {"activation": "tanh"}, {"width": 9}, {"norm": "batch_norm"}]})");
  EXPECT_EQ(widths_of(spec), (std::vector<int>{3, 3, 3, 9, 9}));
}

TEST(SpecHelpers, EveryNewEnumHasANameTheConfigAccepts) {
  for (int k = 0; k < gradscope::kNormKindCount; ++k) {
    const std::string name(gradscope::norm_name(static_cast<NormKind>(k)));
    SCOPED_TRACE(name);
    EXPECT_EQ(
        parse(with_layers(R"([{"width": 2}, {"norm": ")" + name + "\"}]")).layers[1].op.norm.kind,
        static_cast<NormKind>(k));
  }
  EXPECT_EQ(gradscope::norm_name(NormKind::kBatchNorm), "batch_norm");
  EXPECT_EQ(gradscope::norm_name(NormKind::kLayerNorm), "layer_norm");
  EXPECT_EQ(gradscope::norm_name(NormKind::kRmsNorm), "rms_norm");
  for (LossKind k :
       {LossKind::kProbe, LossKind::kMse, LossKind::kSoftmaxCrossEntropy, LossKind::kSigmoidBce}) {
    const std::string name(gradscope::loss_name(k));
    SCOPED_TRACE(name);
    EXPECT_EQ(parse(R"({"output": {"width": 2}, "loss": ")" + name + "\"}").loss.kind, k);
  }
  EXPECT_EQ(gradscope::loss_name(LossKind::kSoftmaxCrossEntropy), "softmax_cross_entropy");
  EXPECT_EQ(gradscope::loss_name(LossKind::kSigmoidBce), "sigmoid_bce");
  for (OptimizerKind k : {OptimizerKind::kNone, OptimizerKind::kSgd, OptimizerKind::kAdam}) {
    const std::string name(gradscope::optimizer_name(k));
    SCOPED_TRACE(name);
    EXPECT_EQ(parse(R"({"optimizer": ")" + name + "\"}").optimizer.kind, k);
  }
  EXPECT_EQ(gradscope::optimizer_name(OptimizerKind::kNone), "none");
  EXPECT_EQ(gradscope::op_kind_name(OpKind::kDense), "dense");
  EXPECT_EQ(gradscope::op_kind_name(OpKind::kNorm), "norm");
  EXPECT_EQ(gradscope::op_kind_name(OpKind::kActivation), "activation");
  EXPECT_EQ(gradscope::op_kind_name(OpKind::kDropout), "dropout");
  EXPECT_EQ(gradscope::op_kind_name(OpKind::kResidualBegin), "residual_begin");
  EXPECT_EQ(gradscope::op_kind_name(OpKind::kResidualEnd), "residual_end");
}

}  // namespace
