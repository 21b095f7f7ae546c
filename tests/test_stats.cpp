// The statistics accumulators against two-pass reference computations, including the cases that
// break naive formulas: a large mean with a tiny spread, non-finite values, merging of blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gradscope/rng.hpp"
#include "gradscope/stats.hpp"

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
  EXPECT_DOUBLE_EQ(s.sum, 169.0);
  EXPECT_EQ(s.finite, 4);
  EXPECT_EQ(s.nonfinite, 1);
  std::vector<double> w(1001, 0.5);
  SquareSum t;
  t.add(w.data(), 1001);
  EXPECT_DOUBLE_EQ(t.sum, 250.25);
}

}  // namespace
}  // namespace gradscope
