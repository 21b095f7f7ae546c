// Statistics accumulators. The fast paths keep four independent lanes, which the compiler can
// vectorise without reassociating floating point; the lanes are combined in a fixed order.
#include "gradscope/core/stats.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gradscope/core/error.hpp"

namespace gradscope {

namespace {

// Blocks whose largest |value| lies outside [2^-kPlainBelow, 2^kPlainAbove] are summed scaled:
// inside, squares, their sums over up to 2^62 values and the merge's delta^2 n_a n_b / n all stay
// far inside double's range (2^-1022 .. 2^1024) and away from its subnormals.
constexpr int kPlainAbove = 400;
constexpr int kPlainBelow = 400;

bool plain_range(double largest) {
  return largest == 0.0 ||
         (largest <= std::ldexp(1.0, kPlainAbove) && largest >= std::ldexp(1.0, -kPlainBelow));
}

}  // namespace

template <class Scalar>
void MomentAccumulator::add(const Scalar* x, std::int64_t n) {
  if (n <= 0) return;
  // Shifted sums around the block's first value keep the variance exact when |mean| >> std.
  const double shift = std::isfinite(static_cast<double>(x[0])) ? static_cast<double>(x[0]) : 0.0;
  double s[4] = {0, 0, 0, 0};
  double q[4] = {0, 0, 0, 0};
  double lo[4], hi[4];
  std::fill(lo, lo + 4, shift);
  std::fill(hi, hi + 4, shift);
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; ++k) {
      const double v = static_cast<double>(x[i + k]);
      const double d = v - shift;
      s[k] += d;
      q[k] += d * d;
      lo[k] = std::min(lo[k], v);
      hi[k] = std::max(hi[k], v);
    }
  }
  for (; i < n; ++i) {
    const double v = static_cast<double>(x[i]);
    const double d = v - shift;
    s[0] += d;
    q[0] += d * d;
    lo[0] = std::min(lo[0], v);
    hi[0] = std::max(hi[0], v);
  }
  const double sum = (s[0] + s[1]) + (s[2] + s[3]);
  const double sumsq = (q[0] + q[1]) + (q[2] + q[3]);
  const double block_min = std::min(std::min(lo[0], lo[1]), std::min(lo[2], lo[3]));
  const double block_max = std::max(std::max(hi[0], hi[1]), std::max(hi[2], hi[3]));
  if (!std::isfinite(sum) || !std::isfinite(sumsq) ||
      !plain_range(std::max(std::abs(block_min), std::abs(block_max)))) {
    // A NaN or Inf poisons the sums (no branch per value on the fast path), and squares beyond
    // double's range lose the variance: count the non-finite values, sum the others scaled.
    std::vector<double> finite;
    finite.reserve(static_cast<std::size_t>(n));
    for (std::int64_t j = 0; j < n; ++j) {
      const double v = static_cast<double>(x[j]);
      if (std::isfinite(v)) {
        finite.push_back(v);
      } else {
        ++nonfinite_;
      }
    }
    add_scaled(finite.data(), static_cast<std::int64_t>(finite.size()));
    return;
  }
  MomentAccumulator block;
  block.count_ = n;
  const double dn = static_cast<double>(n);
  block.mean_ = shift + sum / dn;
  block.m2_ = std::max(0.0, sumsq - sum * sum / dn);
  block.min_ = block_min;
  block.max_ = block_max;
  merge(block);
}

void MomentAccumulator::add_scaled(const double* v, std::int64_t n) {
  if (n <= 0) return;
  double largest = 0.0;
  double lo = v[0];
  double hi = v[0];
  for (std::int64_t j = 0; j < n; ++j) {
    largest = std::max(largest, std::abs(v[j]));
    lo = std::min(lo, v[j]);
    hi = std::max(hi, v[j]);
  }
  // Scaled by 2^-e the values lie in (-2, 2): squares and sums cannot leave double's range, and
  // a power of two changes no digit.
  const int e = largest > 0.0 ? std::ilogb(largest) : 0;
  const double shift = std::ldexp(v[0], -e);
  double sum = 0.0;
  double sumsq = 0.0;
  for (std::int64_t j = 0; j < n; ++j) {
    const double d = std::ldexp(v[j], -e) - shift;
    sum += d;
    sumsq += d * d;
  }
  MomentAccumulator block;
  block.count_ = n;
  const double dn = static_cast<double>(n);
  block.mean_ = std::ldexp(shift + sum / dn, e);
  block.m2_ = std::max(0.0, sumsq - sum * sum / dn);
  block.exp_ = e;
  block.min_ = lo;
  block.max_ = hi;
  merge(block);
}

void MomentAccumulator::merge(const MomentAccumulator& other) {
  nonfinite_ += other.nonfinite_;
  if (other.count_ == 0) return;
  if (count_ == 0) {
    const std::int64_t nonfinite = nonfinite_;
    *this = other;
    nonfinite_ = nonfinite;
    return;
  }
  const double na = static_cast<double>(count_);
  const double nb = static_cast<double>(other.count_);
  const double n = na + nb;
  // Chan et al. at the larger exponent of the two (both 0 in the ordinary range, where this is
  // the textbook formula); the means are differenced in scaled units so that means of opposite
  // sign near double's limit do not overflow.
  const int e = std::max(exp_, other.exp_);
  const double a = std::ldexp(m2_, 2 * (exp_ - e));
  const double b = std::ldexp(other.m2_, 2 * (other.exp_ - e));
  const double delta = std::ldexp(other.mean_, -e) - std::ldexp(mean_, -e);
  mean_ = std::ldexp(std::ldexp(mean_, -e) + delta * (nb / n), e);
  m2_ = a + (b + delta * delta * (na * nb / n));
  exp_ = e;
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

MomentStats MomentAccumulator::finish() const {
  MomentStats s;
  s.finite = count_;
  s.nonfinite = nonfinite_;
  if (count_ == 0) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    s.mean = s.std = s.rms = s.min = s.max = nan;
    return s;
  }
  const double var = m2_ / static_cast<double>(count_);
  s.mean = mean_;
  s.std = std::ldexp(std::sqrt(var), exp_);
  // hypot avoids overflow of mean^2 + var when the values are near double's limit.
  s.rms = std::hypot(mean_, s.std);
  s.min = min_;
  s.max = max_;
  return s;
}

template <class Scalar>
void SquareSum::add(const Scalar* x, std::int64_t n) {
  if (n <= 0) return;
  double q[4] = {0, 0, 0, 0};
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; ++k) {
      const double v = static_cast<double>(x[i + k]);
      q[k] += v * v;
    }
  }
  for (; i < n; ++i) {
    const double v = static_cast<double>(x[i]);
    q[0] += v * v;
  }
  const double block = (q[0] + q[1]) + (q[2] + q[3]);
  // Below 2^-800 some squares may have fallen into double's subnormals or to 0 (|v| < 2^-511);
  // an all-zero block takes the careful path too, which finds it exactly 0.
  if (std::isfinite(block) && block >= std::ldexp(1.0, -800)) {
    SquareSum plain;
    plain.sum = block;
    plain.finite = n;
    merge(plain);
    return;
  }
  // Non-finite values are counted; the finite ones summed, scaled by 2^-e (e the exponent of the
  // largest) where their squares would leave double's range (a float64 value of 1e200).
  double largest = 0.0;
  SquareSum scaled;
  for (std::int64_t j = 0; j < n; ++j) {
    const double v = static_cast<double>(x[j]);
    if (std::isfinite(v)) {
      largest = std::max(largest, std::abs(v));
      ++scaled.finite;
    } else {
      ++scaled.nonfinite;
    }
  }
  scaled.exp = plain_range(largest) ? 0 : std::ilogb(largest);
  for (std::int64_t j = 0; j < n; ++j) {
    const double v = static_cast<double>(x[j]);
    if (std::isfinite(v)) {
      const double u = std::ldexp(v, -scaled.exp);
      scaled.sum += u * u;
    }
  }
  merge(scaled);
}

void SquareSum::merge(const SquareSum& other) {
  finite += other.finite;
  nonfinite += other.nonfinite;
  if (other.exp == exp) {
    sum += other.sum;
    return;
  }
  if (other.sum == 0.0) return;
  if (sum == 0.0) {
    sum = other.sum;
    exp = other.exp;
    return;
  }
  const int e = std::max(exp, other.exp);
  sum = std::ldexp(sum, 2 * (exp - e)) + std::ldexp(other.sum, 2 * (other.exp - e));
  exp = e;
}

double SquareSum::value() const { return std::ldexp(sum, 2 * exp); }

Magnitude SquareSum::rms(std::int64_t exp2) const {
  if (finite == 0) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return {nan, nan};
  }
  return magnitude_from_scaled(std::sqrt(sum / static_cast<double>(finite)), exp2 + exp);
}

Magnitude SquareSum::root(std::int64_t exp2) const {
  return magnitude_from_scaled(std::sqrt(sum), exp2 + exp);
}

HistogramAccumulator::HistogramAccumulator(double lo, double hi, int bins)
    : bins_(bins), shrink_(1.0), lo_(lo), scale_(0.0) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi || bins < 1) {
    throw contract_error("HistogramAccumulator: bad range [" + std::to_string(lo) + ", " +
                         std::to_string(hi) + "] or bin count " + std::to_string(bins));
  }
  lanes_.assign(static_cast<std::size_t>(kLanes) * static_cast<std::size_t>(bins_ + 1), 0);
  if (hi == lo) return;  // scale 0: every finite value in bin 0
  // Far from 1, hi - lo and bins / (hi - lo) can overflow (values of both signs near the format's
  // limit, a range of subnormals), in float sooner than in double. Values scaled by a power of
  // two, which moves no edge, keep both finite in either.
  const double range = hi - lo;
  const int e = std::isfinite(range) ? std::ilogb(range) : std::ilogb(0.5 * hi - 0.5 * lo) + 1;
  if (e < -kMaxShift || e > kMaxShift) {
    shrink_ = std::ldexp(1.0, -std::clamp(e, -kMaxShift, kMaxShift));
    lo_ = lo * shrink_;
  }
  scale_ = static_cast<double>(bins_) / (hi * shrink_ - lo_);
}

template <class Scalar, bool kShrink>
void HistogramAccumulator::add_values(const Scalar* x, std::int64_t n) {
  // Indices are found a block at a time by a loop without branches, which the compiler
  // vectorises; the increments follow, spread over the lanes.
  constexpr std::int64_t kBlock = 256;
  std::int32_t index[kBlock];
  const auto shrink = static_cast<Scalar>(shrink_);
  const auto lo = static_cast<Scalar>(lo_);
  const auto scale = static_cast<Scalar>(scale_);
  const auto top = static_cast<Scalar>(bins_ - 1);
  const auto discard = static_cast<Scalar>(bins_);  // each lane's slot for NaN and +-Inf
  const Scalar largest = std::numeric_limits<Scalar>::max();
  const auto stride = static_cast<std::size_t>(bins_ + 1);
  std::int64_t* lane[kLanes];
  for (int k = 0; k < kLanes; ++k) lane[k] = lanes_.data() + static_cast<std::size_t>(k) * stride;
  for (std::int64_t begin = 0; begin < n; begin += kBlock) {
    const std::int64_t m = std::min(kBlock, n - begin);
    const Scalar* xb = x + begin;
    for (std::int64_t j = 0; j < m; ++j) {
      const Scalar v = xb[j];
      Scalar t = ((kShrink ? v * shrink : v) - lo) * scale;
      // Clamped before the conversion, which is undefined for NaN and out-of-range values.
      t = t > Scalar(0) ? t : Scalar(0);
      t = t < top ? t : top;
      t = std::abs(v) <= largest ? t : discard;
      index[j] = static_cast<std::int32_t>(t);
    }
    std::int64_t j = 0;
    for (; j + kLanes <= m; j += kLanes) {
      for (int k = 0; k < kLanes; ++k) ++lane[k][index[j + k]];
    }
    for (; j < m; ++j) ++lane[0][index[j]];
  }
}

template <class Scalar>
void HistogramAccumulator::add(const Scalar* x, std::int64_t n) {
  // The bin arithmetic is in the values' own precision: in float, twice the values per vector
  // instruction (the edges move by a float rounding, far below a bin's width).
  if (shrink_ == 1.0) {
    add_values<Scalar, false>(x, n);
  } else {
    add_values<Scalar, true>(x, n);
  }
}

void HistogramAccumulator::merge(const HistogramAccumulator& other) {
  if (other.bins_ != bins_) {
    throw contract_error("HistogramAccumulator::merge: different bin counts");
  }
  for (std::size_t i = 0; i < lanes_.size(); ++i) lanes_[i] += other.lanes_[i];
}

std::vector<std::int64_t> HistogramAccumulator::counts() const {
  std::vector<std::int64_t> out(static_cast<std::size_t>(bins_), 0);
  const auto stride = static_cast<std::size_t>(bins_ + 1);
  for (std::size_t k = 0; k < static_cast<std::size_t>(kLanes); ++k) {
    for (std::size_t b = 0; b < out.size(); ++b) out[b] += lanes_[k * stride + b];
  }
  return out;
}

template <class Scalar>
std::vector<std::int64_t> histogram(
    const Eigen::Ref<const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>>& m, double lo,
    double hi, int bins) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi) return {};
  HistogramAccumulator acc(lo, hi, bins);
  for (Eigen::Index a = 0; a < m.cols(); ++a) acc.add(m.col(a).data(), m.rows());
  return acc.counts();
}

template void MomentAccumulator::add<float>(const float*, std::int64_t);
template void MomentAccumulator::add<double>(const double*, std::int64_t);
template void SquareSum::add<float>(const float*, std::int64_t);
template void SquareSum::add<double>(const double*, std::int64_t);
template void HistogramAccumulator::add<float>(const float*, std::int64_t);
template void HistogramAccumulator::add<double>(const double*, std::int64_t);
template std::vector<std::int64_t> histogram<float>(const Eigen::Ref<const Eigen::MatrixXf>&,
                                                    double, double, int);
template std::vector<std::int64_t> histogram<double>(const Eigen::Ref<const Eigen::MatrixXd>&,
                                                     double, double, int);

}  // namespace gradscope
