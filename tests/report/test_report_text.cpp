// Tests of the text report writer: 120-column limit, elision of deep stacks that keeps the first,
// last and sharp-change layers, readable non-finite and out-of-range values, colour only on
// request, mixed op kinds with the optimizer's update column, the mean-field theory and measured
// correlation columns, the table of mean-field predictions beside measurements, the verdict and
// findings of the diagnosis, and golden files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gradscope/core/report.hpp"
#include "gradscope/report/report_text.hpp"
#include "report_fixtures.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

using testing::diagnosed_report;
using testing::mixed_report;
using testing::small_report;
using testing::softmax_output_report;

// The shared fixtures, with one width for the stack and 4 for an output layer.
Report make_report(const std::string& name, const std::vector<double>& log10_grads, int width,
                   double log10_output_grad, bool with_output) {
  return testing::make_report(name, log10_grads,
                              testing::uniform_widths(log10_grads.size(), width, with_output),
                              log10_output_grad, with_output);
}

constexpr int kSharpLayer = 117;

// 200 layers whose log10 grad rms decreases linearly with the index (-0.05 per layer), except for
// a drop of one decade between layers 117 and 118: layer 117's gain is 10^1.05 against a median
// of 10^0.05, a sharp change.
Report deep_report() {
  std::vector<double> log10s;
  for (int l = 1; l <= 200; ++l) log10s.push_back(-0.05 * l - (l > kSharpLayer ? 1.0 : 0.0));
  return make_report("deep", log10s, 64, log10s.back() - 0.05, false);
}

constexpr int kTheoryLayer = 150;

// deep_report with a prediction for every layer that matches the measurement except at layer
// 150, `offset` decades below it (its 3 spreads are 1.30 decades: 51 layers of width 64 above).
Report deep_theory_report(double offset) {
  Report r = deep_report();
  std::vector<testing::TheoryPlan> plans(r.layers.size());
  plans[kTheoryLayer - 1].grad_offset = offset;
  testing::attach_theory(r, plans);
  return r;
}

// 60 layers where the forward pass overflows at layer 30: from there on, everything is NaN.
Report nan_report() {
  std::vector<double> log10s(60, -1.0);
  Report r = make_report("nan", log10s, 32, -1.0, false);
  for (int i = 29; i < 60; ++i) {
    LayerReport& l = r.layers[static_cast<std::size_t>(i)];
    l.forward.preact.nonfinite = l.forward.preact.finite;
    l.forward.preact.finite = 0;
    l.forward.act.nonfinite = l.forward.act.finite;
    l.forward.act.finite = 0;
    l.forward.nonfinite = l.forward.preact.nonfinite + l.forward.act.nonfinite;
    l.backward.grad_preact_rms = magnitude_from_scaled(kNan, 0);
    l.backward.gain = magnitude_from_scaled(kNan, 0);
    l.backward.nonfinite = l.forward.act.nonfinite;
    r.summary.nonfinite_layers.push_back(i + 1);
  }
  r.layers[28].backward.gain = magnitude_from_scaled(kNan, 0);  // over a NaN gradient
  r.summary.first_nonfinite_layer = 30;
  r.summary.nonfinite_in_forward = true;
  r.summary.log10_grad_ratio_first_to_last = kNan;
  r.summary.mean_log10_gain = kNan;
  return r;
}

// A 2000-layer linear-like stack shrinking the gradient by 10^0.3 per layer: layer 1's gradient
// rms is about 1e-600, far below double's range.
Report extreme_report() {
  std::vector<double> log10s;
  for (int l = 1; l <= 2000; ++l) log10s.push_back(-0.3 * (2000 - l) - 0.3);
  return make_report("extreme", log10s, 32, 0.0, false);
}

// ---------------------------------------------------------------- helpers

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Removes ANSI SGR sequences (ESC [ ... m). Parsed by hand: GCC 12's <regex> trips
// -Wmaybe-uninitialized under the sanitizer build.
std::string strip_ansi(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\x1b' && i + 1 < s.size() && s[i + 1] == '[') {
      const std::size_t end = s.find('m', i);
      if (end != std::string::npos) {
        i = end;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// Display columns: code points once escape codes are removed.
std::size_t display_width(const std::string& line) {
  std::size_t n = 0;
  for (const char c : strip_ansi(line)) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

void expect_lines_fit(const std::string& text, const std::string& what) {
  for (const std::string& line : lines_of(text)) {
    EXPECT_LE(display_width(line), 120u) << what << ": " << line;
    const std::string plain = strip_ansi(line);
    EXPECT_TRUE(plain.empty() || plain.back() != ' ') << what << ", trailing blanks: " << line;
  }
}

constexpr const char* kTheoryTitle = "mean-field theory beside measurement";

// The report up to the second table (the mean-field theory beside the measurement), which shows
// the same layers and elision lines as the main table.
std::string before_theory_table(const std::string& text) {
  const std::size_t at = text.find(std::string("\n") + kTheoryTitle);
  return at == std::string::npos ? text : text.substr(0, at + 1);
}

// The second table: from its title line to the blank line after it; empty when absent.
std::string theory_table(const std::string& text) {
  const std::size_t at = text.find(std::string("\n") + kTheoryTitle);
  if (at == std::string::npos) return "";
  const std::size_t end = text.find("\n\n", at + 1);
  return text.substr(at + 1, end == std::string::npos ? std::string::npos : end - at);
}

// Table rows by layer index: a row is "<index> <width> <kind label> ...", the label being an
// activation name or "act:gelu", "layer_norm", "dropout 0.1", "residual+proj" and the like.
std::map<int, std::string> rows_of(const std::string& text) {
  std::map<int, std::string> rows;
  for (const std::string& line : lines_of(strip_ansi(before_theory_table(text)))) {
    std::istringstream in(line);
    int index = 0;
    int width = 0;
    std::string activation;
    if (!(in >> index >> width >> activation)) continue;
    const bool is_name = std::all_of(activation.begin(), activation.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || c == '_' || c == ':' || c == '+';
    });
    if (is_name) rows[index] = line;
  }
  return rows;
}

// Sum of N over the main table's "... N layers elided ..." lines.
int elided_count(const std::string& text) {
  int total = 0;
  for (const std::string& line : lines_of(strip_ansi(before_theory_table(text)))) {
    std::istringstream in(line);
    std::string dots;
    int n = 0;
    std::string word;
    std::string elided;
    if (in >> dots >> n >> word >> elided && dots == "..." &&
        (word == "layers" || word == "layer") && elided == "elided") {
      total += n;
    }
  }
  return total;
}

std::string two_decimals(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
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

TEST(ReportText, NoLineIsLongerThan120Columns) {
  Report long_name = small_report();
  long_name.spec.name = std::string(300, 'n');
  for (const bool color : {false, true}) {
    TextOptions options;
    options.color = color;
    expect_lines_fit(report_to_text(small_report(), options), "small");
    expect_lines_fit(report_to_text(deep_report(), options), "deep");
    expect_lines_fit(report_to_text(nan_report(), options), "nan");
    expect_lines_fit(report_to_text(extreme_report(), options), "extreme");
    expect_lines_fit(report_to_text(long_name, options), "long name");
    expect_lines_fit(report_to_text(softmax_output_report(), options), "softmax");
    expect_lines_fit(report_to_text(deep_theory_report(2.0), options), "deep theory");
    expect_lines_fit(report_to_text(diagnosed_report(), options), "diagnosed");
    for (const OptimizerKind opt :
         {OptimizerKind::kNone, OptimizerKind::kSgd, OptimizerKind::kAdam}) {
      expect_lines_fit(report_to_text(mixed_report(opt), options), "mixed");
    }
  }
}

TEST(ReportText, ShortStackShowsEveryLayerWithoutElision) {
  const std::string text = report_to_text(small_report());
  const std::map<int, std::string> rows = rows_of(text);
  ASSERT_EQ(rows.size(), 3u) << text;
  EXPECT_EQ(rows.begin()->first, 1);
  EXPECT_EQ(rows.rbegin()->first, 3);
  EXPECT_EQ(text.find("elided"), std::string::npos);
}

TEST(ReportText, HeaderAndSummaryNameTheRun) {
  const Report r = small_report();
  const std::string text = report_to_text(r);
  for (const std::string& expected :
       {std::string("run: small"), std::string("3 layers (2 stack + 1 output)"),
        std::string("16 -> 32 (x2) -> 4"), std::string("relu; output linear"),
        std::string("he_normal"), std::string("xavier_normal"),
        std::string("float32 | seed 7 | batch 64"), std::string("parameters  1,732"),
        std::string("memory"), std::string("summary"), std::string("mean per-layer gain"),
        std::string("non-finite layers"), std::string("dead units")}) {
    EXPECT_NE(text.find(expected), std::string::npos) << "missing '" << expected << "' in\n"
                                                      << text;
  }
}

TEST(ReportText, DeepStackElisionKeepsFirstLastAndSharpChange) {
  const Report r = deep_report();
  TextOptions options;
  options.max_rows = 40;
  const std::string text = report_to_text(r, options);
  const std::map<int, std::string> rows = rows_of(text);
  EXPECT_LE(rows.size(), 40u);
  EXPECT_TRUE(rows.count(1)) << text;
  EXPECT_TRUE(rows.count(200)) << text;
  ASSERT_TRUE(rows.count(kSharpLayer)) << text;
  EXPECT_NE(rows.at(kSharpLayer).find("gain jump"), std::string::npos) << rows.at(kSharpLayer);
  // No other layer is a sharp change, so no other row carries a note.
  for (const auto& [index, row] : rows) {
    if (index != kSharpLayer) {
      EXPECT_EQ(row.find("jump"), std::string::npos) << row;
    }
  }
  EXPECT_FALSE(rows.count(100)) << "the middle of the stack should be elided";
  EXPECT_EQ(static_cast<int>(rows.size()) + elided_count(text), 200)
      << "every layer shown or counted";
}

// A residual stack as the engine reports sigmoid-residual.json: in each of 30 blocks a sigmoid
// layer, then the residual add. Inside a block the gradient is smaller than on the stream around
// it by a factor that grows with depth (10^0.6 at the input side, 10^1.4 at the output side), so
// the gains alternate, about 0.25 and 4 at one end and 0.04 and 25 at the other: a saw-tooth whose
// teeth grow smoothly, with no sharp change. With jump_at > 0 the gradient also drops by a decade
// below op jump_at, so op jump_at - 1 has a sharp change.
Report residual_report(int jump_at) {
  constexpr int kBlocks = 30;
  std::vector<double> log10s;
  for (int k = 0; k < kBlocks; ++k) {
    const double stream = -0.01 * (kBlocks - k);
    const double offset = 0.6 + 0.8 * k / (kBlocks - 1);
    log10s.push_back(stream - offset);  // the sigmoid layer in the block
    log10s.push_back(stream);           // the residual add
  }
  for (int i = 0; jump_at > 0 && i < jump_at - 1; ++i) log10s[static_cast<std::size_t>(i)] -= 1.0;
  Report r = make_report("residual", log10s, 64, -0.01, false);
  for (LayerReport& l : r.layers) {
    l.activation.kind = Activation::kSigmoid;
    if (l.index % 2 == 1) continue;
    l.kind = OpKind::kResidualEnd;
    l.activation.kind = Activation::kLinear;
    l.backward.has_weights = false;
  }
  return r;
}

TEST(ReportText, AResidualSawToothIsNoGainJump) {
  // Compared with the median over all ops of its kind, the ends of a drifting saw-tooth were
  // "gain jumps", and every residual add beside its block's layer looked like one.
  TextOptions options;
  options.max_rows = 100;
  const std::string text = report_to_text(residual_report(0), options);
  const std::map<int, std::string> rows = rows_of(text);
  ASSERT_EQ(rows.size(), 60u) << text;
  for (const auto& [index, row] : rows) EXPECT_EQ(row.find("jump"), std::string::npos) << row;
}

TEST(ReportText, AGainJumpIsFoundAmongOpsLikeIt) {
  // A decade's drop below op 31: op 30 (a residual add) passes 10x less gradient than the adds
  // beside it; the sigmoid layer after it is like its neighbours, and so is every other op.
  TextOptions options;
  options.max_rows = 100;
  const std::map<int, std::string> rows = rows_of(report_to_text(residual_report(31), options));
  ASSERT_EQ(rows.size(), 60u);
  for (const auto& [index, row] : rows) {
    if (index == 30) {
      EXPECT_NE(row.find("gain jump"), std::string::npos) << row;
    } else {
      EXPECT_EQ(row.find("jump"), std::string::npos) << row;
    }
  }
  // Elision keeps it.
  options.max_rows = 10;
  EXPECT_TRUE(rows_of(report_to_text(residual_report(31), options)).count(30));
}

TEST(ReportText, BarGrowsWithLog10GradientOverTheRunsRange) {
  const std::string text = report_to_text(deep_report());
  const std::map<int, std::string> rows = rows_of(text);
  const auto bar_length = [&](int index) {
    const std::string& row = rows.at(index);
    return std::count(row.begin(), row.end(), '#');
  };
  // Layer 1 has the largest gradient, layer 200 the smallest: full bar and one character. A
  // dense-only table without upd/w has a bar of 22 characters.
  EXPECT_EQ(bar_length(1), 22);
  EXPECT_EQ(bar_length(200), 1);
  EXPECT_GT(bar_length(2), bar_length(199));
  EXPECT_NE(text.find("bar: log10 grad rms on a linear axis from -11.00 (1 #) to -0.05 (22 #)"),
            std::string::npos)
      << text;
  for (const auto& [index, row] : rows) {
    EXPECT_EQ(row.find('|'), std::string::npos) << "no prediction, no marker\n" << row;
  }
}

TEST(ReportText, NonFiniteLayersAreKeptAndShownAsUndefined) {
  TextOptions options;
  options.max_rows = 12;
  const std::string text = report_to_text(nan_report(), options);
  const std::map<int, std::string> rows = rows_of(text);
  EXPECT_LE(rows.size(), 12u);
  ASSERT_TRUE(rows.count(30)) << "the first non-finite layer must survive elision\n" << text;
  EXPECT_NE(rows.at(30).find("non-finite"), std::string::npos) << rows.at(30);
  // No finite value: "n/a" for the gradient, its gain and the bar, never "nan" or "(zero)".
  EXPECT_EQ(rows.at(30).find("nan"), std::string::npos) << rows.at(30);
  EXPECT_EQ(rows.at(30).find("(zero)"), std::string::npos) << rows.at(30);
  EXPECT_NE(rows.at(30).find("(n/a)"), std::string::npos) << rows.at(30);
  EXPECT_NE(rows.at(30).find("n/a"), std::string::npos) << "act rms over no finite entries\n"
                                                        << rows.at(30);
  EXPECT_NE(text.find("n/a: undefined, no finite value"), std::string::npos) << text;
  EXPECT_NE(text.find("31 layers (they begin at layer 30, in the forward pass): 30-60"),
            std::string::npos)
      << text;
  EXPECT_EQ(static_cast<int>(rows.size()) + elided_count(text), 60);
}

TEST(ReportText, MagnitudesBeyondDoubleRangeArePrintedFromTheirLog10) {
  const Report r = extreme_report();
  const std::string text = report_to_text(r);
  const std::map<int, std::string> rows = rows_of(text);
  ASSERT_TRUE(rows.count(1));
  EXPECT_NE(rows.at(1).find(two_decimals(r.layers[0].backward.grad_preact_rms.log10)),
            std::string::npos)
      << rows.at(1);
  EXPECT_EQ(text.find("inf"), std::string::npos) << "nothing here is infinite\n" << text;
  // log10 ratio = -0.3 * 1999 = -599.7, i.e. about 2.00e-600.
  EXPECT_NE(text.find("e-600 x the last's"), std::string::npos) << text;
}

TEST(ReportText, NoEscapeCodesWithoutColor) {
  for (const Report& r : {small_report(), deep_report(), nan_report()}) {
    EXPECT_EQ(report_to_text(r).find('\x1b'), std::string::npos);
  }
}

TEST(ReportText, ColorAddsEscapeCodesAndNothingElse) {
  TextOptions color;
  color.color = true;
  for (const Report& r : {small_report(), deep_report(), nan_report()}) {
    const std::string painted = report_to_text(r, color);
    EXPECT_NE(painted.find("\x1b["), std::string::npos);
    EXPECT_EQ(strip_ansi(painted), report_to_text(r));
  }
  // Non-finite rows are red.
  const std::string nan_text = report_to_text(nan_report(), color);
  EXPECT_NE(nan_text.find("\x1b[31m"), std::string::npos);
}

TEST(ReportText, ControlCharactersInTheRunNameAreNotPassedThrough) {
  Report r = small_report();
  r.spec.name = "evil\x1b[2Jname";
  const std::string text = report_to_text(r);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_NE(text.find("evil?[2Jname"), std::string::npos);
}

TEST(ReportText, OutputIsDeterministic) {
  const Report r = deep_report();
  EXPECT_EQ(report_to_text(r), report_to_text(r));
}

TEST(ReportText, SmallReportMatchesGoldenFile) {
  expect_matches_golden(report_to_text(small_report()), "report_small.txt");
}

// ---------------------------------------------------------------- mixed architectures

// The table's header line (it starts with "layer").
std::string table_header(const std::string& text) {
  for (const std::string& line : lines_of(text)) {
    if (line.rfind("layer ", 0) == 0) return line;
  }
  return "";
}

TEST(ReportText, KindColumnNamesEveryKindOfOp) {
  const std::string text = report_to_text(mixed_report(OptimizerKind::kNone));
  const std::map<int, std::string> rows = rows_of(text);
  ASSERT_EQ(rows.size(), 11u) << text;
  const std::map<int, std::string> expected = {
      {1, " relu "},           {2, " layer_norm "},    {4, " linear "}, {5, " act:gelu "},
      {6, " dropout 0.1 "},    {7, " residual x0.5 "}, {8, " relu "},   {10, " tanh "},
      {11, " residual+proj "}, {12, " rms_norm "},     {13, " linear "}};
  for (const auto& [index, label] : expected) {
    ASSERT_TRUE(rows.count(index)) << index << "\n" << text;
    EXPECT_NE(rows.at(index).find(label), std::string::npos) << rows.at(index);
  }
  EXPECT_FALSE(rows.count(3)) << "a residual begin is not reported";
}

TEST(ReportText, ResidualWithScaleAndProjectionStaysInItsColumn) {
  Report r = mixed_report(OptimizerKind::kNone);
  r.layers[8].residual.scale = 0.25;
  r.layers[5].residual.scale = 0.125;
  r.layers[5].residual.projection = true;
  const std::string text = report_to_text(r);
  const std::map<int, std::string> rows = rows_of(text);
  ASSERT_TRUE(rows.count(11) && rows.count(7)) << text;
  EXPECT_NE(rows.at(11).find(" res x0.25+proj "), std::string::npos) << rows.at(11);
  // One character too many: cut, and marked as cut, the scale kept.
  EXPECT_NE(rows.at(7).find(" res x0.125+... "), std::string::npos) << rows.at(7);
  // The label is cut to its column, so the right-aligned columns after it stay under their
  // headers: each cell ends exactly where its header ends.
  const std::string head = table_header(text);
  for (const std::string label : {"act rms", "measured", "theory"}) {
    const std::size_t end = head.find(label) + label.size();
    for (const int index : {7, 11}) {
      const std::string& row = rows.at(index);
      ASSERT_LT(end, row.size()) << row;
      EXPECT_TRUE(row[end - 1] != ' ' && row[end] == ' ') << label << " misaligned in\n"
                                                          << head << "\n"
                                                          << row;
    }
  }
}

TEST(ReportText, HeaderDescribesALayersArchitecture) {
  const std::string text = report_to_text(mixed_report(OptimizerKind::kAdam));
  for (const std::string& expected :
       {std::string("run: mixed"), std::string("depth       11 ops, 5 dense layers"),
        std::string("widths      16 -> 32 (x7) -> 64 (x3) -> 4"),
        std::string("ops         dense x5, layer_norm x1, activation x1, dropout x1, residual x2, "
                    "rms_norm x1"),
        std::string("activation  relu, linear, gelu, tanh"),
        std::string("init        he_normal, bias zeros; xavier_normal, bias zeros"),
        std::string("loss        mse | optimizer adam (lr 0.001)")}) {
    EXPECT_NE(text.find(expected), std::string::npos) << "missing '" << expected << "' in\n"
                                                      << text;
  }
  const std::string no_optimizer = report_to_text(mixed_report(OptimizerKind::kNone));
  EXPECT_NE(no_optimizer.find("loss        mse\n"), std::string::npos) << no_optimizer;
  // A stack with the default probe and no optimizer keeps its header as it was.
  EXPECT_EQ(report_to_text(small_report()).find("  loss "), std::string::npos);
}

TEST(ReportText, IrregularWidthsAreSummarisedAsARange) {
  // 80 dense ops alternating 64 and 256 wide: the runs would take a line of their own.
  std::vector<double> log10s(80, -1.0);
  std::vector<int> widths;
  for (int i = 0; i < 80; ++i) widths.push_back(i % 2 == 0 ? 64 : 256);
  widths.back() = 4;
  Report r = testing::make_report("irregular", log10s, widths, -1.0, false);
  r.spec.layers.push_back(testing::single(testing::dense_spec(64, Activation::kRelu)));
  const std::string text = report_to_text(r);
  EXPECT_NE(text.find("widths      16 -> 4..256 -> 4 (input, range over the ops, output)"),
            std::string::npos)
      << text;
  expect_lines_fit(text, "irregular");
}

TEST(ReportText, UpdateColumnAppearsOnlyWithAnOptimizer) {
  EXPECT_EQ(table_header(report_to_text(small_report())).find("upd/w"), std::string::npos);
  EXPECT_EQ(table_header(report_to_text(mixed_report(OptimizerKind::kNone))).find("upd/w"),
            std::string::npos);
  EXPECT_EQ(report_to_text(mixed_report(OptimizerKind::kNone)).find("update / weight"),
            std::string::npos);
  const Report r = mixed_report(OptimizerKind::kAdam);
  const std::string text = report_to_text(r);
  // The column's cells are right-aligned under its header, five characters wide.
  const std::size_t column = table_header(text).find("upd/w");
  ASSERT_NE(column, std::string::npos) << text;
  const std::map<int, std::string> rows = rows_of(text);
  for (const LayerReport& l : r.layers) {
    ASSERT_TRUE(rows.count(l.index)) << l.index;
    char expected[32] = "";
    if (l.backward.has_update) {
      std::snprintf(expected, sizeof expected, "%.1f", l.backward.update_to_weight.log10);
    }
    std::string cell = rows.at(l.index).substr(column, 5);
    cell.erase(0, cell.find_first_not_of(' ') == std::string::npos ? cell.size()
                                                                   : cell.find_first_not_of(' '));
    EXPECT_EQ(cell, expected) << rows.at(l.index);
    EXPECT_EQ(rows.at(l.index)[column - 1], ' ') << rows.at(l.index);
  }
}

TEST(ReportText, SummaryGivesTheDenseLayersUpdateRatiosAgainstTheRuleOfThumb) {
  const Report r = mixed_report(OptimizerKind::kAdam);
  std::vector<double> ratios;
  for (const LayerReport& l : r.layers) {
    if (l.kind == OpKind::kDense) ratios.push_back(l.backward.update_to_weight.value);
  }
  std::sort(ratios.begin(), ratios.end());
  ASSERT_EQ(ratios.size() % 2, 1u) << "an odd count, so the median is one of the ratios";
  char expected[128];
  std::snprintf(expected, sizeof expected, "min %.2e, median %.2e, max %.2e (rule of thumb ~1e-3)",
                ratios.front(), ratios[ratios.size() / 2], ratios.back());
  const std::string text = report_to_text(r);
  const std::size_t at = text.find("update / weight, dense layers");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_NE(text.find(expected, at), std::string::npos) << expected << "\n" << text;
}

TEST(ReportText, SummaryShowsTheLossValueUnlessItIsTheProbe) {
  const Report r = mixed_report(OptimizerKind::kNone);
  char expected[64];
  std::snprintf(expected, sizeof expected, "%.6g", r.loss);
  const std::string text = report_to_text(r);
  const std::size_t at = text.find("loss (mse)");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_NE(text.find(expected, at), std::string::npos) << expected << "\n" << text;
  EXPECT_EQ(report_to_text(small_report()).find("loss ("), std::string::npos);
}

TEST(ReportText, DeadJumpIgnoresOpsWithoutADerivativeStatistic) {
  // Half the units of every dense and activation op are dead; the norms, dropout and residual
  // ends between them report 0 by definition, which is no jump.
  Report r = mixed_report(OptimizerKind::kNone);
  for (LayerReport& l : r.layers) {
    if (l.kind == OpKind::kDense || l.kind == OpKind::kActivation) {
      l.forward.dead_units = l.width / 2;
      l.forward.dead_fraction = 0.5;
    }
  }
  const std::string text = report_to_text(r);
  EXPECT_EQ(text.find("dead jump"), std::string::npos) << text;
  // A real change between two dense layers is still flagged.
  r.layers[6].forward.dead_fraction = 1.0;
  EXPECT_NE(rows_of(report_to_text(r)).at(8).find("dead jump"), std::string::npos);
}

TEST(ReportText, ColorAddsEscapeCodesAndNothingElseForMixedOps) {
  TextOptions color;
  color.color = true;
  const Report r = mixed_report(OptimizerKind::kAdam);
  EXPECT_EQ(strip_ansi(report_to_text(r, color)), report_to_text(r));
}

// ---------------------------------------------------------------- mean-field theory

// The cell of a right-aligned column whose header is `label`, blanks trimmed.
std::string cell_under(const std::string& head, const std::string& row, const std::string& label,
                       std::size_t width) {
  const std::size_t end = head.find(label) + label.size();
  if (end < width || end > row.size()) return "<no cell>";
  std::string cell = row.substr(end - width, width);
  const std::size_t first = cell.find_first_not_of(' ');
  return first == std::string::npos ? "" : cell.substr(first);
}

// The bar of a row: what follows the two blanks after the last numeric column, up to the note.
std::string bar_of(const std::string& head, const std::string& row) {
  const std::size_t start = head.find("  gr") + 2;  // "gradient rms (log scale)" or "grad rms ..."
  if (start > row.size()) return "";
  std::string bar = row.substr(start);
  const std::size_t note = bar.find_first_not_of("#| ");
  if (note != std::string::npos) bar.erase(note);
  return bar.erase(bar.find_last_not_of(' ') + 1);
}

TEST(ReportText, TheoryColumnIsThePredictionOnTheMeasuredScale) {
  const Report r = mixed_report(OptimizerKind::kNone);
  const std::string text = report_to_text(r);
  const std::string head = table_header(text);
  const std::map<int, std::string> rows = rows_of(text);
  // The engine predicts relative to the last layer with a prediction; on the measured scale that
  // layer's prediction is its measurement.
  const LayerReport& anchor = r.layers.back();
  ASSERT_TRUE(anchor.theory.backward);
  const double offset = anchor.backward.grad_preact_rms.log10 - anchor.theory.log10_grad_rel_last;
  int predicted = 0;
  for (const LayerReport& l : r.layers) {
    ASSERT_TRUE(rows.count(l.index)) << l.index;
    const std::string& row = rows.at(l.index);
    const std::string theory = cell_under(head, row, "theory", 7);
    if (!l.theory.backward) {
      EXPECT_EQ(theory, "") << "blank without a prediction\n" << row;
      continue;
    }
    ++predicted;
    EXPECT_EQ(theory, two_decimals(l.theory.log10_grad_rel_last + offset)) << row;
    EXPECT_EQ(cell_under(head, row, "measured", 8), two_decimals(l.backward.grad_preact_rms.log10))
        << row;
  }
  EXPECT_EQ(predicted, 9);
  EXPECT_EQ(cell_under(head, rows.at(13), "theory", 7),
            cell_under(head, rows.at(13), "measured", 8))
      << "equal at the anchor";
  EXPECT_NE(text.find("theory: mean-field prediction of log10 grad rms, equal to the measured one "
                      "at layer 13; blank: not predicted"),
            std::string::npos)
      << text;
}

TEST(ReportText, TheoryColumnIsBlankAndTheLegendSaysWhyWithoutAnyPrediction) {
  const Report r = softmax_output_report();
  const std::string text = report_to_text(r);
  const std::string head = table_header(text);
  for (const auto& [index, row] : rows_of(text)) {
    EXPECT_EQ(cell_under(head, row, "theory", 7), "") << row;
    EXPECT_EQ(row.find('|'), std::string::npos) << row;
  }
  EXPECT_NE(text.find("theory: no mean-field prediction of the gradient (layer 3: softmax couples "
                      "the units of a layer"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("every predicted layer within 3 spreads (2 of 3 layers predicted)"),
            std::string::npos)
      << text;
  EXPECT_NE(report_to_text(deep_report()).find("no layer has a mean-field prediction"),
            std::string::npos);
}

TEST(ReportText, GroupHeaderSpansTheMeasuredAndTheoryColumns) {
  for (const OptimizerKind opt : {OptimizerKind::kNone, OptimizerKind::kAdam}) {
    const std::vector<std::string> lines = lines_of(report_to_text(mixed_report(opt)));
    const auto at = std::find_if(lines.begin(), lines.end(),
                                 [](const std::string& l) { return l.rfind("layer ", 0) == 0; });
    ASSERT_TRUE(at != lines.begin() && at != lines.end());
    const std::string& group = *(at - 1);
    const std::size_t from = at->find("measured");
    const std::size_t to = at->find("theory") + std::string("theory").size();
    const std::size_t label = group.find("log10 grad rms");
    ASSERT_NE(label, std::string::npos) << group;
    EXPECT_GE(label, from) << group << "\n" << *at;
    EXPECT_LE(label + std::string("log10 grad rms").size(), to) << group << "\n" << *at;
    EXPECT_EQ(group.find_first_not_of(' '), label) << "nothing else on the group line";
  }
}

TEST(ReportText, CorrColumnShowsTheMeasuredCorrelationWithTwoDecimals) {
  Report r = mixed_report(OptimizerKind::kNone);
  r.layers[3].forward.correlation = kNan;
  const std::string text = report_to_text(r);
  const std::string head = table_header(text);
  const std::map<int, std::string> rows = rows_of(text);
  for (const LayerReport& l : r.layers) {
    const std::string expected =
        std::isnan(l.forward.correlation) ? "n/a" : two_decimals(l.forward.correlation);
    EXPECT_EQ(cell_under(head, rows.at(l.index), "corr", 5), expected) << rows.at(l.index);
  }
  EXPECT_NE(text.find("corr: mean cosine between two examples' outputs (measured)"),
            std::string::npos)
      << text;
}

TEST(ReportText, FlaggedLayerIsNotedAsTheoryDevAndNamedInTheSummary) {
  const Report r = mixed_report(OptimizerKind::kAdam);
  ASSERT_EQ(r.summary.theory_flagged_layers, std::vector<int>{8});
  const std::string text = report_to_text(r);
  for (const auto& [index, row] : rows_of(text)) {
    EXPECT_EQ(row.find("theory dev") != std::string::npos, index == 8) << row;
  }
  EXPECT_NE(text.find("theory                                1 layer beyond 3 spreads of the "
                      "mean-field prediction (layer 8)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("theory dev: "), std::string::npos) << "the legend explains the note";
  const std::string fine = report_to_text(small_report());
  EXPECT_NE(fine.find("every predicted layer within 3 spreads\n"), std::string::npos) << fine;
  EXPECT_EQ(fine.find("theory dev"), std::string::npos) << fine;
}

TEST(ReportText, BarMarksThePredictionWhereItIsOffTheBarsEnd) {
  const Report r = mixed_report(OptimizerKind::kNone);
  const std::string text = report_to_text(r);
  const std::string head = table_header(text);
  const std::map<int, std::string> rows = rows_of(text);
  int marked = 0;
  for (const LayerReport& l : r.layers) {
    const std::string bar = bar_of(head, rows.at(l.index));
    const auto marks = std::count(bar.begin(), bar.end(), '|');
    EXPECT_LE(marks, l.theory.backward ? 1 : 0) << bar;
    marked += static_cast<int>(marks);
  }
  EXPECT_GT(marked, 1) << text;
  // At the anchor the prediction is the measurement: the bar is left whole. Layer 8's prediction
  // is 1.2 decades below its measurement, well inside its bar.
  const std::string anchor = bar_of(head, rows.at(13));
  EXPECT_EQ(anchor, std::string(anchor.size(), '#')) << anchor;
  const std::string flagged = bar_of(head, rows.at(8));
  ASSERT_NE(flagged.find('|'), std::string::npos) << flagged;
  EXPECT_LT(flagged.find('|') + 3, flagged.size()) << flagged;
  EXPECT_NE(text.find("; | theory where apart"), std::string::npos) << text;
  // A prediction above the measurement is drawn after the bar.
  Report above = r;
  above.layers[0].theory.backward = true;
  above.layers[0].theory.log10_grad_rel_last = 0.0;  // the anchor's value, a decade above
  const std::string bar = bar_of(head, rows_of(report_to_text(above)).at(1));
  EXPECT_EQ(bar.back(), '|') << bar;
  EXPECT_NE(bar.find("# "), std::string::npos) << bar;
}

TEST(ReportText, WidestTableKeepsABarOfTwelveCharacters) {
  const std::string text = report_to_text(mixed_report(OptimizerKind::kAdam));
  const std::size_t at = text.find(" #), 1 # = ");
  ASSERT_NE(at, std::string::npos) << text;
  const std::size_t open = text.rfind('(', at);
  EXPECT_GE(std::stoi(text.substr(open + 1, at - open - 1)), 12) << text;
  expect_lines_fit(text, "widest");
}

TEST(ReportText, ElisionKeepsATheoryDeviationAsASharpChange) {
  TextOptions options;
  options.max_rows = 40;
  const std::string text = report_to_text(deep_theory_report(2.0), options);
  const std::map<int, std::string> rows = rows_of(text);
  ASSERT_TRUE(rows.count(kTheoryLayer)) << text;
  EXPECT_NE(rows.at(kTheoryLayer).find("theory dev"), std::string::npos) << rows.at(kTheoryLayer);
  ASSERT_TRUE(rows.count(kSharpLayer)) << text;
  EXPECT_NE(rows.at(kSharpLayer).find("gain jump"), std::string::npos) << rows.at(kSharpLayer);
  EXPECT_EQ(static_cast<int>(rows.size()) + elided_count(text), 200);
}

TEST(ReportText, TheoryDeviationRanksByDeviationOverThreeSpreads) {
  // One row besides the first and the last: the gain jump at 117 scores |1.05 - 0.05| / log10(2)
  // = 3.3; the theory deviation scores offset / 1.30 (3 spreads), so 2 decades lose and 5 win.
  TextOptions options;
  options.max_rows = 3;
  const std::map<int, std::string> modest =
      rows_of(report_to_text(deep_theory_report(2.0), options));
  EXPECT_TRUE(modest.count(kSharpLayer) && !modest.count(kTheoryLayer));
  const std::map<int, std::string> large =
      rows_of(report_to_text(deep_theory_report(5.0), options));
  EXPECT_TRUE(large.count(kTheoryLayer) && !large.count(kSharpLayer));
}

// ---------------------------------------------------------------- theory beside measurement

// The second table's header line and its rows by layer index, escape codes removed.
struct TheoryTable {
  std::string head;
  std::map<int, std::string> rows;
  std::vector<std::string> elided;  // its "... N layers elided ..." lines, in order
};

TheoryTable theory_table_of(const std::string& text) {
  TheoryTable t;
  for (const std::string& line : lines_of(strip_ansi(theory_table(text)))) {
    if (line.rfind("layer ", 0) == 0) t.head = line;
    if (line.find(" elided ...") != std::string::npos) t.elided.push_back(line);
    std::istringstream in(line);
    int index = 0;
    if (in >> index) t.rows[index] = line;
  }
  return t;
}

// The main table's elision lines, to compare with the second table's.
std::vector<std::string> main_elided_lines(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& line : lines_of(strip_ansi(before_theory_table(text)))) {
    if (line.find(" elided ...") != std::string::npos) out.push_back(line);
  }
  return out;
}

std::string three_digits(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// The deviation in spreads with one decimal; a zero shown without a sign.
std::string spreads(double deviation, double spread) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%+.1fs", deviation / spread);
  const std::string out = buf;
  return out == "+0.0s" || out == "-0.0s" ? "0.0s" : out;
}

// Each column's cell is right-aligned under its header: the cell is what lies between the end of
// the previous header and the end of this one, blanks trimmed (a row ends at its last cell).
std::string theory_cell(const TheoryTable& t, int index, const std::string& label) {
  const std::size_t at = t.head.find(label);
  if (at == std::string::npos || at == 0) return "<no column>";
  const std::size_t end = at + label.size();
  const std::size_t begin = t.head.find_last_not_of(' ', at - 1) + 1;
  std::string row = t.rows.at(index);
  row.resize(std::max(row.size(), end), ' ');
  if (row[begin] != ' ' || (end < row.size() && row[end] != ' ')) return "<misaligned>";
  std::string cell = row.substr(begin, end - begin);
  const std::size_t first = cell.find_first_not_of(' ');
  return first == std::string::npos ? "" : cell.substr(first);
}

void expect_theory_cells(const Report& r, const std::string& what) {
  const TheoryTable t = theory_table_of(report_to_text(r));
  ASSERT_FALSE(t.head.empty()) << what;
  EXPECT_EQ(t.head,
            "layer  q measured   q theory       dev  chi theory  gain^2 measured  corr measured  "
            "corr theory");
  ASSERT_EQ(t.rows.size(), r.layers.size()) << what;
  for (const LayerReport& l : r.layers) {
    ASSERT_TRUE(t.rows.count(l.index)) << what << " " << l.index;
    const LayerTheory& th = l.theory;
    const std::string& row = t.rows.at(l.index);
    EXPECT_EQ(theory_cell(t, l.index, "q measured"),
              three_digits(l.forward.preact.rms * l.forward.preact.rms))
        << row;
    EXPECT_EQ(theory_cell(t, l.index, "q theory"), th.forward ? three_digits(th.q) : "") << row;
    EXPECT_EQ(theory_cell(t, l.index, "dev"),
              th.forward ? spreads(th.log_q_deviation, th.log_q_spread) : "")
        << row;
    EXPECT_EQ(theory_cell(t, l.index, "chi theory"),
              th.backward ? three_digits(th.grad_factor) : "")
        << row;
    EXPECT_EQ(theory_cell(t, l.index, "gain^2 measured"),
              three_digits(l.backward.gain.value * l.backward.gain.value))
        << row;
    EXPECT_EQ(theory_cell(t, l.index, "corr measured"), three_digits(l.forward.correlation)) << row;
    EXPECT_EQ(theory_cell(t, l.index, "corr theory"),
              th.forward ? three_digits(th.correlation) : "")
        << row;
    EXPECT_EQ(row.find("beyond 3 spreads") != std::string::npos, th.flagged) << row;
  }
}

TEST(ReportText, TheoryTableShowsEachPredictionBesideItsMeasurement) {
  const Report mixed = mixed_report(OptimizerKind::kNone);
  expect_theory_cells(mixed, "mixed");
  expect_theory_cells(small_report(), "small");
  // The cases the loop must have met: a flagged layer and layers without a gradient prediction.
  EXPECT_TRUE(mixed.layers[6].theory.flagged);
  EXPECT_FALSE(mixed.layers[0].theory.backward);
  const TheoryTable t = theory_table_of(report_to_text(mixed));
  EXPECT_NE(t.rows.at(8).find("beyond 3 spreads"), std::string::npos) << t.rows.at(8);
  EXPECT_NE(theory_table(report_to_text(mixed)).find("beyond 3 spreads: "), std::string::npos)
      << "the legend explains the note";
}

TEST(ReportText, TheoryTableLeavesCellsBlankWithoutAPrediction) {
  // The softmax output has no forward prediction, and no layer a gradient prediction.
  const Report r = softmax_output_report();
  expect_theory_cells(r, "softmax");
  const TheoryTable t = theory_table_of(report_to_text(r));
  ASSERT_TRUE(t.rows.count(3));
  for (const std::string label : {"q theory", "dev", "chi theory", "corr theory"}) {
    EXPECT_EQ(theory_cell(t, 3, label), "") << label << "\n" << t.rows.at(3);
  }
  EXPECT_EQ(theory_cell(t, 3, "q measured"),
            three_digits(r.layers[2].forward.preact.rms * r.layers[2].forward.preact.rms));
  for (const auto& [index, row] : t.rows) EXPECT_EQ(theory_cell(t, index, "chi theory"), "") << row;
}

TEST(ReportText, TheoryTableKeepsTheMainTablesRowsAndElisionLines) {
  TextOptions options;
  options.max_rows = 40;
  const std::string text = report_to_text(deep_theory_report(2.0), options);
  const TheoryTable t = theory_table_of(text);
  const std::map<int, std::string> rows = rows_of(text);
  std::vector<int> main_indices;
  std::vector<int> theory_indices;
  for (const auto& [index, row] : rows) main_indices.push_back(index);
  for (const auto& [index, row] : t.rows) theory_indices.push_back(index);
  EXPECT_EQ(theory_indices, main_indices) << text;
  EXPECT_TRUE(t.rows.count(kTheoryLayer)) << text;
  EXPECT_EQ(t.elided, main_elided_lines(text)) << text;
  EXPECT_FALSE(t.elided.empty());
}

TEST(ReportText, TheoryTableGivesTheFirstLayersReasonWhenNothingIsPredicted) {
  Report r = softmax_output_report();
  const std::string reason = "no prediction: the input's second moment is unknown";
  testing::attach_theory(
      r, {{false, false, reason, 0.0, 0.0},
          {false, false, "no prediction: the forward prediction stopped here", 0.0, 0.0},
          {false, false, "no prediction: softmax", 0.0, 0.0}});
  const std::string text = report_to_text(r);
  EXPECT_NE(text.find(std::string("\n") + kTheoryTitle + ": " + reason + "\n\nsummary\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("q measured"), std::string::npos) << "no table without a prediction";
  // Without a reason (a report built without theory) the line still says what is missing.
  EXPECT_NE(report_to_text(deep_report())
                .find(std::string(kTheoryTitle) + ": no layer has a prediction\n"),
            std::string::npos);
}

TEST(ReportText, TheoryTableCellsStayUnderTheirHeadersAtExtremeValues) {
  Report r = mixed_report(OptimizerKind::kAdam);
  LayerReport& l = r.layers[3];
  l.forward.preact.rms = 1e200;  // q = 1e400, beyond double
  l.theory.q = 1.23e300;
  l.theory.log_q_deviation = -1e4;  // ten thousand spreads
  l.theory.grad_factor = 2.7e-6;
  l.backward.gain = magnitude_from_log10(-200.25);  // gain^2 = 10^-400.5
  l.forward.correlation = -0.000123;
  const std::string text = report_to_text(r);
  expect_lines_fit(text, "extreme theory");
  const TheoryTable t = theory_table_of(text);
  ASSERT_TRUE(t.rows.count(5)) << text;
  EXPECT_EQ(theory_cell(t, 5, "q measured"), "1.00e+400") << t.rows.at(5);
  EXPECT_EQ(theory_cell(t, 5, "q theory"), "1.23e+300") << t.rows.at(5);
  // Too many digits for one decimal: none.
  char dev[64];
  std::snprintf(dev, sizeof dev, "%+.0fs", l.theory.log_q_deviation / l.theory.log_q_spread);
  EXPECT_EQ(theory_cell(t, 5, "dev"), dev) << t.rows.at(5);
  EXPECT_EQ(theory_cell(t, 5, "chi theory"), "2.7e-06") << t.rows.at(5);
  EXPECT_EQ(theory_cell(t, 5, "gain^2 measured"), "3.16e-401") << t.rows.at(5);
  EXPECT_EQ(theory_cell(t, 5, "corr measured"), "-0.000123") << t.rows.at(5);
}

TEST(ReportText, TheoryTablePaintsFlaggedRowsYellowOnlyWithColor) {
  TextOptions color;
  color.color = true;
  const Report r = mixed_report(OptimizerKind::kAdam);
  const std::string painted = theory_table(report_to_text(r, color));
  for (const std::string& line : lines_of(painted)) {
    std::istringstream in(strip_ansi(line));
    int index = 0;
    if (!(in >> index)) continue;
    EXPECT_EQ(line.rfind("\x1b[33m", 0) == 0, index == 8) << line;
  }
  EXPECT_EQ(theory_table(report_to_text(r)).find('\x1b'), std::string::npos);
}

TEST(ReportText, MixedReportMatchesGoldenFile) {
  expect_matches_golden(report_to_text(mixed_report(OptimizerKind::kAdam)), "report_mixed.txt");
}

// ---------------------------------------------------------------- the diagnosis

// The report from its "Verdict:" line (escape codes and all) to the end: the diagnosis comes last.
std::string diagnosis_section(const std::string& text) {
  const std::size_t at = text.rfind("Verdict: ");
  if (at == std::string::npos) return "";
  const std::size_t line = text.rfind('\n', at);
  return text.substr(line == std::string::npos ? 0 : line + 1);
}

TEST(ReportText, FindingsFollowTheSummaryWithEvidenceAdviceAndChecks) {
  const std::string text = report_to_text(diagnosed_report());
  const std::string section = diagnosis_section(text);
  ASSERT_FALSE(section.empty()) << text;
  EXPECT_LT(text.find("\nsummary\n"), text.find("\nVerdict: "));
  for (const std::string& expected :
       {std::string("Verdict: warning (2 warnings, 1 info; 1 consequence)\nFindings\n"),
        std::string("\n  [warning] vanishing_gradients (whole network)\n    The gradient shrinks"),
        std::string("\n    log10_grad_ratio_first_to_last = -3 (threshold <= -2)\n"),
        std::string("\n    mean_log10_gain = -0.6\n"),
        std::string("\n    -> Initialise the ReLU layers with he_normal,"),
        std::string("\n       --set stack.init=he_normal\n"),
        std::string("\n       checked: gradient_shrink_decades 3 -> 0.25; helped; after: healthy "
                    "(mismatched_init (info))\n"),
        std::string("\n    tried and rejected (the check showed no improvement):\n"
                    "    x  Switch the hidden activation to tanh, whose derivative is 1 at 0.\n"
                    "       --set stack.activation=tanh\n"
                    "       --set stack.init=xavier_normal\n"
                    "       checked: gradient_shrink_decades 3 -> 3.5; did not help; after: "
                    "warning (vanishing_gradients (warning),\n"
                    "         saturated_units (warning))\n"),
        // The consequence, folded under its root without advice of its own.
        std::string("\n    consequences of vanishing_gradients (fixed with it):\n"
                    "      [warning] fp16_gradient_underflow at layer 1\n"),
        std::string("\n  [warning] dead_units at layer 3\n"),
        std::string("\n    dead_fraction = 0.25 (threshold >= 0.1)\n"),
        std::string("\n  [info] mismatched_init at layer 1\n")}) {
    EXPECT_NE(section.find(expected), std::string::npos) << "missing '" << expected << "' in\n"
                                                         << section;
  }
  // The unchecked advice has no check line.
  const std::size_t leaky = section.find("-> Use leaky_relu");
  ASSERT_NE(leaky, std::string::npos);
  EXPECT_EQ(section.find("checked:", leaky), std::string::npos) << section;
}

TEST(ReportText, WithoutFindingsTheVerdictIsHealthyAndFindingsNone) {
  const std::string text = report_to_text(small_report());
  const std::string tail = "\nVerdict: healthy\nFindings: none\n";
  ASSERT_GE(text.size(), tail.size());
  EXPECT_EQ(text.substr(text.size() - tail.size()), tail) << text;
}

TEST(ReportText, EvidenceFromAnotherLayerNamesItsLayer) {
  Report r = diagnosed_report();
  r.findings[0].evidence[1].layer = 5;
  EXPECT_NE(report_to_text(r).find("\n    mean_log10_gain at layer 5 = -0.6\n"), std::string::npos);
}

TEST(ReportText, LongAdviceIsWrappedWithin120ColumnsAndKeepsEveryCharacter) {
  Report r = diagnosed_report();
  std::string sentence;
  for (int i = 0; i < 40; ++i) sentence += "word" + std::to_string(i) + " ";
  sentence += "end.";
  // One JSON value of 300 characters without a blank: no place to break but inside it.
  std::string value = "\"";
  for (int i = 0; i < 298; ++i) value += static_cast<char>('a' + i % 26);
  value += "\"";
  Finding& f = r.findings[0];
  f.explanation = sentence;
  f.advice[0].text = sentence;
  f.advice[0].changes.push_back({"layers[12].block[3].init", value});
  f.advice[0].check->findings_after.assign(12, "saturating_hidden_activation (warning)");
  f.evidence[0].quantity = std::string(150, 'q');
  for (const bool color : {false, true}) {
    TextOptions options;
    options.color = color;
    expect_lines_fit(report_to_text(r, options), color ? "long advice, colour" : "long advice");
  }
  // The pieces of the cut --set line put back together are the change, whole.
  const std::vector<std::string> lines = lines_of(diagnosis_section(report_to_text(r)));
  std::string joined;
  bool in_set = false;
  for (const std::string& line : lines) {
    const std::size_t text_at = line.find_first_not_of(' ');
    if (text_at == std::string::npos) continue;
    const std::string text = line.substr(text_at);
    if (text.rfind("--set 'layers[12]", 0) == 0) in_set = true;
    if (in_set && (text.rfind("--set", 0) == 0 || text.rfind("checked:", 0) == 0) &&
        !joined.empty()) {
      break;
    }
    if (in_set) joined += text;
  }
  EXPECT_EQ(joined, "--set 'layers[12].block[3].init=" + value + "'");
  // The sentence wraps at blanks: every word is whole on some line.
  const std::string section = diagnosis_section(report_to_text(r));
  for (int i = 0; i < 40; ++i) {
    const std::string word = " word" + std::to_string(i);
    EXPECT_TRUE(section.find(word + " ") != std::string::npos ||
                section.find(word + "\n") != std::string::npos)
        << word;
  }
}

TEST(ReportText, ColourInTheFindingsIsOnlyOnTheSeverityTags) {
  TextOptions color;
  color.color = true;
  const Report r = diagnosed_report();
  const std::string painted = diagnosis_section(report_to_text(r, color));
  EXPECT_EQ(strip_ansi(painted), diagnosis_section(report_to_text(r)));
  EXPECT_NE(painted.find("\x1b[33m[warning]\x1b[0m vanishing_gradients"), std::string::npos)
      << painted;
  EXPECT_NE(painted.find("\x1b[2m[info]\x1b[0m mismatched_init"), std::string::npos) << painted;
  // Every coloured span (red, yellow, dim) is a tag; the section's headings are bold, not coloured.
  int tags = 0;
  for (std::size_t at = painted.find("\x1b["); at != std::string::npos;
       at = painted.find("\x1b[", at + 1)) {
    const std::size_t m = painted.find('m', at);
    const std::string sgr = painted.substr(at, m - at + 1);
    if (sgr == "\x1b[0m" || sgr == "\x1b[1m") continue;
    EXPECT_EQ(painted[m + 1], '[') << painted.substr(at, 40);
    ++tags;
  }
  EXPECT_EQ(tags, 4);  // three roots and one consequence
  Report error = r;
  error.findings[0].severity = Severity::kError;
  EXPECT_NE(report_to_text(error, color).find("\x1b[31m[error]\x1b[0m"), std::string::npos);
}

TEST(ReportText, TheRemedyComesFirstWithItsPiecesItsArgumentsAndItsCheck) {
  const std::string text = report_to_text(diagnosed_report());
  const std::size_t remedy = text.find(
      "Remedy: 2 changes for 2 warnings (checked by re-running: "
      "warning -> healthy)\n");
  ASSERT_NE(remedy, std::string::npos) << text;
  // Before the evidence: the table, the summary and the findings follow it.
  EXPECT_LT(remedy, text.find("layer  width"));
  EXPECT_LT(remedy, text.find("Verdict: "));
  for (const std::string& expected :
       {std::string("\n  1. Initialise the ReLU layers with he_normal"),
        std::string("(for vanishing_gradients)\n"), std::string("\n  2. Use leaky_relu"),
        std::string("(for dead_units)\n"),
        std::string("\n  apply them together with:\n    --set stack.init=he_normal\n"
                    "    --set 'stack.activation=\"leaky_relu\"'\n"),
        std::string("\n  after it: mismatched_init (info)\n")}) {
    EXPECT_NE(text.find(expected, remedy), std::string::npos) << "missing '" << expected << "'\n"
                                                              << text;
  }
  Report none = diagnosed_report();
  none.remedy.reset();
  EXPECT_EQ(report_to_text(none).find("Remedy"), std::string::npos);
}

TEST(ReportText, DiagnosedReportMatchesGoldenFile) {
  expect_matches_golden(report_to_text(diagnosed_report()), "report_diagnosed.txt");
}

}  // namespace
}  // namespace gradscope
