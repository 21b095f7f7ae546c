// `gradscope theory`: the mean-field picture of one activation at one (sw2, sb2), with the edge
// of chaos and, on request, the phase diagram over a range of sb2.
#pragma once

#include <string>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/theory/theory.hpp"

namespace gradscope {

struct TheoryQuery {
  ActivationSpec activation{};
  double sw2 = 1.0;  // weight variance times fan-in
  double sb2 = 0.0;  // bias variance
  double q0 = 1.0;   // the input's second moment per unit (for the moment-preserving sw2)
  bool grid = false;
  double grid_sb2_min = 0.0;
  double grid_sb2_max = 0.5;
  int grid_points = 11;
};

struct TheoryReport {
  TheoryQuery query;
  FixedPoint fixed_point;
  // chi1 and the depth scales need a fixed point; at q* = 0 they are the q -> 0+ limits (how
  // gradients and q behave as the signal shrinks), and infinite ones are +inf (is_unit_rate).
  bool has_scales = false;
  DepthScales scales{};
  // c* needs q* > 0: two signals shrinking to zero have no correlation.
  bool has_c_star = false;
  double c_star = 0.0;
  bool c_star_unique = true;      // false: the correlation map is the identity (linear, sw2 = 1)
  Phase phase = Phase::kOrdered;  // phase_of(fixed_point, scales.chi1), as in the grid
  Critical critical;
  Sw2Choice preserving;
  std::vector<PhasePoint> grid;
};

// Throws gradscope::Error (exit code 2) for softmax or non-finite / negative variances.
TheoryReport compute_theory(const TheoryQuery& query);

}  // namespace gradscope
