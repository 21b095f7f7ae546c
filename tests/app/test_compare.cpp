// Tests of `gradscope compare` (library part): a report against itself is no change, real report
// pairs (xavier vs he, and back; different architectures), findings in both with their metric,
// each regression criterion and what does not trigger one, layer tolerances, errors that name the
// file and the JSON path and hints that give a runnable command, 120 columns, Markdown escaping,
// elision of deep stacks, and golden files of the three writers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "gradscope/app/compare.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/report.hpp"
#include "gradscope/io/comparison_json.hpp"
#include "gradscope/io/report_json.hpp"
#include "gradscope/report/compare_text.hpp"
#include "gradscope/version.hpp"
#include "report_fixtures.hpp"
#include "support/paths.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A report of the repository's reports/ directory, by file name.
std::string real_report(const std::string& file) {
  const std::string text = read_file(std::string(GRADSCOPE_SOURCE_DIR) + "/reports/" + file);
  EXPECT_FALSE(text.empty()) << "reports/" << file << " not found";
  return text;
}

Comparison compare_real(const std::string& base, const std::string& proposed) {
  return compare_report_json(real_report(base), real_report(proposed), "reports/" + base,
                             "reports/" + proposed);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Columns on a terminal: one per UTF-8 code point.
std::size_t columns(const std::string& line) {
  return static_cast<std::size_t>(std::count_if(line.begin(), line.end(), [](char ch) {
    return (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  }));
}

void expect_within_120_columns(const std::string& text) {
  for (const std::string& line : lines_of(text)) {
    EXPECT_LE(columns(line), 120u) << line;
  }
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const FindingChange* find_code(const std::vector<FindingChange>& list, const std::string& code) {
  const auto it = std::find_if(list.begin(), list.end(),
                               [&](const FindingChange& f) { return f.code == code; });
  return it == list.end() ? nullptr : &*it;
}

bool has_reason(const Comparison& c, const std::string& part) {
  return std::any_of(c.regression_reasons.begin(), c.regression_reasons.end(),
                     [&](const std::string& r) { return contains(r, part); });
}

// Compares with tests/golden/NAME byte for byte; GRADSCOPE_UPDATE_GOLDEN=1 rewrites the file.
void expect_matches_golden(const std::string& actual, const std::string& name) {
  const std::string expected = testing::golden(actual, name);
  ASSERT_FALSE(expected.empty()) << "tests/golden/" << name
                                 << " is missing; run with GRADSCOPE_UPDATE_GOLDEN=1";
  const std::vector<std::string> want = lines_of(expected);
  const std::vector<std::string> got = lines_of(actual);
  for (std::size_t i = 0; i < std::min(want.size(), got.size()); ++i) {
    ASSERT_EQ(want[i], got[i]) << name << " differs at line " << i + 1;
  }
  EXPECT_EQ(expected, actual) << name << " differs in length or line endings";
}

// ---- Synthetic reports, written by the real JSON writer from the shared fixtures.

// A uniform ReLU stack whose log10 gradient rms at each layer is given.
Report stack_report(const std::string& name, const std::vector<double>& log10_grads) {
  return testing::make_report(name, log10_grads,
                              testing::uniform_widths(log10_grads.size(), 32, false),
                              log10_grads.back() - 0.1, false);
}

Finding finding(const std::string& code, Severity severity, int layer) {
  Finding f;
  f.code = code;
  f.severity = severity;
  f.layer = layer;
  f.explanation = "Explanation of " + code + ".";
  return f;
}

Comparison compare_synthetic(const Report& base, const Report& proposed) {
  return compare_report_json(report_to_json(base), report_to_json(proposed), "base.json",
                             "proposed.json");
}

// A correlation_collapse warning at layer 5 whose tested evidence comes after a context one.
Finding correlation_collapse(double correlation) {
  Finding f = finding("correlation_collapse", Severity::kWarning, 5);
  f.evidence = {{"input_correlation", 0.0, "", kNan, 0},
                {"correlation", correlation, ">=", 0.85, 5}};
  return f;
}

// diagnosed_report (6 layers; vanishing_gradients and dead_units warnings, mismatched_init info)
// with a correlation_collapse warning at layer 5.
Report golden_base() {
  Report r = testing::diagnosed_report();
  // The fixture's consequence (fp16_gradient_underflow) and remedy are the run report's business;
  // this pair is about findings matched across two reports.
  r.findings.erase(std::remove_if(r.findings.begin(), r.findings.end(),
                                  [](const Finding& f) { return !f.cause.empty(); }),
                   r.findings.end());
  for (Finding& f : r.findings) f.consequences.clear();
  r.remedy.reset();
  r.findings.insert(r.findings.begin() + 2, correlation_collapse(0.9));
  return r;
}

// golden_base after a change that helps the gradient but breaks the last layer: its gradient is
// NaN, a non_finite error appears, vanishing_gradients disappears, dead_units moves to layer 4
// (its evidence with it), mismatched_init becomes a warning, and correlation_collapse persists
// with a higher correlation. The name and paths hold Markdown punctuation.
Report golden_proposed() {
  Report r = golden_base();
  r.spec.name = "diagnosed <v2> | *he*";
  const std::vector<double> log10_grads = {-1.0, -0.9, -0.8, -0.7, -0.6, kNan};
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    r.layers[i].backward.grad_preact_rms = magnitude_from_log10(log10_grads[i]);
  }
  r.layers[1].forward.act.rms *= 1.5;
  r.layers[2].forward.dead_units = 0;
  r.layers[2].forward.dead_fraction = 0.0;
  r.layers[3].forward.dead_units = 8;
  r.layers[3].forward.dead_fraction = 0.25;
  r.layers[5].forward.saturated_fraction = 0.5;
  r.layers[5].backward.nonfinite = 64;
  r.summary.nonfinite_layers = {6};
  r.summary.log10_grad_ratio_first_to_last = log10_grads.front() - log10_grads.back();
  Finding non_finite = finding("non_finite", Severity::kError, 6);
  Finding dead = r.findings[1];
  dead.layer = 4;
  dead.evidence[0].layer = 4;
  Finding init = r.findings[3];
  init.severity = Severity::kWarning;
  r.findings = {non_finite, dead, correlation_collapse(0.95), init};
  r.verdict = Verdict::kError;
  return r;
}

Comparison golden_comparison() {
  return compare_report_json(report_to_json(golden_base()), report_to_json(golden_proposed()),
                             "reports/base.json", "reports/proposed_v2.json");
}

// ---------------------------------------------------------------- real reports

TEST(CompareRealReports, EveryReportAgainstItselfIsNoChangeAndListsNoDifferences) {
  std::vector<std::string> files;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(GRADSCOPE_SOURCE_DIR) + "/reports")) {
    if (entry.path().extension() == ".json") files.push_back(entry.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty());
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    const Comparison c = compare_real(file, file);
    EXPECT_TRUE(c.no_change);
    EXPECT_FALSE(c.regression);
    EXPECT_TRUE(c.regression_reasons.empty());
    EXPECT_TRUE(c.same_architecture);
    EXPECT_TRUE(c.appeared.empty());
    EXPECT_TRUE(c.disappeared.empty());
    EXPECT_TRUE(c.changed.empty());
    EXPECT_TRUE(std::none_of(c.layers.begin(), c.layers.end(),
                             [](const LayerDelta& d) { return d.changed; }));

    const std::string text = comparison_to_text(c);
    EXPECT_TRUE(contains(text, "no change")) << text;
    EXPECT_TRUE(contains(text, "verdict: " + c.base_verdict + " -> " + c.base_verdict)) << text;
    EXPECT_FALSE(contains(text, "appeared")) << text;
    EXPECT_FALSE(contains(text, "layers:")) << text;  // no layer table
    expect_within_120_columns(text);

    const std::string md = comparison_to_markdown(c);
    EXPECT_TRUE(contains(md, "no change")) << md;
    EXPECT_FALSE(contains(md, "## Findings")) << md;
    EXPECT_FALSE(contains(md, "<details>")) << md;

    EXPECT_TRUE(contains(comparison_to_json(c), "\"no_change\": true"));
  }
}

TEST(CompareRealReports, XavierToHeRemovesVanishingGradientsWithoutRegression) {
  const Comparison c = compare_real("relu-xavier.json", "relu-he.json");
  EXPECT_EQ(c.base_name, "relu-xavier");
  EXPECT_EQ(c.proposed_name, "relu-he");
  EXPECT_TRUE(c.same_architecture);
  ASSERT_NE(find_code(c.disappeared, "vanishing_gradients"), nullptr);
  EXPECT_EQ(find_code(c.appeared, "vanishing_gradients"), nullptr);
  EXPECT_FALSE(c.regression);
  EXPECT_TRUE(c.regression_reasons.empty());
  EXPECT_FALSE(c.no_change);
  // He init keeps the gradient's scale: the first-to-last ratio moves towards 1 (log10 0).
  EXPECT_LT(std::abs(c.proposed_log10_ratio), std::abs(c.base_log10_ratio));

  const std::string text = comparison_to_text(c);
  EXPECT_TRUE(contains(text, "verdict: " + c.base_verdict + " -> " + c.proposed_verdict)) << text;
  EXPECT_TRUE(contains(text, "regression: no")) << text;
  EXPECT_TRUE(contains(text, "disappeared")) << text;
  EXPECT_TRUE(contains(text, "vanishing_gradients")) << text;
  expect_within_120_columns(text);
}

// The issue's case: the verdict goes from error to warning, and the warnings that keep it there
// are listed, with their tested value before -> after, in every format.
TEST(CompareRealReports, XavierToHeShowsTheWarningsThatPersistWithTheirMetric) {
  const Comparison c = compare_real("relu-xavier.json", "relu-he.json");
  ASSERT_EQ(c.proposed_verdict, "warning");
  for (const std::string code : {"plain_deep_stack", "dead_units", "correlation_collapse"}) {
    SCOPED_TRACE(code);
    const FindingChange* f = find_code(c.persisted, code);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->base_severity, "warning");
    EXPECT_EQ(f->proposed_severity, "warning");
    EXPECT_EQ(f->base_layer, f->proposed_layer);
    // The first evidence is the tested one: a quantity, a relation and a finite threshold.
    EXPECT_FALSE(f->proposed_metric.quantity.empty());
    EXPECT_EQ(f->base_metric.quantity, f->proposed_metric.quantity);
    EXPECT_FALSE(f->proposed_metric.relation.empty());
    EXPECT_TRUE(std::isfinite(f->proposed_metric.threshold));
    EXPECT_TRUE(std::isfinite(f->base_metric.value));
  }
  EXPECT_EQ(find_code(c.persisted, "dead_units")->proposed_metric.quantity, "dead_fraction");
  // Every warning of the proposed report is accounted for, so the verdict can be read off.
  EXPECT_TRUE(c.appeared.empty());
  EXPECT_EQ(c.changed.size() + c.persisted.size(), 3u);
  EXPECT_FALSE(c.regression);

  const std::string text = comparison_to_text(c);
  EXPECT_TRUE(contains(text, "  persisted (3), same severity and layer\n")) << text;
  EXPECT_TRUE(contains(text,
                       "    [warning] plain_deep_stack in the whole network: dense_layers 50 "
                       "-> 50 (>= 10)\n"))
      << text;
  const FindingChange& dead = *find_code(c.persisted, "dead_units");
  EXPECT_TRUE(contains(text, "    [warning] dead_units at layer " +
                                 std::to_string(dead.proposed_layer) + ": dead_fraction "))
      << text;
  const FindingChange& collapse = *find_code(c.persisted, "correlation_collapse");
  EXPECT_TRUE(contains(text, "    [warning] correlation_collapse at layer " +
                                 std::to_string(collapse.proposed_layer) + ": correlation "))
      << text;
  expect_within_120_columns(text);

  const std::string md = comparison_to_markdown(c);
  EXPECT_TRUE(contains(md, "### Persisted (3), same severity and layer\n")) << md;
  EXPECT_TRUE(contains(md,
                       "- **warning** `plain_deep_stack` (whole network), dense\\_layers 50 "
                       "-&gt; 50 (&gt;= 10): "))
      << md;
  EXPECT_TRUE(contains(md, "- **warning** `dead_units` (layer " +
                               std::to_string(dead.proposed_layer) + "), dead\\_fraction "))
      << md;

  const std::string json = comparison_to_json(c);
  const std::size_t persisted = json.find("\"persisted\": [");
  ASSERT_NE(persisted, std::string::npos) << json;
  EXPECT_LT(persisted, json.find("\"layers\": ["));
  const std::size_t code = json.find("\"code\": \"plain_deep_stack\"", persisted);
  ASSERT_NE(code, std::string::npos) << json;
  EXPECT_NE(json.find("\"metric\": {\n            \"quantity\": \"dense_layers\",\n"
                      "            \"value\": 50.0,\n            \"relation\": \">=\",\n"
                      "            \"threshold\": 10.0,\n            \"layer\": 0\n",
                      code),
            std::string::npos)
      << json;
}

TEST(CompareRealReports, HeToXavierIsARegressionWithReasons) {
  const Comparison c = compare_real("relu-he.json", "relu-xavier.json");
  const FindingChange* vanishing = find_code(c.appeared, "vanishing_gradients");
  ASSERT_NE(vanishing, nullptr);
  EXPECT_TRUE(c.regression);
  EXPECT_TRUE(has_reason(c, "the verdict got worse"));
  EXPECT_TRUE(has_reason(c, "appeared: vanishing_gradients"));
  EXPECT_TRUE(has_reason(c, "gradient ratio moved"));
  // Xavier's vanishing gradient is a consequence of its mismatched init, and the reviewer is told
  // so: the root is what to fix.
  EXPECT_EQ(vanishing->cause, "mismatched_init");
  EXPECT_TRUE(has_reason(
      c, "appeared: vanishing_gradients at layer 36 (a consequence of mismatched_init)"));
  const FindingChange* root = find_code(c.appeared, "mismatched_init");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->cause, "");
  EXPECT_TRUE(contains(comparison_to_markdown(c), ", a consequence of `mismatched_init`"));
  EXPECT_TRUE(contains(comparison_to_json(c), "\"cause\": \"mismatched_init\""));

  const std::string text = comparison_to_text(c);
  EXPECT_TRUE(contains(text, "regression: yes")) << text;
  for (const std::string& reason : c.regression_reasons) {
    EXPECT_TRUE(contains(text, reason.substr(0, 40))) << reason;
  }
  expect_within_120_columns(text);
  EXPECT_TRUE(contains(comparison_to_markdown(c), "## Regression"));
}

TEST(CompareRealReports, DifferentArchitecturesCompareWhatMatchesAndSaySo) {
  const Comparison c = compare_real("sigmoid-deep.json", "gelu-prenorm-residual.json");
  EXPECT_FALSE(c.same_architecture);
  ASSERT_GT(c.proposed_layer_count, c.base_layer_count);
  ASSERT_EQ(c.layers.size(), static_cast<std::size_t>(c.proposed_layer_count));
  for (const LayerDelta& d : c.layers) {
    SCOPED_TRACE(d.index);
    EXPECT_FALSE(d.proposed_kind.empty());
    if (d.index > c.base_layer_count) {
      EXPECT_TRUE(d.base_kind.empty());
      EXPECT_TRUE(std::isnan(d.base_log10_grad));
      EXPECT_TRUE(d.changed);
    } else {
      EXPECT_FALSE(d.base_kind.empty());
      EXPECT_TRUE(std::isfinite(d.base_log10_grad));
    }
  }
  // The summaries and findings are still compared.
  EXPECT_NE(find_code(c.disappeared, "vanishing_gradients"), nullptr);
  EXPECT_FALSE(c.no_change);

  const std::string text = comparison_to_text(c);
  EXPECT_TRUE(contains(text, "architecture: different")) << text;
  EXPECT_TRUE(contains(text, "-/residual")) << text;  // a layer only the proposed report has
  expect_within_120_columns(text);
  EXPECT_TRUE(contains(comparison_to_markdown(c), "Architecture: different"));
  EXPECT_TRUE(contains(comparison_to_json(c), "\"same_architecture\": false"));
}

// ---------------------------------------------------------------- regression criteria

TEST(CompareRegression, RatioGrowthOfMoreThanOneDecadeIsARegressionAndLessIsNot) {
  const Report base = stack_report("base", {-2.0, -1.0, 0.0});  // log10 ratio -2
  const Comparison within = compare_synthetic(base, stack_report("p", {-2.9, -1.5, 0.0}));
  EXPECT_FALSE(within.regression);
  const Comparison beyond = compare_synthetic(base, stack_report("p", {-3.1, -1.5, 0.0}));
  EXPECT_TRUE(beyond.regression);
  EXPECT_TRUE(has_reason(beyond, "1.10 decades further from 1")) << beyond.regression_reasons[0];
  // Growth on the exploding side counts the same: |+3.1| against |-2|.
  const Comparison exploding = compare_synthetic(base, stack_report("p", {3.1, 1.5, 0.0}));
  EXPECT_TRUE(exploding.regression);
  // A ratio closer to 1 is an improvement.
  EXPECT_FALSE(compare_synthetic(base, stack_report("p", {-0.5, -0.2, 0.0})).regression);
}

TEST(CompareRegression, OnlyWarningsAndErrorsThatAppearOrGrowCount) {
  Report base = stack_report("base", {-1.0, -0.5, 0.0});
  base.findings = {finding("dead_units", Severity::kWarning, 2),
                   finding("mismatched_init", Severity::kInfo, 1)};
  base.verdict = Verdict::kWarning;

  Report info_appears = base;
  info_appears.findings.push_back(finding("plain_deep_stack", Severity::kInfo, 0));
  const Comparison a = compare_synthetic(base, info_appears);
  EXPECT_FALSE(a.regression);
  ASSERT_EQ(a.appeared.size(), 1u);
  EXPECT_EQ(a.appeared[0].proposed_severity, "info");

  Report moved = base;
  moved.findings[0].layer = 3;  // the same severity at another layer: changed, not worse
  const Comparison m = compare_synthetic(base, moved);
  EXPECT_FALSE(m.regression);
  ASSERT_EQ(m.changed.size(), 1u);
  EXPECT_EQ(m.changed[0].base_layer, 2);
  EXPECT_EQ(m.changed[0].proposed_layer, 3);

  Report graver = base;
  graver.findings[1].severity = Severity::kWarning;  // info -> warning
  const Comparison g = compare_synthetic(base, graver);
  EXPECT_TRUE(g.regression);
  EXPECT_TRUE(has_reason(g, "mismatched_init got more severe: info -> warning"));
  EXPECT_FALSE(has_reason(g, "verdict"));  // still a warning

  Report milder = base;
  milder.findings[0].severity = Severity::kInfo;
  milder.verdict = Verdict::kHealthy;
  EXPECT_FALSE(compare_synthetic(base, milder).regression);

  Report error_appears = base;
  error_appears.findings.insert(error_appears.findings.begin(),
                                finding("exploding_gradients", Severity::kError, 0));
  error_appears.verdict = Verdict::kError;
  const Comparison e = compare_synthetic(base, error_appears);
  EXPECT_TRUE(has_reason(e, "the verdict got worse: warning -> error"));
  EXPECT_TRUE(has_reason(e, "an error appeared: exploding_gradients in the whole network"));
  EXPECT_EQ(e.regression_reasons.size(), 2u);

  Report gone = base;
  gone.findings.clear();
  gone.verdict = Verdict::kHealthy;
  const Comparison d = compare_synthetic(base, gone);
  EXPECT_FALSE(d.regression);
  EXPECT_EQ(d.disappeared.size(), 2u);
}

TEST(CompareRegression, APersistedFindingIsNeverARegressionEvenWhenItsMetricGrows) {
  Report base = stack_report("base", {-1.0, -0.5, 0.0});
  base.findings = {finding("dead_units", Severity::kWarning, 2)};
  base.findings[0].evidence = {{"dead_fraction", 0.3, ">=", 0.25, 2}};
  base.verdict = Verdict::kWarning;
  Report proposed = base;
  proposed.findings[0].evidence = {{"dead_fraction", 0.6, ">=", 0.25, 3}};
  const Comparison c = compare_synthetic(base, proposed);
  ASSERT_EQ(c.persisted.size(), 1u);
  EXPECT_TRUE(c.changed.empty());
  EXPECT_DOUBLE_EQ(c.persisted[0].base_metric.value, 0.3);
  EXPECT_DOUBLE_EQ(c.persisted[0].proposed_metric.value, 0.6);
  EXPECT_EQ(c.persisted[0].proposed_metric.layer, 3);
  EXPECT_FALSE(c.regression);
  EXPECT_TRUE(c.regression_reasons.empty());
  // The layers are the same, so nothing else changed: the metric alone is not a change.
  EXPECT_TRUE(c.no_change);
  // Worse severity at the same layer is a change, and a regression.
  proposed.findings[0].severity = Severity::kError;
  proposed.verdict = Verdict::kError;
  const Comparison worse = compare_synthetic(base, proposed);
  ASSERT_EQ(worse.changed.size(), 1u);
  EXPECT_TRUE(worse.persisted.empty());
  EXPECT_TRUE(has_reason(worse, "dead_units got more severe: warning -> error"));
  EXPECT_TRUE(contains(comparison_to_text(worse),
                       "    dead_units: warning at layer 2 -> error at layer 2; dead_fraction 0.3 "
                       "at layer 2 -> 0.6 at layer 3 (>= 0.25)\n"));
}

TEST(CompareFindings, ACodeTwiceIsMatchedAtTheSameLayerFirstThenInOrder) {
  Report base = stack_report("base", {-1.0, -0.5, -0.2, 0.0});
  base.findings = {finding("dead_units", Severity::kWarning, 2),
                   finding("dead_units", Severity::kWarning, 4)};
  base.verdict = Verdict::kWarning;
  Report proposed = base;
  proposed.findings = {finding("dead_units", Severity::kWarning, 4)};
  const Comparison c = compare_synthetic(base, proposed);
  // Pairing the firsts would say layer 2 moved to 4 and layer 4 disappeared.
  ASSERT_EQ(c.persisted.size(), 1u);
  EXPECT_EQ(c.persisted[0].proposed_layer, 4);
  ASSERT_EQ(c.disappeared.size(), 1u);
  EXPECT_EQ(c.disappeared[0].base_layer, 2);
  EXPECT_TRUE(c.changed.empty());

  // One finding per code, as the diagnosis writes it: a moved layer is the same finding, changed.
  proposed.findings = {finding("dead_units", Severity::kWarning, 3)};
  base.findings.pop_back();
  const Comparison moved = compare_synthetic(base, proposed);
  ASSERT_EQ(moved.changed.size(), 1u);
  EXPECT_TRUE(moved.appeared.empty());
  EXPECT_TRUE(moved.disappeared.empty());
}

TEST(CompareFindings, MetricsWithoutEvidenceOrOfAnotherQuantityAreShownSideBySide) {
  Report base = stack_report("base", {-1.0, -0.5, 0.0});
  base.findings = {finding("update_ratio", Severity::kWarning, 0),
                   finding("dead_units", Severity::kWarning, 2)};
  base.findings[0].evidence = {{"log10_update_to_weight", -1.5, ">=", -2.0, 1}};
  base.verdict = Verdict::kWarning;
  Report proposed = base;
  proposed.findings[0].evidence = {{"log10_update_to_weight_min", -6.5, "<=", -6.0, 3}};
  proposed.layers[0].forward.act.rms *= 2.0;  // a change, so that the findings are listed
  const Comparison c = compare_synthetic(base, proposed);
  ASSERT_EQ(c.persisted.size(), 2u);
  EXPECT_TRUE(c.persisted[1].base_metric.quantity.empty());  // no evidence
  const std::string text = comparison_to_text(c);
  // Too long for one line: wrapped, the rest indented past the explanation's indent.
  EXPECT_TRUE(contains(text,
                       "    [warning] update_ratio in the whole network: log10_update_to_weight "
                       "-1.5 at layer 1 (>= -2) ->\n        log10_update_to_weight_min -6.5 "
                       "at layer 3 (<= -6)\n      Explanation of update_ratio.\n"))
      << text;
  EXPECT_TRUE(contains(text, "    [warning] dead_units at layer 2\n")) << text;
  EXPECT_TRUE(contains(comparison_to_json(c), "\"metric\": null")) << comparison_to_json(c);
}

TEST(CompareRegression, NonFiniteLayersThatAppearAreARegressionWithTheirIndices) {
  const Report base = stack_report("base", {-1.0, -0.5, -0.2, 0.0});
  Report proposed = base;
  for (const int l : {2, 3}) {
    proposed.layers[static_cast<std::size_t>(l - 1)].backward.grad_preact_rms =
        magnitude_from_log10(kNan);
  }
  proposed.summary.nonfinite_layers = {2, 3};
  const Comparison c = compare_synthetic(base, proposed);
  EXPECT_TRUE(c.regression);
  EXPECT_TRUE(has_reason(c, "non-finite values appeared at layers 2-3"));
  // The null + status in the report comes back as NaN, and NaN against a number is a change.
  EXPECT_TRUE(std::isnan(c.layers[1].proposed_log10_grad));
  EXPECT_TRUE(c.layers[1].changed);
  EXPECT_FALSE(c.layers[0].changed);
  const std::string json = comparison_to_json(c);
  EXPECT_TRUE(
      contains(json, "\"log10_grad_rms\": null,\n        \"log10_grad_rms_status\": \"nan\""))
      << json;

  // The same non-finite layers on both sides are no news.
  const Comparison same = compare_synthetic(proposed, proposed);
  EXPECT_FALSE(same.regression);
  EXPECT_TRUE(same.no_change);
}

// ---------------------------------------------------------------- layers

TEST(CompareLayers, ValuesWithinTheirTolerancesAreUnchangedAndBeyondAreChanged) {
  const Report base = stack_report("base", {-1.0, -0.5, -0.2, 0.0});
  Report proposed = base;
  // Half of each tolerance (kCompare*Tol in compare.hpp): still the same.
  proposed.layers[0].backward.grad_preact_rms = magnitude_from_log10(-1.0 + 0.005);
  proposed.layers[0].forward.act.rms *= 1.005;
  proposed.layers[0].forward.dead_fraction += 0.0005;
  EXPECT_TRUE(compare_synthetic(base, proposed).no_change);

  // Twice each tolerance, one value per layer.
  proposed.layers[0].backward.grad_preact_rms = magnitude_from_log10(-1.0 + 0.02);
  proposed.layers[1].forward.act.rms *= 1.02;
  proposed.layers[2].forward.dead_fraction += 0.002;
  proposed.layers[3].forward.saturated_fraction += 0.002;
  const Comparison c = compare_synthetic(base, proposed);
  EXPECT_FALSE(c.no_change);
  EXPECT_FALSE(c.regression);
  for (const LayerDelta& d : c.layers) EXPECT_TRUE(d.changed) << d.index;

  const std::string text = comparison_to_text(c);
  EXPECT_TRUE(contains(text, "layers: 4 of 4 changed")) << text;
}

TEST(CompareLayers, UnchangedLayersAreCountedAndLeftOutOfTheTable) {
  const Report base = stack_report("base", {-1.0, -0.5, -0.2, 0.0});
  Report proposed = base;
  proposed.layers[2].forward.act.rms *= 2.0;
  const Comparison c = compare_synthetic(base, proposed);
  const std::string text = comparison_to_text(c);
  EXPECT_TRUE(contains(text, "layers: 1 of 4 changed (3 unchanged, within 0.01 in log10 grad rms"))
      << text;
  std::size_t rows = 0;
  for (const std::string& line : lines_of(text)) {
    // Table rows start with the right-aligned layer index.
    if (line.size() > 5 && line.substr(0, 5).find_first_not_of(' ') != std::string::npos &&
        std::isdigit(static_cast<unsigned char>(line[4])) != 0) {
      ++rows;
      EXPECT_EQ(line.substr(0, 5), "    3") << line;
    }
  }
  EXPECT_EQ(rows, 1u) << text;
}

TEST(CompareLayers, DeepStacksShowTheFirstAndLastFiftyChangedLayers) {
  std::vector<double> base_grads;
  std::vector<double> proposed_grads;
  for (int l = 1; l <= 300; ++l) {
    base_grads.push_back(-0.01 * (300 - l));
    proposed_grads.push_back(-0.005 * (300 - l) + 0.1);
  }
  const Comparison c =
      compare_synthetic(stack_report("base", base_grads), stack_report("p", proposed_grads));
  const std::string text = comparison_to_text(c);
  EXPECT_TRUE(contains(text, "layers: 300 of 300 changed")) << text;
  EXPECT_TRUE(contains(text, "  ...  200 layers changed not shown")) << text;
  EXPECT_TRUE(contains(text, "\n   50  dense")) << text;
  EXPECT_FALSE(contains(text, "\n   51  dense")) << text;
  EXPECT_FALSE(contains(text, "\n  250  dense")) << text;
  EXPECT_TRUE(contains(text, "\n  251  dense")) << text;
  expect_within_120_columns(text);
  const std::string md = comparison_to_markdown(c);
  EXPECT_TRUE(contains(md, "*200 layers not shown*")) << md;
  // The JSON output keeps every layer.
  EXPECT_TRUE(contains(comparison_to_json(c), "\"index\": 150,"));
}

// ---------------------------------------------------------------- bad inputs

// The Error a comparison throws, with its message; fails the test when none is thrown.
Error compare_error(const std::string& base, const std::string& proposed) {
  try {
    compare_report_json(base, proposed, "base.json", "dir/proposed.json");
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no Error thrown";
  return Error("");
}

TEST(CompareErrors, TextThatIsNotJsonNamesTheFileAndPosition) {
  const std::string good = real_report("relu-he.json");
  const Error e = compare_error(good, "{\n  \"schema_version\": 4,\n  oops\n}");
  EXPECT_TRUE(contains(e.what(), "dir/proposed.json:3:3: not JSON")) << e.what();
  EXPECT_EQ(e.code(), ExitCode::kUsage);
  EXPECT_FALSE(e.hint().empty());
  EXPECT_TRUE(contains(compare_error("", good).what(), "base.json:1:1: not JSON"));
}

TEST(CompareErrors, JsonThatIsNotAReportSaysSo) {
  const std::string good = real_report("relu-he.json");
  const std::string config = read_file(std::string(GRADSCOPE_SOURCE_DIR) + "/configs/relu-he.json");
  ASSERT_FALSE(config.empty());
  for (const std::string& not_report : {config, std::string("[1, 2]"), std::string("{}"),
                                        std::string(R"({"schema_version": 1, "tool": {}})")}) {
    SCOPED_TRACE(not_report.substr(0, 40));
    const Error e = compare_error(not_report, good);
    EXPECT_TRUE(contains(e.what(), "base.json: not a gradscope report")) << e.what();
    EXPECT_EQ(e.code(), ExitCode::kUsage);
  }
}

// `gradscope run` writes OUT/<name>.json with OUT a folder: the hints say so, and never suggest
// `-o report.json`, which would make a folder of that name.
TEST(CompareErrors, TheHintForANonReportGivesACommandThatWritesOne) {
  const std::string good = real_report("relu-he.json");
  for (const std::string& not_report :
       {std::string("[1, 2]"), std::string("{}"), std::string("{")}) {
    SCOPED_TRACE(not_report);
    const Error e = compare_error(not_report, good);
    EXPECT_FALSE(contains(e.hint(), "report.json")) << e.hint();
    EXPECT_TRUE(contains(e.hint(), "`gradscope run CONFIG --out DIR` writes DIR/<name>.json"))
        << e.hint();
    EXPECT_TRUE(contains(e.hint(), "`gradscope compare DIR/BASE.json DIR/PROPOSED.json`"))
        << e.hint();
  }

  // A config gets the command for itself, named as `gradscope run` names the report.
  const std::string config = read_file(std::string(GRADSCOPE_SOURCE_DIR) + "/configs/relu-he.json");
  ASSERT_FALSE(config.empty());
  try {
    compare_report_json(config, good, "configs/relu-he.json", "reports/relu-he.json");
    ADD_FAILURE() << "no Error thrown";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "configs/relu-he.json: not a gradscope report")) << e.what();
    EXPECT_TRUE(contains(e.hint(),
                         "`gradscope run configs/relu-he.json --out reports` writes "
                         "reports/relu-he.json"))
        << e.hint();
  }
  // A comparison names the reports it compared.
  const Comparison c = golden_comparison();
  const Error e = compare_error(comparison_to_json(c), good);
  EXPECT_TRUE(contains(e.hint(),
                       "a comparison that gradscope compare wrote, not a report; it "
                       "compared reports/base.json with reports/proposed_v2.json"))
      << e.hint();
  // Without a name the report is named after the file; a path a shell would split is quoted.
  try {
    compare_report_json(R"({"stack": {"depth": 3}})", good, "my configs/it's deep.json", "b.json");
    ADD_FAILURE() << "no Error thrown";
  } catch (const Error& quoted) {
    EXPECT_TRUE(contains(quoted.hint(),
                         "`gradscope run 'my configs/it'\\''s deep.json' --out reports` "
                         "writes reports/it's deep.json"))
        << quoted.hint();
  }
}

TEST(CompareErrors, AnotherSchemaVersionNamesTheFileAndBothVersions) {
  const std::string good = real_report("relu-he.json");
  std::string old = good;
  const std::string key = "\"schema_version\": " + std::to_string(kSchemaVersion);
  ASSERT_NE(old.find(key), std::string::npos);
  const int older = kSchemaVersion - 1;
  old.replace(old.find(key), key.size(), "\"schema_version\": " + std::to_string(older));
  const Error e = compare_error(good, old);
  EXPECT_TRUE(contains(e.what(), "dir/proposed.json: schema_version: " + std::to_string(older) +
                                     ", but this gradscope reads " +
                                     std::to_string(kSchemaVersion)))
      << e.what();
  EXPECT_TRUE(contains(e.hint(), "same gradscope")) << e.hint();
  EXPECT_TRUE(contains(e.hint(), "`gradscope run CONFIG --out DIR` writes DIR/<name>.json"))
      << e.hint();
  EXPECT_FALSE(contains(e.hint(), "report.json")) << e.hint();
}

TEST(CompareErrors, AMissingOrMistypedValueNamesItsJsonPath) {
  const std::string good = real_report("relu-he.json");
  std::string missing = good;
  const std::string key = "\"log10_rms\":";
  // The first layer's, not output_grad's before the layers.
  const std::size_t first = missing.find(key, missing.find("\"layers\": ["));
  ASSERT_NE(first, std::string::npos);
  missing.replace(first, key.size(), "\"log10_rsm\":");
  EXPECT_TRUE(contains(compare_error(good, missing).what(),
                       "dir/proposed.json: layers[0].backward.grad_preact.log10_rms: missing"));

  std::string bad_verdict = good;
  const std::string verdict = "\"verdict\": \"warning\"";
  ASSERT_NE(bad_verdict.find(verdict), std::string::npos);
  bad_verdict.replace(bad_verdict.find(verdict), verdict.size(), "\"verdict\": \"fine\"");
  EXPECT_TRUE(contains(compare_error(bad_verdict, good).what(),
                       "base.json: summary.verdict: \"fine\" is not one of"));

  // A null must say why (the run report's rule); without its status it is not a report's.
  Report r = stack_report("r", {-1.0, 0.0});
  std::string json = report_to_json(r);
  const std::string rms = "\"rms\": ";
  const std::size_t act = json.find("\"act\": {");
  const std::size_t at = json.find(rms, act);
  const std::size_t end = json.find(',', at);
  json.replace(at, end - at, "\"rms\": null");
  EXPECT_TRUE(contains(compare_error(json, good).what(),
                       "base.json: layers[0].forward.act.rms: null without a rms_status"));
}

// ---------------------------------------------------------------- writers

TEST(CompareWriters, TextStaysWithin120ColumnsWithLongNamesAndPaths) {
  Report base = stack_report(std::string(150, 'n'), {-1.0, -0.5, 0.0});
  Report proposed = base;
  proposed.findings = {finding("dead_units", Severity::kWarning, 2)};
  proposed.findings[0].explanation = std::string(30, 'w') + " " + std::string(200, 'x');
  proposed.verdict = Verdict::kWarning;
  const Comparison c = compare_report_json(report_to_json(base), report_to_json(proposed),
                                           "/" + std::string(200, 'p') + ".json", "proposed.json");
  const std::string text = comparison_to_text(c);
  expect_within_120_columns(text);
  EXPECT_TRUE(contains(text, std::string(100, 'x'))) << text;  // cut, not dropped
}

TEST(CompareWriters, MarkdownEscapesNamesPathsAndExplanations) {
  const Comparison c = golden_comparison();
  const std::string md = comparison_to_markdown(c);
  EXPECT_TRUE(contains(md, "diagnosed &lt;v2&gt; \\| \\*he\\*")) << md;
  EXPECT_TRUE(contains(md, "reports/proposed\\_v2.json")) << md;
  EXPECT_FALSE(contains(md, "<v2>"));
  // Every row of each table has as many cell separators as its header.
  std::size_t header_pipes = 0;
  for (const std::string& line : lines_of(md)) {
    if (line.empty() || line.front() != '|') {
      header_pipes = 0;
      continue;
    }
    std::size_t pipes = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\') {
        ++i;  // the escaped character is content
        continue;
      }
      pipes += line[i] == '|' ? 1 : 0;
    }
    if (header_pipes == 0) header_pipes = pipes;
    EXPECT_EQ(pipes, header_pipes) << line;
  }
  // The verdict comes first after the title.
  const std::vector<std::string> lines = lines_of(md);
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[2], "**Verdict: warning -> error** - **regression**");
}

TEST(CompareWriters, OutputIsDeterministic) {
  const Comparison a = golden_comparison();
  const Comparison b = golden_comparison();
  EXPECT_EQ(comparison_to_text(a), comparison_to_text(b));
  EXPECT_EQ(comparison_to_markdown(a), comparison_to_markdown(b));
  EXPECT_EQ(comparison_to_json(a), comparison_to_json(b));
}

TEST(CompareWriters, GoldenPairFindsEveryKindOfChange) {
  const Comparison c = golden_comparison();
  EXPECT_TRUE(c.regression);
  ASSERT_EQ(c.appeared.size(), 1u);
  EXPECT_EQ(c.appeared[0].code, "non_finite");
  ASSERT_EQ(c.disappeared.size(), 1u);
  EXPECT_EQ(c.disappeared[0].code, "vanishing_gradients");
  ASSERT_EQ(c.changed.size(), 2u);
  EXPECT_EQ(c.changed[0].code, "dead_units");
  EXPECT_EQ(c.changed[0].base_metric.layer, 3);
  EXPECT_EQ(c.changed[0].proposed_metric.layer, 4);
  EXPECT_EQ(c.changed[1].code, "mismatched_init");
  ASSERT_EQ(c.persisted.size(), 1u);
  EXPECT_EQ(c.persisted[0].code, "correlation_collapse");
  // The tested evidence, not the context evidence before it.
  EXPECT_EQ(c.persisted[0].base_metric.quantity, "correlation");
  EXPECT_DOUBLE_EQ(c.persisted[0].base_metric.value, 0.9);
  EXPECT_DOUBLE_EQ(c.persisted[0].proposed_metric.value, 0.95);
  EXPECT_EQ(c.persisted[0].proposed_metric.relation, ">=");
  EXPECT_DOUBLE_EQ(c.persisted[0].proposed_metric.threshold, 0.85);
  EXPECT_TRUE(std::isnan(c.proposed_log10_ratio));
}

TEST(CompareWriters, TextMatchesGolden) {
  const std::string text = comparison_to_text(golden_comparison());
  expect_within_120_columns(text);
  expect_matches_golden(text, "compare_pair.txt");
}

TEST(CompareWriters, MarkdownMatchesGolden) {
  expect_matches_golden(comparison_to_markdown(golden_comparison()), "compare_pair.md");
}

TEST(CompareWriters, JsonMatchesGolden) {
  expect_matches_golden(comparison_to_json(golden_comparison()), "compare_pair.json");
}

}  // namespace
}  // namespace gradscope
