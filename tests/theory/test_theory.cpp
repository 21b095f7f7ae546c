// Tests for the mean-field theory: Gaussian expectations against closed forms, the length,
// gradient and correlation maps, fixed points, depth scales, the edge of chaos and the phase grid.
#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/io/theory_json.hpp"
#include "gradscope/report/theory_text.hpp"
#include "gradscope/theory/theory.hpp"
#include "gradscope/theory/theory_report.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

using testing::elementwise_specs;

constexpr double kPi = 3.14159265358979323846;
constexpr double kInf = std::numeric_limits<double>::infinity();

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
double normal_pdf(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * kPi); }

ActivationSpec spec(Activation kind) { return default_spec(kind); }

std::string label(const ActivationSpec& a) {
  return std::string(activation_info(a.kind).name) + "(" + std::to_string(a.param) + ")";
}

double relative(double got, double want) { return std::abs(got - want) / std::abs(want); }

// ---- Gaussian expectations --------------------------------------------------------------------

TEST(GaussianExpectation, EvenMomentsOfANormalAreExact) {
  // E_q[x^k] = (k-1)!! q^(k/2): polynomials up to degree 10 across twelve decades of q.
  for (double q : {1e-8, 0.3, 1.0, 7.0, 1e4}) {
    double double_factorial = 1.0;
    for (int k = 2; k <= 10; k += 2) {
      double_factorial *= k - 1;
      const double want = double_factorial * std::pow(q, k / 2);
      const double got = gaussian_expectation([k](double x) { return std::pow(x, k); }, q);
      // The quadrature's target is 1e-14 of E|f|; observed errors are a few ulps.
      EXPECT_LT(relative(got, want), 1e-13) << "q = " << q << ", k = " << k;
    }
    // Odd moments vanish; the pieces on either side of 0 cancel to rounding of E|x^3|.
    const double odd = gaussian_expectation([](double x) { return x * x * x; }, q);
    EXPECT_LT(std::abs(odd), 1e-14 * 2.0 * std::sqrt(2.0 / kPi) * q * std::sqrt(q)) << q;
  }
}

TEST(GaussianExpectation, PointMassAtQZero) {
  EXPECT_EQ(gaussian_expectation([](double x) { return std::cos(x) + 2.0; }, 0.0), 3.0);
  EXPECT_EQ(gaussian_expectation_2d([](double a, double b) { return a + b + 5.0; }, 0.0, 0.3), 5.0);
}

TEST(GaussianExpectation, RejectsInvalidArguments) {
  auto one = [](double) { return 1.0; };
  EXPECT_THROW(gaussian_expectation(one, -1.0), gradscope::Error);
  EXPECT_THROW(gaussian_expectation(one, std::nan("")), gradscope::Error);
  EXPECT_THROW(gaussian_expectation(one, kInf), gradscope::Error);
  auto two = [](double, double) { return 1.0; };
  EXPECT_THROW(gaussian_expectation_2d(two, 1.0, 1.5), gradscope::Error);
  EXPECT_THROW(gaussian_expectation_2d(two, 1.0, std::nan("")), gradscope::Error);
}

// Probabilists' Gauss-Hermite rule by Golub-Welsch: the standard a smooth-only quadrature uses.
double gauss_hermite(const std::function<double(double)>& f, double q, int n) {
  Eigen::MatrixXd jacobi = Eigen::MatrixXd::Zero(n, n);
  for (int k = 1; k < n; ++k) jacobi(k, k - 1) = jacobi(k - 1, k) = std::sqrt(double(k));
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(jacobi);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    const double w = eig.eigenvectors()(0, i) * eig.eigenvectors()(0, i);
    sum += w * f(std::sqrt(q) * eig.eigenvalues()(i));
  }
  return sum;
}

TEST(GaussianExpectation, StepFunctionSplitAtItsJump) {
  // E_q[1{x > a}] = Phi(-a / sqrt q), where a 20-node Gauss-Hermite rule is off in the 2nd digit.
  for (double q : {0.05, 1.0, 30.0}) {
    for (double a : {-1.3, 0.0, 0.3, 2.0}) {
      auto step = [a](double x) { return x > a ? 1.0 : 0.0; };
      const double want = normal_cdf(-a / std::sqrt(q));
      // Each piece is a plain Gaussian integral; 1e-12 is the brief's bar, errors are ~1e-16.
      EXPECT_NEAR(gaussian_expectation(step, q, {a}), want, 1e-12) << q << " " << a;
    }
  }
  auto step = [](double x) { return x > 0.3 ? 1.0 : 0.0; };
  // Shows why the split matters: the smooth-only rule misses by far more than 1e-4.
  EXPECT_GT(std::abs(gauss_hermite(step, 1.0, 20) - normal_cdf(-0.3)), 1e-4);
}

TEST(GaussianExpectation, KinkedActivationClosedForms) {
  const ActivationSpec hard = spec(Activation::kHardTanh);
  const ActivationSpec elu = {Activation::kElu, 1.3};
  for (double q : {0.01, 0.5, 1.0, 4.0, 100.0}) {
    // hard_tanh: E[x^2; |x| < 1] + P(|x| > 1) = q ((2 Phi(a) - 1) - 2 a pdf(a)) + erfc(a / sqrt 2)
    // with a = 1 / sqrt(q).
    const double a = 1.0 / std::sqrt(q);
    const double hard_want =
        q * ((2.0 * normal_cdf(a) - 1.0) - 2.0 * a * normal_pdf(a)) + std::erfc(a / std::sqrt(2.0));
    const double hard_got = gaussian_expectation(
        [&](double x) { return std::pow(activation_value(hard, x), 2); }, q, kinks(hard));
    // Closed form and quadrature both at rounding level; 1e-13 relative leaves a margin.
    EXPECT_LT(relative(hard_got, hard_want), 1e-13) << q;
    // elu: E[x; x > 0] + alpha (E[e^x; x < 0] - 1/2) = sqrt(q / 2 pi) + alpha (e^(q/2)
    // Phi(-sqrt q) - 1/2).
    const double elu_want = std::sqrt(q / (2.0 * kPi)) +
                            1.3 * (std::exp(0.5 * q) * 0.5 * std::erfc(std::sqrt(0.5 * q)) - 0.5);
    const double elu_got =
        gaussian_expectation([&](double x) { return activation_value(elu, x); }, q, kinks(elu));
    // The result is a difference of O(sqrt q) terms; the tolerance is relative to those.
    EXPECT_NEAR(elu_got, elu_want, 1e-14 * (1.0 + std::sqrt(q))) << q;
  }
}

TEST(GaussianExpectation, SmoothActivationClosedForm) {
  // Stein's lemma: E[x Phi(x)] = q E[pdf(x)] = q / sqrt(2 pi (1 + q)) for x ~ N(0, q).
  const ActivationSpec gelu = spec(Activation::kGelu);
  for (double q : {1e-4, 0.2, 1.0, 9.0, 1e3}) {
    const double want = q / std::sqrt(2.0 * kPi * (1.0 + q));
    const double got = gaussian_expectation([&](double x) { return activation_value(gelu, x); }, q);
    // Positive integrand on the right, small negative on the left: about 1e-15 relative.
    EXPECT_LT(relative(got, want), 1e-13) << q;
  }
}

TEST(GaussianExpectation, VeryLargeQ) {
  // E_q[sech^2] = (2 - pi^2 / (12 q)) / sqrt(2 pi q) + O(q^-2.5): tanh turns over within
  // |z| < 1e-4 here, which the cuts at |x| = 1, 4, 16 keep resolved.
  const ActivationSpec tanh_spec = spec(Activation::kTanh);
  for (double q : {1e8, 1e12}) {
    const double want = (2.0 - kPi * kPi / (12.0 * q)) / std::sqrt(2.0 * kPi * q);
    const double got =
        gaussian_expectation([&](double x) { return activation_derivative(tanh_spec, x); }, q);
    // The neglected term is below 1e-20 relative; quadrature at 1e-14.
    EXPECT_LT(relative(got, want), 1e-12) << q;
  }
  const ActivationSpec relu = spec(Activation::kRelu);
  const double q = 1e200;
  const double got = gaussian_expectation(
      [&](double x) { return std::pow(activation_value(relu, x), 2); }, q, kinks(relu));
  // E[relu^2] = q / 2 exactly; the integrand is q z^2 times the density on each piece.
  EXPECT_LT(relative(got, q / 2.0), 1e-13);
}

// ---- Two-dimensional expectations and the correlation map -------------------------------------

TEST(GaussianExpectation2d, MomentsOfACorrelatedPair) {
  for (double q : {1e-3, 1.0, 50.0}) {
    for (double c : {-1.0, -0.6, 0.0, 0.25, 0.999, 1.0}) {
      const double cov = gaussian_expectation_2d([](double a, double b) { return a * b; }, q, c);
      // E[u1 u2] = q c; errors are rounding-level relative to E|u1 u2| ~ q.
      EXPECT_NEAR(cov, q * c, 1e-13 * q) << q << " " << c;
      // Isserlis: E[u1^2 u2^2] = q^2 (1 + 2 c^2).
      const double m22 =
          gaussian_expectation_2d([](double a, double b) { return a * a * b * b; }, q, c);
      // The outer tolerance of the nested quadrature is 1e-12 of E|f|.
      EXPECT_LT(relative(m22, q * q * (1.0 + 2.0 * c * c)), 1e-12) << q << " " << c;
    }
  }
}

TEST(GaussianExpectation2d, IndependentAtZeroAndMirroredAtMinusOne) {
  const ActivationSpec sig = spec(Activation::kSigmoid);
  const ActivationSpec tanh_spec = spec(Activation::kTanh);
  // sigmoid - 1/2 is odd, so E[sigmoid] = 1/2 and at c = 0 the pair mean is 1/4.
  const double both = gaussian_expectation_2d(
      [&](double a, double b) { return activation_value(sig, a) * activation_value(sig, b); }, 2.0,
      0.0);
  // Nested quadrature, outer tolerance 1e-12 of E|f|.
  EXPECT_NEAR(both, 0.25, 1e-12);
  const double mirrored = gaussian_expectation_2d(
      [&](double a, double b) {
        return activation_value(tanh_spec, a) * activation_value(tanh_spec, b);
      },
      0.7, -1.0);
  const double m2 = gaussian_expectation(
      [&](double x) { return std::pow(activation_value(tanh_spec, x), 2); }, 0.7);
  // c = -1 reduces to a 1D integral of -tanh^2: the same rule, rounding-level agreement.
  EXPECT_NEAR(mirrored, -m2, 1e-14);
}

// Cho & Saul 2009, arc-cosine kernel of degree 1: E[relu(u1) relu(u2)] = q (sqrt(1 - c^2) +
// (pi - arccos c) c) / (2 pi).
double relu_kernel(double q, double c) {
  return q * (std::sqrt((1.0 - c) * (1.0 + c)) + (kPi - std::acos(c)) * c) / (2.0 * kPi);
}

TEST(CorrelationMap, ReluMatchesTheArcCosineKernel) {
  for (double sw2 : {2.0, 1.3}) {
    const MeanField mf{spec(Activation::kRelu), sw2, 0.0};
    for (double q : {1e-6, 1.0, 1e6}) {
      for (double c : {-1.0, -0.999999, -0.5, 0.0, 0.3, 0.9, 0.999999, 1.0}) {
        const double want = sw2 * relu_kernel(q, c) / q;
        // The brief's bar; observed errors are below 1e-15, including |c| -> 1 where the inner
        // integral nearly has a kink (graded cuts around it).
        EXPECT_NEAR(correlation_map(mf, q, c), want, 1e-10) << sw2 << " " << q << " " << c;
      }
    }
  }
}

TEST(CorrelationMap, AtOneItIsTheLengthMapOverQ) {
  for (const ActivationSpec& a : elementwise_specs()) {
    const MeanField mf{a, 1.7, 0.2};
    const double q = 0.8;
    // c = 1 is the same 1D rule as length_map: equal to rounding.
    EXPECT_NEAR(correlation_map(mf, q, 1.0), length_map(mf, q) / q, 1e-14) << label(a);
  }
}

TEST(CorrelationMap, RefusesVanishingSignals) {
  const MeanField mf{spec(Activation::kTanh), 0.5, 0.0};
  EXPECT_THROW(correlation_map(mf, 0.0, 0.5), gradscope::Error);
  EXPECT_THROW(correlation_fixed_point(mf, 0.0), gradscope::Error);
  EXPECT_THROW(correlation_map(mf, 1.0, 1.01), gradscope::Error);
}

TEST(CorrelationFixedPoint, OrderedPhaseAlignsEveryPair) {
  const MeanField mf{spec(Activation::kTanh), 1.2, 0.3};
  const FixedPoint fp = fixed_point_q(mf);
  ASSERT_TRUE(fp.exists);
  ASSERT_LT(chi(mf, fp.q), 1.0);
  EXPECT_EQ(correlation_fixed_point(mf, fp.q), 1.0);
}

TEST(CorrelationFixedPoint, ChaoticPhaseHasAStableCStarBelowOne) {
  // Odd phi with sb2 = 0: the map is odd, so c* = 0.
  const MeanField odd{spec(Activation::kTanh), 2.5, 0.0};
  const FixedPoint fp_odd = fixed_point_q(odd);
  ASSERT_TRUE(fp_odd.exists);
  ASSERT_GT(chi(odd, fp_odd.q), 1.0);
  // map(0) = (E[tanh])^2 sw2 / q* is 0 up to rounding, so c* is 0 up to rounding over the slope.
  EXPECT_NEAR(correlation_fixed_point(odd, fp_odd.q), 0.0, 1e-12);

  const MeanField mf{spec(Activation::kTanh), 4.0, 0.05};
  const FixedPoint fp = fixed_point_q(mf);
  ASSERT_TRUE(fp.exists);
  const double c_star = correlation_fixed_point(mf, fp.q);
  EXPECT_GT(c_star, 0.0);
  EXPECT_LT(c_star, 1.0);
  // A fixed point to the root finder's accuracy (the map itself is good to ~1e-12).
  EXPECT_NEAR(correlation_map(mf, fp.q, c_star), c_star, 1e-11);
  // ... and the one iteration reaches: 80 steps at a contraction ~0.87 shrink 0.5 by 1e-5.
  double c = 0.5;
  for (int i = 0; i < 80; ++i) c = correlation_map(mf, fp.q, c);
  EXPECT_NEAR(c, c_star, 1e-5);
}

TEST(CorrelationFixedPoint, RefusesAQThatIsNotAFixedPoint) {
  const MeanField mf{spec(Activation::kTanh), 1.5, 0.05};
  EXPECT_THROW(correlation_fixed_point(mf, 3.0), gradscope::Error);
}

// ---- Length and gradient maps -----------------------------------------------------------------

TEST(LengthMap, ClosedFormsForPiecewiseLinearActivations) {
  for (double q : {0.0, 1e-6, 0.5, 3.0, 1e5}) {
    const double sw2 = 1.7;
    const double sb2 = 0.1;
    const MeanField relu{spec(Activation::kRelu), sw2, sb2};
    // ReLU: E[relu^2] = q / 2 and E[relu'^2] = 1/2 (at q = 0 as the limit q -> 0+). Each piece
    // is a polynomial times the density: rounding-level agreement (1e-14 relative).
    EXPECT_NEAR(length_map(relu, q), sw2 * q / 2 + sb2, 1e-14 * (sw2 * q / 2 + sb2)) << q;
    EXPECT_NEAR(chi(relu, q), sw2 / 2, 1e-14) << q;
    const MeanField linear{spec(Activation::kLinear), sw2, sb2};
    EXPECT_NEAR(length_map(linear, q), sw2 * q + sb2, 1e-14 * (sw2 * q + sb2)) << q;
    EXPECT_NEAR(chi(linear, q), sw2, 1e-14) << q;
    for (double slope : {0.01, 0.2, -0.5}) {
      const MeanField leaky{{Activation::kLeakyRelu, slope}, sw2, 0.0};
      const double want = (1.0 + slope * slope) * q / 2.0;
      EXPECT_NEAR(length_map(leaky, q), sw2 * want, 1e-14 * sw2 * want) << q << " " << slope;
      EXPECT_NEAR(chi(leaky, q), sw2 * (1.0 + slope * slope) / 2.0, 1e-14) << slope;
    }
  }
}

TEST(LengthMap, SeluKeepsMeanZeroAndSecondMomentOne) {
  // Klambauer et al. 2017 chose alpha and scale so that x ~ N(0, 1) gives E[selu] = 0 and
  // E[selu^2] = 1 exactly. In double the constants are rounded to ~1e-16 relative and the
  // quadrature adds ~1e-15, so 1e-13 is ample (the brief's bar is 1e-6).
  const ActivationSpec selu = spec(Activation::kSelu);
  const double mean =
      gaussian_expectation([&](double x) { return activation_value(selu, x); }, 1.0, kinks(selu));
  EXPECT_NEAR(mean, 0.0, 1e-13);
  const MeanField lecun{selu, 1.0, 0.0};
  EXPECT_NEAR(length_map(lecun, 1.0), 1.0, 1e-13);
  // q* = 1 is attracting (slope ~0.78), so the iteration finds it from either side.
  for (double q0 : {0.5, 1.0, 2.0}) {
    const FixedPoint fp = fixed_point_q(lecun, q0);
    ASSERT_TRUE(fp.exists) << fp.reason;
    // Brent's method to 1e-15 relative on a map accurate to ~1e-16, over a slope gap of 0.22.
    EXPECT_NEAR(fp.q, 1.0, 1e-13) << q0;
  }
}

TEST(LengthMap, SigmoidGradientFactorIsAtMostSw2Over16) {
  const ActivationSpec sig = spec(Activation::kSigmoid);
  for (double sw2 : {0.5, 1.0, 4.0, 16.0, 100.0}) {
    for (double q : {0.0, 1e-3, 0.1, 1.0, 10.0, 1e4}) {
      const double c = chi({sig, sw2, 0.0}, q);
      // sigmoid' <= 1/4 with equality only at 0; at q = 0 chi is exactly sw2 / 16.
      EXPECT_LE(c, sw2 / 16.0 * (1.0 + 1e-15)) << sw2 << " " << q;
      EXPECT_GT(c, 0.0);
    }
  }
}

// Fourth-order central difference of the length map.
double length_map_derivative(const MeanField& mf, double q) {
  const double h = 1e-3 * q;
  return (8.0 * (length_map(mf, q + h) - length_map(mf, q - h)) -
          (length_map(mf, q + 2 * h) - length_map(mf, q - 2 * h))) /
         (12.0 * h);
}

TEST(LengthMap, SlopeIsTheDerivativeIncludingKinkDeltas) {
  for (const ActivationSpec& a : elementwise_specs()) {
    const MeanField mf{a, 1.4, 0.1};
    for (double q : {0.3, 2.5}) {
      const double slope = length_map_slope(mf, q);
      // Truncation ~h^4 ~ 1e-12 and rounding ~1e-16 / h ~ 1e-13 of the map.
      EXPECT_NEAR(slope, length_map_derivative(mf, q), 1e-9) << label(a) << " q = " << q;
      // Stein's lemma gives a derivative-free form: dL/dq = (sw2 / q) E_q[x phi phi'].
      const double stein =
          mf.sw2 / q *
          gaussian_expectation(
              [&](double x) { return x * activation_value(a, x) * activation_derivative(a, x); }, q,
              kinks(a));
      // Two quadratures of different integrands, each at ~1e-15.
      EXPECT_NEAR(slope, stein, 1e-13 * (1.0 + std::abs(stein))) << label(a) << " q = " << q;
    }
  }
  // hard_tanh's delta terms are not negligible: without them the slope is off by
  // 2 sw2 exp(-1/2q) / sqrt(2 pi q).
  const ActivationSpec hard = spec(Activation::kHardTanh);
  const MeanField mf{hard, 1.4, 0.1};
  const double regular_only =
      mf.sw2 * gaussian_expectation(
                   [&](double x) {
                     return std::pow(activation_derivative(hard, x), 2) +
                            activation_value(hard, x) * activation_second_derivative(hard, x);
                   },
                   1.0, kinks(hard));
  EXPECT_GT(std::abs(regular_only - length_map_slope(mf, 1.0)), 0.1);
}

TEST(LengthMap, RefusesSoftmaxWithAClearMessage) {
  const MeanField mf{spec(Activation::kSoftmax), 1.0, 0.0};
  try {
    length_map(mf, 1.0);
    FAIL() << "softmax accepted";
  } catch (const gradscope::Error& e) {
    EXPECT_NE(std::string(e.what()).find("softmax"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("elementwise"), std::string::npos) << e.what();
  }
  EXPECT_THROW(chi(mf, 1.0), gradscope::Error);
  EXPECT_THROW(length_map_slope(mf, 1.0), gradscope::Error);
  EXPECT_THROW(fixed_point_q(mf), gradscope::Error);
  EXPECT_THROW(correlation_map(mf, 1.0, 0.5), gradscope::Error);
  EXPECT_THROW(depth_scales(mf, 1.0), gradscope::Error);
  EXPECT_THROW(critical_sw2(mf.activation, 0.0), gradscope::Error);
  EXPECT_THROW(sw2_preserving_second_moment(mf.activation, 1.0, 0.0), gradscope::Error);
  EXPECT_THROW(phase_grid(mf.activation, 0.0, 1.0, 2), gradscope::Error);
  EXPECT_THROW(length_map({spec(Activation::kTanh), -1.0, 0.0}, 1.0), gradscope::Error);
}

// ---- Fixed points -----------------------------------------------------------------------------

TEST(FixedPoint, TanhInTheOrderedPhaseCollapsesToZero) {
  for (double sw2 : {0.5, 0.9}) {
    const FixedPoint fp = fixed_point_q({spec(Activation::kTanh), sw2, 0.0});
    EXPECT_TRUE(fp.exists) << fp.reason;
    EXPECT_EQ(fp.q, 0.0) << fp.reason;
    EXPECT_NE(fp.reason.find("q -> 0"), std::string::npos) << fp.reason;
  }
}

TEST(FixedPoint, ReluAboveHeDivergesWithAReason) {
  const FixedPoint fp = fixed_point_q({spec(Activation::kRelu), 3.0, 0.1});
  EXPECT_FALSE(fp.exists);
  EXPECT_NE(fp.reason.find("without bound"), std::string::npos) << fp.reason;
  // The reason carries the per-layer growth factor sw2 / 2 = 1.5.
  EXPECT_NE(fp.reason.find("1.5"), std::string::npos) << fp.reason;
  const FixedPoint linear = fixed_point_q({spec(Activation::kLinear), 1.2, 0.0});
  EXPECT_FALSE(linear.exists);
  EXPECT_FALSE(linear.reason.empty());
  // At He with a bias, q grows by sb2 a layer: past q ~ 1e16 that step is below rounding, which
  // must not be mistaken for a fixed point.
  const FixedPoint arithmetic = fixed_point_q({spec(Activation::kRelu), 2.0, 0.2});
  EXPECT_FALSE(arithmetic.exists) << arithmetic.reason;
}

TEST(FixedPoint, StartingOnARepellingFixedPointIsFlagged) {
  // L(0) = 0 for ReLU without bias, but with sw2 = 3 the slope there is 1.5.
  const FixedPoint fp = fixed_point_q({spec(Activation::kRelu), 3.0, 0.0}, 0.0);
  EXPECT_TRUE(fp.exists);
  EXPECT_EQ(fp.q, 0.0);
  EXPECT_NE(fp.reason.find("unstable"), std::string::npos) << fp.reason;
}

TEST(FixedPoint, GenericCaseSatisfiesTheLengthMap) {
  const MeanField mf{spec(Activation::kTanh), 1.5, 0.05};
  const FixedPoint fp = fixed_point_q(mf);
  ASSERT_TRUE(fp.exists) << fp.reason;
  EXPECT_TRUE(fp.unique);
  EXPECT_GT(fp.q, 0.0);
  // Converged to 1e-14 relative change (allowing for the contraction rate).
  EXPECT_NEAR(length_map(mf, fp.q), fp.q, 1e-12 * fp.q);
  // ReLU with sb2 > 0 below He: q* = sb2 / (1 - sw2 / 2) exactly.
  const FixedPoint relu = fixed_point_q({spec(Activation::kRelu), 1.5, 0.1});
  ASSERT_TRUE(relu.exists);
  // The map is exact to rounding; the fixed point inherits it over a slope gap of 1/4.
  EXPECT_NEAR(relu.q, 0.4, 1e-14);
}

TEST(FixedPoint, SlowConvergenceNearTheEdgeIsSolvedNotTruncated) {
  // Just above tanh's edge q* ~ (sw2 - 1) / 2 and the map's slope is 1 - O(sw2 - 1): plain
  // iteration would stall for thousands of layers short of it.
  const MeanField mf{spec(Activation::kTanh), 1.001, 0.0};
  const FixedPoint fp = fixed_point_q(mf);
  ASSERT_TRUE(fp.exists) << fp.reason;
  EXPECT_GT(fp.q, 1e-4);
  EXPECT_LT(fp.q, 1e-3);
  // g(q) = L(q) - q is solved to rounding of L (1e-16 relative) over a slope gap ~1e-3.
  EXPECT_NEAR(length_map(mf, fp.q), fp.q, 1e-13 * fp.q);
  EXPECT_LT(fp.iterations, 200);
}

TEST(FixedPoint, ReluAtHeWithoutBiasHasEveryQAsAFixedPoint) {
  const MeanField mf{spec(Activation::kRelu), 2.0, 0.0};
  for (double q0 : {0.1, 1.0, 30.0}) {
    const FixedPoint fp = fixed_point_q(mf, q0);
    EXPECT_TRUE(fp.exists);
    EXPECT_FALSE(fp.unique) << fp.reason;
    // The map is the identity, so q0 is a fixed point: returned as it is, not moved by an ulp.
    EXPECT_EQ(fp.q, q0);
    EXPECT_NE(fp.reason.find("not unique"), std::string::npos) << fp.reason;
  }
  for (double q : {0.0, 1e-3, 1.0, 1e3}) {
    // chi1 = 2 * 1/2 at every q: one integral of a step, rounding-level.
    EXPECT_NEAR(chi(mf, q), 1.0, 1e-15) << q;
  }
  const DepthScales d = depth_scales(mf, 1.0);
  // chi1 = 1 to within an ulp or two: on the critical line, so xi_c is infinite (not 4.5e15).
  EXPECT_EQ(d.xi_c, kInf);
}

// ---- Depth scales -----------------------------------------------------------------------------

TEST(DepthScales, FiniteOffTheEdgeInfiniteOnIt) {
  const MeanField ordered{spec(Activation::kTanh), 1.2, 0.3};
  const FixedPoint fo = fixed_point_q(ordered);
  ASSERT_TRUE(fo.exists);
  const DepthScales o = depth_scales(ordered, fo.q);
  ASSERT_LT(o.chi1, 1.0);
  // Straight from the definition: the same two doubles in, so equal to rounding.
  EXPECT_NEAR(o.xi_c, -1.0 / std::log(o.chi1), 1e-15 * o.xi_c);
  EXPECT_TRUE(std::isfinite(o.xi_c));
  EXPECT_TRUE(std::isfinite(o.xi_q));
  EXPECT_GT(o.xi_q, 0.0);

  const MeanField chaotic{spec(Activation::kTanh), 3.0, 0.3};
  const DepthScales c = depth_scales(chaotic, fixed_point_q(chaotic).q);
  ASSERT_GT(c.chi1, 1.0);
  // For chi1 > 1 xi_c is the depth over which gradients grow by e: 1 / ln(chi1).
  EXPECT_NEAR(c.xi_c, 1.0 / std::log(c.chi1), 1e-15 * c.xi_c);

  const Critical edge = critical_sw2(spec(Activation::kTanh), 0.05);
  ASSERT_TRUE(edge.exists) << edge.reason;
  const MeanField critical{spec(Activation::kTanh), edge.sw2, 0.05};
  const DepthScales e = depth_scales(critical, fixed_point_q(critical).q);
  // The edge is located to 1e-13 in sw2, so chi1 - 1 ~ 1e-13 and xi_c ~ 1e12 or more.
  EXPECT_GT(e.xi_c, 1e10);
  EXPECT_GT(e.xi_c, 1e3 * o.xi_c);
}

TEST(DepthScales, ReluBelowHeHasEqualScales) {
  // With sb2 > 0 and sw2 < 2, L(q) = sw2 q / 2 + sb2: the slope equals chi1 = sw2 / 2.
  const MeanField mf{spec(Activation::kRelu), 1.5, 0.1};
  const DepthScales d = depth_scales(mf, fixed_point_q(mf).q);
  // phi phi'' = 0 and the delta at 0 carries relu(0) = 0: both rounding-level.
  EXPECT_NEAR(d.chi1, 0.75, 1e-15);
  EXPECT_NEAR(d.chi_q, 0.75, 1e-15);
  EXPECT_NEAR(d.xi_q, d.xi_c, 1e-13 * d.xi_c);
  EXPECT_NEAR(d.xi_c, -1.0 / std::log(0.75), 1e-13);
}

// ---- Edge of chaos ----------------------------------------------------------------------------

TEST(Critical, ReluIsCriticalOnlyAtHeWithoutBias) {
  const Critical c = critical_sw2(spec(Activation::kRelu), 0.0);
  ASSERT_TRUE(c.exists) << c.reason;
  // Located by bisection to 1e-13 relative.
  EXPECT_NEAR(c.sw2, 2.0, 1e-10);
  EXPECT_FALSE(c.q_star_unique) << c.reason;
  EXPECT_NE(c.reason.find("identity"), std::string::npos) << c.reason;
  for (double sb2 : {0.01, 0.5}) {
    const Critical none = critical_sw2(spec(Activation::kRelu), sb2);
    EXPECT_FALSE(none.exists) << sb2;
    EXPECT_NE(none.reason.find("infinity"), std::string::npos) << none.reason;
  }
}

TEST(Critical, TanhLineStartsAtOneAndRisesWithBias) {
  const Critical c0 = critical_sw2(spec(Activation::kTanh), 0.0);
  ASSERT_TRUE(c0.exists) << c0.reason;
  // At sb2 = 0 chi1 - 1 ~ (sw2 - 1)^2 / 3 on the chaotic side, so rounding (~1e-15) blurs the
  // edge by ~1e-7.
  EXPECT_NEAR(c0.sw2, 1.0, 1e-6);
  double previous = c0.sw2;
  for (double sb2 : {0.01, 0.05, 0.1, 0.3}) {
    const Critical c = critical_sw2(spec(Activation::kTanh), sb2);
    ASSERT_TRUE(c.exists) << sb2 << ": " << c.reason;
    EXPECT_GT(c.sw2, previous) << sb2;
    previous = c.sw2;
    // Independent check: at the reported sw2, chi1 of the fixed point is 1. chi1 varies with
    // sw2 at O(1), and sw2 is located to 1e-13.
    const MeanField mf{spec(Activation::kTanh), c.sw2, sb2};
    EXPECT_NEAR(chi(mf, fixed_point_q(mf).q), 1.0, 1e-9) << sb2;
  }
}

TEST(Critical, SigmoidHasNoEdgeBelowSw2Of100AndSaysWhy) {
  const ActivationSpec sig = spec(Activation::kSigmoid);
  const Critical c = critical_sw2(sig, 0.0);
  EXPECT_FALSE(c.exists);
  // The reason reports the slope bound sw2 / 16 and that chi1 is still below 1 at the top.
  EXPECT_NE(c.reason.find("0.0625"), std::string::npos) << c.reason;
  EXPECT_NE(c.reason.find("beyond"), std::string::npos) << c.reason;
  // Computed, not assumed: with room to search, the edge is found past 100.
  const Critical far = critical_sw2(sig, 0.0, 1000.0);
  ASSERT_TRUE(far.exists) << far.reason;
  EXPECT_GT(far.sw2, 100.0);
  const MeanField mf{sig, far.sw2, 0.0};
  // As above: sw2 located to 1e-13, chi1 smooth in sw2.
  EXPECT_NEAR(chi(mf, fixed_point_q(mf).q), 1.0, 1e-9);
}

TEST(Critical, LinearIsCriticalAtOneWithoutBias) {
  const Critical c = critical_sw2(spec(Activation::kLinear), 0.0);
  ASSERT_TRUE(c.exists) << c.reason;
  EXPECT_NEAR(c.sw2, 1.0, 1e-10);  // bisection to 1e-13
  EXPECT_FALSE(c.q_star_unique);
}

// ---- Choosing sw2 -----------------------------------------------------------------------------

TEST(Sw2Choice, PreservesTheSecondMoment) {
  for (double q0 : {0.01, 1.0, 100.0}) {
    const Sw2Choice relu = sw2_preserving_second_moment(spec(Activation::kRelu), q0, 0.0);
    ASSERT_TRUE(relu.exists);
    EXPECT_NEAR(relu.sw2, 2.0, 1e-14) << q0;  // 2 / (2 E[relu^2] / q0), rounding-level
    const Sw2Choice linear = sw2_preserving_second_moment(spec(Activation::kLinear), q0, 0.0);
    ASSERT_TRUE(linear.exists);
    EXPECT_NEAR(linear.sw2, 1.0, 1e-14) << q0;
  }
  for (const ActivationSpec& a : elementwise_specs()) {
    const Sw2Choice s = sw2_preserving_second_moment(a, 1.3, 0.2);
    ASSERT_TRUE(s.exists) << label(a);
    // By construction, up to the rounding of one division.
    EXPECT_NEAR(length_map({a, s.sw2, 0.2}, 1.3), 1.3, 1e-14) << label(a);
  }
  const Sw2Choice none = sw2_preserving_second_moment(spec(Activation::kTanh), 0.5, 0.8);
  EXPECT_FALSE(none.exists);
  EXPECT_TRUE(std::isnan(none.sw2));
  EXPECT_NE(none.reason.find("sb2"), std::string::npos) << none.reason;
}

// ---- Every activation -------------------------------------------------------------------------

TEST(EveryActivation, MapsAreFiniteAndFixedPointsAccountedFor) {
  for (const ActivationSpec& a : elementwise_specs()) {
    for (double sw2 : {0.5, 1.5, 3.0}) {
      for (double sb2 : {0.0, 0.05}) {
        const MeanField mf{a, sw2, sb2};
        const std::string where =
            label(a) + " sw2 = " + std::to_string(sw2) + " sb2 = " + std::to_string(sb2);
        for (double q : {0.0, 1e-3, 1.0, 10.0, 1e4}) {
          EXPECT_TRUE(std::isfinite(length_map(mf, q))) << where << " q = " << q;
          EXPECT_GT(chi(mf, q), 0.0) << where << " q = " << q;
          EXPECT_TRUE(std::isfinite(chi(mf, q))) << where << " q = " << q;
          EXPECT_FALSE(std::isnan(length_map_slope(mf, q))) << where << " q = " << q;
        }
        const FixedPoint fp = fixed_point_q(mf);
        EXPECT_FALSE(fp.reason.empty()) << where;
        if (!fp.exists) {
          EXPECT_FALSE(std::isnan(fp.q)) << where << ": " << fp.reason;
          continue;
        }
        ASSERT_TRUE(std::isfinite(fp.q)) << where;
        // A fixed point: to the 1e-14 stop (rate-corrected) or Brent's 1e-15, plus rounding.
        EXPECT_NEAR(length_map(mf, fp.q), fp.q, 1e-12 * fp.q + 1e-300) << where;
        const DepthScales d = depth_scales(mf, fp.q);
        EXPECT_FALSE(std::isnan(d.chi1) || std::isnan(d.chi_q)) << where;
        EXPECT_FALSE(std::isnan(d.xi_c) || std::isnan(d.xi_q)) << where;
        const PhaseSample p = classify_phase(mf);
        EXPECT_NE(p.phase, Phase::kUnbounded) << where;
      }
    }
  }
}

// ---- Phase diagram ----------------------------------------------------------------------------

TEST(PhaseGrid, TanhRowsHaveARisingEdgeBetweenOrderAndChaos) {
  const std::vector<PhasePoint> rows = phase_grid(spec(Activation::kTanh), 0.0, 0.5, 3);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].sb2, 0.0);
  EXPECT_EQ(rows[1].sb2, 0.25);
  EXPECT_EQ(rows[2].sb2, 0.5);
  const std::vector<double> sw2s = default_phase_sw2();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    ASSERT_TRUE(rows[i].critical.exists) << rows[i].critical.reason;
    if (i > 0) {
      EXPECT_GT(rows[i].critical.sw2, rows[i - 1].critical.sw2);
    }
    ASSERT_EQ(rows[i].samples.size(), sw2s.size());
    for (std::size_t j = 0; j < sw2s.size(); ++j) {
      const PhaseSample& s = rows[i].samples[j];
      EXPECT_EQ(s.sw2, sw2s[j]);
      // Left of the edge ordered, right of it chaotic; sw2 = 1 at sb2 = 0 is on the edge itself
      // (q* = 0 and chi1 = tanh'(0)^2 = 1), which the bisection locates to ~1e-8.
      Phase want = s.sw2 < rows[i].critical.sw2 ? Phase::kOrdered : Phase::kChaotic;
      if (std::abs(s.sw2 - rows[i].critical.sw2) < 1e-6) want = Phase::kCritical;
      EXPECT_EQ(s.phase, want) << "sb2 = " << rows[i].sb2 << " sw2 = " << s.sw2;
    }
  }
}

TEST(PhaseGrid, ReluIsOrderedUnboundedOrCriticalAtHe) {
  const std::vector<PhasePoint> rows =
      phase_grid(spec(Activation::kRelu), 0.0, 0.2, 2, {1.0, 2.0, 3.0});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_TRUE(rows[0].critical.exists);
  EXPECT_FALSE(rows[1].critical.exists);
  EXPECT_EQ(rows[0].samples[0].phase, Phase::kOrdered);
  EXPECT_EQ(rows[0].samples[1].phase, Phase::kCritical);
  EXPECT_EQ(rows[0].samples[2].phase, Phase::kUnbounded);
  EXPECT_EQ(rows[1].samples[0].phase, Phase::kOrdered);
  EXPECT_EQ(rows[1].samples[1].phase, Phase::kUnbounded);  // sb2 > 0: q grows by sb2 a layer
  EXPECT_TRUE(std::isnan(rows[1].samples[1].q_star));
  EXPECT_EQ(phase_name(Phase::kOrdered), "ordered");
  EXPECT_EQ(phase_name(Phase::kCritical), "critical");
  EXPECT_EQ(phase_name(Phase::kChaotic), "chaotic");
  EXPECT_EQ(phase_name(Phase::kUnbounded), "unbounded");
  EXPECT_THROW(phase_grid(spec(Activation::kRelu), 0.5, 0.1, 2), gradscope::Error);
  EXPECT_THROW(phase_grid(spec(Activation::kRelu), 0.0, 0.1, 0), gradscope::Error);
}

// ---- One tolerance for the critical line -------------------------------------------------------

TEST(Criticality, OneToleranceDecidesThePhaseAndTheInfiniteDepthScales) {
  // ReLU at sw2 = 2 computes chi1 = 1 + 2.2e-16; the quadrature is good to ~1e-14.
  EXPECT_TRUE(is_unit_rate(1.0 + 2.2e-16));
  EXPECT_TRUE(is_unit_rate(1.0 - 1e-13));
  EXPECT_TRUE(is_unit_rate(-1.0));  // a slope of -1: |chi_q| = 1, q - q* neither grows nor shrinks
  EXPECT_FALSE(is_unit_rate(1.0 + 1e-10));
  EXPECT_FALSE(is_unit_rate(kInf));
  EXPECT_FALSE(is_unit_rate(std::numeric_limits<double>::quiet_NaN()));
  EXPECT_EQ(depth_scale(1.0 + 2.2e-16), kInf);
  EXPECT_EQ(depth_scale(0.0), 0.0);
  EXPECT_TRUE(std::isnan(depth_scale(std::numeric_limits<double>::quiet_NaN())));
  // Just outside the tolerance the depth scale is large but finite: 1 / ln(1 + 1e-10) ~ 1e10.
  EXPECT_NEAR(depth_scale(1.0 + 1e-10), 1e10, 1e4);
  FixedPoint fp;
  fp.exists = true;
  fp.q = 1.0;
  EXPECT_EQ(phase_of(fp, 1.0 + 2.2e-16), Phase::kCritical);
  EXPECT_EQ(phase_of(fp, 1.0 - 1e-10), Phase::kOrdered);
  EXPECT_EQ(phase_of(fp, 1.0 + 1e-10), Phase::kChaotic);
  fp.exists = false;
  EXPECT_EQ(phase_of(fp, 1.0), Phase::kUnbounded);
}

TEST(DepthScales, InfiniteOnTheCriticalLineNotAFloatArtefact) {
  // ReLU at He init and linear at sw2 = 1: the length map is the identity, chi1 = chi_q = 1.
  for (const MeanField& mf : {MeanField{spec(Activation::kRelu), 2.0, 0.0},
                              MeanField{spec(Activation::kLinear), 1.0, 0.0}}) {
    const DepthScales d = depth_scales(mf, 1.0);
    EXPECT_EQ(d.xi_c, kInf) << label(mf.activation);
    EXPECT_EQ(d.xi_q, kInf) << label(mf.activation);
  }
  // tanh at (1, 0): q* = 0 with chi1 = tanh'(0)^2 = 1 and slope 1 (q -> 0 as 1/l, not e^-l).
  const DepthScales t = depth_scales({spec(Activation::kTanh), 1.0, 0.0}, 0.0);
  EXPECT_EQ(t.chi1, 1.0);
  EXPECT_EQ(t.xi_c, kInf);
  EXPECT_EQ(t.xi_q, kInf);
  // Off the line, finite: ReLU below He has chi1 = chi_q = sw2 / 2 at every q.
  const DepthScales below = depth_scales({spec(Activation::kRelu), 1.9, 0.0}, 0.0);
  EXPECT_NEAR(below.xi_c, -1.0 / std::log(0.95), 1e-12);  // one ulp of chi1, amplified 20 times
}

// The marginal cases, each classified once by compute_theory (the single point, from q0 = 1) and
// once by classify_phase (the grid), which must agree.
TEST(Phase, SinglePointAndGridAgreeOnTheMarginalCases) {
  struct Case {
    Activation kind;
    double sw2;
    double sb2;
    Phase want;
  };
  const std::vector<Case> cases = {
      {Activation::kTanh, 1.0, 0.0, Phase::kCritical},   // q* = 0, chi1 = tanh'(0)^2 = 1
      {Activation::kTanh, 0.9, 0.0, Phase::kOrdered},    // q* = 0, chi1 = 0.9
      {Activation::kTanh, 1.1, 0.0, Phase::kChaotic},    // q* > 0
      {Activation::kRelu, 2.0, 0.0, Phase::kCritical},   // every q fixed, chi1 = 1
      {Activation::kRelu, 1.9, 0.0, Phase::kOrdered},    // q* = 0, chi1 = 0.95
      {Activation::kRelu, 2.1, 0.0, Phase::kUnbounded},  // no fixed point: q grows as 1.05^l
      {Activation::kLinear, 1.0, 0.0, Phase::kCritical},
      {Activation::kHardTanh, 1.0, 0.0, Phase::kCritical},
      {Activation::kElu, 1.0, 0.0, Phase::kCritical},  // q* = 0, elu'(0+-) = 1
      {Activation::kGelu, 1.0, 0.0, Phase::kOrdered},  // q* = 0, chi1 = gelu'(0)^2 = 1/4
  };
  for (const Case& c : cases) {
    TheoryQuery query;
    query.activation = spec(c.kind);
    query.sw2 = c.sw2;
    query.sb2 = c.sb2;
    const TheoryReport r = compute_theory(query);
    const PhaseSample s = classify_phase({query.activation, c.sw2, c.sb2});
    const std::string where = label(query.activation) + " sw2 = " + std::to_string(c.sw2);
    EXPECT_EQ(phase_name(r.phase), phase_name(c.want)) << where;
    EXPECT_EQ(phase_name(s.phase), phase_name(c.want)) << where;
  }
  TheoryQuery grid;
  grid.activation = spec(Activation::kTanh);
  grid.grid = true;
  grid.grid_points = 1;
  const TheoryReport g = compute_theory(grid);  // sw2 = 1, sb2 = 0, and the grid's row at sb2 = 0
  ASSERT_EQ(g.grid.size(), 1u);
  ASSERT_EQ(g.grid[0].samples[2].sw2, 1.0);
  EXPECT_EQ(g.grid[0].samples[2].phase, g.phase);
}

// ---- The edge of chaos at sb2 = 0 -------------------------------------------------------------

TEST(Critical, AtZeroBiasTheEdgeOfQZeroIsExactWithItsOwnFixedPoint) {
  const double lambda = 1.0507009873554805;  // SELU's scale and alpha (Klambauer et al. 2017)
  const double alpha = 1.6732632423543772;
  struct Case {
    ActivationSpec a;
    double sw2;  // 1 / E_{0+}[phi'^2]
  };
  const std::vector<Case> cases = {
      {spec(Activation::kTanh), 1.0},
      {spec(Activation::kHardTanh), 1.0},
      {spec(Activation::kElu), 1.0},
      {spec(Activation::kSelu), 2.0 / (lambda * lambda * (1.0 + alpha * alpha))},
  };
  for (const Case& c : cases) {
    const Critical e = critical_sw2(c.a, 0.0);
    ASSERT_TRUE(e.exists) << label(c.a) << ": " << e.reason;
    // sw2 = 1 / chi(0), one division of a one-sided quadrature: rounding-level.
    EXPECT_NEAR(e.sw2, c.sw2, 1e-14 * c.sw2) << label(c.a);
    // Exactly 0, not a rounding-level 3e-9 (tanh) or 1e-19 (elu) from a slow iteration.
    EXPECT_EQ(e.q_star, 0.0) << label(c.a) << ": " << e.reason;
    EXPECT_TRUE(e.q_star_unique) << label(c.a);
    EXPECT_NEAR(e.chi1, 1.0, 1e-14) << label(c.a);
  }
  // ReLU and leaky ReLU: the map is the identity at the edge, and the edge is exact (1 / chi(0)).
  for (const ActivationSpec& a :
       {spec(Activation::kRelu), ActivationSpec{Activation::kLeakyRelu, 0.2}}) {
    const Critical e = critical_sw2(a, 0.0);
    ASSERT_TRUE(e.exists) << label(a);
    EXPECT_NEAR(e.sw2, 2.0 / (1.0 + a.param * a.param), 1e-15 * 2.0) << label(a);
    EXPECT_FALSE(e.q_star_unique) << label(a);
    EXPECT_EQ(e.q_star, 1.0) << label(a);  // the q reached from q0 = 1, which stays put
  }
  EXPECT_EQ(critical_sw2(spec(Activation::kRelu), 0.0).sw2, 2.0);
}

TEST(Critical, ActivationsWithoutAnEdgeAtZeroBiasSaySoRatherThanInventOne) {
  // gelu, silu, mish: from q0 = 1, q* = 0 with chi1 < 1 until q runs off; softplus: q* runs off
  // as chi1 nears 1; sigmoid: chi1 <= sw2 / 16 and its edge lies beyond sw2 = 100.
  for (Activation kind : {Activation::kGelu, Activation::kSilu, Activation::kMish,
                          Activation::kSoftplus, Activation::kSigmoid}) {
    const Critical c = critical_sw2(spec(kind), 0.0);
    EXPECT_FALSE(c.exists) << label(spec(kind)) << ": sw2 = " << c.sw2;
    EXPECT_TRUE(std::isnan(c.sw2)) << label(spec(kind));
    EXPECT_NE(c.reason.find("no sw2 in (0, 100]"), std::string::npos) << c.reason;
  }
}

TEST(CorrelationFixedPoint, ExactlyZeroForOddPhiAndOneOnTheCriticalLine) {
  // tanh, sb2 = 0, chaotic: map(0) = 0 by symmetry; rounding left 1e-34, which is not c*.
  const MeanField tanh_chaotic{spec(Activation::kTanh), 1.5, 0.0};
  EXPECT_EQ(correlation_fixed_point(tanh_chaotic, fixed_point_q(tanh_chaotic).q), 0.0);
  // Linear at sw2 = 1 (chi1 = 1 + rounding): critical, so c* = 1 (the map is the identity).
  EXPECT_EQ(correlation_fixed_point({spec(Activation::kLinear), 1.0, 0.0}, 1.0), 1.0);
  EXPECT_EQ(correlation_fixed_point({spec(Activation::kRelu), 2.0, 0.0}, 1.0), 1.0);
}

// ---- What `gradscope theory` prints -----------------------------------------------------------

TheoryReport theory(Activation kind, double sw2, double sb2 = 0.0, bool grid = false) {
  TheoryQuery query;
  query.activation = spec(kind);
  query.sw2 = sw2;
  query.sb2 = sb2;
  query.grid = grid;
  query.grid_points = 2;
  query.grid_sb2_max = 0.1;
  return compute_theory(query);
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The line of `text` that starts with `prefix` (after indentation), or "" when none does.
std::string line_of(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.find_first_not_of(' ') != std::string::npos &&
        line.substr(line.find_first_not_of(' ')).rfind(prefix, 0) == 0) {
      return line;
    }
  }
  return "";
}

TEST(TheoryText, ReluAtHeSaysTheDepthScalesAreInfiniteAndWhichQStarIsWhose) {
  const std::string text = theory_to_text(theory(Activation::kRelu, 2.0));
  EXPECT_EQ(line_of(text, "phase"), "  phase                      critical") << text;
  EXPECT_EQ(line_of(text, "depth scale xi_c"),
            "  depth scale xi_c           infinite (critical: chi1 = 1)")
      << text;
  EXPECT_EQ(line_of(text, "depth scale xi_q"),
            "  depth scale xi_q           infinite (the length map's slope at q* is 1)")
      << text;
  EXPECT_FALSE(has(text, "e+15")) << text;
  EXPECT_EQ(line_of(text, "fixed point q*"),
            "  fixed point q*             1 (not unique: every q is a fixed point, so q stays at "
            "q0 = 1)")
      << text;
  // The edge's own fixed point is labelled, and here it is "every q", not a q* = 0 that reads
  // as a contradiction of the line above.
  EXPECT_EQ(line_of(text, "edge of chaos"),
            "  edge of chaos at this sb2  sw2 = 2 (this sw2), where every q is a fixed point")
      << text;
  EXPECT_FALSE(has(text, "q* = 0")) << text;
}

TEST(TheoryText, TanhAtOneIsCriticalAsInTheGridWithQStarZero) {
  const std::string text = theory_to_text(theory(Activation::kTanh, 1.0, 0.0, true));
  EXPECT_EQ(line_of(text, "phase "), "  phase                      critical") << text;
  EXPECT_EQ(line_of(text, "fixed point q*"),
            "  fixed point q*             0 (signals shrink to zero with depth)")
      << text;
  EXPECT_TRUE(has(line_of(text, "chi1 = sw2 E[phi'^2] at q*"), "at q* 1  (")) << text;
  EXPECT_EQ(line_of(text, "depth scale xi_c"),
            "  depth scale xi_c           infinite (critical: chi1 = 1)")
      << text;
  EXPECT_TRUE(has(line_of(text, "correlation fixed point c*"), "not defined")) << text;
  EXPECT_EQ(line_of(text, "edge of chaos"),
            "  edge of chaos at this sb2  sw2 = 1 (this sw2), with q* = 0 at that sw2")
      << text;
  // The grid's sb2 = 0 row marks sw2 = 1 (third column) critical too.
  const std::string row = line_of(text, "0 ");
  EXPECT_TRUE(std::regex_search(row, std::regex(R"(^\s+0\s+1\s+o\s+o\s+c\s)"))) << text;
}

TEST(TheoryText, AnEdgeAwayFromThisSw2IsLabelledAsItsOwnFixedPoint) {
  const TheoryReport r = theory(Activation::kTanh, 1.0, 0.05);
  ASSERT_TRUE(r.critical.exists);
  const std::string edge = line_of(theory_to_text(r), "edge of chaos");
  EXPECT_TRUE(
      std::regex_match(edge, std::regex(R"(.*sw2 = 1\.\d+, with q\* = 0\.\d+ at that sw2)")))
      << edge;
}

TEST(TheoryText, UnboundedAndLinearSayWhatIsNotDefinedOrNotUnique) {
  const std::string relu = theory_to_text(theory(Activation::kRelu, 2.1));
  EXPECT_EQ(line_of(relu, "phase"), "  phase                      unbounded") << relu;
  EXPECT_TRUE(has(relu, "chi1, depth scales, c*     not defined: there is no fixed point q*"))
      << relu;
  // A near-1 chi1 off the critical line is shown as its distance from 1, not as "1".
  const std::string leaky = theory_to_text(theory(Activation::kLeakyRelu, 1.9998));
  EXPECT_EQ(line_of(leaky, "phase"), "  phase                      ordered") << leaky;
  EXPECT_TRUE(has(line_of(leaky, "chi1 = sw2"), "at q* 1 - 1e-08  (")) << leaky;
  // Just above tanh's edge q* ~ 5e-8 and chi1 is 1 to rounding: critical, c* = 1, and the
  // correlation map (within ~q*^2 of linear) is not claimed to be the identity.
  const std::string tanh = theory_to_text(theory(Activation::kTanh, 1.0 + 1e-7));
  EXPECT_EQ(line_of(tanh, "correlation fixed point c*"), "  correlation fixed point c* 1") << tanh;
  const std::string linear = theory_to_text(theory(Activation::kLinear, 1.0));
  // c* was a rounding-level root, 1.5e-33; the correlation map is the identity.
  EXPECT_EQ(line_of(linear, "correlation fixed point c*"),
            "  correlation fixed point c* 1 (not unique: the correlation map is the identity, so "
            "every c is kept)")
      << linear;
}

using Json = nlohmann::json;

TEST(TheoryJson, InfiniteDepthScalesAreNullWithStatusInf) {
  const Json relu = Json::parse(theory_to_json(theory(Activation::kRelu, 2.0)));
  EXPECT_EQ(relu["phase"], "critical");
  const Json& s = relu["at_fixed_point"];
  for (const char* key : {"xi_c", "xi_q"}) {
    EXPECT_TRUE(s[key].is_null()) << key << ": " << s.dump();
    EXPECT_EQ(s[std::string(key) + "_status"], "inf") << s.dump();
  }
  EXPECT_EQ(relu["fixed_point"]["q_star"].get<double>(), 1.0);  // not 1.0000000000000002
  EXPECT_EQ(relu["critical"]["sw2"].get<double>(), 2.0);        // not 2.0000000000000724
  EXPECT_EQ(relu["critical"]["q_star_unique"], false);
}

TEST(TheoryJson, TanhAtOneIsCriticalWithChi1AtQStarZeroAndNoCStar) {
  const Json t = Json::parse(theory_to_json(theory(Activation::kTanh, 1.0, 0.0, true)));
  EXPECT_EQ(t["phase"], "critical");
  EXPECT_EQ(t["grid"][0]["samples"][2]["sw2"].get<double>(), 1.0);
  EXPECT_EQ(t["grid"][0]["samples"][2]["phase"], t["phase"]);
  const Json& s = t["at_fixed_point"];
  EXPECT_EQ(s["chi1"].get<double>(), 1.0);
  EXPECT_TRUE(s["xi_c"].is_null());
  EXPECT_EQ(s["xi_c_status"], "inf");
  EXPECT_TRUE(s["c_star"].is_null());
  EXPECT_EQ(s["c_star_status"], "undefined");
  EXPECT_EQ(t["critical"]["sw2"].get<double>(), 1.0);
  EXPECT_EQ(t["critical"]["q_star"].get<double>(), 0.0);  // not 3.42e-9
}

// Every activation at and near its edge (or at sw2 = 1 and 2 without one): the text has no
// float artefacts where a number is printed, and the JSON no NaN or Inf as a number.
TEST(TheoryText, EveryActivationNearItsEdgePrintsNoArtefacts) {
  // A 6-digit number with an exponent beyond +-12: a rounding residue (1e-34 for 0, 4.5e15 for
  // infinite), never a mean-field quantity at these sw2, sb2.
  const std::regex artefact(R"(\de[+-](1[2-9]|[2-9]\d|\d{3}))");
  for (const ActivationSpec& a : testing::elementwise_specs()) {
    for (double sb2 : {0.0, 0.05}) {
      const Critical edge = critical_sw2(a, sb2);
      std::vector<double> sw2s = {1.0, 2.0};
      if (edge.exists) sw2s = {edge.sw2 * (1.0 - 1e-3), edge.sw2, edge.sw2 * (1.0 + 1e-3)};
      for (double sw2 : sw2s) {
        TheoryQuery query;
        query.activation = a;
        query.sw2 = sw2;
        query.sb2 = sb2;
        const TheoryReport r = compute_theory(query);
        const std::string where =
            label(a) + " sw2 = " + std::to_string(sw2) + " sb2 = " + std::to_string(sb2);
        const std::string text = theory_to_text(r);
        for (const char* line : {"fixed point q*", "chi1 = sw2", "depth scale xi_c",
                                 "depth scale xi_q", "correlation fixed point c*", "sw2 keeping"}) {
          // Without a fixed point the line is the reason, with probes as far out as q = 1e100.
          if (!r.fixed_point.exists && std::string(line) == "fixed point q*") continue;
          const std::string l = line_of(text, line);
          EXPECT_FALSE(std::regex_search(l, artefact)) << where << "\n" << l;
          EXPECT_FALSE(has(l, "n/a") || has(l, "nan")) << where << "\n" << l;
        }
        if (edge.exists) {
          EXPECT_FALSE(std::regex_search(line_of(text, "edge of chaos"), artefact)) << where << "\n"
                                                                                    << text;
        }
        // On the edge the phase is critical exactly when chi1 is 1 to the tolerance.
        if (r.has_scales) {
          EXPECT_EQ(r.phase == Phase::kCritical, is_unit_rate(r.scales.chi1)) << where;
          EXPECT_EQ(std::isinf(r.scales.xi_c), r.phase == Phase::kCritical) << where;
        }
        EXPECT_EQ(phase_name(r.phase), phase_name(classify_phase({a, sw2, sb2}).phase)) << where;
        const Json j = Json::parse(theory_to_json(r));  // throws on a bare NaN
        EXPECT_EQ(j["phase"], std::string(phase_name(r.phase))) << where;
      }
    }
  }
}

}  // namespace
}  // namespace gradscope
