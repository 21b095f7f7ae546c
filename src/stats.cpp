// Statistics accumulators. The fast paths keep four independent lanes, which the compiler can
// vectorise without reassociating floating point; the lanes are combined in a fixed order.
#include "gradscope/stats.hpp"

#include <algorithm>
#include <cmath>

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

template void MomentAccumulator::add<float>(const float*, std::int64_t);
template void MomentAccumulator::add<double>(const double*, std::int64_t);
template void SquareSum::add<float>(const float*, std::int64_t);
template void SquareSum::add<double>(const double*, std::int64_t);

}  // namespace gradscope
