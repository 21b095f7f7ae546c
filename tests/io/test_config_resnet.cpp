// ResNet-style residual blocks on images in the config: the learned 1x1-conv projection (its
// defaults resolved from the stream, its forms, its refusals with JSON paths, the resolved config's
// round trip).
#include <gtest/gtest.h>

#include <cmath>

#include "config_test_support.hpp"
#include "gradscope/core/validate.hpp"

namespace {

using namespace config_test;
using gradscope::ExitCode;
using gradscope::ImageShape;

std::string image_layers(const std::string& items,
                         const std::string& input = R"({"channels": 3, "height": 8, "width": 8})") {
  return R"({"input": )" + input + R"(, "layers": [)" + items + "]}";
}

// A basic block that halves 3 x 8 x 8 to 6 x 4 x 4, with this residual.
std::string downsampling(const std::string& residual) {
  return image_layers(R"({"residual": )" + residual + R"(,
      "block": [{"conv": {"channels": 6, "kernel": 3, "stride": 2, "padding": 1, "bias": false},
                 "norm": "batch_norm", "activation": "relu"},
                {"conv": {"channels": 6, "kernel": 3, "padding": 1, "bias": false},
                 "norm": "batch_norm", "activation": "linear"}]})");
}

TEST(ConfigResnetProjection, TrueOnAnImageIsTorchvisionsDownsampleHeNormalFanOutWithBatchNorm) {
  const RunSpec spec = parse(downsampling("{\"projection\": true}"));
  const gradscope::ResidualSpec& r = *spec.layers[0].residual;
  EXPECT_TRUE(r.projection);
  EXPECT_EQ(r.projection_init.kind, Init::kHeNormal);
  EXPECT_EQ(r.projection_init.mode, FanMode::kFanOut);
  EXPECT_EQ(r.projection_init.gain, 1.0);
  ASSERT_TRUE(r.projection_norm.has_value());
  EXPECT_EQ(r.projection_norm->kind, NormKind::kBatchNorm);
  EXPECT_EQ(r.projection_norm->eps, 1e-5);
  EXPECT_EQ(r.skip_image, (ImageShape{3, 8, 8}));
  // The residual end of the expanded ops knows both images: a 1x1 conv 3 -> 6 with stride 2.
  for (const OpSpec& op : gradscope::expand_ops(spec)) {
    if (op.kind != OpKind::kResidualEnd) continue;
    EXPECT_TRUE(op.residual.conv_projection());
    EXPECT_EQ(op.residual.skip_image, (ImageShape{3, 8, 8}));
    EXPECT_EQ(op.image, (ImageShape{6, 4, 4}));
  }
}

TEST(ConfigResnetProjection, AVectorStreamKeepsTheFixedOrthogonalProjection) {
  const RunSpec spec = parse(R"({"input": {"width": 4}, "layers": [
      {"residual": {"projection": true}, "block": [{"width": 6}]}]})");
  const gradscope::ResidualSpec& r = *spec.layers[0].residual;
  EXPECT_EQ(r.projection_init.kind, Init::kOrthogonal);
  EXPECT_FALSE(r.projection_norm.has_value());
  EXPECT_FALSE(r.conv_projection());
}

TEST(ConfigResnetProjection, InitAndNormAreReadInEitherForm) {
  const RunSpec both = parse(downsampling(
      R"({"projection": {"init": {"name": "xavier_normal", "gain": 0.5},
                         "norm": {"name": "batch_norm", "eps": 0.001}}})"));
  EXPECT_EQ(both.layers[0].residual->projection_init.kind, Init::kXavierNormal);
  EXPECT_EQ(both.layers[0].residual->projection_init.gain, 0.5);
  EXPECT_EQ(both.layers[0].residual->projection_norm->eps, 0.001);
  // "norm": false (or "none") drops the norm; the init keeps its default.
  for (const char* none : {"false", "\"none\""}) {
    const RunSpec no_norm =
        parse(downsampling(std::string(R"({"projection": {"norm": )") + none + "}}"));
    EXPECT_FALSE(no_norm.layers[0].residual->projection_norm.has_value());
    EXPECT_EQ(no_norm.layers[0].residual->projection_init.kind, Init::kHeNormal);
  }
  // An init alone (the vector form) keeps the image's default norm.
  const RunSpec init_only = parse(downsampling(R"({"projection": "lecun_normal"})"));
  EXPECT_EQ(init_only.layers[0].residual->projection_init.kind, Init::kLecunNormal);
  EXPECT_TRUE(init_only.layers[0].residual->projection_norm.has_value());
}

TEST(ConfigResnetProjection, RefusalsNameTheProjectionsPath) {
  // 8 -> 3 (kernel 4, stride 2, no padding): no whole stride maps 8 onto 3.
  const Error odd = config_error(image_layers(R"({"residual": {"projection": true},
      "block": [{"conv": {"channels": 6, "kernel": 4, "stride": 2}}]})"));
  EXPECT_EQ(odd.code(), ExitCode::kUsage);
  EXPECT_TRUE(Contains(what(odd),
                       "cfg.json: layers[0].residual.projection: the block maps a 3 x "
                       "8 x 8 image to a 6 x 3 x 3 image"));
  EXPECT_TRUE(Contains(what(odd), "is not a whole multiple of 3 x 3"));
  // A norm on a vector's projection.
  const Error vector_norm = config_error(R"({"input": {"width": 4}, "layers": [
      {"residual": {"projection": {"norm": "batch_norm"}}, "block": [{"width": 6}]}]})");
  EXPECT_TRUE(Contains(what(vector_norm),
                       "layers[0].residual.projection.norm: a norm on the "
                       "projection of a block from 4 wide to 6 wide"));
  // Only batch norm (BatchNorm2d, per channel).
  const Error layer_norm = config_error(downsampling(R"({"projection": {"norm": "layer_norm"}})"));
  EXPECT_TRUE(Contains(what(layer_norm), "a learned projection takes batch_norm"));
  const Error bad_key = config_error(downsampling(R"({"projection": {"init": "he_normal",
                                                                     "nrom": false}})"));
  EXPECT_TRUE(Contains(what(bad_key), "layers[0].residual.projection.nrom"));
}

TEST(ConfigResnetProjection, TheResolvedConfigStatesInitAndNormAndRoundTrips) {
  const RunSpec spec = parse(downsampling("{\"projection\": true}"));
  const Json j = Json::parse(gradscope::run_spec_to_json(spec));
  EXPECT_EQ(j["layers"][0]["residual"]["projection"],
            Json::parse(R"({"init": {"name": "he_normal", "gain": 1.0, "mode": "fan_out"},
                            "norm": {"name": "batch_norm", "eps": 1e-05}})"));
  expect_round_trip(spec);
  const RunSpec no_norm = parse(downsampling(R"({"projection": {"norm": false}})"));
  EXPECT_EQ(Json::parse(gradscope::run_spec_to_json(
                no_norm))["layers"][0]["residual"]["projection"]["norm"],
            false);
  const RunSpec back =
      parse(gradscope::run_spec_to_json(no_norm));  // "norm": false stays without a norm
  EXPECT_FALSE(back.layers[0].residual->projection_norm.has_value());
}

// ---- Fixup (Zhang et al. 2019): L residual branches of m weight layers each.

// An image ResNet without norms: a stem conv, then `blocks` blocks of `branch` under `residual`.
std::string fixup_net(int blocks, const std::string& branch,
                      const std::string& residual = R"({"preset": "fixup"})") {
  return image_layers(R"({"conv": {"channels": 4, "kernel": 3, "padding": 1}},
      {"repeat": )" + std::to_string(blocks) +
                      R"(, "residual": )" + residual + R"(, "block": [)" + branch + R"(]},
      {"pool": {"kind": "global_average"}}, {"flatten": {}},
      {"width": 3, "activation": "linear"})");
}

const char* const kBasicBranch =
    R"({"conv": {"channels": 4, "kernel": 3, "padding": 1}, "activation": "relu"},
       {"conv": {"channels": 4, "kernel": 3, "padding": 1}, "activation": "linear"})";

TEST(ConfigResnetFixup, BasicBlocksScaleByLToTheMinusHalfAndZeroTheLastLayer) {
  // L = 3 branches of m = 2 layers: L^(-1/(2m-2)) = 3^(-1/2).
  const RunSpec spec = parse(fixup_net(3, kBasicBranch));
  const LayerItem& block = spec.layers[1];
  EXPECT_DOUBLE_EQ(block.block[0].op.conv.init.gain, 1.0 / std::sqrt(3.0));
  EXPECT_EQ(block.block[0].op.conv.init.kind, Init::kHeNormal);
  EXPECT_EQ(block.block[1].op.conv.init.kind, Init::kZeros);
  // Outside the branches nothing changes.
  EXPECT_EQ(spec.layers[0].op.conv.init.gain, 1.0);
  EXPECT_EQ(spec.layers[0].op.conv.init.kind, Init::kHeNormal);
}

TEST(ConfigResnetFixup, BottlenecksOfThreeLayersScaleByLToTheMinusQuarter) {
  // L = 2 + 3 = 5 branches over two block items, m = 3: 5^(-1/4) on the first two layers.
  const RunSpec spec = parse(image_layers(R"(
      {"conv": {"channels": 4, "kernel": 1}},
      {"repeat": 2, "residual": {"preset": "fixup"},
       "block": [{"conv": {"channels": 2, "kernel": 1}, "init": {"name": "he_normal", "gain": 2}},
                 {"conv": {"channels": 2, "kernel": 3, "padding": 1}},
                 {"conv": {"channels": 4, "kernel": 1}, "activation": "linear"}]},
      {"repeat": 3, "residual": true,
       "block": [{"conv": {"channels": 4, "kernel": 3, "padding": 1}}]})"));
  const LayerItem& block = spec.layers[1];
  const double factor = std::pow(5.0, -0.25);
  EXPECT_DOUBLE_EQ(block.block[0].op.conv.init.gain, 2.0 * factor);  // the given gain, scaled
  EXPECT_DOUBLE_EQ(block.block[1].op.conv.init.gain, factor);
  EXPECT_EQ(block.block[2].op.conv.init.kind, Init::kZeros);
  // A block without the preset keeps its inits.
  EXPECT_EQ(spec.layers[2].block[0].op.conv.init.gain, 1.0);
}

TEST(ConfigResnetFixup, TheResolvedConfigStatesTheInitsAndNotThePresetAndRoundTrips) {
  const RunSpec spec = parse(fixup_net(4, kBasicBranch));
  const Json j = Json::parse(gradscope::run_spec_to_json(spec));
  const Json& block = j["layers"][1];
  EXPECT_FALSE(block["residual"].contains("preset"));
  EXPECT_EQ(block["block"][0]["init"],
            Json::parse(R"({"name": "he_normal", "gain": 0.5, "mode": "fan_in"})"));
  EXPECT_EQ(block["block"][1]["init"]["name"], "zeros");
  // Read back, the inits are what the preset made (not scaled a second time).
  expect_round_trip(spec);
}

TEST(ConfigResnetFixup, RefusesOneLayerBranchesNormsAndPostNorms) {
  const Error one = config_error(fixup_net(2, R"({"conv": {"channels": 4, "kernel": 1}})"));
  EXPECT_EQ(one.code(), ExitCode::kUsage);
  EXPECT_TRUE(Contains(what(one),
                       "cfg.json: layers[1].residual.preset: a Fixup branch needs at "
                       "least two weight layers, this one has 1"));
  const Error norm = config_error(
      fixup_net(2, R"({"conv": {"channels": 4, "kernel": 3, "padding": 1}, "norm": "batch_norm"},
                      {"conv": {"channels": 4, "kernel": 1}})"));
  EXPECT_TRUE(Contains(what(norm), "layers[1].block[0]: a norm in a Fixup branch"));
  const Error post = config_error(fixup_net(
      2, kBasicBranch, R"({"preset": "fixup", "placement": "post_norm", "norm": "layer_norm"})"));
  EXPECT_TRUE(Contains(what(post), "layers[1].residual.preset: a Fixup block takes no post-norm"));
  const Error unknown = config_error(fixup_net(2, kBasicBranch, R"({"preset": "fixupp"})"));
  EXPECT_TRUE(Contains(what(unknown), "layers[1].residual.preset: unknown preset \"fixupp\""));
}

}  // namespace
