// Accumulators for the per-layer statistics: double precision whatever the network's precision,
// numerically stable (shifted sums merged with Chan et al.'s formula), and combined in a fixed
// order so that the result never depends on the thread count.
#pragma once

#include <cstdint>
#include <limits>

#include "gradscope/report.hpp"

namespace gradscope {

// Mean, variance, rms, min and max of the finite values seen; non-finite ones are only counted.
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
  void add_slow(double v);
  std::int64_t count_ = 0;
  double mean_ = 0.0;
  double m2_ = 0.0;  // sum of squared deviations from the mean
  double min_ = std::numeric_limits<double>::infinity();
  double max_ = -std::numeric_limits<double>::infinity();
  std::int64_t nonfinite_ = 0;
};

// Sum of squares of the finite values, and a count of the others (for gradient rms).
struct SquareSum {
  double sum = 0.0;
  std::int64_t finite = 0;
  std::int64_t nonfinite = 0;
  template <class Scalar>
  void add(const Scalar* x, std::int64_t n);
  void merge(const SquareSum& other) {
    sum += other.sum;
    finite += other.finite;
    nonfinite += other.nonfinite;
  }
};

}  // namespace gradscope
