// The per-op statistics the passes gather on the way: each task accumulates its own block into a
// partial, and the partials are merged in task order, so the results never depend on the threads.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "gradscope/core/network.hpp"
#include "gradscope/core/stats.hpp"

namespace gradscope::ops {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// What one forward task learns about its block of an op.
struct ForwardPartial {
  MomentAccumulator preact;
  MomentAccumulator act;
  std::int64_t zeros = 0;
  std::int64_t saturated = 0;
};

template <class Scalar>
void accumulate_moments(const Eigen::Ref<const Mat<Scalar>>& m, MomentAccumulator& acc);

// Activation statistics of a block of y and d = phi'(h) (the same rows and columns of each).
// alive[i] / unsaturated[i] are set for each row i of the block that has a non-zero /
// unsaturated derivative in any of its columns.
template <class Scalar>
void accumulate_activation_block(const Eigen::Ref<const Mat<Scalar>>& y,
                                 const Eigen::Ref<const Mat<Scalar>>& d, double saturated_below,
                                 ForwardPartial& part, unsigned char* alive,
                                 unsigned char* unsaturated);

// Output statistics of an op without a derivative of its own (norm, dropout, residual).
template <class Scalar>
void accumulate_output_block(const Eigen::Ref<const Mat<Scalar>>& y, ForwardPartial& part);

// The forward statistics of an op without a derivative of its own, from its tasks' partials:
// preact is its input, act its output (n rows, batch columns).
void finish_output_stats(const std::vector<ForwardPartial>& parts, Eigen::Index n,
                         Eigen::Index batch, ForwardStats& fs);

// sqrt(a_aa b_bb) for two diagonal entries of a Gram matrix (squares summed), without
// overflowing their product where the entries are near double's limit.
inline double diagonal_norm_product(double a, double b) {
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
double mean_pair_cosine(const Mat<Scalar>& y);

// The same mean cosine from the lower triangle of the Gram matrix x^T x of a whole batch,
// restricted to the first kCorrelationExamples examples.
template <class Scalar>
double pair_cosine_from_gram(const Mat<Scalar>& gram);

// An op's act_histogram, over act.min .. act.max of its whole output: tasks of whole columns cut by
// the shape alone, each counting into its own slot. Integer counts sum exactly in any order, so the
// result does not depend on the threads, nor on when the histogram is taken.
template <class Scalar>
void fill_act_histogram(const Mat<Scalar>& y, ForwardStats& fs, ThreadPool& pool);

// tokens.mean_cosine and tokens.centered_rms of an op's output y (d, examples x tokens), over the
// examples whose entries are all finite (NaN when none is): a task per example, summed in order.
template <class Scalar>
void fill_token_stats(const Mat<Scalar>& y, Eigen::Index tokens, ForwardStats& fs,
                      ThreadPool& pool);

// The average squared channel mean and channel variance of an image (C H W rows, NCHW order, by
// examples), as ForwardStats' channel_mean_sq and channel_var define them: a task per channel,
// each scaled by a power of two near its largest entry so neither a 1e200 image's squares nor a
// 1e-200 one's leave double's range; the channels are summed in order.
struct ChannelMoments {
  Magnitude mean_sq{std::numeric_limits<double>::quiet_NaN(),
                    std::numeric_limits<double>::quiet_NaN()};
  Magnitude var{std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
  std::int64_t nonfinite_channels = 0;
  std::int64_t zero_channels = 0;  // every entry exactly 0
};
template <class Scalar>
ChannelMoments channel_moments(const Mat<Scalar>& y, const ImageShape& image, ThreadPool& pool);

// Sum of squares and per-row sums of a gradient block (rows of one task, every column).
struct GradPartial {
  SquareSum squares;
  double bias_squares = 0.0;        // sum over the block's rows of (sum over the batch)^2, finite
  std::int64_t bias_nonfinite = 0;  // rows whose sum over the batch is not finite
};

template <class Scalar>
void accumulate_gradient_block(const Eigen::Ref<const Mat<Scalar>>& g, GradPartial& part);

GradPartial merge_parts(const std::vector<GradPartial>& parts);

// The statistics of a gradient, turned into magnitudes at exponent exp2: NaN (no finite value)
// when every entry is NaN or infinite, never a 0 that reads as a vanished gradient.
void fill_grad_stats(const GradPartial& g, std::int64_t exp2, BackwardStats& bs);

// The norm of a parameter gradient's finite entries at exponent exp2, and the count of the others
// (NaN when none is finite). Eigen's norm where it is exact; squares summed scaled where they
// leave double's range or some entry is not finite.
void fill_param_norm(const Eigen::VectorXd& v, std::int64_t exp2, Magnitude& norm,
                     std::int64_t& nonfinite);

}  // namespace gradscope::ops
