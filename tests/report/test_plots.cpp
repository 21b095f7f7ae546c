// Tests of the SVG charts: well-formed XML with an <svg> root and a <title>, plotted data read back
// exactly from the data-* attributes, decade labels on log axes, non-finite points skipped,
// escaping, determinism, and the report charts against hand-built reports. With
// GRADSCOPE_PLOT_DIR set, the charts are also written there to be looked at.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/core/report.hpp"
#include "gradscope/report/plots.hpp"
#include "gradscope/report/svg.hpp"
#include "gradscope/theory/theory_report.hpp"
#include "report_fixtures.hpp"
#include "xml_check.hpp"

namespace gradscope {
namespace {

using testing::parse_xml;
using testing::xml_errors;
using testing::XmlDocument;
using testing::XmlElement;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- Helpers

// The whole attribute must be a number: a trailing character would mean the writer printed more
// than the value.
double number(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(end, text.c_str() + text.size()) << "not a number: '" << text << "'";
  return v;
}

void save(const std::string& svg, const std::string& name) {
  const char* dir = std::getenv("GRADSCOPE_PLOT_DIR");
  if (dir == nullptr || *dir == '\0') return;
  std::filesystem::create_directories(dir);
  std::ofstream(std::filesystem::path(dir) / (name + ".svg"), std::ios::binary) << svg;
}

// Every drawn coordinate of the chart is a finite number inside its viewBox.
void expect_coordinates_inside(const XmlElement& root) {
  std::string box = root.get("viewBox");
  const double width = number(box.substr(4, box.find(' ', 4) - 4));
  const double height = number(box.substr(box.find(' ', 4) + 1));
  for (const XmlElement* e : root.find_all([](const XmlElement&) { return true; })) {
    if (e->has_class("background")) continue;  // width="100%"
    for (const std::string key : {"cx", "cy", "x1", "x2", "y1", "y2", "x", "y"}) {
      if (e->attribute(key) == nullptr) continue;
      const double v = number(e->get(key));
      EXPECT_TRUE(std::isfinite(v)) << e->name << " " << key;
      // Tick marks and labels sit up to a few pixels outside the frame, never outside the box.
      EXPECT_GE(v, 0.0) << e->name << " " << key;
      EXPECT_LE(v, key.find('x') != std::string::npos ? width : height) << e->name << " " << key;
    }
    if (e->name == "rect") {
      EXPECT_LE(number(e->get("x")) + number(e->get("width")), width);
      EXPECT_LE(number(e->get("y")) + number(e->get("height")), height);
    }
  }
}

// Parses a chart and checks its shell: well-formed, an <svg> root in the SVG namespace sized by a
// viewBox, a <title> first holding `title`, nothing a browser would fetch or run, and every
// coordinate on the chart.
XmlElement chart_root(const std::string& svg, const std::string& title) {
  const XmlDocument doc = parse_xml(svg);
  EXPECT_TRUE(doc.errors.empty()) << doc.errors.front();
  const XmlElement& root = doc.root;
  EXPECT_EQ(root.name, "svg");
  EXPECT_EQ(root.get("xmlns"), "http://www.w3.org/2000/svg");
  EXPECT_FALSE(root.get("viewBox").empty());
  EXPECT_EQ(root.get("font-family"), "sans-serif");
  EXPECT_FALSE(root.children.empty());
  if (!root.children.empty()) {
    EXPECT_EQ(root.children.front().name, "title");
    EXPECT_EQ(root.children.front().text, title);
  }
  EXPECT_TRUE(root.find_all("script").empty());
  EXPECT_TRUE(root.find_all("image").empty());
  EXPECT_EQ(svg.find("href"), std::string::npos);
  expect_coordinates_inside(root);
  return root;
}

const XmlElement* series_group(const XmlElement& root, const std::string& label) {
  const auto groups = root.find_all([&](const XmlElement& e) {
    return e.name == "g" && e.has_class("series") && e.get("data-label") == label;
  });
  EXPECT_EQ(groups.size(), 1u) << "series '" << label << "'";
  return groups.empty() ? nullptr : groups.front();
}

struct Points {
  std::vector<double> x, y;
};

Points series_points(const XmlElement& root, const std::string& label) {
  Points p;
  const XmlElement* g = series_group(root, label);
  if (g == nullptr) return p;
  for (const XmlElement* c :
       g->find_all([](const XmlElement& e) { return e.has_class("point"); })) {
    p.x.push_back(number(c->get("data-x")));
    p.y.push_back(number(c->get("data-y")));
  }
  return p;
}

// The "M" commands of a path: one per unbroken run of points.
int subpaths(const std::string& d) {
  int n = 0;
  for (const char c : d) n += c == 'M' ? 1 : 0;
  return n;
}

LineChart two_series_chart() {
  LineChart chart;
  chart.title = "Two series";
  chart.x_label = "layer";
  chart.y_label = "value";
  Series a;
  a.label = "a";
  a.x = {1, 2, 3, 4};
  a.y = {0.1, 1.0 / 3.0, -2.5e-7, 2.0 / 7.0};
  Series b;
  b.label = "b";
  b.x = {0.5, 1.75, std::nextafter(3.0, 4.0)};
  b.y = {1e-300, 0.3, -0.7};
  b.dashed = true;
  chart.series = {a, b};
  return chart;
}

// ---- The checker itself: the tests below prove nothing if it accepts broken XML.

TEST(XmlCheck, AcceptsWellFormedDocumentsAndDecodesReferences) {
  const std::string doc =
      "<?xml version=\"1.0\"?>\n<!-- c -->\n<a x=\"1 &amp; 2\" y='&lt;&#65;&#x42;'>t&gt;<b/>"
      "<c k=\"v\">u</c><![CDATA[<raw>]]></a>\n";
  const XmlDocument parsed = parse_xml(doc);
  ASSERT_TRUE(parsed.errors.empty()) << parsed.errors.front();
  EXPECT_EQ(parsed.root.name, "a");
  EXPECT_EQ(parsed.root.get("x"), "1 & 2");
  EXPECT_EQ(parsed.root.get("y"), "<AB");
  EXPECT_EQ(parsed.root.text, "t>u<raw>");
  ASSERT_EQ(parsed.root.children.size(), 2u);
  EXPECT_EQ(parsed.root.children[1].get("k"), "v");
}

TEST(XmlCheck, RejectsEachKindOfMalformedDocument) {
  const std::vector<std::string> broken = {
      "",                        // no root
      "<a><b></a></b>",          // crossed tags
      "<a>",                     // unclosed
      "<a x=1/>",                // unquoted attribute
      "<a x=\"1\"y=\"2\"/>",     // attributes not separated
      "<a x=\"1\" x=\"2\"/>",    // duplicate attribute
      "<a x=\"<\"/>",            // '<' in a value
      "<a>&foo;</a>",            // unknown entity
      "<a>fish & chips</a>",     // bare ampersand
      "<a>&#0;</a>",             // illegal character reference
      "<a/><b/>",                // two roots
      "<a/>text",                // content after the root
      "<a>\x01</a>",             // control character
      "<a><!-- x -- y --></a>",  // '--' in a comment
      "<a x=\"1\"",              // unclosed start tag
  };
  for (const std::string& doc : broken) {
    EXPECT_FALSE(xml_errors(doc).empty()) << "accepted: " << doc;
  }
}

// ---- Line charts

TEST(LineChartSvg, PointsCarryTheInputNumbersExactly) {
  const LineChart chart = two_series_chart();
  const std::string svg = line_chart_svg(chart);
  save(svg, "line_chart");
  const XmlElement root = chart_root(svg, chart.title);
  for (const Series& s : chart.series) {
    const Points p = series_points(root, s.label);
    EXPECT_EQ(p.x, s.x) << s.label;
    EXPECT_EQ(p.y, s.y) << s.label;
  }
}

TEST(LineChartSvg, DashedSeriesAndSharedColours) {
  LineChart chart = two_series_chart();
  chart.series[0].colour = 3;
  chart.series[1].colour = 3;
  const XmlElement root = chart_root(line_chart_svg(chart), chart.title);
  const auto lines = root.find_all("path", "line");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]->get("stroke-dasharray"), "");
  EXPECT_FALSE(lines[1]->get("stroke-dasharray").empty());
  EXPECT_EQ(lines[0]->get("stroke"), lines[1]->get("stroke"));
  // Without a colour of their own, series take distinct palette colours by position.
  const XmlElement plain = chart_root(line_chart_svg(two_series_chart()), chart.title);
  const auto plain_lines = plain.find_all("path", "line");
  ASSERT_EQ(plain_lines.size(), 2u);
  EXPECT_NE(plain_lines[0]->get("stroke"), plain_lines[1]->get("stroke"));
  // The legend names every series.
  const auto entries = root.find_all("g", "legend-entry");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0]->get("data-label"), "a");
  EXPECT_EQ(entries[1]->get("data-label"), "b");
}

TEST(LineChartSvg, NonFinitePointsAreSkippedAndBreakTheLine) {
  LineChart chart;
  chart.title = "Gaps";
  Series s;
  s.label = "gappy";
  s.x = {1, 2, 3, 4, kNan, 6, 7, 8};
  s.y = {1.0, kNan, 2.0, 3.0, 4.0, -kInf, 5.0, 6.0};
  chart.series = {s};
  const std::string svg = line_chart_svg(chart);
  const XmlElement root = chart_root(svg, chart.title);
  const Points p = series_points(root, "gappy");
  EXPECT_EQ(p.x, (std::vector<double>{1, 3, 4, 7, 8}));
  EXPECT_EQ(p.y, (std::vector<double>{1.0, 2.0, 3.0, 5.0, 6.0}));
  // Runs: {1}, {3, 4}, {7, 8}.
  const auto lines = root.find_all("path", "line");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(subpaths(lines[0]->get("d")), 3);
  // No coordinate anywhere is "nan" or "inf".
  for (const XmlElement* c : root.find_all("circle")) {
    EXPECT_TRUE(std::isfinite(number(c->get("cx"))));
    EXPECT_TRUE(std::isfinite(number(c->get("cy"))));
  }
  EXPECT_EQ(lines[0]->get("d").find_first_of("nNiI"), std::string::npos);
}

TEST(LineChartSvg, AllNonFiniteOrEmptyChartsAreStillCharts) {
  LineChart chart;
  chart.title = "Nothing";
  chart.log10_y = true;
  const XmlElement empty = chart_root(line_chart_svg(chart), chart.title);
  EXPECT_TRUE(empty.find_all("circle").empty());

  Series s;
  s.label = "all nan";
  s.x = {1, 2};
  s.y = {kNan, kInf};
  chart.series = {s};
  const XmlElement nan_only = chart_root(line_chart_svg(chart), chart.title);
  const auto groups = nan_only.find_all("g", "series");
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_TRUE(groups[0]->find_all("circle").empty());
  EXPECT_EQ(nan_only.find_all("text", "note").size(), 1u);
}

// Decade ticks of the log axis: (data-decade, text) pairs.
std::vector<std::pair<int, std::string>> decade_ticks(const XmlElement& root) {
  std::vector<std::pair<int, std::string>> out;
  for (const XmlElement* g : root.find_all("g", "y")) {
    if (!g->has_class("tick")) continue;
    const std::string decade = g->get("data-decade");
    EXPECT_FALSE(decade.empty());
    EXPECT_EQ(number(g->get("data-value")), number(decade));
    const auto texts = g->find_all("text");
    EXPECT_EQ(texts.size(), 1u);
    out.emplace_back(static_cast<int>(number(decade)), texts.empty() ? "" : texts[0]->text);
  }
  return out;
}

TEST(LineChartSvg, LogAxisIsLabelledInDecades) {
  LineChart chart;
  chart.title = "Log";
  chart.log10_y = true;
  Series s;
  s.label = "g";
  s.x = {1, 2, 3};
  s.y = {-3.2, -0.5, 1.5};
  chart.series = {s};
  const std::string svg = line_chart_svg(chart);
  save(svg, "line_chart_log");
  const XmlElement root = chart_root(svg, chart.title);
  // The data span 10^-3.2 .. 10^1.5: every decade from 10^-4 to 10^2, each labelled "10" with the
  // exponent in a raised <tspan>.
  const auto ticks = decade_ticks(root);
  ASSERT_EQ(ticks.size(), 7u);
  for (std::size_t i = 0; i < ticks.size(); ++i) {
    const int k = -4 + static_cast<int>(i);
    EXPECT_EQ(ticks[i].first, k);
    EXPECT_EQ(ticks[i].second, "10" + std::to_string(k));
  }
  for (const XmlElement* g : root.find_all("g", "tick")) {
    for (const XmlElement* t : g->find_all("tspan")) EXPECT_EQ(t->get("dy"), "-6");
  }

  // 600 decades (a 2000-layer linear stack): a round number of decades per tick, still labelled
  // 10^k with k a multiple of it, the whole range covered.
  chart.series[0].y = {-600.4, -300.0, 0.2};
  const auto wide = decade_ticks(chart_root(line_chart_svg(chart), chart.title));
  ASSERT_GE(wide.size(), 3u);
  ASSERT_LE(wide.size(), 10u);
  const int step = wide[1].first - wide[0].first;
  EXPECT_EQ(step % 10, 0);
  EXPECT_LE(wide.front().first, -601);
  EXPECT_GE(wide.back().first, 1);
  for (std::size_t i = 1; i < wide.size(); ++i) {
    EXPECT_EQ(wide[i].first - wide[i - 1].first, step);
    EXPECT_EQ(wide[i].first % step, 0);
  }
}

TEST(LineChartSvg, LinearAxisTicksCoverTheDataAndReadAsTheirValues) {
  const LineChart chart = two_series_chart();
  const XmlElement root = chart_root(line_chart_svg(chart), chart.title);
  std::vector<double> values;
  for (const XmlElement* g : root.find_all("g", "tick")) {
    if (!g->has_class("y")) continue;
    const double v = number(g->get("data-value"));
    values.push_back(v);
    const auto texts = g->find_all("text");
    ASSERT_EQ(texts.size(), 1u);
    // Labels are rounded to the step's decimals; the values are multiples of it.
    EXPECT_NEAR(number(texts[0]->text), v, 1e-12);
  }
  ASSERT_GE(values.size(), 3u);
  EXPECT_LE(values.front(), -0.7);
  EXPECT_GE(values.back(), 0.3);
  // Integer x data (the first series) mixed with fractional x: ticks at nice steps over the span.
  std::vector<double> xs;
  for (const XmlElement* g : root.find_all("g", "tick")) {
    if (g->has_class("x")) xs.push_back(number(g->get("data-value")));
  }
  ASSERT_GE(xs.size(), 3u);
  EXPECT_GE(xs.front(), 0.5);
  EXPECT_LE(xs.back(), std::nextafter(4.0, 5.0));
}

TEST(LineChartSvg, IntegerXGetsIntegerTicks) {
  LineChart chart;
  chart.title = "Three layers";
  Series s;
  s.label = "s";
  s.x = {1, 2, 3};
  s.y = {0.0, 1.0, 0.5};
  chart.series = {s};
  const XmlElement root = chart_root(line_chart_svg(chart), chart.title);
  std::vector<std::string> labels;
  for (const XmlElement* g : root.find_all("g", "tick")) {
    if (g->has_class("x")) labels.push_back(g->find_all("text").at(0)->text);
  }
  EXPECT_EQ(labels, (std::vector<std::string>{"1", "2", "3"}));
}

TEST(LineChartSvg, SpreadBandIsDrawnAndMismatchedSizesAreRejected) {
  LineChart chart;
  chart.title = "Band";
  Series s;
  s.label = "with band";
  s.x = {1, 2, 3, 4};
  s.y = {1, 2, 3, 4};
  s.y_low = {0.5, 1.5, kNan, 3.5};
  s.y_high = {1.5, 2.5, 3.5, 9.0};
  chart.series = {s};
  const XmlElement root = chart_root(line_chart_svg(chart), chart.title);
  const auto bands = root.find_all("path", "band");
  ASSERT_EQ(bands.size(), 1u);
  EXPECT_EQ(subpaths(bands[0]->get("d")), 2);  // the NaN splits it
  // The band's top (9) is inside the axis.
  double top = -kInf;
  for (const XmlElement* g : root.find_all("g", "tick")) {
    if (g->has_class("y")) top = std::max(top, number(g->get("data-value")));
  }
  EXPECT_GE(top, 9.0);

  chart.series[0].y_low.pop_back();
  EXPECT_THROW(line_chart_svg(chart), gradscope::Error);
  chart.series[0].y_low.clear();
  chart.series[0].y_high.clear();
  chart.series[0].y.pop_back();
  EXPECT_THROW(line_chart_svg(chart), gradscope::Error);
}

TEST(LineChartSvg, TextIsEscapedAndReadsBackUnchanged) {
  const std::string nasty = "<script>alert(\"x\")</script> & 'q' \xc2\xb5";
  LineChart chart;
  chart.title = "title " + nasty;
  chart.x_label = "x " + nasty;
  chart.y_label = "y " + nasty;
  Series s;
  s.label = nasty;
  s.x = {1};
  s.y = {2};
  chart.series = {s};
  const std::string svg = line_chart_svg(chart);
  const XmlElement root = chart_root(svg, chart.title);
  EXPECT_EQ(svg.find("<script"), std::string::npos);
  EXPECT_NE(svg.find("&lt;script&gt;"), std::string::npos);
  EXPECT_NE(svg.find("&quot;x&quot;"), std::string::npos);
  EXPECT_NE(svg.find("&apos;q&apos;"), std::string::npos);
  EXPECT_EQ(series_points(root, nasty).y, (std::vector<double>{2}));
  const auto x_label = root.find_all("text", "axis-label");
  ASSERT_EQ(x_label.size(), 2u);
  EXPECT_EQ(x_label[0]->text, chart.x_label);
  EXPECT_EQ(x_label[1]->text, chart.y_label);
  // Control characters (illegal in XML 1.0) become blanks.
  chart.title =
      "a\x01"
      "b\nc";
  const XmlElement controlled = chart_root(line_chart_svg(chart), "a b c");
  EXPECT_EQ(controlled.name, "svg");
}

// The legend's text of an entry: its lines put together.
std::string legend_text(const XmlElement& entry) { return entry.find_all("text").at(0)->text; }

TEST(LineChartSvg, LongLegendsWrapAndAreNeverCut) {
  LineChart chart;
  chart.title = "Many";
  for (int i = 0; i < 40; ++i) {
    Series s;
    s.label = "run number " + std::to_string(i) + " with a long name \xc3\xa9\xc3\xa9\xc3\xa9";
    s.x = {1, 2};
    s.y = {static_cast<double>(i), static_cast<double>(i + 1)};
    chart.series.push_back(s);
  }
  // One label longer than the whole chart is wide, one with a word that is.
  chart.series[3].label = "activation=sigmoid depth=1 init=xavier_normal width=256 batch=512 " +
                          std::string("seed=7 norm=layer_norm residual=on loss=mse optimizer=adam");
  chart.series[5].label = std::string(150, 'w');
  const std::string svg = line_chart_svg(chart);
  save(svg, "line_chart_long_legend");
  const XmlElement root = chart_root(svg, chart.title);  // every coordinate inside the box
  EXPECT_EQ(root.find_all("g", "series").size(), 40u);
  const auto entries = root.find_all("g", "legend-entry");
  ASSERT_EQ(entries.size(), 40u);  // every series has its entry: none counted away
  EXPECT_TRUE(root.find_all("text", "legend-more").empty());
  for (const XmlElement* e : entries) {
    EXPECT_EQ(legend_text(*e), e->get("data-label"));  // the whole label, no ellipsis
  }
  // The long ones take several lines, each starting at the entry's text column.
  EXPECT_GE(entries[3]->find_all("tspan").size(), 2u);
  EXPECT_GE(entries[5]->find_all("tspan").size(), 3u);
  // The chart grows to hold them: the last entry's lines lie above its bottom.
  const std::string box = root.get("viewBox");
  const double height = number(box.substr(box.rfind(' ') + 1));
  double lowest = 0.0;
  for (const XmlElement* t : entries.back()->find_all("text")) lowest = number(t->get("y"));
  EXPECT_LT(lowest, height);
}

TEST(LineChartSvg, LegendLinesFitTheirColumnAtDejaVuSansWidths) {
  // The widest advances of DejaVu Sans at the legend's 12 px: a line of 'W' or 'm' must not be
  // longer than the room in its column (the chart's width over the columns, less the swatch).
  LineChart chart;
  chart.title = "Wide letters";
  for (const std::string& label : {std::string(60, 'W'), std::string(80, 'm'), std::string("x")}) {
    Series s;
    s.label = label;
    s.x = {1};
    s.y = {1};
    chart.series.push_back(s);
  }
  const XmlElement root = chart_root(line_chart_svg(chart), chart.title);
  for (const XmlElement* e : root.find_all("g", "legend-entry")) {
    for (const XmlElement* t : e->find_all("tspan")) {
      const double advance = t->text[0] == 'W' ? 0.989 : t->text[0] == 'm' ? 0.974 : 0.6;
      EXPECT_LE(static_cast<double>(t->text.size()) * advance * 12.0, 840.0 - 32.0 - 32.0)
          << t->text;
    }
  }
}

// A series' look: its line's colour and its markers' shape (their second class).
std::string look_of(const XmlElement& series) {
  const std::string colour = series.find_all("path", "line").at(0)->get("stroke");
  const auto points = series.find_all([](const XmlElement& e) { return e.has_class("point"); });
  std::string shape = points.empty() ? "" : points.front()->get("class");
  return colour + " " + shape;
}

TEST(LineChartSvg, UpToFortyTwoSeriesEachLookDifferent) {
  // The sweep's eighth point used to share the first one's colour and circle.
  LineChart chart;
  chart.title = "Styles";
  for (int i = 0; i < kSeriesStyles + 1; ++i) {
    Series s;
    s.label = "series " + std::to_string(i);
    s.x = {1, 2, 3};
    s.y = {static_cast<double>(i), static_cast<double>(i) + 0.5, static_cast<double>(i)};
    chart.series.push_back(s);
  }
  const XmlElement root = chart_root(line_chart_svg(chart), chart.title);
  const auto groups = root.find_all("g", "series");
  ASSERT_EQ(groups.size(), static_cast<std::size_t>(kSeriesStyles + 1));
  std::vector<std::string> looks;
  for (const XmlElement* g : groups) looks.push_back(look_of(*g));
  for (int a = 0; a < kSeriesStyles; ++a) {
    for (int b = a + 1; b < kSeriesStyles; ++b) {
      EXPECT_NE(looks[static_cast<std::size_t>(a)], looks[static_cast<std::size_t>(b)])
          << "series " << a << " and " << b;
    }
  }
  // Only past the last style does one repeat; the first seven are told apart by colour alone.
  EXPECT_EQ(looks.back(), looks.front());
  for (int a = 0; a < kLineColours; ++a) {
    for (int b = a + 1; b < kLineColours; ++b) {
      EXPECT_NE(groups[static_cast<std::size_t>(a)]->find_all("path", "line").at(0)->get("stroke"),
                groups[static_cast<std::size_t>(b)]->find_all("path", "line").at(0)->get("stroke"));
    }
  }
  // The legend's swatch has the series' shape too.
  const auto entries = root.find_all("g", "legend-entry");
  ASSERT_EQ(entries.size(), groups.size());
  EXPECT_TRUE(entries[7]->find_all("circle").empty());  // the eighth: a square, not a circle
  EXPECT_EQ(entries[7]->find_all("path").size(), 1u);
}

TEST(LineChartSvg, IdenticalSeriesAreAllVisibleAndTheLegendSaysSo) {
  // The lesson's ReLU under leaky ReLU: the same numbers, drawn one over the other.
  LineChart chart;
  chart.title = "Same";
  Series relu;
  relu.label = "relu";
  relu.x = {1, 2, 3, 4, 5};
  relu.y = {0.01, 0.02, 0.0, -0.01, 0.0};
  Series leaky = relu;
  leaky.label = "leaky_relu";
  Series other;
  other.label = "sigmoid";
  other.x = relu.x;
  other.y = {-5, -4, -3, -2, -1};
  Series relu_theory = relu;  // a dashed line over a solid one is a comparison, not a clash
  relu_theory.label = "relu (theory)";
  relu_theory.dashed = true;
  relu_theory.colour = 0;
  chart.series = {relu, leaky, other, relu_theory};
  const std::string svg = line_chart_svg(chart);
  save(svg, "line_chart_identical");
  const XmlElement root = chart_root(svg, chart.title);
  const XmlElement* under = series_group(root, "relu");
  const XmlElement* over = series_group(root, "leaky_relu");
  ASSERT_TRUE(under != nullptr && over != nullptr);
  // The line drawn first is wider, so its colour shows on both sides of the one over it.
  const double under_width = number(under->find_all("path", "line").at(0)->get("stroke-width"));
  const double over_width = number(over->find_all("path", "line").at(0)->get("stroke-width"));
  EXPECT_GE(under_width, over_width + 2.0);
  // Their markers sit apart (the data they carry do not move).
  const auto under_points = under->find_all("circle");
  const auto over_points = over->find_all("circle");
  ASSERT_EQ(under_points.size(), 5u);
  ASSERT_EQ(over_points.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(under_points[i]->get("data-x"), over_points[i]->get("data-x"));
    EXPECT_EQ(under_points[i]->get("data-y"), over_points[i]->get("data-y"));
    // Farther apart than a marker's radius, so neither hides the other.
    EXPECT_GE(std::abs(number(under_points[i]->get("cx")) - number(over_points[i]->get("cx"))),
              number(over_points[i]->get("r")))
        << i;
  }
  // The legend names the twin of each.
  const auto entries = root.find_all("g", "legend-entry");
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(legend_text(*entries[0]), "relu (same line as leaky_relu)");
  EXPECT_EQ(legend_text(*entries[1]), "leaky_relu (same line as relu)");
  EXPECT_EQ(legend_text(*entries[2]), "sigmoid");
  EXPECT_EQ(legend_text(*entries[3]), "relu (theory)");
  // A series apart from the others, and the dashed one, keep the plain width and place.
  EXPECT_EQ(
      number(series_group(root, "sigmoid")->find_all("path", "line").at(0)->get("stroke-width")),
      2.0);
  EXPECT_EQ(
      number(
          series_group(root, "relu (theory)")->find_all("path", "line").at(0)->get("stroke-width")),
      2.0);
}

TEST(LineChartSvg, ThreeOrMoreIdenticalSeriesAreNestedBandsWithOneKey) {
  // Five runs without a dead unit: five lines at 0.
  LineChart chart;
  chart.title = "No dead units";
  for (const char* name : {"a", "b", "c"}) {
    Series s;
    s.label = name;
    s.x = {1, 2, 3, 4};
    s.y = {0, 0, 0, 0};
    chart.series.push_back(s);
  }
  const XmlElement root = chart_root(line_chart_svg(chart), chart.title);
  std::vector<double> widths;
  for (const XmlElement* g : root.find_all("g", "series")) {
    widths.push_back(number(g->find_all("path", "line").at(0)->get("stroke-width")));
  }
  EXPECT_EQ(widths, (std::vector<double>{8, 5, 2}));  // each colour shows 1.5 px on each side
  const auto entries = root.find_all("g", "legend-entry");
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(legend_text(*entries[0]), "a");  // the members' own entries stay short
  EXPECT_TRUE(entries[3]->has_class("key"));
  EXPECT_EQ(legend_text(*entries[3]), "a, b and c: one and the same line, drawn as nested bands");
}

TEST(LineChartSvg, AnAllZeroSeriesHasAnAxisFromZeroUp) {
  LineChart chart;
  chart.title = "No dead units";
  Series s;
  s.label = "dead %";
  s.x = {1, 2, 3};
  s.y = {0.0, 0.0, 0.0};
  chart.series = {s};
  const XmlElement root = chart_root(line_chart_svg(chart), chart.title);
  std::vector<double> ticks;
  for (const XmlElement* g : root.find_all("g", "tick")) {
    if (g->has_class("y")) ticks.push_back(number(g->get("data-value")));
  }
  ASSERT_GE(ticks.size(), 2u);
  EXPECT_EQ(ticks.front(), 0.0);  // not -1: there is nothing below 0
  EXPECT_GT(ticks.back(), 0.0);
}

TEST(LineChartSvg, ValuesAcrossTheWholeDoubleRangeStayOnTheChart) {
  LineChart chart;
  chart.title = "Extremes";
  Series s;
  s.label = "extreme";
  s.x = {-1.7e308, 0.0, 1.7e308, 1.0};
  s.y = {1.7e308, -1.7e308, 4.9e-324, 1e-310};
  chart.series = {s};
  const XmlElement root = chart_root(line_chart_svg(chart), chart.title);
  EXPECT_EQ(series_points(root, "extreme").y, s.y);
  // One subnormal value alone still gets an axis around it.
  chart.series[0].x = {1.0};
  chart.series[0].y = {4.9e-324};
  EXPECT_EQ(series_points(chart_root(line_chart_svg(chart), chart.title), "extreme").y,
            chart.series[0].y);
  // log10 values far outside any real magnitude.
  chart.log10_y = true;
  chart.series[0].x = {1.0, 2.0};
  chart.series[0].y = {-1.7e308, 1.7e308};
  EXPECT_EQ(series_points(chart_root(line_chart_svg(chart), chart.title), "extreme").y,
            chart.series[0].y);
}

TEST(LineChartSvg, SameInputGivesTheSameBytes) {
  const LineChart chart = two_series_chart();
  const std::string first = line_chart_svg(chart);
  const LineChart copy = chart;
  EXPECT_EQ(first, line_chart_svg(copy));
  EXPECT_EQ(first, line_chart_svg(chart));
}

// ---- Stacked histograms

HistogramStack three_rows() {
  HistogramStack stack;
  stack.title = "Rows";
  stack.x_label = "value";
  stack.y_label = "layer";
  // Given out of order: drawn by position.
  stack.rows = {{3.0, "third", -1.0, 2.0, {1, 4, 2, 0}},
                {1.0, "first", 0.0, 1.0, {5, 10, 5}},
                {2.0, "second", -3.0, 3.0, {0, 0, 7, 7, 1}}};
  return stack;
}

TEST(HistogramStackSvg, RowsCarryTheirCountsAndRangesInPositionOrder) {
  const HistogramStack stack = three_rows();
  const std::string svg = histogram_stack_svg(stack);
  save(svg, "histogram_stack");
  const XmlElement root = chart_root(svg, stack.title);
  const auto rows = root.find_all("g", "row");
  ASSERT_EQ(rows.size(), 3u);
  const std::vector<std::size_t> expected_order = {1, 2, 0};
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const HistogramRow& in = stack.rows[expected_order[r]];
    EXPECT_EQ(rows[r]->get("data-label"), in.label);
    EXPECT_EQ(number(rows[r]->get("data-position")), in.position);
    EXPECT_EQ(number(rows[r]->get("data-lo")), in.lo);
    EXPECT_EQ(number(rows[r]->get("data-hi")), in.hi);
    std::vector<std::int64_t> counts;
    for (const XmlElement* bar : rows[r]->find_all("rect", "bar")) {
      counts.push_back(static_cast<std::int64_t>(number(bar->get("data-count"))));
    }
    EXPECT_EQ(counts, in.counts) << in.label;
  }
  // The shared x axis covers the union of the ranges, -3 .. 3.
  std::vector<double> ticks;
  for (const XmlElement* g : root.find_all("g", "tick")) {
    if (g->has_class("x")) ticks.push_back(number(g->get("data-value")));
  }
  ASSERT_FALSE(ticks.empty());
  EXPECT_LE(ticks.front(), -3.0);
  EXPECT_GE(ticks.back(), 3.0);
}

TEST(HistogramStackSvg, EachRowIsScaledToItsOwnPeakOnTheSharedAxis) {
  const HistogramStack stack = three_rows();
  const XmlElement root = chart_root(histogram_stack_svg(stack), stack.title);
  const auto rows = root.find_all("g", "row");
  ASSERT_EQ(rows.size(), 3u);
  double peak_height = kNan;  // of the first row's tallest bar
  for (const XmlElement* row : rows) {
    const auto bars = row->find_all("rect", "bar");
    std::int64_t peak = 0;
    double tallest = 0.0;
    for (const XmlElement* b : bars) {
      peak = std::max(peak, static_cast<std::int64_t>(number(b->get("data-count"))));
      tallest = std::max(tallest, number(b->get("height")));
    }
    if (std::isnan(peak_height)) peak_height = tallest;
    EXPECT_GT(tallest, 0.0);
    EXPECT_EQ(tallest, peak_height);  // every row's peak reaches the same height
    for (const XmlElement* b : bars) {
      const double count = number(b->get("data-count"));
      // Pixel values carry two decimals: 0.01 of rounding per value.
      EXPECT_NEAR(number(b->get("height")), peak_height * count / static_cast<double>(peak), 0.011);
    }
    // Bars of a row tile its lo..hi without gaps, left to right.
    for (std::size_t i = 1; i < bars.size(); ++i) {
      const double end = number(bars[i - 1]->get("x")) + number(bars[i - 1]->get("width"));
      EXPECT_NEAR(number(bars[i]->get("x")), end, 0.011);  // two-decimal pixels
    }
  }
  // Row "first" spans 0..1, a sixth of the -3..3 axis; "second" spans all of it.
  const auto first_bars = rows[0]->find_all("rect", "bar");
  const auto second_bars = rows[1]->find_all("rect", "bar");
  const auto span = [](const std::vector<const XmlElement*>& bars) {
    return number(bars.back()->get("x")) + number(bars.back()->get("width")) -
           number(bars.front()->get("x"));
  };
  EXPECT_NEAR(span(first_bars) * 6.0, span(second_bars), 0.1);  // rounding of 3 + 5 bar widths
}

TEST(HistogramStackSvg, MoreThanSixtyRowsAreSubsampledEvenlyWithACaption) {
  HistogramStack stack;
  stack.title = "Deep";
  for (int i = 1; i <= 200; ++i) {
    stack.rows.push_back(
        {static_cast<double>(i), "layer " + std::to_string(i), -1.0, 1.0, {1, 2, 3, 2, 1}});
  }
  const std::string svg = histogram_stack_svg(stack);
  save(svg, "histogram_stack_deep");
  const XmlElement root = chart_root(svg, stack.title);
  const auto rows = root.find_all("g", "row");
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(kHistogramStackMaxRows));
  EXPECT_EQ(rows.front()->get("data-position"), "1");
  EXPECT_EQ(rows.back()->get("data-position"), "200");
  // Evenly: consecutive gaps of 3 or 4 positions (199 / 59 = 3.37).
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const double gap =
        number(rows[i]->get("data-position")) - number(rows[i - 1]->get("data-position"));
    EXPECT_GE(gap, 3.0);
    EXPECT_LE(gap, 4.0);
  }
  const auto captions = root.find_all("text", "caption");
  ASSERT_EQ(captions.size(), 1u);
  EXPECT_NE(captions[0]->text.find("60 of 200"), std::string::npos) << captions[0]->text;
}

TEST(HistogramStackSvg, DegenerateRowsAreDrawnOrMarkedNeverBroken) {
  HistogramStack stack;
  stack.title = "Odd rows";
  stack.rows = {{1.0, "constant", 2.0, 2.0, {64, 0, 0}},
                {2.0, "empty", 0.0, 0.0, {}},
                {3.0, "nan range", kNan, 1.0, {1, 2}},
                {4.0, "all zero", -1.0, 1.0, {0, 0}},
                {5.0, "whole double range", -1.7e308, 1.7e308, {3, 1, -2}}};
  const std::string svg = histogram_stack_svg(stack);
  const XmlElement root = chart_root(svg, stack.title);
  const auto rows = root.find_all("g", "row");
  ASSERT_EQ(rows.size(), 5u);
  // A negative count (no histogram holds one) is drawn empty but reported as given.
  const auto wide = rows[4]->find_all("rect", "bar");
  ASSERT_EQ(wide.size(), 3u);
  EXPECT_EQ(wide[2]->get("data-count"), "-2");
  EXPECT_EQ(number(wide[2]->get("height")), 0.0);
  // A one-value range still shows a visible spike.
  const auto spike = rows[0]->find_all("rect", "bar");
  ASSERT_EQ(spike.size(), 3u);
  EXPECT_GT(number(spike[0]->get("width")), 0.0);
  EXPECT_GT(number(spike[0]->get("height")), 0.0);
  EXPECT_EQ(rows[1]->find_all("text", "note").size(), 1u);
  EXPECT_EQ(rows[2]->find_all("text", "note").size(), 1u);
  for (const XmlElement* bar : rows[3]->find_all("rect", "bar")) {
    EXPECT_EQ(number(bar->get("height")), 0.0);
  }
  for (const XmlElement* bar : root.find_all("rect", "bar")) {
    EXPECT_TRUE(std::isfinite(number(bar->get("x"))));
    EXPECT_TRUE(std::isfinite(number(bar->get("y"))));
  }
  const XmlElement none =
      chart_root(histogram_stack_svg(HistogramStack{"None", "", "", {}}), "None");
  EXPECT_TRUE(none.find_all("g", "row").empty());
}

TEST(HistogramStackSvg, RangesTooFarApartGiveEachRowItsOwn) {
  // An exploding stack: the input side spans about 1, the deep layers up to 1e19. On one shared
  // axis every row but the last few would be a line at 0.
  HistogramStack stack;
  stack.title = "Exploding";
  stack.x_label = "value";
  for (int i = 1; i <= 20; ++i) {
    const double reach = std::pow(10.0, i - 1);
    stack.rows.push_back(
        {static_cast<double>(i), "layer " + std::to_string(i), -reach, reach, {1, 3, 9, 3, 1}});
  }
  const std::string svg = histogram_stack_svg(stack);
  save(svg, "histogram_stack_own_ranges");
  const XmlElement root = chart_root(svg, stack.title);
  const auto rows = root.find_all("g", "row");
  ASSERT_EQ(rows.size(), 20u);
  // Every row's bars span the same width: its own range across the plot.
  const auto span = [](const XmlElement& row) {
    const auto bars = row.find_all("rect", "bar");
    return number(bars.back()->get("x")) + number(bars.back()->get("width")) -
           number(bars.front()->get("x"));
  };
  for (const XmlElement* row : rows) EXPECT_NEAR(span(*row), span(*rows.front()), 0.02);
  EXPECT_GE(span(*rows.front()), 390.0);  // the plot is 400 wide
  // No shared ticks; each row says its range, the axis title and the caption say why.
  for (const XmlElement* g : root.find_all("g", "tick")) EXPECT_FALSE(g->has_class("x"));
  const auto ranges = root.find_all("text", "row-range");
  ASSERT_FALSE(ranges.empty());
  EXPECT_EQ(ranges.front()->text, "-1 \xe2\x80\xa6 1");
  EXPECT_EQ(ranges.back()->text, "-1e19 \xe2\x80\xa6 1e19");
  EXPECT_NE(root.find_all("text", "axis-label").at(0)->text.find("own range"), std::string::npos);
  EXPECT_NE(root.find_all("text", "caption").at(0)->text.find("own range"), std::string::npos);
  // A dotted line marks 0 in the middle of each symmetric row.
  EXPECT_EQ(root.find_all("line", "zero").size(), 20u);

  // Ranges within kHistogramOwnRangeRatio of each other share the axis, as before.
  const XmlElement shared = chart_root(histogram_stack_svg(three_rows()), "Rows");
  EXPECT_TRUE(shared.find_all("text", "row-range").empty());
  EXPECT_FALSE(shared.find_all("g", "x").empty());
}

TEST(HistogramStackSvg, AToweringBinIsCutSoTheRestOfTheRowShows) {
  // ReLU: half the entries are exact zeros, in the first bin; the other half spread out.
  HistogramStack stack;
  stack.title = "ReLU";
  stack.rows = {{1.0, "relu", 0.0, 4.0, {500, 40, 30, 20, 10}},
                {2.0, "even", 0.0, 4.0, {40, 40, 30, 20, 10}}};
  const XmlElement root = chart_root(histogram_stack_svg(stack), stack.title);
  const auto rows = root.find_all("g", "row");
  ASSERT_EQ(rows.size(), 2u);
  const auto relu = rows[0]->find_all("rect", "bar");
  const auto even = rows[1]->find_all("rect", "bar");
  // The zeros' bar is cut (full height, notched) and the tail scaled to its own peak, as tall as
  // in a row without the spike; the data still say 500.
  EXPECT_TRUE(relu[0]->has_class("cut"));
  EXPECT_EQ(relu[0]->get("data-count"), "500");
  EXPECT_EQ(rows[0]->find_all("line", "notch").size(), 1u);
  EXPECT_EQ(relu[1]->get("height"), even[0]->get("height"));
  EXPECT_EQ(relu[0]->get("height"), even[0]->get("height"));
  EXPECT_TRUE(rows[1]->find_all("line", "notch").empty());
  EXPECT_NE(root.find_all("text", "caption").at(0)->text.find("cut"), std::string::npos);
}

// ---- Phase chart

PhaseChart small_phase_chart() {
  PhaseChart chart;
  chart.title = "Phases";
  chart.sb2 = {0.0, 0.1, 0.2};
  chart.sw2_samples = {0.5, 1.0, 2.0, 4.0};
  chart.phase = {{"ordered", "critical", "chaotic", "chaotic"},
                 {"ordered", "ordered", "chaotic", "unbounded"},
                 {"ordered", "ordered", "ordered", "chaotic"}};
  chart.critical_sw2 = {1.0, kNan, 2.75};
  return chart;
}

TEST(PhaseChartSvg, OneCellPerSampleAndTheCriticalLine) {
  const PhaseChart chart = small_phase_chart();
  const std::string svg = phase_chart_svg(chart);
  save(svg, "phase_chart");
  const XmlElement root = chart_root(svg, chart.title);
  const auto cells = root.find_all("rect", "cell");
  ASSERT_EQ(cells.size(), chart.sb2.size() * chart.sw2_samples.size());
  std::size_t k = 0;
  for (std::size_t r = 0; r < chart.sb2.size(); ++r) {
    for (std::size_t c = 0; c < chart.sw2_samples.size(); ++c, ++k) {
      EXPECT_EQ(number(cells[k]->get("data-sb2")), chart.sb2[r]);
      EXPECT_EQ(number(cells[k]->get("data-sw2")), chart.sw2_samples[c]);
      EXPECT_EQ(cells[k]->get("data-phase"), chart.phase[r][c]);
    }
  }
  // Each phase has one colour, and the four differ.
  std::vector<std::pair<std::string, std::string>> colours;
  for (const XmlElement* cell : cells) {
    bool seen = false;
    for (const auto& [phase, fill] : colours) {
      if (phase == cell->get("data-phase")) {
        EXPECT_EQ(fill, cell->get("fill"));
        seen = true;
      } else {
        EXPECT_NE(fill, cell->get("fill"));
      }
    }
    if (!seen) colours.emplace_back(cell->get("data-phase"), cell->get("fill"));
  }
  EXPECT_EQ(colours.size(), 4u);

  const auto lines = root.find_all("g", "critical-line");
  ASSERT_EQ(lines.size(), 1u);
  const auto points = lines[0]->find_all("circle");
  ASSERT_EQ(points.size(), 2u);  // the NaN row has no critical point
  EXPECT_EQ(number(points[0]->get("data-sb2")), 0.0);
  EXPECT_EQ(number(points[0]->get("data-sw2")), 1.0);
  EXPECT_EQ(number(points[1]->get("data-sb2")), 0.2);
  EXPECT_EQ(number(points[1]->get("data-sw2")), 2.75);
  const auto path = lines[0]->find_all("path");
  ASSERT_EQ(path.size(), 1u);
  EXPECT_EQ(subpaths(path[0]->get("d")), 2);  // broken at the NaN
  // The critical point at sw2 = 1 sits on the centre line of the sw2 = 1 column... in x at least
  // within that column's cell.
  const double cx = number(points[0]->get("cx"));
  const double x0 = number(cells[1]->get("x"));
  EXPECT_GE(cx, x0);
  EXPECT_LE(cx, x0 + number(cells[1]->get("width")));
  // The legend names the four phases and the line.
  EXPECT_EQ(root.find_all("g", "legend-entry").size(), 5u);
}

TEST(PhaseChartSvg, CellsTileThePlaneWithoutGapsOrOverlaps) {
  const PhaseChart chart = small_phase_chart();
  const XmlElement root = chart_root(phase_chart_svg(chart), chart.title);
  const auto cells = root.find_all("rect", "cell");
  const std::size_t cols = chart.sw2_samples.size();
  ASSERT_EQ(cells.size(), 3 * cols);
  for (std::size_t r = 0; r < 3; ++r) {
    for (std::size_t c = 1; c < cols; ++c) {
      const XmlElement& left = *cells[r * cols + c - 1];
      const XmlElement& right = *cells[r * cols + c];
      // Pixel values carry two decimals: 0.01 of rounding per value.
      EXPECT_NEAR(number(left.get("x")) + number(left.get("width")), number(right.get("x")), 0.021);
      EXPECT_EQ(left.get("y"), right.get("y"));
    }
  }
  // Larger sb2 is higher up (smaller y).
  EXPECT_GT(number(cells[0]->get("y")), number(cells[cols]->get("y")));
}

TEST(PhaseChartSvg, MismatchedShapesAreRejected) {
  PhaseChart chart = small_phase_chart();
  chart.phase[1].pop_back();
  EXPECT_THROW(phase_chart_svg(chart), gradscope::Error);
  chart = small_phase_chart();
  chart.critical_sw2.pop_back();
  EXPECT_THROW(phase_chart_svg(chart), gradscope::Error);
  chart = small_phase_chart();
  chart.phase.pop_back();
  EXPECT_THROW(phase_chart_svg(chart), gradscope::Error);
}

TEST(PhaseChartSvg, NonPositiveSw2FallsBackToALinearAxis) {
  PhaseChart chart = small_phase_chart();
  chart.sw2_samples[0] = 0.0;
  const XmlElement root = chart_root(phase_chart_svg(chart), chart.title);
  EXPECT_EQ(root.find_all("rect", "cell").size(), 12u);
  for (const XmlElement* c : root.find_all("rect", "cell")) {
    EXPECT_TRUE(std::isfinite(number(c->get("x"))));
  }
}

// ---- Charts of reports

TEST(GradientPlotSvg, PlotsExactlyEachLayersLog10GradientPerRun) {
  const Report small = testing::small_report();
  const Report diagnosed = testing::diagnosed_report();
  const std::string svg = gradient_plot_svg({{"small", &small}, {"diagnosed", &diagnosed}}, false);
  const XmlElement root = chart_root(svg, "Gradient magnitude per layer");
  EXPECT_EQ(root.find_all("g", "series").size(), 2u);
  for (const auto& [name, report] : std::vector<std::pair<std::string, const Report*>>{
           {"small", &small}, {"diagnosed", &diagnosed}}) {
    const Points p = series_points(root, name);
    ASSERT_EQ(p.y.size(), report->layers.size());
    for (std::size_t i = 0; i < p.y.size(); ++i) {
      EXPECT_EQ(p.x[i], report->layers[i].index);
      EXPECT_EQ(p.y[i], report->layers[i].backward.grad_preact_rms.log10);
    }
  }
  // The y axis is in decades, covering the data (-3.5 .. -0.3).
  const auto ticks = decade_ticks(root);
  ASSERT_FALSE(ticks.empty());
  EXPECT_LE(ticks.front().first, -4);
  EXPECT_GE(ticks.back().first, 0);
}

TEST(GradientPlotSvg, TheoryLineIsTheLastMeasurementPlusThePredictedRelativeLog10) {
  const Report mixed = testing::mixed_report(OptimizerKind::kNone);
  const std::string svg = gradient_plot_svg({{"mixed", &mixed}}, true);
  save(svg, "gradient_plot");
  const XmlElement root = chart_root(svg, "Gradient magnitude per layer: mixed");
  const Points measured = series_points(root, "mixed");
  const Points theory = series_points(root, "mixed (theory)");
  EXPECT_EQ(measured.y.size(), mixed.layers.size());
  const double last = mixed.layers.back().backward.grad_preact_rms.log10;
  std::vector<double> xs, ys;
  for (const LayerReport& l : mixed.layers) {
    if (!l.theory.backward) continue;
    xs.push_back(l.index);
    ys.push_back(last + l.theory.log10_grad_rel_last);
  }
  EXPECT_EQ(xs.size(), mixed.layers.size() - 2);  // the first two ops have no prediction
  EXPECT_EQ(theory.x, xs);
  EXPECT_EQ(theory.y, ys);
  // At the reference layer, prediction and measurement coincide.
  EXPECT_EQ(theory.y.back(), measured.y.back());
  const XmlElement* group = series_group(root, "mixed (theory)");
  ASSERT_NE(group, nullptr);
  EXPECT_FALSE(group->find_all("path", "line").at(0)->get("stroke-dasharray").empty());
  // Measured and predicted lines of one run share a colour.
  EXPECT_EQ(series_group(root, "mixed")->find_all("path", "line").at(0)->get("stroke"),
            group->find_all("path", "line").at(0)->get("stroke"));
}

TEST(GradientPlotSvg, OpsOfSeveralKindsAreMarkedByKindWithALinePerBlock) {
  // A residual network's per-op gradient is a saw-tooth: what is each point?
  const Report mixed = testing::mixed_report(OptimizerKind::kNone);
  const std::string svg = gradient_plot_svg({{"mixed", &mixed}}, true);
  save(svg, "gradient_plot_residual");
  const XmlElement root = chart_root(svg, "Gradient magnitude per layer: mixed");
  const XmlElement* ops = series_group(root, "mixed");
  ASSERT_NE(ops, nullptr);
  const auto points = ops->find_all([](const XmlElement& e) { return e.has_class("point"); });
  ASSERT_EQ(points.size(), mixed.layers.size());
  const std::map<OpKind, std::string> shape = {{OpKind::kDense, "circle"},
                                               {OpKind::kNorm, "square"},
                                               {OpKind::kActivation, "triangle"},
                                               {OpKind::kDropout, "triangle-down"},
                                               {OpKind::kResidualEnd, "diamond"}};
  for (std::size_t i = 0; i < points.size(); ++i) {
    const LayerReport& l = mixed.layers[i];
    EXPECT_TRUE(points[i]->has_class(shape.at(l.kind))) << l.index;
    // Hovering names the op.
    const auto title = points[i]->find_all("title");
    ASSERT_EQ(title.size(), 1u);
    EXPECT_EQ(title[0]->text.rfind("layer " + std::to_string(l.index) + ": ", 0), 0u)
        << title[0]->text;
  }
  // The per-op line is thin; a bold line joins the residual adds, one point per block.
  EXPECT_EQ(number(ops->find_all("path", "line").at(0)->get("stroke-width")), 1.0);
  const Points blocks = series_points(root, "mixed: residual stream, one point per block");
  EXPECT_EQ(blocks.x, (std::vector<double>{7, 11}));
  // The legend says what each shape is, and what the dashed line is.
  std::vector<std::string> legend;
  for (const XmlElement* e : root.find_all("g", "legend-entry")) legend.push_back(legend_text(*e));
  for (const std::string key :
       {"dense layer", "norm", "activation (no weights)", "dropout", "residual add"}) {
    EXPECT_NE(std::find(legend.begin(), legend.end(), key), legend.end()) << key;
  }
  EXPECT_EQ(legend.back(), "dashed, hollow markers: the mean-field prediction (theory)");
  // A dense-only stack keeps one plain line of circles, with no per-kind keys.
  const Report small = testing::small_report();
  const XmlElement plain = chart_root(gradient_plot_svg({{"small", &small}}, false),
                                      "Gradient magnitude per layer: small");
  EXPECT_EQ(plain.find_all("g", "series").size(), 1u);
  EXPECT_EQ(plain.find_all("g", "legend-entry").size(), 1u);
  EXPECT_EQ(plain.find_all("circle", "point").size(), small.layers.size());
}

TEST(GradientPlotSvg, RunsWithoutPredictionsGetNoTheoryPoints) {
  const Report softmax = testing::softmax_output_report();
  const XmlElement root = chart_root(gradient_plot_svg({{"softmax", &softmax}}, true),
                                     "Gradient magnitude per layer: softmax");
  EXPECT_TRUE(series_points(root, "softmax (theory)").x.empty());
  EXPECT_EQ(series_points(root, "softmax").x.size(), softmax.layers.size());
}

TEST(GradientPlotSvg, AZeroGradientIsSkippedNotPlottedAtMinusInfinity) {
  Report r = testing::small_report();
  r.layers[0].backward.grad_preact_rms = magnitude_from_scaled(0.0, 0);
  ASSERT_TRUE(std::isinf(r.layers[0].backward.grad_preact_rms.log10));
  const XmlElement root =
      chart_root(gradient_plot_svg({{"zero", &r}}, false), "Gradient magnitude per layer: zero");
  EXPECT_EQ(series_points(root, "zero").x, (std::vector<double>{2, 3}));
}

// With no point to draw, the chart says why instead of "no finite data": zero has no place on a
// log scale, and a non-finite run names where the NaN or infinity begins.
TEST(GradientPlotSvg, AChartWithNothingToDrawSaysWhy) {
  Report zero = testing::small_report();
  for (LayerReport& l : zero.layers) l.backward.grad_preact_rms = magnitude_from_scaled(0.0, 0);
  const std::string zero_svg = gradient_plot_svg({{"zero", &zero}}, true);
  EXPECT_NE(zero_svg.find("every gradient is exactly 0, which a log scale cannot show"),
            std::string::npos);
  EXPECT_EQ(zero_svg.find("no finite data"), std::string::npos);

  Report nan = testing::small_report();
  for (LayerReport& l : nan.layers) {
    l.backward.grad_preact_rms = magnitude_from_scaled(std::nan(""), 0);
  }
  nan.summary.first_nonfinite_layer = 2;
  nan.summary.nonfinite_in_forward = true;
  const std::string nan_svg = gradient_plot_svg({{"nan", &nan}}, true);
  EXPECT_NE(nan_svg.find("no finite gradient at any layer (the forward pass is non-finite from "
                         "layer 2)"),
            std::string::npos)
      << nan_svg;
  // No line can be drawn, so there is no theory line to explain either.
  EXPECT_EQ(nan_svg.find("the mean-field prediction"), std::string::npos);
}

// A report whose layers carry activation histograms, the counts following a formula per layer
// and adding up to the layer's finite entries (the bump holds 165, the narrowest layer 256);
// layer 2's histogram is left empty (an op with no finite entry).
Report histogram_report() {
  Report r = testing::make_report("hist", {-1.5, -1.0, -0.75, -0.5}, {32, 32, 32, 4}, -0.3, true);
  for (LayerReport& l : r.layers) {
    if (l.index == 2) continue;
    const std::int64_t entries = l.forward.act.finite;
    std::int64_t left = entries;
    for (int b = 0; b < kActHistogramBins; ++b) {
      // A bump around bin 12 + 4 * index, the remainder in the last bin.
      const int d = b - (12 + 4 * l.index);
      const std::int64_t c = b + 1 == kActHistogramBins ? left : std::max(0, 25 - d * d);
      l.forward.act_histogram.push_back(c);
      left -= c;
    }
  }
  return r;
}

TEST(ActivationHistogramSvg, RowsHoldTheReportsHistogramsAndRanges) {
  const Report r = histogram_report();
  const std::string svg = activation_histogram_svg(r);
  save(svg, "activation_histogram");
  const XmlElement root = chart_root(svg, "Activation distribution per layer: hist");
  const auto rows = root.find_all("g", "row");
  ASSERT_EQ(rows.size(), r.layers.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const LayerReport& l = r.layers[i];
    EXPECT_EQ(number(rows[i]->get("data-position")), l.index);
    EXPECT_EQ(number(rows[i]->get("data-lo")), l.forward.act.min);
    EXPECT_EQ(number(rows[i]->get("data-hi")), l.forward.act.max);
    EXPECT_EQ(rows[i]->get("data-label").rfind(std::to_string(l.index) + " ", 0), 0u);
    std::vector<std::int64_t> counts;
    for (const XmlElement* bar : rows[i]->find_all("rect", "bar")) {
      counts.push_back(static_cast<std::int64_t>(number(bar->get("data-count"))));
    }
    EXPECT_EQ(counts, l.forward.act_histogram) << "layer " << l.index;
  }
  EXPECT_EQ(rows[1]->find_all("text", "note").size(), 1u);  // the empty histogram says so
}

TEST(UnitFractionPlotSvg, PlotsDeadAndSaturatedPercentPerLayer) {
  Report a = testing::diagnosed_report();
  Report b = testing::small_report();
  for (LayerReport& l : b.layers) l.forward.saturated_fraction = 0.05 * l.index;
  const std::string svg = unit_fraction_plot_svg({{"a", &a}, {"b", &b}});
  save(svg, "unit_fraction_plot");
  const XmlElement root = chart_root(svg, "Dead and saturated units per layer");
  EXPECT_EQ(root.find_all("g", "series").size(), 4u);
  for (const auto& [name, report] :
       std::vector<std::pair<std::string, const Report*>>{{"a", &a}, {"b", &b}}) {
    const Points dead = series_points(root, name + ": dead");
    const Points saturated = series_points(root, name + ": saturated");
    ASSERT_EQ(dead.y.size(), report->layers.size());
    ASSERT_EQ(saturated.y.size(), report->layers.size());
    for (std::size_t i = 0; i < report->layers.size(); ++i) {
      EXPECT_EQ(dead.x[i], report->layers[i].index);
      EXPECT_EQ(dead.y[i], 100.0 * report->layers[i].forward.dead_fraction);
      EXPECT_EQ(saturated.y[i], 100.0 * report->layers[i].forward.saturated_fraction);
    }
    EXPECT_FALSE(series_group(root, name + ": saturated")
                     ->find_all("path", "line")
                     .at(0)
                     ->get("stroke-dasharray")
                     .empty());
  }
  EXPECT_EQ(root.find_all("text", "axis-label").at(1)->text,
            "dead: % of units; saturated: % of entries");
}

// A theory report for tanh with a three-row grid, built by hand: a critical sw2 at two of the
// three sb2 values.
TheoryReport grid_report() {
  TheoryReport t;
  t.query.activation.kind = Activation::kTanh;
  t.query.grid = true;
  const std::vector<double> sw2 = default_phase_sw2();
  const std::vector<double> sb2 = {0.0, 0.25, 0.5};
  const std::vector<double> critical = {1.0, 1.3, kNan};
  for (std::size_t r = 0; r < sb2.size(); ++r) {
    PhasePoint p;
    p.sb2 = sb2[r];
    p.critical.exists = !std::isnan(critical[r]);
    p.critical.sw2 = critical[r];
    for (const double w : sw2) {
      const Phase phase = std::isnan(critical[r]) ? Phase::kUnbounded
                          : w < critical[r]       ? Phase::kOrdered
                          : w == critical[r]      ? Phase::kCritical
                                                  : Phase::kChaotic;
      p.samples.push_back({w, phase, 1.0, w / 2.0});
    }
    t.grid.push_back(p);
  }
  return t;
}

TEST(PhaseDiagramSvg, DrawsTheGridsPhasesAndItsEdgeOfChaos) {
  const TheoryReport t = grid_report();
  const std::string svg = phase_diagram_svg(t);
  save(svg, "phase_diagram");
  const XmlElement root = chart_root(svg, "Mean-field phase diagram: tanh");
  const auto cells = root.find_all("rect", "cell");
  ASSERT_EQ(cells.size(), t.grid.size() * t.grid.front().samples.size());
  std::size_t k = 0;
  for (const PhasePoint& p : t.grid) {
    for (const PhaseSample& s : p.samples) {
      EXPECT_EQ(number(cells[k]->get("data-sb2")), p.sb2);
      EXPECT_EQ(number(cells[k]->get("data-sw2")), s.sw2);
      EXPECT_EQ(cells[k]->get("data-phase"), phase_name(s.phase));
      ++k;
    }
  }
  const auto points = root.find_all("g", "critical-line").at(0)->find_all("circle");
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(number(points[1]->get("data-sb2")), 0.25);
  EXPECT_EQ(number(points[1]->get("data-sw2")), 1.3);
}

TEST(PhaseDiagramSvg, AReportWithoutAGridGivesAnEmptyChartThatSaysSo) {
  TheoryReport t;
  t.query.activation.kind = Activation::kRelu;
  const XmlElement root = chart_root(phase_diagram_svg(t), "Mean-field phase diagram: relu");
  EXPECT_TRUE(root.find_all("rect", "cell").empty());
  EXPECT_EQ(root.find_all("text", "note").size(), 1u);
}

TEST(ReportCharts, AreDeterministic) {
  const Report mixed = testing::mixed_report(OptimizerKind::kAdam);
  const Report hist = histogram_report();
  const TheoryReport t = grid_report();
  EXPECT_EQ(gradient_plot_svg({{"m", &mixed}}, true), gradient_plot_svg({{"m", &mixed}}, true));
  EXPECT_EQ(activation_histogram_svg(hist), activation_histogram_svg(hist));
  EXPECT_EQ(unit_fraction_plot_svg({{"m", &mixed}}), unit_fraction_plot_svg({{"m", &mixed}}));
  EXPECT_EQ(phase_diagram_svg(t), phase_diagram_svg(t));
  EXPECT_EQ(histogram_stack_svg(three_rows()), histogram_stack_svg(three_rows()));
  EXPECT_EQ(phase_chart_svg(small_phase_chart()), phase_chart_svg(small_phase_chart()));
}

}  // namespace
}  // namespace gradscope
