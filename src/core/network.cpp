// Forward and backward passes over the flattened architecture with the statistics gathered on
// the way. Work is cut into tasks by the problem's shape alone (kRowsPerTask units, or
// kColumnsPerTask examples for per-example norms); each task writes its own slice and its own
// partial sums, combined in task order, so results are bit-identical for any thread count.
#include "gradscope/core/network.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "gradscope/core/norm.hpp"
#include "gradscope/core/rng.hpp"
#include "gradscope/core/stats.hpp"

namespace gradscope {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Examples handled by one task of a per-example (column-wise) computation.
constexpr Eigen::Index kColumnsPerTask = 32;

struct Range {
  Eigen::Index begin;
  Eigen::Index size;
};

std::int64_t tasks_for(Eigen::Index n, Eigen::Index per_task) {
  return (static_cast<std::int64_t>(n) + per_task - 1) / per_task;
}

Range task_range(std::int64_t task, Eigen::Index n, Eigen::Index per_task) {
  const Eigen::Index begin = static_cast<Eigen::Index>(task) * per_task;
  return {begin, std::min<Eigen::Index>(per_task, n - begin)};
}

std::int64_t row_tasks(Eigen::Index rows) { return tasks_for(rows, kRowsPerTask); }
Range task_rows(std::int64_t task, Eigen::Index rows) {
  return task_range(task, rows, kRowsPerTask);
}

// What one forward task learns about its block of an op.
struct ForwardPartial {
  MomentAccumulator preact;
  MomentAccumulator act;
  std::int64_t zeros = 0;
  std::int64_t saturated = 0;
};

template <class Scalar>
void accumulate_moments(const Eigen::Ref<const Mat<Scalar>>& m, MomentAccumulator& acc) {
  for (Eigen::Index a = 0; a < m.cols(); ++a) acc.add(m.col(a).data(), m.rows());
}

// Activation statistics of a block of y and d = phi'(h) (the same rows and columns of each).
// alive[i] / unsaturated[i] are set for each row i of the block that has a non-zero /
// unsaturated derivative in any of its columns.
template <class Scalar>
void accumulate_activation_block(const Eigen::Ref<const Mat<Scalar>>& y,
                                 const Eigen::Ref<const Mat<Scalar>>& d, double saturated_below,
                                 ForwardPartial& part, unsigned char* alive,
                                 unsigned char* unsaturated) {
  const Scalar limit = static_cast<Scalar>(saturated_below);
  const Eigen::Index rows = y.rows();
  for (Eigen::Index a = 0; a < y.cols(); ++a) {
    const Scalar* yc = y.col(a).data();
    const Scalar* dc = d.col(a).data();
    part.act.add(yc, rows);
    std::int64_t zeros = 0;
    std::int64_t saturated = 0;
    for (Eigen::Index i = 0; i < rows; ++i) {
      const Scalar slope = std::abs(dc[i]);
      const bool sat = slope < limit;
      zeros += yc[i] == Scalar(0);
      saturated += sat;
      // A NaN or infinite output says nothing of the unit's slope (relu's y > 0 test would call
      // it 0): such an entry never counts as evidence that the unit is dead.
      const bool undefined = !(std::abs(yc[i]) <= std::numeric_limits<Scalar>::max());
      alive[i] |= static_cast<unsigned char>(dc[i] != Scalar(0) || undefined);
      unsaturated[i] |= static_cast<unsigned char>(!sat);
    }
    part.zeros += zeros;
    part.saturated += saturated;
  }
}

// Output statistics of an op without a derivative of its own (norm, dropout, residual).
template <class Scalar>
void accumulate_output_block(const Eigen::Ref<const Mat<Scalar>>& y, ForwardPartial& part) {
  for (Eigen::Index a = 0; a < y.cols(); ++a) {
    const Scalar* yc = y.col(a).data();
    part.act.add(yc, y.rows());
    std::int64_t zeros = 0;
    for (Eigen::Index i = 0; i < y.rows(); ++i) zeros += yc[i] == Scalar(0);
    part.zeros += zeros;
  }
}

// sqrt(a_aa b_bb) for two diagonal entries of a Gram matrix (squares summed), without
// overflowing their product where the entries are near double's limit.
double diagonal_norm_product(double a, double b) {
  const double p = a * b;
  return std::isfinite(p) && p > 0.0 ? std::sqrt(p) : std::sqrt(a) * std::sqrt(b);
}

// The mean over pairs a < b < m of gram(a, b) / sqrt(gram(a, a) gram(b, b)): the mean cosine from
// (a function giving) the entries of a Gram matrix; NaN for fewer than two examples, a zero
// vector or a non-finite entry.
template <class Entry>
double mean_cosine_of_gram(Eigen::Index m, const Entry& gram) {
  if (m < 2) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0.0;
  for (Eigen::Index b = 0; b < m; ++b) {
    const double nb = gram(b, b);
    for (Eigen::Index a = b + 1; a < m; ++a) {
      const double na = gram(a, a);
      const double norms = diagonal_norm_product(na, nb);
      if (!(na > 0.0) || !(nb > 0.0) || !std::isfinite(norms)) {
        return std::numeric_limits<double>::quiet_NaN();
      }
      sum += gram(a, b) / norms;
    }
  }
  return sum / (0.5 * static_cast<double>(m) * static_cast<double>(m - 1));
}

// Mean cosine between the columns of the first kCorrelationExamples columns of y, in double.
template <class Scalar>
double mean_pair_cosine(const Mat<Scalar>& y) {
  const Eigen::Index m = std::min<Eigen::Index>(y.cols(), kCorrelationExamples);
  if (m < 2) return std::numeric_limits<double>::quiet_NaN();
  Eigen::MatrixXd u = y.leftCols(m).template cast<double>();
  for (Eigen::Index a = 0; a < m; ++a) {
    double norm = u.col(a).norm();
    // A float64 column beyond 1e154 (or below 1e-154) over- or underflows the plain norm.
    if (std::isfinite(norm) && !(norm > 1e-150)) norm = u.col(a).stableNorm();
    if (!std::isfinite(norm) && u.col(a).allFinite()) norm = u.col(a).stableNorm();
    if (!(norm > 0.0) || !std::isfinite(norm)) return std::numeric_limits<double>::quiet_NaN();
    u.col(a) /= norm;
  }
  Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(m, m);
  gram.selfadjointView<Eigen::Lower>().rankUpdate(u.transpose());
  double sum = 0.0;
  for (Eigen::Index b = 0; b < m; ++b) {
    for (Eigen::Index a = b + 1; a < m; ++a) sum += gram(a, b);
  }
  return sum / (0.5 * static_cast<double>(m) * static_cast<double>(m - 1));
}

// The same mean cosine from the lower triangle of the Gram matrix x^T x of a whole batch,
// restricted to the first kCorrelationExamples examples.
template <class Scalar>
double pair_cosine_from_gram(const Mat<Scalar>& gram) {
  const Eigen::Index m = std::min<Eigen::Index>(gram.cols(), kCorrelationExamples);
  return mean_cosine_of_gram(
      m, [&](Eigen::Index a, Eigen::Index b) { return static_cast<double>(gram(a, b)); });
}

// Sum of squares and per-row sums of a gradient block (rows of one task, every column).
struct GradPartial {
  SquareSum squares;
  double bias_squares = 0.0;        // sum over the block's rows of (sum over the batch)^2, finite
  std::int64_t bias_nonfinite = 0;  // rows whose sum over the batch is not finite
};

template <class Scalar>
void accumulate_gradient_block(const Eigen::Ref<const Mat<Scalar>>& g, GradPartial& part) {
  Eigen::VectorXd row_sums = Eigen::VectorXd::Zero(g.rows());
  for (Eigen::Index a = 0; a < g.cols(); ++a) {
    const Scalar* gc = g.col(a).data();
    part.squares.add(gc, g.rows());
    for (Eigen::Index i = 0; i < g.rows(); ++i) row_sums[i] += static_cast<double>(gc[i]);
  }
  if (row_sums.allFinite()) {
    part.bias_squares += row_sums.squaredNorm();
    return;
  }
  for (Eigen::Index i = 0; i < g.rows(); ++i) {
    if (std::isfinite(row_sums[i])) {
      part.bias_squares += row_sums[i] * row_sums[i];
    } else {
      ++part.bias_nonfinite;
    }
  }
}

GradPartial merge_parts(const std::vector<GradPartial>& parts) {
  GradPartial total;
  for (const GradPartial& p : parts) {
    total.squares.merge(p.squares);
    total.bias_squares += p.bias_squares;
    total.bias_nonfinite += p.bias_nonfinite;
  }
  return total;
}

// <A, B>_F for two symmetric matrices of which only the lower triangles are filled, in double.
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

// The lower triangle of x^T x, (batch, batch).
template <class Scalar>
void gram_lower(const Mat<Scalar>& x, Mat<Scalar>& out) {
  out.setZero(x.cols(), x.cols());
  out.template selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
}

// ||d x^T||_F is needed, not d x^T itself: when the batch is small next to the widths,
// <x^T x, d^T d>_F costs batch^2 (n_in + n_out) instead of 2 batch n_in n_out.
bool use_gram_for_weight_norm(Eigen::Index batch, Eigen::Index n_in, Eigen::Index n_out) {
  return batch * (n_in + n_out) < 2 * n_in * n_out;
}

// ---- The weight gradient's norm in the regime gradscope diagnoses.
//
// ||dL/dW||_F = ||g x^T||_F is taken from the two Grams, <x^T x, g^T g>_F, or from dW itself, both
// products in the network's precision. The gradient g is kept near rms 1 by exact rescaling, but
// the layer's input x is the forward value as it is, and two things go wrong with it: in float32
// an x of rms 2e18 overflows x^T x (and a tiny one underflows it) although every value is finite;
// and an input with a large offset per unit, in front of a gradient that sums to about zero over
// the batch (a dense layer before batch norm), cancels digits in both forms. Those cases take the
// exact form below instead: x / 2^shift = xc + m 1^T, with xc centred and |xc| < 1, so that
// dW / 2^shift = g xc^T + b m^T with b = g 1, the bias gradient.

// The range of a value (an op's output or the input) that the weight gradient of a dense layer
// reading it needs: its largest |finite entry|, its non-finite entries and its sum of squares.
struct ValueRange {
  double largest = 0.0;
  std::int64_t nonfinite = 0;
  double squares = 0.0;
};

ValueRange range_of(const MomentStats& s) {
  ValueRange r;
  r.largest = s.finite == 0 ? std::numeric_limits<double>::quiet_NaN()
                            : std::max(std::abs(s.min), std::abs(s.max));
  r.nonfinite = s.nonfinite;
  r.squares = s.rms * s.rms * static_cast<double>(s.finite);
  return r;
}

// Inside [2^-k, 2^k] (or all zero) a value's Gram, x^T x over up to 2^24 units, and g x^T stay
// far inside the format's normal range: k = 30 in float32 (2^84 against 2^128; squares above
// 2^-60 against the smallest normal 2^-126), 250 in float64.
template <class Scalar>
bool plain_weight_grad_range(double largest) {
  constexpr int k = std::is_same_v<Scalar, float> ? 30 : 250;
  return largest == 0.0 || (largest >= std::ldexp(1.0, -k) && largest <= std::ldexp(1.0, k));
}

// ||g||^2 ||x||^2 / ||g x^T||^2 is about the batch size for unrelated g and x and grows with the
// cancellation above (with an offset m it is about batch ||x||^2 / ||x - m 1^T||^2): beyond this
// many batches' worth the plain products may have lost digits, and the exact form is taken.
constexpr double kMaxCancellation = 8.0;

bool well_conditioned(double dw_squares, double x_squares, double g_squares, Eigen::Index batch) {
  if (!std::isfinite(dw_squares) || !std::isfinite(x_squares) || !std::isfinite(g_squares)) {
    return false;
  }
  if (x_squares == 0.0 || g_squares == 0.0) return dw_squares == 0.0;  // dW = 0 exactly
  return dw_squares > 0.0 &&
         (x_squares / dw_squares) * g_squares <= kMaxCancellation * static_cast<double>(batch);
}

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

// Entries of an op's output that one histogram task bins: whole columns, about this many.
constexpr Eigen::Index kHistogramEntriesPerTask = Eigen::Index{1} << 15;

// An op's act_histogram, over act.min .. act.max of its whole output: tasks of whole columns cut by
// the shape alone, each counting into its own slot. Integer counts sum exactly in any order, so the
// result does not depend on the threads, nor on when the histogram is taken.
template <class Scalar>
void fill_act_histogram(const Mat<Scalar>& y, ForwardStats& fs, ThreadPool& pool) {
  if (y.size() == 0 || fs.act.finite == 0) return;  // no finite entry: an empty histogram
  const Eigen::Index per_task = std::max<Eigen::Index>(1, kHistogramEntriesPerTask / y.rows());
  const std::int64_t tasks = tasks_for(y.cols(), per_task);
  const auto bins = static_cast<std::size_t>(kActHistogramBins);
  std::vector<std::int64_t> counts(static_cast<std::size_t>(tasks) * bins);  // (bins, tasks)
  pool.run(tasks, [&](std::int64_t k) {
    const Range columns = task_range(k, y.cols(), per_task);
    HistogramAccumulator acc(fs.act.min, fs.act.max, kActHistogramBins);
    for (Eigen::Index a = columns.begin; a < columns.begin + columns.size; ++a) {
      acc.add(y.col(a).data(), y.rows());
    }
    const std::vector<std::int64_t> c = acc.counts();
    std::copy(c.begin(), c.end(), counts.begin() + static_cast<std::ptrdiff_t>(k) * bins);
  });
  fs.act_histogram.assign(bins, 0);
  for (std::size_t k = 0; k < static_cast<std::size_t>(tasks); ++k) {
    for (std::size_t b = 0; b < bins; ++b) fs.act_histogram[b] += counts[k * bins + b];
  }
}

// Power-of-two rescaling keeps the stored gradient's rms within [2^-kRescaleBits, 2^kRescaleBits]
// without rounding anything: scaling by 2^e is exact for normal numbers.
constexpr int kRescaleBits = 16;

template <class Scalar>
Mat<Scalar> random_matrix(Eigen::Index rows, Eigen::Index cols, std::uint64_t key,
                          InputDistribution dist, double mean, double std, double low,
                          double high) {
  Eigen::MatrixXd m(rows, cols);
  const auto n = static_cast<std::uint64_t>(m.size());
  if (dist == InputDistribution::kNormal) {
    fill_normal(key, 0, n, m.data());
    m.array() = m.array() * std + mean;
  } else {
    fill_uniform(key, 0, n, low, high, m.data());
  }
  return m.cast<Scalar>();
}

// Whether the backward pass keeps phi'(h) of a layer; otherwise it recovers it from y (ReLU and
// the other piecewise-linear kinds) or does not need it (softmax's backward uses y).
bool keeps_slope(const ActivationSpec& a) {
  return a.kind != Activation::kSoftmax && !derivative_from_output(a);
}

bool has_activation(const OpSpec& op) {
  return op.kind == OpKind::kDense || op.kind == OpKind::kActivation;
}

const ActivationSpec& activation_of(const OpSpec& op) {
  return op.kind == OpKind::kDense ? op.dense.activation : op.activation;
}

// The dropout mask of op `index` keeps entry k (column-major) when uniform k >= p.
std::uint64_t dropout_key(std::uint64_t seed, std::size_t op) {
  return stream_key(seed, static_cast<std::uint64_t>(op) + 1, StreamPurpose::kDropout);
}

// y = x * keep / (1 - p) (or dx = g * keep / (1 - p)) on rows r of every column.
template <class Scalar>
void apply_dropout(std::uint64_t key, double p, Range r, const Mat<Scalar>& x, Mat<Scalar>& y) {
  const Scalar scale = static_cast<Scalar>(1.0 / (1.0 - p));
  const Eigen::Index n = x.rows();
  for (Eigen::Index a = 0; a < x.cols(); ++a) {
    for (Eigen::Index i = r.begin; i < r.begin + r.size; ++i) {
      const auto k = static_cast<std::uint64_t>(a * n + i);
      y(i, a) = uniform01(key, k) >= p ? x(i, a) * scale : Scalar(0);
    }
  }
}

// The statistics of a gradient, turned into magnitudes at exponent exp2: NaN (no finite value)
// when every entry is NaN or infinite, never a 0 that reads as a vanished gradient.
void fill_grad_stats(const GradPartial& g, std::int64_t exp2, BackwardStats& bs) {
  bs.grad_preact_rms = g.squares.rms(exp2);
  bs.nonfinite = g.squares.nonfinite;
}

// The norm of a parameter gradient's finite entries at exponent exp2, and the count of the others
// (NaN when none is finite). Eigen's norm where it is exact; squares summed scaled where they
// leave double's range or some entry is not finite.
void fill_param_norm(const Eigen::VectorXd& v, std::int64_t exp2, Magnitude& norm,
                     std::int64_t& nonfinite) {
  const double plain = v.norm();
  if (std::isfinite(plain) && (plain > 1e-150 || (v.array() == 0.0).all())) {
    nonfinite = 0;
    norm = magnitude_from_scaled(plain, exp2);
    return;
  }
  SquareSum squares;
  squares.add(v.data(), v.size());
  nonfinite = squares.nonfinite;
  norm = squares.finite == 0 ? Magnitude{kNaN, kNaN} : squares.root(exp2);
}

// Scales g (stored / 2^exp2) so that its rms is near 1, when it has drifted far; exact. Returns
// the power of two g was divided by (0 when left alone).
template <class Scalar>
int rescale(Mat<Scalar>& g, const GradPartial& stats, std::int64_t& exp2, ThreadPool& pool) {
  if (stats.squares.finite == 0) return 0;
  const double ms = stats.squares.sum / static_cast<double>(stats.squares.finite);
  if (!(ms > 0.0) || !std::isfinite(ms)) return 0;
  const int e = std::ilogb(ms) / 2 + stats.squares.exp;
  if (e <= kRescaleBits && e >= -kRescaleBits) return 0;
  const Scalar factor = std::ldexp(Scalar(1), -e);
  pool.run(row_tasks(g.rows()), [&](std::int64_t t) {
    const Range r = task_rows(t, g.rows());
    g.middleRows(r.begin, r.size) *= factor;
  });
  exp2 += e;
  return e;
}

// Brings a (stored / 2^ea) and b (stored / 2^eb) to a common exponent and returns a + b in a.
template <class Scalar>
void add_scaled(Mat<Scalar>& a, std::int64_t& ea, const Mat<Scalar>& b, std::int64_t eb) {
  if (ea >= eb) {
    a += b * std::ldexp(Scalar(1), static_cast<int>(std::max<std::int64_t>(eb - ea, -2000)));
  } else {
    a = a * std::ldexp(Scalar(1), static_cast<int>(std::max<std::int64_t>(ea - eb, -2000))) + b;
    ea = eb;
  }
}

template <class Scalar>
Eigen::MatrixXd unscaled(const Mat<Scalar>& g, std::int64_t exp2) {
  return g.template cast<double>() * std::ldexp(1.0, static_cast<int>(exp2));
}

}  // namespace

// Weights are drawn, and their squares summed, 32 columns a task: the partial sums of the blocks
// merge in block order, so the norm is the same whoever draws the blocks, and is summed while the
// block is still in cache.
constexpr int kDrawColumns = 32;

template <class Scalar>
SquareSum column_block_squares(const Mat<Scalar>& w, Range c) {
  SquareSum squares;
  for (Eigen::Index j = c.begin; j < c.begin + c.size; ++j) {
    squares.add(w.col(j).data(), w.rows());
  }
  return squares;
}

template <class Scalar>
double weight_frobenius(const Mat<Scalar>& w) {
  SquareSum total;
  for (std::int64_t t = 0; t < tasks_for(w.cols(), kDrawColumns); ++t) {
    total.merge(column_block_squares(w, task_range(t, w.cols(), kDrawColumns)));
  }
  return std::sqrt(total.value());
}

template <class Scalar>
double generate_weight(const Network<Scalar>& net, std::size_t l, Mat<Scalar>& w,
                       ThreadPool& pool) {
  const OpSpec& op = net.ops[l];
  const auto index = static_cast<std::uint64_t>(l + 1);  // ops are numbered from 1
  const int fan_in = l == 0 ? net.input_width : net.widths[l - 1];
  if (op.kind == OpKind::kResidualEnd && op.residual.projection) {
    const auto begin = static_cast<std::size_t>(net.partner[l]);
    const int skip_width = begin == 0 ? net.input_width : net.widths[begin - 1];
    Eigen::MatrixXd p(net.widths[l], skip_width);
    init_weights(op.residual.projection_init,
                 stream_key(net.seed, index, StreamPurpose::kProjection), p);
    w = p.cast<Scalar>();
    return weight_frobenius(w);
  }
  if (op.kind != OpKind::kDense) {
    w.resize(0, 0);
    return 0.0;
  }
  const LayerSpec& layer = op.dense;
  const std::uint64_t key = stream_key(net.seed, index, StreamPurpose::kWeights);
  if (!init_is_elementwise(layer.init.kind)) {
    // Orthogonal: a QR of the whole matrix, in double.
    Eigen::MatrixXd d(layer.width, fan_in);
    init_weights(layer.init, key, d);
    w = d.cast<Scalar>();
    return weight_frobenius(w);
  }
  // Entry (i, j) is number i + j * rows of its stream, so blocks of columns drawn by separate
  // tasks are the values a single draw makes. Drawn in double and rounded once.
  w.resize(layer.width, fan_in);
  const std::int64_t tasks = tasks_for(fan_in, kDrawColumns);
  std::vector<SquareSum> parts(static_cast<std::size_t>(tasks));
  pool.run(tasks, [&](std::int64_t t) {
    const Range c = task_range(t, fan_in, kDrawColumns);
    const auto first = static_cast<int>(c.begin);
    const auto n = static_cast<int>(c.size);
    if constexpr (std::is_same_v<Scalar, double>) {
      init_weight_columns(layer.init, key, layer.width, fan_in, first, n,
                          w.data() + c.begin * w.rows());
    } else {
      Eigen::MatrixXd block(layer.width, n);  // (width, columns of this task)
      init_weight_columns(layer.init, key, layer.width, fan_in, first, n, block.data());
      w.middleCols(c.begin, c.size) = block.template cast<Scalar>();
    }
    parts[static_cast<std::size_t>(t)] = column_block_squares(w, c);
  });
  SquareSum total;
  for (const SquareSum& p : parts) total.merge(p);
  return std::sqrt(total.value());
}

template <class Scalar>
const Mat<Scalar>& weight_of(const Network<Scalar>& net, std::size_t l, Mat<Scalar>& scratch,
                             ThreadPool& pool) {
  if (!net.regenerate || net.weight[l].size() > 0) return net.weight[l];
  generate_weight(net, l, scratch, pool);
  return scratch;
}

template <class Scalar>
Network<Scalar> build_network(const RunSpec& spec, ThreadPool& pool, WeightStorage storage) {
  Network<Scalar> net;
  net.input_width = spec.input.width;
  net.seed = spec.seed;
  net.regenerate = storage == WeightStorage::kRegenerated;
  net.ops = expand_ops(spec);
  net.widths = op_widths(spec, net.ops);
  const std::size_t count = net.ops.size();
  net.partner.assign(count, -1);
  std::vector<std::size_t> open;
  for (std::size_t i = 0; i < count; ++i) {
    if (net.ops[i].kind == OpKind::kResidualBegin) open.push_back(i);
    if (net.ops[i].kind == OpKind::kResidualEnd) {
      net.partner[i] = static_cast<int>(open.back());
      net.partner[open.back()] = static_cast<int>(i);
      open.pop_back();
    }
  }
  net.weight.resize(count);
  net.bias.resize(count);
  net.weight_norm.assign(count, 0.0);
  // Biases are small: always stored.
  pool.run(static_cast<std::int64_t>(count), [&](std::int64_t k) {
    const auto l = static_cast<std::size_t>(k);
    if (net.ops[l].kind != OpKind::kDense) return;
    const LayerSpec& layer = net.ops[l].dense;
    const int fan_in = l == 0 ? spec.input.width : net.widths[l - 1];
    Eigen::VectorXd b(layer.width);
    init_bias(layer.bias, fan_in,
              stream_key(spec.seed, static_cast<std::uint64_t>(k + 1), StreamPurpose::kBias), b);
    net.bias[l] = b.cast<Scalar>();
  });
  if (net.regenerate) return net;
  // One op a task: a one-thread pool inside keeps each draw sequential.
  pool.run(static_cast<std::int64_t>(count), [&](std::int64_t k) {
    const auto l = static_cast<std::size_t>(k);
    ThreadPool serial(1);
    const double norm = generate_weight(net, l, net.weight[l], serial);
    if (net.ops[l].kind == OpKind::kDense) net.weight_norm[l] = norm;
  });
  return net;
}

template <class Scalar>
Mat<Scalar> make_input(const RunSpec& spec) {
  const InputSpec& in = spec.input;
  return random_matrix<Scalar>(in.width, in.batch, stream_key(spec.seed, 0, StreamPurpose::kInput),
                               in.distribution, in.mean, in.std, in.low, in.high);
}

template <class Scalar>
Mat<Scalar> make_probe(const RunSpec& spec, int output_width) {
  return random_matrix<Scalar>(output_width, spec.input.batch,
                               stream_key(spec.seed, 0, StreamPurpose::kProbe),
                               InputDistribution::kNormal, 0.0, 1.0, 0.0, 0.0);
}

namespace {

void release(Eigen::VectorXd& v) { Eigen::VectorXd().swap(v); }
template <class Scalar>
void release(Mat<Scalar>& m) {
  Mat<Scalar>().swap(m);
}

// The norm of a dense layer's weight gradient: the squares of dW's finite entries in units of
// 2^(2 (exp2 + shift)) (exp2: the gradient's), the count of the others, the first Adam step's
// squares, and the correlation of the layer's input when it came from its Gram.
struct WeightGradient {
  SquareSum squares;
  std::int64_t shift = 0;
  double adam = 0.0;
  double correlation = 0.0;
  bool has_correlation = false;
};

// One forward and backward pass under a memory plan. The forward pass gathers every forward
// statistic and keeps what the plan says; the backward pass walks the segments from the last,
// computing each one again from its checkpoint when the forward pass did not keep it. Every value
// is computed by the same code on the same inputs either way, so the plan changes no bit.
template <class Scalar>
class PassRunner {
 public:
  PassRunner(const Network<Scalar>& net, const Mat<Scalar>& input, const Mat<Scalar>& probe,
             const PassOptions& options, ThreadPool& pool)
      : net_(net),
        input_(input),
        probe_(probe),
        options_(options),
        pool_(pool),
        count_(net.ops.size()),
        batch_(input.cols()) {}

  PassResult run() {
    result_.forward.resize(count_);
    result_.backward.resize(count_);
    out_.resize(count_);
    slope_.resize(count_);
    rstd_.resize(count_);
    wcache_.resize(count_);
    weight_norm_ = net_.weight_norm;
    plan();
    plan_progress();
    forward();
    backward();
    return std::move(result_);
  }

 private:
  // ---- Progress: each step's weight, in multiply-adds (a dense op's product, n_in x n_out per
  // example, once forward, once more when recomputed, twice backward; any other op its entries).
  void plan_progress() {
    if (!options_.on_progress) return;
    step_work_.assign(count_, 0.0);
    double total = 0.0;
    for (std::size_t l = 0; l < count_; ++l) {
      if (net_.ops[l].kind == OpKind::kResidualBegin) continue;
      const std::size_t p = producer_[l];
      const double n_in =
          p == count_ ? static_cast<double>(input_.rows()) : static_cast<double>(net_.widths[p]);
      const double n_out = static_cast<double>(net_.widths[l]);
      const double per_example = net_.ops[l].kind == OpKind::kDense ? n_in * n_out : n_out;
      step_work_[l] = per_example * static_cast<double>(batch_);
      const double recomputed = checkpointed_ && l < cached_from_ ? 1.0 : 0.0;
      total += step_work_[l] * (3.0 + recomputed);
    }
    progress_scale_ = total > 0 ? 1.0 / total : 0.0;
  }

  // Op l's step of weight `times` x its work is done.
  void progressed(std::size_t l, double times) {
    if (!options_.on_progress) return;
    work_done_ += times * step_work_[l];
    options_.on_progress(std::min(1.0, work_done_ * progress_scale_));
  }

  // ---- The plan: who reads what, segment starts, what the forward pass keeps.
  void plan() {
    producer_.assign(count_, count_);
    skip_producer_.assign(count_, count_);
    for (std::size_t i = 0; i < count_; ++i) {
      std::size_t j = i;
      while (j > 0 && net_.ops[j - 1].kind == OpKind::kResidualBegin) --j;
      producer_[i] = j == 0 ? count_ : j - 1;
    }
    last_use_.assign(count_ + 1, 0);
    for (std::size_t i = 0; i < count_; ++i) {
      if (net_.ops[i].kind == OpKind::kResidualBegin) continue;
      last_use_[producer_[i]] = std::max(last_use_[producer_[i]], i);
      if (net_.ops[i].kind == OpKind::kResidualEnd) {
        skip_producer_[i] = producer_[static_cast<std::size_t>(net_.partner[i])];
        last_use_[skip_producer_[i]] = std::max(last_use_[skip_producer_[i]], i);
      }
    }
    // The correlation of an op's output comes from the Gram matrix of the first dense op that
    // reads it in the backward pass, when that op forms one; else it is computed in the forward.
    gram_owner_.assign(count_ + 1, count_);
    const bool adam = options_.optimizer.kind == OptimizerKind::kAdam;
    for (std::size_t l = count_; l-- > 0;) {
      if (net_.ops[l].kind != OpKind::kDense) continue;
      const std::size_t p = producer_[l];
      const Eigen::Index n_in = p == count_ ? input_.rows() : net_.widths[p];
      const bool gram = !adam && use_gram_for_weight_norm(batch_, n_in, net_.widths[l]);
      if (gram && p < count_ && gram_owner_[p] == count_) gram_owner_[p] = l;
    }
    // Segments of `every` ops from the start; ops from `cached_from_` on are kept from the
    // forward pass (by default the last segment).
    const auto every = static_cast<std::size_t>(std::max(0, options_.checkpoint_every));
    checkpointed_ = every > 0 && every < count_;
    starts_.assign(1, 0);
    cached_from_ = 0;
    if (checkpointed_) {
      const std::size_t last = (count_ - 1) / every * every;
      cached_from_ = options_.kept_from >= 0
                         ? std::min(last, static_cast<std::size_t>(options_.kept_from))
                         : last;
      for (std::size_t b = every; b < cached_from_; b += every) starts_.push_back(b);
      if (cached_from_ > 0) starts_.push_back(cached_from_);
      checkpointed_ = cached_from_ > 0;
    }
    retained_.assign(count_ + 1, 0);
    for (std::size_t s = 1; s < starts_.size(); ++s) retained_[producer_[starts_[s]]] = 1;
    for (std::size_t e = 0; e < count_; ++e) {
      if (net_.ops[e].kind != OpKind::kResidualEnd) continue;
      // A skip open across a segment start is carried by that start's checkpoint.
      const auto begin = static_cast<std::size_t>(net_.partner[e]);
      const auto next = std::upper_bound(starts_.begin(), starts_.end(), begin);
      if (next != starts_.end() && *next <= e) retained_[skip_producer_[e]] = 1;
    }
  }

  const Mat<Scalar>& value(std::size_t p) const { return p == count_ ? input_ : out_[p]; }

  bool has_weights(std::size_t l) const {
    const OpSpec& op = net_.ops[l];
    return op.kind == OpKind::kDense || (op.kind == OpKind::kResidualEnd && op.residual.projection);
  }

  // The weights of op l for a forward computation: stored, or drawn (into the segment's cache
  // when its backward pass will need them, else into scratch). The first draw gives the norm.
  const Mat<Scalar>& forward_weight(std::size_t l, bool cache) {
    if (!has_weights(l) || !net_.regenerate || net_.weight[l].size() > 0) return net_.weight[l];
    Mat<Scalar>& w = cache ? wcache_[l] : scratch_weight_;
    const double norm = generate_weight(net_, l, w, pool_);
    if (net_.ops[l].kind == OpKind::kDense) weight_norm_[l] = norm;
    return w;
  }

  const Mat<Scalar>& backward_weight(std::size_t l) {
    if (wcache_[l].size() > 0) return wcache_[l];
    return weight_of(net_, l, scratch_weight_, pool_);
  }

  // ---- Forward.
  void forward() {
    // Drawn weights are used once here; the backward pass draws them again (kept ops: one at a
    // time; recomputed segments: once for the recomputation and the backward together).
    range_.assign(count_ + 1, ValueRange{});
    {
      MomentAccumulator in;
      accumulate_moments<Scalar>(input_, in);
      result_.input = in.finish();
      range_[count_] = range_of(result_.input);
    }
    for (std::size_t l = 0; l < count_; ++l) {
      if (net_.ops[l].kind == OpKind::kResidualBegin) continue;
      const bool keep = l >= cached_from_;
      const Mat<Scalar>& w = forward_weight(l, false);
      ForwardStats& fs = result_.forward[l];
      compute_op(l, w, keep, &fs);
      range_[l] = range_of(fs.act);
      fill_act_histogram(out_[l], fs, pool_);
      if (gram_owner_[l] == count_) fs.correlation = mean_pair_cosine(out_[l]);
      progressed(l, 1.0);
      // Values no later op reads, and that neither the backward pass nor a checkpoint needs.
      if (checkpointed_) {
        for (std::size_t p : {producer_[l], skip_producer_[l]}) {
          if (p < cached_from_ && last_use_[p] == l && !retained_[p]) release(out_[p]);
        }
      }
    }
  }

  // Computes op l's output into out_[l] (and, when `keep`, what its backward pass needs: phi'(h)
  // and the norms' 1/std), gathering its statistics into fs unless fs is null.
  void compute_op(std::size_t l, const Mat<Scalar>& w, bool keep, ForwardStats* fs) {
    const OpSpec& op = net_.ops[l];
    const Mat<Scalar>& x = value(producer_[l]);  // (n_in, batch)
    const Eigen::Index n = net_.widths[l];
    const Eigen::Index batch = batch_;
    out_[l].resize(n, batch);
    Mat<Scalar>& y = out_[l];
    const bool stats = fs != nullptr;

    if (has_activation(op)) {
      const ActivationSpec& act = activation_of(op);
      const bool dense = op.kind == OpKind::kDense;
      const bool keep_slope = keep && keeps_slope(act);
      if (keep_slope) slope_[l].resize(n, batch);
      const double saturated_below = options_.saturation_threshold * max_slope(act);
      const bool softmax = act.kind == Activation::kSoftmax;
      const std::int64_t tasks = row_tasks(n);
      std::vector<ForwardPartial> parts(static_cast<std::size_t>(stats ? tasks : 0));
      std::vector<unsigned char> alive(static_cast<std::size_t>(stats ? n : 0), 0);
      std::vector<unsigned char> unsaturated(alive.size(), 0);
      Mat<Scalar> preact;  // (n, batch), softmax only: it needs whole columns
      if (softmax) preact.resize(n, batch);

      pool_.run(tasks, [&](std::int64_t t) {
        const Range r = task_rows(t, n);
        Mat<Scalar> h(r.size, batch);  // (rows of this task, batch)
        if (dense) {
          h.noalias() = w.middleRows(r.begin, r.size) * x;
          h.colwise() += net_.bias[l].segment(r.begin, r.size);
        } else {
          h = x.middleRows(r.begin, r.size);
        }
        if (stats) accumulate_moments<Scalar>(h, parts[static_cast<std::size_t>(t)].preact);
        if (softmax) {
          preact.middleRows(r.begin, r.size) = h;
          return;
        }
        Mat<Scalar> scratch;  // d of this block when the op does not keep it
        if (!keep_slope) scratch.resize(r.size, batch);
        auto y_block = y.middleRows(r.begin, r.size);
        Eigen::Ref<Mat<Scalar>> d_block =
            keep_slope ? Eigen::Ref<Mat<Scalar>>(slope_[l].middleRows(r.begin, r.size))
                       : Eigen::Ref<Mat<Scalar>>(scratch);
        activation_forward<Scalar>(act, h, y_block, d_block);
        if (stats) {
          accumulate_activation_block<Scalar>(y_block, d_block, saturated_below,
                                              parts[static_cast<std::size_t>(t)],
                                              alive.data() + r.begin, unsaturated.data() + r.begin);
        }
      });
      if (softmax) {
        // Softmax couples the units of a column; its statistics are cheap next to the product.
        Mat<Scalar> d(n, batch);  // the Jacobian's diagonal, for the statistics only
        activation_forward<Scalar>(act, preact, y, d);
        if (stats) {
          accumulate_activation_block<Scalar>(y, d, saturated_below, parts[0], alive.data(),
                                              unsaturated.data());
        }
      }
      if (!stats) return;
      ForwardPartial total;
      for (const ForwardPartial& p : parts) {
        total.preact.merge(p.preact);
        total.act.merge(p.act);
        total.zeros += p.zeros;
        total.saturated += p.saturated;
      }
      fs->preact = total.preact.finish();
      fs->act = total.act.finish();
      const double entries = static_cast<double>(n) * static_cast<double>(batch);
      fs->zero_fraction = static_cast<double>(total.zeros) / entries;
      const bool saturation = saturates(act);
      fs->saturated_fraction = saturation ? static_cast<double>(total.saturated) / entries : kNaN;
      for (Eigen::Index i = 0; i < n; ++i) {
        fs->dead_units += alive[static_cast<std::size_t>(i)] == 0;
        if (saturation) fs->saturated_units += unsaturated[static_cast<std::size_t>(i)] == 0;
      }
      fs->dead_fraction = static_cast<double>(fs->dead_units) / static_cast<double>(n);
      fs->nonfinite = fs->preact.nonfinite + fs->act.nonfinite;
      return;
    }

    // Ops without a derivative statistic: norm, dropout, residual end. The norms' 1/std is
    // small, but kept only where the backward pass will read it.
    Eigen::VectorXd rstd_scratch;
    Eigen::VectorXd& rstd = keep ? rstd_[l] : rstd_scratch;
    std::vector<ForwardPartial> parts;
    if (op.kind == OpKind::kNorm && op.norm.kind != NormKind::kBatchNorm) {
      // Per-example norms reduce over the units of a column: tasks of whole columns.
      rstd.resize(batch);
      const std::int64_t tasks = tasks_for(batch, kColumnsPerTask);
      parts.resize(static_cast<std::size_t>(tasks));
      pool_.run(tasks, [&](std::int64_t t) {
        const Range c = task_range(t, batch, kColumnsPerTask);
        ForwardPartial& part = parts[static_cast<std::size_t>(t)];
        if (stats) accumulate_moments<Scalar>(x.middleCols(c.begin, c.size), part.preact);
        norm_forward<Scalar>(op.norm, x.middleCols(c.begin, c.size), y.middleCols(c.begin, c.size),
                             rstd.segment(c.begin, c.size));
        if (stats) accumulate_output_block<Scalar>(y.middleCols(c.begin, c.size), part);
      });
    } else {
      if (op.kind == OpKind::kNorm) rstd.resize(n);
      const std::int64_t tasks = row_tasks(n);
      parts.resize(static_cast<std::size_t>(tasks));
      const Mat<Scalar>* skip = nullptr;
      if (op.kind == OpKind::kResidualEnd) skip = &value(skip_producer_[l]);
      const Scalar scale = static_cast<Scalar>(op.residual.scale);
      pool_.run(tasks, [&](std::int64_t t) {
        const Range r = task_rows(t, n);
        ForwardPartial& part = parts[static_cast<std::size_t>(t)];
        auto y_block = y.middleRows(r.begin, r.size);
        if (stats) accumulate_moments<Scalar>(x.middleRows(r.begin, r.size), part.preact);
        switch (op.kind) {
          case OpKind::kNorm:  // batch norm: per unit over the batch
            norm_forward<Scalar>(op.norm, x.middleRows(r.begin, r.size), y_block,
                                 rstd.segment(r.begin, r.size));
            break;
          case OpKind::kDropout:
            apply_dropout(dropout_key(options_.seed, l), op.dropout, r, x, y);
            break;
          case OpKind::kResidualEnd:
            // preact: the branch's output F(x); act: P skip + scale F(x).
            if (op.residual.projection) {
              y_block.noalias() = w.middleRows(r.begin, r.size) * (*skip);
            } else {
              y_block = skip->middleRows(r.begin, r.size);
            }
            y_block += scale * x.middleRows(r.begin, r.size);
            break;
          default:
            break;
        }
        if (stats) accumulate_output_block<Scalar>(y_block, part);
      });
    }
    if (!stats) return;
    ForwardPartial total;
    for (const ForwardPartial& p : parts) {
      total.preact.merge(p.preact);
      total.act.merge(p.act);
      total.zeros += p.zeros;
    }
    fs->preact = total.preact.finish();
    fs->act = total.act.finish();
    fs->zero_fraction =
        static_cast<double>(total.zeros) / (static_cast<double>(n) * static_cast<double>(batch));
    fs->saturated_fraction = kNaN;  // no activation: nothing to saturate
    fs->nonfinite = fs->preact.nonfinite + fs->act.nonfinite;
  }

  // Computes ops [begin, end) again from their checkpoint, keeping what their backward needs.
  void recompute(std::size_t begin, std::size_t end) {
    for (std::size_t l = begin; l < end; ++l) {
      if (net_.ops[l].kind == OpKind::kResidualBegin) continue;
      compute_op(l, forward_weight(l, true), true, nullptr);
      progressed(l, 1.0);
    }
  }

  // ---- Backward.
  void backward() {
    // The cotangent at the output: the probe, or the loss's gradient.
    const Mat<Scalar>& output = out_[count_ - 1];
    if (options_.loss.kind == LossKind::kProbe) {
      g_ = probe_;
      result_.loss =
          (probe_.template cast<double>().array() * output.template cast<double>().array()).sum();
    } else {
      g_.resize(output.rows(), batch_);
      result_.loss = loss_forward_backward<Scalar>(options_.loss, output, *options_.targets, g_);
    }
    {
      GradPartial gs;
      accumulate_gradient_block<Scalar>(g_, gs);
      result_.output_grad_rms = gs.squares.rms(0);
      rescale(g_, gs, exp2_, pool_);
    }
    if (options_.keep_gradients) {
      result_.gradients.dweight.resize(count_);
      result_.gradients.dbias.resize(count_);
      result_.gradients.dpreact.resize(count_);
    }
    for (std::size_t s = starts_.size(); s-- > 0;) {
      const std::size_t begin = starts_[s];
      const std::size_t end = s + 1 < starts_.size() ? starts_[s + 1] : count_;
      if (begin < cached_from_) recompute(begin, end);
      for (std::size_t l = end; l-- > begin;) {
        backward_op(l);
        if (net_.ops[l].kind != OpKind::kResidualBegin) progressed(l, 2.0);
        // Nothing before op l reads its output or its weights in the backward pass.
        release(out_[l]);
        release(slope_[l]);
        release(rstd_[l]);
        release(wcache_[l]);
      }
    }
    if (options_.keep_gradients) result_.gradients.dinput = unscaled(g_, exp2_);

    // Gains: each reported op's gradient over the next reported op's (the last: over dL/dy).
    Magnitude above = result_.output_grad_rms;
    for (std::size_t l = count_; l-- > 0;) {
      if (net_.ops[l].kind == OpKind::kResidualBegin) continue;
      BackwardStats& bs = result_.backward[l];
      bs.gain = magnitude_ratio(bs.grad_preact_rms, above);
      above = bs.grad_preact_rms;
    }
  }

  // Turns g_ = dL/d(output of op l) into dL/d(input of op l), gathering op l's statistics.
  void backward_op(std::size_t l) {
    const OpSpec& op = net_.ops[l];
    const Eigen::Index batch = batch_;
    BackwardStats& bs = result_.backward[l];
    bs.has_weights = op.kind == OpKind::kDense || op.kind == OpKind::kNorm;
    const Eigen::Index n_out = g_.rows();

    if (op.kind == OpKind::kResidualBegin) {
      // The skip path's gradient joins the branch's.
      add_scaled(g_, exp2_, skips_.back().first, skips_.back().second);
      skips_.pop_back();
      GradPartial gs;
      accumulate_gradient_block<Scalar>(g_, gs);
      // A norm, activation or dropout op reports dL/d(its input); when it opens the branch, its
      // input is the block's input x, and dL/dx is the total only once every skip starting at x
      // (the outermost begin of a run of them is the last) has added its share.
      if (l == 0 || net_.ops[l - 1].kind != OpKind::kResidualBegin) {
        std::size_t o = l + 1;
        while (o < count_ && net_.ops[o].kind == OpKind::kResidualBegin) ++o;
        const OpKind k = o < count_ ? net_.ops[o].kind : OpKind::kDense;
        if (k == OpKind::kNorm || k == OpKind::kActivation || k == OpKind::kDropout) {
          fill_grad_stats(gs, exp2_, result_.backward[o]);
          if (options_.keep_gradients) result_.gradients.dpreact[o] = unscaled(g_, exp2_);
        }
      }
      rescale(g_, gs, exp2_, pool_);
      return;
    }

    const std::size_t producer = producer_[l];
    const Mat<Scalar>& x = value(producer);  // the op's input, (n_in, batch)
    const Eigen::Index n_in = x.rows();
    Mat<Scalar> below(n_in, batch);  // dL/d(input) / 2^exp2
    GradPartial below_stats;
    Mat<Scalar>& g = g_;
    std::int64_t& exp2 = exp2_;

    if (has_activation(op)) {
      // delta = dL/dh from g = dL/dy, in place.
      const ActivationSpec& act = activation_of(op);
      const Mat<Scalar>& y = out_[l];
      std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_out)));
      if (act.kind == Activation::kSoftmax) {
        activation_backward<Scalar>(act, y, y, g, g);  // d unused: y is enough
      }
      const bool nan_output = result_.forward[l].act.nonfinite > 0;
      pool_.run(row_tasks(n_out), [&](std::int64_t t) {
        const Range r = task_rows(t, n_out);
        auto gr = g.middleRows(r.begin, r.size);
        if (act.kind == Activation::kSoftmax) {
          // done above: softmax couples the units of a column
        } else if (keeps_slope(act)) {
          activation_backward<Scalar>(act, y.middleRows(r.begin, r.size),
                                      slope_[l].middleRows(r.begin, r.size), gr, gr);
        } else {
          Mat<Scalar> d(r.size, batch);  // phi'(h) recovered from y for this block
          activation_derivative_from_output<Scalar>(act, y.middleRows(r.begin, r.size), d);
          activation_backward<Scalar>(act, y.middleRows(r.begin, r.size), d, gr, gr);
        }
        if (nan_output) {
          // phi' at a NaN is undefined: the gradient there is NaN, not the 0 that relu's
          // y > 0 test (and PyTorch's) would give, which would read as a vanished gradient.
          gr = y.middleRows(r.begin, r.size).array().isNaN().select(Scalar(kNaN), gr);
        }
        accumulate_gradient_block<Scalar>(gr, parts[static_cast<std::size_t>(t)]);
      });
      const GradPartial delta = merge_parts(parts);
      fill_grad_stats(delta, exp2, bs);
      if (options_.keep_gradients) result_.gradients.dpreact[l] = unscaled(g, exp2);

      if (op.kind == OpKind::kActivation) {
        below.swap(g);
        below_stats = delta;
      } else {
        dense_backward(l, x, delta, bs, below, below_stats);
      }
    } else if (op.kind == OpKind::kNorm) {
      // dgamma_i = sum_a g_ia y_ia, dbeta_i = sum_a g_ia; then dL/dx.
      const Mat<Scalar>& y = out_[l];
      const Eigen::VectorXd& rstd = rstd_[l];
      Eigen::VectorXd dgamma = Eigen::VectorXd::Zero(n_out);
      Eigen::VectorXd dbeta = Eigen::VectorXd::Zero(n_out);
      if (op.norm.kind == NormKind::kBatchNorm) {
        std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_out)));
        pool_.run(row_tasks(n_out), [&](std::int64_t t) {
          const Range r = task_rows(t, n_out);
          norm_param_grad_sums<Scalar>(
              op.norm, y.middleRows(r.begin, r.size), g.middleRows(r.begin, r.size),
              dgamma.segment(r.begin, r.size), dbeta.segment(r.begin, r.size));
          auto block = below.middleRows(r.begin, r.size);
          norm_backward<Scalar>(op.norm, y.middleRows(r.begin, r.size),
                                rstd.segment(r.begin, r.size), g.middleRows(r.begin, r.size),
                                block);
          accumulate_gradient_block<Scalar>(block, parts[static_cast<std::size_t>(t)]);
        });
        below_stats = merge_parts(parts);
      } else {
        const std::int64_t tasks = tasks_for(batch, kColumnsPerTask);
        std::vector<Eigen::VectorXd> gammas(static_cast<std::size_t>(tasks),
                                            Eigen::VectorXd::Zero(n_out));
        std::vector<Eigen::VectorXd> betas(static_cast<std::size_t>(tasks),
                                           Eigen::VectorXd::Zero(n_out));
        pool_.run(tasks, [&](std::int64_t t) {
          const Range c = task_range(t, batch, kColumnsPerTask);
          const auto k = static_cast<std::size_t>(t);
          norm_param_grad_sums<Scalar>(op.norm, y.middleCols(c.begin, c.size),
                                       g.middleCols(c.begin, c.size), gammas[k], betas[k]);
          norm_backward<Scalar>(op.norm, y.middleCols(c.begin, c.size),
                                rstd.segment(c.begin, c.size), g.middleCols(c.begin, c.size),
                                below.middleCols(c.begin, c.size));
        });
        for (std::size_t k = 0; k < gammas.size(); ++k) {
          dgamma += gammas[k];
          dbeta += betas[k];
        }
        std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_in)));
        pool_.run(row_tasks(n_in), [&](std::int64_t t) {
          const Range r = task_rows(t, n_in);
          accumulate_gradient_block<Scalar>(below.middleRows(r.begin, r.size),
                                            parts[static_cast<std::size_t>(t)]);
        });
        below_stats = merge_parts(parts);
      }
      fill_param_norm(dgamma, exp2, bs.grad_weight_norm, bs.grad_weight_nonfinite);
      fill_param_norm(dbeta, exp2, bs.grad_bias_norm, bs.grad_bias_nonfinite);
      bs.weight_norm = std::sqrt(static_cast<double>(n_out));  // ||gamma|| with gamma = 1
      bs.grad_weight_to_weight =
          magnitude_ratio(bs.grad_weight_norm, magnitude_from_scaled(bs.weight_norm, 0));
      fill_grad_stats(below_stats, exp2, bs);
      if (options_.keep_gradients) result_.gradients.dpreact[l] = unscaled(below, exp2);
    } else if (op.kind == OpKind::kDropout) {
      std::vector<GradPartial> parts(static_cast<std::size_t>(row_tasks(n_in)));
      pool_.run(row_tasks(n_in), [&](std::int64_t t) {
        const Range r = task_rows(t, n_in);
        apply_dropout(dropout_key(options_.seed, l), op.dropout, r, g, below);
        accumulate_gradient_block<Scalar>(below.middleRows(r.begin, r.size),
                                          parts[static_cast<std::size_t>(t)]);
      });
      below_stats = merge_parts(parts);
      fill_grad_stats(below_stats, exp2, bs);
      if (options_.keep_gradients) result_.gradients.dpreact[l] = unscaled(below, exp2);
    } else if (op.kind == OpKind::kResidualEnd) {
      // y = P skip + scale F: the branch gets scale * g, the skip path P^T g (kept for later).
      Mat<Scalar> skip_grad;
      if (op.residual.projection) {
        skip_grad.noalias() = backward_weight(l).transpose() * g;
      } else {
        skip_grad = g;
      }
      skips_.emplace_back(std::move(skip_grad), exp2);
      below = static_cast<Scalar>(op.residual.scale) * g;
      std::vector<GradPartial> parts(1);
      accumulate_gradient_block<Scalar>(below, parts[0]);
      below_stats = parts[0];
      fill_grad_stats(below_stats, exp2, bs);
      if (options_.keep_gradients) result_.gradients.dpreact[l] = unscaled(below, exp2);
    }

    g = std::move(below);
    rescale(g, below_stats, exp2, pool_);
  }

  // Dense: from g_ = delta = dL/dh / 2^exp2_, the bias and weight gradients' norms, the first
  // optimizer step, and dL/dx = W^T delta into `below`.
  void dense_backward(std::size_t l, const Mat<Scalar>& x, const GradPartial& delta,
                      BackwardStats& bs, Mat<Scalar>& below, GradPartial& below_stats) {
    Mat<Scalar>& g = g_;
    const Eigen::Index batch = batch_;
    const Eigen::Index n_out = g.rows();
    const Eigen::Index n_in = x.rows();
    const bool adam = options_.optimizer.kind == OptimizerKind::kAdam;
    bs.grad_bias_norm = delta.bias_nonfinite == n_out
                            ? Magnitude{kNaN, kNaN}
                            : magnitude_from_scaled(std::sqrt(delta.bias_squares), exp2_);
    bs.grad_bias_nonfinite = delta.bias_nonfinite;
    // A delta far from rms 1 (behind a saturated layer, say) is brought back near it first, so
    // that neither its Gram nor dW underflows; exact, and nothing to do in the ordinary range.
    const int shifted = rescale(g, delta, exp2_, pool_);
    const double g_squares = std::ldexp(delta.squares.sum, 2 * (delta.squares.exp - shifted));
    const std::int64_t exp2 = exp2_;
    const Mat<Scalar>& w = backward_weight(l);
    const std::size_t producer = producer_[l];
    const ValueRange& xr = range_[producer];
    const bool gram = !adam && use_gram_for_weight_norm(batch, n_in, n_out);
    bool plain = xr.nonfinite == 0 && delta.squares.nonfinite == 0 &&
                 plain_weight_grad_range<Scalar>(xr.largest);
    const double eps = options_.optimizer.eps;
    const auto eps_at = [&](std::int64_t e) {
      return std::ldexp(eps, static_cast<int>(std::clamp<std::int64_t>(-e, -4000, 4000)));
    };
    Mat<Scalar> gram_x, gram_g;
    const std::int64_t dw_tasks = !plain ? 0 : (gram ? 2 : row_tasks(n_out));
    std::vector<SquareSum> dw_parts(static_cast<std::size_t>(gram ? 0 : dw_tasks));
    std::vector<double> adam_parts(dw_parts.size(), 0.0);
    // dL/dx of the first layer is needed only by the tests.
    const std::int64_t below_tasks = l > 0 || options_.keep_gradients ? row_tasks(n_in) : 0;
    std::vector<GradPartial> below_parts(static_cast<std::size_t>(below_tasks));
    pool_.run(dw_tasks + below_tasks, [&](std::int64_t t) {
      if (t < dw_tasks) {
        if (gram) {
          if (t == 0) gram_lower(x, gram_x);
          if (t == 1) gram_lower(g, gram_g);
          return;
        }
        const Range r = task_rows(t, n_out);
        Mat<Scalar> dw(r.size, n_in);  // rows of dL/dW / 2^exp2
        dw.noalias() = g.middleRows(r.begin, r.size) * x.transpose();
        SquareSum& sq = dw_parts[static_cast<std::size_t>(t)];
        for (Eigen::Index j = 0; j < n_in; ++j) sq.add(dw.col(j).data(), r.size);
        if (adam) {
          // First Adam step: m-hat = g, v-hat = g^2, so the step is lr * g / (|g| + eps).
          const double eps_scaled = eps_at(exp2);
          double a = 0.0;
          for (Eigen::Index j = 0; j < n_in; ++j) {
            for (Eigen::Index i = 0; i < r.size; ++i) {
              const double v = static_cast<double>(dw(i, j));
              const double u = v / (std::abs(v) + eps_scaled);
              a += u * u;
            }
          }
          adam_parts[static_cast<std::size_t>(t)] = a;
        }
        return;
      }
      const std::int64_t bt = t - dw_tasks;
      const Range r = task_rows(bt, n_in);
      auto block = below.middleRows(r.begin, r.size);
      block.noalias() = w.middleCols(r.begin, r.size).transpose() * g;
      accumulate_gradient_block<Scalar>(block, below_parts[static_cast<std::size_t>(bt)]);
    });
    below_stats = merge_parts(below_parts);

    WeightGradient dw;
    if (plain) {
      dw.squares.finite = n_out * n_in;
      dw.shift = 0;
      if (gram) {
        dw.squares.sum = lower_symmetric_dot(gram_x, gram_g);
        plain = well_conditioned(dw.squares.sum, gram_x.diagonal().template cast<double>().sum(),
                                 gram_g.diagonal().template cast<double>().sum(), batch);
        if (plain && has_gram_correlation(l)) {
          dw.correlation = pair_cosine_from_gram(gram_x);
          dw.has_correlation = true;
        }
      } else {
        SquareSum total;
        for (const SquareSum& p : dw_parts) total.merge(p);
        for (double a : adam_parts) dw.adam += a;
        dw.squares.sum = total.sum;
        plain = total.nonfinite == 0 && total.exp == 0 &&
                well_conditioned(total.sum, xr.squares, g_squares, batch);
      }
    }
    if (!plain) dw = exact_weight_gradient(l, x, gram, adam, eps_at);
    if (dw.has_correlation) result_.forward[producer].correlation = dw.correlation;

    const std::int64_t at = exp2 + dw.shift;
    bs.grad_weight_norm = dw.squares.finite == 0 ? Magnitude{kNaN, kNaN} : dw.squares.root(at);
    bs.grad_weight_nonfinite = dw.squares.nonfinite;
    bs.weight_norm = weight_norm_[l];
    const Magnitude wn = magnitude_from_scaled(bs.weight_norm, 0);
    bs.grad_weight_to_weight = magnitude_ratio(bs.grad_weight_norm, wn);
    const double lr = options_.optimizer.learning_rate;
    if (options_.optimizer.kind == OptimizerKind::kSgd) {
      // First SGD step from zero momentum: the buffer is the gradient, the step lr * grad.
      bs.has_update = true;
      bs.update_to_weight = magnitude_ratio(
          dw.squares.finite == 0
              ? Magnitude{kNaN, kNaN}
              : magnitude_from_scaled(lr * std::sqrt(dw.squares.sum), at + dw.squares.exp),
          wn);
    } else if (adam) {
      bs.has_update = true;
      bs.update_to_weight = magnitude_ratio(magnitude_from_scaled(lr * std::sqrt(dw.adam), 0), wn);
    }
    if (options_.keep_gradients) {
      const Eigen::MatrixXd gd = unscaled(g, exp2);
      result_.gradients.dweight[l] = gd * x.template cast<double>().transpose();
      result_.gradients.dbias[l] = gd.rowwise().sum();
    }
  }

  bool has_gram_correlation(std::size_t l) const {
    const std::size_t p = producer_[l];
    return p < count_ && gram_owner_[p] == l;
  }

  // The weight gradient of op l in the exact form (see CentredInput): its entries' squares (in
  // units of 2^(2 (exp2_ + shift))), their count, and the first Adam step's squares.
  template <class EpsAt>
  WeightGradient exact_weight_gradient(std::size_t l, const Mat<Scalar>& x, bool gram, bool adam,
                                       const EpsAt& eps_at) {
    const Mat<Scalar>& g = g_;
    const Eigen::Index batch = batch_;
    const Eigen::Index n_out = g.rows();
    const Eigen::Index n_in = x.rows();
    const CentredInput<Scalar> c = centre_input(x, pool_);
    WeightGradient out;
    out.shift = c.shift;
    // b = g 1, the bias gradient / 2^exp2_. It multiplies the offset m, so it is summed with
    // compensation (Neumaier): in front of a norm it is itself a sum that cancels to about the
    // rounding of its terms, and a float64 network's plain sum would leave that rounding times m.
    Eigen::VectorXd b(n_out);
    pool_.run(row_tasks(n_out), [&](std::int64_t t) {
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
    const bool finite = b.allFinite() && range_[producer_[l]].nonfinite == 0;
    if (gram && finite) {
      Mat<Scalar> gram_x, gram_g;
      pool_.run(2, [&](std::int64_t t) {
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
      if (has_gram_correlation(l)) {
        // x^T x / 2^(2 shift) = xc^T xc + v 1^T + 1 v^T + ||m||^2, from the lower triangle.
        const Eigen::Index m = std::min<Eigen::Index>(batch, kCorrelationExamples);
        out.correlation = mean_cosine_of_gram(m, [&](Eigen::Index a, Eigen::Index bb) {
          const double xx = static_cast<double>(a >= bb ? gram_x(a, bb) : gram_x(bb, a));
          return xx + v[a] + v[bb] + m2;
        });
        out.has_correlation = true;
      }
      return out;
    }
    // Entry by entry, a block of rows a task: counts the non-finite entries of dW (a row of g or
    // a column of x holding NaN or infinity) and sums the squares of the others.
    const double eps_scaled = eps_at(exp2_ + c.shift);
    const std::int64_t tasks = row_tasks(n_out);
    std::vector<SquareSum> parts(static_cast<std::size_t>(tasks));
    std::vector<double> adam_parts(parts.size(), 0.0);
    pool_.run(tasks, [&](std::int64_t t) {
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
    if (has_gram_correlation(l)) {
      // No Gram of x was formed: the correlation its first reader owes, taken directly.
      out.correlation = mean_pair_cosine(x);
      out.has_correlation = true;
    }
    return out;
  }

  const Network<Scalar>& net_;
  const Mat<Scalar>& input_;
  const Mat<Scalar>& probe_;
  const PassOptions& options_;
  ThreadPool& pool_;
  const std::size_t count_;
  const Eigen::Index batch_;
  PassResult result_;

  // The plan. Values are named by the op that produces them; count_ names the input.
  std::vector<std::size_t> producer_;       // per op: the value entering it
  std::vector<std::size_t> skip_producer_;  // per residual end: the value its skip carries
  std::vector<std::size_t> last_use_;       // per value: the last op of the forward reading it
  std::vector<std::size_t> gram_owner_;     // per value: the dense op whose Gram gives its
                                            // correlation (count_: none)
  std::vector<std::size_t> starts_;         // segment starts, ascending
  std::size_t cached_from_ = 0;             // the forward pass keeps ops from here on
  bool checkpointed_ = false;
  std::vector<char> retained_;  // per value: a checkpoint some later segment starts from

  // What the backward pass reads, per op; empty where not (or no longer) needed.
  std::vector<Mat<Scalar>> out_;       // y, (width, batch)
  std::vector<Mat<Scalar>> slope_;     // phi'(h) where y does not determine it
  std::vector<Eigen::VectorXd> rstd_;  // the norms' 1/std
  std::vector<Mat<Scalar>> wcache_;    // drawn weights kept for a segment's backward pass
  Mat<Scalar> scratch_weight_;         // drawn weights used once
  std::vector<double> weight_norm_;    // ||W||_F per dense op
  std::vector<ValueRange> range_;      // per value (count_: the input), from the forward pass

  std::vector<double> step_work_;  // per op, for on_progress
  double progress_scale_ = 0.0;    // 1 / the pass's work
  double work_done_ = 0.0;

  Mat<Scalar> g_;  // dL/d(output of the current op) / 2^exp2_, (width, batch)
  std::int64_t exp2_ = 0;
  // Skip-path gradients waiting for their residual begin: (gradient / 2^exp2, exp2).
  std::vector<std::pair<Mat<Scalar>, std::int64_t>> skips_;
};

}  // namespace

template <class Scalar>
PassResult forward_backward(const Network<Scalar>& net, const Mat<Scalar>& input,
                            const Mat<Scalar>& probe, const PassOptions& options,
                            ThreadPool& pool) {
  return PassRunner<Scalar>(net, input, probe, options, pool).run();
}

template Network<float> build_network<float>(const RunSpec&, ThreadPool&, WeightStorage);
template Network<double> build_network<double>(const RunSpec&, ThreadPool&, WeightStorage);
template double generate_weight<float>(const Network<float>&, std::size_t, Mat<float>&,
                                       ThreadPool&);
template double generate_weight<double>(const Network<double>&, std::size_t, Mat<double>&,
                                        ThreadPool&);
template const Mat<float>& weight_of<float>(const Network<float>&, std::size_t, Mat<float>&,
                                            ThreadPool&);
template const Mat<double>& weight_of<double>(const Network<double>&, std::size_t, Mat<double>&,
                                              ThreadPool&);
template double weight_frobenius<float>(const Mat<float>&);
template double weight_frobenius<double>(const Mat<double>&);
template Mat<float> make_input<float>(const RunSpec&);
template Mat<double> make_input<double>(const RunSpec&);
template Mat<float> make_probe<float>(const RunSpec&, int);
template Mat<double> make_probe<double>(const RunSpec&, int);
template PassResult forward_backward<float>(const Network<float>&, const Mat<float>&,
                                            const Mat<float>&, const PassOptions&, ThreadPool&);
template PassResult forward_backward<double>(const Network<double>&, const Mat<double>&,
                                             const Mat<double>&, const PassOptions&, ThreadPool&);

}  // namespace gradscope
