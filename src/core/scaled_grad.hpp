// The gradient the backward pass carries down: stored divided by a power of two, 2^exp2, kept
// beside it, so magnitudes far below (or above) the number format stay exact.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/layer_stats.hpp"
#include "gradscope/core/network.hpp"

namespace gradscope::ops {

// Power-of-two rescaling keeps the stored gradient's rms within [2^-kRescaleBits, 2^kRescaleBits]
// without rounding anything: scaling by 2^e is exact for normal numbers.
inline constexpr int kRescaleBits = 16;

template <class Scalar>
struct ScaledGrad {
  Mat<Scalar> g;  // dL/d(the current value) / 2^exp2, (width, batch)
  std::int64_t exp2 = 0;
  // Skip-path gradients waiting for their residual begin: (gradient / 2^exp2, exp2).
  std::vector<std::pair<Mat<Scalar>, std::int64_t>> skips;
};

// Scales g (stored / 2^exp2) so that its rms is near 1, when it has drifted far; exact. Returns
// the power of two g was divided by (0 when left alone).
template <class Scalar>
int rescale(Mat<Scalar>& g, const GradPartial& stats, std::int64_t& exp2, ThreadPool& pool);

// Brings a (stored / 2^ea) and b (stored / 2^eb) to a common exponent and returns a + b in a.
template <class Scalar>
void add_scaled(Mat<Scalar>& a, std::int64_t& ea, const Mat<Scalar>& b, std::int64_t eb);

// g * 2^exp2 in double (entries below double's range read 0).
template <class Scalar>
Eigen::MatrixXd unscaled(const Mat<Scalar>& g, std::int64_t exp2);

}  // namespace gradscope::ops
