// The regime gradscope exists for: exploding float32 networks, overflow to inf and NaN, inputs
// with huge offsets. Every statistic must stay exact there (or say that it is undefined), and a
// float32 run must agree with its float64 twin wherever the twin's values are finite.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "gradscope/core/network.hpp"
#include "gradscope/core/stats.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/theory/jacobian.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

// The exploding ReLU stack: depth 100, width 64, batch 32, He init with gain 1.6. Its
// activations reach rms 1e19 at the top, where x^T x overflows float32 (every value is finite).
RunSpec exploding_relu(Precision precision) {
  RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 100, 64, 32, 21);
  spec.stack.layer.init.gain = 1.6;
  spec.precision = precision;
  return spec;
}

TEST(Float32Overflow, GramOfAnExplodingStackGivesTheWeightGradientAndTheCorrelation) {
  const Report r = run_diagnostic(exploding_relu(Precision::kFloat32));
  for (const LayerReport& l : r.layers) {
    SCOPED_TRACE("layer " + std::to_string(l.index));
    EXPECT_EQ(l.forward.nonfinite, 0);
    // 2e21 at the top; an overflowed Gram used to give exactly 0 (log10 -inf) at layers 96-100.
    EXPECT_TRUE(std::isfinite(l.backward.grad_weight_norm.log10));
    EXPECT_GT(l.backward.grad_weight_norm.value, 0.0);
    if (l.index < 100) {
      EXPECT_TRUE(std::isfinite(l.forward.correlation));
      EXPECT_GT(l.forward.correlation, 0.0);
    }
  }
  EXPECT_GT(r.layers.back().backward.grad_weight_norm.log10, 20.0);
  EXPECT_GT(r.layers[98].forward.correlation, 0.95);
}

// Every statistic of the float32 run beside the same network in float64: the float32 weights
// (the float64 draw rounded) and the float32 input, loaded into the float64 run.
void expect_twins_agree(const RunSpec& spec32, double log10_tol, double corr_tol) {
  RunData saved;
  RunOptions o32;
  o32.save = &saved;
  const Report r32 = run_diagnostic(spec32, o32);
  ExternalData ext;
  ext.weight = saved.weight;
  ext.bias = saved.bias;
  ext.input = saved.input;
  RunSpec spec64 = spec32;
  spec64.precision = Precision::kFloat64;
  RunOptions o64;
  o64.external = &ext;
  const Report r64 = run_diagnostic(spec64, o64);
  ASSERT_EQ(r32.layers.size(), r64.layers.size());
  const auto close = [&](const char* what, double a, double b, double tol) {
    if (!std::isfinite(b)) return;  // only where the float64 value is finite
    EXPECT_NEAR(a, b, tol) << what;
  };
  for (std::size_t i = 0; i < r32.layers.size(); ++i) {
    const LayerReport& a = r32.layers[i];
    const LayerReport& b = r64.layers[i];
    SCOPED_TRACE("layer " + std::to_string(a.index));
    ASSERT_EQ(a.forward.nonfinite, 0);
    close("act rms", std::log10(a.forward.act.rms), std::log10(b.forward.act.rms), log10_tol);
    close("preact rms", std::log10(a.forward.preact.rms), std::log10(b.forward.preact.rms),
          log10_tol);
    close("grad rms", a.backward.grad_preact_rms.log10, b.backward.grad_preact_rms.log10,
          log10_tol);
    close("grad weight", a.backward.grad_weight_norm.log10, b.backward.grad_weight_norm.log10,
          log10_tol);
    // A bias gradient in front of batch norm is 0 in exact arithmetic: both twins hold their
    // precision's rounding noise there (1e-6 and 1e-14 of sqrt(batch) ||delta||), nothing to
    // compare. Elsewhere it is a sum of terms of both signs that float32 rounds to 1e-6 of it.
    const double bias_bound =
        b.backward.grad_preact_rms.log10 +
        0.5 * std::log10(static_cast<double>(b.width) * spec32.input.batch * spec32.input.batch);
    if (b.backward.grad_bias_norm.log10 > bias_bound - 3.0) {
      close("grad bias", a.backward.grad_bias_norm.log10, b.backward.grad_bias_norm.log10,
            log10_tol);
    }
    close("gain", a.backward.gain.log10, b.backward.gain.log10, log10_tol);
    close("correlation", a.forward.correlation, b.forward.correlation, corr_tol);
  }
}

TEST(Float32Overflow, ExplodingStackAgreesWithItsFloat64TwinOnEveryLog10Quantity) {
  // Float32 rounding compounds over 100 layers that each amplify by about 1.6 (the measured
  // worst gap is 2e-6 in log10): 1e-5 in log10 is 2e-5 relative, a hundred float32 roundings.
  expect_twins_agree(exploding_relu(Precision::kFloat32), 1e-5, 1e-5);
}

TEST(Float32Overflow, OffsetInputBeforeBatchNormAgreesWithItsFloat64Twin) {
  // Input mean 1000, std 1: dense -> batch norm -> relu, three times, the Gram path (batch 16).
  RunSpec spec;
  spec.seed = 5;
  spec.input.width = 96;
  spec.input.batch = 16;
  spec.input.mean = 1000.0;
  for (int i = 0; i < 3; ++i) {
    spec.layers.push_back(testing::dense_item(96, Activation::kLinear));
    spec.layers.push_back(testing::norm_item(NormKind::kBatchNorm));
    spec.layers.push_back(testing::activation_item(Activation::kRelu));
  }
  expect_twins_agree(spec, 1e-5, 1e-5);
}

// ---- ||dL/dW|| against the exact norm of g x^T in double, from the very values of the pass.

struct OffsetCase {
  Precision precision;
  double mean;  // of the input
  int batch;    // 16: the Grams; 512: dW itself
  bool adam;    // Adam needs dW's entries whatever the batch
  double rel;   // tolerance
};

__extension__ typedef __float128 Quad;

// ||g x^T||_F in quadruple precision (113 bits): g x^T over 512 examples of mean 1e9 cancels
// about 30 bits, leaving far more than double's 53.
double quad_weight_gradient_norm(const Eigen::MatrixXd& g, const Eigen::MatrixXd& x) {
  Quad total = 0;
  for (Eigen::Index i = 0; i < g.rows(); ++i) {
    for (Eigen::Index j = 0; j < x.rows(); ++j) {
      Quad sum = 0;
      for (Eigen::Index a = 0; a < g.cols(); ++a) sum += static_cast<Quad>(g(i, a)) * x(j, a);
      total += sum * sum;
    }
  }
  return std::sqrt(static_cast<double>(total));
}

template <class Scalar>
void check_weight_gradient_exact(const OffsetCase& c) {
  RunSpec spec;
  spec.seed = 3;
  spec.precision = c.precision;
  spec.input.width = 64;
  spec.input.batch = c.batch;
  spec.input.mean = c.mean;
  spec.layers = {testing::dense_item(48, Activation::kLinear),
                 testing::norm_item(NormKind::kBatchNorm)};
  ThreadPool pool(2);
  const Network<Scalar> net = build_network<Scalar>(spec, pool);
  const Mat<Scalar> x = make_input<Scalar>(spec);
  const Mat<Scalar> probe = make_probe<Scalar>(spec, 48);
  PassOptions opt;
  opt.keep_gradients = true;
  if (c.adam) opt.optimizer.kind = OptimizerKind::kAdam;
  const PassResult r = forward_backward(net, x, probe, opt, pool);
  // The pass's own delta (dpreact, exact in double) and input.
  const double exact = quad_weight_gradient_norm(r.gradients.dpreact[0], x.template cast<double>());
  EXPECT_NEAR(r.backward[0].grad_weight_norm.value / exact, 1.0, c.rel)
      << "mean " << c.mean << " batch " << c.batch;
}

TEST(OffsetInput, WeightGradientNormBeforeBatchNormIsExactInFloat32) {
  // The gradient sums to zero over the batch behind batch norm, so <x^T x, g^T g> cancelled
  // digits: +0.31% at mean 1000. Float32 products over 64 units round to about 1e-6.
  for (const OffsetCase& c : {OffsetCase{Precision::kFloat32, 1000.0, 16, false, 2e-6},
                              OffsetCase{Precision::kFloat32, 1e6, 16, false, 2e-6},
                              OffsetCase{Precision::kFloat32, 1000.0, 512, false, 2e-6},
                              OffsetCase{Precision::kFloat32, 1000.0, 16, true, 2e-6},
                              OffsetCase{Precision::kFloat32, -3e4, 512, true, 2e-6}}) {
    check_weight_gradient_exact<float>(c);
  }
}

TEST(OffsetInput, WeightGradientNormBeforeBatchNormIsExactInFloat64) {
  // 5.7e-6 relative error at mean 1e6 before; double products over 64 units round to ~1e-15.
  for (const OffsetCase& c : {OffsetCase{Precision::kFloat64, 1e6, 16, false, 1e-13},
                              OffsetCase{Precision::kFloat64, 1e9, 16, false, 1e-13},
                              OffsetCase{Precision::kFloat64, 1e6, 512, false, 1e-13}}) {
    check_weight_gradient_exact<double>(c);
  }
}

// ---- NaN is never zero.

TEST(NonFinite, GradientsBehindAForwardOverflowAreUndefinedNeverZero) {
  // Gain 100: float32 overflows at layer 19; a NaN forward value makes relu' undefined, and
  // every gradient below reads "no finite value", not 0 (relu's y > 0 test gives 0 at a NaN).
  RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 40, 64, 32, 0);
  spec.stack.layer.init.gain = 100.0;
  const Report r = run_diagnostic(spec);
  int first_forward = 0;
  for (const LayerReport& l : r.layers) {
    if (first_forward == 0 && l.forward.nonfinite > 0) first_forward = l.index;
  }
  ASSERT_GT(first_forward, 10);
  for (const LayerReport& l : r.layers) {
    SCOPED_TRACE("layer " + std::to_string(l.index));
    const BackwardStats& b = l.backward;
    EXPECT_NE(b.grad_weight_norm.value, 0.0);
    EXPECT_NE(b.grad_preact_rms.value, 0.0);
    if (b.nonfinite == static_cast<std::int64_t>(l.width) * 32) {
      EXPECT_TRUE(std::isnan(b.grad_preact_rms.log10));
    }
    if (b.grad_weight_nonfinite == static_cast<std::int64_t>(l.width) * l.fan_in) {
      EXPECT_TRUE(std::isnan(b.grad_weight_norm.log10));
    }
  }
}

TEST(NonFinite, ANanRowOfTheGradientLeavesTheOtherRowsOfTheWeightGradient) {
  // A NaN bias in unit 2 of the last layer: that unit's output, its delta, row 2 of dW and entry
  // 2 of db are NaN; the norms are over the other entries and the NaN ones are counted, whether
  // the norm comes from the Grams (batch 8) or from dW itself (batch 512).
  for (int batch : {8, 512}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    RunSpec spec = testing::uniform_stack(Activation::kTanh, Init::kXavierNormal, 3, 16, batch, 4);
    spec.precision = Precision::kFloat64;
    ThreadPool pool(1);
    Network<double> net = build_network<double>(spec, pool);
    net.bias[2][2] = std::numeric_limits<double>::quiet_NaN();
    const Eigen::MatrixXd x = make_input<double>(spec);
    const Eigen::MatrixXd probe = make_probe<double>(spec, 16);
    PassOptions opt;
    opt.keep_gradients = true;
    const PassResult r = forward_backward(net, x, probe, opt, pool);
    const BackwardStats& b = r.backward[2];
    EXPECT_EQ(b.grad_weight_nonfinite, 16);
    EXPECT_EQ(b.grad_bias_nonfinite, 1);
    Eigen::MatrixXd dw = r.gradients.dweight[2];
    Eigen::VectorXd db = r.gradients.dbias[2];
    ASSERT_FALSE(std::isfinite(dw(2, 0)));
    dw.row(2).setZero();
    db[2] = 0.0;
    ASSERT_TRUE(dw.allFinite());
    // The same sums in another order: 1e-13.
    EXPECT_NEAR(b.grad_weight_norm.value / dw.norm(), 1.0, 1e-13);
    EXPECT_NEAR(b.grad_bias_norm.value / db.norm(), 1.0, 1e-13);
    // delta holds NaN in one row of 16: the rms is over the finite entries.
    EXPECT_EQ(b.nonfinite, batch);
    EXPECT_TRUE(std::isfinite(b.grad_preact_rms.log10));
    // Below, W^T delta mixes the NaN row into every entry: no finite value, never rms 0.
    EXPECT_TRUE(std::isnan(r.backward[1].grad_preact_rms.log10));
    EXPECT_TRUE(std::isnan(r.backward[1].grad_weight_norm.log10));
    EXPECT_EQ(r.backward[1].grad_weight_nonfinite, 16 * 16);
  }
}

// ---- A norm opening a pre-norm residual block reports the total dL/dx.

TEST(ResidualGradient, NormOpeningABranchReportsTheTotalGradientOfTheBlockInput) {
  // x -> [x + dense(LN(x))] twice: LN's grad_preact is dL/dx, the skip's share included, so it
  // equals the gradient of the op that produced x at its output.
  RunSpec spec;
  spec.seed = 9;
  spec.precision = Precision::kFloat64;
  spec.input.width = 8;
  spec.input.batch = 5;
  spec.layers = {testing::dense_item(8, Activation::kLinear),
                 testing::residual_block(2, {testing::norm_item(NormKind::kLayerNorm),
                                             testing::dense_item(8, Activation::kTanh)})};
  ThreadPool pool(1);
  const Network<double> net = build_network<double>(spec, pool);
  const Eigen::MatrixXd x = make_input<double>(spec);
  const Eigen::MatrixXd probe = make_probe<double>(spec, 8);
  PassOptions opt;
  opt.keep_gradients = true;
  const PassResult r = forward_backward(net, x, probe, opt, pool);
  // Ops: 0 dense (linear: dL/dh = dL/dy), 1 begin, 2 LN, 3 dense, 4 end, 5 begin, 6 LN, ...
  ASSERT_EQ(net.ops[2].kind, OpKind::kNorm);
  // The first dense layer is linear, so its dL/dh is dL/d(its output) = dL/d(block input).
  EXPECT_LT((r.gradients.dpreact[2] - r.gradients.dpreact[0]).norm(),
            1e-12 * r.gradients.dpreact[0].norm());
  EXPECT_NEAR(r.backward[2].grad_preact_rms.log10, r.backward[0].grad_preact_rms.log10, 1e-12);
}

TEST(NonFinite, ALayerWithNoFiniteOutputHasNoDeadUnits) {
  // relu's y > 0 test is false at NaN: a layer of NaN is undefined, not 64 dead units.
  RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 100, 64, 32, 21);
  spec.stack.layer.init.gain = 3.0;
  const Report r = run_diagnostic(spec);
  int undefined = 0;
  for (const LayerReport& l : r.layers) {
    if (l.forward.act.finite > 0) continue;
    ++undefined;
    EXPECT_EQ(l.forward.dead_units, 0) << "layer " << l.index;
  }
  EXPECT_GT(undefined, 5);
}

TEST(Float32Overflow, SubnormalInputsStillGiveTheWeightGradient) {
  // Input std 1e-42: float32 subnormals. Scaling them up by one power of two, 2^139, would
  // overflow float; the weight gradient is 5e-41 in float64, not 0.
  RunSpec spec = testing::uniform_stack(Activation::kRelu, Init::kHeNormal, 10, 16, 8, 0);
  spec.input.std = 1e-42;
  const Report r = run_diagnostic(spec);
  EXPECT_GT(r.layers.front().backward.grad_weight_norm.value, 0.0);
  EXPECT_TRUE(std::isfinite(r.layers.front().backward.grad_weight_norm.log10));
}

// ---- A Jacobian that is exactly 0, and a constant layer's histogram.

TEST(ZeroNetwork, AZeroJacobianHasMeanSquareMinusInfAndNoConditionNumber) {
  // Zero weights: every layer outputs its bias (0), the Jacobian is exactly 0.
  RunSpec spec = testing::uniform_stack(Activation::kTanh, Init::kZeros, 4, 8, 4, 1);
  spec.stats.jacobian_examples = 2;
  const Report r = run_diagnostic(spec);
  ASSERT_TRUE(r.jacobian.has_value());
  EXPECT_TRUE(std::isinf(r.jacobian->log10_mean_square) && r.jacobian->log10_mean_square < 0);
  EXPECT_TRUE(std::isnan(r.jacobian->log10_condition));
  EXPECT_TRUE(r.jacobian->histogram_counts.empty());
  // A constant layer (every output 0): all its entries in the first bin, as documented.
  const std::vector<std::int64_t>& h = r.layers[1].forward.act_histogram;
  ASSERT_EQ(h.size(), static_cast<std::size_t>(kActHistogramBins));
  EXPECT_EQ(h.front(), 8 * 4);
}

}  // namespace
}  // namespace gradscope
