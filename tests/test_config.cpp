// Tests for the config reader: defaults, every error message (what, where, what to do), overrides,
// and the resolved config's round trip back to an equal RunSpec.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gradscope/config.hpp"
#include "gradscope/error.hpp"
#include "gradscope/spec.hpp"

namespace {

using gradscope::Activation;
using gradscope::BiasInit;
using gradscope::ConfigOverride;
using gradscope::Error;
using gradscope::FanMode;
using gradscope::Init;
using gradscope::InputDistribution;
using gradscope::LayerSpec;
using gradscope::Precision;
using gradscope::RunSpec;
using Json = nlohmann::ordered_json;

::testing::AssertionResult Contains(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\"" << text << "\"\n  does not contain \"" << part << "\"";
}

// The gradscope::Error that `f` throws; the test fails if it throws none.
Error error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a gradscope::Error";
  return Error("(no error thrown)");
}

RunSpec parse(std::string_view text, const std::vector<ConfigOverride>& overrides = {}) {
  return gradscope::parse_run_spec(text, "cfg.json", "cfg", overrides);
}

Error config_error(std::string_view text, const std::vector<ConfigOverride>& overrides = {}) {
  return error_of([&] { parse(text, overrides); });
}

std::string what(const Error& e) { return e.what(); }

void expect_same_layer(const LayerSpec& a, const LayerSpec& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.activation.kind, b.activation.kind);
  EXPECT_EQ(a.activation.param, b.activation.param);
  EXPECT_EQ(a.init.kind, b.init.kind);
  EXPECT_EQ(a.init.gain, b.init.gain);
  EXPECT_EQ(a.init.std, b.init.std);
  EXPECT_EQ(a.init.limit, b.init.limit);
  EXPECT_EQ(a.init.mode, b.init.mode);
  EXPECT_EQ(a.init.weight_var, b.init.weight_var);
  EXPECT_EQ(a.bias.kind, b.bias.kind);
  EXPECT_EQ(a.bias.value, b.bias.value);
  EXPECT_EQ(a.bias.std, b.bias.std);
}

// Field by field, with exact floating-point equality: the writer must round-trip every double.
void expect_same_spec(const RunSpec& a, const RunSpec& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.precision, b.precision);
  EXPECT_EQ(a.input.width, b.input.width);
  EXPECT_EQ(a.input.batch, b.input.batch);
  EXPECT_EQ(a.input.distribution, b.input.distribution);
  EXPECT_EQ(a.input.mean, b.input.mean);
  EXPECT_EQ(a.input.std, b.input.std);
  EXPECT_EQ(a.input.low, b.input.low);
  EXPECT_EQ(a.input.high, b.input.high);
  EXPECT_EQ(a.stack.depth, b.stack.depth);
  {
    SCOPED_TRACE("stack layer");
    expect_same_layer(a.stack.layer, b.stack.layer);
  }
  ASSERT_EQ(a.output.has_value(), b.output.has_value());
  if (a.output) {
    SCOPED_TRACE("output layer");
    expect_same_layer(*a.output, *b.output);
  }
  EXPECT_EQ(a.stats.saturation_threshold, b.stats.saturation_threshold);
}

// Writes the spec out, reads it back, and checks both the spec and the text are unchanged.
void expect_round_trip(const RunSpec& spec) {
  const std::string text = gradscope::run_spec_to_json(spec);
  SCOPED_TRACE(text);
  const RunSpec back = gradscope::parse_run_spec(text, "<resolved>", "unused");
  expect_same_spec(spec, back);
  EXPECT_EQ(gradscope::run_spec_to_json(back), text);
  expect_same_spec(spec, gradscope::parse_run_spec(gradscope::run_spec_to_json(spec, -1),
                                                   "<resolved>", "unused"));
}

std::vector<std::string> keys_of(const Json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  return keys;
}

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / ("gradscope-test-config-" + name)) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string write(const std::string& file, const std::string& text) const {
    const std::filesystem::path p = path_ / file;
    std::ofstream(p) << text;
    return p.string();
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

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
// Softmax

TEST(ConfigSoftmax, AllowedAsTheOutputActivation) {
  const RunSpec spec = parse(R"({"output": {"width": 10, "activation": "softmax"}})");
  ASSERT_TRUE(spec.output.has_value());
  EXPECT_EQ(spec.output->activation.kind, Activation::kSoftmax);
}

TEST(ConfigSoftmax, RejectedInTheStackWithTheReason) {
  const Error e = config_error(R"({"stack": {"activation": "softmax"}})");
  EXPECT_TRUE(Contains(what(e), "cfg.json: stack.activation: "));
  EXPECT_TRUE(Contains(what(e), "normalises across the units of a layer"));
  EXPECT_TRUE(Contains(what(e), "belongs only in \"output\""));
  EXPECT_TRUE(Contains(e.hint(), "output.activation"));
  EXPECT_TRUE(Contains(e.hint(), "relu, leaky_relu"));
  const std::string hidden_list = e.hint().substr(e.hint().find("elementwise activation: "));
  EXPECT_FALSE(Contains(hidden_list, "softmax"));

  const Error object_form = config_error(R"({"stack": {"activation": {"name": "softmax"}}})");
  EXPECT_TRUE(Contains(what(object_form), "stack.activation.name: "));
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
  EXPECT_EQ(e.hint(), "valid keys here: name, seed, precision, input, stack, output, stats");
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

TEST(ConfigOverrides, LargeSeedFromTheCommandLine) {
  EXPECT_EQ(parse("{}", {{"seed", "18446744073709551615", "--seed"}}).seed,
            18446744073709551615ULL);
}

// ---------------------------------------------------------------------------------------------
// Resolved config

TEST(ConfigResolved, KeysComeInTheDocumentedOrder) {
  const RunSpec spec = parse(R"({"output": {"width": 3}, "stats": {}, "stack": {}, "seed": 2})");
  const Json j = Json::parse(gradscope::run_spec_to_json(spec));
  EXPECT_EQ(keys_of(j), (std::vector<std::string>{"name", "seed", "precision", "input", "stack",
                                                  "output", "stats"}));
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

}  // namespace
