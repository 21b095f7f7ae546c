// `gradscope coordcheck` as a user runs it: the shipped example's verdicts and exit codes, the
// files it writes, and every refusal before any training, with the flag named.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
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
  // digits, which another CPU's BLAS rounding does not reach.
  TempDir dir;
  const fs::path committed = fs::path(GRADSCOPE_SOURCE_DIR) / "reports" / "coordcheck";
  for (const char* param : {"sp", "mup"}) {
    const Result r = cli({"coordcheck", kMlp, "--widths", "64,128,256,512,1024", "--param", param,
                          "--out", dir.path, "-q"});
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string file = std::string("mlp-") + param + "-coordcheck.txt";
    EXPECT_EQ(read(dir.path / file), read(committed / file))
        << file << " is stale: run `bash scripts/dev.sh reports`";
  }
}

}  // namespace
}  // namespace gradscope
