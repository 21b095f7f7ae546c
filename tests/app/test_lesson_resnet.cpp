// The "why ResNets need batch norm" lesson: the signal-propagation numbers its text quotes are
// the runs' own, the three designs behave as the text says (compounding without norms, linear
// growth with batch norm, near-constant with scaled branches), and its plot draws every block.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "gradscope/app/lesson.hpp"
#include "report/text_format.hpp"

namespace gradscope {
namespace {

constexpr const char* kName = "why-resnets-need-batch-norm";

const Lesson& builtin_lesson() {
  static const Lesson lesson = run_lesson(kName, std::string(), 0);
  return lesson;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The stream's channel variance at each residual end (block output).
std::vector<double> stream_variances(const Report& r) {
  std::vector<double> v;
  for (const LayerReport& l : r.layers) {
    if (l.kind == OpKind::kResidualEnd) v.push_back(l.forward.channel_var.value);
  }
  return v;
}

const Report& run_named(const std::string& name) {
  for (const Report& r : builtin_lesson().runs) {
    if (r.spec.name == name) return r;
  }
  throw std::runtime_error("no run " + name);
}

TEST(ResnetLesson, TheVarianceCompoundsWithoutNormsAndGrowsLinearlyWithBatchNorm) {
  const std::vector<double> plain = stream_variances(run_named("no-norm"));
  const std::vector<double> bn = stream_variances(run_named("batch-norm"));
  const std::vector<double> scaled = stream_variances(run_named("scaled-branches"));
  ASSERT_EQ(plain.size(), 16U);
  ASSERT_EQ(bn.size(), 16U);
  // He-initialised branches about double the stream (measured 1.58x per block): 16 blocks give
  // far more than 2 decades.
  EXPECT_GT(plain.back() / plain.front(), 100.0);
  // Batch norm: each block adds about the same branch variance (measured 0.6), so the growth
  // from block 1 to 16 is near linear, far from compounding.
  const double added = (bn.back() - bn.front()) / 15.0;
  EXPECT_GT(added, 0.3);
  EXPECT_LT(added, 1.0);
  EXPECT_LT(bn.back() / bn.front(), 16.0);
  // Branches scaled by 1/4 add 1/16 of a branch's variance each: the stream stays within 2x.
  EXPECT_LT(scaled.back() / scaled.front(), 2.0);
  // Fixup: every branch's last layer is zero, so every block is exactly the identity at init.
  const std::vector<double> fixup = stream_variances(run_named("fixup"));
  ASSERT_EQ(fixup.size(), 16U);
  for (double v : fixup) EXPECT_EQ(v, fixup.front());
  for (const LayerReport& l : run_named("fixup").layers) {
    if (l.kind == OpKind::kResidualEnd) EXPECT_EQ(l.forward.branch_var.value, 0.0);
  }
}

TEST(ResnetLesson, TheTextQuotesTheRuns) {
  const Lesson& lesson = builtin_lesson();
  const std::string md = lesson_to_markdown(lesson);
  EXPECT_EQ(md.rfind("# Why ResNets need batch norm or a careful init\n", 0), 0U) << md;
  for (const Report& r : lesson.runs) {
    const std::vector<double> v = stream_variances(r);
    const std::string first = text_format::format_number(v.front());
    const std::string last = text_format::format_number(v.back());
    EXPECT_TRUE(contains(md, first)) << r.spec.name << " " << first;
    EXPECT_TRUE(contains(md, last)) << r.spec.name << " " << last;
  }
  EXPECT_TRUE(contains(md, "## Without normalisation, the variance compounds"));
  EXPECT_TRUE(contains(md, "## Batch norm: each branch adds a constant"));
  EXPECT_TRUE(contains(md, "## The same without norms: scale the branches down"));
  EXPECT_TRUE(contains(md, "## Fixup: every block starts as the identity"));
  const std::string html = lesson_to_html(lesson);
  EXPECT_TRUE(contains(html, "<svg"));
}

TEST(ResnetLesson, ThePlotDrawsTheStreamAndTheBranchOfEveryBlock) {
  const auto plots = lesson_plots(builtin_lesson());
  ASSERT_EQ(plots.size(), 1U);
  EXPECT_EQ(plots[0].first, "why-resnets-need-batch-norm-signal-propagation.svg");
  // Four designs x (stream + branch) x 16 blocks, each point with its value.
  std::size_t points = 0;
  for (std::size_t at = plots[0].second.find("data-y="); at != std::string::npos;
       at = plots[0].second.find("data-y=", at + 1)) {
    ++points;
  }
  // Fixup's branches are exactly 0, which a log axis does not draw: 16 points fewer.
  EXPECT_EQ(points, 4U * 2U * 16U - 16U);
}

}  // namespace
}  // namespace gradscope
