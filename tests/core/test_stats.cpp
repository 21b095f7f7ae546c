// The statistics accumulators against two-pass reference computations, including the cases that
// break naive formulas: a large mean with a tiny spread, non-finite values, merging of blocks; and
// the histogram against hand-placed values and a division-based reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/core/rng.hpp"
#include "gradscope/core/stats.hpp"

namespace gradscope {
namespace {

std::vector<double> normals(std::size_t n, double mean, double std, std::uint64_t key = 42) {
  std::vector<double> v(n);
  fill_normal(key, 0, n, v.data());
  for (double& x : v) x = mean + std * x;
  return v;
}

struct TwoPass {
  double mean = 0, std = 0, rms = 0;
};

TwoPass two_pass(const std::vector<double>& v) {
  TwoPass r;
  for (double x : v) r.mean += x;
  r.mean /= static_cast<double>(v.size());
  double m2 = 0, sq = 0;
  for (double x : v) {
    m2 += (x - r.mean) * (x - r.mean);
    sq += x * x;
  }
  r.std = std::sqrt(m2 / static_cast<double>(v.size()));
  r.rms = std::sqrt(sq / static_cast<double>(v.size()));
  return r;
}

TEST(MomentAccumulator, MatchesTwoPassReference) {
  const auto v = normals(10001, 0.3, 2.0);
  MomentAccumulator acc;
  acc.add(v.data(), static_cast<std::int64_t>(v.size()));
  const MomentStats s = acc.finish();
  const TwoPass ref = two_pass(v);
  // Both are sums of 1e4 doubles in different orders: agreement to ~1e-12 relative.
  EXPECT_NEAR(s.mean, ref.mean, 1e-12);
  EXPECT_NEAR(s.std / ref.std, 1.0, 1e-12);
  EXPECT_NEAR(s.rms / ref.rms, 1.0, 1e-12);
  EXPECT_EQ(s.finite, 10001);
  EXPECT_EQ(s.nonfinite, 0);
  EXPECT_EQ(s.min, *std::min_element(v.begin(), v.end()));
  EXPECT_EQ(s.max, *std::max_element(v.begin(), v.end()));
}

TEST(MomentAccumulator, LargeMeanTinySpreadKeepsTheVariance) {
  // E[x^2] - mean^2 would lose all 9 significant digits of the variance here; shifted sums don't.
  const auto v = normals(4096, 1e6, 1e-3);
  MomentAccumulator acc;
  for (std::size_t i = 0; i < v.size(); i += 100) {
    MomentAccumulator block;
    block.add(v.data() + i, static_cast<std::int64_t>(std::min<std::size_t>(100, v.size() - i)));
    acc.merge(block);
  }
  const TwoPass ref = two_pass(v);
  // Values are 1e6 +- 1e-3 stored in double (ulp 1e-10): the std is known to ~1e-7 relative.
  EXPECT_NEAR(acc.finish().std / ref.std, 1.0, 1e-6);
}

TEST(MomentAccumulator, FloatInputIsAccumulatedInDouble) {
  std::vector<float> v(1 << 20, 0.1f);
  MomentAccumulator acc;
  acc.add(v.data(), static_cast<std::int64_t>(v.size()));
  // A float accumulator would be off in the 2nd digit after 2^20 additions; double is exact here.
  EXPECT_DOUBLE_EQ(acc.finish().mean, static_cast<double>(0.1f));
  EXPECT_DOUBLE_EQ(acc.finish().std, 0.0);
}

TEST(MomentAccumulator, NonFiniteValuesAreCountedAndExcluded) {
  std::vector<double> v = {1.0, std::numeric_limits<double>::quiet_NaN(), 3.0,
                           std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity()};
  MomentAccumulator acc;
  acc.add(v.data(), 5);
  const MomentStats s = acc.finish();
  EXPECT_EQ(s.finite, 2);
  EXPECT_EQ(s.nonfinite, 3);
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  EXPECT_DOUBLE_EQ(s.std, 1.0);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 3.0);
}

TEST(MomentAccumulator, AllNonFiniteGivesNaNMomentsAndACount) {
  std::vector<float> v(7, std::numeric_limits<float>::infinity());
  MomentAccumulator acc;
  acc.add(v.data(), 7);
  const MomentStats s = acc.finish();
  EXPECT_EQ(s.finite, 0);
  EXPECT_EQ(s.nonfinite, 7);
  EXPECT_TRUE(std::isnan(s.rms));
}

TEST(MomentAccumulator, MergeOrderGivesTheSameMoments) {
  const auto v = normals(3000, -2.0, 0.5, 7);
  MomentAccumulator a, b, c, ab_c, a_bc;
  a.add(v.data(), 1000);
  b.add(v.data() + 1000, 1000);
  c.add(v.data() + 2000, 1000);
  ab_c = a;
  ab_c.merge(b);
  ab_c.merge(c);
  MomentAccumulator bc = b;
  bc.merge(c);
  a_bc = a;
  a_bc.merge(bc);
  // Different association: equal to rounding, ~1e-15 relative.
  EXPECT_NEAR(ab_c.finish().std / a_bc.finish().std, 1.0, 1e-14);
  EXPECT_NEAR(ab_c.finish().mean, a_bc.finish().mean, 1e-14);
}

TEST(SquareSum, SumsSquaresAndCountsNonFinite) {
  std::vector<float> v = {3.0f, 4.0f, std::numeric_limits<float>::quiet_NaN(), 12.0f, 0.0f};
  SquareSum s;
  s.add(v.data(), 5);
  EXPECT_DOUBLE_EQ(s.value(), 169.0);
  EXPECT_EQ(s.finite, 4);
  EXPECT_EQ(s.nonfinite, 1);
  std::vector<double> w(1001, 0.5);
  SquareSum t;
  t.add(w.data(), 1001);
  EXPECT_DOUBLE_EQ(t.sum, 250.25);
}

TEST(MomentAccumulator, ValuesWhoseSquaresLeaveDoublesRangeKeepTheirMoments) {
  // A float64 network's activations of 1e200 (squares 1e400) or 1e-200 (squares underflow):
  // the moments of x * 2^k are those of x times 2^k, exactly, since powers of two change no
  // digit. Mixed in with non-finite values and merged across blocks of different scales.
  const std::vector<double> base = normals(1003, 0.7, 1.3);
  MomentAccumulator ref;
  ref.add(base.data(), static_cast<std::int64_t>(base.size()));
  const MomentStats r = ref.finish();
  for (int k : {-1000, -700, -520, 520, 700, 1000}) {
    SCOPED_TRACE("2^" + std::to_string(k));
    std::vector<double> v = base;
    for (double& x : v) x = std::ldexp(x, k);
    v.insert(v.begin() + 100, std::numeric_limits<double>::quiet_NaN());
    MomentAccumulator acc;
    acc.add(v.data(), 500);
    acc.add(v.data() + 500, static_cast<std::int64_t>(v.size()) - 500);
    const MomentStats m = acc.finish();
    EXPECT_EQ(m.finite, 1003);
    EXPECT_EQ(m.nonfinite, 1);
    // Another association of the same sums: a few ulps.
    EXPECT_NEAR(std::ldexp(m.mean, -k) / r.mean, 1.0, 1e-13);
    EXPECT_NEAR(std::ldexp(m.std, -k) / r.std, 1.0, 1e-13);
    EXPECT_NEAR(std::ldexp(m.rms, -k) / r.rms, 1.0, 1e-13);
    EXPECT_EQ(m.max, std::ldexp(r.max, k));
  }
  // A block of huge values merged with a block of ordinary ones: the spread is the huge one's.
  const std::vector<double> huge = {1e300, -1e300, 5e299};
  const std::vector<double> small = {1.0, 2.0};
  MomentAccumulator acc;
  acc.add(small.data(), 2);
  acc.add(huge.data(), 3);
  const MomentStats m = acc.finish();
  const double mean = (1e300 - 1e300 + 5e299 + 3.0) / 5.0;
  EXPECT_NEAR(m.mean / mean, 1.0, 1e-14);
  // Population variance of {1e300, -1e300, 5e299, ~0, ~0} around 1e299: sum of squares
  // (81 + 121 + 16 + 1 + 1) e598 / 5 = 44e598, std 6.633e299.
  EXPECT_NEAR(m.std / (std::sqrt(44.0) * 1e299), 1.0, 1e-14);
  EXPECT_TRUE(std::isfinite(m.rms));
}

TEST(SquareSum, SquaresBeyondDoublesRangeAreSummedScaled) {
  for (int k : {-1000, -600, 600, 1000}) {
    SCOPED_TRACE("2^" + std::to_string(k));
    const std::vector<double> v = {std::ldexp(3.0, k), std::ldexp(4.0, k),
                                   std::numeric_limits<double>::infinity()};
    SquareSum s;
    s.add(v.data(), 3);
    SquareSum t;
    t.add(v.data(), 1);
    t.merge(s);
    EXPECT_EQ(s.finite, 2);
    EXPECT_EQ(s.nonfinite, 1);
    // rms of {3, 4} * 2^k = 2^k sqrt(12.5); the norm of {3, 4, 3} * 2^k = 2^k sqrt(34).
    EXPECT_NEAR(s.rms(0).log10, k * std::log10(2.0) + 0.5 * std::log10(12.5), 1e-14 * std::abs(k));
    EXPECT_NEAR(t.root(0).log10, k * std::log10(2.0) + 0.5 * std::log10(34.0), 1e-14 * std::abs(k));
  }
  SquareSum none;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  none.add(&nan, 1);
  EXPECT_TRUE(std::isnan(none.rms(0).log10));  // no finite value: NaN, never 0
}

// ---- HistogramAccumulator

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

template <class Scalar>
std::vector<std::int64_t> histogram_of(const std::vector<Scalar>& v, double lo, double hi,
                                       int bins) {
  HistogramAccumulator acc(lo, hi, bins);
  acc.add(v.data(), static_cast<std::int64_t>(v.size()));
  return acc.counts();
}

template <class Scalar>
void expect_hand_placed_bins() {
  // 40 bins over [0, 10]: w = 0.25, and every edge used below is exact in float and double.
  const std::vector<Scalar> v = {Scalar(0),     Scalar(0.1),    Scalar(0.25), Scalar(0.2499),
                                 Scalar(5),     Scalar(9.7499), Scalar(9.75), Scalar(9.9),
                                 Scalar(10),    Scalar(2.5),    Scalar(kNaN), Scalar(kInf),
                                 Scalar(-kInf), Scalar(0.5),    Scalar(0.75)};
  std::vector<std::int64_t> expected(40, 0);
  expected[0] = 3;   // 0 (the lower edge), 0.1, 0.2499
  expected[1] = 1;   // 0.25: an edge belongs to the bin above it
  expected[2] = 1;   // 0.5
  expected[3] = 1;   // 0.75
  expected[10] = 1;  // 2.5
  expected[20] = 1;  // 5
  expected[38] = 1;  // 9.7499
  expected[39] = 3;  // 9.75, 9.9, and 10: the upper edge is in the last bin
  EXPECT_EQ(histogram_of(v, 0.0, 10.0, 40), expected);
}

TEST(HistogramAccumulator, HandPlacedFloatValuesLandInTheirBinsAndNonFiniteOnesNowhere) {
  expect_hand_placed_bins<float>();
}

TEST(HistogramAccumulator, HandPlacedDoubleValuesLandInTheirBinsAndNonFiniteOnesNowhere) {
  expect_hand_placed_bins<double>();
}

TEST(HistogramAccumulator, EqualMinAndMaxPutEveryFiniteValueInTheFirstBin) {
  const std::vector<float> v = {2.5f, 2.5f, static_cast<float>(kNaN), 2.5f};
  std::vector<std::int64_t> expected(40, 0);
  expected[0] = 3;
  EXPECT_EQ(histogram_of(v, 2.5, 2.5, 40), expected);
}

TEST(HistogramAccumulator, CountsSumToTheFiniteValuesAndMatchADivisionReference) {
  // 10007 values (not a multiple of the lanes or of the block), every 97th one NaN or Inf.
  std::vector<double> v = normals(10007, 0.5, 2.0, 5);
  std::int64_t nonfinite = 0;
  for (std::size_t i = 0; i < v.size(); i += 97, ++nonfinite) v[i] = i % 2 == 0 ? kNaN : -kInf;
  double lo = kInf, hi = -kInf;
  for (double x : v) {
    if (!std::isfinite(x)) continue;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  const int bins = 40;
  std::vector<std::int64_t> expected(bins, 0);
  int near_edge = 0;
  for (double x : v) {
    if (!std::isfinite(x)) continue;
    const double u = (x - lo) / (hi - lo) * bins;
    const double nearest = std::round(u);
    // Within rounding of an interior edge the two computations may disagree; count such values.
    if (nearest > 0 && nearest < bins && std::abs(u - nearest) < 1e-9) ++near_edge;
    ++expected[static_cast<std::size_t>(std::min(std::floor(u), bins - 1.0))];
  }
  ASSERT_EQ(near_edge, 0) << "choose another seed: a value sits on an edge";
  const std::vector<std::int64_t> counts = histogram_of(v, lo, hi, bins);
  EXPECT_EQ(counts, expected);
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), std::int64_t{0}),
            static_cast<std::int64_t>(v.size()) - nonfinite);
  EXPECT_GE(counts.front(), 1);  // the minimum
  EXPECT_GE(counts.back(), 1);   // the maximum
}

TEST(HistogramAccumulator, MergedBlocksGiveTheCountsOfTheWhole) {
  const std::vector<double> v = normals(3001, 0.0, 1.0, 9);
  const double lo = *std::min_element(v.begin(), v.end());
  const double hi = *std::max_element(v.begin(), v.end());
  HistogramAccumulator a(lo, hi, 40), b(lo, hi, 40), c(lo, hi, 40);
  a.add(v.data(), 1000);
  b.add(v.data() + 1000, 3);
  c.add(v.data() + 1003, 1998);
  c.merge(a);
  c.merge(b);
  EXPECT_EQ(c.counts(), histogram_of(v, lo, hi, 40));
}

TEST(HistogramAccumulator, RangesBeyondTheFormatsLimitsStillFindTheBin) {
  // hi - lo overflows: 40 bins of width hi / 20; 0.33 hi is in bin 20 + 6.6.
  const double big = 1.5e308;
  const std::vector<double> d = {-big, 0.33 * big, big, -0.99 * big};
  std::vector<std::int64_t> expected(40, 0);
  expected[0] = 2;
  expected[26] = 1;
  expected[39] = 1;
  EXPECT_EQ(histogram_of(d, -big, big, 40), expected);
  const float bigf = 3e38f;
  const std::vector<float> f = {-bigf, 0.33f * bigf, bigf, -0.99f * bigf};
  EXPECT_EQ(histogram_of(f, -static_cast<double>(bigf), static_cast<double>(bigf), 40), expected);
  // A range of subnormals: bins / (hi - lo) overflows; value k * the smallest subnormal is in bin
  // k.
  const float tiny = std::numeric_limits<float>::denorm_min();
  std::vector<float> s;
  for (int k = 0; k <= 40; ++k) s.push_back(static_cast<float>(k) * tiny);
  std::vector<std::int64_t> one_each(40, 1);
  one_each[39] = 2;  // 39 and 40 (the upper edge) times the smallest subnormal
  EXPECT_EQ(histogram_of(s, 0.0, 40.0 * static_cast<double>(tiny), 40), one_each);
}

TEST(HistogramAccumulator, RejectsABadRangeAndTheMatrixHelperReturnsNoCounts) {
  EXPECT_THROW(HistogramAccumulator(1.0, 0.0, 40), gradscope::Error);
  EXPECT_THROW(HistogramAccumulator(kNaN, 1.0, 40), gradscope::Error);
  EXPECT_THROW(HistogramAccumulator(0.0, kInf, 40), gradscope::Error);
  EXPECT_THROW(HistogramAccumulator(0.0, 1.0, 0), gradscope::Error);
  // The range of a matrix without a finite entry is NaN: no histogram.
  const Eigen::MatrixXf m = Eigen::MatrixXf::Constant(3, 2, static_cast<float>(kNaN));
  EXPECT_TRUE(histogram<float>(m, kNaN, kNaN, 40).empty());
}

TEST(HistogramAccumulator, MatrixHelperBinsEveryColumnOfABlock) {
  Eigen::MatrixXd m(4, 3);
  m << 0, 1, 2,  //
      3, 4, 5,   //
      6, 7, 8,   //
      9, 10, 11;
  // Rows 1..2 of columns 1..2: 4, 5, 7, 8 over [4, 8] in 4 bins of width 1 (8 in the last).
  const std::vector<std::int64_t> counts = histogram<double>(m.block(1, 1, 2, 2), 4.0, 8.0, 4);
  EXPECT_EQ(counts, (std::vector<std::int64_t>{1, 1, 0, 2}));
}

}  // namespace
}  // namespace gradscope
