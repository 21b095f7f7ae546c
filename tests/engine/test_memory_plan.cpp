// Memory plans: every plan (weights kept or drawn again, activations kept or checkpointed at any
// segment length) gives a report bit-identical to the all-in-memory run, for every kind of op; and
// the planner picks the cheapest plan that fits a budget.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/core/network.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/engine/memory.hpp"
#include "gradscope/io/config.hpp"
#include "gradscope/io/report_json.hpp"
#include "support/paths.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

namespace fs = std::filesystem;

// The report as JSON with the plan section set to the reference's: every other byte, and so
// every statistic (printed to 17 significant digits), must match.
std::string report_without_plan(Report r) {
  r.memory.plan = MemoryPlan{};
  return report_to_json(r);
}

Report run_with(const RunSpec& spec, WeightStorage weights, int every, int threads = 2,
                std::int64_t recomputed = 0) {
  RunOptions opt;
  opt.threads = threads;
  opt.plan = MemoryPlan{};
  opt.plan->weights = weights;
  opt.plan->checkpoint_every = every;
  opt.plan->recomputed_ops = recomputed;  // 0: all but the last segment
  return run_diagnostic(spec, opt);
}

RunSpec config(const std::string& text) { return parse_run_spec(text, "<test>", "test"); }

// Architectures that stress what a checkpoint must carry: residual skips open across segment
// starts (nested, projected), norms' saved 1/std, dropout masks, softmax, explicit dW (Adam).
std::vector<std::pair<std::string, RunSpec>> architectures() {
  std::vector<std::pair<std::string, RunSpec>> out;
  for (const auto& entry : fs::directory_iterator(fs::path(GRADSCOPE_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".json") continue;
    RunSpec spec = load_run_spec(entry.path().string());
    spec.input.batch = std::min(spec.input.batch, 16);  // the plan, not the batch, is under test
    out.emplace_back(entry.path().stem().string(), spec);
  }
  // Sequence models: attention keeps q, k, v, o and every head's P; a GLU its gate and up.
  out.emplace_back("prenorm-attention-glu-float64", config(R"({
    "precision": "float64", "seed": 4, "input": {"width": 8, "batch": 3, "tokens": 5},
    "layers": [
      {"repeat": 2, "block": [
        {"residual": {}, "block": [{"norm": "layer_norm"},
          {"attention": {"heads": 2, "bias": true, "init": {"query": "he_normal"}}}]},
        {"residual": {"scale": 0.5}, "block": [{"norm": "rms_norm"}, {"dropout": 0.2},
          {"glu": {"hidden": 12, "activation": "silu"}}]}]},
      {"norm": "layer_norm"}, {"width": 4, "activation": "linear"}],
    "loss": "mse", "optimizer": {"name": "adam", "learning_rate": 0.01}})"));
  out.emplace_back("deepnorm-transformer-float32", config(R"({
    "seed": 6, "input": {"width": 16, "batch": 2, "tokens": 6},
    "layers": [{"transformer": {"blocks": 3, "heads": 4, "scaling": "deepnorm"}}],
    "optimizer": {"name": "sgd", "learning_rate": 0.1}})"));
  out.emplace_back("nested-projected-dropout-float64", config(R"({
    "precision": "float64", "seed": 3, "input": {"width": 12, "batch": 10},
    "layers": [
      {"width": 16, "activation": "tanh", "init": "xavier_normal"},
      {"repeat": 3, "residual": {"scale": 0.5, "projection": true}, "block": [
        {"norm": "batch_norm"},
        {"repeat": 2, "residual": {}, "block": [
          {"width": 16, "activation": "gelu", "init": "he_normal"},
          {"dropout": 0.25},
          {"width": 16, "activation": "linear", "init": "orthogonal"}]},
        {"width": 16, "activation": "silu", "init": "he_uniform"}]},
      {"residual": {"projection": {"name": "orthogonal", "gain": 0.5}}, "block": [
        {"width": 20, "activation": "elu", "init": "lecun_normal"}]},
      {"norm": "rms_norm"},
      {"width": 5, "activation": "softmax", "init": "xavier_normal"}],
    "optimizer": {"name": "adam", "learning_rate": 0.01}})"));
  out.emplace_back("wide-batch-explicit-dw", config(R"({
    "seed": 5, "input": {"width": 6, "batch": 40},
    "stack": {"depth": 9, "width": 8, "activation": "sigmoid", "init": "xavier_uniform"},
    "output": {"width": 3, "activation": "linear"}, "loss": "mse",
    "optimizer": {"name": "sgd", "learning_rate": 0.1}})"));
  return out;
}

// Images with a learned projection (its cache holds the skip and its norm's output) and an nf
// transition (weight-standardised projection and convs): checkpointed segments of every length
// give the all-in-memory report. Weights kept: a plan that draws conv weights again is not
// supported by the pass runner yet.
TEST(MemoryPlan, CheckpointedImageResnetsGiveTheAllInMemoryReportBitForBit) {
  const RunSpec spec = config(R"({
    "precision": "float64", "seed": 8, "input": {"channels": 1, "height": 4, "width": 4,
                                                  "batch": 6},
    "layers": [
      {"conv": {"channels": 2, "kernel": 3, "padding": 1}, "norm": "batch_norm"},
      {"residual": {"projection": true}, "block": [
        {"conv": {"channels": 4, "kernel": 3, "stride": 2, "padding": 1, "bias": false},
         "norm": "batch_norm", "activation": "relu"},
        {"conv": {"channels": 4, "kernel": 3, "padding": 1}, "activation": "linear"}]},
      {"repeat": 2, "residual": {"preset": "nf", "projection": true}, "block": [
        {"activation": "relu"},
        {"conv": {"channels": 6, "kernel": 1, "stride": 2}, "activation": "relu"},
        {"conv": {"channels": 6, "kernel": 1}, "activation": "linear"}]},
      {"flatten": {}}, {"width": 3, "activation": "linear"}],
    "loss": "softmax_cross_entropy", "optimizer": {"name": "adam", "learning_rate": 0.01}})");
  const std::string reference = report_without_plan(run_with(spec, WeightStorage::kKept, 0));
  const auto ops = static_cast<int>(expand_ops(spec).size());
  for (int every = 1; every < ops; ++every) {
    EXPECT_EQ(report_without_plan(run_with(spec, WeightStorage::kKept, every)), reference)
        << "checkpoint every " << every;
  }
}

TEST(MemoryPlan, EveryPlanGivesTheAllInMemoryReportBitForBit) {
  for (const auto& [name, spec] : architectures()) {
    const std::string reference = report_without_plan(run_with(spec, WeightStorage::kKept, 0));
    const auto ops = static_cast<int>(expand_ops(spec).size());
    // Segment lengths of 1 (every op a checkpoint), small primes that cut blocks anywhere, the
    // square root, and one op short of the whole network.
    const int root = static_cast<int>(std::ceil(std::sqrt(ops)));
    // The shipped configs are wide: one segment length each keeps the suite fast; the small
    // architectures built here get every length.
    const bool small = name.find('-') != std::string::npos && expand_ops(spec).size() < 40 &&
                       spec.input.width <= 16;
    const std::vector<int> lengths =
        small ? std::vector<int>{1, 2, 3, 7, root, ops - 1} : std::vector<int>{root};
    for (int every : lengths) {
      if (every < 1 || every >= ops) continue;
      for (WeightStorage w : {WeightStorage::kKept, WeightStorage::kRegenerated}) {
        const Report r = run_with(spec, w, every);
        EXPECT_EQ(r.memory.plan.checkpoint_every, every);
        EXPECT_EQ(report_without_plan(r), reference)
            << name << ": checkpoint every " << every << ", weights "
            << (w == WeightStorage::kKept ? "kept" : "regenerated");
      }
    }
    EXPECT_EQ(report_without_plan(run_with(spec, WeightStorage::kRegenerated, 0)), reference)
        << name << ": weights regenerated, activations kept";
    if (!small) continue;
    // A kept tail that starts inside a segment (and inside residual blocks).
    for (int tail : {1, 4, ops / 2}) {
      const Report r = run_with(spec, WeightStorage::kRegenerated, 3, 2, tail);
      EXPECT_EQ(r.memory.plan.recomputed_ops, std::min(tail, (ops - 1) / 3 * 3));
      EXPECT_EQ(report_without_plan(r), reference) << name << ": segments of 3, tail from " << tail;
    }
  }
}

// The progress a run's bar shows: reported after every step, never going back, ending at 1 once
// every forward, recomputed and backward step is done, under every plan; and the numbers are the
// same with the hook as without.
TEST(MemoryPlan, ProgressRisesToOneUnderEveryPlanAndChangesNothing) {
  // The two architectures written for this file (nested and projected skips, norms, dropout,
  // softmax, Adam): the shipped configs add size, not cases.
  const auto all = architectures();
  for (const auto& [name, spec] : std::vector(all.end() - 2, all.end())) {
    SCOPED_TRACE(name);
    for (const int every : {0, 1, 3}) {
      SCOPED_TRACE(every);
      RunOptions opt;
      opt.threads = 2;
      opt.plan = MemoryPlan{};
      opt.plan->weights = every == 0 ? WeightStorage::kKept : WeightStorage::kRegenerated;
      opt.plan->checkpoint_every = every;
      const Report plain = run_diagnostic(spec, opt);
      std::vector<double> seen;
      opt.on_progress = [&](double done) { seen.push_back(done); };
      const Report hooked = run_diagnostic(spec, opt);
      EXPECT_EQ(report_to_json(hooked), report_to_json(plain));
      ASSERT_GE(seen.size(), 2 * hooked.layers.size());
      EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
      EXPECT_GT(seen.front(), 0.0);
      // The steps' weights are summed in another order than their total: within rounding of 1.
      EXPECT_NEAR(seen.back(), 1.0, 1e-12);
    }
  }
}

TEST(MemoryPlan, CheckpointedRunsAreIdenticalForAnyThreadCount) {
  // The four architectures written for this file (the shipped configs add size, not cases).
  const auto all = architectures();
  for (const auto& [name, spec] : std::vector(all.end() - 4, all.end())) {
    const std::string one = report_to_json(run_with(spec, WeightStorage::kRegenerated, 3, 1));
    EXPECT_EQ(report_to_json(run_with(spec, WeightStorage::kRegenerated, 3, 3)), one) << name;
    EXPECT_EQ(report_to_json(run_with(spec, WeightStorage::kKept, 0, 3)),
              report_to_json(run_with(spec, WeightStorage::kKept, 0, 1)))
        << name;
  }
}

TEST(MemoryPlan, RegeneratedWeightsGiveTheSameJacobianAndSavedWeights) {
  RunSpec spec = testing::uniform_stack(Activation::kTanh, Init::kOrthogonal, 6, 10, 8, 17);
  spec.stats.jacobian_examples = 3;
  RunData kept_data, drawn_data;
  RunOptions kept;
  kept.plan = MemoryPlan{};
  kept.save = &kept_data;
  RunOptions drawn = kept;
  drawn.plan->weights = WeightStorage::kRegenerated;
  drawn.plan->checkpoint_every = 2;
  drawn.save = &drawn_data;
  const Report a = run_diagnostic(spec, kept);
  const Report b = run_diagnostic(spec, drawn);
  ASSERT_TRUE(a.jacobian && b.jacobian);
  EXPECT_EQ(report_without_plan(a), report_without_plan(b));
  ASSERT_EQ(kept_data.weight.size(), drawn_data.weight.size());
  for (std::size_t l = 0; l < kept_data.weight.size(); ++l) {
    EXPECT_TRUE(kept_data.weight[l] == drawn_data.weight[l]) << "op " << l;
  }
}

TEST(MemoryPlan, LoadedWeightsAreKeptUnderARegeneratingPlan) {
  const RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 5, 8, 6, 2);
  // Loaded weights for ops 1 and 3 only: the others are still drawn from the seed.
  ExternalData ext;
  ext.weight.resize(5);
  ext.weight[1] = Eigen::MatrixXd::Constant(8, 8, 0.25);
  ext.weight[3] = Eigen::MatrixXd::Identity(8, 8);
  RunOptions kept;
  kept.external = &ext;
  kept.plan = MemoryPlan{};
  RunOptions drawn = kept;
  drawn.plan->weights = WeightStorage::kRegenerated;
  drawn.plan->checkpoint_every = 2;
  const Report a = run_diagnostic(spec, kept);
  const Report b = run_diagnostic(spec, drawn);
  EXPECT_EQ(report_without_plan(a), report_without_plan(b));
  // ||0.25 * ones(8, 8)||_F = 0.25 * 8 = 2 exactly: the loaded matrix was used.
  EXPECT_EQ(b.layers[1].backward.weight_norm, 2.0);
}

TEST(MemoryPlan, GeneratedWeightsMatchWhateverTheThreadCount) {
  const RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeUniform, 3, 70, 4, 9);
  ThreadPool one(1), three(3);
  const Network<float> stored = build_network<float>(spec, one);
  const Network<float> drawn = build_network<float>(spec, three, WeightStorage::kRegenerated);
  for (std::size_t l = 0; l < stored.ops.size(); ++l) {
    EXPECT_TRUE(drawn.weight[l].size() == 0) << "a regenerating network stores no weights";
    Mat<float> w;
    generate_weight(drawn, l, w, three);
    EXPECT_TRUE(w == stored.weight[l]) << "op " << l;
    EXPECT_EQ(weight_frobenius(w), stored.weight_norm[l]);
  }
}

// ---- The planner.

TEST(MemoryPlanner, LargeBudgetKeepsEverythingAndSmallerOnesTradeTimeForMemory) {
  const RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 400, 256, 64, 1);
  const MemoryEstimate all = estimate_memory(spec);
  const MemoryPlan everything = choose_memory_plan(spec, all, {}, all.total_bytes(), 0);
  EXPECT_EQ(everything.weights, WeightStorage::kKept);
  EXPECT_FALSE(everything.checkpointed());
  EXPECT_EQ(everything.peak_bytes, all.total_bytes());

  // Weights are 4x the activations here: drawing them again is the cheapest saving.
  const MemoryPlan drawn = choose_memory_plan(spec, all, {}, all.total_bytes() / 2, 0);
  EXPECT_EQ(drawn.weights, WeightStorage::kRegenerated);
  EXPECT_FALSE(drawn.checkpointed());
  EXPECT_LE(drawn.peak_bytes, all.total_bytes() / 2);

  const MemoryPlan lean = choose_memory_plan(spec, all, {}, all.total_bytes() / 15, 0);
  EXPECT_EQ(lean.weights, WeightStorage::kRegenerated);
  EXPECT_TRUE(lean.checkpointed());
  EXPECT_LE(lean.peak_bytes, all.total_bytes() / 15);
  // All but the last segment at most: a longer kept tail when the budget leaves room.
  EXPECT_LE(lean.recomputed_ops, (400 - 1) / lean.checkpoint_every * lean.checkpoint_every);

  try {
    choose_memory_plan(spec, all, {}, 1 << 20, 0);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("leanest plan"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1.0 MiB"), std::string::npos) << e.what();
  }
}

TEST(MemoryPlanner, SpareRoomKeepsALongerTailAndComputesLessAgain) {
  const RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 400, 256, 64, 1);
  const MemoryEstimate all = estimate_memory(spec);
  const std::int64_t tight =
      choose_memory_plan(spec, all, {}, all.total_bytes() / 15, 0).peak_bytes;
  const MemoryPlan lean = choose_memory_plan(spec, all, {}, tight, 0);
  const MemoryPlan roomy = choose_memory_plan(spec, all, {}, 3 * tight, 0);
  ASSERT_TRUE(lean.checkpointed() && roomy.checkpointed());
  EXPECT_LT(roomy.recomputed_ops, lean.recomputed_ops);
  EXPECT_LE(roomy.peak_bytes, 3 * tight);
  // The tail is the longest that fits: its plan re-estimated gives the same peak, and keeping
  // one op more would not fit.
  const MemoryPlan same =
      plan_with(spec, all, {}, roomy.weights, roomy.checkpoint_every, roomy.recomputed_ops);
  EXPECT_EQ(same.peak_bytes, roomy.peak_bytes);
  const MemoryPlan longer =
      plan_with(spec, all, {}, roomy.weights, roomy.checkpoint_every, roomy.recomputed_ops - 1);
  EXPECT_GT(longer.peak_bytes, 3 * tight);
}

TEST(MemoryPlanner, LoadedWeightsAreNeverPlannedAway) {
  const RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 40, 256, 64, 1);
  const MemoryEstimate all = estimate_memory(spec);
  const std::vector<bool> loaded(40, true);
  for (const MemoryPlanOption& o : memory_plan_options(spec, all, loaded)) {
    EXPECT_EQ(o.plan.weights, WeightStorage::kKept) << "every weight is loaded";
    EXPECT_GE(o.plan.peak_bytes, all.weights_bytes);
  }
}

TEST(MemoryPlanner, CheckpointPeakCountsSegmentsAndCheckpointsExactly) {
  // 100 ReLU layers of width 64, batch 8, float32: y is the whole cache of a layer (2 KiB), the
  // weights 16 KiB. Segments of 10: 9 checkpoints before the last segment, the largest segment
  // holds 10 caches and (drawn again) 10 weight matrices, plus one matrix drawn in the forward.
  const RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 100, 64, 8, 1);
  const MemoryEstimate all = estimate_memory(spec);
  const double y = 64 * 8 * 4;
  const double w = 64 * 64 * 4;
  const double io = static_cast<double>(all.cache_bytes) - 100 * y;  // input and probe
  const double biases = 100 * 64 * 4;
  const MemoryPlan p = plan_with(spec, all, {}, WeightStorage::kRegenerated, 10);
  EXPECT_EQ(p.segments, 10);
  EXPECT_EQ(p.recomputed_ops, 90);
  EXPECT_EQ(static_cast<double>(p.peak_bytes),
            io + static_cast<double>(all.work_bytes) + biases + 9 * y + 10 * (y + w) + w);
  const MemoryPlan k = plan_with(spec, all, {}, WeightStorage::kKept, 10);
  EXPECT_EQ(static_cast<double>(k.peak_bytes), io + static_cast<double>(all.work_bytes) +
                                                   static_cast<double>(all.weights_bytes) + 9 * y +
                                                   10 * y);
}

TEST(MemoryPlanner, TenThousandLayersOfWidth1024FitInFourGiB) {
  // The issue's target job: depth 10,000, width 1024, batch 256, float32.
  RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 10000, 1024, 256, 1);
  spec.input.width = 1024;
  const MemoryEstimate all = estimate_memory(spec);
  EXPECT_GT(all.total_bytes(), std::int64_t{40} << 30);  // 40 GiB of weights alone
  const MemoryPlan p = choose_memory_plan(spec, all, {}, std::int64_t{4} << 30, 0);
  EXPECT_EQ(p.weights, WeightStorage::kRegenerated);
  EXPECT_TRUE(p.checkpointed());
  EXPECT_LE(p.peak_bytes, std::int64_t{4} << 30);
}

TEST(MemoryPlanner, AMillionLayerStackIsPlannedWithoutExpandingIt) {
  const RunSpec spec =
      testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 1000000, 4096, 1024, 1);
  const MemoryEstimate all = estimate_memory(spec);
  EXPECT_THROW(choose_memory_plan(spec, all, {}, std::int64_t{1} << 30, 0), Error);
}

TEST(ByteSize, ParsesBinaryAndDecimalUnits) {
  EXPECT_EQ(parse_byte_size("4GiB"), std::int64_t{4} << 30);
  EXPECT_EQ(parse_byte_size("4g"), std::int64_t{4} << 30);
  EXPECT_EQ(parse_byte_size("512M"), std::int64_t{512} << 20);
  EXPECT_EQ(parse_byte_size("1.5KiB"), 1536);
  EXPECT_EQ(parse_byte_size("2GB"), 2000000000);
  EXPECT_EQ(parse_byte_size("1000000"), 1000000);
  EXPECT_EQ(parse_byte_size("10B"), 10);
  for (const char* bad : {"", "GiB", "4 GiB", "-1G", "1.2.3G", "4Q", ".5G", "0", "1e3"}) {
    EXPECT_FALSE(parse_byte_size(bad)) << bad;
  }
}

// The figures of a refusal: "X of data with its leanest plan (...; everything in memory: Y)".
double mib_before(const std::string& text, const std::string& marker) {
  const std::size_t at = text.find(marker);
  if (at == std::string::npos) return -1;
  const std::size_t unit = text.rfind(" MiB", at);
  const std::size_t start = text.rfind(' ', unit - 1);
  return std::stod(text.substr(start + 1, unit - start - 1));
}

TEST(MemoryRefusal, TheLeanestPlanIsNeverLargerThanEverythingInMemory) {
  // A small network whose data fits easily, refused for the process's own overhead: before, the
  // message set the leanest plan with the overhead (73 MiB) beside everything without (27 MiB).
  const RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 400, 256, 64, 1);
  const MemoryEstimate all = estimate_memory(spec);
  const std::int64_t overhead = std::int64_t{64} << 20;
  for (const std::int64_t budget : {overhead / 2, overhead + all.total_bytes() / 20}) {
    try {
      choose_memory_plan(spec, all, {}, budget, overhead, 0.1);
      FAIL() << "expected a refusal at " << budget;
    } catch (const Error& e) {
      const std::string what = e.what();
      const double lean = mib_before(what, " of data with its leanest plan");
      const double everything = mib_before(what + " ", ")");
      ASSERT_GT(lean, 0) << what;
      EXPECT_TRUE(what.find("everything in memory: ") != std::string::npos) << what;
      EXPECT_LE(lean, everything) << what;
      EXPECT_TRUE(what.find("64.0 MiB for the process") != std::string::npos) << what;
    }
  }
}

TEST(MemoryRefusal, Float32IsSuggestedToAFloat64RunOnly) {
  RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 400, 256, 64, 1);
  for (const Precision p : {Precision::kFloat32, Precision::kFloat64}) {
    spec.precision = p;
    const MemoryEstimate all = estimate_memory(spec);
    try {
      choose_memory_plan(spec, all, {}, 1 << 20, 0);
      FAIL() << "expected a refusal";
    } catch (const Error& e) {
      EXPECT_EQ(e.hint().find("float32") != std::string::npos, p == Precision::kFloat64)
          << e.hint();
      EXPECT_NE(e.hint().find("--memory-budget"), std::string::npos) << e.hint();
    }
  }
}

// ---- The work a run does, for the time estimate

TEST(RunWork, CountsAStacksProductsExactly) {
  // 3 layers of width 512, batch 8: the weight gradients' norms come from the Grams, since
  // 8 (512 + 512) < 2 512 512.
  const RunSpec spec = testing::uniform_stack(Activation::kTanh, Init::kXavierNormal, 3, 512, 8, 1);
  const RunWork w = estimate_run_work(spec, MemoryPlan{}, 1);
  const double forward = 2.0 * 512 * 512 * 8;
  const double grams = 8.0 * 8 * (512 + 512);
  // Forward for every layer, dL/dx below all but the first, and the Grams.
  EXPECT_DOUBLE_EQ(w.products, 3 * forward + 2 * forward + 3 * grams);
  EXPECT_DOUBLE_EQ(w.elementwise, 3 * kElementwiseFlopsPerEntry * 512 * 8);
  EXPECT_DOUBLE_EQ(w.per_layer, 3 * kFlopsPerReportedLayer);
  EXPECT_GT(w.draws, 0);
  EXPECT_EQ(w.jacobian, 0);
  // On one thread the critical path is all of it.
  EXPECT_DOUBLE_EQ(w.critical_path, w.total());
}

TEST(RunWork, ALeanerPlanComputesMoreAndThreadsShortenTheCriticalPath) {
  const RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 400, 1024, 64, 1);
  const MemoryEstimate all = estimate_memory(spec);
  const RunWork kept = estimate_run_work(spec, MemoryPlan{}, 1);
  const MemoryPlan lean = plan_with(spec, all, {}, WeightStorage::kRegenerated, 20);
  const RunWork leaner = estimate_run_work(spec, lean, 1);
  // Drawn in the forward pass, the backward pass and the recomputation instead of once; the
  // recomputed ops' products twice.
  EXPECT_GT(leaner.draws, 2.5 * kept.draws);
  EXPECT_GT(leaner.products, kept.products);
  EXPECT_EQ(leaner.per_layer, kept.per_layer);
  const RunWork four = estimate_run_work(spec, MemoryPlan{}, 4);
  EXPECT_DOUBLE_EQ(four.total(), kept.total());
  EXPECT_LT(four.critical_path, 0.5 * kept.critical_path);
  EXPECT_GT(four.critical_path, 0.25 * kept.critical_path);
}

TEST(RunWork, AMillionLayerStackIsCountedWithoutExpandingIt) {
  // The issue's job: --depth 1000000 --width 512, batch 256. About 335 MFLOP of products a layer.
  const RunSpec spec =
      testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 1000000, 512, 256, 1);
  const RunWork w = estimate_run_work(spec, MemoryPlan{}, 1);
  const double forward = 2.0 * 512 * 512 * 256;
  const double grams = 256.0 * 256 * (512 + 512);
  // Integers below 2^53 all the way: the sum is exact.
  EXPECT_DOUBLE_EQ(w.products, 1e6 * (2 * forward + grams) - forward);
}

// ---- What every plan keeps besides: statistics and reports, input copies; the report on disk

TEST(KeptMemory, ADeepWidth1StackCountsItsStatisticsAndReportPerOp) {
  // The issue's job: accepted at "1.1 MiB estimated", it peaked at 1.5 GiB writing 297 MB of JSON.
  const RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 100000, 1, 1, 1);
  const KeptEstimate kept = estimate_kept_memory(spec);
  EXPECT_EQ(kept.reported_ops, 100000);
  EXPECT_EQ(kept.input_copies_bytes, 0);
  // At least each op's report structure and its JSON text, the document's nodes beside it.
  EXPECT_GE(static_cast<double>(kept.report_bytes),
            100000.0 * (sizeof(LayerReport) + 3000.0 * kJsonBuildFactor));
  const MemoryEstimate all = estimate_memory(spec);
  EXPECT_LT(all.total_bytes(), std::int64_t{2} << 20);  // the pass's own data is tiny
  try {
    choose_memory_plan(spec, all, {}, std::int64_t{512} << 20, std::int64_t{64} << 20, 0.1, kept);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    const std::string what = e.what();
    EXPECT_NE(what.find("for the statistics and report of its 100000 ops"), std::string::npos)
        << what;
    EXPECT_NE(what.find("memory budget is 512.0 MiB"), std::string::npos) << what;
    EXPECT_NE(e.hint().find("reduce the number of layers"), std::string::npos) << e.hint();
    EXPECT_NE(e.hint().find("--memory-budget"), std::string::npos) << e.hint();
  }
  // Without the per-op part, the same budget would have been accepted.
  EXPECT_NO_THROW(
      choose_memory_plan(spec, all, {}, std::int64_t{512} << 20, std::int64_t{64} << 20, 0.1));
}

TEST(KeptMemory, AnInputFileCountsTwiceInDoublePerEntry) {
  const RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 3, 16, 8, 1);
  const KeptEstimate none = estimate_kept_memory(spec);
  const KeptEstimate small = estimate_kept_memory(spec, 1000);
  const KeptEstimate large = estimate_kept_memory(spec, 1000000);
  // The values as read and the engine's matrix, both double: 16 bytes an entry.
  EXPECT_EQ(small.input_copies_bytes, 16 * 1000);
  EXPECT_EQ(large.input_copies_bytes - small.input_copies_bytes, 16 * (1000000 - 1000));
  EXPECT_EQ(large.report_bytes, none.report_bytes);
  EXPECT_EQ(estimate_kept_memory(spec, 1000, 500).input_copies_bytes, 16 * 1000 + 500);
}

TEST(ReportSize, TheEstimateOfADeepWidth1ReportIsWithinAFactor1Point5OfItsJson) {
  const RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 2000, 1, 1, 1);
  RunOptions opt;
  opt.threads = 2;
  const std::string json = report_to_json(run_diagnostic(spec, opt));
  // The JSON and the text report (about 11 KB at the default 40 rows, so the JSON's 6 MB is
  // nearly all of it): over what is written, and not by more than half.
  const auto estimate = static_cast<double>(estimate_report_file_bytes(spec, ReportFiles{}));
  const auto actual = static_cast<double>(json.size()) + 11e3;
  EXPECT_GE(estimate, actual);
  EXPECT_LE(estimate, 1.5 * actual);
  // Every file asked for adds to it; more text rows too.
  ReportFiles all_files;
  all_files.html = all_files.svg = all_files.markdown = all_files.save_weights = true;
  EXPECT_GT(estimate_report_file_bytes(spec, all_files), estimate_report_file_bytes(spec, {}));
  ReportFiles all_rows;
  all_rows.max_rows = 1000000;
  EXPECT_GE(estimate_report_file_bytes(spec, all_rows) - estimate_report_file_bytes(spec, {}),
            150 * (2000 - 40));
}

TEST(ReportSize, ReportsThatWillNotFitOnTheDiskAreRefusedNamingBothSizes) {
  const fs::path tmp = fs::temp_directory_path();
  const std::int64_t free = available_disk_bytes(tmp);
  ASSERT_GT(free, 0);
  // --out may not exist yet: the free space is that of its nearest existing parent.
  EXPECT_GT(available_disk_bytes(tmp / "gradscope-no-such-dir" / "reports"), 0);
  EXPECT_NO_THROW(check_disk_space(tmp / "gradscope-no-such-dir" / "reports", 1000));
  try {
    check_disk_space(tmp / "gradscope-no-such-dir", std::int64_t{1} << 62);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    const std::string what = e.what();
    EXPECT_NE(what.find("not enough disk space"), std::string::npos) << what;
    EXPECT_NE(what.find("4.0 EiB"), std::string::npos) << what;
    EXPECT_NE(what.find(" free"), std::string::npos) << what;
    EXPECT_NE(e.hint().find("--out"), std::string::npos) << e.hint();
  }
}

}  // namespace
}  // namespace gradscope
