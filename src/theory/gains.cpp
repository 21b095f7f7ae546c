// Activation gains from the quadrature helpers the mean-field maps use (src/theory/quadrature.hpp).
#include "gradscope/theory/gains.hpp"

#include <cmath>

#include "theory/quadrature.hpp"

namespace gradscope {

ActivationMoments activation_moments(const ActivationSpec& spec) {
  quadrature::check_elementwise("activation_moments", spec);
  ActivationMoments m;
  const auto phi = [&](double x) { return activation_value(spec, x); };
  m.mean = quadrature::expect_phi(spec, 1.0, phi);
  m.second_moment = quadrature::expect_phi(spec, 1.0, [&](double x) { return phi(x) * phi(x); });
  m.variance = quadrature::expect_phi(spec, 1.0, [&](double x) {
    const double d = phi(x) - m.mean;
    return d * d;
  });
  m.gain = 1.0 / std::sqrt(m.variance);
  m.mean_shift = m.second_moment > 0.0 ? m.mean * m.mean / m.second_moment : 0.0;
  return m;
}

double activation_gain(const ActivationSpec& spec) { return activation_moments(spec).gain; }

}  // namespace gradscope
