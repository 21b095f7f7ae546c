// The averaged partial Jacobian norm: flat for a critical ReLU stack, x3 per unscaled He residual
// block, (1 + 2/L)^L over L blocks scaled by 1/sqrt(L), the tangents against central differences
// (attention and GLU on sequences included) and exact through a dense layer, the fits on exact
// laws, the refusals, and the same bits for any thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "gradscope/core/network.hpp"
#include "gradscope/core/rng.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/theory/apjn.hpp"

namespace gradscope {
namespace {

LayerItem dense(int width, Activation act, Init init) {
  LayerItem d;
  d.op.kind = OpKind::kDense;
  d.op.dense.width = width;
  d.op.dense.activation = default_spec(act);
  d.op.dense.init.kind = init;
  return d;
}

LayerItem norm(NormKind kind) {
  LayerItem n;
  n.op.kind = OpKind::kNorm;
  n.op.norm.kind = kind;
  return n;
}

RunSpec base(int width, int batch = 8) {
  RunSpec spec;
  spec.seed = 5;
  spec.precision = Precision::kFloat64;
  spec.input.width = width;
  spec.input.batch = batch;
  return spec;
}

// An orthogonal linear layer (J = 1 on every direction), then `blocks` residual blocks
// x + scale * V relu(W x), V and W He normal.
RunSpec he_residual(int width, int blocks, double scale) {
  RunSpec spec = base(width);
  LayerItem res;
  res.block = {dense(width, Activation::kRelu, Init::kHeNormal),
               dense(width, Activation::kLinear, Init::kHeNormal)};
  res.repeat = blocks;
  res.residual = ResidualSpec{scale, false, {}};
  spec.layers = {dense(width, Activation::kLinear, Init::kOrthogonal), res};
  return spec;
}

CriticalityStats measure(const RunSpec& spec, int examples = kApjnExamples) {
  ThreadPool pool(1);
  const Network<double> net = build_network<double>(spec, pool);
  return partial_jacobian_norms(spec, net, make_input<double>(spec), pool, examples);
}

double log_j(const CriticalityStats& s, std::size_t i) { return s.apjn[i].log10 * std::log(10.0); }

TEST(Apjn, HeReluStackIsFlat) {
  RunSpec spec = base(1024);
  LayerItem stack;
  stack.block = {dense(1024, Activation::kRelu, Init::kHeNormal)};
  stack.repeat = 16;
  spec.layers = {stack};
  const CriticalityStats s = measure(spec);
  ASSERT_TRUE(s.measured()) << s.reason;
  ASSERT_EQ(s.layers.size(), 16U);
  EXPECT_EQ(s.examples, kApjnExamples);
  EXPECT_EQ(s.tangents, kApjnTangents);
  // sw2 E[relu'^2] = 2 / 2 = 1 per layer, in expectation over networks. One network's ln J drifts
  // by about sqrt(l / N) = 0.13 at l = 16, N = 1024 (measured 0.97 to 1.29 over five seeds): a
  // factor 1.5 is 3 sd.
  EXPECT_GT(s.growth.value, 1.0 / 1.5);
  EXPECT_LT(s.growth.value, 1.5);
  for (std::size_t i = 0; i < s.apjn.size(); ++i) {
    EXPECT_GT(s.apjn[i].value, 1.0 / 1.5) << i;
    EXPECT_LT(s.apjn[i].value, 1.5) << i;
  }
  // ln 1.5 = 0.4 over ln 16 = 2.8 and over 16 layers; the unscaled residual below has r = 0.37.
  EXPECT_NEAR(s.power_exponent, 0.0, 0.15);
  EXPECT_NEAR(s.exponential_rate, 0.0, 0.025);
}

TEST(Apjn, UnscaledHeResidualGrowsThreeTimesPerBlock) {
  const int blocks = 8;
  const CriticalityStats s = measure(he_residual(256, blocks, 1.0));
  ASSERT_TRUE(s.measured()) << s.reason;
  // The stream: the first layer and the blocks' ends (3 reported ops a block).
  ASSERT_EQ(s.layers.size(), static_cast<std::size_t>(blocks + 1));
  EXPECT_EQ(s.layers[1], 4);
  // E ||t + V D W t||^2 = (1 + sv2 sw2 / 2) ||t||^2 = 3 ||t||^2 (the cross term has mean 0).
  // The mean log factor over 8 blocks at width 256 measured 2.94 to 3.03 over five seeds (sd
  // ~1%): 10% is far outside the network-to-network spread.
  const double per_block = std::exp((log_j(s, blocks) - log_j(s, 0)) / blocks);
  EXPECT_NEAR(per_block, 3.0, 0.3);
  EXPECT_EQ(s.fit, ApjnFit::kExponential);
  // ln 3 per block of 3 reported layers; same tolerance as above (ln(1.1) / 3 = 0.03).
  EXPECT_NEAR(s.exponential_rate, std::log(3.0) / 3.0, 0.035);
}

TEST(Apjn, AFloat32StreamThatOverflowsIsNotMeasuredPastItAndItsFloat64TwinIs) {
  // Branches at gain 30: the stream grows about 450x a block and passes float32's 3.4e38 within
  // 16 blocks. Past the overflow the derivatives mean nothing: J there is NaN, not a plateau
  // that a fit would call critical; float64 measures every block.
  RunSpec spec = he_residual(16, 40, 1.0);
  for (LayerItem& d : spec.layers[1].block) d.op.dense.init.gain = 30.0;
  const CriticalityStats f64 = measure(spec);
  ThreadPool pool(1);
  spec.precision = Precision::kFloat32;
  const Network<float> net = build_network<float>(spec, pool);
  const CriticalityStats f32 =
      partial_jacobian_norms(spec, net, make_input<float>(spec), pool, kApjnExamples);
  ASSERT_EQ(f32.apjn.size(), f64.apjn.size());
  EXPECT_TRUE(std::isnan(f32.apjn.back().value));
  EXPECT_TRUE(std::isfinite(f64.apjn.back().log10));
  std::size_t measured = 0;
  while (measured < f32.apjn.size() && std::isfinite(f32.apjn[measured].log10)) ++measured;
  ASSERT_GT(measured, 3u);
  ASSERT_LT(measured, f32.apjn.size());
  // Where both measured, they agree to float32's rounding compounded over the blocks (1%).
  for (std::size_t i = 0; i < measured; ++i) {
    EXPECT_NEAR(f32.apjn[i].log10, f64.apjn[i].log10, 0.01) << i;
  }
  EXPECT_EQ(f32.fit, ApjnFit::kExponential);
  EXPECT_EQ(f64.fit, ApjnFit::kExponential);
  EXPECT_GT(f32.growth.log10, 10.0);
}

TEST(Apjn, BranchesScaledByInverseSqrtDepthGrowByEToTheTwo) {
  const int blocks = 32;
  const CriticalityStats s = measure(he_residual(256, blocks, 1.0 / std::sqrt(blocks)));
  ASSERT_TRUE(s.measured()) << s.reason;
  // Each block multiplies J by 1 + 2/L; (1 + 1/16)^32 = 6.96, e^2 = 7.39 as L grows.
  const double expected = std::pow(1.0 + 2.0 / blocks, blocks);
  // Measured 6.63 to 7.05 over five seeds at width 256 (the branch is 2/L of each factor, so its
  // fluctuations barely reach the product): 10% is about 3 sd.
  EXPECT_NEAR(s.growth.value / expected, 1.0, 0.1);
}

TEST(Apjn, TangentsMatchCentralDifferences) {
  // dense tanh, a residual {layer_norm, dense gelu, dense linear} with projection and scale,
  // rms_norm, softmax: every tangent rule but dropout, on 2 examples x 3 tangents in double.
  RunSpec spec = base(6, 2);
  LayerItem res;
  res.block = {norm(NormKind::kLayerNorm), dense(7, Activation::kGelu, Init::kXavierNormal),
               dense(5, Activation::kLinear, Init::kXavierNormal)};
  res.residual = ResidualSpec{0.7, true, {}};
  LayerItem softmax;
  softmax.op.kind = OpKind::kActivation;
  softmax.op.activation = default_spec(Activation::kSoftmax);
  spec.layers = {dense(5, Activation::kTanh, Init::kXavierNormal), res, norm(NormKind::kRmsNorm),
                 softmax};
  ThreadPool pool(1);
  const Network<double> net = build_network<double>(spec, pool);
  const Mat<double> x = make_input<double>(spec);  // (6, 2)
  const int k = 3;
  Mat<double> u(6, 2 * k);
  fill_normal(stream_key(1, 0, StreamPurpose::kApjnTangent), 0, u.size(), u.data());
  const std::vector<Eigen::MatrixXd> t = forward_tangents(spec, net, x, u, pool);
  ASSERT_EQ(t.size(), net.ops.size());
  const double h = 1e-5;
  for (int a = 0; a < 2; ++a) {
    for (int j = 0; j < k; ++j) {
      Mat<double> xs(6, 2);
      xs.col(0) = x.col(a) + h * u.col(a * k + j);
      xs.col(1) = x.col(a) - h * u.col(a * k + j);
      PassOptions opt;
      opt.keep_outputs = true;
      const Mat<double> probe = Mat<double>::Zero(net.widths.back(), 2);
      const PassResult r = forward_backward(net, xs, probe, opt, pool);
      for (std::size_t l = 0; l < net.ops.size(); ++l) {
        if (net.ops[l].kind == OpKind::kResidualBegin) continue;
        const Eigen::VectorXd fd = (r.outputs[l].col(0) - r.outputs[l].col(1)) / (2 * h);
        const Eigen::VectorXd jt = t[l].col(a * k + j);
        // Central differences: O(h^2 f''') ~ 1e-10 truncation and eps / h ~ 1e-11 rounding.
        EXPECT_LT((fd - jt).norm(), 1e-8 * (1.0 + jt.norm())) << "op " << l << " ex " << a;
      }
    }
  }
}

TEST(Apjn, SequenceTangentsThroughAttentionAndGluMatchCentralDifferences) {
  // A pre-norm transformer block on sequences of 4 tokens: {layer_norm, causal attention of 2
  // heads} and {rms_norm, SwiGLU} as residuals, then a non-causal attention without output
  // projection: attention mixes an example's tokens, so a tangent is a whole sequence.
  constexpr int kTokens = 4;
  RunSpec spec = base(8, 2);
  spec.input.tokens = kTokens;
  LayerItem attn;
  attn.op.kind = OpKind::kAttention;
  attn.op.attention.heads = 2;
  attn.op.attention.bias = true;
  LayerItem attn_block;
  attn_block.block = {norm(NormKind::kLayerNorm), attn};
  attn_block.residual = ResidualSpec{};
  LayerItem glu;
  glu.op.kind = OpKind::kGlu;
  glu.op.glu.hidden = 12;
  LayerItem glu_block;
  glu_block.block = {norm(NormKind::kRmsNorm), glu};
  glu_block.residual = ResidualSpec{0.5, false, {}};
  LayerItem mixing = attn;
  mixing.op.attention.causal = false;
  mixing.op.attention.output_projection = false;
  spec.layers = {attn_block, glu_block, mixing};
  ThreadPool pool(1);
  const Network<double> net = build_network<double>(spec, pool);
  const Mat<double> x = make_input<double>(spec);  // (8, 2 examples x 4 tokens)
  ASSERT_EQ(x.cols(), 2 * kTokens);
  const int k = 3;
  Mat<double> u(8, 2 * kTokens * k);  // tangent j of input column c at column c k + j
  fill_normal(stream_key(3, 0, StreamPurpose::kApjnTangent), 0, u.size(), u.data());
  const std::vector<Eigen::MatrixXd> t = forward_tangents(spec, net, x, u, pool);
  ASSERT_EQ(t.size(), net.ops.size());
  const double h = 1e-5;
  for (int a = 0; a < 2; ++a) {
    for (int j = 0; j < k; ++j) {
      // Example 0: example a's sequence + h u_j; example 1: - h u_j.
      Mat<double> xs(8, 2 * kTokens);
      for (int tok = 0; tok < kTokens; ++tok) {
        const Eigen::VectorXd ut = u.col((a * kTokens + tok) * k + j);
        xs.col(tok) = x.col(a * kTokens + tok) + h * ut;
        xs.col(kTokens + tok) = x.col(a * kTokens + tok) - h * ut;
      }
      PassOptions opt;
      opt.keep_outputs = true;
      const Mat<double> probe = Mat<double>::Zero(net.widths.back(), 2 * kTokens);
      const PassResult r = forward_backward(net, xs, probe, opt, pool);
      for (std::size_t l = 0; l < net.ops.size(); ++l) {
        if (net.ops[l].kind == OpKind::kResidualBegin) continue;
        for (int tok = 0; tok < kTokens; ++tok) {
          const Eigen::VectorXd fd =
              (r.outputs[l].col(tok) - r.outputs[l].col(kTokens + tok)) / (2 * h);
          const Eigen::VectorXd jt = t[l].col((a * kTokens + tok) * k + j);
          // Central differences: O(h^2 f''') ~ 1e-10 truncation and eps / h ~ 1e-11 rounding.
          EXPECT_LT((fd - jt).norm(), 1e-8 * (1.0 + jt.norm()))
              << "op " << l << " example " << a << " token " << tok;
        }
      }
    }
  }
  // And the run measures it: J on the stream after each block.
  const CriticalityStats st = measure(spec);
  EXPECT_TRUE(st.measured()) << st.reason;
  EXPECT_EQ(st.apjn.size(), 3u);
}

TEST(Apjn, ImageTangentsThroughConvAndPoolingMatchCentralDifferences) {
  // conv (stride 2, padding, groups 2, tanh), max pool, conv (dilation 2, relu), average pool,
  // global average pool, flatten, dense: every image tangent rule, 2 examples x 3 tangents.
  RunSpec spec = base(2 * 7 * 7, 2);
  spec.input.image = {2, 7, 7};
  const auto conv = [](int channels, int k, int stride, int pad, int dilation, int groups,
                       Activation act) {
    LayerItem c;
    c.op.kind = OpKind::kConv;
    c.op.conv.channels = channels;
    c.op.conv.kernel_h = c.op.conv.kernel_w = k;
    c.op.conv.stride_h = c.op.conv.stride_w = stride;
    c.op.conv.pad_h = c.op.conv.pad_w = pad;
    c.op.conv.dilation_h = c.op.conv.dilation_w = dilation;
    c.op.conv.groups = groups;
    c.op.conv.activation = default_spec(act);
    c.op.conv.init.kind = Init::kXavierNormal;
    return c;
  };
  const auto pool = [](PoolKind kind, int k, int stride, int pad) {
    LayerItem p;
    p.op.kind = OpKind::kPool;
    p.op.pool.kind = kind;
    p.op.pool.kernel_h = p.op.pool.kernel_w = k;
    p.op.pool.stride_h = p.op.pool.stride_w = stride;
    p.op.pool.pad_h = p.op.pool.pad_w = pad;
    return p;
  };
  LayerItem flatten;
  flatten.op.kind = OpKind::kFlatten;
  spec.layers = {conv(4, 3, 1, 1, 1, 2, Activation::kTanh),       pool(PoolKind::kMax, 2, 1, 0),
                 conv(4, 3, 1, 2, 2, 1, Activation::kGelu),       pool(PoolKind::kAverage, 3, 2, 1),
                 pool(PoolKind::kGlobalAverage, 1, 1, 0),         flatten,
                 dense(3, Activation::kTanh, Init::kXavierNormal)};
  ThreadPool pool1(1);
  const Network<double> net = build_network<double>(spec, pool1);
  const Mat<double> x = make_input<double>(spec);
  const int k = 3;
  const Eigen::Index n0 = x.rows();
  Mat<double> u(n0, 2 * k);
  fill_normal(stream_key(4, 0, StreamPurpose::kApjnTangent), 0, u.size(), u.data());
  const std::vector<Eigen::MatrixXd> t = forward_tangents(spec, net, x, u, pool1);
  const double h = 1e-5;
  for (int a = 0; a < 2; ++a) {
    for (int j = 0; j < k; ++j) {
      Mat<double> xs(n0, 2);
      xs.col(0) = x.col(a) + h * u.col(a * k + j);
      xs.col(1) = x.col(a) - h * u.col(a * k + j);
      PassOptions opt;
      opt.keep_outputs = true;
      const Mat<double> probe = Mat<double>::Zero(net.widths.back(), 2);
      const PassResult r = forward_backward(net, xs, probe, opt, pool1);
      for (std::size_t l = 0; l < net.ops.size(); ++l) {
        const Eigen::VectorXd fd = (r.outputs[l].col(0) - r.outputs[l].col(1)) / (2 * h);
        const Eigen::VectorXd jt = t[l].col(a * k + j);
        // Central differences: O(h^2 f''') ~ 1e-10 truncation and eps / h ~ 1e-11 rounding; a
        // Gaussian input has no tie in a max-pool window for a step of 1e-5 to cross.
        EXPECT_LT((fd - jt).norm(), 1e-8 * (1.0 + jt.norm())) << "op " << l << " ex " << a;
      }
    }
  }
  const CriticalityStats st = measure(spec);
  EXPECT_TRUE(st.measured()) << st.reason;
}

// An NF-ResNet-style block (weight-standardised convs, a strided learned 1x1 projection that is
// itself standardised, no norm): the tangent rules the Jacobian spectrum and J(l) read through
// standardised weights and projections, against central differences.
TEST(Apjn, TangentsThroughStandardisedConvsAndAProjectionMatchCentralDifferences) {
  RunSpec spec = base(3 * 6 * 6, 2);
  spec.input.image = {3, 6, 6};
  const auto conv = [](int channels, int stride, Activation act) {
    LayerItem c;
    c.op.kind = OpKind::kConv;
    c.op.conv.channels = channels;
    c.op.conv.kernel_h = c.op.conv.kernel_w = 3;
    c.op.conv.stride_h = c.op.conv.stride_w = stride;
    c.op.conv.pad_h = c.op.conv.pad_w = 1;
    c.op.conv.activation = default_spec(act);
    c.op.conv.init.kind = Init::kHeNormal;
    c.op.conv.weight_standardization = true;
    c.op.conv.ws_gain = 1.7;
    return c;
  };
  LayerItem block;
  block.block = {conv(5, 2, Activation::kRelu), conv(5, 1, Activation::kLinear)};
  block.residual = ResidualSpec{};
  block.residual->scale = 0.2;
  block.residual->projection = true;
  block.residual->projection_init = InitSpec{Init::kHeNormal};
  block.residual->projection_ws = true;
  block.residual->projection_ws_gain = 0.8;
  spec.layers = {block};
  ThreadPool pool(1);
  const Network<double> net = build_network<double>(spec, pool);
  ASSERT_TRUE(net.ops.back().residual.conv_projection());
  const Mat<double> x = make_input<double>(spec);
  const int k = 2;
  const Eigen::Index n0 = x.rows();
  Mat<double> u(n0, 2 * k);
  fill_normal(stream_key(5, 0, StreamPurpose::kApjnTangent), 0, u.size(), u.data());
  const std::vector<Eigen::MatrixXd> t = forward_tangents(spec, net, x, u, pool);
  const double h = 1e-5;
  for (int a = 0; a < 2; ++a) {
    for (int j = 0; j < k; ++j) {
      Mat<double> xs(n0, 2);
      xs.col(0) = x.col(a) + h * u.col(a * k + j);
      xs.col(1) = x.col(a) - h * u.col(a * k + j);
      PassOptions opt;
      opt.keep_outputs = true;
      const Mat<double> probe = Mat<double>::Zero(net.widths.back(), 2);
      const PassResult r = forward_backward(net, xs, probe, opt, pool);
      const std::size_t last = net.ops.size() - 1;
      const Eigen::VectorXd fd = (r.outputs[last].col(0) - r.outputs[last].col(1)) / (2 * h);
      const Eigen::VectorXd jt = t[last].col(a * k + j);
      // Central differences: O(h^2 f''') ~ 1e-10 truncation and eps / h ~ 1e-11 rounding.
      EXPECT_LT((fd - jt).norm(), 1e-8 * (1.0 + jt.norm())) << "ex " << a << " tangent " << j;
    }
  }
}

TEST(Apjn, OneTangentThroughADenseLayerIsExactlyWTimesU) {
  RunSpec spec = base(16, 3);
  spec.layers = {dense(12, Activation::kRelu, Init::kHeNormal)};
  ThreadPool pool(1);
  const Network<double> net = build_network<double>(spec, pool);
  const Mat<double> x = make_input<double>(spec);
  Mat<double> u(16, 3);
  fill_normal(stream_key(2, 0, StreamPurpose::kApjnTangent), 0, u.size(), u.data());
  const std::vector<Eigen::MatrixXd> t = forward_tangents(spec, net, x, u, pool);
  const Mat<double> h = net.weight[0] * x;
  const Mat<double> wu = net.weight[0] * u;
  for (Eigen::Index a = 0; a < 3; ++a) {
    for (Eigen::Index i = 0; i < 12; ++i) {
      // The same product, then a 0/1 mask: bit for bit.
      EXPECT_EQ(t[0](i, a), h(i, a) > 0.0 ? wu(i, a) : 0.0) << i << "," << a;
    }
  }
}

TEST(Apjn, FitsRecogniseExactLaws) {
  CriticalityStats power, expo;
  for (int l = 1; l <= 30; ++l) {
    power.layers.push_back(l);
    power.apjn.push_back(magnitude_from_log10(1.5 * std::log10(l) + 0.3));
    expo.layers.push_back(l);
    expo.apjn.push_back(magnitude_from_log10(-0.02 * l / std::log(10.0) - 1.0));
  }
  fit_apjn(power);
  fit_apjn(expo);
  // Exact data: only rounding of log10 and ln (1e-15 relative).
  EXPECT_EQ(power.fit, ApjnFit::kPowerLaw);
  EXPECT_NEAR(power.power_exponent, 1.5, 1e-12);
  EXPECT_NEAR(power.power_rss, 0.0, 1e-20);
  EXPECT_NEAR(power.growth.log10, 1.5 * std::log10(30.0), 1e-12);
  EXPECT_EQ(expo.fit, ApjnFit::kExponential);
  EXPECT_NEAR(expo.exponential_rate, -0.02, 1e-12);
  EXPECT_NEAR(expo.exponential_rss, 0.0, 1e-20);
}

TEST(Apjn, RefusesBatchNormWithAReasonAndMeasuresSequences) {
  RunSpec spec = base(8);
  spec.layers = {dense(8, Activation::kRelu, Init::kHeNormal), norm(NormKind::kBatchNorm)};
  const CriticalityStats s = measure(spec);
  EXPECT_FALSE(s.measured());
  EXPECT_NE(s.reason.find("batch norm"), std::string::npos) << s.reason;
  RunSpec seq = base(8);
  seq.input.tokens = 4;
  seq.layers = {dense(8, Activation::kRelu, Init::kHeNormal)};
  EXPECT_EQ(apjn_refusal(seq), "");
}

TEST(Apjn, RunReportsItWithTheSameBitsForAnyThreadCount) {
  // Width 600: three row blocks of the products (kRowsPerTask = 256), so the threads share them.
  RunSpec spec = he_residual(600, 4, 0.5);
  spec.precision = Precision::kFloat32;
  RunOptions one, three;
  one.threads = 1;
  three.threads = 3;
  const Report r1 = run_diagnostic(spec, one);
  const Report r3 = run_diagnostic(spec, three);
  ASSERT_TRUE(r1.criticality && r3.criticality);
  ASSERT_TRUE(r1.criticality->measured());
  ASSERT_EQ(r1.criticality->apjn.size(), r3.criticality->apjn.size());
  for (std::size_t i = 0; i < r1.criticality->apjn.size(); ++i) {
    const double a = r1.criticality->apjn[i].log10, b = r3.criticality->apjn[i].log10;
    EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0) << i;
  }
  EXPECT_EQ(r1.criticality->exponential_rate, r3.criticality->exponential_rate);
}

}  // namespace
}  // namespace gradscope
