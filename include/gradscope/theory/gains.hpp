// Exact activation gains: the moments of phi(z) for a standard Gaussian z, and the factor that
// restores unit variance after an elementwise activation (normalizer-free networks' gamma).
#pragma once

#include "gradscope/core/activation.hpp"

namespace gradscope {

// The moments of phi(z), z ~ N(0, 1), by adaptive Gauss-Kronrod quadrature split at phi's kinks,
// each to about 1e-14 of its integral of |integrand|. Every function takes an elementwise
// activation; softmax throws gradscope::Error (exit code 1).
struct ActivationMoments {
  double mean = 0.0;           // E[phi(z)] = integral Dz phi(z)
  double second_moment = 0.0;  // E[phi(z)^2] = integral Dz phi(z)^2
  // Var[phi(z)] = integral Dz (phi(z) - E[phi(z)])^2, integrated centred (not E[phi^2] - E[phi]^2,
  // which cancels digits when the mean is large next to the spread).
  double variance = 0.0;
  // gamma = 1 / sqrt(Var[phi(z)]): gamma phi(z) has unit variance (Brock et al. 2021, NF-ResNets).
  double gain = 0.0;
  // The mean shift E[phi(z)]^2 / E[phi(z)^2]: the share of the output's second moment that is a
  // common offset (ReLU: 1/pi), i.e. a channel's squared mean over its second moment after the
  // layer; 0 when E[phi(z)^2] = 0.
  double mean_shift = 0.0;
};
ActivationMoments activation_moments(const ActivationSpec& spec);

// gamma = 1 / sqrt(Var[phi(z)]), z ~ N(0, 1) (activation_moments(spec).gain).
double activation_gain(const ActivationSpec& spec);

}  // namespace gradscope
