// Mean-field theory: adaptive Gauss-Kronrod Gaussian expectations split at kinks, the length,
// gradient and correlation maps, their fixed points, depth scales and the edge of chaos.
#include "gradscope/theory/theory.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/core/number_format.hpp"

namespace gradscope {
namespace {

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

void add_break(std::vector<double>& breaks, double z) {
  if (std::isfinite(z) && z > -kZMax && z < kZMax) breaks.push_back(z);
}

void sort_breaks(std::vector<double>& breaks) {
  std::sort(breaks.begin(), breaks.end());
  breaks.erase(std::unique(breaks.begin(), breaks.end()), breaks.end());
}

// Cuts of the z-line for x = scale * (z - shift) (the inner line of the 2D integral has
// shift != 0): the ends +-38, the Gaussian's centre 0, and where x = 0, a kink, or a feature scale.
std::vector<double> z_breaks(const std::vector<double>& kinks, double scale, double shift) {
  std::vector<double> breaks = {-kZMax, 0.0, kZMax};
  add_break(breaks, shift);
  for (double k : kinks) add_break(breaks, shift + k / scale);
  for (double x : kFeatureScales) add_break(breaks, shift + x / scale);
  sort_breaks(breaks);
  return breaks;
}

double gaussian_density(double z) { return kInvSqrt2Pi * std::exp(-0.5 * z * z); }

// Product of a density and an integrand value: where the density underflows to 0, the integrand
// there does not count (f may be inf far out, and inf * 0 would be NaN).
double weighted(double density, double value) { return density == 0.0 ? 0.0 : density * value; }

// Numbers in messages and reasons: six significant digits, as a reader wants them.
std::string num(double x) { return std::isnan(x) ? "NaN" : format_significant(x, 6); }

void check_q(const char* what, double q) {
  if (!(q >= 0.0) || !std::isfinite(q)) {
    throw contract_error(std::string(what) + ": q = " + num(q) +
                         " must be finite and >= 0 (q is a second moment)");
  }
}

void check_kinks(const char* what, const std::vector<double>& kinks) {
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

void check_elementwise(const char* what, const ActivationSpec& spec) {
  if (spec.kind == Activation::kSoftmax) {
    throw contract_error(std::string(what) +
                         ": softmax couples a layer's units, so the mean-field maps (which "
                         "need an elementwise phi) do not apply; use it only as the output");
  }
  if (static_cast<int>(spec.kind) < 0 || static_cast<int>(spec.kind) >= kActivationCount) {
    throw contract_error(std::string(what) + ": unknown activation kind");
  }
}

void check_mean_field(const char* what, const MeanField& mf) {
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

bool has_kink_at_zero(const std::vector<double>& kinks) {
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

std::string activation_label(const ActivationSpec& spec) {
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

}  // namespace

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

// ---- Length and gradient maps -----------------------------------------------------------------

double length_map(const MeanField& mf, double q) {
  check_mean_field("length_map", mf);
  check_q("length_map", q);
  const ActivationSpec& a = mf.activation;
  const double m2 = expect_phi(a, q, [&](double x) {
    const double y = activation_value(a, x);
    return y * y;
  });
  return mf.sw2 * m2 + mf.sb2;
}

double chi(const MeanField& mf, double q) {
  check_mean_field("chi", mf);
  check_q("chi", q);
  const ActivationSpec& a = mf.activation;
  return mf.sw2 * expect_phi(a, q, [&](double x) {
           const double d = activation_derivative(a, x);
           return d * d;
         });
}

double length_map_slope(const MeanField& mf, double q) {
  check_mean_field("length_map_slope", mf);
  check_q("length_map_slope", q);
  const ActivationSpec& a = mf.activation;
  const double regular = expect_phi(a, q, [&](double x) {
    const double d = activation_derivative(a, x);
    return d * d + activation_value(a, x) * activation_second_derivative(a, x);
  });
  // Delta terms of phi'' at the kinks: a jump J in phi' at k puts J delta(x - k) into phi''.
  double deltas = 0.0;
  for (double k : kinks(a)) {
    const double jump = activation_derivative(a, std::nextafter(k, kInf)) -
                        activation_derivative(a, std::nextafter(k, -kInf));
    const double weight = activation_value(a, k) * jump;
    if (weight == 0.0) continue;
    if (q == 0.0) {
      if (k == 0.0) deltas += std::copysign(kInf, weight);  // the density at 0 is infinite
      continue;
    }
    deltas += weight * kInvSqrt2Pi * std::exp(-0.5 * k * k / q) / std::sqrt(q);
  }
  return mf.sw2 * (regular + deltas);
}

// ---- Fixed point of the length map ------------------------------------------------------------

FixedPoint fixed_point_q(const MeanField& mf, double q0) {
  check_mean_field("fixed_point_q", mf);
  check_q("fixed_point_q", q0);
  constexpr int kPlainIterations = 60;
  constexpr double kRelChange = 1e-14;
  constexpr double kHuge = 1e100;  // beyond this, q is taken to grow without bound
  constexpr double kTiny = 1e-250;
  constexpr double kScanFactor = 1e4;
  constexpr double kFlat = 1e-12;  // |L(q) - q| / q below this is rounding, not a direction

  FixedPoint out;
  auto L = [&](double q) {
    ++out.iterations;
    return length_map(mf, q);
  };
  // Called on a found q*: checks whether the map is the identity around it.
  auto finish = [&](double q_star, std::string how) {
    out.exists = true;
    out.q = q_star;
    const double ref = q_star > 0.0 ? q_star : 1.0;
    bool identity = true;
    for (double p : {0.5 * ref, 2.0 * ref}) {
      if (!(std::abs(L(p) - p) <= 1e-12 * p)) identity = false;
    }
    if (identity) {
      // Every q is fixed, q0 among them: report it rather than q0 moved by an ulp of rounding.
      if (std::abs(q_star - q0) <= 1e-12 * q0) {
        q_star = q0;
        out.q = q0;
      }
      out.unique = false;
      out.reason = "q* is not unique: the length map is the identity around q = " + num(ref) +
                   " (every q is a fixed point, as for ReLU with sw2 = 2, sb2 = 0); returned q = " +
                   num(q_star) + " reached from q0 = " + num(q0);
    } else {
      out.reason = std::move(how);
      // Iterating from q0 = q* itself (or from the other side of a basin boundary) can land on a
      // repelling fixed point; say so, since any perturbation leaves it.
      const double slope = length_map_slope(mf, q_star);
      if (std::abs(slope) > 1.0 + 1e-9) {
        out.reason += "; it is unstable: the length map's slope there is " + num(slope) +
                      ", so a perturbation of q grows from layer to layer";
      }
    }
    return out;
  };
  auto diverged = [&](std::string why) {
    out.exists = false;
    out.q = kInf;
    out.reason = std::move(why);
    return out;
  };

  double q = q0;
  double at = q0;     // the last argument of L
  double next = 0.0;  // L(at)
  double prev_step = kNaN;
  for (int i = 0; i < kPlainIterations; ++i) {
    at = q;
    next = L(q);
    if (std::isnan(next)) {
      out.q = kNaN;
      out.reason = "the length map returned NaN at q = " + num(q);
      return out;
    }
    if (std::isinf(next)) {
      return diverged("q overflowed to infinity after " + std::to_string(i + 1) +
                      " layers: it grows without bound");
    }
    // A small step is not enough near slope 1 (the edge of chaos, or a bottleneck where two fixed
    // points are about to appear): the iterates then creep on for many more steps. With the
    // contraction rate r = step / previous step, the distance left is about |step| / (1 - r).
    const double step = next - q;
    const double rate = step / prev_step;
    double left = std::abs(step);
    if (rate >= 1.0) left = kInf;
    if (rate > 0.0 && rate < 1.0) left = std::abs(step) / (1.0 - rate);
    if (step == 0.0 || (i > 0 && left <= kRelChange * next)) {
      return finish(next, "the length map converged to q* = " + num(next) + " in " +
                              std::to_string(i + 1) + (i == 0 ? " iteration" : " iterations") +
                              " from q0 = " + num(q0));
    }
    prev_step = step;
    q = next;
    if (q > kHuge) break;
  }

  // Slow or no convergence: bracket a root of g(q) = L(q) - q in the direction q moves. L is
  // accurate to ~1e-15 relative, so g counts as having changed sign only once |g| > 1e-12 q:
  // otherwise q + sb2 at q = 1e17 (ReLU at sw2 = 2: arithmetic growth) would pass for a root.
  auto g = [&](double p) { return L(p) - p; };
  auto flat = [](double gp, double p) { return std::abs(gp) <= kFlat * p; };
  q = at;
  const double gq = next - at;
  const double slow = next;
  if (flat(gq, q)) {
    return finish(next, "the length map is the identity to rounding at q = " + num(next) +
                            ", reached after " + std::to_string(kPlainIterations) +
                            " slow iterations from q0 = " + num(q0));
  }
  double lo = q;
  double hi = q;
  double glo = gq;
  double ghi = gq;
  if (gq > 0.0) {
    // q grows: look above for L(q) < q.
    for (;;) {
      lo = hi;
      glo = ghi;
      hi = std::max(hi * kScanFactor, kTiny);
      ghi = g(hi);
      if (std::isnan(ghi)) return diverged("the length map returned NaN at q = " + num(hi));
      if (ghi < 0.0 && !flat(ghi, hi)) break;
      if (hi > kHuge || std::isinf(ghi)) {
        // A factor of 1 to six digits is growth slower than geometric (ReLU at sw2 = 2 with
        // sb2 > 0 adds sb2 a layer); what L(q) - q adds there is rounding, not worth printing.
        const double factor = (ghi + hi) / hi;
        const std::string far = std::abs(factor - 1.0) < 1e-5
                                    ? "multiplies q by 1 to six digits: it grows more slowly "
                                      "than geometrically"
                                    : "multiplies q by " + num(factor);
        return diverged("q grows without bound: the length map stays above the identity from q = " +
                        num(q) + " (where a layer adds " + num(gq) + " to q) up to q = " + num(hi) +
                        " (where a layer " + far + ")");
      }
    }
  } else {
    // q shrinks: look below for L(q) > q, down to 0.
    for (;;) {
      hi = lo;
      ghi = glo;
      lo = lo < kTiny ? 0.0 : lo / kScanFactor;
      glo = g(lo);
      if (std::isnan(glo)) {
        out.q = kNaN;
        out.reason = "the length map returned NaN at q = " + num(lo);
        return out;
      }
      if (lo == 0.0 || (glo > 0.0 && !flat(glo, lo))) break;
    }
    if (lo == 0.0 && glo == 0.0) {
      const double slope = length_map_slope(mf, 0.0);
      return finish(0.0, "q -> 0: the length map stays below the identity down to q = " + num(hi) +
                             " and maps 0 to 0 (sb2 = 0 and phi(0) = 0), so q* = 0: "
                             "signals shrink to zero with depth, q by a factor " +
                             num(slope) + " per layer near 0");
    }
  }
  int brent_evals = 0;  // already counted by L
  const double root = brent_root(g, lo, hi, glo, ghi, 1e-15, brent_evals);
  return finish(root, "q* = " + num(root) + " by a bracketed root search (Brent), after " +
                          std::to_string(kPlainIterations) +
                          " iterations of the length map from q0 = " + num(q0) +
                          " ended at q = " + num(slow) + " (slope of the length map at q*: " +
                          num(length_map_slope(mf, root)) + ")");
}

// ---- Correlation map --------------------------------------------------------------------------

namespace {

void check_q_star(const char* what, double q_star) {
  if (!(q_star > 0.0) || !std::isfinite(q_star)) {
    throw contract_error(std::string(what) + ": q* = " + num(q_star) +
                         " must be finite and > 0 (q* = 0: two vanishing signals have "
                         "no correlation; q* = inf: there is no fixed point)");
  }
}

double correlation_map_unchecked(const MeanField& mf, double q_star, double c) {
  const ActivationSpec& a = mf.activation;
  auto phi1 = [&](double u) { return activation_value(a, u); };
  auto phi2 = [&](double, double u) { return activation_value(a, u); };
  const double cross = expect_2d(phi1, phi2, q_star, c, kinks(a));
  return (mf.sw2 * cross + mf.sb2) / q_star;
}

}  // namespace

double correlation_map(const MeanField& mf, double q_star, double c) {
  check_mean_field("correlation_map", mf);
  check_q_star("correlation_map", q_star);
  if (!(c >= -1.0 && c <= 1.0)) {
    throw contract_error("correlation_map: c = " + num(c) + " must lie in [-1, 1]");
  }
  return correlation_map_unchecked(mf, q_star, c);
}

double correlation_fixed_point(const MeanField& mf, double q_star) {
  check_mean_field("correlation_fixed_point", mf);
  check_q_star("correlation_fixed_point", q_star);
  const double at_one = correlation_map_unchecked(mf, q_star, 1.0);
  if (!(std::abs(at_one - 1.0) <= 1e-6)) {
    throw contract_error("correlation_fixed_point: q* = " + num(q_star) +
                         " is not a fixed point of the length map (c = 1 maps to " + num(at_one) +
                         "); pass fixed_point_q(...).q");
  }
  const double chi1 = chi(mf, q_star);
  if (chi1 <= 1.0 || is_unit_rate(chi1)) return 1.0;
  auto g = [&](double c) { return correlation_map_unchecked(mf, q_star, c) - c; };
  // Just below 1, g ~ -(chi1 - 1)(1 - c) + O((1 - c)^2): find a c where it is already negative.
  double hi = 0.5;
  double ghi = g(hi);
  for (int i = 0; i < 30 && !(ghi < 0.0); ++i) {
    hi = 1.0 - 0.5 * (1.0 - hi);
    ghi = g(hi);
  }
  if (!(ghi < 0.0)) return 1.0;  // chi1 is 1 to within what the quadrature resolves
  // The map is accurate to ~1e-12 (the 2D quadrature's tolerance), so a map(0) within that of 0
  // is 0: odd phi with sb2 = 0, where rounding leaves ~1e-34 and Brent would return it as c*.
  constexpr double kMapAccuracy = 1e-12;
  const double g0 = g(0.0);
  if (g0 <= kMapAccuracy) return 0.0;
  int evals = 0;
  const double root = brent_root(g, 0.0, hi, g0, ghi, 0.0, evals);
  return root;
}

// ---- Criticality ------------------------------------------------------------------------------

bool is_unit_rate(double rate) { return std::abs(std::log(std::abs(rate))) <= kUnitRateTolerance; }

double depth_scale(double rate) {
  if (std::isnan(rate)) return kNaN;
  if (is_unit_rate(rate)) return kInf;
  return 1.0 / std::abs(std::log(std::abs(rate)));
}

// ---- Depth scales -----------------------------------------------------------------------------

DepthScales depth_scales(const MeanField& mf, double q_star) {
  check_mean_field("depth_scales", mf);
  check_q("depth_scales", q_star);
  DepthScales out{};
  out.chi1 = chi(mf, q_star);
  out.chi_q = length_map_slope(mf, q_star);
  out.xi_c = depth_scale(out.chi1);
  out.xi_q = depth_scale(out.chi_q);
  return out;
}

// ---- Edge of chaos ----------------------------------------------------------------------------

namespace {

struct Probe {
  double sw2 = kNaN;
  FixedPoint fp;
  double chi1 = kNaN;
  bool below() const { return fp.exists && chi1 < 1.0; }
};

Probe probe(const ActivationSpec& a, double sw2, double sb2) {
  Probe p;
  p.sw2 = sw2;
  p.fp = fixed_point_q({a, sw2, sb2}, 1.0);
  if (p.fp.exists) p.chi1 = chi({a, sw2, sb2}, p.fp.q);
  return p;
}

// True when L(q) = q for q over many decades: the map is the identity (homogeneous phi, sb2 = 0).
bool length_map_is_identity(const MeanField& mf) {
  for (double q : {1e-2, 1.0, 1e2}) {
    if (!(std::abs(length_map(mf, q) - q) <= 1e-10 * q)) return false;
  }
  return true;
}

}  // namespace

Critical critical_sw2(const ActivationSpec& activation, double sb2, double sw2_max) {
  check_elementwise("critical_sw2", activation);
  if (!(sb2 >= 0.0) || !std::isfinite(sb2)) {
    throw contract_error("critical_sw2: sb2 = " + num(sb2) + " must be finite and >= 0");
  }
  const double slope = max_slope(activation);
  // chi1 <= sw2 * max|phi'|^2, so below 1 / max_slope^2 there is nothing to find.
  const double sw2_min = 0.5 / (slope * slope);
  if (!(sw2_max > sw2_min) || !std::isfinite(sw2_max)) {
    throw contract_error("critical_sw2: sw2_max = " + num(sw2_max) + " must be finite and above " +
                         num(sw2_min) + ", where chi1 <= 0.5 already");
  }
  constexpr int kGrid = 32;
  constexpr double kRelWidth = 1e-13;
  const double ratio = std::pow(sw2_max / sw2_min, 1.0 / kGrid);

  // At sb2 = 0 with phi(0) = 0, q = 0 is a fixed point at every sw2, with chi1 = sw2 * chi0
  // (chi's q -> 0+ limit); that branch turns critical at exactly sw2_zero = 1 / chi0.
  const bool zero_branch = sb2 == 0.0 && activation_value(activation, 0.0) == 0.0;
  const double chi0 = zero_branch ? chi({activation, 1.0, 0.0}, 0.0) : kNaN;
  const double sw2_zero = 1.0 / chi0;

  Critical out;
  const std::string name = activation_label(activation);
  double largest_chi1 = -kInf;
  double largest_at = kNaN;
  double largest_q = kNaN;
  std::string edges;  // non-critical changes seen, for the reason
  Probe prev = probe(activation, sw2_min, sb2);
  for (int k = 1; k <= kGrid; ++k) {
    if (prev.fp.exists && prev.chi1 > largest_chi1) {
      largest_chi1 = prev.chi1;
      largest_at = prev.sw2;
      largest_q = prev.fp.q;
    }
    const double sw2 = k == kGrid ? sw2_max : sw2_min * std::pow(ratio, k);
    Probe next = probe(activation, sw2, sb2);
    if (prev.below() == next.below()) {
      prev = std::move(next);
      continue;
    }
    // Bisect "fixed point exists and chi1 < 1" down to a relative width of 1e-13.
    Probe b = prev.below() ? prev : next;  // the ordered side
    Probe o = prev.below() ? next : prev;  // the other side
    while (std::abs(o.sw2 - b.sw2) > kRelWidth * std::max(o.sw2, b.sw2)) {
      Probe m = probe(activation, 0.5 * (o.sw2 + b.sw2), sb2);
      if (m.below()) {
        b = std::move(m);
      } else {
        o = std::move(m);
      }
    }
    double edge = 0.5 * (o.sw2 + b.sw2);
    // The edge of q = 0: where chi1 - 1 is quadratic in sw2 - sw2_zero (tanh), bisection on
    // rounding-level chi1 locates it only to ~1e-7, hence 1e-5; q* = 0 just below confirms that
    // the fixed point reached from q0 = 1 there is q = 0.
    bool zero_edge = false;
    if (zero_branch && std::abs(edge - sw2_zero) <= 1e-5 * sw2_zero) {
      const Probe below = probe(activation, sw2_zero * (1.0 - 1e-3), sb2);
      zero_edge = below.fp.exists && below.fp.q == 0.0;
      if (zero_edge) edge = sw2_zero;
    }
    const std::string side = b.sw2 < o.sw2 ? "below" : "above";
    const std::string other = b.sw2 < o.sw2 ? "above" : "below";
    // What happens on each side is judged 1e-6 and 1e-3 (relative) away from the edge, where
    // rounding cannot blur "slowly converging" into "slowly diverging" as it can within 1e-13
    // of it, nor land on an unstable fixed point exactly at q0.
    const double dir = b.sw2 < o.sw2 ? -1.0 : 1.0;
    const Probe near = probe(activation, edge * (1.0 + dir * 1e-6), sb2);
    const Probe beyond = probe(activation, edge * (1.0 - dir * 1e-6), sb2);
    const MeanField at_edge{activation, edge, sb2};
    if (length_map_is_identity(at_edge)) {
      // Homogeneous phi without bias (ReLU at 2, linear at 1): every q is a fixed point here.
      out.exists = true;
      out.sw2 = edge;
      out.q_star = fixed_point_q(at_edge, 1.0).q;  // 1: q0 = 1 is as fixed as any other q
      out.chi1 = chi(at_edge, 1.0);
      out.q_star_unique = false;
      out.reason = "at sw2 = " + num(edge) +
                   " the length map is the identity (every q is a fixed point) and chi1 = 1; " +
                   side + " it q* = " + num(near.fp.q) + " with chi1 < 1 (ordered), " + other +
                   (beyond.fp.exists ? " it is chaotic" : " it q grows without bound");
      return out;
    }
    if (zero_edge) {
      out.exists = true;
      out.sw2 = edge;
      out.q_star = 0.0;
      out.chi1 = chi(at_edge, 0.0);
      out.reason =
          "with sb2 = 0 and phi(0) = 0, q = 0 is a fixed point at every sw2, with chi1 = "
          "sw2 E[phi'^2] (q -> 0+) = sw2 * " +
          num(chi0) + ", which is 1 at sw2 = " + num(edge) + ": " + side +
          " it q* = 0 (ordered), " + other + " it " +
          (!beyond.fp.exists   ? std::string("q grows without bound")
           : beyond.chi1 > 1.0 ? "q* > 0 with chi1 > 1 (chaotic)"
                               : "q* = " + num(beyond.fp.q) + " with chi1 = " + num(beyond.chi1));
      return out;
    }
    if (o.fp.exists && std::abs(o.chi1 - b.chi1) <= 1e-6) {
      out.exists = true;
      out.sw2 = edge;
      out.q_star = b.fp.q;
      out.chi1 = chi(at_edge, b.fp.q);
      out.reason = "chi1 = sw2 E[phi'^2] at q* crosses 1 at sw2 = " + num(edge) +
                   " (q* = " + num(b.fp.q) + "): ordered " + side + ", chaotic " + other;
      return out;
    }
    // Not a continuous crossing.
    const Probe far = probe(activation, edge * (1.0 + dir * 1e-3), sb2);
    if (beyond.fp.exists) {
      edges += "; at sw2 = " + num(edge) +
               " the fixed point reached from q0 = 1 jumps from q* = " + num(near.fp.q) + " to " +
               num(beyond.fp.q) + " and chi1 from " + num(near.chi1) + " to " + num(beyond.chi1) +
               " (a second fixed point takes over), so chi1 never " + "equals 1 there";
    } else {
      // The fixed point disappears: the edge only if q* stays bounded on the way and chi1 -> 1.
      const bool bounded = near.fp.exists && far.fp.exists && near.fp.q <= 2.0 * far.fp.q;
      if (bounded && std::abs(1.0 - near.chi1) <= 1e-4) {
        out.exists = true;
        out.sw2 = edge;
        out.q_star = near.fp.q;
        out.chi1 = chi(at_edge, near.fp.q);
        out.reason = "chi1 -> 1 as sw2 -> " + num(edge) + " from " + side + ", where q* -> " +
                     num(near.fp.q) + "; " + other + " it q grows without bound";
        return out;
      }
      if (!bounded) {
        edges += "; chi1 < 1 wherever the fixed point exists " + side + " sw2 = " + num(edge) +
                 ", but q* runs off to infinity as sw2 approaches it (q* = " + num(far.fp.q) +
                 " and " + num(near.fp.q) + " at 1e-3 and 1e-6 from it) and " + other +
                 " it q grows without bound, so chi1 (" + num(near.chi1) +
                 " at 1e-6) would reach 1 only where no fixed point is left";
      } else {
        edges += "; " + side + " sw2 = " + num(edge) + " the length map iterated from q0 = 1 " +
                 "settles at q* = " + num(near.fp.q) + " with chi1 = " + num(near.chi1) +
                 " (not 1), " + other + " it grows without bound (q0 = 1 leaves the basin of " +
                 "that fixed point)";
      }
    }
    prev = std::move(next);
  }
  if (prev.fp.exists && prev.chi1 > largest_chi1) {
    largest_chi1 = prev.chi1;
    largest_at = prev.sw2;
    largest_q = prev.fp.q;
  }
  out.reason = "no sw2 in (0, " + num(sw2_max) + "] puts " + name +
               " on the edge of chaos at sb2 = " + num(sb2);
  if (edges.empty() && largest_chi1 > -kInf) {
    out.reason += ": chi1 = sw2 E[phi'^2] at q* stays below 1 at every sw2 scanned (largest " +
                  num(largest_chi1) + " at sw2 = " + num(largest_at) + ", q* = " + num(largest_q) +
                  "). The slope bound chi1 <= sw2 max|phi'|^2 = sw2 * " + num(slope * slope) +
                  " rules out sw2 < " + num(1.0 / (slope * slope));
    const Probe at_bound = probe(activation, 1.0 / (slope * slope), sb2);
    if (at_bound.fp.exists && largest_q > at_bound.fp.q) {
      out.reason += ", and above it q* grows with sw2 (from " + num(at_bound.fp.q) + " to " +
                    num(largest_q) +
                    "), pushing pre-activations out to where phi' is small, so chi1 grows "
                    "more slowly than sw2";
    }
    if (largest_at == sw2_max) {
      out.reason += "; chi1 is still rising at sw2 = " + num(sw2_max) +
                    ", so the edge may lie beyond the range searched";
    }
  } else {
    out.reason += edges;
  }
  return out;
}

// ---- Choosing sw2 -----------------------------------------------------------------------------

Sw2Choice sw2_preserving_second_moment(const ActivationSpec& activation, double q0, double sb2) {
  check_elementwise("sw2_preserving_second_moment", activation);
  if (!(q0 > 0.0) || !std::isfinite(q0)) {
    throw contract_error("sw2_preserving_second_moment: q0 = " + num(q0) +
                         " must be finite and > 0");
  }
  if (!(sb2 >= 0.0) || !std::isfinite(sb2)) {
    throw contract_error("sw2_preserving_second_moment: sb2 = " + num(sb2) +
                         " must be finite and >= 0");
  }
  Sw2Choice out;
  if (sb2 > q0) {
    out.reason = "the biases alone give each pre-activation a second moment sb2 = " + num(sb2) +
                 " > q0 = " + num(q0) + ": no sw2 >= 0 brings it down to q0";
    return out;
  }
  const double m2 = length_map({activation, 1.0, 0.0}, q0);  // E_{q0}[phi^2]
  if (!(m2 > 0.0) || !std::isfinite(m2)) {
    out.reason = "E[phi^2] = " + num(m2) + " at q0 = " + num(q0) + ": no finite sw2 rescales it";
    return out;
  }
  out.exists = true;
  out.sw2 = (q0 - sb2) / m2;
  return out;
}

// ---- Phase diagram ----------------------------------------------------------------------------

std::string_view phase_name(Phase phase) {
  switch (phase) {
    case Phase::kOrdered:
      return "ordered";
    case Phase::kCritical:
      return "critical";
    case Phase::kChaotic:
      return "chaotic";
    case Phase::kUnbounded:
      return "unbounded";
  }
  return "unknown";
}

Phase phase_of(const FixedPoint& fp, double chi1) {
  if (!fp.exists) return Phase::kUnbounded;
  if (is_unit_rate(chi1)) return Phase::kCritical;
  return chi1 < 1.0 ? Phase::kOrdered : Phase::kChaotic;
}

PhaseSample classify_phase(const MeanField& mf, double q0) {
  check_mean_field("classify_phase", mf);
  const FixedPoint fp = fixed_point_q(mf, q0);
  if (!fp.exists) return {mf.sw2, Phase::kUnbounded, kNaN, kNaN};
  const double chi1 = chi(mf, fp.q);
  return {mf.sw2, phase_of(fp, chi1), fp.q, chi1};
}

std::vector<double> default_phase_sw2() { return {0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0}; }

std::vector<PhasePoint> phase_grid(const ActivationSpec& activation, double sb2_min, double sb2_max,
                                   int n, const std::vector<double>& sw2_samples) {
  check_elementwise("phase_grid", activation);
  if (!(sb2_min >= 0.0) || !(sb2_max >= sb2_min) || !std::isfinite(sb2_max)) {
    throw contract_error("phase_grid: need 0 <= sb2_min <= sb2_max, finite; got " + num(sb2_min) +
                         " and " + num(sb2_max));
  }
  if (n < 1) throw contract_error("phase_grid: n = " + std::to_string(n) + " must be >= 1");
  std::vector<PhasePoint> rows;
  rows.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const double sb2 = n == 1 ? sb2_min : sb2_min + (sb2_max - sb2_min) * i / (n - 1);
    PhasePoint row{sb2, critical_sw2(activation, sb2), {}};
    for (double sw2 : sw2_samples) row.samples.push_back(classify_phase({activation, sw2, sb2}));
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace gradscope
