// Tests of the Markdown report writer: the verdict first, the findings with their advice, a table
// with the same columns on every row inside a closed <details> block, elision of deep stacks like
// the text report's, escaping of the run name, a bar that grows with the gradient, and a golden
// file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gradscope/core/report.hpp"
#include "gradscope/report/report_md.hpp"
#include "report_fixtures.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

using testing::diagnosed_report;
using testing::mixed_report;
using testing::small_report;

constexpr int kSharpLayer = 117;

// 200 layers of width 64 whose log10 grad rms falls by 0.05 per layer, with a drop of one decade
// after layer 117: its gain is 10^1.05 against a median of 10^0.05, a sharp change.
Report deep_report() {
  std::vector<double> log10s;
  for (int l = 1; l <= 200; ++l) log10s.push_back(-0.05 * l - (l > kSharpLayer ? 1.0 : 0.0));
  return testing::make_report("deep", log10s, testing::uniform_widths(200, 64, false),
                              log10s.back() - 0.05, false);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Table lines: those that start with a pipe.
std::vector<std::string> table_lines(const std::string& md) {
  std::vector<std::string> out;
  for (const std::string& line : lines_of(md)) {
    if (!line.empty() && line.front() == '|') out.push_back(line);
  }
  return out;
}

// Cell separators of a GFM table row: pipes not escaped by a backslash.
std::size_t unescaped_pipes(const std::string& line) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\\') {
      ++i;  // the escaped character is content
      continue;
    }
    n += line[i] == '|' ? 1 : 0;
  }
  return n;
}

// The cells of a table row, trimmed (escaped pipes stay inside their cell).
std::vector<std::string> cells_of(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  for (std::size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size()) {
      cell += line.substr(i, 2);
      ++i;
    } else if (line[i] == '|') {
      const std::size_t b = cell.find_first_not_of(' ');
      const std::size_t e = cell.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
      cell.clear();
    } else {
      cell += line[i];
    }
  }
  return cells;
}

// Layer rows by index (the first cell is a number).
std::map<int, std::vector<std::string>> layer_rows(const std::string& md) {
  std::map<int, std::vector<std::string>> rows;
  for (const std::string& line : table_lines(md)) {
    const std::vector<std::string> cells = cells_of(line);
    if (cells.empty() || cells[0].empty()) continue;
    if (!std::all_of(cells[0].begin(), cells[0].end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    rows[std::stoi(cells[0])] = cells;
  }
  return rows;
}

// Sum of N over the "*N layers elided*" rows.
int elided_count(const std::string& md) {
  int total = 0;
  for (const std::string& line : table_lines(md)) {
    const std::vector<std::string> cells = cells_of(line);
    if (cells.size() > 1 && cells[0] == "..." && cells[1].find("elided") != std::string::npos) {
      total += std::stoi(cells[1].substr(1));
    }
  }
  return total;
}

// The bar's length in eighths of a block: U+2588 is 8, U+2589..U+258F are 7 down to 1. Each is
// three bytes of UTF-8: E2 96 88..8F.
int bar_eighths(const std::string& bar) {
  int n = 0;
  for (std::size_t i = 0; i + 2 < bar.size(); ++i) {
    if (static_cast<unsigned char>(bar[i]) != 0xE2 ||
        static_cast<unsigned char>(bar[i + 1]) != 0x96)
      continue;
    const int last = static_cast<unsigned char>(bar[i + 2]);
    if (last >= 0x88 && last <= 0x8F) n += last == 0x88 ? 8 : 8 - (last - 0x88);
    i += 2;
  }
  return n;
}

// Compares with tests/golden/NAME byte for byte; GRADSCOPE_UPDATE_GOLDEN=1 rewrites the file.
void expect_matches_golden(const std::string& actual, const std::string& name) {
  const std::string expected = testing::golden(actual, name);
  ASSERT_FALSE(expected.empty()) << "tests/golden/" << name
                                 << " is missing; run with GRADSCOPE_UPDATE_GOLDEN=1";
  if (expected == actual) return;
  const std::vector<std::string> want = lines_of(expected);
  const std::vector<std::string> got = lines_of(actual);
  std::size_t line = 0;
  while (line < want.size() && line < got.size() && want[line] == got[line]) ++line;
  ADD_FAILURE()
      << name << " differs from the golden file at line " << line + 1
      << "\n  golden: " << (line < want.size() ? want[line] : "<end of file>")
      << "\n  actual: " << (line < got.size() ? got[line] : "<end of file>")
      << "\nIf the change is intended, rerun with GRADSCOPE_UPDATE_GOLDEN=1 and review the diff.";
}

// ---------------------------------------------------------------- tests

TEST(ReportMarkdown, TitleThenVerdictThenNetworkAndGradientRatio) {
  const std::vector<std::string> lines = lines_of(report_to_markdown(diagnosed_report()));
  ASSERT_GE(lines.size(), 7u);
  EXPECT_EQ(lines[0], "# gradscope: diagnosed");
  EXPECT_EQ(lines[2], "**Verdict: warning** - 2 warnings, 1 info; 1 consequence");
  EXPECT_EQ(lines[4], "6 dense layers | 4,900 parameters | float32 | loss: probe");
  EXPECT_EQ(lines[6], "Gradient rms, first layer / last layer: 0.001 (log10 -3.00)");
}

TEST(ReportMarkdown, HealthyReportSaysSoAndListsNoFindings) {
  const std::string md = report_to_markdown(small_report());
  EXPECT_NE(md.find("\n**Verdict: healthy** - no findings\n"), std::string::npos) << md;
  EXPECT_NE(md.find("\n## Findings\n\nNone.\n"), std::string::npos) << md;
}

TEST(ReportMarkdown, MixedArchitectureNamesOpsAndLossValue) {
  const Report r = mixed_report(OptimizerKind::kNone);
  const std::string md = report_to_markdown(r);
  EXPECT_NE(md.find("11 ops, 5 dense layers | "), std::string::npos) << md;
  EXPECT_NE(md.find("| loss: mse = "), std::string::npos) << md;
  const auto rows = layer_rows(md);
  ASSERT_EQ(rows.size(), 11u) << md;
  EXPECT_EQ(rows.at(2)[1], "norm");
  EXPECT_EQ(rows.at(2)[3], "layer\\_norm");
  EXPECT_EQ(rows.at(6)[3], "p=0.1");
  EXPECT_EQ(rows.at(7)[1], "residual");
  EXPECT_EQ(rows.at(11)[3], "x1 + projection");
}

TEST(ReportMarkdown, FindingsGiveEvidenceAdviceAsSetChangesAndTheCheck) {
  const std::string md = report_to_markdown(diagnosed_report());
  for (const std::string& expected :
       {std::string("- **warning** `vanishing_gradients` (whole network): The gradient shrinks"),
        std::string("  - Evidence: `log10_grad_ratio_first_to_last` = -3 (threshold &lt;= -2); "
                    "`mean_log10_gain` = -0.6\n"),
        std::string("  - Advice: Initialise the ReLU layers with he\\_normal"),
        std::string(" `--set stack.init=he_normal`\n"),
        std::string("    - Checked: `gradient_shrink_decades` 3 -> 0.25, helped; after: healthy "
                    "(mismatched\\_init (info))\n"),
        std::string("  - Tried and rejected: Switch the hidden activation to tanh, whose "
                    "derivative is 1 at 0. `--set stack.activation=tanh` "
                    "`--set stack.init=xavier_normal` (checked: `gradient_shrink_decades` 3 "
                    "-> 3.5, did not help; after: warning"),
        std::string("- **warning** `dead_units` (layer 3): "),
        std::string("  - Evidence: `dead_fraction` = 0.25 (threshold &gt;= 0.1)\n"),
        std::string("- **info** `mismatched_init` (layer 1): ")}) {
    EXPECT_NE(md.find(expected), std::string::npos) << "missing '" << expected << "' in\n" << md;
  }
  // Findings keep the report's order: most severe first, then by layer.
  EXPECT_LT(md.find("`vanishing_gradients`"), md.find("`dead_units`"));
  EXPECT_LT(md.find("`dead_units`"), md.find("`mismatched_init`"));
  // A consequence is a nested item under its root, with no advice of its own.
  EXPECT_NE(md.find("  - Consequences of `vanishing_gradients` (fixed with it):\n"
                    "    - **warning** `fp16_gradient_underflow` (layer 1): "),
            std::string::npos)
      << md;
  // An advice without a check has no check line.
  const std::size_t findings = md.find("## Findings");
  const std::size_t leaky = md.find("leaky\\_relu", findings);
  ASSERT_NE(leaky, std::string::npos);
  EXPECT_EQ(md.find("Checked", leaky), std::string::npos);
}

TEST(ReportMarkdown, TheRemedyComesBeforeTheFindingsWithOneShellBlock) {
  const std::string md = report_to_markdown(diagnosed_report());
  const std::size_t remedy = md.find(
      "## Remedy\n\n2 changes for 2 warnings (checked by "
      "re-running: warning -&gt; healthy).\n");
  ASSERT_NE(remedy, std::string::npos) << md;
  EXPECT_LT(remedy, md.find("## Findings"));
  for (const std::string& expected :
       {std::string("1. Initialise the ReLU layers with he\\_normal"),
        std::string("(for `vanishing_gradients`)\n2. Use leaky\\_relu"),
        std::string("```sh\n--set stack.init=he_normal\n--set 'stack.activation=\"leaky_relu\"'\n"
                    "```\n"),
        std::string("\nAfter it: mismatched\\_init (info).\n")}) {
    EXPECT_NE(md.find(expected, remedy), std::string::npos) << "missing '" << expected << "'\n"
                                                            << md;
  }
}

TEST(ReportMarkdown, EveryTableRowHasTheSameNumberOfColumns) {
  Report named = diagnosed_report();
  named.spec.name = "a|b";
  named.layers[2].backward.grad_preact_rms = magnitude_from_scaled(kNan, 0);
  MarkdownOptions options;
  options.max_rows = 40;
  for (const Report& r :
       {diagnosed_report(), deep_report(), mixed_report(OptimizerKind::kAdam), named}) {
    const std::vector<std::string> lines = table_lines(report_to_markdown(r, options));
    ASSERT_GE(lines.size(), 3u) << r.spec.name;
    for (const std::string& line : lines) {
      // Ten columns: eleven separators, the outer two included.
      EXPECT_EQ(unescaped_pipes(line), 11u) << r.spec.name << ": " << line;
    }
  }
}

TEST(ReportMarkdown, LayerTableIsInsideAClosedDetailsBlock) {
  const std::string md = report_to_markdown(diagnosed_report());
  const std::size_t open = md.find("<details><summary>Per-layer table (6 layers)</summary>\n\n");
  const std::size_t close = md.find("\n\n</details>\n");
  ASSERT_NE(open, std::string::npos) << md;
  ASSERT_NE(close, std::string::npos) << md;
  const std::string heading = "## Layers\n\n";
  EXPECT_EQ(md.find(heading + "<details>") + heading.size(), open) << "under its heading";
  const std::size_t table = md.find("\n| layer |");
  EXPECT_TRUE(open < table && table < close) << md;
  EXPECT_EQ(md.find("<details>", open + 1), std::string::npos) << "one block";
  EXPECT_EQ(md.substr(close), "\n\n</details>\n") << "the block ends the document";
}

TEST(ReportMarkdown, DeepStackElisionKeepsFirstLastAndSharpChange) {
  MarkdownOptions options;
  options.max_rows = 40;
  const std::string md = report_to_markdown(deep_report(), options);
  const auto rows = layer_rows(md);
  EXPECT_LE(rows.size(), 40u);
  EXPECT_TRUE(rows.count(1) && rows.count(200) && rows.count(kSharpLayer)) << md;
  EXPECT_FALSE(rows.count(100)) << "the middle of the stack is elided";
  EXPECT_EQ(static_cast<int>(rows.size()) + elided_count(md), 200)
      << "every layer shown or counted";
  // The default budget of 200 rows shows all of them.
  const std::string full = report_to_markdown(deep_report());
  EXPECT_EQ(layer_rows(full).size(), 200u);
  EXPECT_EQ(full.find("elided"), std::string::npos);
}

TEST(ReportMarkdown, BarGrowsWithTheGradient) {
  const Report r = deep_report();
  const auto rows = layer_rows(report_to_markdown(r));
  ASSERT_EQ(rows.size(), 200u);
  // Layer 1 has the largest gradient: 16 full blocks; layer 200 the smallest: one eighth.
  EXPECT_EQ(bar_eighths(rows.at(1).back()), 16 * 8);
  EXPECT_EQ(bar_eighths(rows.at(200).back()), 1);
  for (int i = 1; i < 200; ++i) {
    const double here = r.layers[static_cast<std::size_t>(i - 1)].backward.grad_preact_rms.log10;
    const double next = r.layers[static_cast<std::size_t>(i)].backward.grad_preact_rms.log10;
    ASSERT_GT(here, next);
    EXPECT_GE(bar_eighths(rows.at(i).back()), bar_eighths(rows.at(i + 1).back())) << i;
  }
  // The drop of 1.05 decades after the sharp layer, on an axis of 127 eighths over 10.95 decades,
  // is a step of 12.2 eighths; more than 10 leaves room for the rounding of both bars.
  EXPECT_GT(bar_eighths(rows.at(kSharpLayer).back()) - bar_eighths(rows.at(kSharpLayer + 1).back()),
            10);
}

TEST(ReportMarkdown, NonFiniteGradientsAreNamedInsteadOfABar) {
  Report r = diagnosed_report();
  r.layers[1].backward.grad_preact_rms = magnitude_from_scaled(kNan, 0);
  r.layers[2].backward.grad_preact_rms = magnitude_from_scaled(0.0, 0);
  const auto rows = layer_rows(report_to_markdown(r));
  // No finite value: undefined, never a bare "nan".
  EXPECT_EQ(rows.at(2).back(), "(n/a)");
  EXPECT_EQ(rows.at(2)[5], "n/a");
  EXPECT_EQ(rows.at(3).back(), "(zero)");
  EXPECT_EQ(rows.at(3)[5], "0");
}

TEST(ReportMarkdown, RunNameCannotBreakTheDocumentOrInjectHtml) {
  Report r = diagnosed_report();
  r.spec.name = "a|b <script>x</script> *em* _u_ [l](u) `c` @team #1 $x$ ~s~ \\ &amp;\nsecond";
  const std::string md = report_to_markdown(r);
  EXPECT_EQ(lines_of(md)[0],
            "# gradscope: a\\|b &lt;script&gt;x&lt;/script&gt; \\*em\\* \\_u\\_ \\[l\\](u) \\`c\\` "
            "\\@team \\#1 \\$x\\$ \\~s\\~ \\\\ &amp;amp; second");
  EXPECT_EQ(md.find("<script>"), std::string::npos);
  EXPECT_EQ(md.find("\nsecond"), std::string::npos) << "a newline in the name ends no line";
}

TEST(ReportMarkdown, SetChangesAreCodeSpansEvenWithBackticksInside) {
  Report r = diagnosed_report();
  r.findings[2].advice[0].changes = {{"layers[0].name", "\"a`b\""}, {"x", "`"}};
  const std::string md = report_to_markdown(r);
  EXPECT_NE(md.find("``--set 'layers[0].name=\"a`b\"'``"), std::string::npos) << md;
  EXPECT_NE(md.find("``--set 'x=`'``"), std::string::npos) << md;
}

TEST(ReportMarkdown, OutputIsDeterministic) {
  const Report r = diagnosed_report();
  EXPECT_EQ(report_to_markdown(r), report_to_markdown(r));
}

TEST(ReportMarkdown, DiagnosedReportMatchesGoldenFile) {
  expect_matches_golden(report_to_markdown(diagnosed_report()), "report_diagnosed.md");
}

}  // namespace
}  // namespace gradscope
