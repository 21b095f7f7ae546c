// The command line, in-process: every subcommand, every error path with its message and exit
// code, colour rules, file output and byte-identical reports across thread counts. And the
// executable itself under faults: interrupted while it writes, killed mid-sweep, two sweeps at
// once.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <poll.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "gradscope/app/output.hpp"
#include "gradscope/app/progress.hpp"
#include "gradscope/app/time_estimate.hpp"
#include "gradscope/cli/cli.hpp"
#include "gradscope/core/activation.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/init.hpp"
#include "support/paths.hpp"

namespace gradscope {
namespace {

namespace fs = std::filesystem;

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result cli(std::vector<std::string> args, CliEnvironment env = {}) {
  std::ostringstream out, err;
  const int code = run_cli(args, out, err, env);
  return {code, out.str(), err.str()};
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("gradscope-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name) << content;
    return path_ / name;
  }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

const std::vector<std::string> kSmall = {"--depth", "4", "--width", "16", "--batch", "8"};

std::vector<std::string> args(std::vector<std::string> a, const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

TEST(Cli, RunWithFlagsWritesJsonAndTextAndPrintsTheTable) {
  TempDir dir;
  const Result r = cli(args(
      {"run", "--out", dir.path().string(), "--activation", "sigmoid", "--init", "xavier_normal"},
      kSmall));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_TRUE(contains(r.out, "sigmoid"));
  ASSERT_TRUE(fs::exists(dir.path() / "default.json"));
  ASSERT_TRUE(fs::exists(dir.path() / "default.txt"));
  EXPECT_EQ(read(dir.path() / "default.txt"), r.out);
  const auto j = nlohmann::json::parse(read(dir.path() / "default.json"));
  EXPECT_EQ(j["config"]["stack"]["depth"], 4);
  EXPECT_EQ(j["config"]["stack"]["activation"], "sigmoid");
  EXPECT_EQ(j["layers"].size(), 4u);
  // No temporary files are left beside the reports.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 2);
}

TEST(Cli, ConfigFileNameIsTheFileStemAndFlagsOverrideIt) {
  TempDir dir, out;
  const fs::path config =
      dir.write("my-net.json", R"({"seed": 3, "stack": {"depth": 9, "width": 8}})");
  const Result r =
      cli({"run", config.string(), "--out", out.path().string(), "--depth", "2", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.empty());
  const auto report = nlohmann::json::parse(read(out.path() / "my-net.json"));
  EXPECT_EQ(report["config"]["name"], "my-net");
  EXPECT_EQ(report["config"]["stack"]["depth"], 2);
  EXPECT_EQ(report["config"]["seed"], 3);
}

TEST(Cli, AnExplodingConvNetOverflowsFloat32WhereItsFloat64TwinIsMeasured) {
  // 30 He ReLU convs at gain 30 (x24 a layer in rms): float32 overflows past layer 27, float64
  // holds every value and measures the gradient's 39 decades.
  TempDir dir;
  const std::string body =
      R"("input": {"channels": 2, "height": 6, "width": 6, "batch": 4},
         "layers": [{"repeat": 30, "block": [{"conv": {"channels": 4, "kernel": 3, "padding": 1},
                     "activation": "relu", "init": {"name": "he_normal", "gain": 30}}]},
                    {"pool": {"kind": "global_average"}}, {"flatten": {}},
                    {"width": 3, "activation": "linear"}]})";
  const fs::path f32 = dir.write("c32.json", R"({"name": "c32", "precision": "float32", )" + body);
  const fs::path f64 = dir.write("c64.json", R"({"name": "c64", "precision": "float64", )" + body);
  const fs::path out = dir.path() / "out";
  ASSERT_EQ(cli({"run", f32.string(), "--out", out.string(), "-q"}).code, 0);
  ASSERT_EQ(cli({"run", f64.string(), "--out", out.string(), "-q"}).code, 0);
  const auto r32 = nlohmann::json::parse(read(out / "c32.json"));
  const auto r64 = nlohmann::json::parse(read(out / "c64.json"));
  EXPECT_EQ(r32["summary"]["first_nonfinite_layer"], 28);
  EXPECT_EQ(r32["summary"]["first_nonfinite_pass"], "forward");
  EXPECT_TRUE(r64["summary"]["first_nonfinite_layer"].is_null());
  EXPECT_GT(r64["summary"]["log10_grad_ratio_first_to_last"].get<double>(), 30.0);
  // Up to the overflow the twins agree: layer 20's output rms to float32's rounding.
  const double a = r32["layers"][19]["forward"]["act"]["rms"].get<double>();
  const double b = r64["layers"][19]["forward"]["act"]["rms"].get<double>();
  EXPECT_NEAR(a / b, 1.0, 1e-3);  // 20 layers of float32 products: about 20 x 1e-6 relative
}

TEST(Cli, AReportThatWouldReplaceTheConfigItReadsIsRefusedAndTheConfigKept) {
  // my-net.json run with --out its own directory: the JSON report is my-net.json too.
  TempDir dir;
  const std::string text = R"({"seed": 3, "stack": {"depth": 2, "width": 8}})";
  const fs::path config = dir.write("my-net.json", text);
  const Result r = cli({"run", config.string(), "--out", dir.path().string(), "-q"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "would write its report over the config it reads")) << r.err;
  EXPECT_TRUE(contains(r.err, "--set name=")) << r.err;
  EXPECT_EQ(read(config), text);
  // Another name writes beside it.
  EXPECT_EQ(
      cli({"run", config.string(), "--out", dir.path().string(), "--set", "name=other", "-q"}).code,
      0);
  EXPECT_EQ(read(config), text);
  EXPECT_TRUE(fs::exists(dir.path() / "other.json"));
}

TEST(Cli, ReportIsByteIdenticalForOneAndTwoThreadsAndAcrossRuns) {
  TempDir a, b, c;
  const std::vector<std::string> net = {"--depth",      "5",    "--width", "300", "--batch", "40",
                                        "--activation", "gelu", "-q"};
  ASSERT_EQ(cli(args({"run", "--threads", "1", "--out", a.path().string()}, net)).code, 0);
  ASSERT_EQ(cli(args({"run", "--threads", "2", "--out", b.path().string()}, net)).code, 0);
  ASSERT_EQ(cli(args({"run", "--threads", "2", "--out", c.path().string()}, net)).code, 0);
  const std::string ja = read(a.path() / "default.json");
  EXPECT_FALSE(ja.empty());
  EXPECT_EQ(ja, read(b.path() / "default.json"));
  EXPECT_EQ(ja, read(c.path() / "default.json"));
  EXPECT_EQ(read(a.path() / "default.txt"), read(b.path() / "default.txt"));
}

TEST(Cli, FormatJsonPrintsTheJsonReport) {
  TempDir dir;
  const Result r = cli(args({"run", "--out", dir.path().string(), "--format", "json"}, kSmall));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, read(dir.path() / "default.json"));
}

TEST(Cli, ListNamesEveryActivationAndInit) {
  const Result r = cli({"list"});
  ASSERT_EQ(r.code, 0);
  for (const ActivationInfo& a : activation_table())
    EXPECT_TRUE(contains(r.out, std::string(a.name))) << a.name;
  for (const InitInfo& i : init_table())
    EXPECT_TRUE(contains(r.out, std::string(i.name))) << i.name;
  for (const BiasInitInfo& b : bias_init_table()) EXPECT_TRUE(contains(r.out, std::string(b.name)));
  EXPECT_TRUE(contains(r.out, "swish"));
}

TEST(Cli, VersionAndHelpExitZeroAndHelpDocumentsExitCodes) {
  const Result v = cli({"--version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_TRUE(contains(v.out, "gradscope 0."));
  for (const std::vector<std::string>& a :
       std::vector<std::vector<std::string>>{{"--help"}, {"run", "--help"}, {"list", "--help"}}) {
    const Result h = cli(a);
    EXPECT_EQ(h.code, 0) << a.front();
    EXPECT_TRUE(contains(h.out, "Exit codes")) << h.out;
  }
  EXPECT_TRUE(contains(cli({"run", "--help"}).out, "--activation"));
}

TEST(Cli, ColourOnlyOnATerminalAndNeverUnderNoColor) {
  TempDir dir;
  const auto run = [&](CliEnvironment env) {
    return cli(args({"run", "--out", dir.path().string()}, kSmall), env).out;
  };
  EXPECT_FALSE(contains(run({false, false}), "\x1b["));
  EXPECT_TRUE(contains(run({true, false}), "\x1b["));
  EXPECT_FALSE(contains(run({true, true}), "\x1b["));
  // The file never has colour.
  EXPECT_FALSE(contains(read(dir.path() / "default.txt"), "\x1b["));
}

// ---- Error paths: message, place, advice, exit code 2.

TEST(CliErrors, MalformedJsonNamesFileLineAndColumn) {
  TempDir dir;
  const fs::path config =
      dir.write("bad.json", "{\n  \"seed\": 1,\n  \"stack\": {\"depth\": }\n}\n");
  const Result r = cli({"run", config.string(), "--out", dir.path().string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, config.string() + ":3:")) << r.err;
  EXPECT_FALSE(fs::exists(dir.path() / "bad.json.json"));
}

TEST(CliErrors, UnknownKeySuggestsTheClosest) {
  TempDir dir;
  const fs::path config = dir.write("typo.json", R"({"stack": {"actvation": "relu"}})");
  const Result r = cli({"run", config.string(), "--out", dir.path().string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "stack.actvation")) << r.err;
  EXPECT_TRUE(contains(r.err, "activation")) << r.err;
}

TEST(CliErrors, MisspeltActivationFlagSuggestsTheClosest) {
  const Result r = cli(args({"run", "--activation", "sigmod"}, kSmall));
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--activation")) << r.err;
  EXPECT_TRUE(contains(r.err, "sigmoid")) << r.err;
}

TEST(CliErrors, SoftmaxInAHiddenLayerSaysWhy) {
  const Result r = cli(args({"run", "--activation", "softmax"}, kSmall));
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "output")) << r.err;
}

TEST(CliErrors, DepthWidthOrBatchBelowOneIsRefused) {
  for (const char* flag : {"--depth", "--width", "--batch"}) {
    const Result r = cli({"run", flag, "0"});
    EXPECT_EQ(r.code, 2) << flag;
    EXPECT_TRUE(contains(r.err, "at least 1")) << r.err;
  }
  const Result r = cli({"run", "--depth", "fifty"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "fifty")) << r.err;
}

TEST(CliErrors, RunTooLargeForMemoryIsRefusedWithTheEstimate) {
  TempDir dir;
  const Result r = cli({"run", "--depth", "100000", "--width", "100000", "--batch", "100000",
                        "--out", dir.path().string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "run refused")) << r.err;
  EXPECT_TRUE(contains(r.err, "estimated")) << r.err;
  EXPECT_FALSE(fs::exists(dir.path() / "default.json"));
}

TEST(CliErrors, UnwritableOutputIsAClearErrorAndLeavesNoPartialReport) {
  TempDir dir;
  const fs::path file = dir.write("not-a-dir", "x");
  const Result r = cli(args({"run", "--out", file.string()}, kSmall));
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "cannot write")) << r.err;
  EXPECT_TRUE(contains(r.err, "--out")) << r.err;
  if (::geteuid() != 0) {  // root may write anywhere
    const fs::path ro = dir.path() / "ro";
    fs::create_directories(ro);
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
    const Result r2 = cli(args({"run", "--out", ro.string()}, kSmall));
    EXPECT_EQ(r2.code, 2);
    EXPECT_TRUE(fs::is_empty(ro));
    fs::permissions(ro, fs::perms::owner_all);
  }
}

TEST(CliErrors, MissingConfigFileIsAClearError) {
  const Result r = cli({"run", "/nonexistent/config.json"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "/nonexistent/config.json")) << r.err;
}

TEST(CliErrors, BadSetSyntaxAndUnknownSubcommandAndMissingSubcommand) {
  Result r = cli({"run", "--set", "stack.depth"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "PATH=VALUE")) << r.err;
  r = cli({"frobnicate"});
  EXPECT_EQ(r.code, 2);
  r = cli({});
  EXPECT_EQ(r.code, 2);
  r = cli({"run", "--threads", "-1"});
  EXPECT_EQ(r.code, 2);
}

TEST(Cli, SetOverridesAnyKey) {
  TempDir dir;
  const Result r = cli(args({"run", "--out", dir.path().string(), "--init", "orthogonal", "--set",
                             "stack.init.gain=0.5", "--set", "input.distribution=uniform", "-q"},
                            kSmall));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(read(dir.path() / "default.json"));
  EXPECT_EQ(j["config"]["stack"]["init"]["name"], "orthogonal");
  EXPECT_EQ(j["config"]["stack"]["init"]["gain"], 0.5);
  EXPECT_EQ(j["config"]["input"]["distribution"], "uniform");
}

TEST(Cli, LayersConfigReportsEveryKindWithLossAndUpdateRatios) {
  TempDir dir, out;
  const fs::path config = dir.write("arch.json", R"({
    "input": {"width": 16, "batch": 8},
    "layers": [
      {"width": 16, "activation": "gelu"},
      {"repeat": 2, "residual": {"scale": 0.5},
       "block": [{"norm": "layer_norm"}, {"width": 32, "activation": "relu"}, {"dropout": 0.1},
                 {"width": 16, "activation": "linear"}]},
      {"width": 4, "activation": "linear", "norm": "batch_norm", "norm_position": "after_activation"}
    ],
    "loss": "softmax_cross_entropy",
    "optimizer": {"name": "sgd", "learning_rate": 0.1}
  })");
  const Result r = cli({"run", config.string(), "--out", out.path().string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "upd/w"));
  EXPECT_TRUE(contains(r.out, "layer_norm"));
  const auto j = nlohmann::json::parse(read(out.path() / "arch.json"));
  std::set<std::string> kinds;
  for (const auto& l : j["layers"]) kinds.insert(l["kind"].get<std::string>());
  EXPECT_EQ(kinds, (std::set<std::string>{"dense", "norm", "dropout", "residual"}));
  EXPECT_EQ(j["loss"]["name"], "softmax_cross_entropy");
  EXPECT_GT(j["loss"]["value"].get<double>(), 0.0);
  for (const auto& l : j["layers"]) {
    EXPECT_EQ(l["backward"].contains("update"), l["kind"] == "dense") << l["index"];
    EXPECT_EQ(l["backward"].contains("grad_weight"), l["kind"] == "dense" || l["kind"] == "norm");
  }
  // Indices count the reported ops, 1.. without gaps.
  for (std::size_t i = 0; i < j["layers"].size(); ++i) EXPECT_EQ(j["layers"][i]["index"], i + 1);
}

TEST(CliErrors, ResidualBlockThatChangesWidthWithoutProjectionNamesBothWidths) {
  TempDir dir;
  const fs::path config = dir.write("bad-res.json", R"({
    "layers": [{"width": 8}, {"residual": true, "block": [{"width": 4}]}]
  })");
  const Result r = cli({"run", config.string(), "--out", dir.path().string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "layers[1]")) << r.err;
  EXPECT_TRUE(contains(r.err, "8")) << r.err;
  EXPECT_TRUE(contains(r.err, "4")) << r.err;
  EXPECT_TRUE(contains(r.err, "projection")) << r.err;
}

TEST(Cli, JacobianFlagAddsTheSpectrumToBothReports) {
  TempDir dir;
  const Result r = cli(args({"run", "--out", dir.path().string(), "--jacobian", "2"}, kSmall));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "input-output Jacobian (2 examples"));
  const auto j = nlohmann::json::parse(read(dir.path() / "default.json"));
  EXPECT_EQ(j["jacobian"]["examples"], 2);
  EXPECT_EQ(j["config"]["stats"]["jacobian_examples"], 2);
  const Result big = cli({"run", "--depth", "200", "--width", "4096", "--jacobian", "8", "--out",
                          dir.path().string()});
  EXPECT_EQ(big.code, 2);
  EXPECT_TRUE(contains(big.err, "--jacobian refused")) << big.err;
}

TEST(CliTheory, TanhWithBiasVarianceReportsFixedPointScalesAndTheEdgeOfChaos) {
  const Result r = cli({"theory", "--activation", "tanh", "--bias-var", "0.05"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s :
       {"fixed point q*", "chi1", "xi_c", "xi_q", "c*", "edge of chaos", "sw2 keeping"}) {
    EXPECT_TRUE(contains(r.out, s)) << s;
  }
}

TEST(CliTheory, JsonForReluAtHeIsCriticalWithSw2Two) {
  const Result r =
      cli({"theory", "--activation", "relu", "--weight-var", "2", "--bias-var", "0", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["phase"], "critical");
  EXPECT_NEAR(j["critical"]["sw2"].get<double>(), 2.0, 1e-9);  // bisected to 1e-13 relative
  EXPECT_NEAR(j["second_moment_preserving"]["sw2"].get<double>(), 2.0, 1e-12);
}

TEST(CliTheory, GridGivesAPhaseDiagramRowPerBiasVariance) {
  const Result r =
      cli({"theory", "--activation", "tanh", "--grid", "--grid-points", "4", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["grid"].size(), 4u);
  EXPECT_NEAR(j["grid"][0]["critical"]["sw2"].get<double>(), 1.0, 1e-6);  // tanh at sb2 = 0
  // The critical line rises with sb2.
  EXPECT_GT(j["grid"][3]["critical"]["sw2"].get<double>(),
            j["grid"][0]["critical"]["sw2"].get<double>());
  const Result text = cli({"theory", "--activation", "tanh", "--grid", "--grid-points", "4"});
  EXPECT_TRUE(contains(text.out, "phase diagram"));
}

TEST(CliTheory, SigmoidSaysPlainlyThatThereIsNoEdgeOfChaos) {
  const Result r = cli({"theory", "--activation", "sigmoid"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "edge of chaos at this sb2  none:")) << r.out;
}

TEST(CliTheory, BadInputIsAUsageError) {
  Result r = cli({"theory", "--activation", "tanhh"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "did you mean \"tanh\"")) << r.err;
  r = cli({"theory", "--activation", "softmax"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "softmax")) << r.err;
  r = cli({"theory", "--activation", "relu", "--weight-var", "-1"});
  EXPECT_EQ(r.code, 2);
  r = cli({"theory"});
  EXPECT_EQ(r.code, 2);
  r = cli({"theory", "--activation", "relu", "--activation-param", "0.1"});
  EXPECT_EQ(r.code, 2);
}

// ---- The diagnosis on the command line

// A 12-layer sigmoid stack: the saturating hidden activation is the root cause (an error, with
// the vanishing gradient folded under it) and a plain deep stack a warning; small enough to run
// in a blink.
const std::vector<std::string> kSigmoid = {"--depth", "12",           "--width",      "32",
                                           "--batch", "16",           "--activation", "sigmoid",
                                           "--init",  "xavier_normal"};

TEST(Cli, FailOnASeverityExitsThreeWithOneLinePerFindingAndStillWritesTheReports) {
  TempDir dir;
  const Result r =
      cli(args({"run", "-q", "--out", dir.path().string(), "--fail-on", "error"}, kSigmoid));
  EXPECT_EQ(r.code, 3) << r.err;
  // A severity counts root causes, as the verdict does: the consequences are not separate alarms.
  EXPECT_TRUE(contains(r.err, "gradscope: error saturating_hidden_activation at layer ")) << r.err;
  EXPECT_TRUE(contains(r.err, "1 finding listed in --fail-on")) << r.err;
  EXPECT_FALSE(contains(r.err, "plain_deep_stack")) << r.err;     // a warning, not listed
  EXPECT_FALSE(contains(r.err, "vanishing_gradients")) << r.err;  // a consequence
  // A code matches a consequence all the same, and says whose it is.
  const Result by_code = cli(args(
      {"run", "-q", "--out", dir.path().string(), "--fail-on", "vanishing_gradients"}, kSigmoid));
  EXPECT_EQ(by_code.code, 3) << by_code.err;
  EXPECT_TRUE(contains(by_code.err, "(a consequence of saturating_hidden_activation)"))
      << by_code.err;
  EXPECT_TRUE(fs::exists(dir.path() / "default.json"));
  EXPECT_TRUE(fs::exists(dir.path() / "default.txt"));
}

TEST(Cli, FailOnWarningIncludesErrorsAndCodesMatchExactly) {
  TempDir dir;
  const Result w =
      cli(args({"run", "-q", "--out", dir.path().string(), "--fail-on", "warning"}, kSigmoid));
  EXPECT_EQ(w.code, 3);
  EXPECT_TRUE(contains(w.err, "saturating_hidden_activation"));  // the error's root
  EXPECT_TRUE(contains(w.err, "plain_deep_stack"));
  const Result code = cli(args(
      {"run", "-q", "--out", dir.path().string(), "--fail-on", "dead_units,exploding_gradients"},
      kSigmoid));
  EXPECT_EQ(code.code, 0) << code.err;
  EXPECT_TRUE(code.err.empty()) << code.err;
  const Result healthy = cli(args({"run", "-q", "--out", dir.path().string(), "--fail-on",
                                   "warning", "--activation", "relu", "--init", "he_normal"},
                                  {"--depth", "4", "--width", "32", "--batch", "16"}));
  EXPECT_EQ(healthy.code, 0) << healthy.err;
}

TEST(Cli, FailOnRejectsAnUnknownCodeBeforeRunning) {
  TempDir dir;
  const Result r =
      cli(args({"run", "--out", dir.path().string(), "--fail-on", "vanishing_gradient"}, kSigmoid));
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--fail-on: unknown severity or finding code \"vanishing_gradient\""))
      << r.err;
  EXPECT_TRUE(contains(r.err, "did you mean \"vanishing_gradients\"?")) << r.err;
  EXPECT_FALSE(fs::exists(dir.path() / "default.json"));
}

TEST(Cli, FormatMdWritesAndPrintsTheMarkdownReportDeterministically) {
  TempDir dir;
  const Result a = cli(args({"run", "--out", dir.path().string(), "--format", "md"}, kSigmoid));
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_TRUE(fs::exists(dir.path() / "default.md"));
  EXPECT_EQ(read(dir.path() / "default.md"), a.out);
  EXPECT_TRUE(contains(a.out, "vanishing_gradients"));
  EXPECT_TRUE(contains(a.out, "<details>"));
  const Result b = cli(
      args({"run", "--out", dir.path().string(), "--format", "md", "--threads", "1"}, kSigmoid));
  EXPECT_EQ(a.out, b.out);
  // Without --format md no Markdown file appears.
  TempDir other;
  ASSERT_EQ(cli(args({"run", "-q", "--out", other.path().string()}, kSigmoid)).code, 0);
  EXPECT_FALSE(fs::exists(other.path() / "default.md"));
}

TEST(Cli, JsonCarriesTheFindingsAndTheVerdict) {
  TempDir dir;
  const Result r = cli(args({"run", "--out", dir.path().string(), "--format", "json"}, kSigmoid));
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["summary"]["verdict"], "error");
  std::set<std::string> found;
  for (const auto& f : j["findings"]) found.insert(f["code"].get<std::string>());
  EXPECT_TRUE(found.count("vanishing_gradients"));
  EXPECT_TRUE(found.count("saturating_hidden_activation"));
}

TEST(Cli, CheckAdviceReportsTheEffectOfEachAdvice) {
  TempDir dir;
  const Result r = cli(
      args({"run", "--out", dir.path().string(), "--format", "json", "--check-advice"}, kSigmoid));
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  int checked = 0;
  for (const auto& f : j["findings"]) {
    for (const auto& a : f["advice"]) {
      ASSERT_TRUE(a.contains("check")) << a.dump();
      EXPECT_TRUE(a["check"]["helped"].get<bool>());
      ++checked;
    }
    for (const auto& a : f["rejected_advice"]) EXPECT_FALSE(a["check"]["helped"].get<bool>());
  }
  EXPECT_GT(checked, 0);
}

TEST(Cli, ThresholdFlagSetsTheDiagnosisSection) {
  TempDir dir;
  const Result r = cli(args({"run", "-q", "--out", dir.path().string(), "--fail-on",
                             "plain_deep_stack", "--threshold", "deep_layers=20"},
                            kSigmoid));
  EXPECT_EQ(r.code, 0) << r.err;  // 12 layers are no longer deep
  const Result bad =
      cli(args({"run", "--out", dir.path().string(), "--threshold", "dead_fraction=2"}, kSigmoid));
  EXPECT_EQ(bad.code, 2);
  EXPECT_TRUE(contains(bad.err, "--threshold dead_fraction")) << bad.err;
  EXPECT_TRUE(contains(bad.err, "diagnosis.dead_fraction")) << bad.err;
  const Result malformed =
      cli(args({"run", "--out", dir.path().string(), "--threshold", "dead_fraction"}, kSigmoid));
  EXPECT_EQ(malformed.code, 2);
  EXPECT_TRUE(contains(malformed.err, "expected KEY=VALUE")) << malformed.err;
}

TEST(Cli, ListNamesEveryFindingCode) {
  const Result r = cli({"list"});
  ASSERT_EQ(r.code, 0);
  for (const char* code : {"vanishing_gradients", "correlation_collapse", "fp16_gradient_underflow",
                           "sigmoid_output_multiclass", "plain_deep_stack"}) {
    EXPECT_TRUE(contains(r.out, code)) << code;
  }
}

TEST(Cli, HelpDocumentsExitCodeThree) {
  const Result r = cli({"run", "--help"});
  EXPECT_TRUE(contains(r.out, "3 a finding listed in --fail-on")) << r.out;
}

// ---- Sweeps, comparisons, HTML, lessons on the command line

TEST(Cli, SweepWritesItsDirectoryAndPrintsTheTable) {
  TempDir dir;
  const Result r =
      cli({"sweep", "--out", dir.path().string(), "--vary", "activation=tanh,relu", "--vary",
           "depth=2,4", "--set", "stack.width=16", "--set", "input.batch=8", "--name", "s"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;  // no progress bar off a terminal
  EXPECT_TRUE(contains(r.out, "activation=relu depth=4"));
  for (const char* f : {"sweep.json", "sweep.txt", "sweep.md", "sweep.html", "gradients.svg",
                        "runs/p0003-s0.json"}) {
    EXPECT_TRUE(fs::exists(dir.path() / "s" / f)) << f;
  }
  // A second sweep into the same directory must say --resume.
  const Result again = cli({"sweep", "--out", dir.path().string(), "--vary", "depth=2", "--set",
                            "stack.width=16", "--name", "s"});
  EXPECT_EQ(again.code, 2);
  EXPECT_TRUE(contains(again.err, "--resume")) << again.err;
}

TEST(Cli, SweepProgressBarOnlyOnATerminal) {
  TempDir dir;
  CliEnvironment env;
  env.stderr_is_terminal = true;
  const Result r = cli({"sweep", "-q", "--out", dir.path().string(), "--vary", "depth=2,3", "--set",
                        "stack.width=8", "--set", "input.batch=4"},
                       env);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "[########################]    2/2")) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(Cli, SweepRejectsABadAxis) {
  const Result r = cli({"sweep", "--vary", "residual=maybe"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--vary residual: unknown value \"maybe\"")) << r.err;
}

TEST(Cli, ShardedSweepMergesIntoTheUnshardedSweepsFiles) {
  TempDir whole, sharded;
  const std::vector<std::string> sweep = {
      "sweep", "--vary", "activation=tanh,relu", "--vary", "depth=2,3",     "--seeds",
      "2",     "--set",  "stack.width=8",        "--set",  "input.batch=4", "--name",
      "s"};
  const Result full = cli(args(sweep, {"--out", whole.path().string()}));
  ASSERT_EQ(full.code, 0) << full.err;
  for (int i = 0; i < 3; ++i) {
    const Result r = cli(args(sweep, {"--out", sharded.path().string(), "--shard",
                                      std::to_string(i) + "/3", "--jobs", std::to_string(i + 1)}));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "shard " + std::to_string(i) + "/3 done")) << r.out;
    EXPECT_TRUE(contains(r.out, "gradscope merge " + (sharded.path() / "s").string())) << r.out;
  }
  EXPECT_FALSE(fs::exists(sharded.path() / "s" / "sweep.json"));
  const Result merged =
      cli({"merge", (sharded.path() / "s").string(), "--out", sharded.path().string()});
  ASSERT_EQ(merged.code, 0) << merged.err;
  EXPECT_EQ(merged.out, full.out);  // the same table
  for (const char* f : {"sweep.json", "sweep.txt", "sweep.md", "sweep.html", "gradients.svg",
                        "runs/p0000-s0.json", "runs/p0003-s1.json"}) {
    EXPECT_EQ(read(sharded.path() / "s" / f), read(whole.path() / "s" / f)) << f;
  }
  const Result json =
      cli({"merge", "-q", (sharded.path() / "s").string(), "--out", sharded.path().string()});
  EXPECT_EQ(json.code, 0) << json.err;
  EXPECT_TRUE(json.out.empty());
}

TEST(Cli, SweepShardFormatJsonPrintsItsManifest) {
  TempDir dir;
  const Result r =
      cli({"sweep", "--out", dir.path().string(), "--vary", "depth=2,3", "--set", "stack.width=8",
           "--set", "input.batch=4", "--shard", "1/2", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, read(dir.path() / "default-sweep" / "shards" / "1-of-2" / "manifest.json"));
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["kind"], "gradscope_sweep_shard");
  ASSERT_EQ(j["runs"].size(), 1u);
  EXPECT_EQ(j["runs"][0]["file"], "runs/p0001-s0.json");
}

TEST(Cli, BadShardValuesExitTwoAndSayWhatToWrite) {
  TempDir dir;
  for (const char* bad : {"3/3", "x/2", "0/0", "-1/2", "1/", "2"}) {
    const Result r =
        cli({"sweep", "--out", dir.path().string(), "--vary", "depth=2,3", "--shard", bad});
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_TRUE(contains(r.err, std::string("--shard ") + bad)) << r.err;
    EXPECT_TRUE(contains(r.err, "hint:")) << r.err;
  }
  EXPECT_TRUE(contains(cli({"sweep", "--vary", "depth=2", "--shard", "3/3"}).err,
                       "I must be below N (the shards of 3 are 0 to 2)"));
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(Cli, MergeErrorsExitTwoWithTheRepairCommand) {
  TempDir dir;
  ASSERT_EQ(cli({"sweep", "-q", "--out", dir.path().string(), "--vary", "depth=2,3", "--set",
                 "stack.width=8", "--set", "input.batch=4", "--shard", "0/2"})
                .code,
            0);
  const Result r = cli({"merge", (dir.path() / "default-sweep").string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "shard 1 of 2 missing")) << r.err;
  EXPECT_TRUE(contains(r.err, "--shard 1/2 --resume")) << r.err;
  const Result none = cli({"merge"});
  EXPECT_EQ(none.code, 2);
}

TEST(Cli, MergeAndShardHaveHelp) {
  const Result merge = cli({"merge", "--help"});
  EXPECT_EQ(merge.code, 0);
  EXPECT_TRUE(contains(merge.out, "Exit codes")) << merge.out;
  EXPECT_TRUE(contains(merge.out, "OUT/NAME/shards/I-of-N")) << merge.out;
  const Result sweep = cli({"sweep", "--help"});
  EXPECT_TRUE(contains(sweep.out, "--shard")) << sweep.out;
  EXPECT_TRUE(contains(sweep.out, "$SLURM_ARRAY_TASK_ID")) << sweep.out;
}

TEST(Cli, CompareOfAReportWithItselfIsNoChangeAndTheReverseOfAFixIsARegression) {
  TempDir dir;
  TempDir runs;
  ASSERT_EQ(cli(args({"run", "-q", "--out", runs.path().string(), "--name", "bad"}, kSigmoid)).code,
            0);
  ASSERT_EQ(cli(args({"run", "-q", "--out", runs.path().string(), "--name", "good", "--activation",
                      "relu", "--init", "he_normal"},
                     {"--depth", "4", "--width", "32", "--batch", "16"}))
                .code,
            0);
  const std::string bad = (runs.path() / "bad.json").string();
  const std::string good = (runs.path() / "good.json").string();
  const Result same = cli({"compare", "--out", dir.path().string(), bad, bad});
  ASSERT_EQ(same.code, 0) << same.err;
  EXPECT_TRUE(contains(same.out, "no change")) << same.out;
  EXPECT_TRUE(fs::exists(dir.path() / "compare-bad-vs-bad.md"));
  const Result fixed =
      cli({"compare", "--out", dir.path().string(), "--fail-on-regression", bad, good});
  EXPECT_EQ(fixed.code, 0) << fixed.err;
  const Result broke = cli({"compare", "--out", dir.path().string(), "--fail-on-regression",
                            "--format", "html", good, bad});
  EXPECT_EQ(broke.code, 3);
  EXPECT_TRUE(contains(broke.err, "gradscope: regression: ")) << broke.err;
  EXPECT_TRUE(fs::exists(dir.path() / "compare-good-vs-bad.html"));
  const Result missing = cli({"compare", bad, (runs.path() / "nope.json").string()});
  EXPECT_EQ(missing.code, 2);
  EXPECT_TRUE(contains(missing.err, "nope.json: no such file")) << missing.err;
}

TEST(Cli, FormatHtmlWritesOneSelfContainedPage) {
  TempDir dir;
  const Result r = cli(args({"run", "--out", dir.path().string(), "--format", "html"}, kSigmoid));
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(fs::exists(dir.path() / "default.html"));
  EXPECT_EQ(read(dir.path() / "default.html"), r.out);
  EXPECT_TRUE(contains(r.out, "<svg"));
  EXPECT_FALSE(contains(r.out, "<script"));
}

TEST(Cli, TheoryGridWritesThePhaseDiagram) {
  TempDir dir;
  const fs::path svg = dir.path() / "phase.svg";
  const Result r = cli({"theory", "--activation", "tanh", "--grid", "--svg", svg.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(read(svg), "edge of chaos"));
  const Result no_grid = cli({"theory", "--activation", "tanh", "--svg", svg.string()});
  EXPECT_EQ(no_grid.code, 2);
  EXPECT_TRUE(contains(no_grid.err, "--svg needs --grid"));
}

TEST(Cli, LessonWritesTheLearnersPage) {
  TempDir dir;
  const Result r = cli({"lesson", "why-sigmoid-fails", "--out", dir.path().string(), "--configs",
                        std::string(GRADSCOPE_SOURCE_DIR) + "/configs/lessons/why-sigmoid-fails"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* f : {"why-sigmoid-fails.html", "why-sigmoid-fails.md",
                        "why-sigmoid-fails-gradients.svg", "why-sigmoid-fails-units.svg"}) {
    EXPECT_TRUE(fs::exists(dir.path() / f)) << f;
  }
  const Result unknown = cli({"lesson", "why-relu-wins"});
  EXPECT_EQ(unknown.code, 2);
}

// ---- Real models' data

TEST(Cli, SavedWeightsAndInputLoadBackIntoTheSameReport) {
  TempDir dir;
  const std::string saved = (dir.path() / "run.safetensors").string();
  ASSERT_EQ(
      cli(args({"run", "-q", "--out", dir.path().string(), "--name", "a", "--save-weights", saved},
               kSigmoid))
          .code,
      0);
  const Result b = cli(args({"run", "-q", "--name", "a", "--weights", saved, "--input", saved,
                             "--out", (dir.path() / "b").string()},
                            kSigmoid));
  ASSERT_EQ(b.code, 0) << b.err;
  const auto ja = nlohmann::json::parse(read(dir.path() / "a.json"));
  const auto jb = nlohmann::json::parse(read(dir.path() / "b" / "a.json"));
  EXPECT_EQ(ja["layers"], jb["layers"]);
  EXPECT_EQ(ja["summary"], jb["summary"]);
  EXPECT_FALSE(ja.contains("sources"));
  ASSERT_TRUE(jb.contains("sources"));
  EXPECT_EQ(jb["sources"]["assignments"].size(), 24u);  // 12 weights and 12 biases
  EXPECT_EQ(jb["sources"]["assignments"][0]["tensor"], "ops.0.weight");
}

TEST(Cli, AHostileWeightsFileIsAnErrorNamingItAndWritesNoReport) {
  TempDir dir;
  const fs::path bad = dir.path() / "bad.safetensors";
  // A header length far beyond the file.
  std::ofstream(bad, std::ios::binary) << std::string("\xff\xff\xff\xff\xff\xff\xff\x0f{}", 10);
  const Result r =
      cli(args({"run", "--out", dir.path().string(), "--weights", bad.string()}, kSigmoid));
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, bad.string())) << r.err;
  EXPECT_FALSE(fs::exists(dir.path() / "default.json"));
  const Result wrong_type = cli(args({"run", "--input", "x.parquet"}, kSigmoid));
  EXPECT_EQ(wrong_type.code, 2);
  EXPECT_TRUE(contains(wrong_type.err, "unknown file type \".parquet\"")) << wrong_type.err;
}

TEST(Cli, AnOnnxModelRunsWithItsOwnArchitectureAndWeights) {
  TempDir dir;
  const std::string corpus = std::string(GRADSCOPE_SOURCE_DIR) + "/tests/corpus/onnx/";
  const Result r = cli({"run", "--out", dir.path().string(), "--format", "json", "--batch", "32",
                        corpus + "residual_mlp.onnx"});
  if (contains(r.err, "built without ONNX support")) GTEST_SKIP() << r.err;
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["config"]["name"], "residual_mlp");
  EXPECT_EQ(j["config"]["input"]["batch"], 32);
  EXPECT_EQ(j["sources"]["weights_file"], corpus + "residual_mlp.onnx");
  EXPECT_FALSE(j["sources"]["assignments"].empty());
  const Result bad = cli({"run", "--out", dir.path().string(), corpus + "unsupported_op.onnx"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_TRUE(contains(bad.err, "unsupported_op.onnx")) << bad.err;
  // The loss is checked against the model's output, not the built-in default network's.
  const int outputs = j["layers"].back()["width"].get<int>();
  const Result ce = cli({"run", "-q", corpus + "residual_mlp.onnx", "--out", dir.path().string(),
                         "--set", "loss=softmax_cross_entropy"});
  if (outputs >= 2) {
    EXPECT_EQ(ce.code, 0) << ce.err;
  } else {
    EXPECT_EQ(ce.code, 2) << ce.err;
  }
  const Result weights = cli({"run", corpus + "residual_mlp.onnx", "--weights", "w.safetensors"});
  EXPECT_EQ(weights.code, 2);
}

}  // namespace
}  // namespace gradscope

namespace gradscope {
namespace {

// ---- --memory-budget

nlohmann::json without_plan(nlohmann::json j) {
  j["network"]["memory"].erase("plan");
  return j;
}

TEST(CliMemoryBudget, ATightBudgetPicksALeanPlanAndTheSameNumbers) {
  TempDir roomy, tight;
  const std::vector<std::string> job = {"run", "--depth",   "60", "--width",
                                        "256", "--batch",   "32", "--input-width",
                                        "256", "--threads", "2",  "--quiet"};
  std::vector<std::string> a = job, b = job;
  a.insert(a.end(), {"--out", roomy.path().string()});
  // All in memory needs ~17 MiB of weights; 72 MiB leaves ~7 MiB for data after the 64 MiB of
  // process overhead the planner reserves.
  b.insert(b.end(), {"--out", tight.path().string(), "--memory-budget", "72MiB"});
  ASSERT_EQ(cli(a).code, 0);
  const Result r = cli(b);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto all = nlohmann::json::parse(read(roomy.path() / "default.json"));
  const auto lean = nlohmann::json::parse(read(tight.path() / "default.json"));
  EXPECT_EQ(all["network"]["memory"]["plan"]["weights"], "kept");
  EXPECT_EQ(lean["network"]["memory"]["plan"]["weights"], "regenerated");
  EXPECT_LT(lean["network"]["memory"]["plan"]["expected_peak_bytes"].get<double>(),
            all["network"]["memory"]["plan"]["expected_peak_bytes"].get<double>());
  EXPECT_EQ(without_plan(lean).dump(), without_plan(all).dump());
  EXPECT_TRUE(contains(read(tight.path() / "default.txt"), "memory plan"));
}

TEST(CliMemoryBudget, ABudgetNoPlanFitsIsRefusedBeforeAnyReport) {
  TempDir dir;
  const Result r = cli({"run", "--depth", "60", "--width", "256", "--memory-budget", "65M", "--out",
                        dir.path().string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "leanest plan")) << r.err;
  EXPECT_TRUE(contains(r.err, "65.0 MiB")) << r.err;
  EXPECT_FALSE(fs::exists(dir.path() / "default.json"));
}

TEST(CliMemoryBudget, NotASizeSaysWhatToWrite) {
  for (const char* bad : {"lots", "4 GiB", "-1G", "0"}) {
    const Result r = cli({"run", "--depth", "3", "--memory-budget", bad});
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_TRUE(contains(r.err, "--memory-budget")) << r.err;
    EXPECT_TRUE(contains(r.err, "4GiB")) << r.err;
  }
}

// ---- Output checked before the run, and written all or nothing

// Every entry of `dir`, names only: no temporary or backup file may be left among them.
std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

TEST(CliOutput, AFileWhereTheOutDirectoryMustBeIsRefusedBeforeTheRun) {
  TempDir dir;
  const fs::path file = dir.write("plain-file", "x");
  // The run itself would be refused for memory: the output is checked first, before any work.
  const Result r =
      cli(args({"run", "--out", (file / "reports").string(), "--memory-budget", "1M"}, kSmall));
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "cannot write " + (file / "reports" / "default.json").string()))
      << r.err;
  EXPECT_TRUE(contains(r.err, "is not a directory")) << r.err;
  EXPECT_FALSE(contains(r.err, "memory")) << r.err;
  EXPECT_EQ(entries(dir.path()), std::set<std::string>{"plain-file"});
}

TEST(CliOutput, AnUnwritableOutIsRefusedBeforeTheRunAndLeavesNothing) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes anywhere; run the tests as a user for this";
  TempDir dir;
  const fs::path locked = dir.path() / "locked";
  fs::create_directories(locked);
  fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);
  const Result r =
      cli(args({"run", "--out", (locked / "sub").string(), "--memory-budget", "1M"}, kSmall));
  fs::permissions(locked, fs::perms::owner_all);
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "Permission denied")) << r.err;
  EXPECT_FALSE(contains(r.err, "memory")) << r.err;
  EXPECT_TRUE(entries(locked).empty());
}

// The same check where even root cannot create a file: /proc (so it runs in CI, which is root).
// The 1M budget would refuse the run itself: the output must be refused first.
TEST(CliOutput, AnOutNoOneCanCreateIsRefusedBeforeTheRunEvenForRoot) {
  if (!fs::is_directory("/proc/self")) GTEST_SKIP() << "no /proc on this machine";
  const Result r =
      cli(args({"run", "--out", "/proc/gradscope-test/out", "--memory-budget", "1M"}, kSmall));
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "cannot write /proc/gradscope-test/out/")) << r.err;
  EXPECT_FALSE(contains(r.err, "memory")) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(CliOutput, ADirectoryInPlaceOfOneReportWritesNoneOfThem) {
  TempDir dir;
  fs::create_directories(dir.path() / "default.txt");
  const Result r = cli(args({"run", "-q", "--out", dir.path().string()}, kSmall));
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "default.txt: a directory of that name is in the way")) << r.err;
  // The hint says what to do about that directory, not about permissions.
  EXPECT_TRUE(contains(r.err, "hint: move or remove")) << r.err;
  EXPECT_EQ(entries(dir.path()), std::set<std::string>{"default.txt"});
}

TEST(CliOutput, AnOutThatIsAFileIsRefusedWithAHintAboutOut) {
  TempDir dir;
  const fs::path file = dir.write("not-a-folder", "x");
  const Result r = cli(args({"run", "-q", "--out", file.string()}, kSmall));
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "not-a-folder is not a directory")) << r.err;
  EXPECT_TRUE(contains(r.err, "hint: --out names a directory")) << r.err;
}

TEST(CliOutput, WritingASetIsAllOrNothingAndKeepsThePreviousFiles) {
  TempDir dir;
  const fs::path old_file = dir.write("a.json", "previous");
  fs::create_directories(dir.path() / "b.txt");
  try {
    write_files_atomically({{old_file, "new"},
                            {dir.path() / "new-dir" / "c.md", "new"},
                            {dir.path() / "b.txt", "new"}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_TRUE(contains(e.what(), "b.txt: a directory of that name is in the way")) << e.what();
    EXPECT_TRUE(contains(e.what(), "none of the 3 files was written")) << e.what();
  }
  EXPECT_EQ(read(old_file), "previous");
  // The directory made for c.md goes again with it.
  EXPECT_EQ(entries(dir.path()), (std::set<std::string>{"a.json", "b.txt"}));
  // A successful set replaces the previous file and leaves no temporary or backup file.
  write_files_atomically({{old_file, "new"}, {dir.path() / "d.md", "new"}});
  EXPECT_EQ(read(old_file), "new");
  EXPECT_EQ(entries(dir.path()), (std::set<std::string>{"a.json", "b.txt", "d.md"}));
}

TEST(CliOutput, CheckingWritabilityLeavesNothingBehind) {
  TempDir dir;
  EXPECT_NO_THROW(check_writable({dir.path() / "x" / "y" / "r.json", dir.path() / "r.txt"}));
  EXPECT_TRUE(entries(dir.path()).empty());
  fs::create_directories(dir.path() / "r.txt");
  EXPECT_THROW(check_writable({dir.path() / "r.txt"}), Error);
}

// Sets or clears the immutable attribute (which even root cannot replace a file through); false
// where the file system or the user's privileges do not allow it.
bool set_immutable(const fs::path& p, bool on) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) return false;
  int flags = 0;
  bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  if (ok) {
    flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    ok = ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
  }
  ::close(fd);
  return ok;
}

TEST(CliOutput, AWriteThatFailsAtTheEndPrintsTheReportAndKeepsThePreviousFiles) {
  TempDir dir;
  const fs::path json = dir.write("default.json", "previous json");
  const fs::path text = dir.write("default.txt", "previous text");
  // The directory is writable, so the check before the run passes; replacing default.txt then
  // fails, after default.json was already replaced.
  if (!set_immutable(text, true)) GTEST_SKIP() << "no immutable files here (needs root on ext4)";
  const Result r = cli(args({"run", "-q", "--out", dir.path().string()}, kSmall));
  set_immutable(text, false);
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "cannot write " + text.string())) << r.err;
  EXPECT_TRUE(contains(r.err, "none of the 2 files was written")) << r.err;
  EXPECT_TRUE(contains(r.err, "printed on stdout")) << r.err;
  // The report is on stdout, -q or not, and both previous files are as they were.
  EXPECT_TRUE(contains(r.out, "Verdict")) << r.out;
  EXPECT_EQ(read(json), "previous json");
  EXPECT_EQ(read(text), "previous text");
  EXPECT_EQ(entries(dir.path()), (std::set<std::string>{"default.json", "default.txt"}));
}

TEST(CliOutput, ASweepIntoAnUnwritableDirectoryRunsNothing) {
  TempDir dir;
  const fs::path file = dir.write("plain-file", "x");
  const Result r = cli({"sweep", "--vary", "depth=2,3", "--set", "stack.width=8", "--set",
                        "input.batch=4", "-q", "--out", (file / "out").string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "is not a directory")) << r.err;
  EXPECT_EQ(entries(dir.path()), std::set<std::string>{"plain-file"});
}

// ---- What stdout carries for md and html, and the charts alone

TEST(CliFormat, HtmlOnATerminalPrintsTheTextReportAndThePagesName) {
  TempDir dir;
  CliEnvironment terminal;
  terminal.stdout_is_terminal = true;
  terminal.no_color = true;
  const Result r =
      cli(args({"run", "--out", dir.path().string(), "--format", "html"}, kSigmoid), terminal);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(contains(r.out, "<html")) << r.out.substr(0, 200);
  EXPECT_TRUE(contains(r.out, read(dir.path() / "default.txt")));
  EXPECT_TRUE(contains(r.out, "wrote " + (dir.path() / "default.html").string() + "\n"));
  EXPECT_TRUE(contains(read(dir.path() / "default.html"), "<svg"));
  // Markdown likewise; piped, stdout carries the Markdown itself (FormatMdWrites... above).
  const Result md =
      cli(args({"run", "--out", dir.path().string(), "--format", "md"}, kSigmoid), terminal);
  ASSERT_EQ(md.code, 0) << md.err;
  EXPECT_FALSE(contains(md.out, "<details>"));
  EXPECT_TRUE(contains(md.out, "wrote " + (dir.path() / "default.md").string() + "\n"));
}

TEST(CliFormat, CompareHtmlOnATerminalPrintsTheTextAndThePagesName) {
  TempDir runs, dir;
  ASSERT_EQ(cli(args({"run", "-q", "--name", "a", "--out", runs.path().string()}, kSmall)).code, 0);
  CliEnvironment terminal;
  terminal.stdout_is_terminal = true;
  const std::string a = (runs.path() / "a.json").string();
  const Result r =
      cli({"compare", "--out", dir.path().string(), "--format", "html", a, a}, terminal);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(contains(r.out, "<html"));
  EXPECT_TRUE(contains(r.out, "wrote " + (dir.path() / "compare-a-vs-a.html").string()));
}

TEST(CliSvg, RunSvgWritesThePagesChartsEachOnItsOwn) {
  TempDir dir;
  const Result r =
      cli(args({"run", "-q", "--svg", "--format", "html", "--out", dir.path().string()}, kSigmoid));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string page = read(dir.path() / "default.html");
  for (const char* chart : {"gradients", "activations", "units"}) {
    const fs::path svg = dir.path() / ("default-" + std::string(chart) + ".svg");
    ASSERT_TRUE(fs::exists(svg)) << svg;
    const std::string content = read(svg);
    EXPECT_EQ(content.rfind("<svg", 0), 0u) << chart;
    // The very chart the page embeds.
    EXPECT_TRUE(contains(page, content)) << chart;
  }
  // Without --svg, no chart file.
  TempDir other;
  ASSERT_EQ(cli(args({"run", "-q", "--out", other.path().string()}, kSmall)).code, 0);
  EXPECT_EQ(entries(other.path()), (std::set<std::string>{"default.json", "default.txt"}));
}

// ---- The time estimate, --max-time and the progress bar

// A fixed speed for the estimate: 1 GFLOP/s a thread (no test depends on the machine's speed).
CliEnvironment slow_machine() {
  CliEnvironment env;
  env.product_flops_per_second = 1e9;
  return env;
}

// 50 layers of width 256, batch 256, one thread: about 7 GFLOP, so 12 s at 0.6 GFLOP/s.
const std::vector<std::string> kFiftyLayers = {"--depth", "50",  "--width",   "256",
                                               "--batch", "256", "--threads", "1"};

TEST(CliTime, MaxTimeRefusesBeforeRunningWithTheEstimateInTheMessage) {
  TempDir dir;
  const Result r =
      cli(args({"run", "--out", dir.path().string(), "--max-time", "5s"}, kFiftyLayers),
          slow_machine());
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "run refused: estimated to take about 1")) << r.err;
  EXPECT_TRUE(contains(r.err, "more than --max-time 5s")) << r.err;
  EXPECT_TRUE(contains(r.err, "GFLOP at 1 GFLOP/s a thread, 1 thread")) << r.err;
  EXPECT_TRUE(contains(r.err, "raise --max-time")) << r.err;
  EXPECT_TRUE(r.out.empty());
  EXPECT_TRUE(entries(dir.path()).empty());
}

TEST(CliTime, ALongRunIsAnnouncedAndItsReportIsTheSameBytes) {
  TempDir plain, timed;
  ASSERT_EQ(cli(args({"run", "-q", "--out", plain.path().string()}, kFiftyLayers)).code, 0);
  CliEnvironment env = slow_machine();
  env.stderr_is_terminal = true;  // a progress bar too, which must not reach the report
  const Result r =
      cli(args({"run", "--out", timed.path().string(), "--max-time", "1h"}, kFiftyLayers), env);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "gradscope: estimated time: about 1")) << r.err;
  EXPECT_EQ(read(timed.path() / "default.json"), read(plain.path() / "default.json"));
  EXPECT_EQ(read(timed.path() / "default.txt"), read(plain.path() / "default.txt"));
  EXPECT_EQ(r.out, read(plain.path() / "default.txt"));
  // A short run says nothing of time.
  const Result small = cli(args({"run", "-q", "--out", timed.path().string()}, kSmall), env);
  EXPECT_TRUE(small.err.empty()) << small.err;
}

TEST(CliTime, MaxTimeThatIsNotADurationSaysWhatToWrite) {
  for (const char* bad : {"soon", "10 m", "-5s", "0", "5x", "1h30"}) {
    const Result r = cli(args({"run", "--max-time", bad}, kSmall));
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_TRUE(contains(r.err, "--max-time")) << r.err;
    EXPECT_TRUE(contains(r.err, "90s, 10m")) << r.err;
  }
}

TEST(TimeEstimate, DurationsAreReadAndWrittenAsPeopleWriteThem) {
  EXPECT_EQ(parse_duration("90s"), 90.0);
  EXPECT_EQ(parse_duration("10m"), 600.0);
  EXPECT_EQ(parse_duration("10min"), 600.0);
  EXPECT_EQ(parse_duration("1h30m"), 5400.0);
  EXPECT_EQ(parse_duration("1.5h"), 5400.0);
  EXPECT_EQ(parse_duration("2d"), 172800.0);
  EXPECT_EQ(parse_duration("45"), 45.0);
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("h"));
  EXPECT_FALSE(parse_duration("1.2.3s"));
  EXPECT_EQ(format_duration(4.24), "4.2 s");
  EXPECT_EQ(format_duration(38.2), "38 s");
  EXPECT_EQ(format_duration(200), "3 min 20 s");
  EXPECT_EQ(format_duration(600), "10 min");
  EXPECT_EQ(format_duration(5580), "1 h 33 min");
  EXPECT_EQ(format_duration(3 * 86400.0 + 43200), "3.5 days");
}

TEST(TimeEstimate, SecondsAreTheCriticalPathOverTheSustainedSpeed) {
  RunWork work;
  work.products = 5e9;
  work.critical_path = 3e9;
  // 3e9 flop-equivalents at 60% of 1 GFLOP/s.
  EXPECT_DOUBLE_EQ(estimate_seconds(work, 1e9), 3e9 / (kSustainedFraction * 1e9));
}

TEST(Progress, TheRunsBarFollowsTheEstimateAndStopsShortOfTheEnd) {
  EXPECT_EQ(run_progress_line(45, 180), "[######------------------] ~25%  0:45 of about 3:00");
  // Past its estimate the run is not done yet: 99% until it is.
  EXPECT_EQ(run_progress_line(4000, 3600),
            "[#######################-] ~99%  1:06:40 of about 1:00:00");
  EXPECT_EQ(progress_bar(0.5, 4), "##--");
}

TEST(Progress, OnceThePassReportsItsWorkTheBarShowsItAndTheTimeLeftAtItsPace) {
  // A quarter done in 45 s: 2:15 left at that pace, whatever the estimate said.
  EXPECT_EQ(run_progress_line(45, 600, 0.25),
            "[######------------------]  25%  0:45, about 2:15 left");
  // Below 5% the pace says little yet: the estimate gives the time left.
  EXPECT_EQ(run_progress_line(10, 180, 0.01),
            "[------------------------]   1%  0:10, about 2:50 left");
  EXPECT_EQ(run_progress_line(90, 60, 1.0),
            "[########################] 100%  1:30, about 0:00 left");
}

// ---- Usage errors, --loss

TEST(CliUsage, EachSubcommandsUsageErrorPointsToItsOwnHelp) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"sweep"}, "`gradscope sweep --help`"},
      {{"merge", "--bogus"}, "`gradscope merge --help`"},
      {{"lesson"}, "`gradscope lesson --help`"},
      {{"compare", "a.json"}, "`gradscope compare --help`"},
      {{"run", "--bogus"}, "`gradscope run --help`"},
      {{"--bogus"}, "`gradscope --help`"},
  };
  for (const auto& [argv, help] : cases) {
    const Result r = cli(argv);
    EXPECT_EQ(r.code, 2) << argv.front();
    EXPECT_TRUE(contains(r.err, "hint: run " + help + "\n")) << r.err;
  }
}

TEST(CliLoss, LossIsANamedFlagLikePrecisionAndSeed) {
  const Result help = cli({"run", "--help"});
  ASSERT_EQ(help.code, 0);
  EXPECT_TRUE(contains(help.out, "--loss")) << help.out;
  EXPECT_TRUE(contains(help.out, "[config: loss]")) << help.out;
  TempDir flag, set;
  ASSERT_EQ(cli(args({"run", "-q", "--loss", "mse", "--out", flag.path().string()}, kSmall)).code,
            0);
  ASSERT_EQ(
      cli(args({"run", "-q", "--set", "loss=mse", "--out", set.path().string()}, kSmall)).code, 0);
  const std::string report = read(flag.path() / "default.json");
  EXPECT_EQ(nlohmann::json::parse(report)["config"]["loss"], "mse");
  EXPECT_EQ(report, read(set.path() / "default.json"));
  const Result bad = cli(args({"run", "--loss", "msee"}, kSmall));
  EXPECT_EQ(bad.code, 2);
  EXPECT_TRUE(contains(bad.err, "--loss")) << bad.err;
}

// ---- Faults: the executable itself, interrupted while it writes, killed, or run twice at once

extern "C" char** environ;

// Every file under `dir` (relative path -> content), hidden ones included.
std::map<std::string, std::string> all_files(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).generic_string()] = read(e.path());
  }
  return files;
}

// The names whose content differs between two trees, or that only one has (the contents are
// megabytes: a failure names the files rather than printing them).
std::vector<std::string> differences(const std::map<std::string, std::string>& a,
                                     const std::map<std::string, std::string>& b) {
  std::vector<std::string> names;
  for (const auto& [name, content] : a) {
    const auto it = b.find(name);
    if (it == b.end() || it->second != content) names.push_back(name);
  }
  for (const auto& [name, content] : b) {
    if (a.count(name) == 0) names.push_back(name);
  }
  return names;
}

// The names under `dir` that are temporary files or a lock.
std::vector<std::string> leftovers(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (contains(name, ".tmp.") || contains(name, ".old.") || name == kOutputLockFile) {
      found.push_back(fs::relative(e.path(), dir).string());
    }
  }
  return found;
}

// Starts the gradscope executable with `arguments`, stdout and stderr to files in `logs`, and
// the signals at their default action whatever this test's were (a shell's background job ignores
// SIGINT).
pid_t spawn_gradscope(const std::vector<std::string>& arguments, const fs::path& logs) {
  std::vector<std::string> words{GRADSCOPE_EXE};
  words.insert(words.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  const std::string out = (logs / "stdout").string(), err = (logs / "stderr").string();
  posix_spawn_file_actions_addopen(&files, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&files, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults, none;
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&defaults, sig);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &files, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("cannot start " + words[0]);
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// Watches a directory for new files, to stop a writer at the moment it creates one: no sleep and
// no guessed delay, so the state a test then checks is the state the writer was stopped in.
class CreationWatch {
 public:
  explicit CreationWatch(const fs::path& dir) : dir_(dir) {
    fd_ = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd_ < 0 || ::inotify_add_watch(fd_, dir.c_str(), IN_CREATE) < 0) {
      throw std::runtime_error("inotify on " + dir.string());
    }
  }
  ~CreationWatch() { ::close(fd_); }
  CreationWatch(const CreationWatch&) = delete;
  CreationWatch& operator=(const CreationWatch&) = delete;

  // Stops `pid` (SIGSTOP) when a file whose name contains `part` appears, and returns its path
  // if the stopped process has it still (created, not yet renamed or removed); otherwise lets the
  // process go on (SIGCONT) and waits for the next one. Nothing once the process has ended (its
  // wait status in `ended`).
  std::optional<fs::path> stop_while_present(pid_t pid, const std::string& part, int& ended) {
    alignas(inotify_event) char buf[64 * 1024];
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) {
        if (::waitpid(pid, &ended, WNOHANG) == pid) return std::nullopt;
        continue;
      }
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      for (ssize_t at = 0; at < n;) {
        const auto* event = reinterpret_cast<const inotify_event*>(buf + at);
        at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        if (event->len == 0 || !contains(event->name, part)) continue;
        ::kill(pid, SIGSTOP);
        int status = 0;
        if (::waitpid(pid, &status, WUNTRACED) != pid || !WIFSTOPPED(status)) {
          ended = status;
          return std::nullopt;
        }
        const fs::path file = dir_ / event->name;
        if (fs::exists(file)) return file;
        ::kill(pid, SIGCONT);
      }
    }
  }

 private:
  fs::path dir_;
  int fd_ = -1;
};

// A run whose JSON report is large (about 9 MB: a deep network one unit wide), so that writing it
// takes a while.
std::vector<std::string> deep_run(const fs::path& out, const std::string& seed) {
  return {"run",     "--depth", "3000",   "--width", "1",     "--input-width", "1",
          "--batch", "1",       "--seed", seed,      "--out", out.string(),    "-q"};
}

TEST(CliFaults, AnInterruptWhileReportsAreWrittenLeavesThePreviousOnesAndNoTemporaryFile) {
  for (const int sig : {SIGINT, SIGTERM}) {
    TempDir dir, logs;
    const fs::path out = dir.path() / "out";
    ASSERT_EQ(cli(deep_run(out, "1")).code, 0);
    const std::map<std::string, std::string> previous = all_files(out);
    ASSERT_EQ(previous.size(), 2u);
    bool caught = false;
    // The writer is stopped as it creates the JSON's temporary file; if it renamed the file
    // before it stopped (a fast disk), the try is repeated.
    for (int attempt = 0; attempt < 20 && !caught; ++attempt) {
      CreationWatch watch(out);
      const pid_t pid = spawn_gradscope(deep_run(out, "2"), logs.path());
      int status = 0;
      const std::optional<fs::path> temp =
          watch.stop_while_present(pid, ".default.json.tmp.", status);
      if (!temp) {
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read(logs.path() / "stderr");
        for (const auto& [name, content] : previous) {
          std::ofstream(out / name, std::ios::binary) << content;
        }
        continue;
      }
      caught = true;
      EXPECT_TRUE(contains(temp->filename().string(),
                           ".default.json.tmp." + temp_host_name() + "." + std::to_string(pid)))
          << *temp;
      ::kill(pid, sig);
      ::kill(pid, SIGCONT);
      status = wait_for(pid);
      // Ended by the signal itself: a shell reports 128 + N (130 for SIGINT).
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << status;
      // The previous reports, and nothing else.
      EXPECT_EQ(differences(all_files(out), previous), std::vector<std::string>{});
      EXPECT_EQ(entries(out), (std::set<std::string>{"default.json", "default.txt"}));
    }
    EXPECT_TRUE(caught) << "never stopped the writer while it wrote";
  }
}

// 3 runs of a deep network one unit wide: each report a few MB.
std::vector<std::string> deep_sweep(const fs::path& out) {
  return {"sweep",
          "--vary",
          "stack.depth=1500,1600,1700",
          "--set",
          "stack.width=1",
          "--set",
          "input.width=1",
          "--set",
          "input.batch=1",
          "--jobs",
          "2",
          "--name",
          "deep",
          "--out",
          out.string(),
          "-q"};
}

TEST(CliFaults, ASweepKilledWhileItWritesResumesIntoTheUninterruptedSweepsFolder) {
  TempDir whole, logs;
  ASSERT_EQ(cli(deep_sweep(whole.path())).code, 0);
  bool caught = false;
  for (int attempt = 0; attempt < 20 && !caught; ++attempt) {
    TempDir broken;
    const fs::path runs = broken.path() / "deep" / "runs";
    fs::create_directories(runs);
    CreationWatch watch(runs);
    const pid_t pid = spawn_gradscope(deep_sweep(broken.path()), logs.path());
    int status = 0;
    const std::optional<fs::path> temp = watch.stop_while_present(pid, ".json.tmp.", status);
    if (!temp) continue;
    caught = true;
    ::kill(pid, SIGKILL);
    status = wait_for(pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
    // What kill -9 leaves: a half-written run and the lock of a process that is gone.
    ASSERT_TRUE(fs::exists(*temp));
    ASSERT_TRUE(fs::exists(broken.path() / "deep" / kOutputLockFile));
    // Without --resume the runs on disk are refused; with it, the sweep takes over the lock,
    // removes the dead writer's temporary file and runs what is missing.
    std::vector<std::string> again = deep_sweep(broken.path());
    const bool some_run_finished =
        std::any_of(fs::directory_iterator(runs), fs::directory_iterator(),
                    [](const auto& e) { return e.path().extension() == ".json"; });
    if (some_run_finished) {
      status = wait_for(spawn_gradscope(again, logs.path()));
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status;
    }
    again.push_back("--resume");
    status = wait_for(spawn_gradscope(again, logs.path()));
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read(logs.path() / "stderr");
    EXPECT_EQ(differences(all_files(broken.path()), all_files(whole.path())),
              std::vector<std::string>{});  // the same names, the same bytes
    EXPECT_TRUE(leftovers(broken.path()).empty());
  }
  EXPECT_TRUE(caught) << "never stopped the sweep while it wrote a run";
}

TEST(CliFaults, ASecondSweepOfTheSameNameIsRefusedWhileTheFirstRunsAndATerminatedOneLeavesNothing) {
  TempDir dir, logs;
  const fs::path lock = dir.path() / "deep" / kOutputLockFile;
  const pid_t first = spawn_gradscope(deep_sweep(dir.path()), logs.path());
  // The lock's record is written once the lock is held; then the first sweep is held still.
  int status = 0;
  bool holding = false;
  while (!holding && ::waitpid(first, &status, WNOHANG) == 0) {
    holding = contains(read(lock), "\ncommand ");
    if (!holding) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(holding) << "the first sweep ended before it was seen holding its folder";
  ::kill(first, SIGSTOP);
  ASSERT_EQ(::waitpid(first, &status, WUNTRACED), first);
  // The second, as a user would start it: a depth sweep of the same name.
  std::vector<std::string> second = deep_sweep(dir.path());
  second[2] = "stack.depth=1400,1450";
  const Result r = cli(second);
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(
      contains(r.err, "another gradscope sweep (pid " + std::to_string(first) + ", started "))
      << r.err;
  EXPECT_TRUE(contains(r.err, ") is writing " + (dir.path() / "deep").string())) << r.err;
  EXPECT_TRUE(contains(r.err, "wait for it, or choose another --out or --name")) << r.err;
  EXPECT_TRUE(contains(r.err, "(it runs: gradscope sweep --vary stack.depth=1500,1600,1700"))
      << r.err;
  // SIGTERM: the first sweep goes, taking its lock and any temporary file with it.
  ::kill(first, SIGTERM);
  ::kill(first, SIGCONT);
  status = wait_for(first);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
  EXPECT_TRUE(leftovers(dir.path()).empty()) << leftovers(dir.path()).front();
}

TEST(CliFaults, TheNextWriteRemovesTemporaryFilesOfDeadProcessesOfThisHostOnly) {
  TempDir dir;
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  wait_for(dead);
  const std::string host = temp_host_name();
  const std::string gone = std::to_string(dead);
  const std::string alive = std::to_string(::getpid());
  const auto make = [&](const std::string& name) { dir.write(name, "partial"); };
  make(".default.json.tmp." + host + "." + gone);  // removed: this host's, its writer gone
  make(".default.txt.old." + host + "." + gone);   // removed: likewise
  make(".other.json.tmp." + host + "." + alive);   // kept: its writer runs
  make(".default.json.tmp.elsewhere." + gone);     // kept: another host's writer may run
  make(".default.json.tmp." + gone);               // kept: without a host, and recent
  make(".default.txt.tmp." + gone);                // removed: without a host, but hours old
  make(".gradscope-check-a1B2c3");                 // removed: an earlier probe, hours old
  for (const char* old : {".default.txt.tmp.", ".gradscope-check-a1B2c3"}) {
    const fs::path p = dir.path() / (std::string(old) + (old[1] == 'd' ? gone : ""));
    fs::last_write_time(p, fs::file_time_type::clock::now() - std::chrono::hours(2));
  }
  ASSERT_EQ(cli(args({"run", "-q", "--out", dir.path().string()}, kSmall)).code, 0);
  EXPECT_EQ(
      entries(dir.path()),
      (std::set<std::string>{"default.json", "default.txt", ".other.json.tmp." + host + "." + alive,
                             ".default.json.tmp.elsewhere." + gone, ".default.json.tmp." + gone}));
  // The host in a name is one plain word, so that the name parses back.
  EXPECT_EQ(
      host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"),
      std::string::npos)
      << host;
}

}  // namespace
}  // namespace gradscope
