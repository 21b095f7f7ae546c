// Statistics accumulators. The fast paths keep four independent lanes, which the compiler can
// vectorise without reassociating floating point; the lanes are combined in a fixed order.
#include "gradscope/stats.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace gradscope {

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
  if (!std::isfinite(sum) || !std::isfinite(sumsq)) {
    // A NaN or Inf poisons the sums (no branch per value on the fast path); count them one by one.
    for (std::int64_t j = 0; j < n; ++j) add_slow(static_cast<double>(x[j]));
    return;
  }
  MomentAccumulator block;
  block.count_ = n;
  const double dn = static_cast<double>(n);
  block.mean_ = shift + sum / dn;
  block.m2_ = std::max(0.0, sumsq - sum * sum / dn);
  block.min_ = std::min(std::min(lo[0], lo[1]), std::min(lo[2], lo[3]));
  block.max_ = std::max(std::max(hi[0], hi[1]), std::max(hi[2], hi[3]));
  merge(block);
}

void MomentAccumulator::add_slow(double v) {
  if (!std::isfinite(v)) {
    ++nonfinite_;
    return;
  }
  // Welford's update, for the rare blocks that hold non-finite values.
  ++count_;
  const double delta = v - mean_;
  mean_ += delta / static_cast<double>(count_);
  m2_ += delta * (v - mean_);
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
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
  const double delta = other.mean_ - mean_;
  mean_ += delta * (nb / n);
  m2_ += other.m2_ + delta * delta * (na * nb / n);
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
  s.std = std::sqrt(var);
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
  if (std::isfinite(block)) {
    sum += block;
    finite += n;
    return;
  }
  for (std::int64_t j = 0; j < n; ++j) {
    const double v = static_cast<double>(x[j]);
    if (std::isfinite(v)) {
      sum += v * v;
      ++finite;
    } else {
      ++nonfinite;
    }
  }
}

HistogramAccumulator::HistogramAccumulator(double lo, double hi, int bins)
    : bins_(bins), shrink_(1.0), lo_(lo), scale_(0.0) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi || bins < 1) {
    throw std::invalid_argument("HistogramAccumulator: bad range [" + std::to_string(lo) + ", " +
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
    throw std::invalid_argument("HistogramAccumulator::merge: different bin counts");
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
