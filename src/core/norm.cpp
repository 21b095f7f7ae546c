// Batch, layer and RMS normalisation: every group (a row or a column) is reduced in double, in a
// fixed order, by one kernel that knows only a pointer, a stride and a length.
#include "gradscope/core/norm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "gradscope/core/error.hpp"

namespace gradscope {
namespace {

using Eigen::Index;

// Above this magnitude a group is scaled by a power of two before it is squared and summed:
// (2 * 2^480)^2 times any count below 2^61 stays below double's 2^1024.
constexpr double kRescaleAbove = 0x1p480;

void check_eps(const NormSpec& spec, const char* what) {
  if (!(spec.eps > 0.0) || !std::isfinite(spec.eps)) {
    throw contract_error(std::string(what) + ": eps must be finite and > 0, got " +
                         std::to_string(spec.eps));
  }
}

void check_shape(const char* what, Index rows, Index cols, Index other_rows, Index other_cols) {
  if (rows != other_rows || cols != other_cols) {
    throw contract_error(std::string(what) + ": shape (" + std::to_string(other_rows) + ", " +
                         std::to_string(other_cols) + "), expected (" + std::to_string(rows) +
                         ", " + std::to_string(cols) + ")");
  }
}

void check_stat_count(const char* what, Index expected, Index got) {
  if (expected != got) {
    throw contract_error(std::string(what) + ": rstd has " + std::to_string(got) +
                         " entries, expected " + std::to_string(expected));
  }
}

// A strided view of one normalisation group: entry k is p[k * stride].
template <class T>
struct Group {
  T* p;
  Index stride;
  T& operator[](Index k) const { return p[k * stride]; }
};

// Sum of f(k) over k < n with four interleaved partial sums combined as (s0 + s1) + (s2 + s3):
// a fixed order (so results never depend on alignment or blocking) that still pipelines.
template <class F>
double fixed_order_sum(Index n, F f) {
  double s0 = 0.0;
  double s1 = 0.0;
  double s2 = 0.0;
  double s3 = 0.0;
  Index k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += f(k);
    s1 += f(k + 1);
    s2 += f(k + 2);
    s3 += f(k + 3);
  }
  for (; k < n; ++k) s0 += f(k);
  return (s0 + s1) + (s2 + s3);
}

template <class Scalar>
double max_abs(Group<const Scalar> v, Index n) {
  double m = 0.0;  // NaN entries are skipped here; they reach the sums and propagate from there
  for (Index k = 0; k < n; ++k) m = std::max(m, std::abs(static_cast<double>(v[k])));
  return m;
}

// Only double can hold entries above 2^480 (float stops at 2^128): float skips the extra pass.
template <class Scalar>
constexpr bool needs_rescue() {
  return std::numeric_limits<Scalar>::max_exponent > 480;
}

// The power of two e with m / 2^e in [0.5, 1) when m is finite and too large to square safely;
// 0 (no scaling) otherwise, so Inf inputs propagate unchanged.
int rescale_exponent(double m) {
  if (!(m > kRescaleAbove) || !std::isfinite(m)) return 0;
  int e = 0;
  std::frexp(m, &e);
  return e;
}

// One group of the forward pass. Values are v_k * 2^-e, exact for every entry that matters (the
// scaling applies only to groups whose largest entry exceeds 2^480). Returns rstd.
template <class Scalar>
double forward_group(bool centred, double eps, Group<const Scalar> x, Group<Scalar> y, Index n) {
  if (n == 0) return 1.0 / std::sqrt(eps);
  const int e = needs_rescue<Scalar>() ? rescale_exponent(max_abs(x, n)) : 0;
  const double scale = std::ldexp(1.0, -e);
  const double eps_scaled = std::ldexp(eps, -2 * e);  // may underflow: negligible unless var = 0
  const double inv_n = 1.0 / static_cast<double>(n);
  double inv = 0.0;  // 1 / sqrt(var + eps) of the scaled values
  if (centred) {
    // Shifted two-pass: deviations from the first entry, so neither a large common offset nor a
    // constant group loses anything (a constant group gives d = 0 and y = 0 exactly).
    const double shift = static_cast<double>(x[0]) * scale;
    const double dmean =
        fixed_order_sum(n, [&](Index k) { return static_cast<double>(x[k]) * scale - shift; }) *
        inv_n;
    const double var = fixed_order_sum(n,
                                       [&](Index k) {
                                         const double c =
                                             static_cast<double>(x[k]) * scale - shift - dmean;
                                         return c * c;
                                       }) *
                       inv_n;
    if (var == 0.0 && e != 0) {
      // A constant group of huge entries (or a group of one): y = 0 and rstd = 1 / sqrt(eps).
      // eps_scaled cannot give that rstd, as it underflows to 0 or a subnormal for any usual eps
      // (inv would be Inf, and y = 0 * Inf NaN). With e != 0 any two different entries give a
      // variance far from 0, so var == 0 means every entry is the same.
      for (Index k = 0; k < n; ++k) y[k] = Scalar(0);
      return 1.0 / std::sqrt(eps);
    }
    inv = 1.0 / std::sqrt(var + eps_scaled);
    for (Index k = 0; k < n; ++k) {
      y[k] = static_cast<Scalar>((static_cast<double>(x[k]) * scale - shift - dmean) * inv);
    }
  } else {
    const double ms = fixed_order_sum(n,
                                      [&](Index k) {
                                        const double v = static_cast<double>(x[k]) * scale;
                                        return v * v;
                                      }) *
                      inv_n;
    inv = 1.0 / std::sqrt(ms + eps_scaled);
    for (Index k = 0; k < n; ++k) {
      y[k] = static_cast<Scalar>(static_cast<double>(x[k]) * scale * inv);
    }
  }
  return std::ldexp(inv, -e);
}

// One group of the backward pass: dx = rstd * (g - mean(g) - y * mean(g y)), without the mean(g)
// term when not centred. A huge g (double only) is scaled down by 2^e and the result scaled back
// at the very end, where an overflow can only give Inf, never Inf * 0.
template <class Scalar>
void backward_group(bool centred, double rstd, Group<const Scalar> y, Group<const Scalar> g,
                    Group<Scalar> dx, Index n) {
  if (n == 0) return;
  const int e = needs_rescue<Scalar>() ? rescale_exponent(max_abs(g, n)) : 0;
  const double scale = std::ldexp(1.0, -e);
  const double inv_n = 1.0 / static_cast<double>(n);
  const double gmean =
      centred
          ? fixed_order_sum(n, [&](Index k) { return static_cast<double>(g[k]) * scale; }) * inv_n
          : 0.0;
  const double gymean =
      fixed_order_sum(
          n,
          [&](Index k) { return static_cast<double>(g[k]) * scale * static_cast<double>(y[k]); }) *
      inv_n;
  // Each entry reads g[k] and y[k] before writing dx[k], and the sums are done: dx may alias g.
  if (e == 0) {
    for (Index k = 0; k < n; ++k) {
      const double gk = static_cast<double>(g[k]);
      dx[k] = static_cast<Scalar>(rstd * (gk - gmean - static_cast<double>(y[k]) * gymean));
    }
  } else {
    for (Index k = 0; k < n; ++k) {
      const double gk = static_cast<double>(g[k]) * scale;
      const double t = rstd * (gk - gmean - static_cast<double>(y[k]) * gymean);
      dx[k] = static_cast<Scalar>(std::ldexp(t, e));
    }
  }
}

bool is_centred(NormKind kind) { return kind != NormKind::kRmsNorm; }

}  // namespace

bool norm_blocks_are_columns(NormKind kind) { return kind != NormKind::kBatchNorm; }

bool norm_has_beta(NormKind kind) { return kind != NormKind::kRmsNorm; }

Eigen::Index norm_stat_count(NormKind kind, Eigen::Index rows, Eigen::Index cols) {
  return norm_blocks_are_columns(kind) ? cols : rows;
}

template <class Scalar>
void norm_forward(const NormSpec& spec, const Eigen::Ref<const Mat<Scalar>>& x,
                  Eigen::Ref<Mat<Scalar>> y, Eigen::Ref<Eigen::VectorXd> rstd) {
  check_eps(spec, "norm_forward");
  check_shape("norm_forward: y", x.rows(), x.cols(), y.rows(), y.cols());
  check_stat_count("norm_forward", norm_stat_count(spec.kind, x.rows(), x.cols()), rstd.size());
  const bool centred = is_centred(spec.kind);
  if (norm_blocks_are_columns(spec.kind)) {
    for (Index a = 0; a < x.cols(); ++a) {
      rstd(a) = forward_group<Scalar>(centred, spec.eps, {x.col(a).data(), 1}, {y.col(a).data(), 1},
                                      x.rows());
    }
  } else {
    for (Index i = 0; i < x.rows(); ++i) {
      rstd(i) = forward_group<Scalar>(centred, spec.eps, {x.data() + i, x.outerStride()},
                                      {y.data() + i, y.outerStride()}, x.cols());
    }
  }
}

template <class Scalar>
void norm_backward(const NormSpec& spec, const Eigen::Ref<const Mat<Scalar>>& y,
                   const Eigen::Ref<const Eigen::VectorXd>& rstd,
                   const Eigen::Ref<const Mat<Scalar>>& g, Eigen::Ref<Mat<Scalar>> dx) {
  check_shape("norm_backward: g", y.rows(), y.cols(), g.rows(), g.cols());
  check_shape("norm_backward: dx", y.rows(), y.cols(), dx.rows(), dx.cols());
  check_stat_count("norm_backward", norm_stat_count(spec.kind, y.rows(), y.cols()), rstd.size());
  const bool centred = is_centred(spec.kind);
  if (norm_blocks_are_columns(spec.kind)) {
    for (Index a = 0; a < y.cols(); ++a) {
      backward_group<Scalar>(centred, rstd(a), {y.col(a).data(), 1}, {g.col(a).data(), 1},
                             {dx.col(a).data(), 1}, y.rows());
    }
  } else {
    for (Index i = 0; i < y.rows(); ++i) {
      backward_group<Scalar>(centred, rstd(i), {y.data() + i, y.outerStride()},
                             {g.data() + i, g.outerStride()}, {dx.data() + i, dx.outerStride()},
                             y.cols());
    }
  }
}

template <class Scalar>
void norm_param_grad_sums(const NormSpec& spec, const Eigen::Ref<const Mat<Scalar>>& y,
                          const Eigen::Ref<const Mat<Scalar>>& g,
                          Eigen::Ref<Eigen::VectorXd> dgamma, Eigen::Ref<Eigen::VectorXd> dbeta) {
  check_shape("norm_param_grad_sums: g", y.rows(), y.cols(), g.rows(), g.cols());
  check_shape("norm_param_grad_sums: dgamma", y.rows(), 1, dgamma.rows(), dgamma.cols());
  check_shape("norm_param_grad_sums: dbeta", y.rows(), 1, dbeta.rows(), dbeta.cols());
  // Column by column, so each unit's sum runs over the examples in order whatever the blocking,
  // and the loop over units vectorises without reassociating anything.
  const Index n = y.rows();
  const bool with_beta = norm_has_beta(spec.kind);
  double* dgp = dgamma.data();
  double* dbp = dbeta.data();
  for (Index a = 0; a < y.cols(); ++a) {
    const Scalar* yc = y.col(a).data();
    const Scalar* gc = g.col(a).data();
    for (Index i = 0; i < n; ++i) dgp[i] += static_cast<double>(gc[i]) * static_cast<double>(yc[i]);
    if (with_beta) {
      for (Index i = 0; i < n; ++i) dbp[i] += static_cast<double>(gc[i]);
    }
  }
}

void norm_param_grad_squares(const NormSpec& spec, const Eigen::Ref<const Eigen::VectorXd>& dgamma,
                             const Eigen::Ref<const Eigen::VectorXd>& dbeta, double& dgamma_sq,
                             double& dbeta_sq) {
  dgamma_sq = fixed_order_sum(dgamma.size(), [&](Index i) { return dgamma(i) * dgamma(i); });
  dbeta_sq = norm_has_beta(spec.kind)
                 ? fixed_order_sum(dbeta.size(), [&](Index i) { return dbeta(i) * dbeta(i); })
                 : 0.0;
}

template <class Scalar>
void norm_param_grad_squares(const NormSpec& spec, const Eigen::Ref<const Mat<Scalar>>& y,
                             const Eigen::Ref<const Mat<Scalar>>& g, double& dgamma_sq,
                             double& dbeta_sq) {
  Eigen::VectorXd dgamma = Eigen::VectorXd::Zero(y.rows());
  Eigen::VectorXd dbeta = Eigen::VectorXd::Zero(y.rows());
  norm_param_grad_sums<Scalar>(spec, y, g, dgamma, dbeta);
  norm_param_grad_squares(spec, dgamma, dbeta, dgamma_sq, dbeta_sq);
}

#define GRADSCOPE_INSTANTIATE_NORM(Scalar)                                                         \
  template void norm_forward<Scalar>(const NormSpec&, const Eigen::Ref<const Mat<Scalar>>&,        \
                                     Eigen::Ref<Mat<Scalar>>, Eigen::Ref<Eigen::VectorXd>);        \
  template void norm_backward<Scalar>(const NormSpec&, const Eigen::Ref<const Mat<Scalar>>&,       \
                                      const Eigen::Ref<const Eigen::VectorXd>&,                    \
                                      const Eigen::Ref<const Mat<Scalar>>&,                        \
                                      Eigen::Ref<Mat<Scalar>>);                                    \
  template void norm_param_grad_sums<Scalar>(                                                      \
      const NormSpec&, const Eigen::Ref<const Mat<Scalar>>&, const Eigen::Ref<const Mat<Scalar>>&, \
      Eigen::Ref<Eigen::VectorXd>, Eigen::Ref<Eigen::VectorXd>);                                   \
  template void norm_param_grad_squares<Scalar>(                                                   \
      const NormSpec&, const Eigen::Ref<const Mat<Scalar>>&, const Eigen::Ref<const Mat<Scalar>>&, \
      double&, double&);

GRADSCOPE_INSTANTIATE_NORM(float)
GRADSCOPE_INSTANTIATE_NORM(double)
#undef GRADSCOPE_INSTANTIATE_NORM

}  // namespace gradscope
