// The input-output Jacobian spectrum: exact for orthogonal linear stacks (far below double's
// range too), the identity through a scale-0 residual, the mean-field mean squared singular value
// for Gaussian weights, and the refusals.
#include <gtest/gtest.h>

#include <cmath>

#include "gradscope/core/error.hpp"
#include "gradscope/engine/engine.hpp"
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
