// Command-line overrides (--set and the flags): values, the objects they create, indexed paths
// into "layers", and errors that name the flag rather than the file.
#include <gtest/gtest.h>

#include "config_test_support.hpp"

namespace {

using namespace config_test;

// ---------------------------------------------------------------------------------------------
// Overrides

TEST(ConfigOverrides, NumberStringAndObjectValues) {
  const RunSpec spec = parse(R"({"stack": {"depth": 10}})",
                             {{"stack.depth", "7", "--depth"},
                              {"stack.activation", "tanh", "--activation"},
                              {"stack.init", R"({"name": "orthogonal", "gain": 0.5})", "--init"},
                              {"input.mean", "-0.25", "--set"},
                              {"precision", "float64", "--precision"}});
  EXPECT_EQ(spec.stack.depth, 7);
  EXPECT_EQ(spec.stack.layer.activation.kind, Activation::kTanh);
  EXPECT_EQ(spec.stack.layer.init.kind, Init::kOrthogonal);
  EXPECT_EQ(spec.stack.layer.init.gain, 0.5);
  EXPECT_EQ(spec.input.mean, -0.25);
  EXPECT_EQ(spec.precision, Precision::kFloat64);
}

TEST(ConfigOverrides, LaterOverridesWin) {
  const RunSpec spec =
      parse("{}", {{"stack.depth", "7", "--set"}, {"stack.depth", "9", "--depth"}});
  EXPECT_EQ(spec.stack.depth, 9);
}

TEST(ConfigOverrides, MissingIntermediateObjectsAreCreated) {
  const RunSpec spec = parse("{}", {{"output.width", "10", "--set"},
                                    {"output.activation", "softmax", "--set"},
                                    {"stats.saturation_threshold", "0.2", "--set"}});
  ASSERT_TRUE(spec.output.has_value());
  EXPECT_EQ(spec.output->width, 10);
  EXPECT_EQ(spec.output->activation.kind, Activation::kSoftmax);
  EXPECT_EQ(spec.stats.saturation_threshold, 0.2);
}

TEST(ConfigOverrides, ParameterOfAStringNameConvertsItToTheObjectForm) {
  const RunSpec spec =
      parse(R"({"stack": {"init": "orthogonal", "activation": "leaky_relu"}})",
            {{"stack.init.gain", "0.5", "--gain"}, {"stack.activation.slope", "0.3", "--set"}});
  EXPECT_EQ(spec.stack.layer.init.kind, Init::kOrthogonal);
  EXPECT_EQ(spec.stack.layer.init.gain, 0.5);
  EXPECT_EQ(spec.stack.layer.activation.kind, Activation::kLeakyRelu);
  EXPECT_EQ(spec.stack.layer.activation.param, 0.3);
  // Also on the built-in default, whose init is the string "he_normal".
  const RunSpec builtin =
      gradscope::load_run_spec(std::nullopt, {{"stack.init.mode", "fan_out", "--set"}});
  EXPECT_EQ(builtin.stack.layer.init.kind, Init::kHeNormal);
  EXPECT_EQ(builtin.stack.layer.init.mode, FanMode::kFanOut);
}

TEST(ConfigOverrides, NullRemovesTheOutputLayer) {
  const RunSpec spec = parse(R"({"output": {"width": 10}})", {{"output", "null", "--no-output"}});
  EXPECT_FALSE(spec.output.has_value());
}

TEST(ConfigOverrides, ErrorsInAnOverriddenValueNameTheOrigin) {
  const Error depth = config_error("{}", {{"stack.depth", "-3", "--depth"}});
  EXPECT_TRUE(Contains(what(depth), "--depth: stack.depth: expected a positive integer, got -3"));

  const Error key = config_error("{}", {{"stack.depht", "5", "--set"}});
  EXPECT_EQ(what(key), "--set: stack.depht: unknown key");
  EXPECT_TRUE(Contains(key.hint(), "did you mean \"depth\"?"));

  const Error name = config_error("{}", {{"stack.activation", "sigmod", "--activation"}});
  EXPECT_EQ(what(name), "--activation: stack.activation: unknown activation \"sigmod\"");

  const Error inside =
      config_error("{}", {{"stack.init", R"({"name": "orthogonal", "std": 1})", "--init"}});
  EXPECT_TRUE(Contains(what(inside), "--init: stack.init.std: orthogonal does not take \"std\""));

  // An object the override created belongs to it too.
  const Error created = config_error("{}", {{"output.activation", "softmax", "--set"}});
  EXPECT_EQ(what(created), "--set: output: missing \"width\"");

  const Error cross =
      config_error(R"({"input": {"distribution": "uniform"}})", {{"input.low", "5", "--low"}});
  EXPECT_TRUE(Contains(what(cross), "--low: input: low (5.0) must be less than high"));
}

TEST(ConfigOverrides, ErrorsFromTheFileStillNameTheFile) {
  const Error e =
      config_error(R"({"stack": {"depth": "fifty"}})", {{"stack.width", "8", "--width"}});
  EXPECT_TRUE(Contains(what(e), "cfg.json: stack.depth: expected a positive integer"));
}

TEST(ConfigOverrides, SettingThroughANonObjectNamesTheOrigin) {
  const Error e = config_error(R"({"seed": 7})", {{"seed.x", "1", "--seed-x"}});
  EXPECT_TRUE(
      Contains(what(e), "--seed-x: seed.x: cannot set it: seed is a number (7), not an object"));
  EXPECT_FALSE(e.hint().empty());

  const Error deep =
      config_error(R"({"stack": {"init": "orthogonal"}})", {{"stack.init.gain.x", "1", "--set"}});
  EXPECT_TRUE(Contains(what(deep), "--set: stack.init.gain.x: cannot set it"));

  const Error path = config_error("{}", {{"stack..depth", "1", "--set"}});
  EXPECT_TRUE(Contains(what(path), "--set: invalid config path \"stack..depth\""));
}

TEST(ConfigOverrides, ValuesAndPathsNestNoDeeperThanAConfig) {
  const std::string deep_value = std::string(200, '[') + std::string(200, ']');
  const Error value = config_error("{}", {{"stack.init", deep_value, "--set stack.init"}});
  EXPECT_EQ(what(value), "--set stack.init: stack.init: nested deeper than 100 levels");

  std::string deep_path = "stack";
  for (int i = 0; i < 150; ++i) deep_path += ".a";
  const Error path = config_error("{}", {{deep_path, "1", "--set"}});
  EXPECT_TRUE(Contains(what(path), "has 151 steps, more than the 100 levels"));

  // A value 99 levels deep under a top-level key is still read (and refused for what it is).
  const std::string ok_value = std::string(99, '[') + std::string(99, ']');
  EXPECT_FALSE(Contains(what(config_error("{}", {{"stack.init", ok_value, "--init"}})), "nested"));
}

TEST(ConfigOverrides, LargeSeedFromTheCommandLine) {
  EXPECT_EQ(parse("{}", {{"seed", "18446744073709551615", "--seed"}}).seed,
            18446744073709551615ULL);
}

// ---------------------------------------------------------------------------------------------
// Overrides into the new keys

TEST(ConfigOverrides, IndexedPathsReachIntoLayers) {
  const RunSpec spec =
      parse(kIssueExample, {{"layers[1].repeat", "48", "--set"},
                            {"layers[1].block[0].norm", "rms_norm", "--set"},
                            {"layers[1].block[0].norm.eps", "1e-6", "--set"},
                            {"layers[1].residual.scale", "0.5", "--set"},
                            {"layers[2]", R"({"width": 10, "activation": "linear"})", "--set"},
                            {"loss", "softmax_cross_entropy", "--set"},
                            {"optimizer.name", "sgd", "--set"},
                            {"optimizer.learning_rate", "0.1", "--set"}});
  EXPECT_EQ(spec.layers[1].repeat, 48);
  EXPECT_EQ(spec.layers[1].block[0].op.norm.kind, NormKind::kRmsNorm);
  EXPECT_EQ(spec.layers[1].block[0].op.norm.eps, 1e-6);
  EXPECT_EQ(spec.layers[1].residual->scale, 0.5);
  EXPECT_EQ(spec.layers[2].op.dense.activation.kind, Activation::kLinear);
  EXPECT_EQ(spec.loss.kind, LossKind::kSoftmaxCrossEntropy);
  EXPECT_EQ(spec.loss.classes, 10);
  EXPECT_EQ(spec.optimizer.kind, OptimizerKind::kSgd);
  EXPECT_EQ(spec.optimizer.learning_rate, 0.1);
  EXPECT_EQ(gradscope::expand_ops(spec).size(), 1U + 48U * 5U + 1U);
}

TEST(ConfigOverrides, ShorthandValuesTurnIntoObjectsWhenAParameterIsSet) {
  const char* config = R"({"output": {"width": 3}, "loss": "softmax_cross_entropy",
      "layers": null, "optimizer": "adam"})";
  const RunSpec named =
      parse(config, {{"loss.classes", "3", "--set"}, {"optimizer.beta1", "0.5", "--set"}});
  EXPECT_EQ(named.loss.classes, 3);
  EXPECT_EQ(named.optimizer.kind, OptimizerKind::kAdam);
  EXPECT_EQ(named.optimizer.beta1, 0.5);

  const RunSpec residual =
      parse(with_layers(R"([{"width": 8}, {"residual": true, "block": [{"width": 8}]},
                      {"residual": {"projection": true}, "block": [{"width": 4}]}])"),
            {{"layers[1].residual.scale", "0", "--set"},
             {"layers[2].residual.projection.gain", "2", "--set"}});
  EXPECT_EQ(residual.layers[1].residual->scale, 0.0);
  EXPECT_EQ(residual.layers[2].residual->projection_init.kind, Init::kOrthogonal);
  EXPECT_EQ(residual.layers[2].residual->projection_init.gain, 2.0);
}

TEST(ConfigOverrides, IndexErrorsSayWhatTheArrayHolds) {
  const Error range = config_error(kIssueExample, {{"layers[3].width", "4", "--set"}});
  EXPECT_EQ(what(range), "--set: layers[3].width: index 3 is out of range: layers has 3 items");
  EXPECT_EQ(range.hint(), "indices start at 0: use 0 to 2, or set layers to a whole array");
  EXPECT_TRUE(Contains(what(config_error(kIssueExample, {{"layers[1].block[3]", "{}", "--set"}})),
                       "index 3 is out of range: layers[1].block has 3 items"));

  const Error object = config_error(kIssueExample, {{"layers[0][1]", "4", "--set"}});
  EXPECT_EQ(what(object),
            "--set: layers[0][1]: cannot set it: layers[0] is an object, not an array");
  const Error absent = config_error("{}", {{"layers[0].width", "4", "--set"}});
  EXPECT_EQ(what(absent),
            "--set: layers[0].width: cannot set it: layers is not in the config, not an array");
  EXPECT_TRUE(Contains(absent.hint(), "set layers to a whole array"));

  for (const char* path : {"layers[", "layers[x]", "layers[1]x", "layers.[1]", "[1]", "layers[]",
                           "layers[-1]", "layers]"}) {
    SCOPED_TRACE(path);
    EXPECT_TRUE(Contains(what(config_error(kIssueExample, {{path, "1", "--set"}})),
                         "--set: invalid config path"));
  }
}

TEST(ConfigOverrides, ErrorsInsideLayersNameTheOverride) {
  const Error width = config_error(
      kIssueExample, {{"layers[1].block[1].width", "0", "--set layers[1].block[1].width"}});
  EXPECT_TRUE(Contains(what(width),
                       "--set layers[1].block[1].width: layers[1].block[1].width: "
                       "expected a positive integer"));
  const Error residual = config_error(kIssueExample, {{"layers[1].residual", "7", "--set r"}});
  EXPECT_TRUE(Contains(what(residual), "--set r: layers[1].residual: expected true, false"));
  // A file error stays the file's.
  const Error file = config_error(with_layers(R"([{"width": 8}, {"dropout": 2}])"),
                                  {{"layers[0].width", "4", "--set"}});
  EXPECT_TRUE(Contains(what(file), "cfg.json: layers[1].dropout"));
}

}  // namespace
