// Tests for the losses: values against direct formulas, gradients against central differences,
// stability for huge logits, the seeded targets' distribution, and float against double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/core/loss.hpp"
#include "gradscope/core/rng.hpp"
#include "gradscope/core/spec.hpp"

namespace gradscope {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;

constexpr double kEps = std::numeric_limits<double>::epsilon();

MatrixXd normals(Index rows, Index cols, std::uint64_t seed) {
  MatrixXd m(rows, cols);
  fill_normal(stream_key(seed, 3, StreamPurpose::kInput), 0, static_cast<std::uint64_t>(m.size()),
              m.data());
  return m;
}

std::string label(LossKind kind) { return std::string(loss_name(kind)); }

// The three real losses for an output of `width` units (cross-entropy needs classes = width).
std::vector<LossSpec> losses(int width) {
  return {{LossKind::kMse, 0}, {LossKind::kSoftmaxCrossEntropy, width}, {LossKind::kSigmoidBce, 0}};
}

template <class Scalar>
double run(const LossSpec& spec, const Mat<Scalar>& y, const LossTargets& t, Mat<Scalar>& dy) {
  return loss_forward_backward<Scalar>(spec, y, t, dy);
}

TEST(LossValue, MseMatchesDirectFormula) {
  const LossSpec spec{LossKind::kMse, 0};
  const MatrixXd y = normals(5, 7, 1);
  const LossTargets t = make_targets(spec, 11, 5, 7);
  MatrixXd dy;
  const double loss = run<double>(spec, y, t, dy);
  double direct = 0.0;
  for (Index a = 0; a < 7; ++a) {
    for (Index i = 0; i < 5; ++i)
      direct += 0.5 * (y(i, a) - t.values(i, a)) * (y(i, a) - t.values(i, a));
  }
  direct /= 7.0;
  EXPECT_NEAR(loss, direct, 1e-14 * direct);  // summation order only: a few roundings of 35 terms
  EXPECT_LT((dy - (y - t.values) / 7.0).cwiseAbs().maxCoeff(), 4 * kEps);  // one rounding each
}

TEST(LossValue, SoftmaxCrossEntropyMatchesDirectFormula) {
  const LossSpec spec{LossKind::kSoftmaxCrossEntropy, 6};
  const MatrixXd y = normals(6, 9, 2) * 2.0;
  const LossTargets t = make_targets(spec, 12, 6, 9);
  MatrixXd dy;
  const double loss = run<double>(spec, y, t, dy);
  double direct = 0.0;
  for (Index a = 0; a < 9; ++a) {
    const double z = y.col(a).array().exp().sum();
    const int c = t.labels[static_cast<std::size_t>(a)];
    direct -= std::log(std::exp(y(c, a)) / z);
    for (Index i = 0; i < 6; ++i) {
      const double p = std::exp(y(i, a)) / z - (i == c ? 1.0 : 0.0);
      EXPECT_NEAR(dy(i, a), p / 9.0, 1e-15);  // probabilities <= 1, a few roundings
    }
  }
  direct /= 9.0;
  // The naive formula is fine for |y| < 10 but rounds log(p) near p = 1: 1e-14 relative.
  EXPECT_NEAR(loss, direct, 1e-14 * direct);
}

TEST(LossValue, SigmoidBceMatchesDirectFormula) {
  const LossSpec spec{LossKind::kSigmoidBce, 0};
  const MatrixXd y = normals(4, 8, 3) * 2.0;
  const LossTargets t = make_targets(spec, 13, 4, 8);
  MatrixXd dy;
  const double loss = run<double>(spec, y, t, dy);
  double direct = 0.0;
  for (Index k = 0; k < y.size(); ++k) {
    const double s = 1.0 / (1.0 + std::exp(-y(k)));
    direct -= t.values(k) * std::log(s) + (1.0 - t.values(k)) * std::log(1.0 - s);
    EXPECT_NEAR(dy(k), (s - t.values(k)) / 8.0, 1e-15);  // values <= 1, a few roundings
  }
  direct /= 8.0;
  // log(1 - s) of the naive formula loses up to eps / (1 - s) relative for |y| < 8: 1e-12.
  EXPECT_NEAR(loss, direct, 1e-12 * direct);
}

TEST(LossGradient, MatchesFourthOrderCentralDifferences) {
  const int width = 5;
  const int batch = 4;
  const MatrixXd y = normals(width, batch, 4) * 2.0;
  const double h = 1e-4;
  for (const LossSpec& spec : losses(width)) {
    SCOPED_TRACE(label(spec.kind));
    const LossTargets t = make_targets(spec, 14, width, batch);
    MatrixXd dy;
    run<double>(spec, y, t, dy);
    double worst = 0.0;
    for (Index k = 0; k < y.size(); ++k) {
      auto at = [&](double step) {
        MatrixXd ys = y;
        ys(k) += step;
        MatrixXd unused;
        return run<double>(spec, ys, t, unused);
      };
      const double fd = (at(-2 * h) - 8 * at(-h) + 8 * at(h) - at(2 * h)) / (12 * h);
      worst = std::max(worst, std::abs(fd - dy(k)));
    }
    // Rounding: 1e-16 * |L| (< 20) / h = 2e-11; truncation h^4 / 30 * |L^(5)| < 1e-16 for these
    // smooth losses at |y| < 8. 1e-9 still catches a wrong factor of any gradient entry.
    EXPECT_LT(worst, 1e-9);
  }
}

// Cross-entropy at logits of +-1e4: every exp below the column's max underflows to 0 exactly, so
// L_a = (m - y_c) + log(#max) and dy = (1[y = m] / #max - onehot(c)) / B hold to rounding.
template <class Scalar>
void expect_cross_entropy_stable_at_huge_logits() {
  const int width = 4;
  const int batch = 4;
  const double big = 1e4;
  const LossSpec spec{LossKind::kSoftmaxCrossEntropy, width};
  LossTargets t;
  t.labels = {0, 1, 2, 3};
  MatrixXd y = MatrixXd::Constant(width, batch, -big);
  y(0, 0) = big;              // confident and right: L = 0
  y(0, 1) = big;              // confident and wrong: L = 2e4
  y.col(2).setConstant(big);  // a four-way tie: L = log 4
  y(1, 3) = big;              // a two-way tie without the label: L = 2e4 + log 2
  y(2, 3) = big;
  Mat<Scalar> dy;
  const double loss = run<Scalar>(spec, y.cast<Scalar>(), t, dy);
  ASSERT_TRUE(std::isfinite(loss));
  ASSERT_TRUE(dy.allFinite());
  double expected = 0.0;
  for (Index a = 0; a < batch; ++a) {
    const double m = y.col(a).maxCoeff();
    const auto count = static_cast<double>((y.col(a).array() == m).count());
    const int c = t.labels[static_cast<std::size_t>(a)];
    expected += (m - y(c, a)) + std::log(count);
    for (Index i = 0; i < width; ++i) {
      const double p = ((y(i, a) == m) ? 1.0 / count : 0.0) - (i == c ? 1.0 : 0.0);
      EXPECT_NEAR(static_cast<double>(dy(i, a)), p / batch, 1e-7);  // float rounding of 1/4
    }
  }
  expected /= batch;
  EXPECT_NEAR(loss, expected, 1e-12 * expected);  // a few double roundings of 4e4
  // The confident right prediction pushes its label up and the rest down, however faintly.
  EXPECT_LE(dy(0, 0), Scalar(0));
  EXPECT_GE(dy(1, 0), Scalar(0));
}

TEST(LossStability, SoftmaxCrossEntropyAtHugeLogits) {
  expect_cross_entropy_stable_at_huge_logits<double>();
  expect_cross_entropy_stable_at_huge_logits<float>();
}

template <class Scalar>
void expect_bce_stable_at_huge_logits() {
  const double big = 1e4;
  const LossSpec spec{LossKind::kSigmoidBce, 0};
  LossTargets t;
  t.values.resize(4, 1);
  t.values << 1.0, 1.0, 0.0, 0.0;
  MatrixXd y(4, 1);
  y << big, -big, big, -big;  // right, wrong, wrong, right
  Mat<Scalar> dy;
  const double loss = run<Scalar>(spec, y.cast<Scalar>(), t, dy);
  // Two wrong entries cost |y| each (softplus(1e4) = 1e4 exactly in double), the right ones 0.
  EXPECT_EQ(loss, 2 * big);
  EXPECT_LE(dy(0), Scalar(0));   // right: sigmoid(-1e4) underflows, but never past the sign
  EXPECT_EQ(dy(1), Scalar(-1));  // wrong: the gradient saturates at -1 / B
  EXPECT_EQ(dy(2), Scalar(1));
  EXPECT_GE(dy(3), Scalar(0));
  EXPECT_LT(std::abs(static_cast<double>(dy(0))), 1e-300);
  EXPECT_LT(std::abs(static_cast<double>(dy(3))), 1e-300);
}

TEST(LossStability, SigmoidBceAtHugeLogits) {
  expect_bce_stable_at_huge_logits<double>();
  expect_bce_stable_at_huge_logits<float>();
}

TEST(LossStability, MseAtHugeOutputsIsFinite) {
  const LossSpec spec{LossKind::kMse, 0};
  const MatrixXd y = normals(3, 5, 5) * 1e4;
  const LossTargets t = make_targets(spec, 15, 3, 5);
  Mat<float> dy;
  const double loss = run<float>(spec, y.cast<float>(), t, dy);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_TRUE(dy.allFinite());
  EXPECT_GT(loss, 1e6);  // entries of order 1e4 squared, over 15 entries and a batch of 5
}

// Double outputs so large that a square, a logit difference or the sum over the batch overflows
// although the mean L does not: L must be that finite mean (a few roundings), and Inf only when
// L itself is beyond double's range.
TEST(LossStability, HugeDoubleOutputsGiveTheFiniteMeanNotInf) {
  constexpr double kMax = std::numeric_limits<double>::max();
  const auto near = [](double got, double want) {
    return std::abs(got - want) <= 8 * kEps * std::abs(want);  // a few roundings, relative
  };
  MatrixXd dy;
  {
    // mse, one residual of 2e154 in a batch of 4: its square is 4e308, L = 5e307.
    LossTargets t;
    t.values = MatrixXd::Zero(1, 4);
    MatrixXd y = MatrixXd::Zero(1, 4);
    y(0, 0) = 2e154;
    const double loss = run<double>({LossKind::kMse, 0}, y, t, dy);
    EXPECT_TRUE(near(loss, (2e154 / 4) * (2e154 / 2))) << loss;
    EXPECT_EQ(dy(0, 0), 2e154 / 4);
    // 3 x 8 residuals of 1e154: the squares sum to 2.4e309, L = 1.5e308.
    t.values = MatrixXd::Zero(3, 8);
    const double many = run<double>({LossKind::kMse, 0}, MatrixXd::Constant(3, 8, 1e154), t, dy);
    EXPECT_TRUE(near(many, 1.5 * 1e154 * 1e154)) << many;
    // A single residual of 1e160: L = 5e319 is beyond double's range.
    t.values = MatrixXd::Zero(1, 1);
    EXPECT_EQ(run<double>({LossKind::kMse, 0}, MatrixXd::Constant(1, 1, 1e160), t, dy),
              std::numeric_limits<double>::infinity());
  }
  {
    // sigmoid_bce, wrong and confident everywhere: each entry costs |y|, the sum overflows.
    LossTargets t;
    t.values = MatrixXd::Zero(2, 4);
    const double loss =
        run<double>({LossKind::kSigmoidBce, 0}, MatrixXd::Constant(2, 4, 8e307), t, dy);
    EXPECT_TRUE(near(loss, 1.6e308)) << loss;
    EXPECT_TRUE(dy.allFinite());
  }
  {
    // softmax_cross_entropy: one example with logits (+max, -max) and the label on -max costs
    // 2 * max, beyond double; the other three cost 0, so L = max / 2.
    LossTargets t;
    t.labels = {1, 0, 0, 0};
    MatrixXd y(2, 4);
    y << kMax, kMax, kMax, kMax, -kMax, -kMax, -kMax, -kMax;
    const double loss = run<double>({LossKind::kSoftmaxCrossEntropy, 2}, y, t, dy);
    EXPECT_TRUE(near(loss, kMax / 2)) << loss;
    EXPECT_TRUE(dy.allFinite());
    // Four examples that each cost 1e308: the sum overflows, L = 1e308.
    t.labels = {1, 1, 1, 1};
    y.row(0).setConstant(1e308);
    y.row(1).setZero();
    const double four = run<double>({LossKind::kSoftmaxCrossEntropy, 2}, y, t, dy);
    EXPECT_TRUE(near(four, 1e308)) << four;
  }
  {
    // Not a defect: float outputs (at most 3.4e38) are summed in double, far from its range.
    LossTargets t;
    t.labels = {1};
    Mat<float> yf(2, 1);
    yf << 3e38f, -3e38f;
    Mat<float> dyf;
    const double loss = run<float>({LossKind::kSoftmaxCrossEntropy, 2}, yf, t, dyf);
    EXPECT_TRUE(near(loss, 2.0 * static_cast<double>(3e38f))) << loss;
  }
}

TEST(LossStability, SaturatedCorrectPredictionsKeepTheirTinyGradient) {
  // At y = 40, 1 - sigmoid(y) = 4.2e-18 is below double's epsilon: sigmoid(y) - 1 would read 0.
  const double tail = std::exp(-40.0) / (1.0 + std::exp(-40.0));
  {
    LossTargets t;
    t.values = MatrixXd::Ones(1, 1);
    MatrixXd dy;
    const double loss =
        run<double>({LossKind::kSigmoidBce, 0}, MatrixXd::Constant(1, 1, 40.0), t, dy);
    EXPECT_NEAR(dy(0), -tail, 1e-14 * tail);  // a few roundings, relative
    EXPECT_NEAR(loss, std::log1p(std::exp(-40.0)), 1e-14 * tail);
  }
  {
    LossTargets t;
    t.labels = {0};
    MatrixXd y(3, 1);
    y << 40.0, 0.0, 0.0;
    MatrixXd dy;
    const double loss = run<double>({LossKind::kSoftmaxCrossEntropy, 3}, y, t, dy);
    const double rest = 2.0 * std::exp(-40.0);
    EXPECT_NEAR(dy(0), -rest / (1.0 + rest), 1e-14 * rest);  // a few roundings, relative
    EXPECT_NEAR(loss, std::log1p(rest), 1e-14 * rest);
    EXPECT_NEAR(dy(1), std::exp(-40.0) / (1.0 + rest), 1e-14 * rest);
  }
}

TEST(LossTargetsTest, DeterministicPerSeedAndFromTheTargetsStream) {
  for (const LossSpec& spec : losses(6)) {
    SCOPED_TRACE(label(spec.kind));
    const LossTargets a = make_targets(spec, 21, 6, 9);
    const LossTargets b = make_targets(spec, 21, 6, 9);
    const LossTargets other = make_targets(spec, 22, 6, 9);
    EXPECT_EQ(a.values, b.values);
    EXPECT_EQ(a.labels, b.labels);
    EXPECT_TRUE(a.values != other.values || a.labels != other.labels);
  }
  // mse: exactly the standard normals of stream (seed, 0, kTargets), in column-major order.
  const LossTargets t = make_targets({LossKind::kMse, 0}, 21, 6, 9);
  MatrixXd expected(6, 9);
  fill_normal(stream_key(21, 0, StreamPurpose::kTargets), 0, 54, expected.data());
  EXPECT_EQ(t.values, expected);
  const LossTargets probe = make_targets({LossKind::kProbe, 0}, 21, 6, 9);
  EXPECT_EQ(probe.values.size(), 0);
  EXPECT_TRUE(probe.labels.empty());
}

TEST(LossTargetsTest, LabelsAreInRangeAndUniform) {
  const int classes = 10;
  const int batch = 20000;
  const LossTargets t = make_targets({LossKind::kSoftmaxCrossEntropy, classes}, 23, classes, batch);
  ASSERT_EQ(t.labels.size(), static_cast<std::size_t>(batch));
  std::vector<int> counts(classes, 0);
  for (int c : t.labels) {
    ASSERT_GE(c, 0);
    ASSERT_LT(c, classes);
    ++counts[static_cast<std::size_t>(c)];
  }
  const double expected = static_cast<double>(batch) / classes;
  double chi2 = 0.0;
  for (int n : counts) chi2 += (n - expected) * (n - expected) / expected;
  // Chi-square with 9 degrees of freedom exceeds 39.34 with probability 1e-5 (mpmath).
  EXPECT_LT(chi2, 39.34);
}

TEST(LossTargetsTest, BceTargetsAreZeroOrOneAboutHalfOnes) {
  const LossTargets t = make_targets({LossKind::kSigmoidBce, 0}, 24, 50, 200);
  ASSERT_EQ(t.values.rows(), 50);
  ASSERT_EQ(t.values.cols(), 200);
  EXPECT_TRUE((t.values.array() == 0.0 || t.values.array() == 1.0).all());
  // Binomial(10000, 1/2): mean 5000, standard deviation 50; 5 deviations: probability 6e-7.
  EXPECT_NEAR(t.values.sum(), 5000.0, 250.0);
}

TEST(LossPrecision, FloatMatchesDoubleWithinFloatRounding) {
  const int width = 7;
  const int batch = 6;
  const Mat<float> yf = (normals(width, batch, 6) * 3.0).cast<float>();
  for (const LossSpec& spec : losses(width)) {
    SCOPED_TRACE(label(spec.kind));
    const LossTargets t = make_targets(spec, 25, width, batch);
    Mat<float> dyf;
    MatrixXd dyd;
    const double lf = run<float>(spec, yf, t, dyf);
    const double ld = run<double>(spec, yf.cast<double>(), t, dyd);
    // Both evaluate in double from the same values: L agrees to double rounding, and float's dy
    // is double's rounded once (2^-24 relative).
    EXPECT_NEAR(lf, ld, 1e-15 * std::abs(ld));
    EXPECT_LE(((dyf.cast<double>() - dyd).array().abs() - 0x1p-24 * dyd.array().abs()).maxCoeff(),
              0.0);
  }
}

TEST(LossChecks, ProbeThrowsAndBadShapesAreRejected) {
  const MatrixXd y = normals(3, 4, 7);
  MatrixXd dy;
  EXPECT_THROW(run<double>({LossKind::kProbe, 0}, y, LossTargets{}, dy), gradscope::Error);
  EXPECT_THROW(run<double>({LossKind::kMse, 0}, y, make_targets({LossKind::kMse, 0}, 1, 4, 3), dy),
               gradscope::Error);
  LossTargets bad_label;
  bad_label.labels = {0, 1, 3, 2};
  EXPECT_THROW(run<double>({LossKind::kSoftmaxCrossEntropy, 3}, y, bad_label, dy),
               gradscope::Error);
  EXPECT_THROW(make_targets({LossKind::kSoftmaxCrossEntropy, 5}, 1, 3, 4), gradscope::Error);
}

}  // namespace
}  // namespace gradscope
