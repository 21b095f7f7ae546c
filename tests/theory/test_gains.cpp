// Tests for the activation gains: the moments of phi(z), z ~ N(0, 1), against closed forms (relu,
// leaky_relu, hard_tanh, identity) and high-precision quadrature (tanh, gelu).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/theory/gains.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

constexpr double kPi = 3.14159265358979323846;
// The quadrature is good to about 1e-14 of each integral of |integrand| (theory/quadrature.hpp);
// 1e-12 leaves a hundredfold margin and still catches any wrong split or weight.
constexpr double kRelTol = 1e-12;

double relative(double got, double want) { return std::abs(got - want) / std::abs(want); }

TEST(ActivationGain, ReluMatchesItsClosedForm) {
  // gamma = sqrt(2 / (1 - 1/pi)): E[relu] = 1/sqrt(2 pi), E[relu^2] = 1/2. The decimal from
  // mpmath at 40 digits: mp.sqrt(2 / (1 - 1 / mp.pi)).
  const ActivationMoments m = activation_moments(default_spec(Activation::kRelu));
  EXPECT_LT(relative(m.gain, 1.7128585504496627055878586932), kRelTol) << m.gain;
  EXPECT_LT(relative(m.gain, std::sqrt(2.0 / (1.0 - 1.0 / kPi))), kRelTol);
  EXPECT_LT(relative(m.mean, 1.0 / std::sqrt(2.0 * kPi)), kRelTol) << m.mean;
  EXPECT_LT(relative(m.second_moment, 0.5), kRelTol) << m.second_moment;
  EXPECT_LT(relative(m.variance, 0.5 * (1.0 - 1.0 / kPi)), kRelTol) << m.variance;
  EXPECT_EQ(activation_gain(default_spec(Activation::kRelu)), m.gain);
}

TEST(ActivationGain, ReluMeanShiftIsOneOverPi) {
  // E[relu]^2 / E[relu^2] = (1 / (2 pi)) / (1 / 2) = 1 / pi: after a He ReLU layer a channel's
  // squared mean is 1/pi of its second moment.
  const ActivationMoments m = activation_moments(default_spec(Activation::kRelu));
  EXPECT_LT(relative(m.mean_shift, 1.0 / kPi), kRelTol) << m.mean_shift;
}

TEST(ActivationGain, IdentityHasUnitGain) {
  const ActivationMoments m = activation_moments(default_spec(Activation::kLinear));
  EXPECT_LT(relative(m.gain, 1.0), kRelTol) << m.gain;
  EXPECT_LT(relative(m.second_moment, 1.0), kRelTol);
  EXPECT_LT(std::abs(m.mean), 1e-15);  // an odd integrand: its halves cancel to rounding
  EXPECT_LT(m.mean_shift, 1e-28);
}

TEST(ActivationGain, LeakyReluMatchesItsClosedForm) {
  // phi = z on z > 0, a z below: E = (1 - a) / sqrt(2 pi), E[phi^2] = (1 + a^2) / 2.
  for (double a : {0.01, 0.2, -0.5}) {
    const ActivationMoments m = activation_moments({Activation::kLeakyRelu, a});
    const double mean = (1.0 - a) / std::sqrt(2.0 * kPi);
    const double second = 0.5 * (1.0 + a * a);
    EXPECT_LT(relative(m.mean, mean), kRelTol) << a;
    EXPECT_LT(relative(m.second_moment, second), kRelTol) << a;
    EXPECT_LT(relative(m.gain, 1.0 / std::sqrt(second - mean * mean)), kRelTol) << a;
  }
}

TEST(ActivationGain, HardTanhMatchesItsClosedForm) {
  // clip(z, -1, 1): E[phi^2] = 1 - 2 pdf(1) (integrate z^2 pdf by parts up to 1, plus the tails'
  // mass), the mean 0 by symmetry. Kinks at +-1 are where the quadrature is split.
  const ActivationMoments m = activation_moments(default_spec(Activation::kHardTanh));
  const double second = 1.0 - 2.0 * std::exp(-0.5) / std::sqrt(2.0 * kPi);
  EXPECT_LT(relative(m.second_moment, second), kRelTol) << m.second_moment;
  EXPECT_LT(relative(m.gain, 1.0 / std::sqrt(second)), kRelTol) << m.gain;
  EXPECT_LT(std::abs(m.mean), 1e-15);
}

// The values below are from
//   scipy.integrate.quad(lambda z: f(z) * exp(-z*z/2) / sqrt(2 pi), ..., epsabs=0, epsrel=2e-14,
//                        limit=500)
// over (-inf, 0] and [0, inf) separately (scipy 1.10.1; the variance integrated centred), printed
// with %.17g, and agree with mpmath.quad at 40 digits to every printed digit but the last.

TEST(ActivationGain, TanhMatchesHighPrecisionQuadrature) {
  const ActivationMoments m = activation_moments(default_spec(Activation::kTanh));
  EXPECT_LT(relative(m.second_moment, 0.39429449039784126), kRelTol) << m.second_moment;
  EXPECT_LT(relative(m.variance, 0.39429449039784126), kRelTol) << m.variance;
  EXPECT_LT(relative(m.gain, 1.5925374197228312), kRelTol) << m.gain;
  EXPECT_LT(std::abs(m.mean), 1e-15);  // odd
}

TEST(ActivationGain, GeluMatchesHighPrecisionQuadrature) {
  // gelu = z Phi(z); its mean is 1 / (2 sqrt(pi)) exactly (E[z Phi(z)] = E[pdf(z)]).
  const ActivationMoments m = activation_moments(default_spec(Activation::kGelu));
  EXPECT_LT(relative(m.mean, 0.5 / std::sqrt(kPi)), kRelTol) << m.mean;
  EXPECT_LT(relative(m.mean, 0.2820947917738782), kRelTol) << m.mean;
  EXPECT_LT(relative(m.second_moment, 0.42522148257029868), kRelTol) << m.second_moment;
  EXPECT_LT(relative(m.variance, 0.34564401102435111), kRelTol) << m.variance;
  EXPECT_LT(relative(m.gain, 1.700926243363333), kRelTol) << m.gain;
}

TEST(ActivationGain, EveryElementwiseActivationIsConsistent) {
  // The centred variance equals E[phi^2] - E[phi]^2 up to that difference's own cancellation, and
  // the gain is finite and positive.
  for (const ActivationSpec& spec : testing::elementwise_specs()) {
    const std::string name(activation_info(spec.kind).name);
    const ActivationMoments m = activation_moments(spec);
    EXPECT_TRUE(std::isfinite(m.gain) && m.gain > 0.0) << name << " " << m.gain;
    EXPECT_NEAR(m.variance, m.second_moment - m.mean * m.mean, kRelTol * m.second_moment) << name;
    EXPECT_NEAR(m.gain, 1.0 / std::sqrt(m.variance), 1e-15 * m.gain) << name;
    EXPECT_GE(m.mean_shift, 0.0) << name;
    EXPECT_LE(m.mean_shift, 1.0) << name;
  }
}

TEST(ActivationGain, SoftmaxIsRefused) {
  try {
    activation_moments(default_spec(Activation::kSoftmax));
    FAIL() << "softmax accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kInternal);
    EXPECT_NE(std::string(e.what()).find("activation_moments"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gradscope
