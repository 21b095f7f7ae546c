// The mean-field maps of a deep network at initialisation: the length map q -> q', the gradient
// rate chi, their fixed point q*, the correlation map and its fixed point, and the depth scales.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gradscope/theory/theory.hpp"
#include "theory/quadrature.hpp"

namespace gradscope {

using namespace quadrature;  // the helpers the theory files share

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

// Why this is long: one fixed-point search with its cases in the order they are tried (plain
// iteration, a bracket and Brent's method, growth without bound, collapse to zero), sharing the
// counted map L and the result being filled; split, each step would need all of that passed in.
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

}  // namespace gradscope
