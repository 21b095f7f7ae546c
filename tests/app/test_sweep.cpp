// Sweeps: the grid, the structural rewrites, every --vary value changing the run it labels,
// determinism whatever the number of jobs, a resumed sweep equal to an uninterrupted one, refusing
// to mix two sweeps' runs, shards whose merge is the unsharded sweep byte for byte, one writer per
// sweep directory (shards each their own), and the grid's cap.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "gradscope/app/output.hpp"
#include "gradscope/app/sweep.hpp"
#include "gradscope/cli/cli.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/io/sweep_json.hpp"
#include "gradscope/report/sweep_text.hpp"
#include "support/paths.hpp"
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

// What the summary keeps of a run comes from the Report as its JSON states it: the verdict and
// severities by name, NaN kept, and predictions relative to the last layer anchored on its
// measured gradient.
TEST(SweepRunFromReport, KeepsTheSummarysValuesAndAnchorsPredictionsOnTheLastLayer) {
  Report r;
  r.spec.seed = 11;
  r.verdict = Verdict::kWarning;
  r.summary.log10_grad_ratio_first_to_last = -2.5;
  r.summary.mean_log10_gain = -1.25;
  r.summary.dead_units = 4;
  r.summary.saturated_fraction = std::nan("");
  r.summary.nonfinite_layers = {2, 3};
  Finding dead;
  dead.code = "dead_units";
  dead.severity = Severity::kWarning;
  dead.layer = 2;
  r.findings = {dead};
  const std::vector<double> grads = {-3.0, -2.0, -0.5};
  r.layers.resize(grads.size());
  for (std::size_t i = 0; i < grads.size(); ++i) {
    r.layers[i].backward.grad_preact_rms = magnitude_from_log10(grads[i]);
    r.layers[i].forward.dead_fraction = 0.125 * static_cast<double>(i);
    r.layers[i].forward.saturated_fraction = 0.25 * static_cast<double>(i);
  }
  r.layers[0].theory.backward = true;
  r.layers[0].theory.log10_grad_rel_last = -2.0;
  r.layers[2].theory.backward = true;
  r.layers[2].theory.log10_grad_rel_last = 0.0;

  const SweepRun run = sweep_run_from_report(r);
  EXPECT_EQ(run.verdict, "warning");
  EXPECT_EQ(run.seed, 11u);
  EXPECT_EQ(run.log10_grad_ratio, -2.5);
  EXPECT_EQ(run.mean_log10_gain, -1.25);
  EXPECT_EQ(run.dead_units, 4);
  EXPECT_TRUE(std::isnan(run.saturated_fraction));
  EXPECT_EQ(run.nonfinite_layers, 2);
  ASSERT_EQ(run.findings.size(), 1u);
  EXPECT_EQ(run.findings[0].code, "dead_units");
  EXPECT_EQ(run.findings[0].severity, "warning");
  EXPECT_EQ(run.findings[0].layer, 2);
  EXPECT_EQ(run.log10_grad, grads);
  ASSERT_EQ(run.predicted_log10_grad.size(), 3u);
  EXPECT_EQ(run.predicted_log10_grad[0], -2.5);  // -2 relative to the last layer's -0.5
  EXPECT_TRUE(std::isnan(run.predicted_log10_grad[1]));
  EXPECT_EQ(run.predicted_log10_grad[2], -0.5);
  EXPECT_EQ(run.dead_fraction, (std::vector<double>{0.0, 0.125, 0.25}));
  EXPECT_EQ(run.saturated_fraction_per_layer, (std::vector<double>{0.0, 0.25, 0.5}));
}

TEST(SweepStructure, ResidualAndNormRewriteAStackIntoLayers) {
  RunSpec spec;
  spec.stack.depth = 6;
  spec.stack.layer.width = 16;
  spec.input.width = 16;
  spec.input.batch = 8;
  // Structure{residual, norm given, norm}.
  const RunSpec res = with_structure(spec, Structure{true, true, NormKind::kLayerNorm});
  const std::vector<OpSpec> ops = expand_ops(res);
  // dense, 5 x (begin, norm, dense, end), final norm.
  ASSERT_EQ(ops.size(), 1u + 5u * 4u + 1u);
  EXPECT_EQ(ops[1].kind, OpKind::kResidualBegin);
  EXPECT_EQ(ops[2].kind, OpKind::kNorm);
  EXPECT_EQ(ops[2].norm.kind, NormKind::kLayerNorm);
  EXPECT_EQ(ops.back().kind, OpKind::kNorm);
  // residual=on alone adds no norm: dense, 5 x (begin, dense, end).
  const std::vector<OpSpec> plain =
      expand_ops(with_structure(spec, Structure{true, false, std::nullopt}));
  ASSERT_EQ(plain.size(), 1u + 5u * 3u);
  for (const OpSpec& op : plain) EXPECT_NE(op.kind, OpKind::kNorm);
  const RunSpec bn = with_structure(spec, Structure{std::nullopt, true, NormKind::kBatchNorm});
  const std::vector<OpSpec> bn_ops = expand_ops(bn);
  ASSERT_EQ(bn_ops.size(), 12u);
  EXPECT_EQ(bn_ops[1].norm.kind, NormKind::kBatchNorm);
  EXPECT_NO_THROW(run_diagnostic(res));
  EXPECT_NO_THROW(run_diagnostic(bn));
  // Nothing to change: the stack as it is.
  EXPECT_TRUE(with_structure(spec, Structure{false, true, std::nullopt}).layers.empty());
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

// ---- Shards and merge

// 2 activations x 2 depths x 2 seeds = 8 runs on a tiny stack: a few milliseconds each.
SweepRequest tiny_request(const fs::path& out) {
  SweepRequest r;
  r.overrides = {{"stack.width", "16", "test"}, {"input.batch", "8", "test"}};
  r.axes = {parse_sweep_axis("activation=tanh,relu"), parse_sweep_axis("depth=2,5")};
  r.seeds = 2;
  r.out_dir = out.string();
  r.name = "grid";
  return r;
}

// Every file under `dir` (relative path -> content), leaving out the shards.
std::map<std::string, std::string> tree(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).generic_string();
    if (rel.rfind("shards", 0) == 0 || !e.is_regular_file()) continue;
    files[rel] = read(e.path());
  }
  return files;
}

// Runs shards 0..count-1 of `request`, each with its own number of jobs.
void run_shards(const SweepRequest& request, int count) {
  for (int i = 0; i < count; ++i) {
    SweepRequest r = request;
    r.jobs = 1 + i % 3;
    run_sweep_shard(r, SweepShard{i, count}, nullptr);
  }
}

std::string merge_error(const SweepMergeRequest& request) {
  try {
    merge_sweep_shards(request);
  } catch (const Error& e) {
    return std::string(e.what()) + "\nhint: " + e.hint();
  }
  return "no error";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(SweepShard, ParsesIOverNAndRejectsEverythingElse) {
  const SweepShard s = parse_sweep_shard("3/8");
  EXPECT_EQ(s.index, 3);
  EXPECT_EQ(s.count, 8);
  EXPECT_EQ(parse_sweep_shard("0/1").count, 1);
  for (const char* bad : {"3/3", "4/3", "x/2", "0/0", "-1/2", "+1/2", "1/", "/2", "1 /2", " 1/2",
                          "1/2/3", "1", "", "0x1/2", "0/100001", "99999999999/2"}) {
    EXPECT_THROW(parse_sweep_shard(bad), Error) << bad;
  }
  try {
    parse_sweep_shard("3/3");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_TRUE(contains(e.what(), "0 to 2")) << e.what();
    EXPECT_TRUE(contains(e.hint(), "$SLURM_ARRAY_TASK_ID")) << e.hint();
  }
}

TEST(SweepShard, RunKGoesToShardKModNAndEveryRunToExactlyOneShard) {
  TempDir dir;
  const SweepPlan plan = plan_sweep(tiny_request(dir.path()));
  ASSERT_EQ(plan.jobs.size(), 8u);
  for (std::size_t k = 0; k < plan.jobs.size(); ++k) {
    EXPECT_EQ(plan.jobs[k].run, static_cast<int>(k));
    // Point-major, then seed: the unsharded sweep's order.
    EXPECT_EQ(plan.jobs[k].point, static_cast<int>(k / 2));
    EXPECT_EQ(plan.jobs[k].seed_index, static_cast<int>(k % 2));
  }
  for (int count : {1, 3, 8, 11}) {
    std::vector<int> owners(plan.jobs.size(), 0);
    for (int i = 0; i < count; ++i) {
      for (const SweepJob& job : plan.jobs) {
        if (sweep_run_in_shard(job.run, SweepShard{i, count})) {
          ++owners[static_cast<std::size_t>(job.run)];
          EXPECT_EQ(job.run % count, i);
        }
      }
    }
    EXPECT_EQ(owners, std::vector<int>(plan.jobs.size(), 1)) << count;
  }
  EXPECT_EQ(sweep_shard_dir(SweepShard{2, 8}), "shards/2-of-8");
}

TEST(SweepShard, MergedShardsAreTheUnshardedSweepByteForByte) {
  TempDir whole;
  SweepRequest unsharded = tiny_request(whole.path());
  unsharded.jobs = 2;
  run_sweep(unsharded, nullptr);
  const std::map<std::string, std::string> expected = tree(whole.path() / "grid");
  ASSERT_EQ(expected.size(), 5u + 8u);  // the summary files and every run
  // N = 1, N below the run count, N dividing it, N above it (shards 8, 9 and 10 run nothing).
  for (int count : {1, 3, 4, 11}) {
    TempDir sharded;
    run_shards(tiny_request(sharded.path()), count);
    EXPECT_FALSE(fs::exists(sharded.path() / "grid" / "sweep.json")) << "a shard wrote a summary";
    SweepMergeRequest merge;
    merge.dirs = {(sharded.path() / "grid").string()};
    merge.out_dir = sharded.path().string();
    const SweepResult r = merge_sweep_shards(merge);
    EXPECT_EQ(r.points.size(), 4u);
    EXPECT_EQ(tree(sharded.path() / "grid"), expected) << count << " shards";
  }
}

TEST(SweepShard, AShardWithNoRunsSucceedsAndListsNone) {
  TempDir dir;
  const SweepShardResult r = run_sweep_shard(tiny_request(dir.path()), SweepShard{9, 11}, nullptr);
  EXPECT_EQ(r.runs, 0);
  EXPECT_EQ(r.runs_total, 8);
  const fs::path shard = dir.path() / "grid" / "shards" / "9-of-11";
  const SweepManifest m = sweep_manifest_from_json(read(shard / "manifest.json"), "manifest");
  EXPECT_TRUE(m.runs.empty());
  EXPECT_EQ(m.shard.index, 9);
  EXPECT_EQ(m.shard.count, 11);
  EXPECT_EQ(m.runs_total, 8);
  EXPECT_FALSE(fs::exists(shard / "runs"));
}

TEST(SweepShard, ManifestRoundTripsAndListsTheShardsRuns) {
  TempDir dir;
  const SweepShardResult r = run_sweep_shard(tiny_request(dir.path()), SweepShard{1, 3}, nullptr);
  EXPECT_EQ(r.runs, 3);  // runs 1, 4 and 7
  const SweepManifest m = sweep_manifest_from_json(r.manifest_json, "manifest");
  EXPECT_EQ(sweep_manifest_to_json(m), r.manifest_json);
  ASSERT_EQ(m.runs.size(), 3u);
  EXPECT_EQ(m.runs[1].run, 4);
  EXPECT_EQ(m.runs[1].file, "runs/p0002-s0.json");
  EXPECT_EQ(m.name, "grid");
  EXPECT_FALSE(m.config.has_value());
  EXPECT_EQ(m.axes.size(), 2u);
  EXPECT_EQ(m.overrides.size(), 2u);
  EXPECT_EQ(m.seeds, 2);
  EXPECT_EQ(read(fs::path(r.dir) / "manifest.json"), r.manifest_json);
  for (const SweepManifestRun& run : m.runs) EXPECT_TRUE(fs::exists(fs::path(r.dir) / run.file));
  // A damaged manifest is an error naming the file and the JSON path.
  std::string edited = r.manifest_json;
  edited.replace(edited.find("\"seeds\""), 7, "\"seedz\"");
  try {
    sweep_manifest_from_json(edited, "m.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "m.json: sweep.seeds: missing")) << e.what();
  }
  EXPECT_THROW(sweep_manifest_from_json("{\"kind\": ", "m.json"), Error);
  EXPECT_THROW(sweep_manifest_from_json(R"({"kind": "gradscope_report"})", "m.json"), Error);
}

TEST(SweepShard, EveryShardValidatesEveryPointBeforeRunning) {
  TempDir dir;
  SweepRequest r = tiny_request(dir.path());
  // The bad value is in the last point: runs 14 and 15, which shard 0 of 2 does not own.
  r.axes.push_back(parse_sweep_axis("stack.init=he_normal,no_such_init"));
  for (int i = 0; i < 2; ++i) {
    try {
      run_sweep_shard(r, SweepShard{i, 2}, nullptr);
      FAIL() << "shard " << i << ": no error";
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), "no_such_init")) << e.what();
    }
  }
  EXPECT_FALSE(fs::exists(dir.path() / "grid"));
}

TEST(SweepShard, OneShardResumesAndTheMergeIsStillTheUnshardedSweep) {
  TempDir whole, sharded;
  run_sweep(tiny_request(whole.path()), nullptr);
  run_shards(tiny_request(sharded.path()), 3);
  // Interrupt shard 1: lose a run and its manifest, leave another half-written.
  const fs::path shard = sharded.path() / "grid" / "shards" / "1-of-3";
  fs::remove(shard / "runs" / "p0002-s0.json");
  fs::remove(shard / "manifest.json");
  std::ofstream(shard / "runs" / "p0003-s1.json") << "{\"schema_version\": ";
  SweepMergeRequest merge;
  merge.dirs = {(sharded.path() / "grid").string()};
  merge.out_dir = sharded.path().string();
  const std::string unfinished = merge_error(merge);
  EXPECT_TRUE(contains(unfinished, "shard 1 of 3 missing")) << unfinished;
  EXPECT_TRUE(contains(unfinished, "1-of-3 has no manifest.json")) << unfinished;
  EXPECT_TRUE(contains(unfinished, "--shard 1/3 --resume")) << unfinished;

  SweepRequest again = tiny_request(sharded.path());
  EXPECT_THROW(run_sweep_shard(again, SweepShard{1, 3}, nullptr), Error);  // no --resume
  again.resume = true;
  int left = -1;
  const SweepShardResult r =
      run_sweep_shard(again, SweepShard{1, 3}, [&](int done, int total, const std::string&) {
        if (left < 0) left = total - done;  // the first call: what is left to run
      });
  EXPECT_EQ(left, 2);
  EXPECT_EQ(r.reused, 1);
  merge_sweep_shards(merge);
  EXPECT_EQ(tree(sharded.path() / "grid"), tree(whole.path() / "grid"));
}

TEST(SweepShard, MergeNeedsNoConfigFileAndRefusesAnEditedOne) {
  TempDir dir;
  const fs::path config = dir.path() / "tiny.json";
  std::ofstream(config)
      << R"({"seed": 7, "stack": {"depth": 3, "width": 8}, "input": {"batch": 4}})";
  SweepRequest r = tiny_request(dir.path() / "whole");
  r.config = config.string();
  r.overrides.clear();
  run_sweep(r, nullptr);
  SweepRequest s = r;
  s.out_dir = (dir.path() / "sharded").string();
  run_sweep_shard(s, SweepShard{0, 2}, nullptr);
  // The config changes between the shards: the merge must notice.
  std::ofstream(config)
      << R"({"seed": 8, "stack": {"depth": 3, "width": 8}, "input": {"batch": 4}})";
  run_sweep_shard(s, SweepShard{1, 2}, nullptr);
  SweepMergeRequest merge;
  merge.dirs = {(dir.path() / "sharded" / "grid").string()};
  merge.out_dir = s.out_dir;
  const std::string edited = merge_error(merge);
  EXPECT_TRUE(contains(edited, "different sweeps")) << edited;
  EXPECT_TRUE(contains(edited, "config files' contents differ")) << edited;
  // Shard 1 again from the original text, then the config file goes away before the merge.
  std::ofstream(config)
      << R"({"seed": 7, "stack": {"depth": 3, "width": 8}, "input": {"batch": 4}})";
  fs::remove_all(dir.path() / "sharded" / "grid" / "shards" / "1-of-2");
  run_sweep_shard(s, SweepShard{1, 2}, nullptr);
  fs::remove(config);
  merge_sweep_shards(merge);
  EXPECT_EQ(tree(dir.path() / "sharded" / "grid"), tree(dir.path() / "whole" / "grid"));
}

class SweepMerge : public ::testing::Test {
 protected:
  void SetUp() override { run_shards(tiny_request(dir_.path()), 3); }
  fs::path shard(int i) const {
    return dir_.path() / "grid" / "shards" / (std::to_string(i) + "-of-3");
  }
  SweepMergeRequest all() const {
    SweepMergeRequest m;
    m.dirs = {(dir_.path() / "grid").string()};
    m.out_dir = (dir_.path() / "merged").string();
    return m;
  }
  TempDir dir_;
};

TEST_F(SweepMerge, AMissingShardIsNamedWithTheCommandThatRunsIt) {
  fs::remove_all(shard(2));
  const std::string e = merge_error(all());
  EXPECT_TRUE(contains(e, "shard 2 of 3 missing")) << e;
  EXPECT_TRUE(contains(e,
                       "gradscope sweep --vary activation=tanh,relu --vary depth=2,5 --set "
                       "stack.width=16 --set input.batch=8 --seeds 2 --name grid"))
      << e;
  EXPECT_TRUE(contains(e, "--shard 2/3 --resume")) << e;
  EXPECT_FALSE(fs::exists(dir_.path() / "merged"));
}

TEST_F(SweepMerge, AShardGivenTwiceIsAnError) {
  fs::copy(shard(1), dir_.path() / "copy", fs::copy_options::recursive);
  SweepMergeRequest m = all();
  m.dirs.push_back((dir_.path() / "copy").string());
  const std::string e = merge_error(m);
  EXPECT_TRUE(contains(e, "shard 1/3 is given twice")) << e;
  EXPECT_TRUE(contains(e, "copy")) << e;
  // The same directory named twice is the same shard, not a duplicate.
  m = all();
  m.dirs.push_back(shard(1).string());
  EXPECT_NO_THROW(merge_sweep_shards(m));
}

TEST_F(SweepMerge, ShardsOfAnotherSweepOrAnotherSplitAreRefused) {
  TempDir other;
  SweepRequest three_seeds = tiny_request(other.path());
  three_seeds.seeds = 3;
  run_sweep_shard(three_seeds, SweepShard{1, 3}, nullptr);
  SweepMergeRequest m;
  m.dirs = {shard(0).string(), (other.path() / "grid" / "shards" / "1-of-3").string(),
            shard(2).string()};
  m.out_dir = (dir_.path() / "merged").string();
  std::string e = merge_error(m);
  EXPECT_TRUE(contains(e, "different sweeps: their --seeds differ (2 vs 3)")) << e;

  TempDir axes;
  SweepRequest other_axis = tiny_request(axes.path());
  other_axis.axes[1] = parse_sweep_axis("depth=2,6");
  run_sweep_shard(other_axis, SweepShard{1, 3}, nullptr);
  m.dirs[1] = (axes.path() / "grid" / "shards" / "1-of-3").string();
  e = merge_error(m);
  EXPECT_TRUE(contains(e, "their --vary axes differ")) << e;

  // A second split of the same sweep in the same directory.
  run_sweep_shard(tiny_request(dir_.path()), SweepShard{0, 2}, nullptr);
  e = merge_error(all());
  EXPECT_TRUE(contains(e, "is shard 0 of 2")) << e;
  EXPECT_TRUE(contains(e, "is shard 0 of 3")) << e;
  EXPECT_TRUE(contains(e, "*-of-N")) << e;
  fs::remove_all(dir_.path() / "grid" / "shards" / "0-of-2");
  EXPECT_NO_THROW(merge_sweep_shards(all()));
}

TEST_F(SweepMerge, AMissingCorruptOrForeignRunIsNamed) {
  const fs::path run = shard(1) / "runs" / "p0002-s0.json";
  const std::string good = read(run);
  fs::remove(run);
  std::string e = merge_error(all());
  EXPECT_TRUE(contains(e, run.string() + ": missing (run 4 of the sweep, in shard 1/3)")) << e;
  EXPECT_TRUE(contains(e, "--shard 1/3 --resume")) << e;

  std::ofstream(run) << good.substr(0, good.size() / 2);
  e = merge_error(all());
  EXPECT_TRUE(contains(e, run.string() + ":")) << e;
  EXPECT_TRUE(contains(e, ": not JSON")) << e;

  // Another run's report in its place parses but is not this run.
  fs::copy_file(shard(1) / "runs" / "p0000-s1.json", run, fs::copy_options::overwrite_existing);
  e = merge_error(all());
  EXPECT_TRUE(contains(e, "not the run of point 2 seed 0")) << e;

  std::ofstream(run, std::ios::binary) << good;
  EXPECT_NO_THROW(merge_sweep_shards(all()));
}

TEST_F(SweepMerge, AnEditedManifestIsRefused) {
  const fs::path file = shard(0) / "manifest.json";
  SweepManifest m = sweep_manifest_from_json(read(file), file.string());
  m.runs.pop_back();
  std::ofstream(file, std::ios::binary) << sweep_manifest_to_json(m);
  const std::string e = merge_error(all());
  EXPECT_TRUE(contains(e, "its runs are not those of shard 0/3")) << e;
  std::ofstream(file) << "{";
  EXPECT_TRUE(contains(merge_error(all()), "manifest.json:1:2: not JSON")) << merge_error(all());
}

TEST_F(SweepMerge, MergingTwiceIsFineButNotIntoAnotherSweepsDirectory) {
  SweepMergeRequest m = all();
  merge_sweep_shards(m);
  const std::string json = read(dir_.path() / "merged" / "grid" / "sweep.json");
  EXPECT_NO_THROW(merge_sweep_shards(m));
  EXPECT_EQ(read(dir_.path() / "merged" / "grid" / "sweep.json"), json);
  std::ofstream(dir_.path() / "merged" / "grid" / "runs" / "p0009-s0.json") << "{}";
  const std::string e = merge_error(m);
  EXPECT_TRUE(contains(e, "a run that is not this sweep's: p0009-s0.json")) << e;
}

TEST_F(SweepMerge, UnknownDirectoriesSayWhatToGive) {
  SweepMergeRequest m = all();
  m.dirs = {(dir_.path() / "nowhere").string()};
  EXPECT_TRUE(contains(merge_error(m), "no such directory"));
  fs::create_directories(dir_.path() / "empty");
  m.dirs = {(dir_.path() / "empty").string()};
  EXPECT_TRUE(contains(merge_error(m), "neither a shard directory"));
  fs::remove(shard(0) / "manifest.json");
  m.dirs = {shard(0).string()};
  EXPECT_TRUE(contains(merge_error(m), "this shard has not finished"));
}

TEST_F(SweepMerge, TheOutDirectoryTheShardsRanWithIsAcceptedWhenItHoldsOneSweep) {
  SweepMergeRequest by_sweep = all();
  const SweepResult expected = merge_sweep_shards(by_sweep);
  const std::map<std::string, std::string> files = tree(dir_.path() / "merged" / "grid");
  fs::remove_all(dir_.path() / "merged");
  // OUT itself, as given to `sweep --out` (OUT/grid/shards/ holds the shards).
  SweepMergeRequest by_out = all();
  by_out.dirs = {dir_.path().string()};
  EXPECT_EQ(sweep_to_json(merge_sweep_shards(by_out)), sweep_to_json(expected));
  EXPECT_EQ(tree(dir_.path() / "merged" / "grid"), files);
  // With a second sweep's shards beside it, OUT is ambiguous: both are named.
  SweepRequest other = tiny_request(dir_.path());
  other.name = "other";
  run_sweep_shard(other, SweepShard{0, 1}, nullptr);
  const std::string e = merge_error(by_out);
  EXPECT_TRUE(contains(e, "holds the shards of 2 sweeps")) << e;
  EXPECT_TRUE(contains(e, (dir_.path() / "grid").string())) << e;
  EXPECT_TRUE(contains(e, (dir_.path() / "other").string())) << e;
}

TEST(SweepMergeCli, MergeWithOnlyOutLooksForTheShardsThere) {
  TempDir dir;
  run_shards(tiny_request(dir.path()), 2);
  std::ostringstream out, err;
  const int code =
      run_cli({"merge", "--out", dir.path().string(), "-q"}, out, err, CliEnvironment{});
  ASSERT_EQ(code, 0) << err.str();
  EXPECT_TRUE(fs::exists(dir.path() / "grid" / "sweep.json"));
}

TEST(SweepRun, AnUnwritableOutIsFoundBeforeTheFirstRun) {
  TempDir dir;
  std::ofstream(dir.path() / "plain-file") << "x";
  SweepRequest r = tiny_request(dir.path() / "plain-file" / "out");
  int calls = 0;
  EXPECT_THROW(run_sweep(r, [&](int, int, const std::string&) { ++calls; }), Error);
  EXPECT_EQ(calls, 0);
  EXPECT_THROW(run_sweep_shard(r, SweepShard{0, 2}, [&](int, int, const std::string&) { ++calls; }),
               Error);
  EXPECT_EQ(calls, 0);
}

// ---- Every --vary value changes the run, as its label says

struct CliResult {
  int code = 0;
  std::string out, err;
};

// `gradscope sweep ARGS...`, in-process.
CliResult sweep_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "sweep");
  std::ostringstream out, err;
  const int code = run_cli(args, out, err, CliEnvironment{});
  return {code, out.str(), err.str()};
}

std::string config_file(const std::string& name) {
  return std::string(GRADSCOPE_SOURCE_DIR) + "/configs/" + name;
}

// Small enough that a grid of eight points runs in a second or so.
std::vector<std::string> small_sets(const std::string& config) {
  if (config == "relu-he.json") {
    return {"--set", "stack.depth=4", "--set", "stack.width=8",
            "--set", "input.width=8", "--set", "input.batch=4"};
  }
  return {"--set", "layers[1].repeat=2", "--set", "input.batch=4"};
}

// The "config" object of a report: the resolved config its run used.
std::string config_section(const std::string& report) {
  const std::string key = "\n  \"config\": ";
  const std::size_t start = report.find(key);
  if (start == std::string::npos) return {};
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = start + key.size(); i < report.size(); ++i) {
    const char c = report[i];
    if (quoted) {
      if (c == '\\') ++i;
      if (c == '"') quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}' && --depth == 0) {
      return report.substr(start + key.size(), i + 1 - start - key.size());
    }
  }
  return {};
}

// What a run's report says it ran, read with the config reader and flattened into ops.
struct Recorded {
  bool residual = false;
  std::set<std::string> norms;
  int activation_ops = 0;  // activations that are ops of their own, not a dense layer's
  std::string config;      // the resolved config, its name left out
};
Recorded recorded(const fs::path& report) {
  RunSpec spec = parse_run_spec(config_section(read(report)), report.string(), "run");
  Recorded r;
  for (const OpSpec& op : expand_ops(spec)) {
    if (op.kind == OpKind::kResidualBegin) r.residual = true;
    if (op.kind == OpKind::kNorm) r.norms.insert(std::string(norm_name(op.norm.kind)));
    if (op.kind == OpKind::kActivation) ++r.activation_ops;
  }
  spec.name.clear();
  r.config = run_spec_to_json(spec);
  return r;
}

std::string run_file(int point) {
  const std::string p = std::to_string(point);
  std::string name = "p";  // appended: GCC 12 warns falsely (-Wrestrict) on a chain of additions
  name.append(4 - p.size(), '0');
  name += p;
  name += "-s0.json";
  return name;
}

const std::vector<std::string> kStructureAxes = {"residual=off,on",
                                                 "norm=none,batch_norm,layer_norm,rms_norm"};

TEST(SweepLabels, EveryResidualAndNormPointHasExactlyItsLabelsStructure) {
  // A stack (no blocks, no norms), a pre-norm and a post-norm residual "layers" config.
  for (const std::string config :
       {"relu-he.json", "gelu-prenorm-residual.json", "gelu-postnorm-residual.json"}) {
    TempDir dir;
    std::vector<std::string> args = {config_file(config), "-q",     "--jobs", "1", "--out",
                                     dir.path().string(), "--name", "g"};
    for (const std::string& axis : kStructureAxes) args.insert(args.end(), {"--vary", axis});
    for (const std::string& set : small_sets(config)) args.push_back(set);
    const CliResult r = sweep_cli(args);
    ASSERT_EQ(r.code, 0) << config << ": " << r.err;
    const std::vector<SweepPoint> points =
        sweep_points({parse_sweep_axis(kStructureAxes[0]), parse_sweep_axis(kStructureAxes[1])});
    ASSERT_EQ(points.size(), 8u);
    for (const SweepPoint& point : points) {
      const Recorded run = recorded(dir.path() / "g" / "runs" / run_file(point.index));
      const std::string& residual = point.settings[0].second;
      const std::string& norm = point.settings[1].second;
      EXPECT_EQ(run.residual, residual == "on") << config << ": " << point.label;
      if (norm == "none") {
        EXPECT_TRUE(run.norms.empty()) << config << ": " << point.label << " has a norm";
      } else {
        EXPECT_EQ(run.norms, std::set<std::string>{norm}) << config << ": " << point.label;
      }
    }
  }
}

TEST(SweepLabels, NoTwoPointsOfAGridAreTheSameRunApartFromTheName) {
  // Every pair of axes, two values each, on a stack config and on a "layers" config (which
  // refuses the stack's short names: an error, never a silent copy).
  const std::vector<std::string> axes = {"activation=tanh,relu",
                                         "depth=3,4",
                                         "width=8,12",
                                         "init=he_normal,xavier_normal",
                                         R"(bias_init=zeros,{"name": "constant", "value": 0.1})",
                                         "gain=1,2",
                                         "batch=4,6",
                                         "seed=7,8",
                                         "precision=float32,float64",
                                         "loss=probe,mse",
                                         "optimizer=sgd,adam",
                                         "learning_rate=0.001,0.01",
                                         "residual=off,on",
                                         "norm=none,layer_norm"};
  const std::set<std::string> stack_only = {"activation", "depth",     "width",
                                            "init",       "bias_init", "gain"};
  for (const std::string config : {"relu-he.json", "gelu-prenorm-residual.json"}) {
    for (std::size_t i = 0; i < axes.size(); ++i) {
      for (std::size_t j = i + 1; j < axes.size(); ++j) {
        SweepRequest request;
        request.config = config_file(config);
        request.overrides = {{"optimizer", "sgd", "test"}};
        request.axes = {parse_sweep_axis(axes[i]), parse_sweep_axis(axes[j])};
        const std::string grid = config + ": --vary " + axes[i] + " --vary " + axes[j];
        if (config != "relu-he.json" &&
            (stack_only.count(request.axes[0].key) + stack_only.count(request.axes[1].key)) > 0) {
          try {
            plan_sweep(request);
            ADD_FAILURE() << grid << ": no error";
          } catch (const Error& e) {
            EXPECT_EQ(e.code(), ExitCode::kUsage) << grid;
          }
          continue;
        }
        const SweepPlan plan = plan_sweep(request);
        std::set<std::string> configs;
        for (const SweepJob& job : plan.jobs) {
          RunSpec spec = job.spec;
          spec.name.clear();
          configs.insert(run_spec_to_json(spec));
        }
        EXPECT_EQ(configs.size(), 4u) << grid;
      }
    }
  }
}

TEST(SweepLabels, AValueThatChangesNothingIsRefusedNamingTheAxisAndTheValue) {
  struct Case {
    std::string config;
    std::vector<std::string> vary;
    std::string message;
  };
  const std::vector<Case> cases = {
      // An axis of one value that is the config's own: the run is the config, relabelled.
      {"relu-he.json", {"residual=off"}, "--vary residual=off changes nothing"},
      {"relu-he.json", {"norm=none"}, "--vary norm=none changes nothing"},
      {"relu-he.json", {"seed=7"}, "--vary seed=7 changes nothing"},
      {"gelu-prenorm-residual.json", {"norm=layer_norm"}, "--vary norm=layer_norm changes nothing"},
      {"gelu-prenorm-residual.json", {"residual=on"}, "--vary residual=on changes nothing"},
      // Two values that the config reads as one.
      {"relu-he.json", {"depth=3,3.0"}, "--vary depth=3.0 changes nothing"},
      {"relu-he.json",
       {R"(init=he_normal,{"name": "he_normal"})"},
       R"(--vary init={"name": "he_normal"} changes nothing)"},
      {"relu-he.json", {"depth=4,4"}, "--vary depth=4,4: the value 4 appears twice"},
      {"relu-he.json",
       {"norm=layer_norm,layer_norm"},
       "--vary norm=layer_norm,layer_norm: the value layer_norm appears twice"},
      // One key varied twice: the later --vary overrides the earlier everywhere.
      {"relu-he.json",
       {"depth=3,4", "stack.depth=5"},
       "--vary depth and --vary stack.depth both vary stack.depth"},
      // A value the config cannot take says so rather than running something else.
      {"relu-xavier-batchnorm.json",
       {"residual=off,on"},
       "--vary residual=on: the config's \"layers\" list has no residual block"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    std::vector<std::string> args = {config_file(c.config), "--out", dir.path().string()};
    for (const std::string& v : c.vary) args.insert(args.end(), {"--vary", v});
    const CliResult r = sweep_cli(args);
    EXPECT_EQ(r.code, 2) << c.message;
    EXPECT_TRUE(contains(r.err, c.message)) << r.err;
    EXPECT_TRUE(contains(r.err, "hint: ")) << r.err;
    EXPECT_TRUE(fs::is_empty(dir.path())) << c.message << ": something was written";
  }
}

TEST(SweepLabels, AValueEqualToTheConfigsOwnIsTheBaselineOfItsAxis) {
  for (const auto& [config, vary] : std::vector<std::pair<std::string, std::string>>{
           {"relu-he.json", "norm=none,layer_norm"},
           {"relu-he.json", "seed=7,8"},
           {"gelu-prenorm-residual.json", "norm=layer_norm,none"},
           {"gelu-prenorm-residual.json", "residual=on,off"}}) {
    SweepRequest request;
    request.config = config_file(config);
    request.axes = {parse_sweep_axis(vary)};
    EXPECT_EQ(plan_sweep(request).points.size(), 2u) << config << " --vary " << vary;
  }
}

TEST(SweepStructure, NormNoneTurnsADenseItemsNormSugarBackIntoOneDenseLayer) {
  // relu-xavier-batchnorm's items are {"width": 256, "activation": "relu", "norm": "batch_norm"}:
  // dense (linear), batch norm, relu. Without the norm: one dense relu layer each.
  SweepRequest request;
  request.config = config_file("relu-xavier-batchnorm.json");
  request.overrides = {{"layers[0].repeat", "3", "test"}};
  request.axes = {parse_sweep_axis("norm=none,rms_norm")};
  const SweepPlan plan = plan_sweep(request);
  const std::vector<OpSpec> plain = expand_ops(plan.jobs[0].spec);
  ASSERT_EQ(plain.size(), 4u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(plain[i].kind, OpKind::kDense);
    EXPECT_EQ(plain[i].dense.activation.kind, Activation::kRelu);
  }
  // rms_norm: the same places as the config's batch norms.
  const std::vector<OpSpec> rms = expand_ops(plan.jobs[1].spec);
  ASSERT_EQ(rms.size(), 10u);
  EXPECT_EQ(rms[1].kind, OpKind::kNorm);
  EXPECT_EQ(rms[1].norm.kind, NormKind::kRmsNorm);
  EXPECT_EQ(rms[2].kind, OpKind::kActivation);
}

// ---- One writer per sweep directory

// Another process holding `dir`'s lock as a gradscope writer does (the lock file and its record),
// until release(): then it ends, leaving the lock file behind as a killed writer would.
class LockHolder {
 public:
  explicit LockHolder(const fs::path& dir, const std::string& what = "sweep") {
    fs::create_directories(dir);
    const std::string file = (dir / kOutputLockFile).string();
    const std::string head = "what " + what + "\npid ";
    const std::string rest = "\nhost " + temp_host_name() +
                             "\nstarted 2025-01-02 03:04:05\ncommand gradscope sweep (test)\n";
    int ready[2], go[2];
    if (::pipe(ready) != 0 || ::pipe(go) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls: the test process may have threads.
      ::close(ready[0]);
      ::close(go[1]);
      const int fd = ::open(file.c_str(), O_RDWR | O_CREAT, 0644);
      if (fd < 0 || ::flock(fd, LOCK_EX) != 0) ::_exit(1);
      char digits[16];
      int n = 0;
      for (int pid = ::getpid(); pid > 0; pid /= 10)
        digits[n++] = static_cast<char>('0' + pid % 10);
      char pid_text[16];
      for (int i = 0; i < n; ++i) pid_text[i] = digits[n - 1 - i];
      if (::write(fd, head.data(), head.size()) < 0 || ::write(fd, pid_text, n) < 0 ||
          ::write(fd, rest.data(), rest.size()) < 0 || ::write(ready[1], "x", 1) != 1) {
        ::_exit(1);
      }
      char c;
      while (::read(go[0], &c, 1) > 0) {
      }
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(go[0]);
    go_ = go[1];
    char c;
    const bool locked = ::read(ready[0], &c, 1) == 1;
    ::close(ready[0]);
    if (!locked) throw std::runtime_error("the lock holder did not start");
  }
  ~LockHolder() { release(); }
  int pid() const { return pid_; }
  // Ends the holder; the kernel releases its lock, its lock file stays.
  void release() {
    if (go_ < 0) return;
    ::close(go_);
    go_ = -1;
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }

 private:
  int pid_ = -1;
  int go_ = -1;
};

std::vector<std::string> tiny_cli_args(const fs::path& out) {
  return {"sweep",          "--vary", "activation=tanh,relu", "--vary",  "depth=2,5", "--set",
          "stack.width=16", "--set",  "input.batch=8",        "--seeds", "2",         "--name",
          "grid",           "--out",  out.string(),           "-q"};
}

TEST(SweepLock, ASecondSweepIntoAFolderALiveSweepWritesIsRefusedNamingItsPid) {
  TempDir dir;
  const fs::path grid = dir.path() / "grid";
  LockHolder holder(grid);
  const std::string who = "another gradscope sweep (pid " + std::to_string(holder.pid()) +
                          ", started 2025-01-02 03:04:05) is writing " + grid.string();
  try {
    run_sweep(tiny_request(dir.path()), nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), who);
    EXPECT_TRUE(contains(e.hint(), "wait for it, or choose another --out or --name")) << e.hint();
    EXPECT_TRUE(contains(e.hint(), "gradscope sweep (test)")) << e.hint();
    EXPECT_EQ(e.code(), ExitCode::kUsage);
  }
  EXPECT_FALSE(fs::exists(grid / "runs"));  // nothing ran
  // From the command line: exit code 2, and --resume is refused alike.
  std::ostringstream out, err;
  EXPECT_EQ(run_cli(tiny_cli_args(dir.path()), out, err, CliEnvironment{}), 2);
  EXPECT_TRUE(contains(err.str(), who)) << err.str();
  std::vector<std::string> resume = tiny_cli_args(dir.path());
  resume.push_back("--resume");
  EXPECT_EQ(run_cli(resume, out, err, CliEnvironment{}), 2);
  // A merge writes the same folder: refused too, while the shards' own folders are not locked.
  run_shards(tiny_request(dir.path()), 2);
  SweepMergeRequest merge;
  merge.dirs = {grid.string()};
  merge.out_dir = dir.path().string();
  const std::string e = merge_error(merge);
  EXPECT_TRUE(contains(e, "(pid " + std::to_string(holder.pid()))) << e;
  EXPECT_FALSE(fs::exists(grid / "sweep.json"));
  // Once it has gone, the folder is free.
  holder.release();
  EXPECT_NO_THROW(merge_sweep_shards(merge));
}

TEST(SweepLock, AKilledSweepsLockIsTakenOverByResumeAndTheFolderIsTheUninterruptedOnes) {
  TempDir whole, broken;
  run_sweep(tiny_request(whole.path()), nullptr);
  run_sweep(tiny_request(broken.path()), nullptr);
  const fs::path grid = broken.path() / "grid";
  fs::remove(grid / "runs" / "p0001-s1.json");
  fs::remove(grid / "sweep.json");
  LockHolder(grid).release();  // a sweep that died holding the lock
  ASSERT_TRUE(fs::exists(grid / kOutputLockFile));
  SweepRequest again = tiny_request(broken.path());
  again.resume = true;
  EXPECT_NO_THROW(run_sweep(again, nullptr));
  EXPECT_FALSE(fs::exists(grid / kOutputLockFile));
  std::set<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(grid)) {
    names.insert(fs::relative(e.path(), grid).generic_string());
  }
  std::set<std::string> expected;
  for (const auto& e : fs::recursive_directory_iterator(whole.path() / "grid")) {
    expected.insert(fs::relative(e.path(), whole.path() / "grid").generic_string());
  }
  EXPECT_EQ(names, expected);
  EXPECT_EQ(tree(grid), tree(whole.path() / "grid"));
}

TEST(SweepLock, ShardsOfOneSweepRunAtOnceButOneShardNotTwice) {
  TempDir whole, dir;
  run_sweep(tiny_request(whole.path()), nullptr);
  const SweepRequest request = tiny_request(dir.path());
  {
    // Shard 0/2 is running: shard 1/2 runs beside it, a second shard 0/2 is refused.
    LockHolder shard0(dir.path() / "grid" / "shards" / "0-of-2", "sweep shard 0/2");
    EXPECT_NO_THROW(run_sweep_shard(request, SweepShard{1, 2}, nullptr));
    try {
      run_sweep_shard(request, SweepShard{0, 2}, nullptr);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_TRUE(contains(
          e.what(), "another gradscope sweep shard 0/2 (pid " + std::to_string(shard0.pid())))
          << e.what();
      EXPECT_TRUE(
          contains(e.what(), "is writing " + (dir.path() / "grid" / "shards" / "0-of-2").string()))
          << e.what();
    }
  }
  // Both shards of a 3-way split at the same time, from two threads, and the third after.
  std::vector<std::thread> threads;
  std::vector<std::string> errors(2);
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      try {
        run_sweep_shard(request, SweepShard{i, 3}, nullptr);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors, (std::vector<std::string>{"", ""}));
  run_sweep_shard(request, SweepShard{2, 3}, nullptr);
  // The 2-way split's folders (one holding the dead holder's lock file) are not this merge's.
  fs::remove_all(dir.path() / "grid" / "shards" / "0-of-2");
  fs::remove_all(dir.path() / "grid" / "shards" / "1-of-2");
  SweepMergeRequest merge;
  merge.dirs = {(dir.path() / "grid").string()};
  merge.out_dir = dir.path().string();
  merge_sweep_shards(merge);
  EXPECT_EQ(tree(dir.path() / "grid"), tree(whole.path() / "grid"));
  for (const auto& e : fs::recursive_directory_iterator(dir.path() / "grid")) {
    EXPECT_NE(e.path().filename(), kOutputLockFile) << e.path();
  }
}

TEST(SweepLock, ARunFileThatIsAnotherPointsRunIsAnErrorInTheSummary) {
  TempDir dir;
  const SweepRequest request = tiny_request(dir.path());
  run_sweep(request, nullptr);
  const fs::path runs = dir.path() / "grid" / "runs";
  const std::string json = read(dir.path() / "grid" / "sweep.json");
  // What a second sweep of the same name could leave: point 0's run under point 2's name.
  fs::copy_file(runs / "p0000-s1.json", runs / "p0002-s0.json",
                fs::copy_options::overwrite_existing);
  fs::remove(dir.path() / "grid" / "sweep.json");
  try {
    write_sweep_summary(request, plan_sweep(request));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              (runs / "p0002-s0.json").string() +
                  ": not the run of point 2 seed 0 (activation=relu depth=2): its config "
                  "differs");
    EXPECT_TRUE(contains(e.hint(), "--resume")) << e.hint();
    EXPECT_TRUE(contains(e.hint(), "remove " + (runs / "p0002-s0.json").string())) << e.hint();
  }
  EXPECT_FALSE(fs::exists(dir.path() / "grid" / "sweep.json"));
  // --resume runs that point again, and the summary is the first one.
  std::vector<std::string> resume = tiny_cli_args(dir.path());
  resume.push_back("--resume");
  std::ostringstream out, err;
  ASSERT_EQ(run_cli(resume, out, err, CliEnvironment{}), 0) << err.str();
  EXPECT_EQ(read(dir.path() / "grid" / "sweep.json"), json);
}

TEST_F(SweepMerge, ARunThatIsAnotherPointsIsNamedWithItsPointAndExitsTwo) {
  const fs::path run = shard(1) / "runs" / "p0002-s0.json";
  fs::copy_file(shard(1) / "runs" / "p0000-s1.json", run, fs::copy_options::overwrite_existing);
  const std::string e = merge_error(all());
  EXPECT_TRUE(contains(e, run.string() +
                              ": not the run of point 2 seed 0 (activation=relu depth=2, run 4 "
                              "of the sweep, in shard 1/3): its config differs"))
      << e;
  EXPECT_TRUE(contains(e, "--shard 1/3 --resume")) << e;
  std::ostringstream out, err;
  EXPECT_EQ(run_cli({"merge", (dir_.path() / "grid").string(), "--out",
                     (dir_.path() / "merged").string(), "-q"},
                    out, err, CliEnvironment{}),
            2);
  EXPECT_TRUE(contains(err.str(), "not the run of point 2 seed 0")) << err.str();
  EXPECT_FALSE(fs::exists(dir_.path() / "merged" / "grid" / "sweep.json"));
}

// ---- The grid's cap

// An axis KEY=1,2,...,n (the cap is checked before any key is looked up).
SweepAxis numbered_axis(const std::string& key, int n) {
  std::string text = key + "=";
  for (int v = 1; v <= n; ++v) {
    if (v > 1) text += ',';
    text += std::to_string(v);
  }
  return parse_sweep_axis(text);
}

std::string plan_error(const SweepRequest& request) {
  try {
    plan_sweep(request);
  } catch (const Error& e) {
    return std::string(e.what()) + "\nhint: " + e.hint();
  }
  return "no error";
}

TEST(SweepGrid, AGridBeyondTheCapIsRefusedWithItsSizeBeforeAnyPointIsPlanned) {
  SweepRequest r;
  for (const char* key : {"depth", "width", "gain", "batch", "seed", "learning_rate"}) {
    r.axes.push_back(numbered_axis(key, 10));
  }
  // Planning a million points would take minutes: the refusal comes from the axes' sizes.
  const std::string e = plan_error(r);
  EXPECT_TRUE(contains(e,
                       "the grid has 1,000,000 points (10 x 10 x 10 x 10 x 10 x 10), more than "
                       "the 10,000 a sweep runs"))
      << e;
  EXPECT_TRUE(contains(e, "narrow an axis, or pass --max-points N to confirm")) << e;
  // From the command line: exit code 2, nothing written.
  TempDir dir;
  std::vector<std::string> args = {"sweep", "--out", dir.path().string(), "-q"};
  for (const SweepAxis& a : r.axes) {
    std::string values;
    for (const std::string& v : a.values) values += (values.empty() ? "" : ",") + v;
    args.insert(args.end(), {"--vary", a.key + "=" + values});
  }
  std::ostringstream out, err;
  EXPECT_EQ(run_cli(args, out, err, CliEnvironment{}), 2);
  EXPECT_TRUE(contains(err.str(), "the grid has 1,000,000 points")) << err.str();
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(SweepGrid, MaxPointsRaisesOrLowersTheCap) {
  SweepRequest r;
  r.overrides = {{"stack.width", "8", "test"}, {"input.batch", "4", "test"}};
  r.axes = {parse_sweep_axis("depth=2,3,4"), parse_sweep_axis("activation=tanh,relu,gelu,elu")};
  r.max_points = 11;
  const std::string e = plan_error(r);
  EXPECT_TRUE(contains(e, "the grid has 12 points (3 x 4), more than the 11 --max-points allows"))
      << e;
  r.max_points = 12;
  EXPECT_EQ(plan_sweep(r).points.size(), 12u);
  // --max-points on the command line.
  TempDir dir;
  const std::vector<std::string> base = {"sweep",
                                         "--vary",
                                         "depth=2,3,4",
                                         "--vary",
                                         "activation=tanh,relu,gelu,elu",
                                         "--set",
                                         "stack.width=8",
                                         "--set",
                                         "input.batch=4",
                                         "--out",
                                         dir.path().string(),
                                         "-q"};
  std::ostringstream out, err;
  std::vector<std::string> low = base;
  low.insert(low.end(), {"--max-points", "5"});
  EXPECT_EQ(run_cli(low, out, err, CliEnvironment{}), 2);
  EXPECT_TRUE(contains(err.str(), "more than the 5 --max-points allows")) << err.str();
  std::vector<std::string> enough = base;
  enough.insert(enough.end(), {"--max-points", "12"});
  EXPECT_EQ(run_cli(enough, out, err, CliEnvironment{}), 0) << err.str();
}

TEST(SweepGrid, AGridBeyondTwoToThe64IsCountedExactlyAndRefused) {
  // 16 axes of 16 values: 2^64 points, which a 64-bit product would wrap to 0.
  std::vector<SweepAxis> axes;
  for (int a = 0; a < 16; ++a) axes.push_back(numbered_axis(std::string(1, char('a' + a)), 16));
  const SweepGridSize size = sweep_grid_size(axes);
  EXPECT_EQ(size.text, "18,446,744,073,709,551,616");
  EXPECT_EQ(size.count, UINT64_MAX);  // saturated
  SweepRequest r;
  r.axes = axes;
  EXPECT_TRUE(contains(plan_error(r), "the grid has 18,446,744,073,709,551,616 points (16 x 16"));
  // Even with the largest cap, so many runs cannot be numbered.
  r.max_points = UINT64_MAX;
  EXPECT_TRUE(contains(plan_error(r), "more runs than one sweep can number (2,147,483,647)"))
      << plan_error(r);
  // 10^20 points, and sizes that stay exact.
  axes.clear();
  for (int a = 0; a < 20; ++a) axes.push_back(numbered_axis(std::string(1, char('a' + a)), 10));
  EXPECT_EQ(sweep_grid_size(axes).text, "100,000,000,000,000,000,000");
  EXPECT_EQ(sweep_grid_size({}).text, "1");
  EXPECT_EQ(sweep_grid_size({numbered_axis("a", 7), numbered_axis("b", 143)}).count, 1001u);
  EXPECT_EQ(sweep_grid_size({numbered_axis("a", 7), numbered_axis("b", 143)}).text, "1,001");
}

}  // namespace
}  // namespace gradscope
