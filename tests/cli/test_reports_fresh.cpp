// reports/ holds the reports of every config in configs/; this fails when one is stale. Values are
// compared with a tolerance that survives another CPU (whose BLAS kernels round differently);
// byte-identity is promised only for the same build on the same machine.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "gradscope/engine/engine.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/io/report_json.hpp"
#include "json_schema.hpp"
#include "support/paths.hpp"

namespace gradscope {
namespace {

namespace fs = std::filesystem;
const fs::path kRoot = GRADSCOPE_SOURCE_DIR;

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Differences are collected with their JSON path. Numbers: relative 1e-3 plus absolute 1e-9, and
// 1e-3 absolute on log10 values; counts at a threshold (dead or saturated units) may move by a
// few units when a value sits at the threshold, so they get 2% of the layer's width.
// A sentence with every number replaced by "#": what stays when the last digits move.
std::string words_of(const std::string& sentence) {
  static const std::regex number(R"([-+]?[0-9][0-9.,]*(e[-+]?[0-9]+)?)");
  return std::regex_replace(sentence, number, "#");
}

void compare(const nlohmann::json& want, const nlohmann::json& got, const std::string& path,
             std::vector<std::string>& diffs) {
  if (want.type() != got.type() && !(want.is_number() && got.is_number())) {
    diffs.push_back(path + ": type differs");
    return;
  }
  if (want.is_object()) {
    for (auto it = want.begin(); it != want.end(); ++it) {
      if (!got.contains(it.key())) {
        diffs.push_back(path + "." + it.key() + ": missing in a fresh run");
        continue;
      }
      compare(it.value(), got[it.key()], path + "." + it.key(), diffs);
    }
    for (auto it = got.begin(); it != got.end(); ++it) {
      if (!want.contains(it.key())) diffs.push_back(path + "." + it.key() + ": new in a fresh run");
    }
  } else if (want.is_array()) {
    if (want.size() != got.size()) {
      diffs.push_back(path + ": length differs");
      return;
    }
    for (std::size_t i = 0; i < want.size(); ++i) {
      compare(want[i], got[i], path + "[" + std::to_string(i) + "]", diffs);
    }
  } else if (want.is_number()) {
    const double a = want.get<double>();
    const double b = got.get<double>();
    // Counts at a threshold (dead or saturated units) and histogram bins of the Jacobian's
    // singular values move by a few when a value sits on a boundary.
    // A finding's layer moves by one when a measurement sits on its threshold.
    const bool count = path.ends_with("_units") ||
                       path.find("histogram.counts") != std::string::npos ||
                       (path.find("findings") != std::string::npos && path.ends_with("layer"));
    const double tol =
        count ? 2.0 + 0.02 * std::abs(a) : 1e-3 * std::max(std::abs(a), std::abs(b)) + 1e-9;
    const bool log = path.find("log10") != std::string::npos;
    if (std::abs(a - b) > (log ? std::max(tol, 1e-3) : tol)) {
      diffs.push_back(path + ": " + want.dump() + " in reports/, " + got.dump() + " now");
    }
  } else if (want.is_string() && (path.ends_with("explanation") || path.ends_with("text"))) {
    // Sentences quote the numbers of the evidence to 3 digits, which a last-bit difference can
    // flip; the evidence itself is compared numerically. The words must match: a sentence
    // reworded in the code and not in reports/ is stale.
    if (words_of(want.get<std::string>()) != words_of(got.get<std::string>())) {
      diffs.push_back(path + ": " + want.dump() + " in reports/, " + got.dump() + " now");
    }
  } else if (want != got) {
    diffs.push_back(path + ": " + want.dump() + " in reports/, " + got.dump() + " now");
  }
}

// The report names in dir with this extension. reports/default.* is what a plain `gradscope run`
// (the built-in default, `bash scripts/dev.sh run`) writes there: never committed (.gitignore),
// and no config's report.
std::set<std::string> stems(const fs::path& dir, const std::string& ext) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ext && e.path().stem() != "default") {
      out.insert(e.path().stem().string());
    }
  }
  return out;
}

TEST(ReportsFresh, EveryConfigHasAReportAndEveryReportAConfig) {
  const auto configs = stems(kRoot / "configs", ".json");
  EXPECT_GE(configs.size(), 9u);
  EXPECT_EQ(configs, stems(kRoot / "reports", ".json"));
  EXPECT_EQ(configs, stems(kRoot / "reports", ".txt"));
  // Markdown: every config's report, and the lessons scripts/dev.sh writes there.
  std::set<std::string> with_lesson = configs;
  for (const char* lesson : {"why-sigmoid-fails", "why-resnets-need-batch-norm"}) {
    with_lesson.insert(lesson);
    EXPECT_TRUE(fs::exists(kRoot / "reports" / (std::string(lesson) + ".html"))) << lesson;
  }
  EXPECT_EQ(with_lesson, stems(kRoot / "reports", ".md"));
}

TEST(ReportsFresh, EveryCommittedReportMatchesAFreshRun) {
  for (const auto& e : fs::directory_iterator(kRoot / "configs")) {
    if (e.path().extension() != ".json") continue;
    SCOPED_TRACE(e.path().string());
    const RunSpec spec = load_run_spec(e.path().string());
    const auto fresh = nlohmann::json::parse(report_to_json(run_diagnostic(spec)));
    const fs::path report = kRoot / "reports" / (spec.name + ".json");
    ASSERT_TRUE(fs::exists(report)) << "regenerate with: bash scripts/dev.sh reports";
    const auto committed = nlohmann::json::parse(read(report));
    std::vector<std::string> diffs;
    compare(committed, fresh, "", diffs);
    std::string shown;
    for (std::size_t i = 0; i < std::min<std::size_t>(diffs.size(), 10); ++i)
      shown += "  " + diffs[i] + "\n";
    EXPECT_TRUE(diffs.empty()) << report << " is stale (" << diffs.size()
                               << " differences); regenerate with: bash scripts/dev.sh reports\n"
                               << shown;
  }
}

TEST(ReportsFresh, EveryCommittedReportValidatesAgainstTheSchema) {
  const auto schema = nlohmann::json::parse(read(kRoot / "schema" / "report.schema.json"));
  for (const auto& e : fs::directory_iterator(kRoot / "reports")) {
    if (e.path().extension() != ".json") continue;
    std::string errors;
    for (const std::string& s :
         testing::validate_schema(schema, nlohmann::json::parse(read(e.path())))) {
      errors += "  " + s + "\n";
    }
    EXPECT_TRUE(errors.empty()) << e.path() << ":\n" << errors;
  }
}

}  // namespace
}  // namespace gradscope
