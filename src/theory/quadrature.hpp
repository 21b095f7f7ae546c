// What the theory files share (private to src/theory/): adaptive Gauss-Kronrod quadrature split at
// an activation's kinks, Gaussian expectations in one and two variables, Brent's root finder, and
// the argument checks whose messages name the public function that was called.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/number_format.hpp"
#include "gradscope/theory/theory.hpp"

namespace gradscope::quadrature {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr double kInvSqrt2Pi = 0.39894228040143267793994605993438;  // 1 / sqrt(2 pi)

// ---- Adaptive Gauss-Kronrod -------------------------------------------------------------------

// The 21-point Kronrod rule and its embedded 10-point Gauss rule on [-1, 1] (QUADPACK's qk21,
// evaluated by Fullerton with 80-digit arithmetic); positive half, the centre last. Gauss nodes
// are kXgk[1], kXgk[3], ..., kXgk[9].
constexpr std::array<double, 11> kXgk = {0.995657163025808080735527280689003,
                                         0.973906528517171720077964012084452,
                                         0.930157491355708226001207180059508,
                                         0.865063366688984510732096688423493,
                                         0.780817726586416897063717578345042,
                                         0.679409568299024406234327365114874,
                                         0.562757134668604683339000099272694,
                                         0.433395394129247190799265943165784,
                                         0.294392862701460198131126603103866,
                                         0.148874338981631210884826001129720,
                                         0.0};
constexpr std::array<double, 11> kWgk = {
    0.011694638867371874278064396062192, 0.032558162307964727478818972459390,
    0.054755896574351996031381300244580, 0.075039674810919952767043140916190,
    0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
    0.123491976262065851077958109831074, 0.134709217311473325928054001771707,
    0.142775938577060080797094273138717, 0.147739104901338491374841515972068,
    0.149445554002916905664936468389821};
constexpr std::array<double, 5> kWg = {
    0.066671344308688137593568809893332, 0.149451349150580593145776339657697,
    0.219086362515982043995534934228163, 0.269266719309996355091226921569469,
    0.295524224714752870173892994651338};

// Beyond |z| = 38 the Gaussian density is below 1e-314: nothing there reaches a double's sum.
constexpr double kZMax = 38.0;
// Where activations have their features, in units of x = sqrt(q) z: a cut at each keeps them
// resolved however large q is (for q = 1e8, tanh turns over within |z| < 1e-4).
constexpr std::array<double, 6> kFeatureScales = {-16.0, -4.0, -1.0, 1.0, 4.0, 16.0};

struct Segment {
  double a;
  double b;
  double value;
  double error;
  double abs_value;  // integral of |g|, the scale the tolerance is relative to
};

// One G10-K21 pass over [a, b], with QUADPACK's error estimate: |K - G| is the Gauss rule's error,
// far larger than the Kronrod rule's; (200 |K - G| / resasc)^1.5 scaled by resasc tracks the
// latter. The floor is the rounding of a 21-term sum of positive parts.
template <class G>
Segment gauss_kronrod(const G& g, double a, double b) {
  const double center = 0.5 * (a + b);
  const double half = 0.5 * (b - a);
  std::array<double, 10> lower{};
  std::array<double, 10> upper{};
  const double fc = g(center);
  double kronrod = kWgk[10] * fc;
  double gauss = 0.0;
  double abs_sum = kWgk[10] * std::abs(fc);
  for (std::size_t j = 0; j < 10; ++j) {
    const double dx = half * kXgk[j];
    lower[j] = g(center - dx);
    upper[j] = g(center + dx);
    const double pair = lower[j] + upper[j];
    kronrod += kWgk[j] * pair;
    abs_sum += kWgk[j] * (std::abs(lower[j]) + std::abs(upper[j]));
    if (j % 2 == 1) gauss += kWg[j / 2] * pair;
  }
  const double mean = 0.5 * kronrod;
  double asc = kWgk[10] * std::abs(fc - mean);
  for (std::size_t j = 0; j < 10; ++j) {
    asc += kWgk[j] * (std::abs(lower[j] - mean) + std::abs(upper[j] - mean));
  }
  const double width = std::abs(half);
  double error = std::abs((kronrod - gauss) * half);
  asc *= width;
  if (asc != 0.0 && error != 0.0) error = asc * std::min(1.0, std::pow(200.0 * error / asc, 1.5));
  abs_sum *= width;
  error = std::max(error, 2.0 * kEps * abs_sum);
  return {a, b, kronrod * half, error, abs_sum};
}

// Globally adaptive: always bisect the piece with the largest error estimate, until the summed
// estimate is below rel_tol * integral |g| or max_segments pieces exist. breaks: sorted cuts,
// first and last the ends.
template <class G>
double integrate(const G& g, const std::vector<double>& breaks, double rel_tol, int max_segments) {
  std::vector<Segment> segments;
  segments.reserve(static_cast<std::size_t>(max_segments));
  for (std::size_t i = 0; i + 1 < breaks.size(); ++i) {
    segments.push_back(gauss_kronrod(g, breaks[i], breaks[i + 1]));
  }
  for (;;) {
    double error = 0.0;
    double scale = 0.0;
    std::size_t worst = 0;
    for (std::size_t i = 0; i < segments.size(); ++i) {
      error += segments[i].error;
      scale += segments[i].abs_value;
      if (segments[i].error > segments[worst].error) worst = i;
    }
    // Written so that a NaN estimate (f returned NaN) stops the loop rather than spinning.
    if (!(error > rel_tol * scale) || static_cast<int>(segments.size()) >= max_segments) break;
    const Segment s = segments[worst];
    const double mid = 0.5 * (s.a + s.b);
    if (!(mid > s.a && mid < s.b)) {  // no room left to split: accept the piece as it is
      segments[worst].error = 0.0;
      continue;
    }
    segments[worst] = gauss_kronrod(g, s.a, mid);
    segments.push_back(gauss_kronrod(g, mid, s.b));
  }
  double value = 0.0;
  for (const Segment& s : segments) value += s.value;
  return value;
}

inline void add_break(std::vector<double>& breaks, double z) {
  if (std::isfinite(z) && z > -kZMax && z < kZMax) breaks.push_back(z);
}

inline void sort_breaks(std::vector<double>& breaks) {
  std::sort(breaks.begin(), breaks.end());
  breaks.erase(std::unique(breaks.begin(), breaks.end()), breaks.end());
}

// Cuts of the z-line for x = scale * (z - shift) (the inner line of the 2D integral has
// shift != 0): the ends +-38, the Gaussian's centre 0, and where x = 0, a kink, or a feature scale.
inline std::vector<double> z_breaks(const std::vector<double>& kinks, double scale, double shift) {
  std::vector<double> breaks = {-kZMax, 0.0, kZMax};
  add_break(breaks, shift);
  for (double k : kinks) add_break(breaks, shift + k / scale);
  for (double x : kFeatureScales) add_break(breaks, shift + x / scale);
  sort_breaks(breaks);
  return breaks;
}

inline double gaussian_density(double z) { return kInvSqrt2Pi * std::exp(-0.5 * z * z); }

// Product of a density and an integrand value: where the density underflows to 0, the integrand
// there does not count (f may be inf far out, and inf * 0 would be NaN).
inline double weighted(double density, double value) {
  return density == 0.0 ? 0.0 : density * value;
}

// Numbers in messages and reasons: six significant digits, as a reader wants them.
inline std::string num(double x) { return std::isnan(x) ? "NaN" : format_significant(x, 6); }

inline void check_q(const char* what, double q) {
  if (!(q >= 0.0) || !std::isfinite(q)) {
    throw contract_error(std::string(what) + ": q = " + num(q) +
                         " must be finite and >= 0 (q is a second moment)");
  }
}

inline void check_kinks(const char* what, const std::vector<double>& kinks) {
  for (double k : kinks) {
    if (std::isnan(k)) throw contract_error(std::string(what) + ": a kink is NaN");
  }
}

constexpr double kRelTol1d = 1e-14;
constexpr int kMaxSegments1d = 400;
// The inner integral's rounding (~1e-15) is noise to the outer rule, so the outer tolerance sits
// above it.
constexpr double kRelTolInner = 1e-14;
constexpr double kRelTolOuter = 1e-12;
constexpr int kMaxSegments2d = 200;

template <class F>
double expect_1d(const F& f, double q, const std::vector<double>& kinks) {
  if (q == 0.0) return f(0.0);
  const double s = std::sqrt(q);
  return integrate([&](double z) { return weighted(gaussian_density(z), f(s * z)); },
                   z_breaks(kinks, s, 0.0), kRelTol1d, kMaxSegments1d);
}

// integral Dz1 Dz2 f1(u1) * f2(u1, u2). The factor f1(u1) is pulled out of the inner integral, so
// where it is 0 (ReLU's negative side) no inner integral is computed.
template <class F1, class F2>
double expect_2d(const F1& f1, const F2& f2, double q, double c, const std::vector<double>& kinks) {
  if (q == 0.0) return f1(0.0) * f2(0.0, 0.0);
  const double sq = std::sqrt(q);
  // sqrt((1 - c)(1 + c)) keeps its relative accuracy as |c| -> 1, where 1 - c^2 cancels.
  const double s = std::sqrt(std::max(0.0, (1.0 - c) * (1.0 + c)));
  if (s == 0.0) {  // u2 = c u1 with c = +-1: kinks of u2 sit at c * kink in u1
    std::vector<double> both = kinks;
    for (double k : kinks) both.push_back(c * k);
    return expect_1d([&](double u) { return f1(u) * f2(u, c * u); }, q, both);
  }
  std::vector<double> outer_breaks = z_breaks(kinks, sq, 0.0);
  if (c != 0.0) {
    // Where u2 crosses a kink or feature at z2 = 0. The inner integral is f2 blurred over a width
    // s / |c| in z1, so near |c| = 1 it keeps a near-kink of that width at each kink, narrower
    // than the outer rule's node spacing: graded cuts at 1, 4 and 16 widths from it resolve it.
    for (double x : kFeatureScales) add_break(outer_breaks, x / (sq * c));
    const double blur = s / std::abs(c);
    for (double k : kinks) {
      const double z = k / (sq * c);
      add_break(outer_breaks, z);
      for (double m : {1.0, 4.0, 16.0}) {
        if (m * blur >= 1.0) break;  // wider than the Gaussian: nothing sharp left
        add_break(outer_breaks, z - m * blur);
        add_break(outer_breaks, z + m * blur);
      }
    }
    sort_breaks(outer_breaks);
  }

  auto inner = [&](double z1) {
    const double u1 = sq * z1;
    const double a = f1(u1);
    if (a == 0.0) return 0.0;
    // u2 = sq s (z2 - shift) with shift = -c z1 / s.
    const double shift = -c * z1 / s;
    const double inner_value = integrate(
        [&](double z2) { return weighted(gaussian_density(z2), f2(u1, sq * (c * z1 + s * z2))); },
        z_breaks(kinks, sq * s, shift), kRelTolInner, kMaxSegments2d);
    return a * inner_value;
  };
  return integrate([&](double z1) { return weighted(gaussian_density(z1), inner(z1)); },
                   outer_breaks, kRelTolOuter, kMaxSegments2d);
}

// ---- Activations ------------------------------------------------------------------------------

inline void check_elementwise(const char* what, const ActivationSpec& spec) {
  if (spec.kind == Activation::kSoftmax) {
    throw contract_error(std::string(what) +
                         ": softmax couples a layer's units, so the mean-field maps (which "
                         "need an elementwise phi) do not apply; use it only as the output");
  }
  if (static_cast<int>(spec.kind) < 0 || static_cast<int>(spec.kind) >= kActivationCount) {
    throw contract_error(std::string(what) + ": unknown activation kind");
  }
}

inline void check_mean_field(const char* what, const MeanField& mf) {
  check_elementwise(what, mf.activation);
  if (!(mf.sw2 >= 0.0) || !std::isfinite(mf.sw2)) {
    throw contract_error(std::string(what) + ": sw2 = " + num(mf.sw2) +
                         " must be finite and >= 0 (it is a variance)");
  }
  if (!(mf.sb2 >= 0.0) || !std::isfinite(mf.sb2)) {
    throw contract_error(std::string(what) + ": sb2 = " + num(mf.sb2) +
                         " must be finite and >= 0 (it is a variance)");
  }
}

inline bool has_kink_at_zero(const std::vector<double>& kinks) {
  return std::find(kinks.begin(), kinks.end(), 0.0) != kinks.end();
}

// E_q[f] for an integrand built from phi, with q = 0 read as the limit q -> 0+: a kink at 0 then
// splits the vanishing Gaussian evenly between the one-sided values.
template <class F>
double expect_phi(const ActivationSpec& spec, double q, const F& f) {
  const std::vector<double> k = kinks(spec);
  if (q == 0.0 && has_kink_at_zero(k)) {
    const double m = std::numeric_limits<double>::min();
    return 0.5 * (f(-m) + f(m));
  }
  return expect_1d(f, q, k);
}

inline std::string activation_label(const ActivationSpec& spec) {
  return std::string(activation_info(spec.kind).name);
}

// ---- Root finding -----------------------------------------------------------------------------

// Brent's method (Brent 1973, as in Numerical Recipes' zbrent) on a bracket [a, b] with
// fa * fb <= 0, to a relative width rel_tol. Counts evaluations in `evals`.
template <class G>
double brent_root(const G& g, double a, double b, double fa, double fb, double rel_tol,
                  int& evals) {
  constexpr int kMaxIter = 200;
  double c = b;
  double fc = fb;
  double d = b - a;
  double e = d;
  for (int iter = 0; iter < kMaxIter; ++iter) {
    if ((fb > 0.0 && fc > 0.0) || (fb < 0.0 && fc < 0.0)) {
      c = a;
      fc = fa;
      d = b - a;
      e = d;
    }
    if (std::abs(fc) < std::abs(fb)) {
      a = b;
      b = c;
      c = a;
      fa = fb;
      fb = fc;
      fc = fa;
    }
    const double tol1 =
        (2.0 * kEps + 0.5 * rel_tol) * std::abs(b) + std::numeric_limits<double>::denorm_min();
    const double xm = 0.5 * (c - b);
    if (std::abs(xm) <= tol1 || fb == 0.0) return b;
    if (std::abs(e) >= tol1 && std::abs(fa) > std::abs(fb)) {
      const double s = fb / fa;
      double p = 0.0;
      double q = 0.0;
      if (a == c) {
        p = 2.0 * xm * s;
        q = 1.0 - s;
      } else {
        const double qa = fa / fc;
        const double r = fb / fc;
        p = s * (2.0 * xm * qa * (qa - r) - (b - a) * (r - 1.0));
        q = (qa - 1.0) * (r - 1.0) * (s - 1.0);
      }
      if (p > 0.0) q = -q;
      p = std::abs(p);
      const double min1 = 3.0 * xm * q - std::abs(tol1 * q);
      const double min2 = std::abs(e * q);
      if (2.0 * p < std::min(min1, min2)) {
        e = d;
        d = p / q;
      } else {
        d = xm;
        e = d;
      }
    } else {
      d = xm;
      e = d;
    }
    a = b;
    fa = fb;
    b += std::abs(d) > tol1 ? d : std::copysign(tol1, xm);
    fb = g(b);
    ++evals;
  }
  return b;
}

}  // namespace gradscope::quadrature
