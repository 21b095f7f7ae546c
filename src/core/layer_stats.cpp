// The per-op statistics the passes gather on the way (layer_stats.hpp): block accumulators, their
// merge in task order, the correlation between examples, the histogram and the gradient norms.
#include "core/layer_stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/tasks.hpp"

namespace gradscope::ops {

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

void finish_output_stats(const std::vector<ForwardPartial>& parts, Eigen::Index n,
                         Eigen::Index batch, ForwardStats& fs) {
  ForwardPartial total;
  for (const ForwardPartial& p : parts) {
    total.preact.merge(p.preact);
    total.act.merge(p.act);
    total.zeros += p.zeros;
  }
  fs.preact = total.preact.finish();
  fs.act = total.act.finish();
  fs.zero_fraction =
      static_cast<double>(total.zeros) / (static_cast<double>(n) * static_cast<double>(batch));
  fs.saturated_fraction = kNaN;  // no activation: nothing to saturate
  fs.nonfinite = fs.preact.nonfinite + fs.act.nonfinite;
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

template <class Scalar>
double pair_cosine_from_gram(const Mat<Scalar>& gram) {
  const Eigen::Index m = std::min<Eigen::Index>(gram.cols(), kCorrelationExamples);
  return mean_cosine_of_gram(
      m, [&](Eigen::Index a, Eigen::Index b) { return static_cast<double>(gram(a, b)); });
}

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

template void accumulate_moments<float>(const Eigen::Ref<const Mat<float>>&, MomentAccumulator&);
template void accumulate_moments<double>(const Eigen::Ref<const Mat<double>>&, MomentAccumulator&);
template void accumulate_activation_block<float>(const Eigen::Ref<const Mat<float>>&,
                                                 const Eigen::Ref<const Mat<float>>&, double,
                                                 ForwardPartial&, unsigned char*, unsigned char*);
template void accumulate_activation_block<double>(const Eigen::Ref<const Mat<double>>&,
                                                  const Eigen::Ref<const Mat<double>>&, double,
                                                  ForwardPartial&, unsigned char*, unsigned char*);
template <class Scalar>
void fill_token_stats(const Mat<Scalar>& y, Eigen::Index tokens, ForwardStats& fs,
                      ThreadPool& pool) {
  const Eigen::Index d = y.rows();
  const Eigen::Index examples = y.cols() / tokens;
  struct Part {
    double cosine = 0.0;    // the example's mean pair cosine
    double centered = 0.0;  // sum of squares of y_t minus the mean token
    bool finite = true;
  };
  std::vector<Part> parts(static_cast<std::size_t>(examples));
  pool.run(examples, [&](std::int64_t e) {
    Part& part = parts[static_cast<std::size_t>(e)];
    const auto x = y.middleCols(e * tokens, tokens);
    if (!x.allFinite()) {
      part.finite = false;
      return;
    }
    // sum over t != t' of cos = ||sum_t u_t||^2 - sum_t ||u_t||^2, u_t = y_t / ||y_t|| (0 for a
    // zero token). Every sum is taken in double, column by column, without a double copy.
    Eigen::VectorXd u_sum = Eigen::VectorXd::Zero(d);
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(d);
    Eigen::VectorXd col(d);  // the token in double, for vectorised passes over it
    double u_squares = 0.0;
    for (Eigen::Index t = 0; t < tokens; ++t) {
      col = x.col(t).template cast<double>();
      mean += col;
      const double norm = col.norm();
      if (norm > 0.0) {
        col /= norm;
        u_sum += col;
        u_squares += col.squaredNorm();
      }
    }
    const double pairs = static_cast<double>(tokens) * static_cast<double>(tokens - 1);
    part.cosine = (u_sum.squaredNorm() - u_squares) / pairs;
    mean /= static_cast<double>(tokens);
    // Two passes (mean, then deviations) so a large common offset does not cancel the spread.
    for (Eigen::Index t = 0; t < tokens; ++t) {
      col = x.col(t).template cast<double>();
      part.centered += (col - mean).squaredNorm();
    }
  });
  double cosine = 0.0;
  double centered = 0.0;
  Eigen::Index finite = 0;
  for (const Part& p : parts) {
    if (!p.finite) continue;
    cosine += p.cosine;
    centered += p.centered;
    ++finite;
  }
  fs.has_tokens = true;
  fs.token_mean_cosine = finite > 0 ? cosine / static_cast<double>(finite) : kNaN;
  fs.token_centered_rms =
      finite > 0 ? std::sqrt(centered / (static_cast<double>(finite) * static_cast<double>(tokens) *
                                         static_cast<double>(d)))
                 : kNaN;
}

template <class Scalar>
ChannelMoments channel_moments(const Mat<Scalar>& y, const ImageShape& image, ThreadPool& pool) {
  const Eigen::Index channels = image.channels;
  const Eigen::Index positions = static_cast<Eigen::Index>(image.height) * image.width;
  struct Part {
    double mean = 0.0;  // of the channel's entries times 2^-exp
    double var = 0.0;
    int exp = 0;  // the channel's largest |entry| is below 2^exp
    bool finite = true;
    bool zero = false;
  };
  std::vector<Part> parts(static_cast<std::size_t>(channels));
  pool.run(channels, [&](std::int64_t c) {
    Part& part = parts[static_cast<std::size_t>(c)];
    const auto x = y.middleRows(c * positions, positions);
    double largest = 0.0;
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
      for (Eigen::Index i = 0; i < x.rows(); ++i) {
        const double v = static_cast<double>(x(i, j));
        if (!std::isfinite(v)) {
          part.finite = false;
          return;
        }
        largest = std::max(largest, std::abs(v));
      }
    }
    if (largest == 0.0) {  // an all-zero channel: mean 0, variance 0
      part.zero = true;
      return;
    }
    std::frexp(largest, &part.exp);
    // Scaling by a power of two is exact: one multiplier 2^-exp where it is a normal double (a
    // subnormal channel's exp is below -1021, its multiplier beyond double: ldexp it entry by
    // entry). Two passes (mean, then deviations) so a large common offset does not cancel the
    // spread.
    const bool multiply = part.exp > -1000 && part.exp < 1000;
    const double unit = multiply ? std::ldexp(1.0, -part.exp) : 0.0;
    const auto scaled = [&](Scalar v) {
      return multiply ? static_cast<double>(v) * unit
                      : std::ldexp(static_cast<double>(v), -part.exp);
    };
    const double count = static_cast<double>(x.size());
    double sum = 0.0;
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
      for (Eigen::Index i = 0; i < x.rows(); ++i) sum += scaled(x(i, j));
    }
    part.mean = sum / count;
    double squares = 0.0;
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
      for (Eigen::Index i = 0; i < x.rows(); ++i) {
        const double d = scaled(x(i, j)) - part.mean;
        squares += d * d;
      }
    }
    part.var = squares / count;
  });
  ChannelMoments out;
  int top = std::numeric_limits<int>::min();
  std::int64_t finite = 0;
  for (const Part& p : parts) {
    if (!p.finite) {
      ++out.nonfinite_channels;
      continue;
    }
    ++finite;
    if (p.zero) ++out.zero_channels;
    top = std::max(top, p.exp);
  }
  if (finite == 0) return out;
  double mean_sq = 0.0;
  double var = 0.0;
  for (const Part& p : parts) {
    if (!p.finite) continue;
    // 2^(2 (exp - top)) <= 1: the largest channel sets the common exponent.
    const double unit = std::ldexp(1.0, 2 * (p.exp - top));
    mean_sq += p.mean * p.mean * unit;
    var += p.var * unit;
  }
  const double n = static_cast<double>(finite);
  out.mean_sq = magnitude_from_scaled(mean_sq / n, 2 * static_cast<std::int64_t>(top));
  out.var = magnitude_from_scaled(var / n, 2 * static_cast<std::int64_t>(top));
  return out;
}

template ChannelMoments channel_moments<float>(const Mat<float>&, const ImageShape&, ThreadPool&);
template ChannelMoments channel_moments<double>(const Mat<double>&, const ImageShape&, ThreadPool&);
template void fill_token_stats<float>(const Mat<float>&, Eigen::Index, ForwardStats&, ThreadPool&);
template void fill_token_stats<double>(const Mat<double>&, Eigen::Index, ForwardStats&,
                                       ThreadPool&);
template void accumulate_output_block<float>(const Eigen::Ref<const Mat<float>>&, ForwardPartial&);
template void accumulate_output_block<double>(const Eigen::Ref<const Mat<double>>&,
                                              ForwardPartial&);
template double mean_pair_cosine<float>(const Mat<float>&);
template double mean_pair_cosine<double>(const Mat<double>&);
template double pair_cosine_from_gram<float>(const Mat<float>&);
template double pair_cosine_from_gram<double>(const Mat<double>&);
template void fill_act_histogram<float>(const Mat<float>&, ForwardStats&, ThreadPool&);
template void fill_act_histogram<double>(const Mat<double>&, ForwardStats&, ThreadPool&);
template void accumulate_gradient_block<float>(const Eigen::Ref<const Mat<float>>&, GradPartial&);
template void accumulate_gradient_block<double>(const Eigen::Ref<const Mat<double>>&, GradPartial&);

}  // namespace gradscope::ops
