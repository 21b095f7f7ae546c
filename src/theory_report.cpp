// compute_theory: the numbers behind `gradscope theory`, from the mean-field core.
#include "gradscope/theory_report.hpp"

#include <cmath>

#include "gradscope/error.hpp"

namespace gradscope {

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
  // The phase of the fixed point reached from q0 (bistable activations have more than one).
  r.phase = Phase::kUnbounded;
  if (r.fixed_point.exists && r.fixed_point.q > 0.0) {
    r.has_scales = true;
    r.scales = depth_scales(mf, r.fixed_point.q);
    r.c_star = correlation_fixed_point(mf, r.fixed_point.q);
    const double chi1 = r.scales.chi1;
    r.phase = std::abs(chi1 - 1.0) <= 1e-9 ? Phase::kCritical
              : chi1 < 1.0                 ? Phase::kOrdered
                                           : Phase::kChaotic;
  } else if (r.fixed_point.exists) {
    r.phase = Phase::kOrdered;  // q* = 0: the signal collapses
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
