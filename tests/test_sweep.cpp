// Sweeps: the grid, the structural rewrites, determinism whatever the number of jobs, a resumed
// sweep equal to an uninterrupted one, and refusing to mix two sweeps' runs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gradscope/engine.hpp"
#include "gradscope/error.hpp"
#include "gradscope/sweep.hpp"
#include "xml_check.hpp"

namespace gradscope {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("gradscope-sweep-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

// A small grid: 2 activations x 2 depths x 2 seeds on a narrow stack, a second or so in all.
SweepRequest small_request(const fs::path& out) {
  SweepRequest r;
  r.overrides = {{"stack.width", "32", "test"}, {"input.batch", "16", "test"}};
  r.axes = {parse_sweep_axis("activation=tanh,relu"), parse_sweep_axis("depth=3,12")};
  r.seeds = 2;
  r.out_dir = out.string();
  r.name = "grid";
  return r;
}

TEST(SweepAxis, AliasesPathsAndJsonValuesWithCommas) {
  const SweepAxis a = parse_sweep_axis("activation=sigmoid,tanh");
  EXPECT_EQ(a.path, "stack.activation");
  EXPECT_EQ(a.values, (std::vector<std::string>{"sigmoid", "tanh"}));
  const SweepAxis init =
      parse_sweep_axis(R"(init=he_normal,{"name": "orthogonal", "gain": 1.5},xavier_normal)");
  ASSERT_EQ(init.values.size(), 3u);
  EXPECT_EQ(init.values[1], R"({"name": "orthogonal", "gain": 1.5})");
  const SweepAxis array = parse_sweep_axis(R"(stack.init.gain=[0.5, 1, 2])");
  EXPECT_EQ(array.path, "stack.init.gain");
  EXPECT_EQ(array.values, (std::vector<std::string>{"0.5", "1", "2"}));
  const SweepAxis strings = parse_sweep_axis(R"(activation=["relu", "gelu"])");
  EXPECT_EQ(strings.values, (std::vector<std::string>{"relu", "gelu"}));
  EXPECT_TRUE(parse_sweep_axis("residual=off,on").path.empty());
}

TEST(SweepAxis, MalformedAxesAreErrorsThatSayWhatToWrite) {
  EXPECT_THROW(parse_sweep_axis("activation"), Error);
  EXPECT_THROW(parse_sweep_axis("depth=10,,20"), Error);
  EXPECT_THROW(parse_sweep_axis("depth=10,10"), Error);
  EXPECT_THROW(parse_sweep_axis("residual=yes"), Error);
  EXPECT_THROW(parse_sweep_axis("norm=group_norm"), Error);
}

TEST(SweepGrid, EveryCombinationTheFirstAxisSlowest) {
  const std::vector<SweepPoint> p =
      sweep_points({parse_sweep_axis("a=1,2"), parse_sweep_axis("b=x,y,z")});
  ASSERT_EQ(p.size(), 6u);
  EXPECT_EQ(p[0].label, "a=1 b=x");
  EXPECT_EQ(p[2].label, "a=1 b=z");
  EXPECT_EQ(p[3].label, "a=2 b=x");
  EXPECT_EQ(p[5].index, 5);
  EXPECT_EQ(sweep_points({}).size(), 1u);
}

TEST(SweepStructure, ResidualAndNormRewriteAStackIntoLayers) {
  RunSpec spec;
  spec.stack.depth = 6;
  spec.stack.layer.width = 16;
  spec.input.width = 16;
  spec.input.batch = 8;
  const RunSpec res = with_structure(spec, Structure{true, std::nullopt});
  const std::vector<OpSpec> ops = expand_ops(res);
  // dense, 5 x (begin, norm, dense, end), final norm.
  ASSERT_EQ(ops.size(), 1u + 5u * 4u + 1u);
  EXPECT_EQ(ops[1].kind, OpKind::kResidualBegin);
  EXPECT_EQ(ops[2].kind, OpKind::kNorm);
  EXPECT_EQ(ops[2].norm.kind, NormKind::kLayerNorm);
  EXPECT_EQ(ops.back().kind, OpKind::kNorm);
  const RunSpec bn = with_structure(spec, Structure{false, NormKind::kBatchNorm});
  const std::vector<OpSpec> bn_ops = expand_ops(bn);
  ASSERT_EQ(bn_ops.size(), 12u);
  EXPECT_EQ(bn_ops[1].norm.kind, NormKind::kBatchNorm);
  EXPECT_NO_THROW(run_diagnostic(res));
  EXPECT_NO_THROW(run_diagnostic(bn));
  // A layers config cannot be rewritten.
  EXPECT_THROW(with_structure(res, Structure{true, std::nullopt}), Error);
}

TEST(Sweep, RunsEveryPointAndSeedAndWritesTheSummaryFiles) {
  TempDir dir;
  int calls = 0;
  const SweepResult r =
      run_sweep(small_request(dir.path()), [&](int, int, const std::string&) { ++calls; });
  ASSERT_EQ(r.points.size(), 4u);
  EXPECT_EQ(calls, 1 + 8);  // once at the start, once per run
  for (const SweepPointSummary& p : r.points) {
    ASSERT_EQ(p.runs.size(), 2u);
    EXPECT_NE(p.runs[0].seed, p.runs[1].seed);
    EXPECT_LE(p.ratio_min, p.ratio_mean);
    EXPECT_GE(p.ratio_max, p.ratio_mean);
  }
  const fs::path d = dir.path() / "grid";
  for (const char* f : {"sweep.json", "sweep.txt", "sweep.md", "sweep.html", "gradients.svg"}) {
    EXPECT_TRUE(fs::exists(d / f)) << f;
  }
  EXPECT_TRUE(testing::xml_errors(read(d / "gradients.svg")).empty());
  std::string html = read(d / "sweep.html");
  html = html.substr(html.find('\n') + 1);  // past <!DOCTYPE html>
  EXPECT_TRUE(testing::xml_errors(html).empty());
  // The plot's points are the per-layer means over the seeds.
  const testing::XmlDocument svg = testing::parse_xml(read(d / "gradients.svg"));
  const auto series = svg.root.find_all("g", "series");
  ASSERT_FALSE(series.empty());
  const auto circles = series.front()->find_all("circle");
  const SweepPointSummary& p0 = r.points.front();
  ASSERT_EQ(circles.size(), p0.runs[0].log10_grad.size());
  for (std::size_t i = 0; i < circles.size(); ++i) {
    const double mean = 0.5 * (p0.runs[0].log10_grad[i] + p0.runs[1].log10_grad[i]);
    EXPECT_DOUBLE_EQ(std::stod(circles[i]->get("data-y")), mean);
  }
}

TEST(Sweep, TheSummaryIsTheSameWhateverTheNumberOfJobs) {
  TempDir a, b;
  SweepRequest one = small_request(a.path());
  one.jobs = 1;
  SweepRequest three = small_request(b.path());
  three.jobs = 3;
  run_sweep(one, nullptr);
  run_sweep(three, nullptr);
  for (const char* f : {"sweep.json", "sweep.txt", "sweep.md", "gradients.svg", "sweep.html"}) {
    EXPECT_EQ(read(a.path() / "grid" / f), read(b.path() / "grid" / f)) << f;
  }
  EXPECT_EQ(read(a.path() / "grid" / "runs" / "p0003-s1.json"),
            read(b.path() / "grid" / "runs" / "p0003-s1.json"));
}

TEST(Sweep, AResumedSweepEqualsAnUninterruptedOne) {
  TempDir whole, broken;
  run_sweep(small_request(whole.path()), nullptr);
  run_sweep(small_request(broken.path()), nullptr);
  // Interrupt it: lose three runs and the summary, and corrupt one run half-written elsewhere.
  const fs::path runs = broken.path() / "grid" / "runs";
  fs::remove(runs / "p0001-s0.json");
  fs::remove(runs / "p0002-s1.json");
  fs::remove(broken.path() / "grid" / "sweep.json");
  std::ofstream(runs / "p0003-s0.json") << "{\"schema_version\": ";
  SweepRequest again = small_request(broken.path());
  EXPECT_THROW(run_sweep(again, nullptr), Error);  // runs on disk, no --resume
  again.resume = true;
  int reran = -1;
  run_sweep(again, [&](int done, int total, const std::string&) {
    if (reran < 0) reran = total - done;  // the first call: what is left to run
  });
  EXPECT_EQ(reran, 3);
  for (const char* f : {"sweep.json", "sweep.txt", "sweep.md", "gradients.svg", "sweep.html"}) {
    EXPECT_EQ(read(whole.path() / "grid" / f), read(broken.path() / "grid" / f)) << f;
  }
}

TEST(Sweep, ResumeRerunsARunWhoseConfigChanged) {
  TempDir dir;
  run_sweep(small_request(dir.path()), nullptr);
  SweepRequest changed = small_request(dir.path());
  changed.overrides.push_back({"stack.init", "xavier_normal", "test"});
  changed.resume = true;
  int left = -1;
  run_sweep(changed, [&](int done, int total, const std::string&) {
    if (left < 0) left = total - done;
  });
  EXPECT_EQ(left, 8);  // nothing on disk matches the new config
}

TEST(Sweep, AnInvalidPointFailsBeforeAnythingRuns) {
  TempDir dir;
  SweepRequest r = small_request(dir.path());
  r.axes.push_back(parse_sweep_axis("activation=relu,sigmod"));
  try {
    run_sweep(r, nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--vary activation=sigmod"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() / "grid"));
}

}  // namespace
}  // namespace gradscope
