// The config reader's parsing: the documented defaults, malformed JSON located by line and
// column, unknown keys and names with the closest valid one, wrong types, value ranges, files.
#include <gtest/gtest.h>

#include "config_test_support.hpp"

namespace {

using namespace config_test;

// ---------------------------------------------------------------------------------------------
// Defaults

TEST(ConfigDefaults, EmptyObjectGivesTheDocumentedDefaults) {
  const RunSpec spec = parse("{}");
  EXPECT_EQ(spec.name, "cfg");
  EXPECT_EQ(spec.seed, 0U);
  EXPECT_EQ(spec.precision, Precision::kFloat32);
  EXPECT_EQ(spec.input.width, 256);
  EXPECT_EQ(spec.input.batch, 256);
  EXPECT_EQ(spec.input.distribution, InputDistribution::kNormal);
  EXPECT_EQ(spec.input.mean, 0.0);
  EXPECT_EQ(spec.input.std, 1.0);
  EXPECT_EQ(spec.stack.depth, 50);
  EXPECT_EQ(spec.stack.layer.width, 256);
  EXPECT_EQ(spec.stack.layer.activation.kind, Activation::kRelu);
  EXPECT_EQ(spec.stack.layer.init.kind, Init::kHeNormal);
  EXPECT_EQ(spec.stack.layer.init.gain, 1.0);
  EXPECT_EQ(spec.stack.layer.init.mode, FanMode::kFanIn);
  EXPECT_EQ(spec.stack.layer.bias.kind, BiasInit::kZeros);
  EXPECT_FALSE(spec.output.has_value());
  EXPECT_EQ(spec.stats.saturation_threshold, 0.05);
}

TEST(ConfigDefaults, BuiltInDefaultEqualsAnEmptyConfigNamedDefault) {
  const RunSpec builtin = gradscope::load_run_spec(std::nullopt);
  EXPECT_EQ(builtin.name, "default");
  expect_same_spec(builtin, gradscope::parse_run_spec("{}", "x.json", "default"));
  expect_same_spec(builtin, gradscope::load_run_spec(std::string()));
  expect_same_spec(
      builtin, gradscope::parse_run_spec(gradscope::default_config_text(), "<default>", "default"));
}

TEST(ConfigDefaults, InputWidthFollowsStackWidthUnlessGiven) {
  EXPECT_EQ(parse(R"({"stack": {"width": 64}})").input.width, 64);
  EXPECT_EQ(parse(R"({"stack": {"width": 64}, "input": {"width": 32}})").input.width, 32);
  // The built-in default must not pin the input width either.
  const RunSpec spec = gradscope::load_run_spec(std::nullopt, {{"stack.width", "64", "--width"}});
  EXPECT_EQ(spec.input.width, 64);
}

TEST(ConfigDefaults, BiasInitIsTorchDefaultOnlyWithTorchDefaultWeights) {
  EXPECT_EQ(parse(R"({"stack": {"init": "torch_default"}})").stack.layer.bias.kind,
            BiasInit::kTorchDefault);
  EXPECT_EQ(
      parse(R"({"stack": {"init": {"name": "torch_default", "gain": 2}}})").stack.layer.bias.kind,
      BiasInit::kTorchDefault);
  EXPECT_EQ(
      parse(R"({"stack": {"init": "torch_default", "bias_init": "zeros"}})").stack.layer.bias.kind,
      BiasInit::kZeros);
  EXPECT_EQ(parse(R"({"stack": {"init": "xavier_normal"}})").stack.layer.bias.kind,
            BiasInit::kZeros);
}

TEST(ConfigDefaults, OutputBiasFollowsTheOutputsOwnInitWhenItNamesOne) {
  const char* stack = R"("stack": {"bias_init": {"name": "constant", "value": 0.1}})";
  const auto out = [&](const std::string& output) {
    std::string text = "{";  // appended piecewise: GCC 12 warns falsely on a chain of +
    text += stack;
    text += ", \"output\": ";
    text += output;
    text += "}";
    return *parse(text).output;
  };
  EXPECT_EQ(out(R"({"width": 3, "init": "torch_default"})").bias.kind, BiasInit::kTorchDefault);
  EXPECT_EQ(out(R"({"width": 3, "init": "xavier_normal"})").bias.kind, BiasInit::kZeros);
  EXPECT_EQ(out(R"({"width": 3})").bias.kind, BiasInit::kConstant);  // inherits with the init
}

TEST(ConfigDefaults, OutputLayerIsLinearWithTheStacksInitAndBias) {
  const RunSpec spec = parse(R"({
    "stack": {"init": {"name": "orthogonal", "gain": 0.5}, "bias_init": {"name": "constant", "value": 0.1}},
    "output": {"width": 10}
  })");
  ASSERT_TRUE(spec.output.has_value());
  EXPECT_EQ(spec.output->width, 10);
  EXPECT_EQ(spec.output->activation.kind, Activation::kLinear);
  EXPECT_EQ(spec.output->init.kind, Init::kOrthogonal);
  EXPECT_EQ(spec.output->init.gain, 0.5);
  EXPECT_EQ(spec.output->bias.kind, BiasInit::kConstant);
  EXPECT_EQ(spec.output->bias.value, 0.1);

  const RunSpec own = parse(R"({"output": {"width": 3, "init": "xavier_uniform"}})");
  EXPECT_EQ(own.output->init.kind, Init::kXavierUniform);
  EXPECT_EQ(own.stack.layer.init.kind, Init::kHeNormal);
}

TEST(ConfigDefaults, ExplicitValuesAreRead) {
  const RunSpec spec = parse(R"({
    "name": "sigmoid-deep", "seed": 7, "precision": "float64",
    "input": {"width": 32, "batch": 16, "distribution": "uniform", "low": -2, "high": 3},
    "stack": {"depth": 4, "width": 8, "activation": {"name": "elu", "alpha": 0.5},
              "init": {"name": "he_uniform", "mode": "fan_out", "gain": 1.5},
              "bias_init": {"name": "normal", "std": 0.2}},
    "stats": {"saturation_threshold": 0.1}
  })");
  EXPECT_EQ(spec.name, "sigmoid-deep");
  EXPECT_EQ(spec.seed, 7U);
  EXPECT_EQ(spec.precision, Precision::kFloat64);
  EXPECT_EQ(spec.input.width, 32);
  EXPECT_EQ(spec.input.batch, 16);
  EXPECT_EQ(spec.input.distribution, InputDistribution::kUniform);
  EXPECT_EQ(spec.input.low, -2.0);
  EXPECT_EQ(spec.input.high, 3.0);
  EXPECT_EQ(spec.stack.depth, 4);
  EXPECT_EQ(spec.stack.layer.width, 8);
  EXPECT_EQ(spec.stack.layer.activation.kind, Activation::kElu);
  EXPECT_EQ(spec.stack.layer.activation.param, 0.5);
  EXPECT_EQ(spec.stack.layer.init.kind, Init::kHeUniform);
  EXPECT_EQ(spec.stack.layer.init.mode, FanMode::kFanOut);
  EXPECT_EQ(spec.stack.layer.init.gain, 1.5);
  EXPECT_EQ(spec.stack.layer.bias.kind, BiasInit::kNormal);
  EXPECT_EQ(spec.stack.layer.bias.std, 0.2);
  EXPECT_EQ(spec.stats.saturation_threshold, 0.1);
}

TEST(ConfigDefaults, ActivationParameterDefaultsComeFromTheRegistry) {
  const RunSpec spec = parse(R"({"stack": {"activation": "leaky_relu"}})");
  EXPECT_EQ(spec.stack.layer.activation.param,
            gradscope::activation_info(Activation::kLeakyRelu).param_default);
}

TEST(ConfigDefaults, ActivationAliasesAreAccepted) {
  const RunSpec spec = parse(R"({"stack": {"activation": "swish"}})");
  EXPECT_EQ(spec.stack.layer.activation.kind, Activation::kSilu);
}

// ---------------------------------------------------------------------------------------------
// Malformed JSON

TEST(ConfigJsonErrors, LineAndColumnOfASyntaxErrorOnLine3) {
  const Error trailing_comma = config_error("{\n  \"seed\": 1,\n  \"stack\": {\"depth\": 5,}\n}\n");
  // The '}' after the trailing comma is the 24th character of line 3.
  EXPECT_TRUE(Contains(what(trailing_comma), "cfg.json:3:24: invalid JSON: "));
  EXPECT_FALSE(Contains(what(trailing_comma), "json.exception"));
  EXPECT_TRUE(Contains(trailing_comma.hint(), "trailing commas"));

  // A missing comma shows up at the next token; the parser has read it whole, so the position is
  // its last character: the closing quote of "precision", column 13.
  const Error missing_comma = config_error("{\n  \"seed\": 1\n  \"precision\": \"float64\"\n}");
  EXPECT_TRUE(Contains(what(missing_comma), "cfg.json:3:13: invalid JSON: "));
  EXPECT_TRUE(Contains(what(missing_comma), "unexpected string literal"));
}

TEST(ConfigJsonErrors, ColumnsCountCharactersNotBytes) {
  // "é" is two bytes in UTF-8 but one column; the stray x is the 15th character.
  const Error e = config_error("{\"name\": \"\xC3\xA9\", x}");
  EXPECT_TRUE(Contains(what(e), "cfg.json:1:15: invalid JSON: "));
}

TEST(ConfigJsonErrors, EndOfInputPointsPastTheLastCharacter) {
  EXPECT_TRUE(Contains(what(config_error("{\"seed\": 1")), "cfg.json:1:11: invalid JSON: "));
  EXPECT_TRUE(Contains(what(config_error("")), "cfg.json:1:1: invalid JSON: "));
}

TEST(ConfigJsonErrors, NumberTooLargeForADoubleIsLocated) {
  const Error e = config_error("{\n  \"seed\": 1e999\n}");
  EXPECT_TRUE(Contains(what(e), "cfg.json:2:11: invalid JSON: number too large"));
}

TEST(ConfigJsonErrors, DuplicateKeysAreRejected) {
  const Error e = config_error(R"({"stack": {"depth": 5, "width": 8, "depth": 6}})");
  EXPECT_EQ(what(e), "cfg.json: stack.depth: duplicate key");
  EXPECT_TRUE(Contains(e.hint(), "remove one"));
  // The same key in two different objects is fine.
  EXPECT_NO_THROW(parse(R"({"stack": {"width": 8}, "input": {"width": 8}})"));
}

TEST(ConfigJsonErrors, DuplicateKeyInsideLayersNamesItsFullPath) {
  const Error e = config_error(
      R"({"layers": [{"width": 4}, {"repeat": 2, "block": [{"width": 4, "width": 5}]}]})");
  EXPECT_EQ(what(e), "cfg.json: layers[1].block[0].width: duplicate key");
}

// Found while writing fuzz/fuzz_config.cpp: every level kept its whole path, so 250 KB of
// nested objects took 2.6 GB, and a deep tree could overflow the stack of the recursive readers.
TEST(ConfigJsonErrors, NestingDeeperThanAConfigCanUseIsRefused) {
  const std::size_t deep = 10'000;
  const Error arrays = config_error(std::string(deep, '[') + std::string(deep, ']'));
  EXPECT_TRUE(Contains(what(arrays), "cfg.json: [0][0][0]"));
  EXPECT_TRUE(Contains(what(arrays), ": nested deeper than 100 levels"));
  EXPECT_FALSE(arrays.hint().empty());

  std::string objects;
  for (std::size_t i = 0; i < deep; ++i) objects += R"({"a": )";
  objects += "1" + std::string(deep, '}');
  EXPECT_TRUE(Contains(what(config_error(objects)), "cfg.json: a.a.a."));
  EXPECT_TRUE(Contains(what(config_error(objects)), ": nested deeper than 100 levels"));

  // The root object and 99 arrays inside it make 100 levels: allowed (and then refused by the
  // reader for what they are); one more is not.
  const auto layers_nested = [](std::size_t levels) {
    return R"({"layers": )" + std::string(levels, '[') + std::string(levels, ']') + "}";
  };
  EXPECT_FALSE(Contains(what(config_error(layers_nested(99))), "nested deeper"));
  EXPECT_TRUE(Contains(what(config_error(layers_nested(100))), "nested deeper"));
}

// Found while writing fuzz/fuzz_config.cpp: nlohmann's callback parser rescans a list after each
// object in it, so a list of 160,000 {} took 8 minutes unoptimised. The checks now run in a pass of
// their own; a regression shows up as this test running into ctest's timeout.
TEST(ConfigJsonErrors, LongListsOfObjectsAreReadInLinearTime) {
  std::string items;
  for (int i = 0; i < 300'000; ++i) items += "{}, ";
  EXPECT_TRUE(Contains(what(config_error(R"({"layers": [)" + items + R"({"width": 4}]})")),
                       "cfg.json: layers[0]: an empty item"));
  // The duplicate-key check still names the path, far down a long list.
  EXPECT_EQ(what(config_error(R"({"layers": [)" + items + R"({"width": 1, "width": 2}]})")),
            "cfg.json: layers[300000].width: duplicate key");
}

// Also found while writing fuzz/fuzz_config.cpp: ordered_json finds a key by linear search, so
// an object of 100,000 keys took 100 s (unoptimised) to parse before any key was checked.
TEST(ConfigJsonErrors, ObjectsOfMoreKeysThanAnyConfigHasAreRefused) {
  const auto stack_with_keys = [](int keys) {
    std::string text = R"({"stack": {)";
    for (int i = 0; i < keys; ++i) text += (i == 0 ? "\"k" : ", \"k") + std::to_string(i) + "\": 0";
    return text + "}}";
  };
  EXPECT_EQ(what(config_error(stack_with_keys(100'000))),
            "cfg.json: stack: an object of more than 64 keys");
  EXPECT_FALSE(config_error(stack_with_keys(65)).hint().empty());
  // Up to the cap, the reader gets the object and names the first key it does not know.
  EXPECT_TRUE(Contains(what(config_error(stack_with_keys(64))), "cfg.json: stack.k0: unknown key"));
}

TEST(ConfigJsonErrors, TopLevelMustBeAnObject) {
  const Error e = config_error("[1, 2]");
  EXPECT_TRUE(Contains(what(e), "cfg.json: "));
  EXPECT_TRUE(Contains(what(e), "must be a JSON object"));
  EXPECT_TRUE(Contains(what(e), "(an array)"));
  EXPECT_FALSE(e.hint().empty());
}

TEST(ConfigJsonErrors, ErrorsCarryTheUsageExitCode) {
  EXPECT_EQ(config_error("{").code(), gradscope::ExitCode::kUsage);
  EXPECT_EQ(config_error(R"({"seed": -1})").code(), gradscope::ExitCode::kUsage);
}

// ---------------------------------------------------------------------------------------------
// Keys and types

TEST(ConfigKeyErrors, UnknownKeySuggestsTheClosestValidKey) {
  const Error e = config_error(R"({"stack": {"actvation": "relu"}})");
  EXPECT_EQ(what(e), "cfg.json: stack.actvation: unknown key");
  EXPECT_EQ(e.hint(),
            "did you mean \"activation\"? valid keys here: depth, width, activation, init, "
            "bias_init");
}

TEST(ConfigKeyErrors, UnknownKeyWithNothingCloseListsTheValidKeys) {
  const Error e = config_error(R"({"zzzzzzzz": 1})");
  EXPECT_EQ(what(e), "cfg.json: zzzzzzzz: unknown key");
  EXPECT_EQ(e.hint(),
            "valid keys here: name, seed, precision, input, stack, output, layers, loss, "
            "optimizer, stats, diagnosis");
  EXPECT_TRUE(Contains(e.hint(), "valid keys here: name, seed"));

  const Error in_stats = config_error(R"({"stats": {"saturation": 0.1}})");
  EXPECT_TRUE(Contains(what(in_stats), "stats.saturation: unknown key"));
  EXPECT_TRUE(Contains(in_stats.hint(), "saturation_threshold"));
}

TEST(ConfigTypeErrors, WrongTypeNamesWhatWasExpectedAndWhatCame) {
  const Error e = config_error(R"({"stack": {"depth": "fifty"}})");
  EXPECT_EQ(what(e),
            "cfg.json: stack.depth: expected a positive integer, got \"fifty\" (a string)");
  EXPECT_TRUE(Contains(e.hint(), "1 to 1000000"));

  const Error quoted = config_error(R"({"stack": {"depth": "50"}})");
  EXPECT_TRUE(Contains(quoted.hint(), "remove the quotes: 50"));

  EXPECT_TRUE(Contains(what(config_error(R"({"seed": true})")),
                       "seed: expected a non-negative integer, got true (a boolean)"));
  EXPECT_TRUE(Contains(what(config_error(R"({"input": 5})")),
                       "cfg.json: input: expected an object {...}, got 5"));
  EXPECT_TRUE(Contains(what(config_error(R"({"stack": {"activation": 3}})")),
                       "stack.activation: expected an activation name or an object"));
  EXPECT_TRUE(Contains(what(config_error(R"({"name": 123})")), "name: expected a string, got 123"));
  EXPECT_TRUE(Contains(what(config_error(R"({"input": {"mean": "zero"}})")),
                       "input.mean: expected a number, got \"zero\" (a string)"));
  EXPECT_TRUE(Contains(what(config_error(R"({"precision": 32})")),
                       "precision: expected one of \"float32\" or \"float64\", got 32"));
}

TEST(ConfigTypeErrors, ArraysAndObjectsAreShownShortened) {
  const Error e = config_error(R"({"stack": {"width": [1, 2, 3]}})");
  EXPECT_TRUE(
      Contains(what(e), "stack.width: expected a positive integer, got [1,2,3] (an array)"));
}

TEST(ConfigTypeErrors, ObjectFormNeedsAName) {
  const Error e = config_error(R"({"stack": {"init": {"gain": 2}}})");
  EXPECT_EQ(what(e), "cfg.json: stack.init: missing \"name\"");
  EXPECT_TRUE(Contains(e.hint(), "\"name\""));
}

// ---------------------------------------------------------------------------------------------
// Names from the registries

TEST(ConfigNameErrors, UnknownActivationSuggestsTheClosestName) {
  const Error e = config_error(R"({"stack": {"activation": "sigmod"}})");
  EXPECT_EQ(what(e), "cfg.json: stack.activation: unknown activation \"sigmod\"");
  EXPECT_EQ(e.hint(), "did you mean \"sigmoid\"? `gradscope list` shows them all");

  const Error object_form =
      config_error(R"({"output": {"width": 2, "activation": {"name": "tahn"}}})");
  EXPECT_EQ(what(object_form), "cfg.json: output.activation.name: unknown activation \"tahn\"");
  EXPECT_TRUE(Contains(object_form.hint(), "did you mean \"tanh\"?"));

  const Error far = config_error(R"({"stack": {"activation": "qqqqqqqqqq"}})");
  EXPECT_EQ(far.hint(), "`gradscope list` shows them all");
}

TEST(ConfigNameErrors, UnknownInitAndBiasInitSuggestTheClosestName) {
  const Error init = config_error(R"({"stack": {"init": "he_norml"}})");
  EXPECT_EQ(what(init), "cfg.json: stack.init: unknown init \"he_norml\"");
  EXPECT_TRUE(Contains(init.hint(), "did you mean \"he_normal\"?"));
  EXPECT_TRUE(Contains(init.hint(), "`gradscope list`"));

  const Error bias = config_error(R"({"stack": {"bias_init": "zero"}})");
  EXPECT_EQ(what(bias), "cfg.json: stack.bias_init: unknown bias_init \"zero\"");
  EXPECT_TRUE(Contains(bias.hint(), "did you mean \"zeros\"?"));
}

TEST(ConfigNameErrors, UnknownChoicesListTheOptions) {
  const Error precision = config_error(R"({"precision": "float16"})");
  EXPECT_EQ(what(precision), "cfg.json: precision: unknown precision \"float16\"");
  EXPECT_EQ(precision.hint(), "did you mean \"float32\"? choose one of: float32, float64");

  const Error distribution = config_error(R"({"input": {"distribution": "gaussian"}})");
  EXPECT_TRUE(Contains(what(distribution), "input.distribution: unknown distribution"));
  EXPECT_TRUE(Contains(distribution.hint(), "choose one of: normal, uniform"));

  const Error mode = config_error(R"({"stack": {"init": {"name": "he_normal", "mode": "fanin"}}})");
  EXPECT_TRUE(Contains(what(mode), "stack.init.mode: unknown mode \"fanin\""));
  EXPECT_TRUE(Contains(mode.hint(), "did you mean \"fan_in\"?"));
}

TEST(ConfigNameErrors, RunNameMustBeUsableAsAFileName) {
  EXPECT_EQ(parse(R"({"name": "a.b_c-1"})").name, "a.b_c-1");
  const Error space = config_error(R"({"name": "my run"})");
  EXPECT_EQ(what(space), "cfg.json: name: \"my run\" is not a valid run name");
  EXPECT_TRUE(Contains(space.hint(), "letter or digit"));
  EXPECT_TRUE(Contains(what(config_error(R"({"name": "-x"})")), "not a valid run name"));
  EXPECT_TRUE(Contains(what(config_error(R"({"name": "../x"})")), "not a valid run name"));
  EXPECT_TRUE(Contains(what(config_error(R"({"name": ""})")), "not a valid run name"));
  const std::string long_name(129, 'a');
  EXPECT_TRUE(
      Contains(what(config_error("{\"name\": \"" + long_name + "\"}")), "not a valid run name"));

  const Error from_file_name =
      error_of([] { gradscope::parse_run_spec("{}", "my run.json", "my run"); });
  EXPECT_TRUE(Contains(what(from_file_name), "my run.json: "));
  EXPECT_TRUE(Contains(what(from_file_name), "defaults to \"my run\""));
  EXPECT_TRUE(Contains(from_file_name.hint(), "add a \"name\""));
}

// ---------------------------------------------------------------------------------------------
// Parameters

TEST(ConfigParamErrors, ActivationParameterItDoesNotTakeNamesTheOnesItTakes) {
  const Error relu = config_error(R"({"stack": {"activation": {"name": "relu", "slope": 0.2}}})");
  EXPECT_EQ(what(relu), "cfg.json: stack.activation.slope: relu takes no parameters");
  EXPECT_TRUE(Contains(relu.hint(), "leaky_relu (slope)"));
  EXPECT_TRUE(Contains(relu.hint(), "elu (alpha)"));

  const Error elu = config_error(R"({"stack": {"activation": {"name": "elu", "slope": 0.2}}})");
  EXPECT_EQ(what(elu), "cfg.json: stack.activation.slope: elu does not take \"slope\"");
  EXPECT_EQ(elu.hint(), "elu takes: alpha");

  const Error typo =
      config_error(R"({"stack": {"activation": {"name": "leaky_relu", "slop": 0.2}}})");
  EXPECT_EQ(what(typo), "cfg.json: stack.activation.slop: unknown key");
  EXPECT_EQ(typo.hint(), "did you mean \"slope\"? valid keys here: name, slope");
}

TEST(ConfigParamErrors, InitParameterItDoesNotTakeNamesTheOnesItTakes) {
  const Error e = config_error(R"({"stack": {"init": {"name": "orthogonal", "std": 0.1}}})");
  EXPECT_EQ(what(e), "cfg.json: stack.init.std: orthogonal does not take \"std\"");
  EXPECT_EQ(e.hint(), "orthogonal takes: gain");

  const Error mode =
      config_error(R"({"stack": {"init": {"name": "xavier_normal", "mode": "fan_in"}}})");
  EXPECT_TRUE(Contains(what(mode), "stack.init.mode: xavier_normal does not take \"mode\""));

  const Error typo = config_error(R"({"stack": {"init": {"name": "variance", "weight_vr": 2}}})");
  EXPECT_TRUE(Contains(what(typo), "stack.init.weight_vr: unknown key"));
  EXPECT_TRUE(Contains(typo.hint(), "did you mean \"weight_var\"?"));
}

TEST(ConfigParamErrors, BiasInitParameterItDoesNotTakeNamesTheOnesItTakes) {
  const Error zeros = config_error(R"({"stack": {"bias_init": {"name": "zeros", "value": 1}}})");
  EXPECT_EQ(what(zeros), "cfg.json: stack.bias_init.value: zeros takes no parameters");
  const Error constant =
      config_error(R"({"stack": {"bias_init": {"name": "constant", "std": 1}}})");
  EXPECT_EQ(what(constant), "cfg.json: stack.bias_init.std: constant does not take \"std\"");
  EXPECT_EQ(constant.hint(), "constant takes: value");
}

TEST(ConfigParamErrors, ParametersTheSchemeTakesAreRead) {
  const RunSpec spec = parse(R"({"stack": {
    "activation": {"name": "leaky_relu", "slope": 0.2},
    "init": {"name": "variance", "weight_var": 2, "gain": 0},
    "bias_init": {"name": "constant", "value": -2}}})");
  EXPECT_EQ(spec.stack.layer.activation.param, 0.2);
  EXPECT_EQ(spec.stack.layer.init.weight_var, 2.0);
  EXPECT_EQ(spec.stack.layer.init.gain, 0.0);
  EXPECT_EQ(spec.stack.layer.bias.value, -2.0);
  EXPECT_EQ(parse(R"({"stack": {"init": {"name": "normal", "std": 0.02}}})").stack.layer.init.std,
            0.02);
  EXPECT_EQ(
      parse(R"({"stack": {"init": {"name": "uniform", "limit": 0.1}}})").stack.layer.init.limit,
      0.1);
}

// ---------------------------------------------------------------------------------------------
// Ranges

TEST(ConfigRangeErrors, CountsBelowOneSayTheyMustBeAtLeastOne) {
  for (const char* text :
       {R"({"stack": {"depth": 0}})", R"({"stack": {"width": 0}})", R"({"input": {"batch": 0}})",
        R"({"input": {"width": -4}})", R"({"output": {"width": 0}})"}) {
    SCOPED_TRACE(text);
    const Error e = config_error(text);
    EXPECT_TRUE(Contains(what(e), "expected a positive integer"));
    EXPECT_TRUE(Contains(what(e), "must be at least 1"));
  }
  EXPECT_TRUE(Contains(what(config_error(R"({"stack": {"depth": -3}})")),
                       "cfg.json: stack.depth: expected a positive integer, got -3; depth must be "
                       "at least 1"));
}

TEST(ConfigRangeErrors, CountsAboveTheLimitGiveTheAllowedRange) {
  EXPECT_EQ(parse(R"({"stack": {"depth": 1000000}})").stack.depth, 1000000);
  const Error depth = config_error(R"({"stack": {"depth": 1000001}})");
  EXPECT_EQ(what(depth),
            "cfg.json: stack.depth: 1000001 is too large; depth must be at most 1000000");
  EXPECT_TRUE(Contains(depth.hint(), "from 1 to 1000000"));

  EXPECT_EQ(parse(R"({"stack": {"width": 16777216}})").stack.layer.width, 16777216);
  EXPECT_TRUE(Contains(what(config_error(R"({"stack": {"width": 16777217}})")),
                       "width must be at most 16777216"));
  EXPECT_TRUE(Contains(what(config_error(R"({"input": {"batch": 16777217}})")),
                       "batch must be at most 16777216"));
  // Larger than any 64-bit integer: still a range error, not a crash.
  EXPECT_TRUE(Contains(what(config_error(R"({"stack": {"depth": 1e30}})")), "is too large"));
}

TEST(ConfigRangeErrors, FractionsAreNotIntegers) {
  const Error e = config_error(R"({"stack": {"depth": 2.5}})");
  EXPECT_TRUE(
      Contains(what(e), "stack.depth: expected a positive integer, got 2.5 (not a whole number)"));
  EXPECT_EQ(parse(R"({"stack": {"depth": 5.0}})").stack.depth, 5);
  EXPECT_EQ(parse(R"({"seed": 1e3})").seed, 1000U);
}

TEST(ConfigRangeErrors, SeedSpansTheUnsigned64BitRange) {
  EXPECT_EQ(parse(R"({"seed": 18446744073709551615})").seed, 18446744073709551615ULL);
  EXPECT_TRUE(Contains(what(config_error(R"({"seed": 18446744073709551616})")),
                       "is too large; seed must be at most 18446744073709551615"));
  EXPECT_TRUE(Contains(what(config_error(R"({"seed": -1})")),
                       "seed: expected a non-negative integer, got -1"));
}

TEST(ConfigRangeErrors, RealValuedRanges) {
  EXPECT_TRUE(Contains(what(config_error(R"({"input": {"std": -1}})")),
                       "cfg.json: input.std: must be at least 0, got -1"));
  EXPECT_NO_THROW(parse(R"({"input": {"std": 0}})"));
  EXPECT_TRUE(
      Contains(what(config_error(R"({"stack": {"init": {"name": "orthogonal", "gain": -1}}})")),
               "stack.init.gain: must be at least 0"));
  EXPECT_TRUE(
      Contains(what(config_error(R"({"stack": {"init": {"name": "normal", "std": -0.1}}})")),
               "stack.init.std: must be at least 0"));
  EXPECT_TRUE(
      Contains(what(config_error(R"({"stack": {"bias_init": {"name": "normal", "std": -1}}})")),
               "stack.bias_init.std: must be at least 0"));
  for (const char* t : {"0", "1", "1.5", "-0.1"}) {
    SCOPED_TRACE(t);
    const Error e = config_error(std::string(R"({"stats": {"saturation_threshold": )") + t + "}}");
    EXPECT_TRUE(Contains(what(e), "stats.saturation_threshold: must be between 0 and 1"));
  }
  EXPECT_EQ(parse(R"({"stats": {"saturation_threshold": 0.5}})").stats.saturation_threshold, 0.5);
}

TEST(ConfigRangeErrors, UniformLowMustBeBelowHigh) {
  const Error e = config_error(R"({"input": {"distribution": "uniform", "low": 1, "high": 1}})");
  EXPECT_TRUE(Contains(what(e), "cfg.json: input: low (1.0) must be less than high (1.0)"));
  EXPECT_TRUE(Contains(what(config_error(R"({"input": {"distribution": "uniform", "low": 2}})")),
                       "must be less than high"));
}

TEST(ConfigRangeErrors, KeyOfTheOtherDistributionNamesItsDistribution) {
  const Error low = config_error(R"({"input": {"low": 0}})");
  EXPECT_EQ(what(low),
            "cfg.json: input.low: \"low\" belongs to the uniform distribution, but "
            "input.distribution is \"normal\" (the default)");
  EXPECT_TRUE(Contains(low.hint(), "\"distribution\": \"uniform\""));

  const Error sd = config_error(R"({"input": {"distribution": "uniform", "std": 2}})");
  EXPECT_TRUE(Contains(what(sd), "input.std: \"std\" belongs to the normal distribution"));
  EXPECT_TRUE(Contains(sd.hint(), "uniform takes low and high"));
}

TEST(ConfigRangeErrors, OutputLayerNeedsAWidth) {
  const Error e = config_error(R"({"output": {"activation": "softmax"}})");
  EXPECT_EQ(what(e), "cfg.json: output: missing \"width\"");
  EXPECT_TRUE(Contains(e.hint(), "\"width\": 10"));
}

// ---------------------------------------------------------------------------------------------
// Files

TEST(ConfigFiles, FileStemIsTheDefaultName) {
  const TempDir dir("stem");
  const std::string path = dir.write("relu-he.json", R"({"stack": {"depth": 3}})");
  const RunSpec spec = gradscope::load_run_spec(path);
  EXPECT_EQ(spec.name, "relu-he");
  EXPECT_EQ(spec.stack.depth, 3);

  const std::string named = dir.write("other.json", R"({"name": "given"})");
  EXPECT_EQ(gradscope::load_run_spec(named).name, "given");
}

TEST(ConfigFiles, UnreadableFileNamesThePathAndTheReason) {
  const TempDir dir("unreadable");
  const std::string missing = (dir.path() / "missing.json").string();
  EXPECT_EQ(what(error_of([&] { gradscope::load_run_spec(missing); })),
            "cannot read config " + missing + ": " + std::strerror(ENOENT));
  const std::string directory = dir.path().string();
  EXPECT_EQ(what(error_of([&] { gradscope::load_run_spec(directory); })),
            "cannot read config " + directory + ": " + std::strerror(EISDIR));
}

TEST(ConfigFiles, ErrorsInAFileNameItsPath) {
  const TempDir dir("errors");
  const std::string bad_json = dir.write("bad.json", "{\n\n  \"seed\": ,\n}");
  EXPECT_TRUE(Contains(what(error_of([&] { gradscope::load_run_spec(bad_json); })),
                       bad_json + ":3:11: invalid JSON"));
  const std::string bad_value = dir.write("value.json", R"({"stack": {"depth": 0}})");
  EXPECT_TRUE(Contains(what(error_of([&] { gradscope::load_run_spec(bad_value); })),
                       bad_value + ": stack.depth: "));
}

}  // namespace
