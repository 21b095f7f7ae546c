// The whole run: memory refusal before allocation, the summary's arithmetic, determinism, and the
// per-layer statistics reaching the report.
#include <gtest/gtest.h>

#include <cmath>

#include "gradscope/core/error.hpp"
#include "gradscope/engine/engine.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

RunSpec spec_of(int depth, int width, int batch, Activation act, Init init) {
  return testing::uniform_stack(act, init, depth, width, batch, 21);
}

TEST(Engine, RefusesARunWhoseEstimateExceedsTheLimitWithTheEstimateInTheMessage) {
  const RunSpec spec = spec_of(1000, 16384, 1024, Activation::kRelu, Init::kHeNormal);
  RunOptions opt;
  opt.memory_limit_bytes = std::int64_t{1} << 30;
  try {
    run_diagnostic(spec, opt);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("run refused"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("GiB"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("memory budget is 1.0 GiB"), std::string::npos)
        << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
}

TEST(Engine, MemoryEstimateCountsWeightsAndCacheExactly) {
  RunSpec spec = spec_of(10, 100, 50, Activation::kRelu, Init::kHeNormal);
  spec.input.width = 30;
  const MemoryEstimate m = estimate_memory(spec);
  // weights: 100x30 + 9 x 100x100, biases 10 x 100, float32.
  EXPECT_EQ(m.weights_bytes, (100 * 30 + 9 * 100 * 100 + 10 * 100) * 4);
  // ReLU: y per layer (phi' is recovered from it), plus the input and the probe, (width x 50).
  EXPECT_EQ(m.cache_bytes, (10 * 100 + 30 + 100) * 50 * 4);
  spec.precision = Precision::kFloat64;
  EXPECT_EQ(estimate_memory(spec).weights_bytes, 2 * m.weights_bytes);
  // tanh: y and phi' per layer.
  spec.precision = Precision::kFloat32;
  spec.stack.layer.activation = default_spec(Activation::kTanh);
  EXPECT_EQ(estimate_memory(spec).cache_bytes, (2 * 10 * 100 + 30 + 100) * 50 * 4);
}

TEST(Engine, MemoryEstimateOfAnAbsurdConfigDoesNotOverflow) {
  const RunSpec spec = spec_of(1000000, 16777216, 16777216, Activation::kRelu, Init::kHeNormal);
  const MemoryEstimate m = estimate_memory(spec);
  EXPECT_GT(m.total_bytes(), std::int64_t{1} << 60);
  EXPECT_THROW(run_diagnostic(spec), Error);
}

TEST(Engine, SummaryIsTheFirstToLastLog10RatioAndItsMeanPerLayer) {
  const RunSpec spec = spec_of(12, 64, 32, Activation::kTanh, Init::kXavierNormal);
  const Report r = run_diagnostic(spec);
  ASSERT_EQ(r.layers.size(), 12u);
  const double ratio = r.layers.front().backward.grad_preact_rms.log10 -
                       r.layers.back().backward.grad_preact_rms.log10;
  EXPECT_DOUBLE_EQ(r.summary.log10_grad_ratio_first_to_last, ratio);
  EXPECT_DOUBLE_EQ(r.summary.mean_log10_gain, ratio / 11.0);
  // The per-layer gains multiply to the ratio (each is a difference of the same log10 values).
  double sum = 0;
  for (std::size_t l = 0; l + 1 < r.layers.size(); ++l) sum += r.layers[l].backward.gain.log10;
  EXPECT_NEAR(sum, ratio, 1e-12);
  EXPECT_EQ(r.parameters, 12 * (64 * 64 + 64));
  for (std::size_t l = 0; l < r.layers.size(); ++l) {
    EXPECT_EQ(r.layers[l].index, static_cast<int>(l) + 1);
    EXPECT_EQ(r.layers[l].fan_in, 64);
  }
}

TEST(Engine, DeadUnitsAreSummedOverLayers) {
  RunSpec spec = spec_of(3, 16, 8, Activation::kRelu, Init::kZeros);
  spec.stack.layer.bias.kind = BiasInit::kConstant;
  spec.stack.layer.bias.value = -1.0;
  const Report r = run_diagnostic(spec);
  EXPECT_EQ(r.summary.dead_units, 48);
  EXPECT_TRUE(r.summary.nonfinite_layers.empty());
}

TEST(Engine, NonFiniteLayersAreListed) {
  RunSpec spec = spec_of(40, 32, 8, Activation::kLinear, Init::kNormal);
  spec.stack.layer.init.std = 10.0;
  const Report r = run_diagnostic(spec);
  ASSERT_FALSE(r.summary.nonfinite_layers.empty());
  EXPECT_EQ(r.summary.nonfinite_layers.back(), 40);
}

TEST(Engine, EveryReportedLayerCarriesItsActivationHistogram) {
  const RunSpec spec = spec_of(4, 64, 32, Activation::kRelu, Init::kHeNormal);
  const Report r = run_diagnostic(spec);
  ASSERT_EQ(r.layers.size(), 4u);
  for (const LayerReport& l : r.layers) {
    ASSERT_EQ(l.forward.act_histogram.size(), static_cast<std::size_t>(kActHistogramBins));
    std::int64_t sum = 0;
    for (std::int64_t c : l.forward.act_histogram) sum += c;
    EXPECT_EQ(sum, l.forward.act.finite) << "layer " << l.index;
    EXPECT_EQ(sum, 64 * 32) << "layer " << l.index;
  }
}

TEST(Engine, ThePlannedHookSeesThePlanBeforeTheRunAndMayRefuseIt) {
  const RunSpec spec = spec_of(6, 32, 16, Activation::kTanh, Init::kXavierNormal);
  RunOptions opt;
  opt.threads = 1;
  const Report plain = run_diagnostic(spec, opt);
  int calls = 0;
  opt.on_planned = [&](const Report& planned) {
    ++calls;
    EXPECT_TRUE(planned.layers.empty());  // nothing has run yet
    EXPECT_EQ(planned.memory.plan.peak_bytes, plain.memory.plan.peak_bytes);
    EXPECT_EQ(planned.parameters, plain.parameters);
  };
  const Report hooked = run_diagnostic(spec, opt);
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(hooked.layers.size(), plain.layers.size());
  EXPECT_EQ(hooked.summary.log10_grad_ratio_first_to_last,
            plain.summary.log10_grad_ratio_first_to_last);
  opt.on_planned = [](const Report&) { throw Error("refused by the hook"); };
  EXPECT_THROW(run_diagnostic(spec, opt), Error);
}

TEST(Engine, ADeepWidth1RunIsRefusedForItsStatisticsAndReportBeforeAllocation) {
  // The job: --depth 100000 --width 1 --input-width 1 --batch 1 --memory-budget 512MiB
  // was accepted at "1.1 MiB estimated", then peaked at 1.5 GiB.
  const RunSpec spec = spec_of(100000, 1, 1, Activation::kRelu, Init::kHeNormal);
  RunOptions opt;
  opt.memory_limit_bytes = std::int64_t{512} << 20;
  bool planned = false;
  opt.on_planned = [&](const Report&) { planned = true; };
  try {
    run_diagnostic(spec, opt);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("statistics and report"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("reduce the number of layers"), std::string::npos) << e.hint();
  }
  EXPECT_FALSE(planned);  // refused before the plan was handed on, let alone allocated
}

TEST(Engine, AnInputFromAFileCountsItsCopiesAgainstTheLimit) {
  // 64 examples of width 65536: 4 Mi entries, 64 MiB of copies in double (the values as read and
  // the engine's matrix). Its data has nothing a plan can save: input, work buffers, tiny weights.
  RunSpec spec = spec_of(2, 1, 64, Activation::kRelu, Init::kHeNormal);
  spec.input.width = 65536;
  const MemoryEstimate m = estimate_memory(spec);
  const KeptEstimate generated = estimate_kept_memory(spec);
  const KeptEstimate from_file = estimate_kept_memory(spec, std::int64_t{65536} * 64);
  EXPECT_EQ(from_file.input_copies_bytes, std::int64_t{64} << 20);
  // The budget the generated run needs (slack 1.1, 64 MiB of process, one thread's scratch),
  // and half the copies' room more: enough without them, not with them.
  const double needs = static_cast<double>(m.total_bytes() + generated.total_bytes()) * 1.1 +
                       static_cast<double>((std::int64_t{64} << 20) + m.per_thread_bytes);
  RunOptions opt;
  opt.threads = 1;
  opt.memory_limit_bytes = static_cast<std::int64_t>(needs) + (std::int64_t{32} << 20);
  opt.on_planned = [](const Report&) { throw Error("planned"); };  // stop before allocating
  try {
    run_diagnostic(spec, opt);
    FAIL() << "expected the hook";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "planned");
  }
  ExternalData ext;
  ext.input = Eigen::MatrixXd(65536, 64);  // never read: the run is refused first
  opt.external = &ext;
  try {
    run_diagnostic(spec, opt);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("70.4 MiB for the copies of the input file"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace gradscope
