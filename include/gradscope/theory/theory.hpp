// Mean-field theory of deep dense stacks (docs/theory.md): Gaussian expectations, the length and
// correlation maps, their fixed points, depth scales, and the order-to-chaos phase diagram.
#pragma once

#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/activation.hpp"

namespace gradscope {

// Notation: Dz is the standard Gaussian measure, E_q[f] = integral Dz f(sqrt(q) z), i.e. the mean
// of f(x) for x ~ N(0, q). Every function here takes an elementwise activation; softmax couples a
// layer's units, so they throw gradscope::Error, exit code 1 for it.

// ---- Gaussian expectations --------------------------------------------------------------------

// E_q[f] = integral Dz f(sqrt(q) z), to about 1e-14 of E_q[|f|] for smooth and piecewise-smooth f.
// The z-line is cut at 0, at kink / sqrt(q) for each kink (points where f or f' is not smooth),
// and where |sqrt(q) z| = 1, 4, 16 (so features of f at the activation scale stay resolved when q
// is huge); each piece of |z| <= 38 (the Gaussian mass beyond is below 1e-300) is integrated with
// the density exp(-z^2/2) / sqrt(2 pi) inside by globally adaptive Gauss-Kronrod (G10-K21).
// q = 0 returns f(0) (the point mass; the MeanField functions below take the limit q -> 0+
// instead). q must be finite and >= 0; the result is inf when f overflows at |x| <= 38 sqrt(q).
double gaussian_expectation(const std::function<double(double)>& f, double q,
                            const std::vector<double>& kinks = {});

// integral Dz1 Dz2 f(u1, u2) with u1 = sqrt(q) z1, u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2): the
// mean of f over a centred Gaussian pair with variances q and correlation c, c in [-1, 1]
// (c = +-1: u2 = +-u1, a 1D expectation). Nested adaptive quadrature; the inner z2-line is cut
// where u2 crosses 0, a kink or +-1, +-4, +-16 (positions that move with z1), the outer z1-line
// where u1 does and where u2 would at z2 = 0, with graded cuts 1, 4, 16 blur widths
// sqrt(1 - c^2) / |c| around each kink there (as |c| -> 1 the inner integral is nearly kinked).
// About 1e-12 of E[|f|] (1e-15 observed on closed forms). q = 0 returns f(0, 0).
double gaussian_expectation_2d(const std::function<double(double, double)>& f, double q, double c,
                               const std::vector<double>& kinks = {});

// ---- Length and gradient maps -----------------------------------------------------------------

// One layer's statistics: phi, Var(W_ij) = sw2 / fan_in, Var(b_i) = sb2.
struct MeanField {
  ActivationSpec activation;
  double sw2 = 1.0;
  double sb2 = 0.0;
};

// At q = 0 the three maps below take the limit q -> 0+, not f(0): pre-activations shrinking to
// zero still fall on both sides of a kink at 0, so for ReLU chi(0) = sw2 / 2, as at every q > 0.
// q must be finite and >= 0.

// q^{l+1} = sw2 * E_q[phi^2] + sb2: the second moment of the next layer's pre-activations.
double length_map(const MeanField& mf, double q);

// chi(q) = sw2 * E_q[phi'^2]: the factor by which E[delta^2] grows per layer going backward.
double chi(const MeanField& mf, double q);

// dL/dq = sw2 * (E_q[phi'^2] + E_q[phi phi'']) = chi(q) + sw2 * E_q[phi phi''], the slope of the
// length map (THEORY.md's xi_q formula). phi'' is activation_second_derivative away from kinks; a
// jump J = phi'(k+) - phi'(k-) at a kink k adds the delta term phi(k) J exp(-k^2/2q)/sqrt(2 pi q).
// It vanishes where phi(k) = 0 (ReLU, leaky ReLU, ELU, SELU: their kinks are at 0), so there the
// integral without the delta is exact; hard_tanh's kinks at +-1 (phi = +-1, J = -+1) contribute.
// With it the value is exactly the derivative of length_map, kinks or not.
double length_map_slope(const MeanField& mf, double q);

// ---- Fixed point of the length map ------------------------------------------------------------

struct FixedPoint {
  bool exists = false;  // false: q grows without bound (or the map returned NaN)
  double q = std::numeric_limits<double>::quiet_NaN();  // q*; 0 when signals collapse to zero
  bool unique = true;  // false: the map is the identity around q* (ReLU, sw2 = 2, sb2 = 0)
  int iterations = 0;  // length-map evaluations spent
  std::string reason;  // plain-language account of what happened
};

// Iterates q <- length_map(q) from q0 until the relative change is below 1e-14, counting near
// slope 1 the creep still to come: with r = step / previous step, it stops once
// |step| / (1 - r) < 1e-14 q. If that has not happened within 60 steps (slow convergence near the
// edge of chaos, collapse, divergence), it brackets a root of L(q) - q in the direction the
// iteration moves (q scaled by 1e4 per probe) and solves it with Brent's method to 1e-15 relative;
// the root found is the fixed point the iteration was heading for. A bracket end must be clearly
// across, |L(q) - q| > 1e-12 q: L is accurate to ~1e-15, and arithmetic growth (ReLU at sw2 = 2
// with sb2 > 0: q + sb2) drops below rounding at q ~ 1e17 without any fixed point. Outcomes:
// q* > 0; q* = 0 when L stays below the identity down to q = 1e-250 and L(0) = 0 (sb2 = 0,
// phi(0) = 0: the ordered phase of tanh or ReLU); no fixed point when L stays above the identity up
// to q = 1e100 (ReLU sw2 > 2, linear sw2 > 1), the reason giving the growth there. When L(q) = q
// also at q*/2 and 2 q* (to 1e-12), every q is a fixed point: unique = false and q = q0 itself
// when the iterate is within 1e-12 of it (rather than q0 moved by the map's rounding), else the
// iterate. A repelling q* (|dL/dq| > 1, e.g. q0 = 0 for ReLU at sw2 = 3) is returned as
// found, and the reason says it is unstable.
FixedPoint fixed_point_q(const MeanField& mf, double q0 = 1.0);

// ---- Correlation map --------------------------------------------------------------------------

// c^{l+1} = ( sw2 * integral Dz1 Dz2 phi(u1) phi(u2) + sb2 ) / q*, u as in gaussian_expectation_2d
// with q = q*: the correlation of two inputs' pre-activations one layer on. q_star must be > 0
// (throws otherwise: two vanishing signals have no correlation); c in [-1, 1].
double correlation_map(const MeanField& mf, double q_star, double c);

// The stable fixed point c* in [0, 1] of the correlation map at q* (q_star must be a fixed point
// of the length map, > 0; throws otherwise). The map is a power series in c with non-negative
// coefficients (the squared Hermite coefficients of phi), hence convex on [0, 1], with map(1) = 1
// and map'(1) = chi1. So if chi1 <= 1 (ordered or critical, is_unit_rate(chi1) included), c* = 1:
// every pair of inputs becomes aligned (for linear phi at sw2 = 1, sb2 = 0 the map is the
// identity and 1 is one fixed point of many). If chi1 > 1 (chaotic), c = 1 is unstable and
// map(c) - c, >= 0 at c = 0 and < 0 just below 1, has exactly one root in [0, 1): c*, the limit
// of iterating the map from any c in [0, 1). It is found by Brent's method to the map's accuracy,
// ~1e-12; a map(0) within that accuracy of 0 gives c* = 0 exactly (odd phi with sb2 = 0, SELU at
// its fixed point), not a rounding-level root such as 1e-34. "A fixed point" is checked as
// |map(1) - 1| <= 1e-6.
double correlation_fixed_point(const MeanField& mf, double q_star);

// ---- Criticality ------------------------------------------------------------------------------

// A per-layer rate r (chi1, or the length map's slope chi_q) counts as exactly 1 - the critical
// line, where the depth scale 1/|ln r| is infinite - when |ln |r|| <= kUnitRateTolerance.
// Why 1e-12: chi1 is a quadrature accurate to ~1e-14 relative, taken at a q* located to ~1e-14
// relative (fixed_point_q) on which it depends at O(1), so it is known to a few 1e-14. ReLU at
// sw2 = 2 computes chi1 = 1 + 2.2e-16, and a test for exactly 1 would call that chaotic and print
// xi_c = 4.5e15 layers. 1e-12 is ~30 times the error; a rate inside it means a depth scale beyond
// 1e12 layers, which these numbers cannot tell from infinite. This is the one tolerance behind
// the phase (phase_of) and the infinite depth scales (depth_scale).
inline constexpr double kUnitRateTolerance = 1e-12;
bool is_unit_rate(double rate);

// 1 / |ln |rate||: the depth over which a factor `rate` per layer changes a quantity by e. +inf
// when is_unit_rate(rate), 0 at rate 0, NaN for NaN.
double depth_scale(double rate);

// ---- Depth scales -----------------------------------------------------------------------------

// At q* = 0 both rates are their q -> 0+ limits (see chi): chi1 then governs how gradients shrink
// or grow in deep layers, and chi_q how fast q goes to 0.
struct DepthScales {
  double chi1;   // chi(q*): per-layer factor of E[delta^2]; < 1 vanishing, > 1 exploding
  double chi_q;  // length_map_slope(q*): per-layer factor by which q - q* shrinks
  // depth_scale(chi1): for chi1 < 1 the depth over which correlations and gradients decay by e,
  // the -1/ln(chi1) of Schoenholz et al. 2017; for chi1 > 1 the depth over which gradients grow
  // by e; +inf on the critical line (is_unit_rate(chi1): ReLU at sw2 = 2, tanh at (1, 0)).
  double xi_c;
  double xi_q;  // depth_scale(chi_q): the depth over which q approaches q*; +inf where chi_q is 1
};
DepthScales depth_scales(const MeanField& mf, double q_star);

// ---- Edge of chaos ----------------------------------------------------------------------------

// The critical point (sw2, sb2) has a fixed point q* of its own, not that of the sw2 asked about.
struct Critical {
  bool exists = false;
  double sw2 = std::numeric_limits<double>::quiet_NaN();  // where chi1(q*(sw2, sb2)) = 1
  // q* at the critical point: 0 where the edge is that of q = 0 (below); where the length map is
  // the identity (q_star_unique false) every q is fixed there and this is the one reached from
  // q0 = 1, i.e. 1.
  double q_star = std::numeric_limits<double>::quiet_NaN();
  double chi1 = std::numeric_limits<double>::quiet_NaN();  // chi1 there (1 to rounding)
  bool q_star_unique = true;  // false: the length map is the identity there (ReLU at (2, 0))
  std::string reason;         // how it was found, or why there is none
};

// The sw2 on the edge of chaos at this sb2, i.e. where chi1 = chi(q*) = 1, q* being the fixed
// point fixed_point_q reaches from q0 = 1 (unit-second-moment inputs). Scans a geometric grid of
// 33 sw2 values from 0.5 / max_slope^2 (where chi1 <= 0.5 is guaranteed) to sw2_max, and bisects
// each change of "a fixed point exists and chi1 < 1" to 1e-13 relative, the first edge found
// winning. A change to chi1 >= 1 is the edge if chi1 is continuous there (not where the iteration
// jumps to another fixed point, as for silu at sb2 = 0.5 near sw2 = 2); a change to "no fixed
// point" is the edge only if q* stays bounded as it is approached and chi1 -> 1 (ReLU at sb2 = 0:
// q* = 0 below sw2 = 2, and at 2 the length map is the identity) - not where q* runs off to
// infinity (ReLU at sb2 > 0). Otherwise exists = false, with a reason drawn from what the scan saw
// (sigmoid at sb2 = 0: chi1 is still below 1 at sw2 = 100; its edge lies at sw2 ~ 103).
// At sb2 = 0 with phi(0) = 0, q = 0 is a fixed point at every sw2, with chi1 = sw2 E_{0+}[phi'^2];
// it turns critical at sw2_0 = 1 / E_{0+}[phi'^2] (tanh, elu, hard_tanh, linear 1; ReLU 2; SELU
// 0.476771). An edge found within 1e-5 of sw2_0, with q* = 0 just below it, is that one: sw2 is
// then sw2_0 exactly and q_star 0 (the bisection alone blurs it where chi1 - 1 is quadratic in
// sw2 - sw2_0, tanh's ~1e-7, and leaves q* at rounding-level values such as 3e-9 or 1e-19).
Critical critical_sw2(const ActivationSpec& activation, double sb2, double sw2_max = 100.0);

// ---- Choosing sw2 -----------------------------------------------------------------------------

struct Sw2Choice {
  bool exists = false;
  double sw2 = std::numeric_limits<double>::quiet_NaN();
  std::string reason;  // empty when it exists
};

// The sw2 with sw2 * E_{q0}[phi^2] + sb2 = q0, i.e. (q0 - sb2) / E_{q0}[phi^2]: the weight scale
// that keeps a layer's input second moment q0. None when sb2 > q0 (the biases alone exceed q0).
// q0 must be finite and > 0.
Sw2Choice sw2_preserving_second_moment(const ActivationSpec& activation, double q0, double sb2);

// ---- Phase diagram ----------------------------------------------------------------------------

// chi1 = chi(q*) at the fixed point q* (q* = 0 included, with chi's q -> 0+ limit: tanh at
// (1, 0) has q* = 0 and chi1 = tanh'(0)^2 = 1, so it is critical).
enum class Phase : int {
  kOrdered,    // chi1 < 1: gradients vanish, inputs' correlations go to 1
  kCritical,   // is_unit_rate(chi1): |ln chi1| <= kUnitRateTolerance
  kChaotic,    // chi1 > 1: gradients explode, correlations go to c* < 1
  kUnbounded,  // no fixed point: q grows without bound with depth (ReLU at sw2 > 2, sb2 = 0)
};
std::string_view phase_name(Phase phase);  // "ordered", "critical", "chaotic", "unbounded"

// The one classification, used by classify_phase, the phase grid and `gradscope theory`:
// kUnbounded when fp does not exist, otherwise by chi1 = chi(mf, fp.q) as above.
Phase phase_of(const FixedPoint& fp, double chi1);

struct PhaseSample {
  double sw2;
  Phase phase;
  double q_star;  // NaN when unbounded
  double chi1;    // NaN when unbounded
};
// The phase of one (activation, sw2, sb2): phase_of the fixed point reached from q0 (bistable
// activations can reach different ones from different q0).
PhaseSample classify_phase(const MeanField& mf, double q0 = 1.0);

// One row of the phase diagram, at one sb2: the edge of chaos and the phase at fixed sw2 values.
struct PhasePoint {
  double sb2;
  Critical critical;
  std::vector<PhaseSample> samples;  // one per sw2 in the sample list, in its order
};

// The sw2 values phase_grid samples unless told otherwise: 0.25, 0.5, 1, 1.5, 2, 3, 4, 8.
std::vector<double> default_phase_sw2();

// n rows at sb2 = sb2_min + i (sb2_max - sb2_min) / (n - 1) (n = 1: sb2_min alone); for plotting
// the critical line (critical.sw2 against sb2) over the ordered/chaotic samples.
std::vector<PhasePoint> phase_grid(const ActivationSpec& activation, double sb2_min, double sb2_max,
                                   int n,
                                   const std::vector<double>& sw2_samples = default_phase_sw2());

}  // namespace gradscope
