// Tests of the JSON report writer against schema/report.schema.json, the null-with-status rule,
// the activation histograms, the per-kind keys of mixed architectures, the mean-field theory beside
// each layer, the verdict and findings of the diagnosis, determinism and golden files; also the
// Magnitude helpers it reads, and the schema validator.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gradscope/core/report.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/io/report_json.hpp"
#include "gradscope/version.hpp"
#include "json_schema.hpp"
#include "report_fixtures.hpp"
#include "support/paths.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

using Json = nlohmann::ordered_json;
using testing::diagnosed_report;
using testing::make_report;
using testing::mixed_report;
using testing::small_report;
using testing::softmax_output_report;
using testing::validate_schema;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------- helpers

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Json load_schema() {
  const std::string text =
      read_file(std::string(GRADSCOPE_SOURCE_DIR) + "/schema/report.schema.json");
  EXPECT_FALSE(text.empty()) << "schema/report.schema.json not found";
  return Json::parse(text);
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

std::vector<std::string> keys_of(const Json& obj) {
  std::vector<std::string> keys;
  for (auto it = obj.begin(); it != obj.end(); ++it) keys.push_back(it.key());
  return keys;
}

// The key that follows `key` in an ordered object ("" when none).
std::string key_after(const Json& obj, const std::string& key) {
  const std::vector<std::string> keys = keys_of(obj);
  for (std::size_t i = 0; i + 1 < keys.size(); ++i) {
    if (keys[i] == key) return keys[i + 1];
  }
  return "";
}

void expect_null_with_status(const Json& obj, const std::string& key, const std::string& status) {
  ASSERT_TRUE(obj.contains(key)) << key;
  EXPECT_TRUE(obj[key].is_null()) << key << " = " << obj[key].dump();
  EXPECT_EQ(key_after(obj, key), key + "_status") << "status must follow " << key;
  ASSERT_TRUE(obj.contains(key + "_status")) << key;
  EXPECT_EQ(obj[key + "_status"], status) << key;
}

// The nulls the schema documents as "there is none": no non-finite layer (and so no pass), a
// forward pass's flag when the origin is the backward pass, no remedy, a root's cause, no check.
bool documented_null(const std::string& path) {
  static const std::vector<std::string> kNulls = {
      "$.summary.first_nonfinite_layer", "$.summary.first_nonfinite_pass",
      "$.summary.backward_nonfinite_above", "$.remedy", "$.remedy.check"};
  if (std::find(kNulls.begin(), kNulls.end(), path) != kNulls.end()) return true;
  const std::string cause = ".cause";
  return path.rfind("$.findings[", 0) == 0 && path.size() > cause.size() &&
         path.compare(path.size() - cause.size(), cause.size(), cause) == 0;
}

// Walks the document: every null (bar the documented ones above) is followed by its status, and
// every status key sits right after a null.
void check_no_silent_null(const Json& v, const std::string& path,
                          std::vector<std::string>& errors) {
  if (v.is_array()) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      check_no_silent_null(v[i], path + "[" + std::to_string(i) + "]", errors);
    }
  }
  if (!v.is_object()) return;
  const std::vector<std::string> keys = keys_of(v);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const std::string& k = keys[i];
    const std::string child = path + "." + k;
    if (v[k].is_null() && !documented_null(child)) {
      if (i + 1 >= keys.size() || keys[i + 1] != k + "_status")
        errors.push_back(child + ": null without status");
    }
    const std::string suffix = "_status";
    if (k.size() > suffix.size() &&
        k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string base = k.substr(0, k.size() - suffix.size());
      if (i == 0 || keys[i - 1] != base || !v[base].is_null())
        errors.push_back(child + ": status without a null before it");
    }
    check_no_silent_null(v[k], child, errors);
  }
}

// Compares with tests/golden/NAME byte for byte; GRADSCOPE_UPDATE_GOLDEN=1 rewrites the file.
void expect_matches_golden(const std::string& actual, const std::string& name) {
  const std::string expected = testing::golden(actual, name);
  ASSERT_FALSE(expected.empty()) << "tests/golden/" << name
                                 << " is missing; run with GRADSCOPE_UPDATE_GOLDEN=1";
  if (expected == actual) return;
  std::size_t at = 0;
  while (at < expected.size() && at < actual.size() && expected[at] == actual[at]) ++at;
  const std::size_t line =
      1 + static_cast<std::size_t>(std::count(
              expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
  const auto line_at = [&](const std::string& s) {
    const std::size_t begin = s.rfind('\n', at == 0 ? 0 : at - 1);
    const std::size_t from = begin == std::string::npos || at == 0 ? 0 : begin + 1;
    return s.substr(from, s.find('\n', from) - from);
  };
  ADD_FAILURE()
      << name << " differs from the golden file at byte " << at << " (line " << line
      << ")\n  golden: " << line_at(expected) << "\n  actual: " << line_at(actual)
      << "\nIf the change is intended, rerun with GRADSCOPE_UPDATE_GOLDEN=1 and review the diff.";
}

// ---------------------------------------------------------------- the validator itself

// A small schema using every keyword the validator supports.
Json sample_schema() {
  return Json::parse(R"({
    "type": "object", "additionalProperties": false, "required": ["n", "tag"],
    "properties": {
      "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 10},
      "tag": {"enum": ["a", "b"]},
      "list": {"type": "array", "items": {"$ref": "#/$defs/point"}},
      "fixed": {"const": 3}
    },
    "$defs": {"point": {"type": "object", "required": ["x"], "properties": {"x": {"type": "number"}}}}
  })");
}

TEST(JsonSchemaValidator, AcceptsMatchingInstances) {
  const Json schema = sample_schema();
  EXPECT_EQ(join(validate_schema(schema, Json::parse(R"({"n": 5, "tag": "a"})"))), "");
  EXPECT_EQ(join(validate_schema(schema, Json::parse(R"({"n": null, "tag": "b", "fixed": 3})"))),
            "");
  EXPECT_EQ(join(validate_schema(
                schema, Json::parse(R"({"n": 2.0, "tag": "a", "list": [{"x": 1.5}, {"x": 2}]})"))),
            "");
}

TEST(JsonSchemaValidator, RejectsEachKindOfViolationWithItsPath) {
  const Json schema = sample_schema();
  const auto errors_for = [&](const char* text) {
    return validate_schema(schema, Json::parse(text));
  };
  const auto expect_error = [&](const char* text, const std::string& fragment) {
    const std::vector<std::string> errors = errors_for(text);
    ASSERT_EQ(errors.size(), 1u) << text << "\n" << join(errors);
    EXPECT_NE(errors[0].find(fragment), std::string::npos) << errors[0];
  };
  expect_error(R"({"tag": "a"})", "$: missing required key 'n'");
  expect_error(R"({"n": 1, "tag": "a", "extra": 0})", "$.extra: key not allowed");
  expect_error(R"({"n": "five", "tag": "a"})", "$.n: expected type");
  expect_error(R"({"n": 1.5, "tag": "a"})", "$.n: expected type");
  expect_error(R"({"n": 0, "tag": "a"})", "$.n: 0 is below the minimum 1");
  expect_error(R"({"n": 11, "tag": "a"})", "$.n: 11 is above the maximum 10");
  expect_error(R"({"n": 1, "tag": "c"})", "$.tag: \"c\" is not one of");
  expect_error(R"({"n": 1, "tag": "a", "fixed": 4})", "$.fixed: expected 3");
  expect_error(R"({"n": 1, "tag": "a", "list": [{"x": 1}, {"y": 2}]})",
               "$.list[1]: missing required key 'x'");
  expect_error(R"({"n": 1, "tag": "a", "list": [{"x": "1"}]})", "$.list[0].x: expected type");
  expect_error(R"([1, 2])", "$: expected type \"object\"");
}

TEST(JsonSchemaValidator, ReportsSchemaFeaturesItDoesNotSupport) {
  const Json unsupported = Json::parse(R"({"type": "string", "pattern": "^a"})");
  const std::vector<std::string> e1 = validate_schema(unsupported, Json("abc"));
  ASSERT_EQ(e1.size(), 1u);
  EXPECT_NE(e1[0].find("unsupported keyword 'pattern'"), std::string::npos);

  const Json dangling = Json::parse(R"({"$ref": "#/$defs/missing"})");
  const std::vector<std::string> e2 = validate_schema(dangling, Json(1));
  ASSERT_EQ(e2.size(), 1u);
  EXPECT_NE(e2[0].find("does not resolve"), std::string::npos);

  const Json cycle = Json::parse(R"({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}})");
  EXPECT_FALSE(validate_schema(cycle, Json(1)).empty());
}

// ---------------------------------------------------------------- Magnitude helpers

TEST(Magnitude, FromScaledIsExactInsideDoubleRange) {
  const Magnitude m = magnitude_from_scaled(3.0, 4);
  EXPECT_EQ(m.value, 48.0);
  EXPECT_EQ(m.log10, std::log10(48.0));
  EXPECT_EQ(magnitude_from_scaled(1.0, 10).log10, std::log10(1024.0));
}

TEST(Magnitude, FromScaledKeepsLog10BeyondDoubleRange) {
  const Magnitude tiny = magnitude_from_scaled(1.5, -4000);
  EXPECT_EQ(tiny.value, 0.0);
  // log10(1.5) - 4000 log10(2), to the rounding of a sum of size 1200.
  EXPECT_NEAR(tiny.log10, std::log10(1.5) - 4000.0 * std::log10(2.0), 1e-12);
  const Magnitude huge = magnitude_from_scaled(1.0, 5000);
  EXPECT_TRUE(std::isinf(huge.value));
  EXPECT_NEAR(huge.log10, 5000.0 * std::log10(2.0), 1e-12);  // same rounding argument
}

TEST(Magnitude, FromScaledHandlesZeroNanAndInf) {
  const Magnitude zero = magnitude_from_scaled(0.0, 12);
  EXPECT_EQ(zero.value, 0.0);
  EXPECT_TRUE(std::isinf(zero.log10) && zero.log10 < 0);
  const Magnitude nan = magnitude_from_scaled(kNan, 0);
  EXPECT_TRUE(std::isnan(nan.value) && std::isnan(nan.log10));
  const Magnitude inf = magnitude_from_scaled(kInf, -3);
  EXPECT_TRUE(std::isinf(inf.value) && std::isinf(inf.log10) && inf.log10 > 0);
}

TEST(Magnitude, FromLog10UnderflowsAndOverflowsTheValueOnly) {
  const Magnitude small = magnitude_from_log10(-600.0);
  EXPECT_EQ(small.value, 0.0);
  EXPECT_EQ(small.log10, -600.0);
  const Magnitude big = magnitude_from_log10(400.0);
  EXPECT_TRUE(std::isinf(big.value));
  EXPECT_EQ(magnitude_from_log10(2.0).value, 100.0);
}

TEST(Magnitude, RatioSubtractsLogsAndStaysExactForOrdinaryValues) {
  const Magnitude r = magnitude_ratio(magnitude_from_scaled(3.0, 0), magnitude_from_scaled(4.0, 0));
  EXPECT_EQ(r.value, 0.75);
  const Magnitude deep = magnitude_ratio(magnitude_from_log10(-500.0), magnitude_from_log10(200.0));
  EXPECT_EQ(deep.value, 0.0);
  EXPECT_EQ(deep.log10, -700.0);
  const Magnitude back =
      magnitude_ratio(magnitude_from_log10(-400.0), magnitude_from_log10(-401.5));
  EXPECT_NEAR(back.value, std::pow(10.0, 1.5), 1e-12);  // 10^x of a log difference rounded at 400
  const Magnitude undefined =
      magnitude_ratio(magnitude_from_scaled(0.0, 0), magnitude_from_scaled(0.0, 0));
  EXPECT_TRUE(std::isnan(undefined.log10));
  EXPECT_TRUE(
      std::isinf(magnitude_ratio(magnitude_from_log10(1.0), magnitude_from_scaled(0.0, 0)).value));
}

// ---------------------------------------------------------------- the JSON report

TEST(ReportJson, SmallReportValidatesAgainstTheSchema) {
  const Json doc = Json::parse(report_to_json(small_report()));
  EXPECT_EQ(join(validate_schema(load_schema(), doc)), "");
}

TEST(ReportJson, SchemaRejectsAReportWithAnUnknownOrMissingKey) {
  const Json schema = load_schema();
  Json doc = Json::parse(report_to_json(small_report()));
  doc["layers"][0]["backward"]["surprise"] = 1;
  doc["summary"].erase("dead_units");
  doc["layers"][1]["backward"]["gain_status"] = "lost";
  doc["layers"][2]["theory"].erase("flagged");
  doc["layers"][2]["theory"]["chi_status"] = "unknown";
  const std::string errors = join(validate_schema(schema, doc));
  EXPECT_NE(errors.find("$.layers[2].theory: missing required key 'flagged'"), std::string::npos)
      << errors;
  EXPECT_NE(errors.find("$.layers[2].theory.chi_status: \"unknown\" is not one of"),
            std::string::npos)
      << errors;
  EXPECT_NE(errors.find("$.layers[0].backward.surprise: key not allowed"), std::string::npos)
      << errors;
  EXPECT_NE(errors.find("$.summary: missing required key 'dead_units'"), std::string::npos)
      << errors;
  EXPECT_NE(errors.find("$.layers[1].backward.gain_status: \"lost\" is not one of"),
            std::string::npos)
      << errors;
}

TEST(ReportJson, KeysScriptsRelyOnAreThereInOrder) {
  const Report r = small_report();
  const Json doc = Json::parse(report_to_json(r));
  EXPECT_EQ(keys_of(doc), (std::vector<std::string>{
                              "schema_version", "tool", "config", "network", "input", "output_grad",
                              "loss", "layers", "parameters", "summary", "findings", "remedy"}));
  EXPECT_EQ(doc["schema_version"], kSchemaVersion);
  EXPECT_EQ(doc["tool"]["name"], "gradscope");
  EXPECT_EQ(doc["tool"]["version"], kVersion);
  EXPECT_EQ(doc["config"]["name"], "small");
  EXPECT_EQ(keys_of(doc["network"]),
            (std::vector<std::string>{"depth", "parameters", "precision", "memory"}));
  EXPECT_EQ(doc["network"]["depth"], r.layers.size());
  EXPECT_EQ(doc["network"]["parameters"], r.parameters);
  EXPECT_EQ(doc["network"]["precision"], "float32");
  EXPECT_EQ(doc["network"]["memory"]["estimate_bytes"], r.memory.estimate_bytes());
  EXPECT_EQ(doc["network"]["memory"]["report_bytes"], r.memory.report_bytes);
  ASSERT_EQ(doc["layers"].size(), r.layers.size());
  const Json& layer = doc["layers"][1];
  EXPECT_EQ(keys_of(layer),
            (std::vector<std::string>{"index", "kind", "width", "fan_in", "activation", "forward",
                                      "backward", "theory"}));
  EXPECT_EQ(layer["index"], 2);
  EXPECT_EQ(layer["kind"], "dense");
  EXPECT_EQ(layer["activation"], "relu");
  EXPECT_EQ(doc["layers"][2]["activation"], "linear");
  EXPECT_EQ(keys_of(layer["forward"]),
            (std::vector<std::string>{"preact", "act", "dead_units", "dead_fraction",
                                      "saturated_units", "nonfinite", "correlation"}));
  EXPECT_EQ(keys_of(layer["forward"]["act"]),
            (std::vector<std::string>{"mean", "std", "rms", "min", "max", "zero_fraction",
                                      "saturated_fraction", "nonfinite", "histogram"}));
  EXPECT_EQ(
      keys_of(layer["backward"]),
      (std::vector<std::string>{"grad_preact", "grad_weight", "grad_bias", "weight_norm",
                                "log10_weight_norm", "grad_weight_to_weight",
                                "log10_grad_weight_to_weight", "gain", "log10_gain", "nonfinite"}));
  EXPECT_EQ(keys_of(doc["summary"]),
            (std::vector<std::string>{"verdict", "log10_grad_ratio_first_to_last",
                                      "mean_log10_gain", "geometric_mean_gain", "dead_units",
                                      "saturated_units", "saturated_fraction", "nonfinite_layers",
                                      "first_nonfinite_layer", "first_nonfinite_pass",
                                      "backward_nonfinite_above", "theory_flagged_layers"}));
  EXPECT_TRUE(doc["summary"]["first_nonfinite_layer"].is_null());
  EXPECT_TRUE(doc["summary"]["first_nonfinite_pass"].is_null());
  // A parameter gradient's norm comes with the count of its non-finite entries.
  EXPECT_EQ(keys_of(layer["backward"]["grad_weight"]),
            (std::vector<std::string>{"norm", "log10_norm", "nonfinite"}));
  EXPECT_EQ(keys_of(doc["loss"]), (std::vector<std::string>{"name", "value"}));
  EXPECT_EQ(doc["loss"]["name"], "probe");
}

TEST(ReportJson, NumbersRoundTripExactly) {
  const Report r = small_report();
  const Json doc = Json::parse(report_to_json(r));
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const BackwardStats& b = r.layers[i].backward;
    const Json& j = doc["layers"][i]["backward"];
    EXPECT_EQ(j["grad_preact"]["rms"].get<double>(), b.grad_preact_rms.value);
    EXPECT_EQ(j["grad_preact"]["log10_rms"].get<double>(), b.grad_preact_rms.log10);
    EXPECT_EQ(j["gain"].get<double>(), b.gain.value);
    EXPECT_EQ(j["log10_grad_weight_to_weight"].get<double>(), b.grad_weight_to_weight.log10);
    EXPECT_EQ(doc["layers"][i]["forward"]["preact"]["rms"].get<double>(),
              r.layers[i].forward.preact.rms);
  }
  EXPECT_EQ(doc["summary"]["geometric_mean_gain"].get<double>(),
            std::pow(10.0, r.summary.mean_log10_gain));
}

TEST(ReportJson, NanAndInfBecomeNullWithStatus) {
  Report r = small_report();
  LayerReport& l = r.layers[1];
  l.backward.grad_preact_rms = magnitude_from_scaled(kNan, 0);
  l.backward.gain = magnitude_from_scaled(kInf, 0);
  l.backward.nonfinite = 17;
  l.forward.preact.mean = kInf;
  l.forward.preact.min = -kInf;
  l.forward.dead_fraction = kNan;
  r.summary.nonfinite_layers = {2, 3};
  r.summary.first_nonfinite_layer = 2;
  r.summary.nonfinite_in_forward = false;
  r.summary.log10_grad_ratio_first_to_last = kNan;
  r.summary.mean_log10_gain = kNan;
  const Json doc = Json::parse(report_to_json(r));
  const Json& j = doc["layers"][1];
  // A gradient whose entries are all NaN or infinite: no finite value, never a bare "nan".
  expect_null_with_status(j["backward"]["grad_preact"], "rms", "no_finite_values");
  expect_null_with_status(j["backward"]["grad_preact"], "log10_rms", "no_finite_values");
  expect_null_with_status(j["backward"], "gain", "inf");
  expect_null_with_status(j["backward"], "log10_gain", "inf");
  expect_null_with_status(j["forward"]["preact"], "mean", "inf");
  expect_null_with_status(j["forward"]["preact"], "min", "-inf");
  expect_null_with_status(j["forward"], "dead_fraction", "nan");
  expect_null_with_status(doc["summary"], "log10_grad_ratio_first_to_last", "nan");
  expect_null_with_status(doc["summary"], "geometric_mean_gain", "nan");
  EXPECT_EQ(doc["summary"]["first_nonfinite_layer"], 2);
  EXPECT_EQ(doc["summary"]["first_nonfinite_pass"], "backward");
  EXPECT_TRUE(doc["summary"]["backward_nonfinite_above"].is_null());
  EXPECT_EQ(doc["summary"]["nonfinite_layers"], Json::parse("[2, 3]"));
  EXPECT_EQ(join(validate_schema(load_schema(), doc)), "");
  std::vector<std::string> silent;
  check_no_silent_null(doc, "$", silent);
  EXPECT_EQ(join(silent), "");
}

TEST(ReportJson, BeyondDoubleRangeIsNullWithUnderflowOrOverflowAndExactLog10) {
  // A 2000-layer linear stack: each layer shrinks the gradient by 10^0.3, so layer 1 is 1e-600.
  std::vector<double> log10s;
  for (int l = 1; l <= 2000; ++l) log10s.push_back(-0.3 * (2000 - l) - 0.3);
  Report r = make_report("deep-linear", log10s, std::vector<int>(2000, 32), 0.0, false);
  r.layers[5].backward.grad_weight_norm = magnitude_from_log10(400.0);
  r.summary.mean_log10_gain = -400.0;
  const Json doc = Json::parse(report_to_json(r));
  const Json& first = doc["layers"][0]["backward"];
  expect_null_with_status(first["grad_preact"], "rms", "underflow");
  EXPECT_EQ(first["grad_preact"]["log10_rms"].get<double>(), log10s[0]);
  EXPECT_LT(first["grad_preact"]["log10_rms"].get<double>(), -599.0);
  expect_null_with_status(doc["layers"][5]["backward"]["grad_weight"], "norm", "overflow");
  EXPECT_EQ(doc["layers"][5]["backward"]["grad_weight"]["log10_norm"].get<double>(), 400.0);
  expect_null_with_status(doc["summary"], "geometric_mean_gain", "underflow");
  EXPECT_EQ(doc["summary"]["mean_log10_gain"].get<double>(), -400.0);
  // The last layers are representable and are plain numbers.
  EXPECT_TRUE(doc["layers"][1999]["backward"]["grad_preact"]["rms"].is_number());
  EXPECT_EQ(join(validate_schema(load_schema(), doc)), "");
  std::vector<std::string> silent;
  check_no_silent_null(doc, "$", silent);
  EXPECT_EQ(join(silent), "");
}

TEST(ReportJson, ExactZeroIsZeroWithLog10NullMinusInf) {
  Report r = small_report();
  r.layers[0].backward.grad_bias_norm = magnitude_from_scaled(0.0, 0);
  r.layers[0].backward.weight_norm = 0.0;
  const Json doc = Json::parse(report_to_json(r));
  const Json& b = doc["layers"][0]["backward"];
  EXPECT_EQ(b["grad_bias"]["norm"], 0.0);
  EXPECT_FALSE(b["grad_bias"].contains("norm_status"));
  expect_null_with_status(b["grad_bias"], "log10_norm", "-inf");
  EXPECT_EQ(b["weight_norm"], 0.0);
  expect_null_with_status(b, "log10_weight_norm", "-inf");
  EXPECT_EQ(join(validate_schema(load_schema(), doc)), "");
}

TEST(ReportJson, MomentsWithoutFiniteEntriesAreNullWithNoFiniteValues) {
  Report r = small_report();
  MomentStats& act = r.layers[2].forward.act;
  act.nonfinite = act.finite;
  act.finite = 0;
  const Json doc = Json::parse(report_to_json(r));
  const Json& j = doc["layers"][2]["forward"]["act"];
  for (const char* key : {"mean", "std", "rms", "min", "max"})
    expect_null_with_status(j, key, "no_finite_values");
  EXPECT_EQ(j["nonfinite"], act.nonfinite);
  EXPECT_EQ(join(validate_schema(load_schema(), doc)), "");
}

TEST(ReportJson, ActHistogramFollowsTheActKeysWithItsRangeAndCounts) {
  const Report r = small_report();
  const Json doc = Json::parse(report_to_json(r));
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const ForwardStats& f = r.layers[i].forward;
    const Json& act = doc["layers"][i]["forward"]["act"];
    EXPECT_EQ(key_after(act, "nonfinite"), "histogram");
    const Json& h = act["histogram"];
    EXPECT_EQ(keys_of(h), (std::vector<std::string>{"min", "max", "counts"}));
    EXPECT_EQ(h["min"].get<double>(), f.act.min);
    EXPECT_EQ(h["max"].get<double>(), f.act.max);
    EXPECT_EQ(h["counts"].size(), static_cast<std::size_t>(kActHistogramBins));
    EXPECT_EQ(h["counts"].get<std::vector<std::int64_t>>(), f.act_histogram);
  }
}

TEST(ReportJson, ActHistogramWithoutFiniteEntriesHasANullRangeWithStatusAndNoCounts) {
  Report r = small_report();
  ForwardStats& f = r.layers[1].forward;
  f.act.nonfinite = f.act.finite;
  f.act.finite = 0;
  f.act.min = kNan;
  f.act.max = kNan;
  f.act_histogram.clear();
  const Json doc = Json::parse(report_to_json(r));
  const Json& h = doc["layers"][1]["forward"]["act"]["histogram"];
  expect_null_with_status(h, "min", "no_finite_values");
  expect_null_with_status(h, "max", "no_finite_values");
  EXPECT_EQ(h["counts"], Json::array());
  EXPECT_EQ(join(validate_schema(load_schema(), doc)), "");
  std::vector<std::string> silent;
  check_no_silent_null(doc, "$", silent);
  EXPECT_EQ(join(silent), "");
}

TEST(ReportJson, SchemaRequiresTheActHistogramAndRejectsMalformedCounts) {
  const Json schema = load_schema();
  const Json& described = schema["$defs"]["act_stats"]["properties"]["histogram"];
  EXPECT_FALSE(described.value("description", std::string()).empty());
  Json doc = Json::parse(report_to_json(small_report()));
  Json& first = doc["layers"][0]["forward"]["act"]["histogram"];
  first["counts"][3] = -1;
  first["bins"] = kActHistogramBins;
  doc["layers"][1]["forward"]["act"]["histogram"]["counts"][0] = 1.5;
  doc["layers"][2]["forward"]["act"]["histogram"].erase("counts");
  std::string errors = join(validate_schema(schema, doc));
  for (const std::string& expected :
       {std::string("$.layers[0].forward.act.histogram.counts[3]: -1 is below the minimum 0"),
        std::string("$.layers[0].forward.act.histogram.bins: key not allowed"),
        std::string("$.layers[1].forward.act.histogram.counts[0]: expected type \"integer\""),
        std::string("$.layers[2].forward.act.histogram: missing required key 'counts'")}) {
    EXPECT_NE(errors.find(expected), std::string::npos) << expected << "\n" << errors;
  }
  Json missing = Json::parse(report_to_json(small_report()));
  missing["layers"][0]["forward"]["act"].erase("histogram");
  errors = join(validate_schema(schema, missing));
  EXPECT_NE(errors.find("$.layers[0].forward.act: missing required key 'histogram'"),
            std::string::npos)
      << errors;
}

TEST(ReportJson, OutputIsByteIdenticalAcrossCallsAndEndsWithNewline) {
  const Report r = small_report();
  const std::string a = report_to_json(r);
  const std::string b = report_to_json(r);
  EXPECT_EQ(a, b);
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a.back(), '\n');
  EXPECT_EQ(a.rfind("{\n  \"schema_version\": ", 0), 0u) << "indent 2, schema_version first";
}

TEST(ReportJson, SmallReportMatchesGoldenFile) {
  expect_matches_golden(report_to_json(small_report()), "report_small.json");
}

// ---------------------------------------------------------------- mixed architectures

const std::vector<std::string> kWeightKeys = {
    "grad_weight",           "grad_bias",
    "weight_norm",           "log10_weight_norm",
    "grad_weight_to_weight", "log10_grad_weight_to_weight"};

TEST(ReportJson, MixedReportValidatesAgainstTheSchemaWithAndWithoutOptimizer) {
  const Json schema = load_schema();
  for (const OptimizerKind opt :
       {OptimizerKind::kNone, OptimizerKind::kSgd, OptimizerKind::kAdam}) {
    const Json doc = Json::parse(report_to_json(mixed_report(opt)));
    EXPECT_EQ(join(validate_schema(schema, doc)), "") << optimizer_name(opt);
    std::vector<std::string> silent;
    check_no_silent_null(doc, "$", silent);
    EXPECT_EQ(join(silent), "") << optimizer_name(opt);
  }
}

TEST(ReportJson, EachLayerNamesItsKindAfterTheIndexWithItsOwnKeys) {
  const Report r = mixed_report(OptimizerKind::kAdam);
  const Json doc = Json::parse(report_to_json(r));
  ASSERT_EQ(doc["layers"].size(), r.layers.size());
  // Per kind, the key that describes the op, and those that must not appear.
  const std::vector<std::string> per_kind = {"activation", "norm", "dropout", "residual"};
  const std::map<std::string, std::string> own = {{"dense", "activation"},
                                                  {"activation", "activation"},
                                                  {"norm", "norm"},
                                                  {"dropout", "dropout"},
                                                  {"residual", "residual"}};
  std::vector<std::string> kinds;
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const Json& j = doc["layers"][i];
    EXPECT_EQ(j["index"], r.layers[i].index);
    EXPECT_EQ(key_after(j, "index"), "kind") << i;
    const std::string kind = j["kind"].get<std::string>();
    kinds.push_back(kind);
    ASSERT_TRUE(own.count(kind)) << kind;
    for (const std::string& key : per_kind) {
      EXPECT_EQ(j.contains(key), key == own.at(kind))
          << "layer " << i << " (" << kind << "): " << key;
    }
  }
  EXPECT_EQ(kinds,
            (std::vector<std::string>{"dense", "norm", "dense", "activation", "dropout", "residual",
                                      "dense", "dense", "residual", "norm", "dense"}));
  const Json& layers = doc["layers"];
  EXPECT_EQ(layers[0]["activation"], "relu");
  EXPECT_EQ(layers[3]["activation"], "gelu");
  EXPECT_EQ(layers[1]["norm"], Json::parse(R"({"name": "layer_norm", "eps": 1e-05})"));
  EXPECT_EQ(layers[9]["norm"]["name"], "rms_norm");
  EXPECT_EQ(layers[4]["dropout"], 0.1);
  EXPECT_EQ(layers[5]["residual"], Json::parse(R"({"scale": 0.5, "projection": false})"));
  EXPECT_EQ(layers[8]["residual"], Json::parse(R"({"scale": 1.0, "projection": true})"));
  // Indices skip the residual begins, which take a position but are not reported.
  EXPECT_EQ(layers[2]["index"], 4);
  EXPECT_EQ(layers[7]["index"], 10);
}

TEST(ReportJson, WeightKeysAreAbsentExactlyWhereTheOpHasNoWeights) {
  const Report r = mixed_report(OptimizerKind::kNone);
  const Json doc = Json::parse(report_to_json(r));
  int without = 0;
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const Json& b = doc["layers"][i]["backward"];
    const bool has = r.layers[i].backward.has_weights;
    without += has ? 0 : 1;
    for (const std::string& key : kWeightKeys) {
      EXPECT_EQ(b.contains(key), has) << "layer " << i << ": " << key;
      EXPECT_FALSE(!has && b.contains(key + "_status")) << "layer " << i << ": " << key;
    }
    EXPECT_TRUE(b.contains("grad_preact") && b.contains("gain") && b.contains("nonfinite")) << i;
  }
  EXPECT_EQ(without, 4) << "activation, dropout and two residual ends";
  // A norm's weights are gamma and beta: rms_norm's beta gradient is an exact 0.
  const Json& rms = doc["layers"][9]["backward"];
  EXPECT_EQ(rms["weight_norm"].get<double>(), std::sqrt(64.0));
  EXPECT_EQ(rms["grad_bias"]["norm"], 0.0);
  expect_null_with_status(rms["grad_bias"], "log10_norm", "-inf");
}

TEST(ReportJson, UpdateIsPresentExactlyWhereTheOpHasOne) {
  for (const OptimizerKind opt :
       {OptimizerKind::kNone, OptimizerKind::kSgd, OptimizerKind::kAdam}) {
    const Report r = mixed_report(opt);
    const Json doc = Json::parse(report_to_json(r));
    int with = 0;
    for (std::size_t i = 0; i < r.layers.size(); ++i) {
      const BackwardStats& b = r.layers[i].backward;
      const Json& j = doc["layers"][i]["backward"];
      ASSERT_EQ(j.contains("update"), b.has_update) << optimizer_name(opt) << " layer " << i;
      if (!b.has_update) continue;
      ++with;
      EXPECT_EQ(keys_of(j["update"]), (std::vector<std::string>{"ratio", "log10_ratio"}));
      EXPECT_EQ(j["update"]["ratio"].get<double>(), b.update_to_weight.value);
      EXPECT_EQ(j["update"]["log10_ratio"].get<double>(), b.update_to_weight.log10);
      EXPECT_EQ(key_after(j, "update"), "gain");
    }
    // The optimizer step is reported for the five dense layers only (not for the norms' gamma).
    EXPECT_EQ(with, opt == OptimizerKind::kNone ? 0 : 5) << optimizer_name(opt);
  }
}

TEST(ReportJson, LossFollowsOutputGradWithNameAndValue) {
  Report r = mixed_report(OptimizerKind::kAdam);
  Json doc = Json::parse(report_to_json(r));
  EXPECT_EQ(key_after(doc, "output_grad"), "loss");
  EXPECT_EQ(doc["loss"]["name"], "mse");
  EXPECT_EQ(doc["loss"]["value"].get<double>(), r.loss);
  r.loss = kNan;
  doc = Json::parse(report_to_json(r));
  expect_null_with_status(doc["loss"], "value", "nan");
  EXPECT_EQ(join(validate_schema(load_schema(), doc)), "");
}

TEST(ReportJson, NetworkDepthCountsDenseLayersOnly) {
  const Report r = mixed_report(OptimizerKind::kNone);
  const Json doc = Json::parse(report_to_json(r));
  EXPECT_EQ(doc["network"]["depth"], 5);
  EXPECT_EQ(doc["layers"].size(), 11u);
}

// ---------------------------------------------------------------- mean-field theory

const std::vector<std::string> kForwardTheoryKeys = {"q", "act_second_moment", "correlation",
                                                     "log_q_deviation", "log_q_spread"};
const std::vector<std::string> kBackwardTheoryKeys = {"chi", "log10_grad_rel_last",
                                                      "measured_log10_grad_rel_last",
                                                      "log10_grad_deviation", "log10_grad_spread"};

// Whether `obj` has `key` or its status.
bool has_key_or_status(const Json& obj, const std::string& key) {
  return obj.contains(key) || obj.contains(key + "_status");
}

TEST(ReportJson, MeasuredCorrelationFollowsTheForwardNonfiniteCount) {
  Report r = small_report();
  const Json doc = Json::parse(report_to_json(r));
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const Json& f = doc["layers"][i]["forward"];
    EXPECT_EQ(key_after(f, "nonfinite"), "correlation") << i;
    EXPECT_EQ(f["correlation"].get<double>(), r.layers[i].forward.correlation) << i;
  }
  r.layers[0].forward.correlation = kNan;  // fewer than 2 examples, or a zero output vector
  expect_null_with_status(Json::parse(report_to_json(r))["layers"][0]["forward"], "correlation",
                          "nan");
}

TEST(ReportJson, TheoryFollowsBackwardWithEveryKeyInOrderWhenBothDirectionsArePredicted) {
  const Report r = small_report();
  const Json doc = Json::parse(report_to_json(r));
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const LayerTheory& t = r.layers[i].theory;
    ASSERT_TRUE(t.forward && t.backward) << i;
    const Json& layer = doc["layers"][i];
    EXPECT_EQ(key_after(layer, "backward"), "theory") << i;
    const Json& j = layer["theory"];
    std::vector<std::string> expected = {"forward", "backward"};
    expected.insert(expected.end(), kForwardTheoryKeys.begin(), kForwardTheoryKeys.end());
    expected.insert(expected.end(), kBackwardTheoryKeys.begin(), kBackwardTheoryKeys.end());
    expected.push_back("flagged");
    EXPECT_EQ(keys_of(j), expected) << "no reason when everything is predicted";
    EXPECT_EQ(j["forward"], true);
    EXPECT_EQ(j["backward"], true);
    EXPECT_EQ(j["flagged"], t.flagged);
    // Each key is the LayerTheory field of its name; chi is grad_factor.
    const std::map<std::string, double> fields = {
        {"q", t.q},
        {"act_second_moment", t.act_second_moment},
        {"correlation", t.correlation},
        {"log_q_deviation", t.log_q_deviation},
        {"log_q_spread", t.log_q_spread},
        {"chi", t.grad_factor},
        {"log10_grad_rel_last", t.log10_grad_rel_last},
        {"measured_log10_grad_rel_last", t.measured_log10_grad_rel_last},
        {"log10_grad_deviation", t.log10_grad_deviation},
        {"log10_grad_spread", t.log10_grad_spread}};
    for (const auto& [key, value] : fields) EXPECT_EQ(j[key].get<double>(), value) << i << key;
  }
}

TEST(ReportJson, UnpredictedDirectionsHaveNoKeysAndSayWhy) {
  // Forward predicted, backward not (mixed layers 1 and 2); neither (the softmax output).
  for (const Report& r : {mixed_report(OptimizerKind::kNone), softmax_output_report()}) {
    const Json doc = Json::parse(report_to_json(r));
    int without = 0;
    for (std::size_t i = 0; i < r.layers.size(); ++i) {
      const LayerTheory& t = r.layers[i].theory;
      const Json& j = doc["layers"][i]["theory"];
      EXPECT_EQ(j["forward"], t.forward) << r.spec.name << " " << i;
      EXPECT_EQ(j["backward"], t.backward) << r.spec.name << " " << i;
      for (const std::string& key : kForwardTheoryKeys) {
        EXPECT_EQ(has_key_or_status(j, key), t.forward) << r.spec.name << " " << i << " " << key;
      }
      for (const std::string& key : kBackwardTheoryKeys) {
        EXPECT_EQ(has_key_or_status(j, key), t.backward) << r.spec.name << " " << i << " " << key;
      }
      if (t.forward && t.backward) {
        EXPECT_FALSE(j.contains("reason")) << r.spec.name << " " << i;
        continue;
      }
      ++without;
      ASSERT_TRUE(j.contains("reason")) << r.spec.name << " " << i;
      EXPECT_EQ(key_after(j, "backward"), "reason");
      EXPECT_EQ(j["reason"].get<std::string>().rfind("no prediction: ", 0), 0u) << j["reason"];
      EXPECT_EQ(j["reason"], t.reason);
    }
    EXPECT_EQ(without, r.spec.name == "mixed" ? 2 : 3) << r.spec.name;
    EXPECT_EQ(join(validate_schema(load_schema(), doc)), "") << r.spec.name;
  }
}

TEST(ReportJson, FlaggedLayersAreListedInTheSummaryAfterTheNonFiniteKeys) {
  const Report r = mixed_report(OptimizerKind::kNone);
  const Json doc = Json::parse(report_to_json(r));
  EXPECT_EQ(key_after(doc["summary"], "backward_nonfinite_above"), "theory_flagged_layers");
  EXPECT_EQ(doc["summary"]["theory_flagged_layers"], Json::parse("[8]"));
  // The list is the layers whose own flag is set.
  Json flagged = Json::array();
  for (const Json& layer : doc["layers"]) {
    if (layer["theory"]["flagged"].get<bool>()) flagged.push_back(layer["index"]);
  }
  EXPECT_EQ(flagged, doc["summary"]["theory_flagged_layers"]);
  // The summary list is written as the engine gives it, not recomputed.
  Report none = small_report();
  none.summary.theory_flagged_layers = {};
  EXPECT_EQ(Json::parse(report_to_json(none))["summary"]["theory_flagged_layers"], Json::array());
}

TEST(ReportJson, TheoryNumbersThatAreNotRepresentableAreNullWithStatus) {
  Report r = mixed_report(OptimizerKind::kNone);
  LayerTheory& t = r.layers[4].theory;
  t.grad_factor = kNan;       // the layer above has no prediction
  t.log_q_deviation = -kInf;  // a measured q of exactly 0
  t.q = kInf;
  t.log10_grad_deviation = kNan;
  const Json doc = Json::parse(report_to_json(r));
  const Json& j = doc["layers"][4]["theory"];
  expect_null_with_status(j, "chi", "nan");
  expect_null_with_status(j, "log_q_deviation", "-inf");
  expect_null_with_status(j, "q", "inf");
  expect_null_with_status(j, "log10_grad_deviation", "nan");
  EXPECT_EQ(join(validate_schema(load_schema(), doc)), "");
  std::vector<std::string> silent;
  check_no_silent_null(doc, "$", silent);
  EXPECT_EQ(join(silent), "");
}

TEST(ReportJson, SchemaDescribesEveryTheoryKeyAndTheMeasuredCorrelation) {
  const Json schema = load_schema();
  const Json& theory = schema["$defs"]["theory"]["properties"];
  std::vector<std::string> keys = {"forward", "backward", "reason", "flagged"};
  keys.insert(keys.end(), kForwardTheoryKeys.begin(), kForwardTheoryKeys.end());
  keys.insert(keys.end(), kBackwardTheoryKeys.begin(), kBackwardTheoryKeys.end());
  for (const std::string& key : keys) {
    ASSERT_TRUE(theory.contains(key)) << key;
    EXPECT_FALSE(theory[key].value("description", std::string()).empty()) << key;
  }
  const Json& forward = schema["$defs"]["forward"]["properties"];
  ASSERT_TRUE(forward.contains("correlation"));
  EXPECT_FALSE(forward["correlation"].value("description", std::string()).empty());
  EXPECT_EQ(schema["properties"]["schema_version"]["const"], kSchemaVersion);
}

TEST(ReportJson, MixedReportMatchesGoldenFile) {
  expect_matches_golden(report_to_json(mixed_report(OptimizerKind::kAdam)), "report_mixed.json");
}

// ---------------------------------------------------------------- the diagnosis

std::vector<std::string> strings_of(const Json& array) {
  std::vector<std::string> out;
  for (const Json& v : array) out.push_back(v.get<std::string>());
  return out;
}

TEST(ReportJson, DiagnosedReportValidatesAgainstTheSchemaWithoutSilentNulls) {
  const Json doc = Json::parse(report_to_json(diagnosed_report()));
  EXPECT_EQ(join(validate_schema(load_schema(), doc)), "");
  std::vector<std::string> silent;
  check_no_silent_null(doc, "$", silent);
  EXPECT_EQ(join(silent), "");
}

TEST(ReportJson, VerdictIsTheSummarysFirstKeyAndFollowsTheReport) {
  EXPECT_EQ(Json::parse(report_to_json(small_report()))["summary"]["verdict"], "healthy");
  Report r = diagnosed_report();
  Json doc = Json::parse(report_to_json(r));
  EXPECT_EQ(keys_of(doc["summary"]).front(), "verdict");
  EXPECT_EQ(doc["summary"]["verdict"], "warning");
  // Written as the diagnosis decided it, not recomputed from the findings.
  r.verdict = Verdict::kError;
  doc = Json::parse(report_to_json(r));
  EXPECT_EQ(doc["summary"]["verdict"], "error");
  EXPECT_EQ(join(validate_schema(load_schema(), doc)), "");
}

TEST(ReportJson, FindingsFollowTheSummaryWithEveryKeyInOrder) {
  const Report r = diagnosed_report();
  const Json doc = Json::parse(report_to_json(r));
  EXPECT_EQ(key_after(doc, "summary"), "findings");
  const Json& findings = doc["findings"];
  ASSERT_EQ(findings.size(), r.findings.size());
  for (std::size_t i = 0; i < r.findings.size(); ++i) {
    const Finding& f = r.findings[i];
    const Json& j = findings[i];
    EXPECT_EQ(keys_of(j),
              (std::vector<std::string>{"code", "severity", "layer", "cause", "consequences",
                                        "evidence", "explanation", "advice", "rejected_advice"}));
    EXPECT_EQ(j["code"], f.code);
    EXPECT_EQ(j["severity"], std::string(severity_name(f.severity)));
    EXPECT_EQ(j["layer"], f.layer);
    EXPECT_EQ(j["explanation"], f.explanation);
    ASSERT_EQ(j["evidence"].size(), f.evidence.size());
    for (std::size_t e = 0; e < f.evidence.size(); ++e) {
      const Json& ev = j["evidence"][e];
      EXPECT_EQ(ev["quantity"], f.evidence[e].quantity);
      EXPECT_EQ(ev["value"].get<double>(), f.evidence[e].value);
      EXPECT_EQ(ev["relation"], f.evidence[e].relation);
      EXPECT_EQ(ev["layer"], f.evidence[e].layer);
    }
    ASSERT_EQ(j["advice"].size(), f.advice.size());
    ASSERT_EQ(j["rejected_advice"].size(), f.rejected_advice.size());
  }
  EXPECT_EQ(keys_of(findings[0]["evidence"][0]),
            (std::vector<std::string>{"quantity", "value", "relation", "threshold", "layer"}));
  EXPECT_EQ(findings[0]["evidence"][0]["threshold"].get<double>(),
            r.findings[0].evidence[0].threshold);
  // A checked advice carries its check; an unchecked one has no "check" key at all.
  const Json& checked = findings[0]["advice"][0];
  EXPECT_EQ(keys_of(checked), (std::vector<std::string>{"text", "addresses", "changes", "check"}));
  EXPECT_EQ(keys_of(checked["check"]),
            (std::vector<std::string>{"metric", "before", "after", "helped", "verdict_after",
                                      "findings_after"}));
  const AdviceCheck& c = *r.findings[0].advice[0].check;
  EXPECT_EQ(checked["check"]["metric"], c.metric);
  EXPECT_EQ(checked["check"]["before"].get<double>(), c.before);
  EXPECT_EQ(checked["check"]["after"].get<double>(), c.after);
  EXPECT_EQ(checked["check"]["helped"], true);
  EXPECT_EQ(checked["check"]["verdict_after"], "healthy");
  EXPECT_EQ(strings_of(checked["check"]["findings_after"]), c.findings_after);
  const Json& rejected = findings[0]["rejected_advice"][0];
  EXPECT_EQ(rejected["check"]["helped"], false);
  EXPECT_EQ(rejected["check"]["verdict_after"], "warning");
  // findings[1] is the root's consequence: no advice of its own.
  EXPECT_EQ(findings[1]["cause"], "vanishing_gradients");
  EXPECT_EQ(findings[1]["advice"], Json::array());
  EXPECT_EQ(findings[0]["consequences"], Json::parse(R"(["fp16_gradient_underflow"])"));
  EXPECT_EQ(keys_of(findings[2]["advice"][0]),
            (std::vector<std::string>{"text", "addresses", "changes"}));
  EXPECT_EQ(findings[3]["advice"], Json::array());
}

TEST(ReportJson, ConfigChangeValueIsTheJsonTextAsAString) {
  Report r = diagnosed_report();
  r.findings[2].advice[0].changes = {
      {"stack.activation", "\"leaky_relu\""}, {"stack.init.gain", "0.5"}, {"output", "null"}};
  const Json changes = Json::parse(report_to_json(r))["findings"][2]["advice"][0]["changes"];
  EXPECT_EQ(changes, Json::parse(R"([{"path": "stack.activation", "value": "\"leaky_relu\""},
                                     {"path": "stack.init.gain", "value": "0.5"},
                                     {"path": "output", "value": "null"}])"));
}

TEST(ReportJson, ContextEvidenceThresholdIsNullWithStatus) {
  const Json doc = Json::parse(report_to_json(diagnosed_report()));
  // The fixture's second evidence of the first finding is context: its threshold is NaN.
  const Json& context = doc["findings"][0]["evidence"][1];
  expect_null_with_status(context, "threshold", "nan");
  EXPECT_EQ(key_after(context, "threshold_status"), "layer");
  EXPECT_EQ(context["relation"], "");
}

TEST(ReportJson, FindingNumbersThatAreNotRepresentableAreNullWithStatus) {
  Report r = diagnosed_report();
  r.findings[0].evidence[0].value = -kInf;  // a gradient that is exactly 0 at the first layer
  r.findings[1].evidence[0].value = kNan;
  r.findings[0].advice[0].check->after = kNan;  // the re-run produced NaN
  r.findings[0].rejected_advice[0].check->before = kInf;
  const Json doc = Json::parse(report_to_json(r));
  const Json& f = doc["findings"];
  expect_null_with_status(f[0]["evidence"][0], "value", "-inf");
  expect_null_with_status(f[1]["evidence"][0], "value", "nan");
  expect_null_with_status(f[0]["advice"][0]["check"], "after", "nan");
  expect_null_with_status(f[0]["rejected_advice"][0]["check"], "before", "inf");
  EXPECT_EQ(join(validate_schema(load_schema(), doc)), "");
  std::vector<std::string> silent;
  check_no_silent_null(doc, "$", silent);
  EXPECT_EQ(join(silent), "");
}

TEST(ReportJson, SchemaNamesTheRegistrysFindingCodesSeveritiesAndVerdicts) {
  const Json schema = load_schema();
  std::vector<std::string> codes;
  for (const std::string_view name : finding_names()) codes.emplace_back(name);
  EXPECT_EQ(strings_of(schema["$defs"]["finding"]["properties"]["code"]["enum"]), codes);
  std::vector<std::string> severities;
  for (const Severity s : {Severity::kInfo, Severity::kWarning, Severity::kError})
    severities.emplace_back(severity_name(s));
  EXPECT_EQ(strings_of(schema["$defs"]["severity"]["enum"]), severities);
  std::vector<std::string> verdicts;
  for (const Verdict v : {Verdict::kHealthy, Verdict::kWarning, Verdict::kError})
    verdicts.emplace_back(verdict_name(v));
  EXPECT_EQ(strings_of(schema["$defs"]["verdict"]["enum"]), verdicts);
}

TEST(ReportJson, SchemaRejectsMalformedFindings) {
  const Json schema = load_schema();
  Json doc = Json::parse(report_to_json(diagnosed_report()));
  doc["findings"][0]["code"] = "vanishing_gradient";
  doc["findings"][1]["severity"] = "fatal";
  doc["findings"][1]["evidence"][0].erase("threshold");
  doc["findings"][2]["layer"] = -1;
  doc["findings"][0]["advice"][0]["changes"][0]["value"] = 1;
  doc["findings"][0]["advice"][0]["check"]["extra"] = true;
  doc["summary"]["verdict"] = "ok";
  const std::string errors = join(validate_schema(schema, doc));
  for (const std::string& expected :
       {std::string("$.findings[0].code: \"vanishing_gradient\" is not one of"),
        std::string("$.findings[1].severity: \"fatal\" is not one of"),
        std::string("$.findings[1].evidence[0]: missing required key 'threshold'"),
        std::string("$.findings[2].layer: -1 is below the minimum 0"),
        std::string("$.findings[0].advice[0].changes[0].value: expected type \"string\""),
        std::string("$.findings[0].advice[0].check.extra: key not allowed"),
        std::string("$.summary.verdict: \"ok\" is not one of")}) {
    EXPECT_NE(errors.find(expected), std::string::npos) << expected << "\n" << errors;
  }
  Json missing = Json::parse(report_to_json(small_report()));
  missing.erase("findings");
  EXPECT_NE(join(validate_schema(schema, missing)).find("$: missing required key 'findings'"),
            std::string::npos);
}

TEST(ReportJson, DiagnosedReportMatchesGoldenFile) {
  expect_matches_golden(report_to_json(diagnosed_report()), "report_diagnosed.json");
}

}  // namespace
}  // namespace gradscope
