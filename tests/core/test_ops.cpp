// Each op of the op table (src/core/ops/op.hpp) on its own: its backward against central
// differences of its own forward in double, and a table that covers every OpKind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/ops/conv_kernels.hpp"
#include "core/ops/op.hpp"
#include "gradscope/core/rng.hpp"

namespace gradscope {
namespace {

using Matrix = Eigen::MatrixXd;

// Central differences with h = 1e-5 in double: truncation ~h^2 and rounding ~1e-16 / h, relative
// to the loss, stay near 1e-10; the worst seen is 5e-8 (small entries of a softmax layer's dW), so
// 1e-6 over |a| + |b| leaves 20x room and still catches any wrong term.
constexpr double kStep = 1e-5;
constexpr double kTolerance = 1e-6;
// Entries far below the tensor's largest (a dead ReLU unit, a norm's null direction) are rounding
// around 0 on both sides: |a| + |b| is floored at this fraction of the largest |analytic| entry.
constexpr double kRelativeFloor = 1e-6;
// Central differences of a gradient that is exactly 0 read rounding, about 1e-16 |L| / h.
constexpr double kZeroDifference = 1e-9;

Matrix gaussian(Eigen::Index rows, Eigen::Index cols, std::uint64_t stream) {
  Matrix m(rows, cols);
  fill_normal(stream_key(7, stream, StreamPurpose::kInput), 0, static_cast<std::uint64_t>(m.size()),
              m.data());
  return m;
}

// One op between fixed matrices: the input, the skip path's value and the weights.
struct OpUnderTest {
  OpSpec op;
  Matrix inp;
  Matrix skip;    // residual end only
  Matrix weight;  // dense W, projected residual P
  Eigen::VectorXd bias;
  Eigen::Index width = 0;
  Eigen::Index tokens = 1;  // attention: columns per example
};

// y = op(inp) through the table, as a recomputation does it (no statistics).
Matrix forward(const OpUnderTest& t, ThreadPool& pool, ops::OpCache<double>& cache) {
  cache.out.resize(t.width, t.inp.cols());
  const ops::ForwardArgs<double> args{.op = t.op,
                                      .index = 3,
                                      .seed = 11,
                                      .inp = t.inp,
                                      .skip = &t.skip,
                                      .weight = t.weight,
                                      .bias = t.bias,
                                      .tokens = t.tokens,
                                      .keep = true,
                                      .saturation_threshold = 0.05,
                                      .pool = pool};
  ops::op_kernels<double>(t.op.kind).forward(args, cache, nullptr);
  return cache.out;
}

// The pre-activation whose kinks a step must not cross; empty for ops without an activation.
Matrix preact(const OpUnderTest& t) {
  if (t.op.kind == OpKind::kDense) return (t.weight * t.inp).colwise() + t.bias;
  if (t.op.kind == OpKind::kConv) {
    ThreadPool one(1);
    Matrix h;
    ops::conv2d_forward<double>(t.inp, t.weight, t.bias, ops::conv_shape(t.op.conv), h, one);
    return h;
  }
  if (t.op.kind == OpKind::kGlu) return t.weight.topRows(t.op.glu.hidden) * t.inp;
  return t.op.kind == OpKind::kActivation ? t.inp : Matrix();
}

const ActivationSpec* activation_of(const OpSpec& op) {
  if (op.kind == OpKind::kDense) return &op.dense.activation;
  if (op.kind == OpKind::kConv) return &op.conv.activation;
  if (op.kind == OpKind::kGlu) return &op.glu.activation;
  return op.kind == OpKind::kActivation ? &op.activation : nullptr;
}

// Whether h and h2 lie on different sides of one of the activation's kinks somewhere: a central
// difference across a kink measures neither one-sided slope (ReLU's may be 0 or 1 at 0).
bool crosses_kink(const OpUnderTest& t, const Matrix& h, const Matrix& h2) {
  const ActivationSpec* act = activation_of(t.op);
  if (act == nullptr || act->kind == Activation::kSoftmax) return false;
  for (double k : kinks(*act)) {
    if (((h.array() > k) != (h2.array() > k)).any()) return true;
  }
  return false;
}

struct OpGradients {
  Matrix dinp;
  Matrix dskip;   // residual end: the skip path's share
  Matrix djoint;  // residual end: dinp + dskip as its begin adds them, for one value on both paths
  Matrix dweight;
  Eigen::VectorXd dbias;
};

// Backward from the cotangent c through the table, unscaled; a residual end is followed by its
// begin.
OpGradients backward(const OpUnderTest& t, const Matrix& c, ThreadPool& pool) {
  ops::OpCache<double> cache;
  forward(t, pool, cache);
  MomentAccumulator acc;
  ops::accumulate_moments<double>(t.inp, acc);
  const ops::ValueRange range = ops::range_of(acc.finish());
  const ForwardStats fs;
  const OptimizerSpec optimizer;
  const ops::BackwardArgs<double> args{.op = t.op,
                                       .index = 3,
                                       .seed = 11,
                                       .inp = t.inp,
                                       .inp_range = range,
                                       .cache = cache,
                                       .forward = fs,
                                       .weight = t.weight,
                                       .bias = t.bias,
                                       .tokens = t.tokens,
                                       .weight_norm = 1.0,
                                       .need_dinp = true,
                                       .optimizer = optimizer,
                                       .pool = pool};
  BackwardStats bs;
  OpGradients out;
  const ops::BackwardReport report{.stats = &bs, .dweight = &out.dweight, .dbias = &out.dbias};
  ops::ScaledGrad<double> grad;
  grad.g = c;
  ops::op_kernels<double>(t.op.kind).backward(args, grad, report);
  out.dinp = ops::unscaled(grad.g, grad.exp2);
  if (t.op.kind == OpKind::kResidualEnd) {
    out.dskip = ops::unscaled(grad.skips.back().first, grad.skips.back().second);
    // The begin joins the paths where they leave one value: only a skip as wide as the branch
    // (with a projection, the branch's own ops would bring its gradient back to the skip's width).
    if (t.skip.rows() == t.inp.rows()) {
      ops::op_kernels<double>(OpKind::kResidualBegin).backward(args, grad, report);
      out.djoint = ops::unscaled(grad.g, grad.exp2);
    }
  }
  return out;
}

// Largest error of `analytic` against central differences of L = <c, op(...)> over the entries
// of `param` (a member of t, perturbed in place); entries whose step crosses a kink are skipped.
template <class Param>
double worst_error(OpUnderTest& t, Param& param, const Param& analytic, const Matrix& c,
                   ThreadPool& pool, int& skipped) {
  EXPECT_EQ(analytic.rows(), param.rows());
  EXPECT_EQ(analytic.cols(), param.cols());
  double worst = 0.0;
  const double floor = kRelativeFloor * analytic.cwiseAbs().maxCoeff();
  ops::OpCache<double> cache;
  for (Eigen::Index j = 0; j < param.cols(); ++j) {
    for (Eigen::Index i = 0; i < param.rows(); ++i) {
      const double keep = param(i, j);
      param(i, j) = keep + kStep;
      const double up = (c.array() * forward(t, pool, cache).array()).sum();
      const Matrix h_up = preact(t);
      param(i, j) = keep - kStep;
      const double down = (c.array() * forward(t, pool, cache).array()).sum();
      const Matrix h_down = preact(t);
      param(i, j) = keep;
      if (crosses_kink(t, h_up, h_down)) {
        ++skipped;
        continue;
      }
      const double fd = (up - down) / (2.0 * kStep);
      const double a = analytic(i, j);
      // A structural zero (attention's key bias: softmax ignores a shift of a whole row) against
      // central differences at their rounding level, about 1e-16 |L| / h = 1e-10 here.
      if (std::abs(a) <= 1e-12 && std::abs(fd) <= kZeroDifference) continue;
      worst = std::max(worst, std::abs(a - fd) / (std::abs(a) + std::abs(fd) + floor));
    }
  }
  return worst;
}

// Checks every gradient the op gives against central differences.
void expect_matches_central_differences(OpUnderTest t, const std::string& what) {
  SCOPED_TRACE(what);
  ThreadPool pool(2);
  const Matrix c = gaussian(t.width, t.inp.cols(), 99);  // dL/dy, (width, batch)
  const OpGradients g = backward(t, c, pool);
  int skipped = 0;
  EXPECT_LE(worst_error(t, t.inp, g.dinp, c, pool, skipped), kTolerance) << "dinp";
  const bool params = t.op.kind == OpKind::kDense || t.op.kind == OpKind::kConv ||
                      t.op.kind == OpKind::kAttention || t.op.kind == OpKind::kGlu ||
                      (t.op.kind == OpKind::kNorm && t.weight.size() > 0) ||
                      (t.op.kind == OpKind::kResidualEnd && t.op.residual.conv_projection());
  if (params) {
    EXPECT_LE(worst_error(t, t.weight, g.dweight, c, pool, skipped), kTolerance) << "dweight";
    if (t.bias.size() > 0) {
      EXPECT_LE(worst_error(t, t.bias, g.dbias, c, pool, skipped), kTolerance) << "dbias";
    }
  }
  if (t.op.kind == OpKind::kResidualEnd) {
    // dskip alone: the branch's input held apart from the skip's.
    EXPECT_LE(worst_error(t, t.skip, g.dskip, c, pool, skipped), kTolerance) << "dskip";
    if (t.skip.rows() == t.inp.rows()) {
      // The begin joins the two paths where they leave one value: exactly the sum at one scale.
      EXPECT_EQ(g.djoint, g.dinp + g.dskip);
    }
  }
  // The inputs are Gaussian: a step across a kink is rare, never a quarter of the entries.
  EXPECT_LE(skipped, static_cast<int>(t.inp.size() / 4));
}

OpUnderTest with_input(OpSpec op, Eigen::Index n_in, Eigen::Index width) {
  OpUnderTest t;
  t.op = op;
  t.inp = gaussian(n_in, 6, 1);
  t.width = width;
  return t;
}

TEST(OpTable, HasOneRowPerOpKindInTheEnumsOrder) {
  for (int k = 0; k < ops::kOpKindCount; ++k) {
    const auto kind = static_cast<OpKind>(k);
    EXPECT_EQ(ops::op_info(kind).kind, kind);
    EXPECT_EQ(ops::op_kernels<float>(kind).kind, kind);
    EXPECT_EQ(ops::op_kernels<double>(kind).kind, kind);
    EXPECT_NE(ops::op_kernels<float>(kind).forward, nullptr);
    EXPECT_NE(ops::op_kernels<double>(kind).backward, nullptr);
  }
  EXPECT_TRUE(ops::op_info(OpKind::kResidualBegin).marker);
  EXPECT_TRUE(ops::op_info(OpKind::kDense).has_params);
  EXPECT_TRUE(ops::op_info(OpKind::kNorm).has_params);
  EXPECT_FALSE(ops::op_info(OpKind::kDropout).has_params);
}

TEST(OpGradients, EveryActivationOpMatchesCentralDifferences) {
  for (int k = 0; k < kActivationCount; ++k) {
    OpSpec op;
    op.kind = OpKind::kActivation;
    op.activation = default_spec(static_cast<Activation>(k));
    expect_matches_central_differences(with_input(op, 5, 5),
                                       std::string(activation_info(op.activation.kind).name));
  }
}

TEST(OpGradients, DenseWithEveryActivationMatchesCentralDifferencesInInputWeightAndBias) {
  for (int k = 0; k < kActivationCount; ++k) {
    OpSpec op;
    op.kind = OpKind::kDense;
    op.dense.activation = default_spec(static_cast<Activation>(k));
    OpUnderTest t = with_input(op, 5, 4);
    t.weight = gaussian(4, 5, 2) * 0.5;
    t.bias = gaussian(4, 1, 3).col(0) * 0.3;
    expect_matches_central_differences(t,
                                       std::string(activation_info(op.dense.activation.kind).name));
  }
}

TEST(OpGradients, EveryNormMatchesCentralDifferences) {
  for (NormKind kind : {NormKind::kBatchNorm, NormKind::kLayerNorm, NormKind::kRmsNorm}) {
    OpSpec op;
    op.kind = OpKind::kNorm;
    op.norm.kind = kind;
    expect_matches_central_differences(with_input(op, 5, 5), std::string(norm_name(kind)));
  }
}

TEST(OpGradients, EveryNormWithTrainedGammaAndBetaMatchesCentralDifferences) {
  for (NormKind kind : {NormKind::kBatchNorm, NormKind::kLayerNorm, NormKind::kRmsNorm}) {
    OpSpec op;
    op.kind = OpKind::kNorm;
    op.norm.kind = kind;
    OpUnderTest t = with_input(op, 5, 5);
    t.weight = gaussian(5, 1, 2).array() + 1.0;  // gamma, (width, 1)
    t.bias = gaussian(5, 1, 3).col(0) * 0.3;     // beta
    expect_matches_central_differences(t, std::string(norm_name(kind)) + " affine");
  }
}

TEST(OpGradients, DropoutMatchesCentralDifferencesWithItsMaskDrawnAgain) {
  OpSpec op;
  op.kind = OpKind::kDropout;
  op.dropout = 0.4;
  expect_matches_central_differences(with_input(op, 5, 5), "dropout");
}

TEST(OpGradients, ResidualEndAndBeginMatchCentralDifferencesOnBothPaths) {
  OpSpec op;
  op.kind = OpKind::kResidualEnd;
  op.residual.scale = 0.7;
  OpUnderTest plain = with_input(op, 5, 5);
  plain.skip = gaussian(5, 6, 4);
  expect_matches_central_differences(plain, "identity skip");
  op.residual.projection = true;
  OpUnderTest projected = with_input(op, 5, 5);
  projected.skip = gaussian(3, 6, 4);
  projected.weight = gaussian(5, 3, 5);
  expect_matches_central_differences(projected, "projected skip");
}

TEST(OpGradients, ResidualSkipScaleMatchesCentralDifferences) {
  OpSpec op;
  op.kind = OpKind::kResidualEnd;
  op.residual.scale = 0.4;
  op.residual.skip = 1.8612097182041991;  // DeepNorm's alpha at N = 6
  OpUnderTest t = with_input(op, 5, 5);
  t.skip = gaussian(5, 6, 4);
  expect_matches_central_differences(t, "skip scale");
}

// torchvision ResNet's downsample on a 3 x 6 x 4 skip: a learned 1x1 convolution with stride 2 to
// 5 x 3 x 2, with and without its batch norm (per channel over 6 examples x 6 positions), under
// skip and branch scales; dinp, dskip and dW against central differences.
TEST(OpGradients, ResidualLearnedConvProjectionMatchesCentralDifferences) {
  for (const bool norm : {true, false}) {
    OpSpec op;
    op.kind = OpKind::kResidualEnd;
    op.residual.scale = 0.7;
    op.residual.skip = 1.3;
    op.residual.projection = true;
    op.residual.skip_image = {3, 6, 4};
    if (norm) op.residual.projection_norm = NormSpec{NormKind::kBatchNorm, 1e-5};
    op.image = {5, 3, 2};
    OpUnderTest t = with_input(op, 30, 30);
    t.skip = gaussian(3 * 6 * 4, 6, 4);
    t.weight = gaussian(5, 3, 5) * 0.6;  // (C_out, C_in)
    expect_matches_central_differences(t, norm ? "conv1x1/2 + batch_norm" : "conv1x1/2");
  }
}

TEST(OpGradients, ResidualLearnedProjectionReportsEachTensorWithPyTorchShapes) {
  OpSpec op;
  op.kind = OpKind::kResidualEnd;
  op.residual.projection = true;
  op.residual.skip_image = {2, 4, 4};
  op.residual.projection_norm = NormSpec{NormKind::kBatchNorm, 1e-5};
  op.image = {3, 2, 2};
  OpUnderTest t = with_input(op, 12, 12);
  t.skip = gaussian(32, 6, 4);
  t.weight = gaussian(3, 2, 5);
  ThreadPool pool(1);
  ops::OpCache<double> cache;
  forward(t, pool, cache);
  MomentAccumulator acc;
  ops::accumulate_moments<double>(t.inp, acc);
  const ops::ValueRange range = ops::range_of(acc.finish());
  const ForwardStats fs;
  const OptimizerSpec optimizer;
  const ops::BackwardArgs<double> args{.op = t.op,
                                       .index = 3,
                                       .seed = 11,
                                       .inp = t.inp,
                                       .inp_range = range,
                                       .cache = cache,
                                       .forward = fs,
                                       .weight = t.weight,
                                       .bias = t.bias,
                                       .tokens = 1,
                                       .weight_norm = 1.0,
                                       .need_dinp = true,
                                       .optimizer = optimizer,
                                       .pool = pool};
  BackwardStats bs;
  Matrix dweight;
  Eigen::VectorXd dbias;
  ops::ScaledGrad<double> grad;
  grad.g = gaussian(12, 6, 99);
  ops::op_kernels<double>(OpKind::kResidualEnd)
      .backward(args, grad, {.stats = &bs, .dweight = &dweight, .dbias = &dbias});
  ASSERT_EQ(bs.params.size(), 3U);
  EXPECT_TRUE(bs.has_weights);
  EXPECT_EQ(bs.params[0].role, "projection.weight");
  EXPECT_EQ(bs.params[0].shape, (std::vector<std::int64_t>{3, 2, 1, 1}));
  EXPECT_DOUBLE_EQ(bs.params[0].norm, t.weight.norm());
  // ||dW|| is the kept gradient's norm (exp2 is 0 here: the cotangent is not rescaled).
  EXPECT_NEAR(bs.params[0].grad_norm.value, dweight.norm(), 1e-12 * dweight.norm());
  EXPECT_EQ(bs.params[1].role, "projection_norm.weight");
  EXPECT_EQ(bs.params[1].shape, (std::vector<std::int64_t>{3}));
  EXPECT_DOUBLE_EQ(bs.params[1].norm, std::sqrt(3.0));  // gamma = 1 per channel
  EXPECT_EQ(bs.params[2].role, "projection_norm.bias");
  EXPECT_EQ(bs.params[2].norm, 0.0);  // beta = 0
  // dbeta_c = the sum of dL/dy over channel c's entries (rows c H' W' .. of every column).
  const Matrix c = gaussian(12, 6, 99);
  double dbeta_sq = 0.0;
  for (int ch = 0; ch < 3; ++ch) {
    const double sum = c.middleRows(ch * 4, 4).sum();
    dbeta_sq += sum * sum;
  }
  EXPECT_NEAR(bs.params[2].grad_norm.value, std::sqrt(dbeta_sq), 1e-12 * std::sqrt(dbeta_sq));
}

// Attention over 2 examples of 3 tokens, width 4: every projection, causal or not, with biases,
// one head or two, the scale of either kind.
OpUnderTest attention_under_test(const AttentionSpec& a) {
  OpSpec op;
  op.kind = OpKind::kAttention;
  op.attention = a;
  OpUnderTest t = with_input(op, 4, 4);
  t.tokens = 3;
  const int count = a.output_projection ? 4 : 3;
  t.weight = gaussian(4 * count, 4, 2) * 0.8;
  if (a.bias) t.bias = gaussian(4 * count, 1, 3).col(0) * 0.3;
  return t;
}

TEST(OpGradients, AttentionMatchesCentralDifferencesInInputWeightsAndBiases) {
  for (bool causal : {true, false}) {
    for (int heads : {1, 2}) {
      AttentionSpec a;
      a.causal = causal;
      a.heads = heads;
      a.bias = heads == 2;
      expect_matches_central_differences(
          attention_under_test(a),
          std::string(causal ? "causal" : "full") + ", heads " + std::to_string(heads));
    }
  }
  AttentionSpec inv_head;
  inv_head.scale_kind = AttentionScaleKind::kInvHead;
  inv_head.output_projection = false;
  expect_matches_central_differences(attention_under_test(inv_head), "1/d_head, no Wo");
}

TEST(OpGradients, AttentionRowsAreSoftmaxesAndCausalRowsSeeOnlyThePast) {
  AttentionSpec a;
  a.heads = 2;
  OpUnderTest t = attention_under_test(a);
  ThreadPool pool(2);
  ops::OpCache<double> cache;
  forward(t, pool, cache);
  // P of (example 1, head 1), rows are queries.
  const Matrix p = cache.probs.middleCols(3 * 3, 3);
  for (Eigen::Index r = 0; r < 3; ++r) {
    EXPECT_NEAR(p.row(r).sum(), 1.0, 1e-15);  // a softmax row, to rounding
    for (Eigen::Index k = r + 1; k < 3; ++k) EXPECT_EQ(p(r, k), 0.0);
  }
  EXPECT_EQ(p(0, 0), 1.0);  // the first token sees only itself
}

TEST(OpGradients, GluWithEveryGateMatchesCentralDifferencesInInputWeightsAndBiases) {
  for (Activation kind : {Activation::kSilu, Activation::kGelu, Activation::kSigmoid,
                          Activation::kRelu, Activation::kTanh}) {
    OpSpec op;
    op.kind = OpKind::kGlu;
    op.glu.hidden = 3;
    op.glu.activation = default_spec(kind);
    op.glu.bias = kind != Activation::kRelu;
    OpUnderTest t = with_input(op, 4, 4);
    t.weight = gaussian(9, 4, 2) * 0.7;  // [W1; W3; W2^T], (3 hidden, d)
    if (op.glu.bias) t.bias = gaussian(10, 1, 3).col(0) * 0.3;
    expect_matches_central_differences(t, std::string(activation_info(kind).name));
  }
}

// ---- Images: conv, pool, flatten, and batch norm per channel.

OpUnderTest conv_under_test(ImageShape in, int channels, Activation act, int kernel, int stride,
                            int pad, int dilation, int groups, bool bias) {
  OpUnderTest t;
  t.op.kind = OpKind::kConv;
  ConvSpec& c = t.op.conv;
  c.channels = channels;
  c.kernel_h = c.kernel_w = kernel;
  c.stride_h = c.stride_w = stride;
  c.pad_h = c.pad_w = pad;
  c.dilation_h = c.dilation_w = dilation;
  c.groups = groups;
  c.bias = bias;
  c.activation = default_spec(act);
  c.in = in;
  t.op.image = c.out();
  t.inp = gaussian(in.size(), 3, 1);
  t.weight = gaussian(channels, c.fan_in(), 2) / std::sqrt(static_cast<double>(c.fan_in()));
  if (bias) t.bias = gaussian(channels, 1, 3).col(0);
  t.width = t.op.image.size();
  return t;
}

TEST(OpGradients, ConvMatchesCentralDifferencesInInputWeightsAndBias) {
  // Groups 2 with stride 2 and padding; dilation 2; depthwise; a 1x1 without bias.
  expect_matches_central_differences(
      conv_under_test({4, 5, 5}, 6, Activation::kTanh, 3, 2, 1, 1, 2, true), "groups 2, stride 2");
  expect_matches_central_differences(
      conv_under_test({2, 6, 5}, 3, Activation::kRelu, 3, 1, 2, 2, 1, true), "dilation 2, relu");
  expect_matches_central_differences(
      conv_under_test({3, 4, 4}, 6, Activation::kGelu, 3, 1, 1, 1, 3, true), "depthwise x2");
  expect_matches_central_differences(
      conv_under_test({3, 4, 4}, 2, Activation::kLinear, 1, 1, 0, 1, 1, false), "1x1, no bias");
}

OpUnderTest pool_under_test(PoolKind kind, ImageShape in, int kernel, int stride, int pad) {
  OpUnderTest t;
  t.op.kind = OpKind::kPool;
  PoolSpec& p = t.op.pool;
  p.kind = kind;
  p.kernel_h = p.kernel_w = kernel;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.in = in;
  t.op.image = p.out();
  t.inp = gaussian(in.size(), 3, 4);
  t.width = t.op.image.size();
  return t;
}

TEST(OpGradients, PoolingAndFlattenMatchCentralDifferences) {
  // Gaussian inputs: no two cells of a window tie, so max pooling is differentiable there.
  expect_matches_central_differences(pool_under_test(PoolKind::kMax, {2, 5, 5}, 3, 2, 1), "max");
  expect_matches_central_differences(pool_under_test(PoolKind::kAverage, {2, 5, 4}, 2, 2, 1),
                                     "average");
  expect_matches_central_differences(pool_under_test(PoolKind::kGlobalAverage, {3, 3, 4}, 1, 1, 0),
                                     "global average");
  OpSpec flatten;
  flatten.kind = OpKind::kFlatten;
  expect_matches_central_differences(with_input(flatten, 12, 12), "flatten");
}

TEST(OpGradients, BatchNormOfAnImageNormalisesEachChannelOverBatchAndPositions) {
  OpSpec op;
  op.kind = OpKind::kNorm;
  op.norm.kind = NormKind::kBatchNorm;
  op.image = {3, 2, 4};
  OpUnderTest t = with_input(op, 24, 24);
  t.inp = (gaussian(24, 6, 5).array() * 3.0 + 1.5).matrix();
  expect_matches_central_differences(t, "batch norm per channel");
  // BatchNorm2d: every channel's 8 positions x 6 examples have mean 0 and (biased) variance 1,
  // up to eps = 1e-5 against a variance of about 9.
  ThreadPool pool(1);
  ops::OpCache<double> cache;
  const Matrix y = forward(t, pool, cache);
  for (int c = 0; c < 3; ++c) {
    const Matrix block = y.middleRows(c * 8, 8);
    const double mean = block.mean();
    const double var = (block.array() - mean).square().mean();
    EXPECT_NEAR(mean, 0.0, 1e-14) << c;
    EXPECT_NEAR(var, 1.0, 1e-5) << c;  // var / (var + eps), eps relative ~1e-6
  }
  EXPECT_EQ(cache.rstd.size(), 3);
}

}  // namespace
}  // namespace gradscope
