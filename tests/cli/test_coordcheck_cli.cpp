// `gradscope coordcheck` as a user runs it: the shipped example's verdicts and exit codes, the
// files it writes, and every refusal before any training, with the flag named.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gradscope/cli/cli.hpp"
#include "support/paths.hpp"

namespace gradscope {
namespace {

namespace fs = std::filesystem;

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result cli(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int code = run_cli(args, out, err, CliEnvironment{});
  return {code, out.str(), err.str()};
}

struct TempDir {
  fs::path path =
      fs::temp_directory_path() /
      ("gradscope-coordcheck-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  static inline int counter = 0;
};

std::string read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

const std::string kMlp = std::string(GRADSCOPE_SOURCE_DIR) + "/configs/coordcheck/mlp.json";

TEST(CoordCheckCli, SpFailsAndMupPassesOnTheShippedMlpWithExitThreeUnderFailOn) {
  TempDir dir;
  const std::vector<std::string> common = {"coordcheck", kMlp,     "--widths",  "64,128,256,512",
                                           "--seeds",    "2",      "--steps",   "1",
                                           "--out",      dir.path, "--fail-on", "any"};
  std::vector<std::string> sp = common;
  sp.insert(sp.end(), {"--param", "sp"});
  const Result a = cli(sp);
  EXPECT_EQ(a.code, 3) << a.err;
  EXPECT_NE(a.out.find("FAIL: "), std::string::npos) << a.out;
  std::vector<std::string> mup = common;
  mup.insert(mup.end(), {"--param", "mup"});
  const Result b = cli(mup);
  EXPECT_EQ(b.code, 0) << b.err << b.out;
  EXPECT_NE(b.out.find("PASS: every row is flat"), std::string::npos) << b.out;
  // Without --fail-on a failed check still exits 0: the files are the result.
  std::vector<std::string> plain(sp.begin(), sp.end() - 4);
  plain.insert(plain.end(), {"--param", "sp"});
  EXPECT_EQ(cli(plain).code, 0);
  for (const char* f : {"mlp-sp-coordcheck.json", "mlp-sp-coordcheck.txt", "mlp-sp-coordcheck.md",
                        "mlp-sp-coordcheck-size-step0.svg", "mlp-sp-coordcheck-size-step1.svg",
                        "mlp-sp-coordcheck-change-step1.svg", "mlp-mup-coordcheck.json"}) {
    EXPECT_TRUE(fs::exists(dir.path / f)) << f;
  }
  const nlohmann::json j = nlohmann::json::parse(read(dir.path / "mlp-mup-coordcheck.json"));
  EXPECT_EQ(j["kind"], "coordcheck");
  EXPECT_EQ(j["check"]["parametrization"], "mup");
  EXPECT_EQ(j["verdict"]["passed"], true);
}

TEST(CoordCheckCli, TheSameCheckGivesTheSameBytesWhateverTheThreads) {
  TempDir one, three;
  for (const auto& [dir, threads] : {std::pair{&one, "1"}, std::pair{&three, "3"}}) {
    const Result r = cli({"coordcheck", kMlp, "--widths", "64,256", "--seeds", "2", "--steps", "2",
                          "--param", "mup", "--threads", threads, "--out", dir->path, "-q"});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  for (const char* f : {"mlp-mup-coordcheck.json", "mlp-mup-coordcheck.txt"}) {
    EXPECT_EQ(read(one.path / f), read(three.path / f)) << f;
  }
}

TEST(CoordCheckCli, MalformedRequestsAreRefusedWithTheFlagNamedAndNothingWritten) {
  TempDir dir;
  const std::string out = dir.path.string();
  const struct {
    std::vector<std::string> args;
    const char* says;
  } cases[] = {
      {{"coordcheck", kMlp, "--widths", "64,abc", "--out", out}, "--widths: \"abc\""},
      {{"coordcheck", kMlp, "--widths", "64", "--out", out}, "at least two different"},
      {{"coordcheck", kMlp, "--widths", "64,128", "--param", "mupp", "--out", out},
       "did you mean \"mup\""},
      {{"coordcheck", kMlp, "--widths", "64,128", "--depths", "2,4", "--out", out},
       "no repeated block"},
      {{"coordcheck", kMlp, "--widths", "64,128", "--optimizer", "lion", "--out", out},
       "--optimizer"},
      {{"coordcheck", kMlp, "--widths", "64,128", "--lr", "-1", "--out", out}, "--lr"},
      // Width 2^20: 8 TiB of hidden weights alone; refused before anything is allocated.
      {{"coordcheck", kMlp, "--widths", "64,1048576", "--out", out}, "the largest run needs about"},
  };
  for (const auto& c : cases) {
    const Result r = cli(c.args);
    EXPECT_EQ(r.code, 2) << c.says;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
  EXPECT_TRUE(fs::is_empty(dir.path));
}

TEST(CoordCheckCli, DepthsOnAResidualConfigJudgeTheStreamForEachExponent) {
  TempDir dir;
  const std::string config =
      std::string(GRADSCOPE_SOURCE_DIR) + "/configs/coordcheck/residual-mlp.json";
  const struct {
    const char* param;
    bool passes;
  } cases[] = {{"sp", false}, {"depth_mup", true}, {"completep", true}};
  for (const auto& c : cases) {
    const Result r =
        cli({"coordcheck", config, "--widths", "128,256", "--depths", "4,8,16", "--seeds", "2",
             "--steps", "1", "--param", c.param, "--out", dir.path, "-q"});
    ASSERT_EQ(r.code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(
        read(dir.path / (std::string("residual-mlp-") + c.param + "-coordcheck.json")));
    ASSERT_TRUE(j.contains("depth")) << c.param;
    const bool depth_flat = j["verdict"]["worst_depth"].is_null();
    EXPECT_EQ(depth_flat, c.passes) << c.param;
  }
  EXPECT_TRUE(fs::exists(dir.path / "residual-mlp-sp-coordcheck-depth.svg"));
}

TEST(CoordCheckCli, AnOverflowingNetworkIsSaidToOverflowAndItsFloat64TwinIsMeasured) {
  // He ReLU at gain 30 over 30 layers: x30 a layer, 30^30 = 2e44 past float32's 3.4e38 from about
  // layer 26 on; float64 holds it.
  TempDir dir;
  const auto config = [&](const char* precision) {
    const fs::path p = dir.path / (std::string(precision) + ".json");
    std::ofstream(p) << R"({"name": ")" << precision << R"(", "seed": 1, "precision": ")"
                     << precision << R"(", "input": {"width": 8, "batch": 8},
        "stack": {"depth": 30, "width": 64, "activation": "relu",
                  "init": {"name": "he_normal", "gain": 30}}})";
    return p.string();
  };
  const Result f32 = cli({"coordcheck", config("float32"), "--widths", "64,128", "--param", "mup",
                          "--steps", "1", "--seeds", "2", "--out", dir.path});
  ASSERT_EQ(f32.code, 0) << f32.err;
  EXPECT_NE(f32.out.find("size at step 0 is not finite (inf or NaN) at some width"),
            std::string::npos)
      << f32.out;
  const Result f64 = cli({"coordcheck", config("float64"), "--widths", "64,128", "--param", "mup",
                          "--steps", "1", "--seeds", "2", "--out", dir.path});
  ASSERT_EQ(f64.code, 0) << f64.err;
  // float64 measures every size at init; the first step of an exploding network diverges in any
  // precision, and the check says so at step 1, not before.
  EXPECT_EQ(f64.out.find("at step 0 is not finite"), std::string::npos) << f64.out;
  const nlohmann::json j64 = nlohmann::json::parse(read(dir.path / "float64-mup-coordcheck.json"));
  const nlohmann::json j32 = nlohmann::json::parse(read(dir.path / "float32-mup-coordcheck.json"));
  int finite64 = 0;
  int finite32 = 0;
  for (const auto& [j, finite] : {std::pair{&j64, &finite64}, std::pair{&j32, &finite32}}) {
    for (const auto& row : (*j)["rows"]) {
      if (row["quantity"] == "size" && row["step"] == 0 && row["slope"].is_number()) ++*finite;
    }
  }
  EXPECT_EQ(finite64, 30);  // every layer at init
  EXPECT_LT(finite32, 30);  // float32 loses the deep ones
  EXPECT_GT(finite32, 20);
}

TEST(CoordCheckCli, TheCommittedExamplesMatchAFreshRun) {
  // reports/coordcheck/ as `bash scripts/dev.sh reports` writes it: the text tables print three
  // digits, which another CPU's BLAS rounding does not reach; of the JSON, what does not depend on
  // the last bits: its schema, every row's label and verdict.
  TempDir dir;
  const fs::path committed = fs::path(GRADSCOPE_SOURCE_DIR) / "reports" / "coordcheck";
  const std::string residual =
      std::string(GRADSCOPE_SOURCE_DIR) + "/configs/coordcheck/residual-mlp.json";
  const struct {
    std::string config, name, param;
    std::vector<std::string> axes;
  } examples[] = {
      {kMlp, "mlp", "sp", {"--widths", "64,128,256,512,1024"}},
      {kMlp, "mlp", "mup", {"--widths", "64,128,256,512,1024"}},
      {residual, "residual-mlp", "sp", {"--widths", "128,256,512", "--depths", "4,8,16,32"}},
      {residual, "residual-mlp", "depth_mup", {"--widths", "128,256,512", "--depths", "4,8,16,32"}},
      {residual, "residual-mlp", "completep", {"--widths", "128,256,512", "--depths", "4,8,16,32"}},
  };
  const auto verdicts = [](const nlohmann::json& j) {
    std::vector<std::string> v = {j["schema_version"].dump()};
    for (const auto& row : j["rows"]) {
      v.push_back(row["label"].get<std::string>() + " " + row["verdict"].get<std::string>());
    }
    if (j.contains("depth")) {
      for (const auto& row : j["depth"]["rows"]) {
        v.push_back(row["label"].get<std::string>() + " " + row["verdict"].get<std::string>());
      }
    }
    return v;
  };
  for (const auto& e : examples) {
    std::vector<std::string> args = {"coordcheck", e.config, "--param", e.param,
                                     "--out",      dir.path, "-q"};
    args.insert(args.end(), e.axes.begin(), e.axes.end());
    const Result r = cli(args);
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string stem = e.name + "-" + e.param + "-coordcheck";
    EXPECT_EQ(read(dir.path / (stem + ".txt")), read(committed / (stem + ".txt")))
        << stem << ".txt is stale: run `bash scripts/dev.sh reports`";
    EXPECT_EQ(verdicts(nlohmann::json::parse(read(dir.path / (stem + ".json")))),
              verdicts(nlohmann::json::parse(read(committed / (stem + ".json")))))
        << stem << ".json is stale: run `bash scripts/dev.sh reports`";
  }
}

// ---- Kept runs: resume, shards, merge

const std::string kResidual =
    std::string(GRADSCOPE_SOURCE_DIR) + "/configs/coordcheck/residual-mlp.json";

std::vector<std::string> residual_check(const fs::path& out) {
  return {"coordcheck", kResidual,   "--widths", "32,64,128",  "--depths",
          "2,4",        "--steps",   "2",        "--seeds",    "2",
          "--param",    "depth_mup", "--out",    out.string(), "-q"};
}

std::vector<std::string> with(std::vector<std::string> args, std::vector<std::string> more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// Every file in `dir` (not its subdirectories), by name.
std::map<std::string, std::string> files_in(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) files[e.path().filename().string()] = read(e.path());
  }
  return files;
}

TEST(CoordCheckCli, ShardsMergedGiveTheBytesOfTheUnshardedCheckAndItsRunsAreRemoved) {
  TempDir whole, sharded;
  ASSERT_EQ(cli(residual_check(whole.path)).code, 0);
  const std::map<std::string, std::string> expected = files_in(whole.path);
  // json, txt, md, a size chart for t = 0, 1, 2, a change chart for t = 1, 2, the depth chart.
  EXPECT_EQ(expected.size(), 9u);
  EXPECT_TRUE(expected.count("residual-mlp-depth_mup-coordcheck-depth.svg"));
  // The finished check keeps no runs.
  EXPECT_FALSE(fs::exists(whole.path / "residual-mlp-depth_mup-coordcheck-runs"));

  // Three shards, one of them on two threads: run k goes to shard k mod 3.
  const fs::path runs = sharded.path / "residual-mlp-depth_mup-coordcheck-runs";
  for (const char* shard : {"0/3", "1/3", "2/3"}) {
    const Result r = cli(with(residual_check(sharded.path),
                              {"--shard", shard, "--threads", shard[0] == '1' ? "2" : "1"}));
    ASSERT_EQ(r.code, 0) << r.err;
  }
  // 3 widths and 2 depths, 2 seeds each: 10 runs, 4 + 3 + 3.
  EXPECT_TRUE(fs::exists(runs / "shards/0-of-3/width-32-seed-1.json"));
  EXPECT_TRUE(fs::exists(runs / "shards/1-of-3/width-32-seed-2.json"));
  EXPECT_TRUE(fs::exists(runs / "shards/0-of-3/depth-4-seed-2.json"));
  EXPECT_TRUE(fs::exists(runs / "shards/2-of-3/coordcheck-manifest.json"));
  // No result before the merge.
  EXPECT_FALSE(fs::exists(sharded.path / "residual-mlp-depth_mup-coordcheck.json"));
  const Result m = cli({"merge", runs.string(), "--out", sharded.path.string(), "-q"});
  ASSERT_EQ(m.code, 0) << m.err;
  std::map<std::string, std::string> merged = files_in(sharded.path);
  EXPECT_EQ(merged, expected);

  // The shards copied from three machines into three directories merge the same.
  TempDir copies;
  for (const char* s : {"0-of-3", "1-of-3", "2-of-3"}) {
    fs::copy(runs / "shards" / s, copies.path / (std::string("machine-") + s));
  }
  const Result m2 =
      cli({"merge", (copies.path / "machine-0-of-3").string(),
           (copies.path / "machine-1-of-3").string(), (copies.path / "machine-2-of-3").string(),
           "--out", (copies.path / "out").string(), "-q"});
  ASSERT_EQ(m2.code, 0) << m2.err;
  EXPECT_EQ(files_in(copies.path / "out"), expected);
}

TEST(CoordCheckCli, AMissingShardIsNamedWithTheCommandThatRunsIt) {
  TempDir dir;
  ASSERT_EQ(cli(with(residual_check(dir.path), {"--shard", "0/2"})).code, 0);
  const fs::path runs = dir.path / "residual-mlp-depth_mup-coordcheck-runs";
  const Result m = cli({"merge", runs.string(), "--out", dir.path.string()});
  EXPECT_EQ(m.code, 2);
  EXPECT_NE(m.err.find("the run of width 32, seed 2 is missing: shard 1/2 has not finished"),
            std::string::npos)
      << m.err;
  EXPECT_NE(m.err.find("--param depth_mup --out " + dir.path.string() + " --shard 1/2 --resume"),
            std::string::npos)
      << m.err;
  EXPECT_FALSE(fs::exists(dir.path / "residual-mlp-depth_mup-coordcheck.json"));
  // Without a directory the merge looks in --out.
  EXPECT_EQ(cli({"merge", "--out", dir.path.string()}).code, 2);
  ASSERT_EQ(cli(with(residual_check(dir.path), {"--shard", "1/2"})).code, 0);
  const Result ok = cli({"merge", "--out", dir.path.string(), "-q"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_TRUE(fs::exists(dir.path / "residual-mlp-depth_mup-coordcheck.json"));
}

TEST(CoordCheckCli, ResumeReusesTheKeptRunsOfTheSamePlanAndRefusesAnotherChecks) {
  TempDir dir, shard_dir;
  // Kept runs as an interrupted check leaves them: shard 0/2's runs in the runs directory.
  ASSERT_EQ(cli(with(residual_check(shard_dir.path), {"--shard", "0/2"})).code, 0);
  const fs::path from = shard_dir.path / "residual-mlp-depth_mup-coordcheck-runs/shards/0-of-2";
  const fs::path runs = dir.path / "residual-mlp-depth_mup-coordcheck-runs";
  fs::create_directories(runs);
  for (const auto& e : fs::directory_iterator(from)) {
    if (e.path().filename() != "coordcheck-manifest.json") fs::copy(e.path(), runs);
  }
  // A kept run is used as it is: mark one of its numbers, and the result shows the mark.
  std::string run = read(runs / "width-32-seed-1.json");
  nlohmann::json j = nlohmann::json::parse(run);
  ASSERT_EQ(j["trace"]["out_l1"].size(), 3u);  // t = 0, 1, 2
  j["trace"]["out_l1"][0][1] = 12345.0;
  std::ofstream(runs / "width-32-seed-1.json") << j.dump();

  // Another check's plan is refused, naming what differs, and nothing is written.
  std::vector<std::string> other = residual_check(dir.path);
  other[3] = "32,64,256";
  const Result refused = cli(with(other, {"--resume"}));
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.err.find("check.widths: [32,64,256] here, [32,64,128] in the other"),
            std::string::npos)
      << refused.err;
  EXPECT_TRUE(fs::exists(runs / "width-32-seed-1.json"));

  const Result resumed = cli(with(residual_check(dir.path), {"--resume"}));
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  const nlohmann::json r =
      nlohmann::json::parse(read(dir.path / "residual-mlp-depth_mup-coordcheck.json"));
  // ops.1's size at init, width 32: the mean over the two seeds of 12345 and seed 2's value.
  bool marked = false;
  for (const auto& row : r["rows"]) {
    if (row["op"] == 1 && row["quantity"] == "size" && row["step"] == 0) {
      marked = row["l1"][0].get<double>() > 6000.0;
    }
  }
  EXPECT_TRUE(marked);
  EXPECT_FALSE(fs::exists(runs));

  // Without --resume the kept runs are discarded: the result is the fresh check's.
  TempDir fresh;
  ASSERT_EQ(cli(residual_check(fresh.path)).code, 0);
  fs::create_directories(runs);
  for (const auto& e : fs::directory_iterator(from)) fs::copy(e.path(), runs);
  std::ofstream(runs / "width-32-seed-1.json") << j.dump();
  ASSERT_EQ(cli(residual_check(dir.path)).code, 0);
  EXPECT_EQ(read(dir.path / "residual-mlp-depth_mup-coordcheck.json"),
            read(fresh.path / "residual-mlp-depth_mup-coordcheck.json"));
}

}  // namespace
}  // namespace gradscope
