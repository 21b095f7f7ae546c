// The per-channel statistics of image outputs (ForwardStats' channel_mean_sq, channel_var,
// branch_var): against a direct computation, beyond double's range, with non-finite channels, and
// against closed forms on networks (ReLU's mean shift, batch norm, a residual stream).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>

#include "core/layer_stats.hpp"
#include "gradscope/core/network.hpp"
#include "gradscope/engine/engine.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

using testing::activation_item;
using testing::norm_item;
using testing::residual_block;
using testing::uniform_stack;

// The definitions, directly: per channel over (n, h, w), then averaged over the channels.
struct Direct {
  double mean_sq = 0.0;
  double var = 0.0;
};
Direct direct(const Eigen::MatrixXd& y, int channels, int positions) {
  Direct d;
  for (int c = 0; c < channels; ++c) {
    const Eigen::MatrixXd x = y.middleRows(c * positions, positions);
    const double mu = x.mean();
    d.mean_sq += mu * mu / channels;
    d.var += (x.array() - mu).square().mean() / channels;
  }
  return d;
}

Eigen::MatrixXd random_image_batch(int channels, int positions, int batch, unsigned seed) {
  std::srand(seed);
  Eigen::MatrixXd y = Eigen::MatrixXd::Random(channels * positions, batch);
  // Channels of different offsets and spreads, as after a conv.
  for (int c = 0; c < channels; ++c) {
    y.middleRows(c * positions, positions).array() *= 0.5 + c;
    y.middleRows(c * positions, positions).array() += 0.25 * c - 1.0;
  }
  return y;
}

TEST(ChannelMoments, MatchTheDefinitionInDoubleAndFloat) {
  const ImageShape image{5, 3, 4};
  const Eigen::MatrixXd y = random_image_batch(5, 12, 7, 3);
  const Direct want = direct(y, 5, 12);
  ThreadPool pool(2);
  const ops::ChannelMoments got = ops::channel_moments<double>(y, image, pool);
  // Sums of 84 terms in double, each scaled by a power of two: a few roundings.
  EXPECT_NEAR(got.mean_sq.value, want.mean_sq, 1e-14 * want.mean_sq);
  EXPECT_NEAR(got.var.value, want.var, 1e-14 * want.var);
  EXPECT_NEAR(got.var.log10, std::log10(want.var), 1e-14);
  EXPECT_EQ(got.nonfinite_channels, 0);
  // float32 images are summed in double: the same up to the entries' own rounding to float.
  const Eigen::MatrixXf yf = y.cast<float>();
  const Direct want_f = direct(yf.cast<double>(), 5, 12);
  const ops::ChannelMoments got_f = ops::channel_moments<float>(yf, image, pool);
  EXPECT_NEAR(got_f.var.value, want_f.var, 1e-14 * want_f.var);
  EXPECT_NEAR(got_f.mean_sq.value, want_f.mean_sq, 1e-14 * want_f.mean_sq);
}

TEST(ChannelMoments, StayExactBeyondDoublesRange) {
  // 1e200 squares to 1e400, past double: the log10 carries it, exact to rounding.
  const ImageShape image{3, 2, 2};
  const Eigen::MatrixXd y = random_image_batch(3, 4, 5, 8);
  const Direct want = direct(y, 3, 4);
  ThreadPool pool(1);
  const ops::ChannelMoments big = ops::channel_moments<double>(y * 1e200, image, pool);
  EXPECT_EQ(big.var.value, std::numeric_limits<double>::infinity());
  EXPECT_NEAR(big.var.log10, std::log10(want.var) + 400.0, 1e-12);
  EXPECT_NEAR(big.mean_sq.log10, std::log10(want.mean_sq) + 400.0, 1e-12);
  const ops::ChannelMoments tiny = ops::channel_moments<double>(y * 1e-200, image, pool);
  EXPECT_EQ(tiny.var.value, 0.0);
  EXPECT_NEAR(tiny.var.log10, std::log10(want.var) - 400.0, 1e-12);
}

TEST(ChannelMoments, LeaveOutChannelsWithNonFiniteEntriesAndCountThem) {
  const ImageShape image{3, 2, 2};
  Eigen::MatrixXd y = random_image_batch(3, 4, 5, 5);
  const Direct kept = direct(y.bottomRows(8), 2, 4);   // channels 1 and 2
  y(2, 3) = std::numeric_limits<double>::quiet_NaN();  // channel 0
  ThreadPool pool(1);
  const ops::ChannelMoments got = ops::channel_moments<double>(y, image, pool);
  EXPECT_EQ(got.nonfinite_channels, 1);
  EXPECT_NEAR(got.var.value, kept.var, 1e-14 * kept.var);
  y.row(5).setConstant(std::numeric_limits<double>::infinity());   // channel 1
  y.row(9).setConstant(-std::numeric_limits<double>::infinity());  // channel 2
  const ops::ChannelMoments none = ops::channel_moments<double>(y, image, pool);
  EXPECT_EQ(none.nonfinite_channels, 3);
  EXPECT_TRUE(std::isnan(none.var.value));
  EXPECT_TRUE(std::isnan(none.mean_sq.log10));
}

TEST(ChannelMoments, AnAllZeroImageHasZeroMomentsNotNaN) {
  ThreadPool pool(1);
  const ops::ChannelMoments got =
      ops::channel_moments<double>(Eigen::MatrixXd::Zero(12, 3), ImageShape{3, 2, 2}, pool);
  EXPECT_EQ(got.var.value, 0.0);
  EXPECT_EQ(got.mean_sq.value, 0.0);
  EXPECT_EQ(got.nonfinite_channels, 0);
  EXPECT_EQ(got.zero_channels, 3);
}

TEST(ChannelMoments, CountTheChannelsThatAreExactlyZero) {
  Eigen::MatrixXd y = random_image_batch(4, 6, 3, 2);
  y.middleRows(6, 6).setZero();   // channel 1
  y.middleRows(18, 6).setZero();  // channel 3
  y(19, 2) = -0.0;                // a negative zero is still 0
  ThreadPool pool(1);
  const ops::ChannelMoments got = ops::channel_moments<double>(y, ImageShape{4, 2, 3}, pool);
  EXPECT_EQ(got.zero_channels, 2);
  const Direct want = direct(y, 4, 6);
  EXPECT_NEAR(got.var.value, want.var, 1e-14 * want.var);  // zero channels count as variance 0
}

LayerItem conv(int channels, int kernel, Activation act) {
  LayerItem c;
  c.op.kind = OpKind::kConv;
  c.op.conv.channels = channels;
  c.op.conv.kernel_h = c.op.conv.kernel_w = kernel;
  c.op.conv.pad_h = c.op.conv.pad_w = kernel / 2;
  c.op.conv.bias = false;
  c.op.conv.activation = default_spec(act);
  c.op.conv.init.kind = Init::kHeNormal;
  return c;
}

RunSpec image_spec(int channels, int side, int batch) {
  RunSpec spec;
  spec.seed = 4;
  spec.precision = Precision::kFloat64;
  spec.input.image = {channels, side, side};
  spec.input.width = spec.input.image.size();
  spec.input.batch = batch;
  return spec;
}

// ReLU's mean shift (Brock et al. 2021): with z ~ N(0, 1), relu(z) has mean 1/sqrt(2 pi) and
// second moment 1/2. A He conv after it gives channel c the mean mu sum_j W_cj, so over the
// weights E[mu_c^2] = mu^2 fan_in (2 / fan_in) = 1/pi, and the second moment E[h^2] = 1: the
// squared channel mean is 1/pi of the second moment.
TEST(ChannelMoments, AHeConvAfterReluShiftsTheChannelMeansByOneOverPi) {
  RunSpec spec = image_spec(64, 8, 64);
  spec.layers = {activation_item(Activation::kRelu), conv(512, 1, Activation::kLinear)};
  const Report r = run_diagnostic(spec);
  ASSERT_EQ(r.layers.size(), 2u);
  const ForwardStats& relu = r.layers[0].forward;
  ASSERT_TRUE(relu.has_channels);
  // 64 channels x 4096 samples of relu(z): the sample moments are within a few 1e-3.
  EXPECT_NEAR(relu.channel_mean_sq.value, 1.0 / (2.0 * std::numbers::pi), 3e-3);
  EXPECT_NEAR(relu.channel_var.value, 0.5 - 1.0 / (2.0 * std::numbers::pi), 3e-3);
  const ForwardStats& h = r.layers[1].forward;
  const double share = h.channel_mean_sq.value / (h.channel_mean_sq.value + h.channel_var.value);
  // 512 channels, each mu_c^2 a scaled chi-square of 1 degree (relative spread sqrt(2)): their
  // mean is within sqrt(2 / 512) = 6% at one sigma; 4 sigma.
  EXPECT_NEAR(share, 1.0 / std::numbers::pi, 0.25 / std::numbers::pi);
}

// Weight standardisation gives every filter zero mean, sum_j W_cj = 0, so the conv after ReLU
// carries none of its input's mean: mu_c is only the sampling noise of 4096 values per channel.
TEST(ChannelMoments, WeightStandardisationRemovesTheMeanShift) {
  RunSpec spec = image_spec(64, 8, 64);
  LayerItem ws = conv(512, 1, Activation::kLinear);
  ws.op.conv.weight_standardization = true;
  spec.layers = {activation_item(Activation::kRelu), ws};
  const ForwardStats& h = run_diagnostic(spec).layers[1].forward;
  const double share = h.channel_mean_sq.value / (h.channel_mean_sq.value + h.channel_var.value);
  // Each mu_c is a mean of 4096 samples of unit variance: mu_c^2 about 1/4096 = 2.4e-4 of the
  // second moment; 4x that bounds it, against 1/pi = 0.32 without the standardisation.
  EXPECT_LT(share, 1e-3);
}

// Given the weights, the mean is exact up to the sampling of x: mu_c = E[relu(z)] sum_j W_cj.
TEST(ChannelMoments, TheChannelMeanIsTheInputsMeanTimesTheFiltersSum) {
  RunSpec spec = image_spec(64, 8, 64);
  spec.layers = {activation_item(Activation::kRelu), conv(512, 1, Activation::kLinear)};
  ThreadPool pool(1);
  const Network<double> net = build_network<double>(spec, pool);
  const Eigen::VectorXd sums = net.weight[1].rowwise().sum();
  const double mu = 1.0 / std::sqrt(2.0 * std::numbers::pi);
  const double want = mu * mu * sums.squaredNorm() / 512.0;
  const Report r = run_diagnostic(spec);
  // Each mu_c is a mean of 4096 samples of h (variance about 1): off by about 1/64 around
  // sqrt(1/pi), 6% in mu_c^2, averaged over 512 channels: well within 2%.
  EXPECT_NEAR(r.layers[1].forward.channel_mean_sq.value, want, 0.02 * want);
}

// Batch norm per channel: every channel's mean is 0 and its variance s^2 / (s^2 + eps).
TEST(ChannelMoments, BatchNormCentresAndScalesEveryChannel) {
  RunSpec spec = image_spec(8, 6, 16);
  spec.layers = {conv(16, 3, Activation::kRelu), norm_item(NormKind::kBatchNorm)};
  const Report r = run_diagnostic(spec);
  const ForwardStats& bn = r.layers[1].forward;
  ASSERT_TRUE(bn.has_channels);
  EXPECT_LT(bn.channel_mean_sq.value, 1e-28);  // rounding of 576 terms near 1
  // eps = 1e-5 against channel variances near 1: 1 - eps / s^2 within 1e-4 of 1.
  EXPECT_NEAR(bn.channel_var.value, 1.0, 1e-4);
  EXPECT_LT(bn.channel_var.value, 1.0);
}

// A residual end reports its branch's variance; with BN-ReLU-conv branches the stream's channel
// variance grows by about the branch's per block (Brock et al.'s BN-ReLU-ResNet plot).
TEST(ChannelMoments, AResidualEndReportsItsBranchAndTheStreamAddsIt) {
  RunSpec spec = image_spec(16, 8, 32);
  std::vector<LayerItem> branch = {norm_item(NormKind::kBatchNorm),
                                   activation_item(Activation::kRelu),
                                   conv(16, 3, Activation::kLinear)};
  spec.layers = {residual_block(6, branch)};
  const Report r = run_diagnostic(spec);
  double previous = 1.0;  // the input's variance
  int ends = 0;
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const LayerReport& l = r.layers[i];
    if (l.kind != OpKind::kResidualEnd) {
      EXPECT_FALSE(l.forward.has_branch_var);
      continue;
    }
    ++ends;
    ASSERT_TRUE(l.forward.has_branch_var);
    EXPECT_EQ(l.forward.branch_var.value, r.layers[i - 1].forward.channel_var.value);
    // Var(x + F) = Var(x) + Var(F) + 2 Cov: the branch is nearly uncorrelated with the stream at
    // init; the covariance of 1024 samples per channel stays within 15% of the sum.
    const double sum = previous + l.forward.branch_var.value;
    EXPECT_NEAR(l.forward.channel_var.value, sum, 0.15 * sum) << "block " << ends;
    previous = l.forward.channel_var.value;
  }
  EXPECT_EQ(ends, 6);
}

TEST(ChannelMoments, VectorsHaveNone) {
  const Report r = run_diagnostic(uniform_stack(Activation::kRelu, Init::kHeNormal, 2, 8, 4, 1));
  for (const LayerReport& l : r.layers) EXPECT_FALSE(l.forward.has_channels);
}

}  // namespace
}  // namespace gradscope
