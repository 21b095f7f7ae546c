// Accumulators for the per-layer statistics: double precision whatever the network's precision,
// numerically stable (shifted sums merged with Chan et al.'s formula), and combined in a fixed
// order so that the result never depends on the thread count.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <limits>
#include <vector>

#include "gradscope/core/report.hpp"

namespace gradscope {

// Mean, variance, rms, min and max of the finite values seen; non-finite ones are only counted.
// Exact for any finite values, also where their squares overflow or underflow double (a float64
// network's activations of 1e200 or 1e-200): such blocks are summed scaled by a power of two.
class MomentAccumulator {
 public:
  // Adds n contiguous values.
  template <class Scalar>
  void add(const Scalar* x, std::int64_t n);
  // Combines another accumulator's values into this one (Chan, Golub, LeVeque 1979).
  void merge(const MomentAccumulator& other);
  MomentStats finish() const;

  std::int64_t count() const { return count_; }
  std::int64_t nonfinite() const { return nonfinite_; }

 private:
  // Adds n finite values, summed scaled by 2^-e with e the exponent of the largest |value|.
  void add_scaled(const double* v, std::int64_t n);
  std::int64_t count_ = 0;
  double mean_ = 0.0;
  double m2_ = 0.0;  // sum of squared deviations from the mean, in units of 2^(2 exp_)
  int exp_ = 0;
  double min_ = std::numeric_limits<double>::infinity();
  double max_ = -std::numeric_limits<double>::infinity();
  std::int64_t nonfinite_ = 0;
};

// Sum of squares of the finite values, and a count of the others (for gradient rms). The sum is
// sum * 2^(2 exp): exp stays 0 unless the squares of finite values overflow or underflow double.
struct SquareSum {
  double sum = 0.0;
  int exp = 0;
  std::int64_t finite = 0;
  std::int64_t nonfinite = 0;
  template <class Scalar>
  void add(const Scalar* x, std::int64_t n);
  void merge(const SquareSum& other);
  // The sum of squares itself (inf or 0 where it leaves double's range).
  double value() const;
  // rms of the finite values times 2^exp2, exact beyond double's range; NaN when none is finite.
  Magnitude rms(std::int64_t exp2) const;
  // sqrt of the sum times 2^exp2 (a Frobenius norm), exact beyond double's range.
  Magnitude root(std::int64_t exp2) const;
};

// Counts of the finite values in `bins` equal bins over [lo, hi]: bin i covers
// [lo + i w, lo + (i + 1) w), w = (hi - lo) / bins, and the last bin also holds hi. With lo == hi
// every finite value is counted in bin 0. The bin of a value is found by one multiplication, so a
// value within rounding of an edge may land on either side of it; values outside [lo, hi] are
// counted in the end bins. Integer counts merge exactly in any order.
class HistogramAccumulator {
 public:
  // lo and hi finite with lo <= hi, bins >= 1.
  HistogramAccumulator(double lo, double hi, int bins);
  // Adds n contiguous values.
  template <class Scalar>
  void add(const Scalar* x, std::int64_t n);
  // Adds another accumulator's counts, which must be over the same bins.
  void merge(const HistogramAccumulator& other);
  std::vector<std::int64_t> counts() const;

 private:
  template <class Scalar, bool kShrink>
  void add_values(const Scalar* x, std::int64_t n);

  // Independent copies of the counts, taken in turn, so that a run of values in one bin (the
  // zeros of a ReLU layer) does not make each increment wait for the previous one.
  static constexpr int kLanes = 8;
  // A range hi - lo between 2^-kMaxShift and 2^kMaxShift is binned as it is: then hi - lo and
  // bins / (hi - lo) are far inside float's range. Beyond, the values are first scaled by
  // 2^-ilogb(hi - lo), the shift clamped to kMaxShift.
  static constexpr int kMaxShift = 100;
  int bins_;
  double shrink_;  // 1, or the power of two values are multiplied by before binning
  double lo_;      // lo * shrink_
  double scale_;   // bins / ((hi - lo) * shrink_); 0 when lo == hi
  // kLanes rows of bins_ + 1 counts; the extra one receives NaN and +-Inf, which are not counted.
  std::vector<std::int64_t> lanes_;
};

// The histogram of the finite entries of m (as HistogramAccumulator); empty when lo or hi is not
// finite or lo > hi (no finite entry to bin).
template <class Scalar>
std::vector<std::int64_t> histogram(
    const Eigen::Ref<const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>>& m, double lo,
    double hi, int bins);

}  // namespace gradscope
