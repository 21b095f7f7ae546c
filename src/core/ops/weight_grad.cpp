// The norm of a dense op's weight gradient (weight_grad.hpp): the Grams' inner product, and the
// exact centred form for inputs whose plain products would overflow or cancel.
#include "core/ops/weight_grad.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/layer_stats.hpp"
#include "core/tasks.hpp"

namespace gradscope::ops {

namespace {

// ||g||^2 ||x||^2 / ||g x^T||^2 is about the batch size for unrelated g and x and grows with the
// cancellation (weight_grad.hpp) (with an offset m it is about batch ||x||^2 / ||x - m 1^T||^2):
// beyond this many batches' worth the plain products may have lost digits, and the exact form is
// taken.
constexpr double kMaxCancellation = 8.0;

// x / 2^shift = xc + m 1^T: the input with its per-unit offset m (the mean of each row's finite
// entries) taken out and scaled by a power of two so that |xc| < 1. The scalings are exact, and
// so is each subtraction where the entries lie within a factor of two of their row's mean
// (Sterbenz), which is where the cancellation was.
template <class Scalar>
struct CentredInput {
  Mat<Scalar> xc;     // (n_in, batch)
  Eigen::VectorXd m;  // (n_in), in units of 2^shift
  std::int64_t shift = 0;
};

template <class Scalar>
double largest_finite(const Eigen::Ref<const Mat<Scalar>>& x) {
  double largest = 0.0;
  for (Eigen::Index a = 0; a < x.cols(); ++a) {
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      const double v = std::abs(static_cast<double>(x(i, a)));
      if (std::isfinite(v)) largest = std::max(largest, v);
    }
  }
  return largest;
}

template <class Scalar>
CentredInput<Scalar> centre_input(const Mat<Scalar>& x, ThreadPool& pool) {
  const std::int64_t tasks = row_tasks(x.rows());
  std::vector<double> task_max(static_cast<std::size_t>(tasks), 0.0);
  pool.run(tasks, [&](std::int64_t t) {
    const Range r = task_rows(t, x.rows());
    task_max[static_cast<std::size_t>(t)] = largest_finite<Scalar>(x.middleRows(r.begin, r.size));
  });
  const double largest = *std::max_element(task_max.begin(), task_max.end());
  const int first = largest > 0.0 ? std::ilogb(largest) + 1 : 0;  // |x| / 2^first < 1
  CentredInput<Scalar> c;
  c.xc.resize(x.rows(), x.cols());
  Eigen::VectorXd mean(x.rows());  // in units of 2^first, rounded to Scalar
  // 2^-first in two factors: for subnormal inputs (float32 1e-42 has first = -139) one factor
  // would be 2^139, beyond float's range; each half stays inside it, and each product is exact.
  const Scalar down_a = std::ldexp(Scalar(1), -first / 2);
  const Scalar down_b = std::ldexp(Scalar(1), -first - (-first / 2));
  const auto down = [&](Scalar v) { return (v * down_a) * down_b; };
  pool.run(tasks, [&](std::int64_t t) {
    const Range r = task_rows(t, x.rows());
    for (Eigen::Index i = r.begin; i < r.begin + r.size; ++i) {
      double sum = 0.0;
      std::int64_t n = 0;
      for (Eigen::Index a = 0; a < x.cols(); ++a) {
        const double v = static_cast<double>(down(x(i, a)));
        if (std::isfinite(v)) {
          sum += v;
          ++n;
        }
      }
      const auto mu = static_cast<Scalar>(n > 0 ? sum / static_cast<double>(n) : 0.0);
      mean[i] = static_cast<double>(mu);
      for (Eigen::Index a = 0; a < x.cols(); ++a) c.xc(i, a) = down(x(i, a)) - mu;
    }
    task_max[static_cast<std::size_t>(t)] =
        largest_finite<Scalar>(c.xc.middleRows(r.begin, r.size));
  });
  const double spread = *std::max_element(task_max.begin(), task_max.end());
  // |xc| < 2 here; 2^-second brings the largest near 1, capped inside the format's range (a
  // spread that small next to |x| is rounding, and costs nothing to leave smaller).
  constexpr int kMaxUp = std::numeric_limits<Scalar>::max_exponent - 8;
  const int second = spread > 0.0 ? std::max(std::ilogb(spread) + 1, -kMaxUp) : 0;
  const Scalar up = std::ldexp(Scalar(1), -second);
  pool.run(tasks, [&](std::int64_t t) {
    const Range r = task_rows(t, x.rows());
    c.xc.middleRows(r.begin, r.size) *= up;
  });
  c.m = mean * std::ldexp(1.0, -second);
  c.shift = static_cast<std::int64_t>(first) + second;
  return c;
}

// b = g 1, the bias gradient / 2^exp2. It multiplies the offset m, so it is summed with
// compensation (Neumaier): in front of a norm it is itself a sum that cancels to about the
// rounding of its terms, and a float64 network's plain sum would leave that rounding times m.
template <class Scalar>
Eigen::VectorXd compensated_row_sums(const Mat<Scalar>& g, ThreadPool& pool) {
  const Eigen::Index batch = g.cols();
  const Eigen::Index n_out = g.rows();
  Eigen::VectorXd b(n_out);
  pool.run(row_tasks(n_out), [&](std::int64_t t) {
    const Range r = task_rows(t, n_out);
    for (Eigen::Index i = r.begin; i < r.begin + r.size; ++i) {
      double sum = 0.0;
      double lost = 0.0;
      for (Eigen::Index a = 0; a < batch; ++a) {
        const double v = static_cast<double>(g(i, a));
        const double next = sum + v;
        lost += std::abs(sum) >= std::abs(v) ? (sum - next) + v : (v - next) + sum;
        sum = next;
      }
      b[i] = sum + lost;
    }
  });
  return b;
}

// ||g xc^T + b m^T||^2 from the Grams, with the input's correlation when asked for.
template <class Scalar>
void exact_from_grams(const Mat<Scalar>& g, const CentredInput<Scalar>& c, const Eigen::VectorXd& b,
                      bool correlation, WeightGradient& out, ThreadPool& pool) {
  const Eigen::Index batch = g.cols();
  const Eigen::Index n_out = g.rows();
  const Eigen::Index n_in = c.xc.rows();
  Mat<Scalar> gram_x, gram_g;
  pool.run(2, [&](std::int64_t t) {
    if (t == 0) gram_lower(c.xc, gram_x);
    if (t == 1) gram_lower(g, gram_g);
  });
  // ||g xc^T + b m^T||^2 = <xc^T xc, g^T g> + 2 b^T g (xc^T m) + ||b||^2 ||m||^2.
  Eigen::VectorXd v(batch);  // xc^T m
  for (Eigen::Index a = 0; a < batch; ++a) {
    double sum = 0.0;
    for (Eigen::Index j = 0; j < n_in; ++j) sum += static_cast<double>(c.xc(j, a)) * c.m[j];
    v[a] = sum;
  }
  double cross = 0.0;
  for (Eigen::Index i = 0; i < n_out; ++i) {
    double gv = 0.0;
    for (Eigen::Index a = 0; a < batch; ++a) gv += static_cast<double>(g(i, a)) * v[a];
    cross += b[i] * gv;
  }
  const double m2 = c.m.squaredNorm();
  out.squares.sum =
      std::max(0.0, lower_symmetric_dot(gram_x, gram_g) + 2.0 * cross + b.squaredNorm() * m2);
  out.squares.finite = n_out * n_in;
  if (correlation) {
    // x^T x / 2^(2 shift) = xc^T xc + v 1^T + 1 v^T + ||m||^2, from the lower triangle.
    const Eigen::Index m = std::min<Eigen::Index>(batch, kCorrelationExamples);
    out.correlation = mean_cosine_of_gram(m, [&](Eigen::Index a, Eigen::Index bb) {
      const double xx = static_cast<double>(a >= bb ? gram_x(a, bb) : gram_x(bb, a));
      return xx + v[a] + v[bb] + m2;
    });
    out.has_correlation = true;
  }
}

// Entry by entry, a block of rows a task: counts the non-finite entries of dW (a row of g or
// a column of x holding NaN or infinity) and sums the squares of the others.
template <class Scalar>
void exact_by_entries(const Mat<Scalar>& g, const CentredInput<Scalar>& c, const Eigen::VectorXd& b,
                      bool adam, double eps_scaled, WeightGradient& out, ThreadPool& pool) {
  const Eigen::Index n_out = g.rows();
  const Eigen::Index n_in = c.xc.rows();
  const std::int64_t tasks = row_tasks(n_out);
  std::vector<SquareSum> parts(static_cast<std::size_t>(tasks));
  std::vector<double> adam_parts(parts.size(), 0.0);
  pool.run(tasks, [&](std::int64_t t) {
    const Range r = task_rows(t, n_out);
    Mat<Scalar> dwc(r.size, n_in);  // rows of g xc^T
    dwc.noalias() = g.middleRows(r.begin, r.size) * c.xc.transpose();
    Eigen::VectorXd column(r.size);
    double a = 0.0;
    for (Eigen::Index j = 0; j < n_in; ++j) {
      for (Eigen::Index i = 0; i < r.size; ++i) {
        const double v = static_cast<double>(dwc(i, j)) + b[r.begin + i] * c.m[j];
        column[i] = v;
        if (adam && std::isfinite(v)) {
          const double u = v / (std::abs(v) + eps_scaled);
          a += u * u;
        }
      }
      parts[static_cast<std::size_t>(t)].add(column.data(), r.size);
    }
    adam_parts[static_cast<std::size_t>(t)] = a;
  });
  for (const SquareSum& p : parts) out.squares.merge(p);
  for (double a : adam_parts) out.adam += a;
}

}  // namespace

template <class Scalar>
double lower_symmetric_dot(const Mat<Scalar>& a, const Mat<Scalar>& b) {
  double diag = 0.0;
  double off = 0.0;
  for (Eigen::Index j = 0; j < a.cols(); ++j) {
    diag += static_cast<double>(a(j, j)) * static_cast<double>(b(j, j));
    for (Eigen::Index i = j + 1; i < a.rows(); ++i) {
      off += static_cast<double>(a(i, j)) * static_cast<double>(b(i, j));
    }
  }
  return diag + 2.0 * off;
}

template <class Scalar>
void gram_lower(const Mat<Scalar>& x, Mat<Scalar>& out) {
  out.setZero(x.cols(), x.cols());
  out.template selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
}

ValueRange range_of(const MomentStats& s) {
  ValueRange r;
  r.largest = s.finite == 0 ? std::numeric_limits<double>::quiet_NaN()
                            : std::max(std::abs(s.min), std::abs(s.max));
  r.nonfinite = s.nonfinite;
  r.squares = s.rms * s.rms * static_cast<double>(s.finite);
  return r;
}

bool well_conditioned(double dw_squares, double x_squares, double g_squares, Eigen::Index batch) {
  if (!std::isfinite(dw_squares) || !std::isfinite(x_squares) || !std::isfinite(g_squares)) {
    return false;
  }
  if (x_squares == 0.0 || g_squares == 0.0) return dw_squares == 0.0;  // dW = 0 exactly
  return dw_squares > 0.0 &&
         (x_squares / dw_squares) * g_squares <= kMaxCancellation * static_cast<double>(batch);
}

// ||dW||, ||dW|| / ||W|| and the first optimizer step's update ratio, at the gradient's exp2.
void fill_weight_stats(const WeightGradient& dw, std::int64_t exp2, double weight_norm,
                       const OptimizerSpec& optimizer, BackwardStats& bs) {
  const std::int64_t at = exp2 + dw.shift;
  bs.grad_weight_norm = dw.squares.finite == 0 ? Magnitude{kNaN, kNaN} : dw.squares.root(at);
  bs.grad_weight_nonfinite = dw.squares.nonfinite;
  bs.weight_norm = weight_norm;
  const Magnitude wn = magnitude_from_scaled(bs.weight_norm, 0);
  bs.grad_weight_to_weight = magnitude_ratio(bs.grad_weight_norm, wn);
  const double lr = optimizer.learning_rate;
  if (optimizer.kind == OptimizerKind::kSgd) {
    // First SGD step from zero momentum: the buffer is the gradient, the step lr * grad.
    bs.has_update = true;
    bs.update_to_weight = magnitude_ratio(
        dw.squares.finite == 0
            ? Magnitude{kNaN, kNaN}
            : magnitude_from_scaled(lr * std::sqrt(dw.squares.sum), at + dw.squares.exp),
        wn);
  } else if (optimizer.kind == OptimizerKind::kAdam) {
    bs.has_update = true;
    bs.update_to_weight = magnitude_ratio(magnitude_from_scaled(lr * std::sqrt(dw.adam), 0), wn);
  }
}

double adam_eps_at(double eps, std::int64_t e) {
  return std::ldexp(eps, static_cast<int>(std::clamp<std::int64_t>(-e, -4000, 4000)));
}

template <class Scalar>
WeightGradient exact_weight_gradient(const Mat<Scalar>& g, std::int64_t exp2, const Mat<Scalar>& x,
                                     const ValueRange& xr, bool gram, bool adam, double eps,
                                     bool correlation, ThreadPool& pool) {
  const CentredInput<Scalar> c = centre_input(x, pool);
  WeightGradient out;
  out.shift = c.shift;
  const Eigen::VectorXd b = compensated_row_sums(g, pool);
  const bool finite = b.allFinite() && xr.nonfinite == 0;
  if (gram && finite) {
    exact_from_grams(g, c, b, correlation, out, pool);
    return out;
  }
  exact_by_entries(g, c, b, adam, adam_eps_at(eps, exp2 + c.shift), out, pool);
  if (correlation) {
    // No Gram of x was formed: the correlation its first reader owes, taken directly.
    out.correlation = mean_pair_cosine(x);
    out.has_correlation = true;
  }
  return out;
}

template double lower_symmetric_dot<float>(const Mat<float>&, const Mat<float>&);
template double lower_symmetric_dot<double>(const Mat<double>&, const Mat<double>&);
template void gram_lower<float>(const Mat<float>&, Mat<float>&);
template void gram_lower<double>(const Mat<double>&, Mat<double>&);
template WeightGradient exact_weight_gradient<float>(const Mat<float>&, std::int64_t,
                                                     const Mat<float>&, const ValueRange&, bool,
                                                     bool, double, bool, ThreadPool&);
template WeightGradient exact_weight_gradient<double>(const Mat<double>&, std::int64_t,
                                                      const Mat<double>&, const ValueRange&, bool,
                                                      bool, double, bool, ThreadPool&);

}  // namespace gradscope::ops
