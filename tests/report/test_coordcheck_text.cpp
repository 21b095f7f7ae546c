// The coordinate check's text, Markdown and charts: the verdict names the worst row and says FAIL
// or PASS as the result does, lines fit a terminal, tables keep their columns, and each chart
// plots one line per row with a point per width whose size is finite.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

#include "coordcheck_fixture.hpp"
#include "gradscope/report/coordcheck_svg.hpp"
#include "gradscope/report/coordcheck_text.hpp"
#include "xml_check.hpp"

namespace gradscope {
namespace {

using testing::flat_coordcheck;
using testing::parse_xml;
using testing::sp_coordcheck;
using testing::sp_coordcheck_with_depth;
using testing::XmlDocument;
using testing::XmlElement;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// What a terminal shows: code points ("±" is two bytes, one column).
std::size_t columns_of(const std::string& s) {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// The line of the step-`step` table that starts with `label` and has `quantity` in it.
std::string row_line(const std::string& text, int step, const std::string& label,
                     const std::string& quantity) {
  bool in_step = false;
  for (const std::string& line : lines_of(text)) {
    if (line.rfind("step ", 0) == 0) in_step = line.rfind("step " + std::to_string(step), 0) == 0;
    if (in_step && line.rfind(label, 0) == 0 &&
        line.find(" " + quantity + " ") != std::string::npos) {
      return line;
    }
  }
  return "";
}

TEST(CoordcheckText, FailNamesTheWorstRowAndEveryLineFitsATerminal) {
  const std::string text = coordcheck_text(sp_coordcheck());
  EXPECT_NE(text.find("FAIL: ops.2 dense change at step 1 grows with slope +1.00 "
                      "(expected 0 ± 0.1)\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("PASS"), std::string::npos);
  // 3 readout size rows after init, the readout's change at step 1.
  EXPECT_NE(text.find("3 of 21 width rows are outside their band"), std::string::npos) << text;
  for (const std::string& line : lines_of(text)) {
    EXPECT_LE(columns_of(line), 100u) << line;
    EXPECT_EQ(line.find_last_not_of(' ') + 1, line.size()) << "trailing blanks: " << line;
  }
}

TEST(CoordcheckText, HeaderNamesTheCheck) {
  const std::string text = coordcheck_text(sp_coordcheck_with_depth());
  EXPECT_EQ(text.rfind("gradscope coordcheck: mlp3-sp\n", 0), 0u) << text;
  for (const char* part :
       {"parametrization  sp, base width 64, base depth 3\n",
        "widths           64, 128, 256, 512, 1024\n", "depths           2, 4, 8\n",
        "seeds            4\n", "optimizer        sgd, lr 0.1, momentum 0.9\n",
        "steps            2 ", "multipliers at width 1024 (1 at the base width 64)\n",
        "step 0 (init)\n", "step 1 (after 1 update)\n", "step 2 (after 2 updates)\n"}) {
    EXPECT_NE(text.find(part), std::string::npos) << part << "\n" << text;
  }
  // The multipliers table: one line per tensor, its role and three 1s under sp.
  EXPECT_NE(text.find("ops.2.bias    vector           1     1      1\n"), std::string::npos)
      << text;
}

TEST(CoordcheckText, RowsShowSizesAtTheExtremeWidthsSlopeBandAndVerdict) {
  const CoordCheckResult r = sp_coordcheck();
  const std::string text = coordcheck_text(r);
  const CoordRow& worst = r.rows[17];
  const std::string line = row_line(text, 1, "ops.2 dense", "change");
  ASSERT_FALSE(line.empty()) << text;
  // l1 at width 64 and at width 1024 with three significant digits, as the reports print sizes.
  char small[32], large[32];
  std::snprintf(small, sizeof small, "%.3g", worst.l1.front());
  std::snprintf(large, sizeof large, "%.3g", worst.l1.back());
  EXPECT_NE(line.find(std::string(small) + "  "), std::string::npos) << line;
  EXPECT_NE(line.find(large), std::string::npos) << line;
  EXPECT_NE(line.find("+1.00 ± 0.01"), std::string::npos) << line;
  EXPECT_NE(line.find("GROWS"), std::string::npos) << line;
  EXPECT_NE(row_line(text, 1, "ops.0 dense", "size").find("FLAT"), std::string::npos);
}

TEST(CoordcheckText, AnOverflowedWidthReadsNotAvailable) {
  const std::string line = row_line(coordcheck_text(sp_coordcheck()), 2, "ops.2 dense", "size");
  ASSERT_FALSE(line.empty());
  // l1 at 1024 is NaN, the slope undefined: "n/a" as the reports spell NaN, never "nan".
  const std::size_t first = line.find("n/a");
  ASSERT_NE(first, std::string::npos) << line;
  EXPECT_NE(line.find("n/a", first + 3), std::string::npos) << line;  // l1 at 1024 and the slope
  EXPECT_EQ(line.find("nan"), std::string::npos) << line;
}

TEST(CoordcheckText, PassWhenEveryRowIsFlat) {
  const std::string text = coordcheck_text(flat_coordcheck());
  EXPECT_NE(text.find("\nPASS: every row is flat within its band\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("FAIL"), std::string::npos);
  EXPECT_EQ(text.find("GROWS"), std::string::npos);
  EXPECT_NE(text.find("parametrization  mup"), std::string::npos);
}

TEST(CoordcheckText, DepthCheckHasItsTableAndItsVerdict) {
  const std::string text = coordcheck_text(sp_coordcheck_with_depth());
  EXPECT_NE(text.find("depth check at width 64"), std::string::npos) << text;
  EXPECT_NE(text.find("rms L=2"), std::string::npos);
  // (The sentence is wrapped at 100 columns.)
  EXPECT_NE(text.find("FAIL: ops.3 residual (the final stream) size against depth at step 2 "
                      "grows with slope +0.51\n  (expected 0 ± 0.1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("3 of 21 width rows and 3 of 3 depth rows are outside their band"),
            std::string::npos);
  // Only the depth check failing still fails.
  CoordCheckResult depth_only = sp_coordcheck_with_depth();
  depth_only.worst = -1;
  const std::string t2 = coordcheck_text(depth_only);
  EXPECT_NE(t2.find("FAIL: ops.3 residual (the final stream)"), std::string::npos);
  EXPECT_EQ(t2.find("PASS"), std::string::npos);
}

TEST(CoordcheckText, LongLabelsAreCutInTheMiddleToFit) {
  CoordCheckResult r = sp_coordcheck();
  r.rows[0].label = "ops.12.attention.in_projection.query.weight";
  const std::string text = coordcheck_text(r);
  for (const std::string& line : lines_of(text)) EXPECT_LE(columns_of(line), 100u) << line;
  EXPECT_NE(text.find("ops.12."), std::string::npos);
  EXPECT_NE(text.find("ops.12.atten...query.weight  input"), std::string::npos) << text;
}

// The number of '|' that delimit cells: an escaped "\|" is a character of a cell.
std::size_t cell_pipes(const std::string& line) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '|' && (i == 0 || line[i - 1] != '\\')) ++n;
  }
  return n;
}

TEST(CoordcheckMarkdown, EveryTableLineHasItsTablesColumns) {
  CoordCheckResult r = sp_coordcheck_with_depth();
  r.rows[3].label = "ops.0 a|b *c*";  // Markdown that must not split or style a cell
  const std::string md = coordcheck_markdown(r);
  std::size_t tables = 0;
  std::size_t columns = 0;
  bool in_table = false;
  for (const std::string& line : lines_of(md)) {
    if (line.empty() || line.front() != '|') {
      in_table = false;
      continue;
    }
    if (!in_table) {
      ++tables;
      columns = cell_pipes(line);
      in_table = true;
    }
    EXPECT_EQ(cell_pipes(line), columns) << line;
    EXPECT_EQ(line.back(), '|') << line;
  }
  // Check, multipliers, steps 0..2, depth.
  EXPECT_EQ(tables, 6u) << md;
  EXPECT_NE(md.find("ops.0 a\\|b \\*c\\*"), std::string::npos);
  EXPECT_EQ(md.rfind("# gradscope coordcheck: mlp3-sp\n", 0), 0u);
  EXPECT_NE(md.find("**FAIL**: ops.2 dense change at step 1 grows with slope +1.00 "
                    "(expected 0 ± 0.1)"),
            std::string::npos)
      << md;
  const std::string pass = coordcheck_markdown(flat_coordcheck());
  EXPECT_NE(pass.find("**PASS**: every row is flat within its band"), std::string::npos);
  EXPECT_EQ(pass.find("FAIL"), std::string::npos);
}

// ---- Charts

XmlElement chart(const std::string& svg) {
  const XmlDocument doc = parse_xml(svg);
  EXPECT_TRUE(doc.errors.empty()) << doc.errors.front();
  EXPECT_EQ(doc.root.name, "svg");
  return doc.root;
}

struct Plotted {
  std::string label;
  std::vector<double> x, y;
};

// Each series group's label and its markers' data, in order.
std::vector<Plotted> plotted(const XmlElement& root) {
  std::vector<Plotted> out;
  for (const XmlElement* g : root.find_all("g", "series")) {
    Plotted p;
    p.label = g->get("data-label");
    for (const XmlElement* m :
         g->find_all([](const XmlElement& e) { return e.has_class("point"); })) {
      p.x.push_back(std::stod(m->get("data-x")));
      p.y.push_back(std::stod(m->get("data-y")));
    }
    out.push_back(p);
  }
  return out;
}

// The rows of `quantity` at `step`, each as it should be drawn: log2 width against log2 l1 where
// l1 is finite and positive.
std::vector<Plotted> expected_lines(const CoordCheckResult& r, CoordQuantity quantity, int step) {
  std::vector<Plotted> out;
  for (const CoordRow& row : r.rows) {
    if (row.quantity != quantity || row.step != step) continue;
    Plotted p;
    p.label = row.label;
    for (std::size_t i = 0; i < r.spec.widths.size(); ++i) {
      if (!(std::isfinite(row.l1[i]) && row.l1[i] > 0)) continue;
      p.x.push_back(std::log2(static_cast<double>(r.spec.widths[i])));
      p.y.push_back(std::log2(row.l1[i]));
    }
    out.push_back(p);
  }
  return out;
}

// Markers carry their data with 17 significant digits, so the values compare exactly.
void expect_lines(const std::vector<Plotted>& got, const std::vector<Plotted>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].label, want[i].label);
    EXPECT_EQ(got[i].x, want[i].x) << want[i].label;
    EXPECT_EQ(got[i].y, want[i].y) << want[i].label;
  }
}

TEST(CoordcheckSvg, WidthChartPlotsEachSizeRowAtTheStep) {
  const CoordCheckResult r = sp_coordcheck();
  for (int step = 0; step <= 2; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const std::vector<Plotted> got = plotted(chart(coordcheck_width_chart_svg(r, step)));
    expect_lines(got, expected_lines(r, CoordQuantity::kSize, step));
    ASSERT_EQ(got.size(), 3u);  // the three ops' outputs
    EXPECT_EQ(got[0].x.size(), 5u);
  }
  // The readout overflowed at width 1024 at step 2: four points, the NaN left out.
  const std::vector<Plotted> step2 = plotted(chart(coordcheck_width_chart_svg(r, 2)));
  EXPECT_EQ(step2[2].x.size(), 4u);
  EXPECT_EQ(step2[2].x.back(), 9.0);  // log2 512
}

TEST(CoordcheckSvg, ChangeChartPlotsEachChangeRowAndSaysWhyStepZeroIsEmpty) {
  const CoordCheckResult r = sp_coordcheck();
  const XmlElement root = chart(coordcheck_change_chart_svg(r, 1));
  expect_lines(plotted(root), expected_lines(r, CoordQuantity::kChange, 1));
  // The readout's change grows as the width: one unit of log2 per doubling, to within the
  // fixture's 1% wobble (log2 1.02 < 0.03).
  const std::vector<Plotted> lines = plotted(root);
  EXPECT_NEAR(lines[2].y.back() - lines[2].y.front(), 4.0, 0.03);
  const std::string empty = coordcheck_change_chart_svg(r, 0);
  chart(empty);
  EXPECT_NE(empty.find("no change rows at step 0"), std::string::npos);
}

TEST(CoordcheckSvg, DepthChartPlotsTheStreamsRowsOneLineEach) {
  CoordCheckResult r = sp_coordcheck_with_depth();
  // A row inside the block is in the table, not on the stream's chart.
  DepthRow inner = r.depth_rows[0];
  inner.stream = false;
  inner.label = "ops.2 dense";
  r.depth_rows.push_back(inner);
  const std::vector<Plotted> got = plotted(chart(coordcheck_depth_chart_svg(r)));
  ASSERT_EQ(got.size(), 3u);
  for (std::size_t s = 0; s < 3; ++s) {
    EXPECT_EQ(got[s].label, "size, step " + std::to_string(s));
    EXPECT_EQ(got[s].x, (std::vector<double>{1.0, 2.0, 3.0}));
    std::vector<double> want;
    for (const double v : r.depth_rows[s].rms) want.push_back(std::log2(v));
    EXPECT_EQ(got[s].y, want);
  }
  const std::string none = coordcheck_depth_chart_svg(sp_coordcheck());
  EXPECT_TRUE(plotted(chart(none)).empty());
  EXPECT_NE(none.find("no depth check"), std::string::npos);
}

TEST(CoordcheckSvg, LabelsWithMarkupStayWellFormed) {
  CoordCheckResult r = sp_coordcheck();
  r.name = "a<b & \"c\"";
  r.rows[1].label = "ops.0 <dense> & 'x'";
  const XmlElement root = chart(coordcheck_width_chart_svg(r, 1));
  EXPECT_EQ(plotted(root)[0].label, "ops.0 <dense> & 'x'");
}

}  // namespace
}  // namespace gradscope
