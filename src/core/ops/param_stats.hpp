// The gradient statistics of one parameter tensor of an op with several (attention's projections,
// a GLU's), from its gradient as the backward pass holds it (divided by 2^exp2), and the op's
// totals over all its tensors.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>
#include <vector>

#include "gradscope/core/network.hpp"
#include "gradscope/core/stats.hpp"

namespace gradscope::ops {

// What the op's totals are summed from: the squares of each tensor's gradient and of its step.
struct ParamSums {
  SquareSum grad;     // of dL/dp / 2^exp2
  SquareSum weight;   // of p
  double adam = 0.0;  // sum of the first Adam step's squares, u = g / (|g| + eps), unscaled
};

// One tensor's statistics: dp = dL/dp / 2^exp2 and p itself, both (rows, cols) as the op holds
// them; `shape` is PyTorch's. Adds its squares to `sums` (weights' and biases' apart).
template <class Scalar>
ParamStats param_stats(const std::string& role, std::vector<std::int64_t> shape,
                       const Eigen::Ref<const Mat<Scalar>>& dp,
                       const Eigen::Ref<const Mat<Scalar>>& p, std::int64_t exp2,
                       const OptimizerSpec& optimizer, ParamSums& sums);

// The op's BackwardStats weight and bias fields from the sums of its weights and of its biases
// (has_bias false: the bias fields read 0).
void fill_total_param_stats(const ParamSums& weights, const ParamSums& biases, bool has_bias,
                            std::int64_t exp2, const OptimizerSpec& optimizer, BackwardStats& bs);

}  // namespace gradscope::ops
