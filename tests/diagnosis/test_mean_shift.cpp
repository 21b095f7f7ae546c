// The mean_shift finding: an image ResNet's stream whose squared channel means outweigh their
// spread (Brock, De & Smith 2021), read from the report's channel moments; batch norm has none.
#include <gtest/gtest.h>

#include <algorithm>

#include "gradscope/engine/engine.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

LayerItem conv_item(Activation act, bool norm) {
  LayerItem c;
  c.op.kind = OpKind::kConv;
  c.op.conv.channels = 16;
  c.op.conv.kernel_h = c.op.conv.kernel_w = 3;
  c.op.conv.pad_h = c.op.conv.pad_w = 1;
  c.op.conv.bias = false;
  c.op.conv.activation = default_spec(act);
  c.op.conv.init.kind = Init::kHeNormal;
  if (!norm) return c;
  LayerItem b;
  b.block = {c, testing::norm_item(NormKind::kBatchNorm)};
  return b;
}

// A post-activation ResNet (relu after each addition): conv, relu, conv, the skip, relu.
RunSpec post_activation_resnet(bool norm) {
  RunSpec spec;
  spec.seed = 2;
  spec.precision = Precision::kFloat64;
  spec.input.image = {16, 8, 8};
  spec.input.width = spec.input.image.size();
  spec.input.batch = 16;
  LayerItem block;
  block.residual = ResidualSpec{};
  block.block = {conv_item(norm ? Activation::kLinear : Activation::kRelu, norm),
                 conv_item(Activation::kLinear, norm)};
  if (norm)
    block.block.insert(block.block.begin() + 1, testing::activation_item(Activation::kRelu));
  LayerItem unit;
  unit.block = {block, testing::activation_item(Activation::kRelu)};
  unit.repeat = 8;
  spec.layers = {unit};
  return spec;
}

const Finding* find(const Report& r, std::string_view code) {
  const auto it = std::find_if(r.findings.begin(), r.findings.end(),
                               [&](const Finding& f) { return f.code == code; });
  return it == r.findings.end() ? nullptr : &*it;
}

TEST(MeanShift, AResNetWithoutNormsCarriesReluMeanIntoItsStream) {
  const Report r = run_diagnostic(post_activation_resnet(false));
  const Finding* f = find(r, "mean_shift");
  ASSERT_NE(f, nullptr);
  // The evidence is the largest share over the blocks' outputs, as the channel moments give it.
  double worst = 0.0;
  for (const LayerReport& l : r.layers) {
    if (l.kind != OpKind::kResidualEnd) continue;
    const double m = l.forward.channel_mean_sq.value;
    worst = std::max(worst, m / (m + l.forward.channel_var.value));
  }
  ASSERT_FALSE(f->evidence.empty());
  EXPECT_EQ(f->evidence.front().quantity, "mean_shift_share");
  EXPECT_EQ(f->evidence.front().value, worst);
  EXPECT_GE(worst, 0.5);
  EXPECT_FALSE(f->advice.empty());
}

TEST(MeanShift, BatchNormCentresTheChannelsAndTheFindingIsGone) {
  const Report r = run_diagnostic(post_activation_resnet(true));
  EXPECT_EQ(find(r, "mean_shift"), nullptr);
}

TEST(MeanShift, TheThresholdIsTheConfigs) {
  RunSpec spec = post_activation_resnet(false);
  spec.diagnosis.mean_shift = 0.99;
  EXPECT_EQ(find(run_diagnostic(spec), "mean_shift"), nullptr);
}

}  // namespace
}  // namespace gradscope
