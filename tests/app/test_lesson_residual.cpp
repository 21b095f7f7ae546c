// The "why transformers need residuals and norms" lesson: its four designs told apart from the
// runs, rank collapse without skips, and a text whose numbers follow the runs, not the prose.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gradscope/app/lesson.hpp"
#include "report/text_format.hpp"
#include "support/paths.hpp"

namespace gradscope {
namespace {

namespace fs = std::filesystem;
constexpr const char* kName = "why-transformers-need-residuals-and-norms";
const fs::path kRoot = GRADSCOPE_SOURCE_DIR;

const Lesson& builtin_lesson() {
  static const Lesson lesson = run_lesson(kName, std::string(), 0);
  return lesson;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The lesson's configs with every "blocks": 12 (and the no-skip stack's "repeat": 12) set to
// `blocks`, in a temporary directory.
fs::path configs_with_blocks(int blocks) {
  const fs::path dir =
      fs::temp_directory_path() /
      ("gradscope-residual-lesson-" + std::to_string(::getpid()) + "-" + std::to_string(blocks));
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kRoot / "configs/lessons" / kName)) {
    std::ifstream in(e.path());
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    for (const std::string key : {"\"blocks\": 12", "\"repeat\": 12"}) {
      const std::size_t at = s.find(key);
      if (at != std::string::npos) {
        s.replace(at, key.size(), key.substr(0, key.size() - 2) + std::to_string(blocks));
      }
    }
    std::ofstream(dir / e.path().filename()) << s;
  }
  return dir;
}

TEST(ResidualLesson, RunsTheFourDesignsAndWritesBothPages) {
  const Lesson& lesson = builtin_lesson();
  ASSERT_EQ(lesson.runs.size(), 4U);
  EXPECT_TRUE(lesson.fixes.empty());
  const std::string md = lesson_to_markdown(lesson);
  EXPECT_EQ(md.rfind("# Why transformers need residuals and norms\n", 0), 0U) << md;
  for (const char* row : {"| no skips |", "| post-norm |", "| pre-norm |", "| DeepNorm |"}) {
    EXPECT_TRUE(contains(md, row)) << row;
  }
  EXPECT_TRUE(contains(md, "The same 12-block transformer (width 64, 4 heads, 16 tokens"));
  const std::string html = lesson_to_html(lesson);
  EXPECT_TRUE(contains(html, "<h1>Why transformers need residuals and norms</h1>"));
  const auto plots = lesson_plots(lesson);
  ASSERT_EQ(plots.size(), 1U);
  EXPECT_EQ(plots[0].first, std::string(kName) + "-gradients.svg");
  EXPECT_TRUE(contains(md, "](" + plots[0].first + ")"));
  EXPECT_TRUE(contains(html, "<svg"));
}

TEST(ResidualLesson, WithoutSkipsTheTokensCollapseAndDeepNormKeepsThemApart) {
  const Lesson& lesson = builtin_lesson();
  const auto cosine = [&](std::size_t run) {
    return lesson.runs[run].layers.back().forward.token_mean_cosine;
  };
  // Rank collapse: the no-skip stack's tokens are one vector but for parts 1e-3 of their size
  // (0.99 leaves room for another seed); pre-norm slows it, DeepNorm's weighted skip keeps the
  // input's nearly orthogonal tokens (cosine ~0) far from it.
  EXPECT_GT(cosine(0), 0.99);
  EXPECT_LT(cosine(2), cosine(1));
  EXPECT_LT(cosine(3), 0.5);
  // Without skips the gradient vanishes on its way down; every residual design passes it on.
  EXPECT_LT(lesson.runs[0].summary.log10_grad_ratio_first_to_last, -2.0);
  for (std::size_t run = 1; run < 4; ++run) {
    EXPECT_GT(lesson.runs[run].summary.log10_grad_ratio_first_to_last, -1.0) << run;
  }
}

TEST(ResidualLesson, EveryNumberFollowsTheRuns) {
  const fs::path dir = configs_with_blocks(4);
  const Lesson lesson = run_lesson(kName, dir.string(), 0);
  fs::remove_all(dir);
  ASSERT_EQ(lesson.runs.size(), 4U);
  const std::string md = lesson_to_markdown(lesson);
  EXPECT_TRUE(contains(md, "The same 4-block transformer")) << md;
  EXPECT_TRUE(contains(md, "after 4 blocks")) << md;
  for (const Report& r : lesson.runs) {
    const ForwardStats& last = r.layers.back().forward;
    EXPECT_TRUE(contains(md, text_format::format_number(last.token_mean_cosine)));
    EXPECT_TRUE(contains(md, text_format::format_magnitude(
                                 magnitude_from_log10(r.summary.log10_grad_ratio_first_to_last))));
  }
  // DeepNorm's constants come from the run's resolved spec: alpha = (2N)^(1/4) at N = 4.
  EXPECT_TRUE(contains(md, "alpha = " + text_format::format_number(std::pow(8.0, 0.25))));
}

}  // namespace
}  // namespace gradscope
