// Per-tensor gradient statistics for ops with several parameter tensors (param_stats.hpp).
#include "core/ops/param_stats.hpp"

#include <cmath>
#include <limits>
#include <utility>

#include "core/layer_stats.hpp"
#include "core/ops/weight_grad.hpp"

namespace gradscope::ops {

namespace {

template <class Scalar>
SquareSum squares_of(const Eigen::Ref<const Mat<Scalar>>& m) {
  SquareSum s;
  for (Eigen::Index j = 0; j < m.cols(); ++j) s.add(m.col(j).data(), m.rows());
  return s;
}

Magnitude norm_of(const SquareSum& s, std::int64_t exp2) {
  return s.finite == 0 ? Magnitude{kNaN, kNaN} : s.root(exp2);
}

// ||step|| / ||p|| for the first step of the optimizer from zero state (dense.cpp's rule).
Magnitude update_ratio(const SquareSum& grad, double adam, std::int64_t exp2, double norm,
                       const OptimizerSpec& optimizer) {
  const Magnitude pn = magnitude_from_scaled(norm, 0);
  if (optimizer.kind == OptimizerKind::kSgd) {
    // From zero momentum the buffer is the gradient and the step lr * grad.
    if (grad.finite == 0) return Magnitude{kNaN, kNaN};
    return magnitude_ratio(
        magnitude_from_scaled(optimizer.learning_rate * std::sqrt(grad.sum), exp2 + grad.exp), pn);
  }
  return magnitude_ratio(magnitude_from_scaled(optimizer.learning_rate * std::sqrt(adam), 0), pn);
}

}  // namespace

template <class Scalar>
ParamStats param_stats(const std::string& role, std::vector<std::int64_t> shape,
                       const Eigen::Ref<const Mat<Scalar>>& dp,
                       const Eigen::Ref<const Mat<Scalar>>& p, std::int64_t exp2,
                       const OptimizerSpec& optimizer, ParamSums& sums) {
  ParamStats s;
  s.role = role;
  s.shape = std::move(shape);
  const SquareSum grad = squares_of<Scalar>(dp);
  const SquareSum weight = squares_of<Scalar>(p);
  s.norm = std::sqrt(weight.value());
  s.grad_norm = norm_of(grad, exp2);
  s.grad_nonfinite = grad.nonfinite;
  double adam = 0.0;
  if (optimizer.kind == OptimizerKind::kAdam) {
    // First Adam step: m-hat = g, v-hat = g^2, so each entry moves by lr * g / (|g| + eps).
    const double eps = adam_eps_at(optimizer.eps, exp2);
    for (Eigen::Index j = 0; j < dp.cols(); ++j) {
      for (Eigen::Index i = 0; i < dp.rows(); ++i) {
        const double v = static_cast<double>(dp(i, j));
        if (!std::isfinite(v)) continue;
        const double u = v / (std::abs(v) + eps);
        adam += u * u;
      }
    }
  }
  if (optimizer.kind != OptimizerKind::kNone) {
    s.has_update = true;
    s.update_to_weight = update_ratio(grad, adam, exp2, s.norm, optimizer);
  }
  sums.grad.merge(grad);
  sums.weight.merge(weight);
  sums.adam += adam;
  return s;
}

void fill_total_param_stats(const ParamSums& weights, const ParamSums& biases, bool has_bias,
                            std::int64_t exp2, const OptimizerSpec& optimizer, BackwardStats& bs) {
  bs.grad_weight_norm = norm_of(weights.grad, exp2);
  bs.grad_weight_nonfinite = weights.grad.nonfinite;
  bs.weight_norm = std::sqrt(weights.weight.value());
  bs.grad_weight_to_weight =
      magnitude_ratio(bs.grad_weight_norm, magnitude_from_scaled(bs.weight_norm, 0));
  if (has_bias) {
    bs.grad_bias_norm = norm_of(biases.grad, exp2);
    bs.grad_bias_nonfinite = biases.grad.nonfinite;
  } else {
    bs.grad_bias_norm = Magnitude{0.0, -std::numeric_limits<double>::infinity()};
  }
  if (optimizer.kind != OptimizerKind::kNone) {
    bs.has_update = true;
    bs.update_to_weight = update_ratio(weights.grad, weights.adam, exp2, bs.weight_norm, optimizer);
  }
}

#define GRADSCOPE_INSTANTIATE(Scalar)                                                      \
  template ParamStats param_stats<Scalar>(                                                 \
      const std::string&, std::vector<std::int64_t>, const Eigen::Ref<const Mat<Scalar>>&, \
      const Eigen::Ref<const Mat<Scalar>>&, std::int64_t, const OptimizerSpec&, ParamSums&);
GRADSCOPE_INSTANTIATE(float)
GRADSCOPE_INSTANTIATE(double)
#undef GRADSCOPE_INSTANTIATE

}  // namespace gradscope::ops
