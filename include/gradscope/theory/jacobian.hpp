// The input-output Jacobian of the network at a few examples of the batch, and its singular
// values (dynamical isometry: Pennington, Schoenholz & Ganguli 2017). Costly: about
// 2 n_0 sum_l n_l n_{l-1} flops per example, plus an SVD of n_L x n_0.
#pragma once

#include <cstdint>
#include <vector>

#include "gradscope/core/network.hpp"
#include "gradscope/core/report.hpp"
#include "gradscope/core/spec.hpp"

namespace gradscope {

// Largest job --jacobian accepts: examples * 2 n_0 sum_l n_l n_{l-1} <= this many flops (about
// 20 s on one core), and n_L, n_0 <= kJacobianMaxWidth for the SVD.
inline constexpr double kJacobianMaxFlops = 2e11;
inline constexpr int kJacobianMaxWidth = 4096;
inline constexpr int kJacobianHistogramBins = 20;

// Flops the spectrum of `examples` examples would take (for the refusal message).
double jacobian_flops(const RunSpec& spec, int examples);

// Throws gradscope::Error (exit code 2) when spec.stats.jacobian_examples asks for a job above
// the documented size, or the network has a batch norm (its output for one example depends on
// the others: there is no per-example Jacobian). Cheap: called before anything is allocated.
void check_jacobian_request(const RunSpec& spec);

// The spectrum at the first `examples` examples of the batch (after check_jacobian_request).
template <class Scalar>
JacobianStats jacobian_spectrum(const RunSpec& spec, const Network<Scalar>& net,
                                const Mat<Scalar>& input, int examples);

}  // namespace gradscope
