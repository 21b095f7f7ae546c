// The input-output Jacobian spectrum: exact for orthogonal linear stacks (far below double's
// range too), the identity through a scale-0 residual, the mean-field mean squared singular value
// for Gaussian weights, and the refusals.
#include <gtest/gtest.h>

#include <Eigen/SVD>
#include <cmath>

#include "gradscope/core/error.hpp"
#include "gradscope/engine/engine.hpp"
#include "gradscope/theory/apjn.hpp"
#include "gradscope/theory/jacobian.hpp"

namespace gradscope {
namespace {

RunSpec stack(Activation act, Init init, int depth, int width, double gain = 1.0) {
  RunSpec spec;
  spec.seed = 4;
  spec.precision = Precision::kFloat64;
  spec.input.width = width;
  spec.input.batch = 8;
  spec.stack.depth = depth;
  spec.stack.layer.width = width;
  spec.stack.layer.activation = default_spec(act);
  spec.stack.layer.init.kind = init;
  spec.stack.layer.init.gain = gain;
  spec.stats.jacobian_examples = 3;
  return spec;
}

TEST(Jacobian, OrthogonalLinearStackHasEverySingularValueEqualToGainToTheDepth) {
  // J = prod (g Q_l): all singular values g^L exactly; 0.5^1500 ~ 1e-452 is below double's range.
  const Report r = run_diagnostic(stack(Activation::kLinear, Init::kOrthogonal, 1500, 16, 0.5));
  ASSERT_TRUE(r.jacobian.has_value());
  const double expected = 1500 * std::log10(0.5);
  // Double rounding of 1500 orthogonal products: ~1e-13 per layer in log10.
  EXPECT_NEAR(r.jacobian->log10_max, expected, 1e-9);
  EXPECT_NEAR(r.jacobian->log10_min, expected, 1e-9);
  EXPECT_NEAR(r.jacobian->log10_condition, 0.0, 1e-9);
  EXPECT_EQ(r.jacobian->examples, 3);
  EXPECT_EQ(r.jacobian->singular_values_per_example, 16);
  std::int64_t total = 0;
  for (auto c : r.jacobian->histogram_counts) total += c;
  EXPECT_EQ(total, 3 * 16);
}

TEST(Jacobian, ScaleZeroResidualIsTheIdentity) {
  RunSpec spec = stack(Activation::kTanh, Init::kXavierNormal, 1, 12);
  LayerItem d;
  d.op.kind = OpKind::kDense;
  d.op.dense.width = 12;
  d.op.dense.activation = default_spec(Activation::kTanh);
  LayerItem block;
  block.block = {d, d};
  block.repeat = 3;
  block.residual = ResidualSpec{0.0, false, {}};
  spec.layers = {block};
  const Report r = run_diagnostic(spec);
  ASSERT_TRUE(r.jacobian.has_value());
  EXPECT_NEAR(r.jacobian->log10_max, 0.0, 1e-14);
  EXPECT_NEAR(r.jacobian->log10_min, 0.0, 1e-14);
}

TEST(Jacobian, GaussianWeightsGiveTheMeanFieldMeanSquaredSingularValue) {
  // Pennington et al. 2017: E[mean s^2] = prod_l sw2 E[phi'^2] (equal widths). Tanh with Xavier:
  // ordered, so the product shrinks geometrically with depth.
  RunSpec spec = stack(Activation::kTanh, Init::kXavierNormal, 10, 256);
  spec.precision = Precision::kFloat32;
  spec.stats.jacobian_examples = 4;
  const Report r = run_diagnostic(spec);
  ASSERT_TRUE(r.jacobian.has_value());
  ASSERT_TRUE(r.jacobian->has_prediction);
  EXPECT_LT(r.jacobian->predicted_log10_mean_square, -0.5);
  // Finite width: sd of ln ||J||^2 about sqrt(5 * 10 / 256) = 0.44, i.e. 0.19 in log10; 3 sd.
  EXPECT_NEAR(r.jacobian->log10_mean_square, r.jacobian->predicted_log10_mean_square, 0.6);
}

LayerItem conv_item(int channels, int stride, Activation act) {
  LayerItem c;
  c.op.kind = OpKind::kConv;
  c.op.conv.channels = channels;
  c.op.conv.kernel_h = c.op.conv.kernel_w = 3;
  c.op.conv.stride_h = c.op.conv.stride_w = stride;
  c.op.conv.pad_h = c.op.conv.pad_w = 1;
  c.op.conv.activation = default_spec(act);
  c.op.conv.init.kind = Init::kHeNormal;
  c.op.conv.bias_init.kind = BiasInit::kNormal;
  c.op.conv.bias_init.std = 0.1;
  return c;
}

LayerItem pool_item(PoolKind kind, int kernel, int stride, int pad) {
  LayerItem p;
  p.op.kind = OpKind::kPool;
  p.op.pool.kind = kind;
  p.op.pool.kernel_h = p.op.pool.kernel_w = kernel;
  p.op.pool.stride_h = p.op.pool.stride_w = stride;
  p.op.pool.pad_h = p.op.pool.pad_w = pad;
  return p;
}

// Image networks: the spectrum of the Jacobian through convolutions (strided), max pooling with
// overlapping padded windows, average and global pooling and a flatten. Both go through the
// tangent rules of tangents.hpp (checked against central differences in test_apjn): this checks
// the spectrum's wiring, identity tangents of one example, the exponent and the SVD.
TEST(Jacobian, ConvolutionsAndPoolingGiveTheTangentsSpectrum) {
  RunSpec spec = stack(Activation::kTanh, Init::kHeNormal, 1, 8);
  spec.input.image = {3, 8, 8};
  spec.input.width = spec.input.image.size();
  spec.input.batch = 2;
  spec.stats.jacobian_examples = 1;
  LayerItem flatten;
  flatten.op.kind = OpKind::kFlatten;
  LayerItem dense;
  dense.op.kind = OpKind::kDense;
  dense.op.dense.width = 10;
  dense.op.dense.activation = default_spec(Activation::kLinear);
  spec.layers = {conv_item(8, 1, Activation::kTanh),
                 pool_item(PoolKind::kMax, 3, 2, 1),
                 conv_item(12, 2, Activation::kGelu),
                 pool_item(PoolKind::kAverage, 2, 1, 1),
                 conv_item(16, 1, Activation::kRelu),
                 pool_item(PoolKind::kGlobalAverage, 1, 1, 0),
                 flatten,
                 dense};
  const Report r = run_diagnostic(spec);
  ASSERT_TRUE(r.jacobian.has_value());
  ThreadPool pool(1);
  const Network<double> net = build_network<double>(spec, pool);
  const Mat<double> x = make_input<double>(spec).col(0);
  const Eigen::MatrixXd identity = Eigen::MatrixXd::Identity(x.rows(), x.rows());
  const Eigen::VectorXd s =
      Eigen::JacobiSVD<Eigen::MatrixXd>(forward_tangents(spec, net, x, identity, pool).back())
          .singularValues();
  ASSERT_EQ(r.jacobian->singular_values_per_example, 10);
  // Two computations of one (10, 192) matrix in double, then two SVDs: 1e-12 in log10.
  EXPECT_NEAR(r.jacobian->log10_max, std::log10(s.maxCoeff()), 1e-12);
  EXPECT_NEAR(r.jacobian->log10_min, std::log10(s.minCoeff()), 1e-12);
}

// Xiao et al. (2018) through the report: a 32-layer tanh CNN at the critical point keeps its
// spectrum near 1 with delta-orthogonal kernels and spreads it over decades with Gaussian ones.
TEST(Jacobian, DeltaOrthogonalKeepsADeepTanhCnnIsometricInTheReport) {
  const auto condition = [](Init init) {
    RunSpec spec = stack(Activation::kTanh, init, 1, 8);
    spec.input.image = {4, 5, 5};
    spec.input.width = spec.input.image.size();
    spec.input.batch = 2;
    spec.input.std = 0.01;  // q* = 0 at sw2 = 1: the critical point
    spec.stats.jacobian_examples = 2;
    LayerItem c = conv_item(4, 1, Activation::kTanh);
    c.op.conv.bias = false;
    c.op.conv.init.kind = init;
    spec.layers.assign(32, c);
    const Report r = run_diagnostic(spec);
    return r.jacobian->log10_condition;
  };
  // Measured: within 10% of 1 (log10 condition < 0.1) against 17 decades; see
  // test_delta_orthogonal.
  EXPECT_LT(condition(Init::kDeltaOrthogonal), 0.1);
  EXPECT_GT(condition(Init::kLecunNormal), 6.0);
}

TEST(Jacobian, RefusesAboveTheDocumentedSizeBeforeRunning) {
  RunSpec spec = stack(Activation::kRelu, Init::kHeNormal, 100, 2048);
  spec.stats.jacobian_examples = 8;
  try {
    run_diagnostic(spec);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--jacobian refused"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("GFLOP"), std::string::npos) << e.what();
  }
}

TEST(Jacobian, RefusesBatchNormWhichCouplesExamples) {
  RunSpec spec = stack(Activation::kRelu, Init::kHeNormal, 1, 8);
  LayerItem d;
  d.op.kind = OpKind::kDense;
  d.op.dense.width = 8;
  LayerItem n;
  n.op.kind = OpKind::kNorm;
  n.op.norm.kind = NormKind::kBatchNorm;
  spec.layers = {d, n};
  EXPECT_THROW(run_diagnostic(spec), Error);
}

}  // namespace
}  // namespace gradscope
