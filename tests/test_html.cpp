// The HTML pages and the "why sigmoid fails" lesson: well-formed markup with the plots inline,
// user text escaped, and a lesson whose numbers follow the runs rather than the prose.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gradscope/config.hpp"
#include "gradscope/diagnosis.hpp"
#include "gradscope/engine.hpp"
#include "gradscope/error.hpp"
#include "gradscope/html.hpp"
#include "gradscope/lesson.hpp"
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
  EXPECT_EQ(tables.front()->find_all("tr").size(), 6u);  // header + one row per activation
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

}  // namespace
}  // namespace gradscope
