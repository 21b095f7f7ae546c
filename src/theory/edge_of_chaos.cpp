// The edge of chaos (the weight variance sw2 at which chi = 1 for a bias variance sb2), the sw2
// that preserves the second moment, and the phase diagram over (sw2, sb2).
#include <cmath>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/theory/theory.hpp"
#include "theory/quadrature.hpp"

namespace gradscope {

using namespace quadrature;  // the helpers the theory files share

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

// Why this is long: a scan of chi1 over a grid of sw2, then a bracketed root for chi1 = 1, then the
// cases where there is none (chi1 below 1 everywhere, a length map that is the identity), each
// reading the same probes; one procedure top to bottom reads better than five fragments.
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
