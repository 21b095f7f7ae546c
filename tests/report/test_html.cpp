// The HTML pages and the "why sigmoid fails" lesson: well-formed markup with the plots inline,
// user text escaped, and a lesson whose numbers follow the runs rather than the prose.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "gradscope/app/lesson.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/sweep.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/report/html.hpp"
#include "gradscope/report/sweep_text.hpp"
#include "support/paths.hpp"
#include "xml_check.hpp"

namespace gradscope {
namespace {

namespace fs = std::filesystem;

const fs::path kRoot = GRADSCOPE_SOURCE_DIR;

// The page past its <!DOCTYPE html> line, parsed as XML.
testing::XmlDocument parse_page(const std::string& html) {
  EXPECT_EQ(html.rfind("<!DOCTYPE html>\n", 0), 0u);
  return testing::parse_xml(html.substr(html.find('\n') + 1));
}

std::string errors_of(const testing::XmlDocument& d) {
  std::string s;
  for (const std::string& e : d.errors) s += e + "\n";
  return s;
}

Report small_sigmoid_run() {
  RunSpec spec = load_run_spec(std::nullopt, {{"stack.depth", "12", "test"},
                                              {"stack.width", "32", "test"},
                                              {"input.batch", "16", "test"},
                                              {"stack.activation", "sigmoid", "test"},
                                              {"stack.init", "xavier_normal", "test"}});
  return run_diagnostic(spec);
}

TEST(Html, RunPageIsWellFormedWithFindingsAndThreePlots) {
  const Report r = small_sigmoid_run();
  const testing::XmlDocument page = parse_page(report_to_html(r));
  ASSERT_TRUE(page.errors.empty()) << errors_of(page);
  EXPECT_EQ(page.root.name, "html");
  EXPECT_EQ(page.root.find_all("svg").size(), 3u);
  EXPECT_EQ(page.root.find_all("div", "finding").size(), r.findings.size());
  const auto badge = page.root.find_all("span", "verdict");
  ASSERT_EQ(badge.size(), 1u);
  EXPECT_EQ(badge.front()->text, std::string(verdict_name(r.verdict)));
  // No scripts and nothing fetched from the network: the page works offline.
  EXPECT_TRUE(page.root.find_all("script").empty());
  EXPECT_TRUE(page.root
                  .find_all([](const testing::XmlElement& e) {
                    const std::string src = e.get("src") + e.get("href");
                    return src.find("http") != std::string::npos;
                  })
                  .empty());
}

TEST(Html, UserTextIsEscaped) {
  Report r = small_sigmoid_run();
  r.spec.name = "a<script>alert('x')</script>&b";
  const std::string html = report_to_html(r);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_TRUE(parse_page(html).errors.empty());
  EXPECT_EQ(html_escape(R"(<a href="x">'&'</a>)"),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;");
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The lesson from its built-in configs, run once for the tests that only read it.
const Lesson& builtin_lesson() {
  static const Lesson lesson = run_lesson("why-sigmoid-fails", std::string(), 0);
  return lesson;
}

// Runs in an empty temporary directory for its lifetime, then goes back.
class InEmptyDirectory {
 public:
  InEmptyDirectory()
      : back_(fs::current_path()),
        dir_(fs::temp_directory_path() / ("gradscope-cwd-" + std::to_string(::getpid()))) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::current_path(dir_);
  }
  ~InEmptyDirectory() {
    fs::current_path(back_);
    fs::remove_all(dir_);
  }
  InEmptyDirectory(const InEmptyDirectory&) = delete;
  InEmptyDirectory& operator=(const InEmptyDirectory&) = delete;

 private:
  fs::path back_;
  fs::path dir_;
};

// The lesson's configs at another depth, in a temporary directory.
fs::path lesson_configs_at_depth(int depth) {
  const fs::path dir =
      fs::temp_directory_path() /
      ("gradscope-lesson-" + std::to_string(::getpid()) + "-" + std::to_string(depth));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kRoot / "configs/lessons/why-sigmoid-fails")) {
    std::ifstream in(e.path());
    std::stringstream s;
    s << in.rdbuf();
    std::string text = s.str();
    const std::string from = "\"depth\": 50";
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << e.path();
    text.replace(at, from.size(), "\"depth\": " + std::to_string(depth));
    std::ofstream(dir / e.path().filename()) << text;
  }
  return dir;
}

TEST(Lesson, WhySigmoidFailsRunsFiveActivationsAndWritesWellFormedPages) {
  const Lesson lesson =
      run_lesson("why-sigmoid-fails", (kRoot / "configs/lessons/why-sigmoid-fails").string(), 0);
  ASSERT_EQ(lesson.runs.size(), 5u);
  const testing::XmlDocument page = parse_page(lesson_to_html(lesson));
  ASSERT_TRUE(page.errors.empty()) << errors_of(page);
  EXPECT_EQ(page.root.find_all("svg").size(), 2u);
  const auto tables = page.root.find_all("table");
  ASSERT_EQ(tables.size(), 1u);
  // The header, one row per activation, and one for GELU with the diagnosis's fix.
  EXPECT_EQ(tables.front()->find_all("tr").size(), 7u);
  const std::string md = lesson_to_markdown(lesson);
  for (const char* words :
       {"vanishing gradient", "at most 0.25", "dead", "leaky", "GELU", "softmax", "binary"}) {
    EXPECT_NE(md.find(words), std::string::npos) << words;
  }
  for (const auto& [file, svg] : lesson_plots(lesson)) {
    EXPECT_NE(md.find("(" + file + ")"), std::string::npos) << file;
    EXPECT_TRUE(testing::xml_errors(svg).empty()) << file;
  }
}

TEST(Lesson, EveryNumberFollowsTheRunsNotTheProse) {
  const fs::path dir = lesson_configs_at_depth(12);
  const Lesson shallow = run_lesson("why-sigmoid-fails", dir.string(), 0);
  fs::remove_all(dir);
  const std::string md = lesson_to_markdown(shallow);
  EXPECT_NE(md.find("The same 12-layer network"), std::string::npos);
  EXPECT_EQ(md.find("50-layer"), std::string::npos);
  EXPECT_EQ(md.find("after 50 layers"), std::string::npos);
  // The sigmoid's first-to-last ratio as the run measured it, in the run's own words.
  const Report& sigmoid = shallow.runs.front();
  char expected[32];
  std::snprintf(expected, sizeof expected, "%.3g",
                std::pow(10.0, sigmoid.summary.log10_grad_ratio_first_to_last));
  EXPECT_NE(md.find(expected), std::string::npos) << expected << "\n" << md;
}

TEST(Lesson, AMissingConfigDirectoryIsAClearError) {
  EXPECT_THROW(run_lesson("why-sigmoid-fails", "/nonexistent/lesson", 0), Error);
}

TEST(Lesson, RunsFromAnotherDirectoryWithItsBuiltInConfigs) {
  const InEmptyDirectory elsewhere;
  ASSERT_FALSE(fs::exists("configs"));
  const Lesson lesson = run_lesson("why-sigmoid-fails", std::string(), 0);
  ASSERT_EQ(lesson.runs.size(), 5u);
  EXPECT_EQ(lesson.runs.front().spec.name, "why-sigmoid-fails-sigmoid");
  EXPECT_NE(lesson_to_markdown(lesson).find("The same 50-layer network"), std::string::npos);
}

TEST(Lesson, BuiltInConfigsAreTheCommittedFiles) {
  std::size_t committed = 0;
  for (const auto& lesson_dir : fs::directory_iterator(kRoot / "configs/lessons")) {
    for (const auto& e : fs::directory_iterator(lesson_dir.path())) {
      if (e.path().extension() != ".json") continue;
      ++committed;
      const std::string lesson = lesson_dir.path().filename().string();
      const std::string file = e.path().filename().string();
      const auto configs = embedded_lesson_configs();
      const auto it = std::find_if(configs.begin(), configs.end(), [&](const EmbeddedConfig& c) {
        return c.lesson == lesson && c.file == file;
      });
      ASSERT_NE(it, configs.end()) << lesson << "/" << file << " is not built in";
      EXPECT_EQ(it->text, read_file(e.path())) << lesson << "/" << file << " is stale";
    }
  }
  EXPECT_EQ(embedded_lesson_configs().size(), committed);
  EXPECT_EQ(builtin_lessons(),
            (std::vector<std::string>{"why-resnets-need-batch-norm", "why-sigmoid-fails",
                                      "why-transformers-need-residuals-and-norms"}));
}

TEST(Lesson, AnUnknownLessonIsAUsageErrorListingTheBuiltInOnes) {
  try {
    (void)lesson_configs("why-relu-wins", std::string());
    FAIL() << "no error for an unknown lesson";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("why-relu-wins"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("why-sigmoid-fails"), std::string::npos) << e.what();
  }
}

TEST(Lesson, AnErrorInABuiltInConfigNamesTheEmbeddedFile) {
  const std::vector<LessonConfig> broken{
      {"why-sigmoid-fails/9-broken.json", R"({"stack": {"depth": -1}})", true}};
  try {
    (void)run_lesson("why-sigmoid-fails", broken, 0);
    FAIL() << "no error for a broken config";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("why-sigmoid-fails/9-broken.json"), std::string::npos)
        << e.what();
    EXPECT_NE(e.hint().find("configs/lessons/why-sigmoid-fails/9-broken.json"), std::string::npos)
        << e.hint();
  }
}

TEST(Lesson, GeluWithHeInitIsAnErrorAndTheDiagnosisFixIsProvenHealthy) {
  const Lesson& lesson = builtin_lesson();
  ASSERT_EQ(lesson.runs.size(), 5u);
  const Report& he = lesson.runs[4];
  EXPECT_EQ(he.spec.name, "why-sigmoid-fails-gelu");
  EXPECT_EQ(he.verdict, Verdict::kError);
  // Only GELU is fixed: sigmoid's fix is another activation, which is the lesson itself.
  ASSERT_EQ(lesson.fixes.size(), 1u);
  const LessonFix& fix = lesson.fixes.front();
  EXPECT_EQ(fix.run, 4u);
  ASSERT_FALSE(fix.changes.empty());
  EXPECT_EQ(fix.changes.front().path, "stack.init");
  EXPECT_EQ(fix.report.verdict, Verdict::kHealthy);
  ASSERT_FALSE(fix.advice.empty());

  const std::string md = lesson_to_markdown(lesson);
  const std::size_t section = md.find("## GELU");
  ASSERT_NE(section, std::string::npos) << md;
  const std::string gelu = md.substr(section, md.find("## ", section + 3) - section);
  EXPECT_NE(gelu.find("he_normal (sw2 = 2)"), std::string::npos) << gelu;
  EXPECT_NE(gelu.find("Verdict: error (collapsing_activations"), std::string::npos) << gelu;
  EXPECT_NE(gelu.find("> " + fix.advice.front()), std::string::npos) << gelu;  // quoted as is
  EXPECT_NE(gelu.find("`" + set_argument(fix.changes.front()) + "`"), std::string::npos) << gelu;
  EXPECT_NE(gelu.find("Verdict: healthy"), std::string::npos) << gelu;
  // Both in the table, the fix right after the run it fixes.
  const std::size_t he_row = md.find("| gelu | he_normal (2) |");
  const std::size_t fixed_row = md.find("| gelu (fixed) | variance (");
  ASSERT_NE(he_row, std::string::npos) << md;
  ASSERT_NE(fixed_row, std::string::npos) << md;
  EXPECT_LT(he_row, fixed_row);
  EXPECT_NE(md.find("| healthy |", fixed_row), std::string::npos);
  // Where the fixed run parts from the theory, the page says so next to the numbers, counting
  // the layers the run report flags.
  const std::size_t flagged = fix.report.summary.theory_flagged_layers.size();
  EXPECT_EQ(gelu.find("Mean-field theory predicted") != std::string::npos, flagged > 0) << gelu;
  if (flagged > 0) {
    EXPECT_NE(gelu.find(fmt::format("flags {} of its", flagged)), std::string::npos) << gelu;
  }

  const testing::XmlDocument page = parse_page(lesson_to_html(lesson));
  ASSERT_TRUE(page.errors.empty()) << errors_of(page);
  EXPECT_EQ(page.root.find_all("blockquote").size(), fix.advice.size());
}

TEST(Lesson, GainIsWordedInTheTablesUnit) {
  const Lesson& lesson = builtin_lesson();
  const std::string md = lesson_to_markdown(lesson);
  EXPECT_NE(md.find("| gain per layer |"), std::string::npos);
  EXPECT_NE(md.find("gain: the rms of a layer's gradient over the next layer's"),
            std::string::npos);
  EXPECT_EQ(md.find("factor per layer"), std::string::npos);
  // The sigmoid's mean gain as the table gives it, and the same as "shrinks Nx".
  const double gain = std::pow(10.0, lesson.runs.front().summary.mean_log10_gain);
  char expected[96];
  std::snprintf(expected, sizeof expected,
                "the mean gain per layer is %.3g (the gradient's rms shrinks %.3gx per layer)",
                gain, 1.0 / gain);
  EXPECT_NE(md.find(expected), std::string::npos) << expected << "\n" << md;
  // Every "Nx per layer" follows its gain, and the two agree (both have three digits).
  const std::regex labelled(
      R"(mean gain per layer is ([0-9.e+-]+) \(the gradient's rms (shrinks|grows) ([0-9.]+)x per layer\))");
  std::size_t checked = 0;
  for (auto it = std::sregex_iterator(md.begin(), md.end(), labelled); it != std::sregex_iterator();
       ++it, ++checked) {
    const double g = std::stod((*it)[1]);
    const double n = std::stod((*it)[3]);
    EXPECT_NEAR((*it)[2] == "shrinks" ? 1.0 / g : g, n, 0.01 * n) << it->str();
  }
  std::size_t per_layer = 0;
  for (std::size_t at = md.find("x per layer"); at != std::string::npos;
       at = md.find("x per layer", at + 1)) {
    ++per_layer;
  }
  EXPECT_GE(checked, 3u);  // sigmoid, GELU with He's init, GELU fixed
  EXPECT_EQ(per_layer, checked) << md;
}

// ---- Charts on the pages: the column's width, full legends, print

// A sweep of `points` points, one seed each, over 8 layers, with a prediction per layer.
SweepResult synthetic_sweep(int points) {
  SweepResult s;
  s.name = "styles";
  s.config = "<default>";
  const char* activations[] = {"sigmoid", "tanh", "relu", "gelu", "selu"};
  for (int i = 0; i < points; ++i) {
    SweepPointSummary p;
    p.point.index = i;
    p.point.label = std::string("activation=") + activations[i / 2 % 5] +
                    " depth=" + std::to_string(i % 2 == 0 ? 1 : 8) + " init=xavier_normal";
    SweepRun run;
    run.point = i;
    for (int l = 0; l < 8; ++l) {
      run.log10_grad.push_back(-0.1 * i * (8 - l));
      run.predicted_log10_grad.push_back(-0.1 * i * (8 - l) + 0.05);
    }
    p.runs.push_back(run);
    p.worst_verdict = "healthy";
    s.points.push_back(p);
  }
  return s;
}

TEST(Html, SweepChartNamesEveryPointInFullAndNoTwoLookAlike) {
  // Ten points used to wrap the seven colours (point 7 looked like point 0) and cut the labels.
  const SweepResult sweep = synthetic_sweep(10);
  const testing::XmlDocument page = parse_page(sweep_to_html(sweep));
  ASSERT_TRUE(page.errors.empty()) << errors_of(page);
  const auto svgs = page.root.find_all("svg");
  ASSERT_EQ(svgs.size(), 1u);
  std::vector<std::string> legend, looks;
  for (const testing::XmlElement* e : svgs[0]->find_all("g", "legend-entry")) {
    legend.push_back(e->find_all("text").at(0)->text);
  }
  ASSERT_EQ(legend.size(), 11u);  // the ten points and one key for every dashed line
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(legend[i], sweep.points[i].point.label);
  EXPECT_NE(legend.back().find("theory"), std::string::npos);
  for (const testing::XmlElement* g : svgs[0]->find_all("g", "series")) {
    if (g->get("data-label").find("(theory)") != std::string::npos) continue;
    const auto point =
        g->find_all([](const testing::XmlElement& e) { return e.has_class("point"); });
    looks.push_back(g->find_all("path", "line").at(0)->get("stroke") + " " +
                    point.at(0)->get("class"));
  }
  ASSERT_EQ(looks.size(), 10u);
  std::sort(looks.begin(), looks.end());
  EXPECT_EQ(std::unique(looks.begin(), looks.end()), looks.end());
}

TEST(Html, SweepMarkdownShowsTheConfigVerbatimInItsCodeSpan) {
  const std::string md = sweep_to_markdown(synthetic_sweep(2));
  EXPECT_NE(md.find("Config `<default>`"), std::string::npos) << md;
  EXPECT_EQ(md.find("&lt;"), std::string::npos) << md;  // a code span would show it literally
}

TEST(Html, ChartsTakeTheColumnsWidthAndPrintLegibly) {
  const std::string html = report_to_html(small_sigmoid_run());
  // The style sheet scales every chart to the column (the viewBox keeps its proportions), and a
  // print style drops the page's width limit and keeps a chart on one page.
  EXPECT_NE(html.find(".plot svg { display: block; width: 100%;"), std::string::npos);
  EXPECT_NE(html.find("height: auto;"), std::string::npos);
  EXPECT_NE(html.find("@media print"), std::string::npos);
  EXPECT_NE(html.find("break-inside: avoid"), std::string::npos);
  const testing::XmlDocument page = parse_page(html);
  for (const testing::XmlElement* svg : page.root.find_all("svg")) {
    EXPECT_FALSE(svg->get("viewBox").empty());
    // Tick labels, legends and axis titles at 12 px or more in chart units: at least about 10 px
    // on screen in a column of 700 px or more.
    for (const testing::XmlElement* g : svg->find_all("g", "axes")) {
      EXPECT_GE(std::stod(g->get("font-size")), 12.0);
    }
    for (const testing::XmlElement* g : svg->find_all("g", "legend")) {
      EXPECT_GE(std::stod(g->get("font-size")), 12.0);
    }
  }
}

TEST(Html, TheLessonSaysWhichLinesLieOnTopOfEachOther) {
  // ReLU and leaky ReLU have the same gradient at every layer: one line hid the other.
  const Lesson lesson =
      run_lesson("why-sigmoid-fails", (kRoot / "configs/lessons/why-sigmoid-fails").string(), 0);
  const testing::XmlDocument page = parse_page(lesson_to_html(lesson));
  ASSERT_TRUE(page.errors.empty()) << errors_of(page);
  const auto svgs = page.root.find_all("svg");
  ASSERT_FALSE(svgs.empty());
  std::string relu;
  for (const testing::XmlElement* e : svgs[0]->find_all("g", "legend-entry")) {
    if (e->get("data-label") == "relu") relu = e->find_all("text").at(0)->text;
  }
  EXPECT_NE(relu.find("leaky_relu"), std::string::npos) << relu;
  // Both lines are drawn, the one underneath wider, so its colour shows at both edges.
  double relu_width = 0.0, leaky_width = 0.0;
  for (const testing::XmlElement* g : svgs[0]->find_all("g", "series")) {
    const double w = std::stod(g->find_all("path", "line").at(0)->get("stroke-width"));
    if (g->get("data-label") == "relu") relu_width = w;
    if (g->get("data-label") == "leaky_relu") leaky_width = w;
  }
  EXPECT_GT(relu_width, leaky_width);
}

}  // namespace
}  // namespace gradscope
