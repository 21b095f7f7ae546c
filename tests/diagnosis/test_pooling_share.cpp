// Pooling's geometric share of the gradient rms (diagnosis.hpp's pooling_gradient_log10_share):
// against what a pool does to a probe gradient of independent standard-normal entries, and the
// gradient findings judging the first-to-last ratio net of it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string_view>

#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/engine/engine.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

using testing::activation_item;

LayerItem pool_item(PoolKind kind, int kernel, int stride, int pad) {
  LayerItem p;
  p.op.kind = OpKind::kPool;
  p.op.pool.kind = kind;
  p.op.pool.kernel_h = p.op.pool.kernel_w = kernel;
  p.op.pool.stride_h = p.op.pool.stride_w = stride;
  p.op.pool.pad_h = p.op.pool.pad_w = pad;
  return p;
}

LayerItem conv_item(int channels, Activation act, Init init) {
  LayerItem c;
  c.op.kind = OpKind::kConv;
  c.op.conv.channels = channels;
  c.op.conv.kernel_h = c.op.conv.kernel_w = 3;
  c.op.conv.pad_h = c.op.conv.pad_w = 1;
  c.op.conv.activation = default_spec(act);
  c.op.conv.init.kind = init;
  return c;
}

RunSpec image_spec(int channels, int side, int batch) {
  RunSpec spec;
  spec.seed = 6;
  spec.precision = Precision::kFloat64;
  spec.input.image = {channels, side, side};
  spec.input.width = spec.input.image.size();
  spec.input.batch = batch;
  return spec;
}

// [pool, linear activation]: the activation's statistic is the probe itself (dL/d its input),
// the pool's dL/d(its input); their log10 rms ratio is what the pool did to the probe.
void expect_share_matches_the_probe(LayerItem pool, int side) {
  RunSpec spec = image_spec(16, side, 32);
  spec.layers = {pool, activation_item(Activation::kLinear)};
  const Report r = run_diagnostic(spec);
  ASSERT_EQ(r.layers.size(), 2u);
  const double measured =
      r.layers[0].backward.grad_preact_rms.log10 - r.layers[1].backward.grad_preact_rms.log10;
  // The rms of tens of thousands of probe entries: within 1% (0.005 decades) of its expectation.
  EXPECT_NEAR(pooling_gradient_log10_share(r), measured, 0.005);
}

TEST(PoolingShare, MaxPoolingTwoByTwoHalvesThePerEntryRms) {
  RunSpec spec = image_spec(4, 8, 2);
  spec.layers = {pool_item(PoolKind::kMax, 2, 2, 0), activation_item(Activation::kLinear)};
  EXPECT_NEAR(pooling_gradient_log10_share(run_diagnostic(spec)), std::log10(0.5), 1e-15);
  expect_share_matches_the_probe(pool_item(PoolKind::kMax, 2, 2, 0), 16);
}

TEST(PoolingShare, OverlappingPaddedMaxPoolingAsInAResNetStem) {
  expect_share_matches_the_probe(pool_item(PoolKind::kMax, 3, 2, 1), 16);
}

TEST(PoolingShare, AveragePoolingCountsEachInputsWindows) {
  expect_share_matches_the_probe(pool_item(PoolKind::kAverage, 2, 2, 0), 16);
  expect_share_matches_the_probe(pool_item(PoolKind::kAverage, 3, 2, 1), 15);
  expect_share_matches_the_probe(pool_item(PoolKind::kAverage, 3, 1, 1), 12);
}

TEST(PoolingShare, GlobalAveragePoolingDividesByThePositions) {
  RunSpec spec = image_spec(16, 7, 32);
  spec.layers = {pool_item(PoolKind::kGlobalAverage, 1, 1, 0),
                 activation_item(Activation::kLinear)};
  EXPECT_NEAR(pooling_gradient_log10_share(run_diagnostic(spec)), -std::log10(49.0), 1e-15);
  expect_share_matches_the_probe(pool_item(PoolKind::kGlobalAverage, 1, 1, 0), 7);
}

TEST(PoolingShare, APoolAtTheOutputEndIsNotCounted) {
  // The last layer's own statistic holds its pool's share, so the ratio to it does not.
  RunSpec spec = image_spec(4, 8, 4);
  spec.layers = {conv_item(4, Activation::kRelu, Init::kHeNormal),
                 pool_item(PoolKind::kMax, 2, 2, 0)};
  EXPECT_EQ(pooling_gradient_log10_share(run_diagnostic(spec)), 0.0);
}

bool has_finding(const Report& r, std::string_view code) {
  return std::any_of(r.findings.begin(), r.findings.end(),
                     [&](const Finding& f) { return f.code == code; });
}

// A He ReLU VGG-style net: four 2x2 max pools and a global average pool take 10^-1.8 from the
// per-entry rms by geometry alone; the convolutions keep the gradient, so nothing vanishes.
TEST(PoolingShare, AHealthyVggIsNotCalledVanishing) {
  RunSpec spec = image_spec(3, 32, 8);
  LayerItem stage;
  stage.block = {conv_item(16, Activation::kRelu, Init::kHeNormal),
                 conv_item(16, Activation::kRelu, Init::kHeNormal),
                 pool_item(PoolKind::kMax, 2, 2, 0)};
  stage.repeat = 4;
  LayerItem flatten;
  flatten.op.kind = OpKind::kFlatten;
  spec.layers = {stage, pool_item(PoolKind::kGlobalAverage, 1, 1, 0), flatten,
                 testing::dense_item(10, Activation::kLinear)};
  const Report r = run_diagnostic(spec);
  EXPECT_NEAR(pooling_gradient_log10_share(r), 4 * std::log10(0.5) - std::log10(4.0), 1e-12);
  EXPECT_LT(r.summary.log10_grad_ratio_first_to_last, -1.5);  // the raw ratio looks vanishing
  EXPECT_FALSE(has_finding(r, "vanishing_gradients"));
}

// The same net with sigmoid convolutions does vanish, beyond pooling's share; the finding says
// how much of the raw ratio pooling accounts for.
TEST(PoolingShare, ASigmoidVggStillVanishesAndTheFindingNamesPoolingsShare) {
  RunSpec spec = image_spec(3, 32, 8);
  LayerItem stage;
  stage.block = {conv_item(16, Activation::kSigmoid, Init::kXavierNormal),
                 conv_item(16, Activation::kSigmoid, Init::kXavierNormal),
                 pool_item(PoolKind::kMax, 2, 2, 0)};
  stage.repeat = 4;
  LayerItem flatten;
  flatten.op.kind = OpKind::kFlatten;
  spec.layers = {stage, pool_item(PoolKind::kGlobalAverage, 1, 1, 0), flatten,
                 testing::dense_item(10, Activation::kLinear)};
  const Report r = run_diagnostic(spec);
  const auto f = std::find_if(r.findings.begin(), r.findings.end(),
                              [](const Finding& x) { return x.code == "vanishing_gradients"; });
  ASSERT_NE(f, r.findings.end());
  const double share = pooling_gradient_log10_share(r);
  bool named = false;
  for (const Evidence& e : f->evidence) {
    if (e.quantity == "log10_pooling_share") {
      named = true;
      EXPECT_EQ(e.value, share);
    }
    if (e.quantity == "log10_grad_ratio_first_to_last") {
      EXPECT_NEAR(e.value, r.summary.log10_grad_ratio_first_to_last - share, 1e-12);
    }
  }
  EXPECT_TRUE(named);
  EXPECT_NE(f->explanation.find("pooling's geometry"), std::string::npos);
}

}  // namespace
}  // namespace gradscope
