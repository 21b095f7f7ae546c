// compute_theory: the numbers behind `gradscope theory`, from the mean-field core.
#include "gradscope/theory/theory_report.hpp"

#include <cmath>
#include <limits>

#include "gradscope/core/error.hpp"

namespace gradscope {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

TheoryReport compute_theory(const TheoryQuery& query) {
  if (activation_info(query.activation.kind).output_only) {
    throw Error(
        "theory: softmax couples the units of a layer; mean-field theory here is for "
        "elementwise activations",
        "choose a hidden-layer activation, e.g. --activation tanh");
  }
  auto check = [](double v, const char* flag) {
    if (!std::isfinite(v) || v < 0.0) {
      throw Error(std::string("theory: ") + flag + " must be a finite number >= 0, got " +
                      std::to_string(v),
                  std::string("for example ") + flag + " 1.0");
    }
  };
  check(query.sw2, "--weight-var");
  check(query.sb2, "--bias-var");
  if (!(query.q0 > 0.0) || !std::isfinite(query.q0)) {
    throw Error("theory: --input-second-moment must be a finite number > 0",
                "for example --input-second-moment 1");
  }
  TheoryReport r;
  r.query = query;
  const MeanField mf{query.activation, query.sw2, query.sb2};
  r.fixed_point = fixed_point_q(mf, query.q0);
  if (r.fixed_point.exists) {
    r.has_scales = true;
    r.scales = depth_scales(mf, r.fixed_point.q);
  }
  // The phase of the fixed point reached from q0 (bistable activations have more than one), by
  // the same phase_of as the grid's classify_phase.
  r.phase = phase_of(r.fixed_point, r.has_scales ? r.scales.chi1 : kNaN);
  if (r.fixed_point.exists && r.fixed_point.q > 0.0) {
    const double q_star = r.fixed_point.q;
    r.has_c_star = true;
    r.c_star = correlation_fixed_point(mf, q_star);
    // The correlation map is the identity only for linear phi with sb2 = 0, whose length map is
    // the identity too at chi1 = 1: every c is kept, not drawn to 1. Checked at c = 0 and 1/2,
    // well above the map's accuracy of ~1e-12. (Near tanh's (1, 0) the map is within ~q*^2 of
    // linear, yet not the identity: hence only where the length map is.)
    if (r.phase == Phase::kCritical && !r.fixed_point.unique) {
      r.c_star_unique = !(std::abs(correlation_map(mf, q_star, 0.0)) <= 1e-10 &&
                          std::abs(correlation_map(mf, q_star, 0.5) - 0.5) <= 1e-10);
    }
  }
  r.critical = critical_sw2(query.activation, query.sb2);
  r.preserving = sw2_preserving_second_moment(query.activation, query.q0, query.sb2);
  if (query.grid) {
    if (query.grid_points < 1 || query.grid_points > 1000 ||
        !(query.grid_sb2_max >= query.grid_sb2_min) || query.grid_sb2_min < 0.0) {
      throw Error("theory: --grid needs 0 <= --grid-min <= --grid-max and 1..1000 --grid-points",
                  "for example --grid --grid-min 0 --grid-max 0.5 --grid-points 11");
    }
    r.grid =
        phase_grid(query.activation, query.grid_sb2_min, query.grid_sb2_max, query.grid_points);
  }
  return r;
}

}  // namespace gradscope
