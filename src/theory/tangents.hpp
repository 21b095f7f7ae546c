// Forward-mode propagation of tangents through a network's ops (apjn.cpp), shared by the
// partial Jacobian norm and the Jacobian spectrum (jacobian.cpp): one tangent rule per op kind.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "gradscope/core/network.hpp"

namespace gradscope::tangents {

// Tangents and their scale: the true J u is m * 2^exp2.
template <class Scalar>
struct Scaled {
  Mat<Scalar> m;
  std::int64_t exp2 = 0;
};

// Keeps m's norm within 2^+-16 by moving exact powers of two into exp2.
template <class Scalar>
void renormalise(Scaled<Scalar>& s) {
  const double norm = static_cast<double>(s.m.norm());
  if (!(norm > 0.0) || !std::isfinite(norm)) return;
  const int e = std::ilogb(norm);
  if (e > 16 || e < -16) {
    s.m *= std::ldexp(Scalar(1), -e);
    s.exp2 += e;
  }
}

// Runs the inputs `x` (n_0, E T: example e's tokens at columns e T .. e T + T - 1) and their
// tangents (n_0, E T K: tangent k of column j at column j K + k) through every op, calling
// visit(l, x_l, t_l) after op l (residual begins included). x's column j is the batch's column
// first_column + j (its dropout mask). Batch norm is not propagated (apjn_refusal).
template <class Scalar>
void propagate(
    const RunSpec& spec, const Network<Scalar>& net, Mat<Scalar> x, Scaled<Scalar> t,
    ThreadPool& pool,
    const std::function<void(std::size_t, const Mat<Scalar>&, const Scaled<Scalar>&)>& visit,
    Eigen::Index first_column = 0);

}  // namespace gradscope::tangents
