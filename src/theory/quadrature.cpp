// Gaussian expectations E[f(sqrt(q) z)] and E[f(u1) g(u2)] over correlated Gaussians, by adaptive
// Gauss-Kronrod quadrature split at the integrand's kinks (src/theory/quadrature.hpp).
#include "theory/quadrature.hpp"

#include <functional>
#include <vector>

#include "gradscope/theory/theory.hpp"

namespace gradscope {

using namespace quadrature;  // the helpers the theory files share

// ---- Gaussian expectations --------------------------------------------------------------------

double gaussian_expectation(const std::function<double(double)>& f, double q,
                            const std::vector<double>& kinks) {
  check_q("gaussian_expectation", q);
  check_kinks("gaussian_expectation", kinks);
  return expect_1d(f, q, kinks);
}

double gaussian_expectation_2d(const std::function<double(double, double)>& f, double q, double c,
                               const std::vector<double>& kinks) {
  check_q("gaussian_expectation_2d", q);
  check_kinks("gaussian_expectation_2d", kinks);
  if (!(c >= -1.0 && c <= 1.0)) {
    throw contract_error("gaussian_expectation_2d: correlation c = " + num(c) +
                         " must lie in [-1, 1]");
  }
  return expect_2d([](double) { return 1.0; }, f, q, c, kinks);
}

}  // namespace gradscope
