// Tests of report_from_json: every committed run report and golden reads back into a Report that
// writes the same bytes, as do runs with NaN and inf values and every optional section; a real
// run's structs come back as measured; and errors name the file and the JSON path.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/core/report.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/io/report_json.hpp"
#include "gradscope/version.hpp"
#include "report_fixtures.hpp"
#include "support/paths.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The JSON run reports committed under `folder`: sweep summaries and manifests, comparisons and
// theory documents are left out by what they say they are.
std::vector<fs::path> run_reports_in(const fs::path& folder) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::recursive_directory_iterator(folder)) {
    if (entry.path().extension() != ".json") continue;
    const nlohmann::json doc = nlohmann::json::parse(read_file(entry.path()), nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || doc.contains("kind") ||
        doc.contains("comparison_version") || doc.contains("sweep") || !doc.contains("layers") ||
        !doc.contains("schema_version")) {
      continue;
    }
    out.push_back(entry.path());
  }
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

void expect_round_trip(const std::string& json, const std::string& source) {
  EXPECT_EQ(report_to_json(report_from_json(json, source)), json) << source;
}

TEST(ReportFromJson, EveryCommittedRunReportWritesBackByteForByte) {
  std::vector<fs::path> files = run_reports_in(fs::path(GRADSCOPE_SOURCE_DIR) / "reports");
  const std::vector<fs::path> golden =
      run_reports_in(fs::path(GRADSCOPE_SOURCE_DIR) / "tests" / "golden");
  files.insert(files.end(), golden.begin(), golden.end());
  // reports/ has a dozen runs and tests/golden/ three hand-built reports: a glob gone wrong would
  // check nothing.
  ASSERT_GE(files.size(), 15u);
  for (const fs::path& file : files) expect_round_trip(read_file(file), file.string());
}

TEST(ReportFromJson, TheWritersFixturesWriteBackByteForByte) {
  expect_round_trip(report_to_json(testing::small_report()), "small.json");
  expect_round_trip(report_to_json(testing::mixed_report(OptimizerKind::kAdam)), "mixed.json");
  expect_round_trip(report_to_json(testing::diagnosed_report()), "diagnosed.json");
  // External sources, which no committed report has.
  Report r = testing::diagnosed_report();
  r.sources =
      ExternalSources{"model.safetensors",
                      {{"fc1.weight", 1, "weight", {32, 16}}, {"fc1.bias", 1, "bias", {32}}},
                      {"head.weight: no layer of that shape"},
                      "input.npy",
                      ""};
  expect_round_trip(report_to_json(r), "sources.json");
}

// A float32 linear stack at a gain of 50 per layer overflows within 25 layers: inf, then NaN
// (inf - inf), then no finite value at all, forward and backward.
Report exploding_run() {
  const RunSpec spec = parse_run_spec(R"({
    "name": "exploding", "seed": 3, "precision": "float32",
    "input": {"width": 16, "batch": 8},
    "stack": {"depth": 40, "width": 16, "activation": "linear",
              "init": {"name": "xavier_normal", "gain": 50}},
    "optimizer": "sgd",
    "stats": {"jacobian_examples": 2}
  })",
                                      "exploding.json", "exploding");
  return run_diagnostic(spec);
}

TEST(ReportFromJson, AnExplodingRunWithNanAndInfWritesBackByteForByte) {
  const Report run = exploding_run();
  ASSERT_GT(run.summary.first_nonfinite_layer, 0);
  const std::string json = report_to_json(run);
  // The run has what the statuses stand for: the test is not vacuous.
  EXPECT_TRUE(contains(json, "_status\": \"no_finite_values\""))
      << "no layer without finite values";
  expect_round_trip(json, "exploding.json");

  // Non-finite values come back as what they were.
  const Report back = report_from_json(json, "exploding.json");
  ASSERT_EQ(back.layers.size(), run.layers.size());
  for (std::size_t i = 0; i < run.layers.size(); ++i) {
    const LayerReport& a = run.layers[i];
    const LayerReport& b = back.layers[i];
    EXPECT_EQ(std::isnan(a.forward.act.rms), std::isnan(b.forward.act.rms)) << i;
    EXPECT_EQ(std::isinf(a.forward.act.max), std::isinf(b.forward.act.max)) << i;
    EXPECT_EQ(std::isnan(a.backward.grad_preact_rms.log10),
              std::isnan(b.backward.grad_preact_rms.log10))
        << i;
  }
  EXPECT_EQ(back.summary.nonfinite_layers, run.summary.nonfinite_layers);
  EXPECT_EQ(back.summary.first_nonfinite_layer, run.summary.first_nonfinite_layer);
  EXPECT_EQ(back.summary.nonfinite_in_forward, run.summary.nonfinite_in_forward);
}

// A run whose layers' settings live in the config section only: an activation's parameter, inits
// with parameters, a bias init, residual blocks with a projection, norms and dropout.
TEST(ReportFromJson, LayerSettingsComeBackFromTheConfigAsTheRunTookThem) {
  const RunSpec spec = parse_run_spec(R"({
    "name": "settings", "seed": 5, "input": {"width": 12, "batch": 16},
    "layers": [
      {"width": 16, "activation": {"name": "leaky_relu", "slope": 0.2},
       "init": {"name": "he_normal", "gain": 1.3}, "bias_init": {"name": "constant", "value": 0.1}},
      {"repeat": 2, "residual": {"scale": 0.5, "projection": true},
       "block": [{"norm": "rms_norm"}, {"width": 24, "activation": "tanh"}, {"dropout": 0.25}]},
      {"width": 8, "activation": "linear", "init": "xavier_normal"}
    ]
  })",
                                      "settings.json", "settings");
  const Report run = run_diagnostic(spec);
  const Report back = report_from_json(report_to_json(run), "settings.json");
  ASSERT_EQ(back.layers.size(), run.layers.size());
  bool projected = false;
  for (std::size_t i = 0; i < run.layers.size(); ++i) {
    const LayerReport& a = run.layers[i];
    const LayerReport& b = back.layers[i];
    EXPECT_EQ(b.activation.kind, a.activation.kind) << i;
    EXPECT_EQ(b.activation.param, a.activation.param) << i;
    EXPECT_EQ(b.init.kind, a.init.kind) << i;
    EXPECT_EQ(b.init.gain, a.init.gain) << i;
    EXPECT_EQ(b.bias.kind, a.bias.kind) << i;
    EXPECT_EQ(b.bias.value, a.bias.value) << i;
    EXPECT_EQ(b.norm.kind, a.norm.kind) << i;
    EXPECT_EQ(b.dropout, a.dropout) << i;
    EXPECT_EQ(b.residual.scale, a.residual.scale) << i;
    EXPECT_EQ(b.residual.projection, a.residual.projection) << i;
    EXPECT_EQ(b.residual.projection_init.kind, a.residual.projection_init.kind) << i;
    projected = projected || a.residual.projection;
  }
  EXPECT_TRUE(projected) << "the block changes the width: its residual needs a projection";
  EXPECT_EQ(back.layers.front().activation.param, 0.2);
  EXPECT_EQ(back.layers.front().init.gain, 1.3);
}

// What the JSON does not carry is derived as report_json.hpp says: for a real run, the finite
// counts come back as measured, and the config as resolved.
TEST(ReportFromJson, ARealRunComesBackWithItsMeasuredCountsAndConfig) {
  for (const Report& run :
       {exploding_run(), run_diagnostic(testing::uniform_stack(
                             Activation::kTanh, Init::kXavierNormal, 6, 24, 32, 5))}) {
    const Report back = report_from_json(report_to_json(run), "run.json");
    EXPECT_EQ(run_spec_to_json(back.spec), run_spec_to_json(run.spec));
    EXPECT_EQ(back.input.finite, run.input.finite);
    ASSERT_EQ(back.layers.size(), run.layers.size());
    for (std::size_t i = 0; i < run.layers.size(); ++i) {
      EXPECT_EQ(back.layers[i].kind, run.layers[i].kind) << i;
      EXPECT_EQ(back.layers[i].activation.kind, run.layers[i].activation.kind) << i;
      EXPECT_EQ(back.layers[i].forward.preact.finite, run.layers[i].forward.preact.finite) << i;
      EXPECT_EQ(back.layers[i].forward.act.finite, run.layers[i].forward.act.finite) << i;
      EXPECT_EQ(back.layers[i].forward.act_histogram, run.layers[i].forward.act_histogram) << i;
      EXPECT_EQ(back.layers[i].backward.has_update, run.layers[i].backward.has_update) << i;
    }
    EXPECT_EQ(back.verdict, run.verdict);
    ASSERT_EQ(back.findings.size(), run.findings.size());
    for (std::size_t i = 0; i < run.findings.size(); ++i) {
      EXPECT_EQ(back.findings[i].code, run.findings[i].code);
      EXPECT_EQ(back.findings[i].cause, run.findings[i].cause);
    }
    EXPECT_EQ(back.remedy.has_value(), run.remedy.has_value());
    EXPECT_EQ(back.jacobian.has_value(), run.jacobian.has_value());
  }
}

// ---------------------------------------------------------------- errors

Error read_error(const std::string& text, const std::string& source = "dir/r.json") {
  try {
    report_from_json(text, source);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no Error thrown";
  return Error("");
}

std::string good_report() { return report_to_json(testing::small_report()); }

TEST(ReportFromJsonErrors, TextThatIsNotJsonNamesTheFileLineAndColumn) {
  const Error e = read_error("{\n  \"schema_version\": 6,\n  oops\n}");
  EXPECT_TRUE(contains(e.what(), "dir/r.json:3:3: not JSON")) << e.what();
  EXPECT_EQ(e.code(), ExitCode::kUsage);
  EXPECT_EQ(e.hint(), kReportFileHint);
  EXPECT_TRUE(contains(read_error("").what(), "dir/r.json:1:1: not JSON"));
}

TEST(ReportFromJsonErrors, AnotherSchemaVersionNamesBothVersions) {
  std::string old = good_report();
  const std::string key = "\"schema_version\": " + std::to_string(kSchemaVersion);
  ASSERT_NE(old.find(key), std::string::npos);
  old.replace(old.find(key), key.size(), "\"schema_version\": 2");
  const Error e = read_error(old);
  EXPECT_TRUE(contains(e.what(), "dir/r.json: schema_version: 2, but this gradscope reads " +
                                     std::to_string(kSchemaVersion)))
      << e.what();
  EXPECT_TRUE(contains(e.hint(), "`gradscope run CONFIG --out DIR`")) << e.hint();
}

TEST(ReportFromJsonErrors, JsonThatIsNotAReportSaysSoAndHowToWriteOne) {
  for (const std::string& text : {std::string("[1, 2]"), std::string("{}"),
                                  std::string(R"({"schema_version": 6, "tool": {}})")}) {
    const Error e = read_error(text);
    EXPECT_TRUE(contains(e.what(), "dir/r.json: not a gradscope report")) << e.what();
    EXPECT_EQ(e.hint(), kReportFileHint);
  }
  const Error config = read_error(R"({"name": "deep", "stack": {"depth": 3}})", "c/deep.json");
  EXPECT_TRUE(contains(config.hint(),
                       "`gradscope run c/deep.json --out reports` writes "
                       "reports/deep.json"))
      << config.hint();
}

TEST(ReportFromJsonErrors, AMissingOrMistypedValueNamesItsJsonPath) {
  nlohmann::ordered_json doc = nlohmann::ordered_json::parse(good_report());
  doc["layers"][1]["forward"].erase("dead_fraction");
  EXPECT_TRUE(contains(read_error(doc.dump(2)).what(),
                       "dir/r.json: layers[1].forward.dead_fraction: missing"));

  doc = nlohmann::ordered_json::parse(good_report());
  doc["network"]["parameters"] = "many";
  EXPECT_TRUE(contains(read_error(doc.dump(2)).what(),
                       "dir/r.json: network.parameters: expected an integer, got a string"));

  doc = nlohmann::ordered_json::parse(good_report());
  doc["summary"]["verdict"] = "fine";
  EXPECT_TRUE(contains(read_error(doc.dump(2)).what(),
                       "dir/r.json: summary.verdict: \"fine\" is not one of healthy, warning, "
                       "error"));

  // A null must say why: without its status it is not a report's.
  doc = nlohmann::ordered_json::parse(good_report());
  doc["layers"][0]["backward"]["gain"] = nullptr;
  EXPECT_TRUE(contains(read_error(doc.dump(2)).what(),
                       "dir/r.json: layers[0].backward.gain: null without a gain_status"));

  // The config section is read as a config, and its errors say so.
  doc = nlohmann::ordered_json::parse(good_report());
  doc["config"]["stack"]["depth"] = -3;
  EXPECT_TRUE(contains(read_error(doc.dump(2)).what(), "dir/r.json: config: stack.depth"))
      << read_error(doc.dump(2)).what();
}

}  // namespace
}  // namespace gradscope
