// Tests for the config reader: defaults, every error message (what, where, what to do), overrides,
// the resolved config's round trip back to an equal RunSpec, and the "layers" architectures,
// losses and optimizers with the op list spec.hpp expands them to.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gradscope/io/config.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/spec.hpp"

namespace {

using gradscope::Activation;
using gradscope::BiasInit;
using gradscope::ConfigOverride;
using gradscope::Error;
using gradscope::FanMode;
using gradscope::Init;
using gradscope::InputDistribution;
using gradscope::LayerItem;
using gradscope::LayerSpec;
using gradscope::LossKind;
using gradscope::NormKind;
using gradscope::OpKind;
using gradscope::OpSpec;
using gradscope::OptimizerKind;
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

void expect_same_init(const gradscope::InitSpec& a, const gradscope::InitSpec& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.gain, b.gain);
  EXPECT_EQ(a.std, b.std);
  EXPECT_EQ(a.limit, b.limit);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.weight_var, b.weight_var);
}

void expect_same_norm(const gradscope::NormSpec& a, const gradscope::NormSpec& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.eps, b.eps);
}

void expect_same_items(const std::vector<LayerItem>& a, const std::vector<LayerItem>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE("item " + std::to_string(i));
    EXPECT_EQ(a[i].repeat, b[i].repeat);
    ASSERT_EQ(a[i].residual.has_value(), b[i].residual.has_value());
    if (a[i].residual) {
      EXPECT_EQ(a[i].residual->scale, b[i].residual->scale);
      EXPECT_EQ(a[i].residual->projection, b[i].residual->projection);
      expect_same_init(a[i].residual->projection_init, b[i].residual->projection_init);
    }
    ASSERT_EQ(a[i].post_norm.has_value(), b[i].post_norm.has_value());
    if (a[i].post_norm) expect_same_norm(*a[i].post_norm, *b[i].post_norm);
    expect_same_items(a[i].block, b[i].block);
    if (!a[i].block.empty()) continue;
    const OpSpec& x = a[i].op;
    const OpSpec& y = b[i].op;
    ASSERT_EQ(x.kind, y.kind);
    if (x.kind == OpKind::kDense) expect_same_layer(x.dense, y.dense);
    if (x.kind == OpKind::kNorm) expect_same_norm(x.norm, y.norm);
    if (x.kind == OpKind::kActivation) {
      EXPECT_EQ(x.activation.kind, y.activation.kind);
      EXPECT_EQ(x.activation.param, y.activation.param);
    }
    if (x.kind == OpKind::kDropout) {
      EXPECT_EQ(x.dropout, y.dropout);
    }
  }
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
  {
    SCOPED_TRACE("layers");
    expect_same_items(a.layers, b.layers);
  }
  EXPECT_EQ(a.loss.kind, b.loss.kind);
  EXPECT_EQ(a.loss.classes, b.loss.classes);
  EXPECT_EQ(a.optimizer.kind, b.optimizer.kind);
  EXPECT_EQ(a.optimizer.learning_rate, b.optimizer.learning_rate);
  EXPECT_EQ(a.optimizer.momentum, b.optimizer.momentum);
  EXPECT_EQ(a.optimizer.beta1, b.optimizer.beta1);
  EXPECT_EQ(a.optimizer.beta2, b.optimizer.beta2);
  EXPECT_EQ(a.optimizer.eps, b.optimizer.eps);
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

TEST(ConfigDiagnosis, ThresholdsAreReadCheckedAndWrittenBack) {
  const RunSpec spec = parse(
      R"({"diagnosis": {"gradient_warning_decades": 3, "dead_fraction": 0.5, "deep_layers": 20}})");
  EXPECT_EQ(spec.diagnosis.gradient_warning_decades, 3.0);
  EXPECT_EQ(spec.diagnosis.gradient_error_decades, 4.0);
  EXPECT_EQ(spec.diagnosis.dead_fraction, 0.5);
  EXPECT_EQ(spec.diagnosis.deep_layers, 20);
  // A warning threshold raised above the default error threshold raises that with it.
  EXPECT_EQ(
      parse(R"({"diagnosis": {"gradient_warning_decades": 6}})").diagnosis.gradient_error_decades,
      6.0);
  const Json j = Json::parse(gradscope::run_spec_to_json(spec));
  EXPECT_EQ(j["diagnosis"]["dead_fraction"], 0.5);
  EXPECT_EQ(j["diagnosis"]["deep_layers"], 20);
  EXPECT_EQ(parse(gradscope::run_spec_to_json(spec)).diagnosis.deep_layers, 20);
}

TEST(ConfigDiagnosis, BadThresholdsNameTheKeyAndTheRule) {
  const auto error_of = [](const std::string& text) {
    try {
      parse(text);
    } catch (const Error& e) {
      return what(e) + " | " + e.hint();
    }
    return std::string("no error");
  };
  EXPECT_TRUE(Contains(error_of(R"({"diagnosis": {"correlation": 1}})"),
                       "diagnosis.correlation: must be between 0 and 1"));
  EXPECT_TRUE(Contains(error_of(R"({"diagnosis": {"update_ratio_min": -1}})"),
                       "diagnosis.update_ratio_min: must be a positive number"));
  EXPECT_TRUE(Contains(error_of(R"({"diagnosis": {"gradient_error_decades": 1}})"),
                       "diagnosis.gradient_error_decades: is below"));
  EXPECT_TRUE(Contains(error_of(R"({"diagnosis": {"deep_layers": 0}})"), "diagnosis.deep_layers"));
  EXPECT_TRUE(Contains(error_of(R"({"diagnosis": {"dead_fractoin": 0.3}})"),
                       "did you mean \"dead_fraction\"?"));
}

TEST(ConfigDiagnosis, BoundedOutputUnderSoftmaxCrossEntropyIsLeftToTheDiagnosis) {
  // A common mistake the diagnosis names (sigmoid_output_multiclass) rather than a refusal.
  const RunSpec spec = parse(
      R"({"stack": {"depth": 2, "width": 8}, "output": {"width": 4, "activation": "sigmoid"},
          "loss": "softmax_cross_entropy"})");
  EXPECT_EQ(spec.loss.kind, LossKind::kSoftmaxCrossEntropy);
  EXPECT_THROW(parse(R"({"stack": {"depth": 2, "width": 8},
                         "output": {"width": 4, "activation": "relu"},
                         "loss": "softmax_cross_entropy"})"),
               Error);
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
// "layers": parsing

// The architecture of the issue that asked for "layers": a pre-norm residual GELU MLP.
constexpr const char* kIssueExample = R"({
  "layers": [
    { "width": 512, "activation": "gelu", "init": "he_normal" },
    { "repeat": 24, "residual": { "scale": 1.0 },
      "block": [ { "norm": "layer_norm" },
                 { "width": 2048, "activation": "gelu", "init": "he_normal" },
                 { "width": 512, "activation": "linear", "init": "xavier_normal" } ] },
    { "width": 10, "activation": "softmax" }
  ]
})";

// A config with these layers, as JSON text.
std::string with_layers(const std::string& layers) {
  std::string text = R"({"layers": )";
  text += layers;
  text += "}";
  return text;
}

std::vector<OpKind> kinds_of(const std::vector<OpSpec>& ops) {
  std::vector<OpKind> kinds;
  for (const OpSpec& op : ops) kinds.push_back(op.kind);
  return kinds;
}

std::vector<OpKind> op_kinds(const RunSpec& spec) { return kinds_of(gradscope::expand_ops(spec)); }

std::vector<int> widths_of(const RunSpec& spec) {
  return gradscope::op_widths(spec, gradscope::expand_ops(spec));
}

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
            "norm_position, dropout, repeat, residual, block");

  const Error nested =
      config_error(with_layers(R"([{"block": [{"width": 8}, {"dropuot": 0.1}]}])"));
  EXPECT_EQ(what(nested), "cfg.json: layers[0].block[1].dropuot: unknown key");
  EXPECT_TRUE(Contains(nested.hint(), "did you mean \"dropout\"?"));

  const Error residual = config_error(
      with_layers(R"([{"width": 8}, {"residual": {"scael": 1}, "block": [{"width": 8}]}])"));
  EXPECT_EQ(what(residual), "cfg.json: layers[1].residual.scael: unknown key");
  EXPECT_EQ(residual.hint(),
            "did you mean \"scale\"? valid keys here: scale, projection, placement, norm");

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
               "layers[1].residual.projection: expected true, false or an init, got 1"));
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

// ---------------------------------------------------------------------------------------------
// "loss"

TEST(ConfigLoss, DefaultsToTheProbeAndTakesANameOrAnObject) {
  EXPECT_EQ(parse("{}").loss.kind, LossKind::kProbe);
  EXPECT_EQ(parse(R"({"loss": "probe"})").loss.kind, LossKind::kProbe);
  EXPECT_EQ(parse(R"({"loss": "mse"})").loss.kind, LossKind::kMse);
  EXPECT_EQ(parse(R"({"loss": {"name": "mse"}})").loss.kind, LossKind::kMse);
  EXPECT_EQ(parse(R"({"output": {"width": 3}, "loss": "sigmoid_bce"})").loss.kind,
            LossKind::kSigmoidBce);
  EXPECT_EQ(parse("{}").loss.classes, 0);
}

TEST(ConfigLoss, SoftmaxCrossEntropyClassesDefaultToTheOutputWidth) {
  const RunSpec stack = parse(R"({"output": {"width": 10}, "loss": "softmax_cross_entropy"})");
  EXPECT_EQ(stack.loss.kind, LossKind::kSoftmaxCrossEntropy);
  EXPECT_EQ(stack.loss.classes, 10);
  EXPECT_EQ(parse(R"({"output": {"width": 10},
                      "loss": {"name": "softmax_cross_entropy", "classes": 10}})")
                .loss.classes,
            10);
  // Without an output layer the stack's last layer is the output (here linear).
  EXPECT_EQ(parse(R"({"stack": {"width": 6, "activation": "linear"},
                      "loss": "softmax_cross_entropy"})")
                .loss.classes,
            6);
  const RunSpec layers = parse(R"({"layers": [{"width": 16}, {"width": 5, "activation": "linear"}],
                                  "loss": "softmax_cross_entropy"})");
  EXPECT_EQ(layers.loss.classes, 5);
  // A network that ends in a norm or a residual addition outputs unbounded values: logits.
  EXPECT_EQ(parse(R"({"layers": [{"width": 4}, {"norm": "layer_norm"}],
                      "loss": "softmax_cross_entropy"})")
                .loss.classes,
            4);
  EXPECT_EQ(parse(R"({"layers": [{"width": 4}, {"residual": true, "block": [{"width": 4}]}],
                      "loss": "softmax_cross_entropy"})")
                .loss.classes,
            4);
}

TEST(ConfigLoss, ClassesMustEqualTheOutputWidth) {
  const Error e = config_error(
      R"({"output": {"width": 10}, "loss": {"name": "softmax_cross_entropy", "classes": 5}})");
  EXPECT_EQ(what(e), "cfg.json: loss.classes: classes is 5 but the network has 10 output units");
  EXPECT_TRUE(Contains(e.hint(), "set \"classes\": 10 or leave it out"));
  EXPECT_TRUE(Contains(
      what(config_error(
          R"({"output": {"width": 3}, "loss": {"name": "softmax_cross_entropy", "classes": 0}})")),
      "loss.classes: expected a positive integer"));

  const Error one = config_error(R"({"output": {"width": 1}, "loss": "softmax_cross_entropy"})");
  EXPECT_EQ(what(one),
            "cfg.json: loss: softmax_cross_entropy needs at least 2 output units, the network "
            "has 1");
  EXPECT_TRUE(Contains(one.hint(), "\"sigmoid_bce\""));
}

TEST(ConfigLoss, LossesOnLogitsRefuseASquashedOutput) {
  const Error softmax = config_error(
      R"({"output": {"width": 10, "activation": "softmax"}, "loss": "softmax_cross_entropy"})");
  EXPECT_EQ(what(softmax),
            "cfg.json: output.activation: the network ends in softmax, but loss "
            "\"softmax_cross_entropy\" takes logits");
  EXPECT_TRUE(Contains(softmax.hint(), "the loss applies softmax itself; use a linear output"));

  const Error layers = config_error(
      R"({"layers": [{"width": 8}, {"width": 3, "activation": "softmax"}], "loss": "softmax_cross_entropy"})");
  EXPECT_TRUE(
      Contains(what(layers), "cfg.json: layers[1].activation: the network ends in softmax"));
  EXPECT_TRUE(Contains(layers.hint(), "the loss applies softmax itself; use a linear output"));

  const Error sigmoid = config_error(
      R"({"layers": [{"width": 8}, {"width": 3, "activation": "sigmoid"}], "loss": "sigmoid_bce"})");
  EXPECT_EQ(what(sigmoid),
            "cfg.json: layers[1].activation: the network ends in sigmoid, but loss "
            "\"sigmoid_bce\" takes logits");
  EXPECT_TRUE(Contains(sigmoid.hint(), "the loss applies sigmoid itself; use a linear output"));

  // Dropout after the output does not hide it.
  EXPECT_TRUE(Contains(
      what(config_error(R"({"layers": [{"width": 3, "activation": "sigmoid"}, {"dropout": 0.1}],
                            "loss": "sigmoid_bce"})")),
      "layers[0].activation: the network ends in sigmoid"));
  // The stack's own relu: the hint shows how to add a linear output layer.
  const Error stack = config_error(R"({"loss": "softmax_cross_entropy"})");
  EXPECT_TRUE(Contains(what(stack), "cfg.json: stack.activation: the network ends in relu"));
  EXPECT_TRUE(Contains(stack.hint(), "\"output\": {\"width\": 10}"));

  // The error is where the override put the loss, when that is what changed.
  EXPECT_TRUE(Contains(what(config_error(R"({"output": {"width": 4, "activation": "softmax"}})",
                                         {{"loss", "softmax_cross_entropy", "--set loss"}})),
                       "--set loss: output.activation: the network ends in softmax"));
}

TEST(ConfigLoss, OtherLossesTakeAnyOutput) {
  // Multi-label: one sigmoid per unit, any number of units.
  EXPECT_EQ(parse(R"({"output": {"width": 7}, "loss": "sigmoid_bce"})").loss.kind,
            LossKind::kSigmoidBce);
  EXPECT_EQ(parse(R"({"output": {"width": 1}, "loss": "sigmoid_bce"})").loss.kind,
            LossKind::kSigmoidBce);
  EXPECT_EQ(parse(R"({"output": {"width": 4, "activation": "softmax"}, "loss": "mse"})").loss.kind,
            LossKind::kMse);
  EXPECT_EQ(parse(R"({"output": {"width": 4, "activation": "softmax"}})").loss.kind,
            LossKind::kProbe);
}

TEST(ConfigLoss, UnknownNamesAndParameters) {
  const Error name = config_error(R"({"loss": "mes"})");
  EXPECT_EQ(what(name), "cfg.json: loss: unknown loss \"mes\"");
  EXPECT_EQ(name.hint(),
            "did you mean \"mse\"? choose one of: probe, mse, softmax_cross_entropy, sigmoid_bce");
  EXPECT_TRUE(Contains(what(config_error(R"({"loss": {"name": "crossentropy"}})")),
                       "loss.name: unknown loss \"crossentropy\""));

  const Error classes = config_error(R"({"loss": {"name": "mse", "classes": 3}})");
  EXPECT_EQ(what(classes), "cfg.json: loss.classes: mse takes no parameters");
  EXPECT_TRUE(Contains(classes.hint(), "only softmax_cross_entropy takes \"classes\""));

  const Error typo = config_error(
      R"({"output": {"width": 3}, "loss": {"name": "softmax_cross_entropy", "clases": 3}})");
  EXPECT_EQ(what(typo), "cfg.json: loss.clases: unknown key");
  EXPECT_TRUE(Contains(typo.hint(), "did you mean \"classes\"?"));

  EXPECT_TRUE(
      Contains(what(config_error(R"({"loss": 3})")), "loss: expected a loss name or an object"));
  EXPECT_TRUE(
      Contains(what(config_error(R"({"loss": {"classes": 3}})")), "loss: missing \"name\""));
}

// ---------------------------------------------------------------------------------------------
// "optimizer"

TEST(ConfigOptimizer, DefaultsToNoneAndReadsEveryParameter) {
  EXPECT_EQ(parse("{}").optimizer.kind, OptimizerKind::kNone);
  EXPECT_EQ(parse(R"({"optimizer": "none"})").optimizer.kind, OptimizerKind::kNone);

  const gradscope::OptimizerSpec defaults{};
  const gradscope::OptimizerSpec sgd =
      parse(R"({"optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.5}})").optimizer;
  EXPECT_EQ(sgd.kind, OptimizerKind::kSgd);
  EXPECT_EQ(sgd.learning_rate, 0.01);
  EXPECT_EQ(sgd.momentum, 0.5);
  const gradscope::OptimizerSpec plain_sgd = parse(R"({"optimizer": "sgd"})").optimizer;
  EXPECT_EQ(plain_sgd.learning_rate, defaults.learning_rate);
  EXPECT_EQ(plain_sgd.momentum, defaults.momentum);
  EXPECT_EQ(parse(R"({"optimizer": {"name": "sgd", "momentum": 0}})").optimizer.momentum, 0.0);

  const gradscope::OptimizerSpec adam = parse(R"({"optimizer": {"name": "adam",
      "learning_rate": 3e-4, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}})")
                                            .optimizer;
  EXPECT_EQ(adam.kind, OptimizerKind::kAdam);
  EXPECT_EQ(adam.learning_rate, 3e-4);
  EXPECT_EQ(adam.beta1, 0.8);
  EXPECT_EQ(adam.beta2, 0.99);
  EXPECT_EQ(adam.eps, 1e-6);
  const gradscope::OptimizerSpec plain_adam = parse(R"({"optimizer": {"name": "adam"}})").optimizer;
  EXPECT_EQ(plain_adam.learning_rate, defaults.learning_rate);
  EXPECT_EQ(plain_adam.beta1, defaults.beta1);
  EXPECT_EQ(plain_adam.beta2, defaults.beta2);
  EXPECT_EQ(plain_adam.eps, defaults.eps);
}

TEST(ConfigOptimizer, RangesAndParametersEachOptimizerTakes) {
  const Error lr = config_error(R"({"optimizer": {"name": "sgd", "learning_rate": 0}})");
  EXPECT_EQ(what(lr), "cfg.json: optimizer.learning_rate: must be greater than 0, got 0");
  EXPECT_TRUE(
      Contains(what(config_error(R"({"optimizer": {"name": "adam", "learning_rate": -1}})")),
               "optimizer.learning_rate: must be greater than 0, got -1"));
  const Error momentum = config_error(R"({"optimizer": {"name": "sgd", "momentum": 1}})");
  EXPECT_EQ(what(momentum), "cfg.json: optimizer.momentum: must be in [0, 1), got 1");
  EXPECT_TRUE(Contains(what(config_error(R"({"optimizer": {"name": "adam", "beta1": -0.1}})")),
                       "optimizer.beta1: must be in [0, 1), got -0.1"));
  EXPECT_TRUE(Contains(what(config_error(R"({"optimizer": {"name": "adam", "beta2": 1}})")),
                       "optimizer.beta2: must be in [0, 1), got 1"));
  EXPECT_TRUE(Contains(what(config_error(R"({"optimizer": {"name": "adam", "eps": 0}})")),
                       "optimizer.eps: must be greater than 0, got 0"));

  const Error beta = config_error(R"({"optimizer": {"name": "sgd", "beta1": 0.9}})");
  EXPECT_EQ(what(beta), "cfg.json: optimizer.beta1: sgd does not take \"beta1\"");
  EXPECT_EQ(beta.hint(), "sgd takes: learning_rate, momentum");
  const Error adam_momentum = config_error(R"({"optimizer": {"name": "adam", "momentum": 0.9}})");
  EXPECT_EQ(what(adam_momentum), "cfg.json: optimizer.momentum: adam does not take \"momentum\"");
  const Error none = config_error(R"({"optimizer": {"name": "none", "learning_rate": 0.1}})");
  EXPECT_EQ(what(none), "cfg.json: optimizer.learning_rate: none takes no parameters");

  const Error name = config_error(R"({"optimizer": "adma"})");
  EXPECT_EQ(what(name), "cfg.json: optimizer: unknown optimizer \"adma\"");
  EXPECT_EQ(name.hint(), "did you mean \"adam\"? choose one of: none, sgd, adam");
  const Error typo = config_error(R"({"optimizer": {"name": "sgd", "learning_rat": 0.1}})");
  EXPECT_EQ(what(typo), "cfg.json: optimizer.learning_rat: unknown key");
  EXPECT_TRUE(Contains(typo.hint(), "did you mean \"learning_rate\"?"));
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
