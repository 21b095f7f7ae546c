// Tests of the writer registry: every format named and extended once, names that round-trip, an
// unknown name refused with the valid ones listed, and the registry giving exactly the bytes of
// the writer it stands for, for each kind of document.
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>

#include "gradscope/app/compare.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/io/comparison_json.hpp"
#include "gradscope/io/report_json.hpp"
#include "gradscope/io/sweep_json.hpp"
#include "gradscope/io/theory_json.hpp"
#include "gradscope/report/compare_text.hpp"
#include "gradscope/report/html.hpp"
#include "gradscope/report/plots.hpp"
#include "gradscope/report/report_md.hpp"
#include "gradscope/report/report_text.hpp"
#include "gradscope/report/sweep_text.hpp"
#include "gradscope/report/theory_text.hpp"
#include "gradscope/report/writer.hpp"
#include "report_fixtures.hpp"

namespace gradscope {
namespace {

TEST(Writer, EveryFormatHasOneRowWithAUniqueNameAndExtension) {
  std::set<std::string_view> names, extensions;
  for (int i = 0; i < kFormatCount; ++i) {
    const FormatInfo& info = format_table()[static_cast<std::size_t>(i)];
    EXPECT_EQ(static_cast<int>(info.format), i);
    EXPECT_EQ(&format_info(info.format), &info);
    EXPECT_FALSE(info.name.empty());
    ASSERT_GE(info.extension.size(), 2u) << info.name;
    EXPECT_EQ(info.extension.front(), '.') << info.name;
    EXPECT_TRUE(names.insert(info.name).second) << "duplicate name " << info.name;
    EXPECT_TRUE(extensions.insert(info.extension).second) << "duplicate " << info.extension;
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(kFormatCount));
}

TEST(Writer, NamesAndExtensionsAreTheOnesTheCliAndItsFilesUse) {
  // --format takes these names, and the files a run writes have these extensions.
  EXPECT_EQ(format_info(Format::kText).name, "text");
  EXPECT_EQ(format_info(Format::kMarkdown).name, "md");
  EXPECT_EQ(file_name("deep", Format::kText), "deep.txt");
  EXPECT_EQ(file_name("deep", Format::kJson), "deep.json");
  EXPECT_EQ(file_name("deep", Format::kMarkdown), "deep.md");
  EXPECT_EQ(file_name("deep", Format::kHtml), "deep.html");
  EXPECT_EQ(file_name("deep", Format::kSvg), "deep.svg");
}

TEST(Writer, FormatFromNameRoundTrips) {
  for (const FormatInfo& info : format_table()) {
    EXPECT_EQ(format_from_name(info.name), info.format) << info.name;
  }
}

TEST(Writer, AnUnknownNameIsAUsageErrorListingTheValidOnes) {
  for (const std::string name : {"xml", "", "markdown", "JSON", "jsn"}) {
    try {
      format_from_name(name);
      ADD_FAILURE() << "\"" << name << "\" was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kUsage);
      EXPECT_NE(std::string(e.what()).find("\"" + name + "\""), std::string::npos) << e.what();
      EXPECT_NE(e.hint().find("the formats are text, json, md, html and svg"), std::string::npos)
          << e.hint();
    }
  }
  try {
    format_from_name("jsn");
  } catch (const Error& e) {
    EXPECT_EQ(e.hint().rfind("did you mean \"json\"? ", 0), 0u) << e.hint();
  }
}

TEST(Writer, ARunsReportThroughTheRegistryIsTheDirectWritersBytes) {
  const Report r = testing::diagnosed_report();
  const TextOptions plain{false, 40};
  const TextOptions coloured_short{true, 4};
  EXPECT_EQ(write_document(Format::kText, r, plain), report_to_text(r, plain));
  EXPECT_EQ(write_document(Format::kText, r, coloured_short), report_to_text(r, coloured_short));
  EXPECT_EQ(write_document(Format::kText, r), report_to_text(r));
  EXPECT_EQ(write_document(Format::kJson, r, plain), report_to_json(r));
  // --max-rows is the text report's: the Markdown keeps its own default, as `run` always wrote it.
  EXPECT_EQ(write_document(Format::kMarkdown, r, coloured_short), report_to_markdown(r));
  EXPECT_EQ(write_document(Format::kHtml, r, plain), report_to_html(r));
}

TEST(Writer, ASweepThroughTheRegistryIsTheDirectWritersBytes) {
  SweepResult s;
  s.name = "depths";
  s.config = "<default>";
  for (int i = 0; i < 3; ++i) {
    SweepPointSummary p;
    p.point.index = i;
    p.point.settings = {{"depth", std::to_string(4 * (i + 1))}};
    p.point.label = "depth=" + std::to_string(4 * (i + 1));
    SweepRun run;
    run.point = i;
    run.file = "runs/p000" + std::to_string(i) + "-s0.json";
    run.verdict = i == 2 ? "vanishing" : "healthy";
    run.log10_grad_ratio = -0.5 * i;
    for (int l = 0; l < 4 * (i + 1); ++l) run.log10_grad.push_back(-0.1 * l);
    run.predicted_log10_grad = run.log10_grad;
    run.dead_fraction.assign(run.log10_grad.size(), 0.0);
    run.saturated_fraction_per_layer.assign(run.log10_grad.size(), 0.0);
    p.runs.push_back(run);
    p.ratio_mean = p.ratio_min = p.ratio_max = run.log10_grad_ratio;
    p.worst_verdict = run.verdict;
    s.points.push_back(p);
  }
  EXPECT_EQ(write_document(Format::kText, s), sweep_to_text(s));
  EXPECT_EQ(write_document(Format::kJson, s), sweep_to_json(s));
  EXPECT_EQ(write_document(Format::kMarkdown, s), sweep_to_markdown(s));
  EXPECT_EQ(write_document(Format::kHtml, s), sweep_to_html(s));
  EXPECT_EQ(write_document(Format::kSvg, s), sweep_gradient_svg(s));
}

TEST(Writer, AComparisonThroughTheRegistryIsTheDirectWritersBytes) {
  const Comparison c = compare_reports(testing::small_report(), testing::diagnosed_report(),
                                       "base.json", "proposed.json");
  EXPECT_EQ(write_document(Format::kText, c), comparison_to_text(c));
  EXPECT_EQ(write_document(Format::kJson, c), comparison_to_json(c));
  EXPECT_EQ(write_document(Format::kMarkdown, c), comparison_to_markdown(c));
  EXPECT_EQ(write_document(Format::kHtml, c), comparison_to_html(c));
}

TEST(Writer, ATheoryThroughTheRegistryIsTheDirectWritersBytes) {
  TheoryQuery q;
  q.activation = default_spec(Activation::kTanh);
  q.sw2 = 1.5;
  q.sb2 = 0.05;  // no --grid: a grid of sb2 costs seconds, and the writers are what is checked
  const TheoryReport t = compute_theory(q);
  EXPECT_EQ(write_document(Format::kText, t), theory_to_text(t));
  EXPECT_EQ(write_document(Format::kJson, t), theory_to_json(t));
  EXPECT_EQ(write_document(Format::kSvg, t), phase_diagram_svg(t));
}

TEST(Writer, AFormatADocumentDoesNotComeInIsABugNotAnEmptyFile) {
  // The cells left empty in the registry, each refused the same way.
  EXPECT_FALSE(writes_report(Format::kSvg));
  EXPECT_FALSE(writes_comparison(Format::kSvg));
  EXPECT_FALSE(writes_theory(Format::kMarkdown));
  EXPECT_FALSE(writes_theory(Format::kHtml));
  const Report r = testing::small_report();
  EXPECT_THROW(write_document(Format::kSvg, r), gradscope::Error);
  TheoryQuery q;
  q.activation = default_spec(Activation::kRelu);
  EXPECT_THROW(write_document(Format::kHtml, compute_theory(q)), gradscope::Error);
  int written = 0;
  for (const FormatInfo& info : format_table()) {
    written += writes_report(info.format) + writes_sweep(info.format) +
               writes_comparison(info.format) + writes_theory(info.format);
  }
  EXPECT_EQ(written, 4 + 5 + 4 + 3);  // the cells filled in src/report/writer.cpp
}

}  // namespace
}  // namespace gradscope
