// Loss functions at the network's output: seeded targets, and each loss with its gradient in the
// forms that stay finite and keep their relative precision for logits of any size.
#include "gradscope/core/loss.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "gradscope/core/error.hpp"
#include "gradscope/core/rng.hpp"

namespace gradscope {
namespace {

using Eigen::Index;

void check_targets_shape(const char* loss, const Eigen::MatrixXd& values, Index rows, Index cols) {
  if (values.rows() != rows || values.cols() != cols) {
    throw contract_error(std::string("loss_forward_backward: ") + loss + " targets are (" +
                         std::to_string(values.rows()) + ", " + std::to_string(values.cols()) +
                         "), the output is (" + std::to_string(rows) + ", " + std::to_string(cols) +
                         ")");
  }
}

void check_classes(const char* what, int classes, Index width) {
  if (classes <= 0 || classes != width) {
    throw contract_error(std::string(what) + ": softmax_cross_entropy has " +
                         std::to_string(classes) + " classes, the output width is " +
                         std::to_string(width) + "; they must be equal and positive");
  }
}

// The losses are means of non-negative terms, so an Inf total from finite outputs means that an
// intermediate overflowed (a square, a difference of logits, or the sum over entries and
// examples) while L itself may be finite: only double outputs above 1e154 reach that far. The
// terms are then added scaled by 2^-s, exact for terms that large (the small ones it may flush
// are far below the total's rounding), and the mean is scaled back by 2^s, which overflows only
// when L does. 2^s > count keeps a sum of count terms, each below DBL_MAX * 2^-s, finite.
int sum_scale_exponent(Index count) {
  int s = 0;
  std::frexp(static_cast<double>(count), &s);  // count < 2^s
  return s;
}

// L = (1/B) sum (y - t)^2 / 2, dy = (y - t) / B.
template <class Scalar>
double mse(const Mat<Scalar>& y, const Eigen::MatrixXd& t, Mat<Scalar>& dy) {
  check_targets_shape("mse", t, y.rows(), y.cols());
  const auto b = static_cast<double>(y.cols());
  double total = 0.0;
  double max_residual = 0.0;
  for (Index a = 0; a < y.cols(); ++a) {
    double column = 0.0;
    for (Index i = 0; i < y.rows(); ++i) {
      const double d = static_cast<double>(y(i, a)) - t(i, a);
      column += d * d;
      max_residual = std::max(max_residual, std::abs(d));
      dy(i, a) = static_cast<Scalar>(d / b);
    }
    total += column;
  }
  if (std::isinf(total) && std::isfinite(max_residual)) {
    // A square (|d| > 1.3e154) or the sum overflowed: add the squares again with d scaled by 2^-e
    // below 1, so they sum to at most the entry count, and scale L back by 2^2e.
    int e = 0;
    std::frexp(max_residual, &e);
    const double down = std::ldexp(1.0, -e);
    double scaled = 0.0;
    for (Index a = 0; a < y.cols(); ++a) {
      for (Index i = 0; i < y.rows(); ++i) {
        const double d = (static_cast<double>(y(i, a)) - t(i, a)) * down;
        scaled += d * d;
      }
    }
    return std::ldexp(0.5 * scaled / b, 2 * e);
  }
  return 0.5 * total / b;
}

// Per example: with m = max_i y_i, e_i = exp(y_i - m) <= 1 (no overflow, and the largest term is
// exactly 1), S = sum e_i and R = S - e_c summed without e_c:
//   -log softmax(y)[c] = log1p(R) when y_c is a maximum (e_c = 1; keeps tiny losses exact),
//                      = (m - y_c) + log S otherwise (two non-negative terms, no cancellation);
//   d/dy_i = e_i / S for i != c, and -R / S for the label (not e_c / S - 1, which rounds to 0).
template <class Scalar>
double softmax_cross_entropy(const LossSpec& spec, const Mat<Scalar>& y,
                             const std::vector<int>& labels, Mat<Scalar>& dy) {
  check_classes("loss_forward_backward", spec.classes, y.rows());
  if (static_cast<Index>(labels.size()) != y.cols()) {
    throw contract_error("loss_forward_backward: softmax_cross_entropy has " +
                         std::to_string(labels.size()) + " labels for a batch of " +
                         std::to_string(y.cols()));
  }
  const auto b = static_cast<double>(y.cols());
  Eigen::VectorXd e(y.rows());
  double total = 0.0;
  double total_half = 0.0;  // the losses halved and scaled by 2^-s, for an overflowed total
  const int s_exp = sum_scale_exponent(y.cols());
  const double down = std::ldexp(0.5, -s_exp);
  bool finite_logits = true;
  for (Index a = 0; a < y.cols(); ++a) {
    const int c = labels[static_cast<std::size_t>(a)];
    if (c < 0 || c >= y.rows()) {
      throw contract_error("loss_forward_backward: label " + std::to_string(c) + " of example " +
                           std::to_string(a) + " is outside [0, " + std::to_string(y.rows()) + ")");
    }
    // NaN entries never win the comparison; they reach S through exp and make the loss NaN.
    double m = -std::numeric_limits<double>::infinity();
    for (Index i = 0; i < y.rows(); ++i) m = std::max(m, static_cast<double>(y(i, a)));
    finite_logits =
        finite_logits && std::isfinite(m) && std::isfinite(static_cast<double>(y(c, a)));
    double rest = 0.0;
    for (Index i = 0; i < y.rows(); ++i) {
      e(i) = std::exp(static_cast<double>(y(i, a)) - m);
      if (i != c) rest += e(i);
    }
    const double yc = static_cast<double>(y(c, a));
    const double s = e(c) + rest;
    total += (yc == m) ? std::log1p(rest) : (m - yc) + std::log(s);
    // m - y_c reaches 2 * DBL_MAX for logits of +-DBL_MAX: scaled first, it stays finite.
    total_half += (yc == m) ? std::log1p(rest) * down : (m * down - yc * down) + std::log(s) * down;
    for (Index i = 0; i < y.rows(); ++i) {
      const double p = (i == c) ? -rest / s : e(i) / s;
      dy(i, a) = static_cast<Scalar>(p / b);
    }
  }
  if (std::isinf(total) && finite_logits) return std::ldexp(total_half / b, s_exp + 1);
  return total / b;
}

// Per entry, with e = exp(-|y|) <= 1:
//   softplus(y) - t y = max(y, 0) - t y + log1p(e)   (max(y, 0) - t y is exact for t in {0, 1});
//   sigmoid(y) - t    = (1 - t) - e / (1 + e) for y >= 0, e / (1 + e) - t for y < 0, so the
//                       gradient near a saturated, correct prediction is sigmoid(-|y|), not 0.
template <class Scalar>
double sigmoid_bce(const Mat<Scalar>& y, const Eigen::MatrixXd& t, Mat<Scalar>& dy) {
  check_targets_shape("sigmoid_bce", t, y.rows(), y.cols());
  const auto b = static_cast<double>(y.cols());
  double total = 0.0;
  double total_scaled = 0.0;  // the same terms scaled by 2^-s, for an overflowed total
  const int s_exp = sum_scale_exponent(y.size());
  const double down = std::ldexp(1.0, -s_exp);
  for (Index a = 0; a < y.cols(); ++a) {
    double column = 0.0;
    for (Index i = 0; i < y.rows(); ++i) {
      const double v = static_cast<double>(y(i, a));
      const double ti = t(i, a);
      const double e = std::exp(-std::abs(v));
      const double s_minus = e / (1.0 + e);  // sigmoid(-|v|)
      // Each term is at most |v| + log 2 for t in {0, 1}: finite for finite v.
      const double term = std::max(v, 0.0) - ti * v + std::log1p(e);
      column += term;
      total_scaled += term * down;
      const double grad = (v >= 0.0) ? (1.0 - ti) - s_minus : s_minus - ti;
      dy(i, a) = static_cast<Scalar>(grad / b);
    }
    total += column;
  }
  if (std::isinf(total) && std::isfinite(total_scaled)) {
    return std::ldexp(total_scaled / b, s_exp);
  }
  return total / b;
}

}  // namespace

LossTargets make_targets(const LossSpec& spec, std::uint64_t seed, int width, int batch) {
  if (width < 0 || batch < 0) {
    throw contract_error("make_targets: negative shape (" + std::to_string(width) + ", " +
                         std::to_string(batch) + ")");
  }
  LossTargets targets;
  const std::uint64_t key = stream_key(seed, 0, StreamPurpose::kTargets);
  const auto n = static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(batch);
  switch (spec.kind) {
    case LossKind::kProbe:
      return targets;
    case LossKind::kMse:
      targets.values.resize(width, batch);
      fill_normal(key, 0, n, targets.values.data());
      return targets;
    case LossKind::kSoftmaxCrossEntropy: {
      check_classes("make_targets", spec.classes, width);
      const double classes = static_cast<double>(spec.classes);
      targets.labels.resize(static_cast<std::size_t>(batch));
      for (int a = 0; a < batch; ++a) {
        const auto k = static_cast<std::uint64_t>(a);
        // u * classes < classes in exact arithmetic, but the product can round up to it.
        const int c = static_cast<int>(std::floor(uniform01(key, k) * classes));
        targets.labels[static_cast<std::size_t>(a)] = std::min(c, spec.classes - 1);
      }
      return targets;
    }
    case LossKind::kSigmoidBce:
      targets.values.resize(width, batch);
      for (std::uint64_t k = 0; k < n; ++k) {
        targets.values.data()[k] = uniform01(key, k) < 0.5 ? 1.0 : 0.0;
      }
      return targets;
  }
  throw contract_error("make_targets: unknown loss kind");
}

template <class Scalar>
double loss_forward_backward(const LossSpec& spec, const Mat<Scalar>& y, const LossTargets& targets,
                             Mat<Scalar>& dy) {
  if (spec.kind == LossKind::kProbe) {
    throw contract_error("loss_forward_backward: the probe has no loss; the network applies it");
  }
  dy.resize(y.rows(), y.cols());
  if (y.cols() == 0) return 0.0;
  switch (spec.kind) {
    case LossKind::kMse:
      return mse<Scalar>(y, targets.values, dy);
    case LossKind::kSoftmaxCrossEntropy:
      return softmax_cross_entropy<Scalar>(spec, y, targets.labels, dy);
    case LossKind::kSigmoidBce:
      return sigmoid_bce<Scalar>(y, targets.values, dy);
    case LossKind::kProbe:
      break;
  }
  throw contract_error("loss_forward_backward: unknown loss kind");
}

template double loss_forward_backward<float>(const LossSpec&, const Mat<float>&, const LossTargets&,
                                             Mat<float>&);
template double loss_forward_backward<double>(const LossSpec&, const Mat<double>&,
                                              const LossTargets&, Mat<double>&);

}  // namespace gradscope
