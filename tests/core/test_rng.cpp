// Tests of the counter-based generator: pinned values, the ziggurat's tables and paths, the normal
// distribution including its tails, independence of how a stream is cut, and separation of streams.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

#include "gradscope/core/rng.hpp"

namespace gradscope {

// The ziggurat's tables, defined in rng.cpp and deliberately not in rng.hpp: only these tests
// read them.
extern const std::array<double, 257> kZigguratX;
extern const std::array<double, 257> kZigguratF;

namespace {

constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// SplitMix64 as Vigna publishes it (a state advanced by the golden gamma, then mixed), written
// independently of rng.hpp: random_bits(key, i) must be its output number i from state `key`.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t state) : state_(state) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += kGolden);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

// The inverse of mix64, to build keys whose raw bits at counter 0 are a chosen value.
std::uint64_t unmix64(std::uint64_t z) {
  // Modular inverse of an odd multiplier by Newton's iteration (each step doubles the bits).
  const auto inverse = [](std::uint64_t a) {
    std::uint64_t x = a;
    for (int k = 0; k < 6; ++k) x *= 2 - a * x;
    return x;
  };
  z = z ^ (z >> 31) ^ (z >> 62);
  z *= inverse(0x94d049bb133111ebULL);
  z = z ^ (z >> 27) ^ (z >> 54);
  z *= inverse(0xbf58476d1ce4e5b9ULL);
  z = z ^ (z >> 30) ^ (z >> 60);
  return z;
}

// A key for which random_bits(key, 0) == bits.
std::uint64_t key_with_first_bits(std::uint64_t bits) { return unmix64(bits) - kGolden; }

const std::uint64_t kKey = stream_key(42, 3, StreamPurpose::kWeights);

TEST(Rng, RandomBitsMatchPublishedSplitMix64) {
  // The first outputs of SplitMix64 seeded with 0, as in Vigna's reference implementation.
  EXPECT_EQ(random_bits(0, 0), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(random_bits(0, 1), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(random_bits(0, 2), 0x06c45d188009454fULL);
}

TEST(Rng, RandomBitsEqualIndependentSplitMix64) {
  SplitMix64 reference(kKey);
  for (std::uint64_t i = 0; i < 1000; ++i) {
    ASSERT_EQ(random_bits(kKey, i), reference.next()) << "counter " << i;
  }
}

TEST(Rng, UnmixInvertsMix) {
  for (std::uint64_t z : {0ULL, 1ULL, 0x0123456789abcdefULL, ~0ULL}) {
    EXPECT_EQ(mix64(unmix64(z)), z);
  }
}

// Pinned once from this implementation: any change to the key derivation, the bits, the uniform
// conversion or the normal transform changes one of these and must be deliberate.
TEST(Rng, KnownAnswers) {
  EXPECT_EQ(kKey, 0xdeb9c7c95030564aULL);
  EXPECT_EQ(random_bits(kKey, 0), 0xbb31b8ab53e0d31bULL);
  EXPECT_EQ(random_bits(kKey, 1000000), 0xfaf632b47798dec0ULL);
  EXPECT_EQ(uniform01(kKey, 0), 0x1.76637156a7c1ap-1);
  EXPECT_EQ(uniform01(kKey, 1), 0x1.3fe8b7c939e0cp-2);
  double z0 = 0.0;
  double z1 = 0.0;
  normal_pair(kKey, 0, z0, z1);
  EXPECT_EQ(z0, -0x1.cf855e122fb34p+0);
  EXPECT_EQ(z1, 0x1.4d9d86cb750ddp-2);
  normal_pair(kKey, 1, z0, z1);
  EXPECT_EQ(z0, -0x1.99f398270b1d4p-3);
  EXPECT_EQ(z1, 0x1.ad7d26cf1a59p-2);
  normal_pair(kKey, 123456789, z0, z1);
  EXPECT_EQ(z0, 0x1.bdd65a92d4fa8p+0);
  EXPECT_EQ(z1, -0x1.38f89e1915f7ep-5);
}

TEST(Rng, UniformsAre53BitFractions) {
  for (std::uint64_t i = 0; i < 1000; ++i) {
    const std::uint64_t top = random_bits(kKey, i) >> 11;
    EXPECT_EQ(uniform01(kKey, i), std::ldexp(static_cast<double>(top), -53));
    EXPECT_EQ(uniform01_open0(kKey, i), std::ldexp(static_cast<double>(top + 1), -53));
  }
}

TEST(Rng, ExtremeBitsStayInsideTheIntervals) {
  const std::uint64_t zero_key = key_with_first_bits(0);
  ASSERT_EQ(random_bits(zero_key, 0), 0ULL);
  EXPECT_EQ(uniform01(zero_key, 0), 0.0);
  EXPECT_EQ(uniform01_open0(zero_key, 0), 0x1.0p-53);  // the log's argument is never 0

  const std::uint64_t ones_key = key_with_first_bits(~0ULL);
  ASSERT_EQ(random_bits(ones_key, 0), ~0ULL);
  EXPECT_EQ(uniform01(ones_key, 0), 1.0 - 0x1.0p-53);
  EXPECT_LT(uniform01(ones_key, 0), 1.0);
  EXPECT_EQ(uniform01_open0(ones_key, 0), 1.0);
}

// Marsaglia & Tsang's ziggurat as rng.cpp lays out a 64-bit draw: layer i = bits 0..7, sign =
// bit 8, u = (m + 1/2) / 2^52 with m = bits 12..63, candidate x = +-u X[i]. The path it takes:
// inside the inner box (|x| < X[i+1]: accepted as it is), the wedge (i >= 1) or the tail (i = 0).
enum class Path { kInner, kWedge, kTail };

struct FirstDraw {
  Path path;
  std::size_t layer;
  double x;
};

FirstDraw first_draw(std::uint64_t bits) {
  const std::size_t layer = bits & 0xff;
  const double u = std::ldexp(static_cast<double>(2 * (bits >> 12) + 1), -53);  // exact
  const double magnitude = u * kZigguratX[layer];
  const double x = (bits & 0x100) != 0 ? -magnitude : magnitude;
  if (magnitude < kZigguratX[layer + 1]) return {Path::kInner, layer, x};
  return {layer == 0 ? Path::kTail : Path::kWedge, layer, x};
}

// Pinned once from this implementation, one counter of kKey for each way out of the first draw:
// the rejection stream's derivation and the wedge and tail arithmetic show up here.
TEST(Rng, KnownAnswersOfTheRejectionPaths) {
  double z = 0.0;
  // Counter 9 falls in the wedge of layer 114 and is rejected there: its value comes from the
  // rejection stream.
  ASSERT_EQ(first_draw(random_bits(kKey, 9)).path, Path::kWedge);
  fill_normal(kKey, 9, 1, &z);
  EXPECT_NE(z, first_draw(random_bits(kKey, 9)).x);
  EXPECT_EQ(z, -0x1.182e67de0ea33p-2);
  // Counter 58 falls in the wedge of layer 228 and is accepted: the candidate itself.
  ASSERT_EQ(first_draw(random_bits(kKey, 58)).path, Path::kWedge);
  fill_normal(kKey, 58, 1, &z);
  EXPECT_EQ(z, first_draw(random_bits(kKey, 58)).x);
  EXPECT_EQ(z, 0x1.8c1d47d57c56cp-1);
  // Counter 4670 is the first of kKey to go to the tail.
  ASSERT_EQ(first_draw(random_bits(kKey, 4670)).path, Path::kTail);
  fill_normal(kKey, 4670, 1, &z);
  EXPECT_EQ(z, 0x1.030e059e8f921p+2);
}

long double gauss(long double x) { return std::exp(-x * x / 2); }

const long double kPi = 3.141592653589793238462643383279502884L;

TEST(Rng, ZigguratTablesSolveTheirDefiningEquations) {
  if (std::numeric_limits<long double>::digits < 64) {
    GTEST_SKIP() << "long double is no more precise than double here";
  }
  // The recursion f(X[i+1]) = f(X[i]) + v / X[i] run upwards from X[1] = r, with v = r f(r) +
  // sqrt(pi/2) erfc(r / sqrt(2)) and X[0] = v / f(r). Returns the top layer's residual
  // f(X[255]) + v / X[255] - 1, which is 0 for the right r and positive for too small an r (also
  // when the layers reach f = 1 before the top).
  std::array<long double, 257> x{};
  long double v = 0.0L;
  const auto build = [&x, &v](long double r) {
    v = r * gauss(r) + std::sqrt(kPi / 2) * std::erfc(r / std::sqrt(2.0L));
    x[0] = v / gauss(r);
    x[1] = r;
    for (std::size_t i = 1; i < 255; ++i) {
      const long double y = gauss(x[i]) + v / x[i];
      if (y >= 1) return 1.0L;
      x[i + 1] = std::sqrt(-2 * std::log(y));
    }
    x[256] = 0;
    return gauss(x[255]) + v / x[255] - 1;
  };
  long double lo = 3.6L;
  long double hi = 3.7L;
  for (int step = 0; step < 200; ++step) {
    const long double mid = (lo + hi) / 2;
    (build(mid) > 0 ? lo : hi) = mid;
  }
  build(lo);
  // Marsaglia & Tsang (2000) give r = 3.6541528853610088 and v = 0.00492867323399 for 256
  // layers. 1e-15 relative for r: all the digits they print. 5e-12 relative for v: their v is 2
  // units of its twelfth and last digit above the solution (4.92867323397466e-3).
  EXPECT_NEAR(static_cast<double>(lo), 3.6541528853610088, 1e-15 * 3.65);
  EXPECT_NEAR(static_cast<double>(v), 0.00492867323399, 5e-12 * 0.0049);

  double worst_x = 0.0;
  double worst_f = 0.0;
  for (std::size_t i = 0; i < 256; ++i) {
    const auto rel = [](double table, long double exact) {
      return static_cast<double>(std::fabs(table - exact) / exact);
    };
    worst_x = std::max(worst_x, rel(kZigguratX[i], x[i]));
    if (i > 0) worst_f = std::max(worst_f, rel(kZigguratF[i], gauss(x[i])));
  }
  // 1e-15 relative: the tables hold the nearest doubles (within 1.1e-16) and this long-double
  // recomputation adds less than 1e-16 (measured worst: 1.05e-16 for X, 0.98e-16 for f(X)); the
  // rest is room for a less accurate expl or logl.
  EXPECT_LT(worst_x, 1e-15);
  EXPECT_LT(worst_f, 1e-15);
  EXPECT_EQ(kZigguratX[256], 0.0);
  EXPECT_EQ(kZigguratF[0], 0.0);
  EXPECT_EQ(kZigguratF[256], 1.0);
}

// The tables checked above are the ones the generator uses: a draw with m = 0 (u = 2^-53) is
// inside the inner box of every layer but the top one, so it comes out as +-2^-53 X[i] exactly.
TEST(Rng, ZigguratUsesTheCheckedTables) {
  for (std::uint64_t layer = 0; layer < 255; ++layer) {
    for (std::uint64_t sign : {0ULL, 0x100ULL}) {
      double z = 0.0;
      fill_normal(key_with_first_bits(layer | sign), 0, 1, &z);
      const double want = std::ldexp(kZigguratX[layer], -53);
      EXPECT_EQ(z, sign != 0 ? -want : want) << "layer " << layer;
    }
  }
}

TEST(Rng, FirstDrawsTakeTheirPaths) {
  constexpr std::uint64_t kCount = 2000000;
  std::vector<double> z(kCount);
  fill_normal(kKey, 0, kCount, z.data());
  const double r = kZigguratX[1];
  std::uint64_t inner_mismatches = 0;
  std::uint64_t tails = 0;
  std::uint64_t wedges = 0;
  std::uint64_t wedges_accepted = 0;
  for (std::uint64_t k = 0; k < kCount; ++k) {
    const FirstDraw d = first_draw(random_bits(kKey, k));
    // The largest normal the generator can make: the tail's r - log(2^-53) / r = 13.7.
    ASSERT_TRUE(std::isfinite(z[k]) && std::fabs(z[k]) < 14.0) << "counter " << k;
    if (d.path == Path::kInner) {
      inner_mismatches += z[k] == d.x ? 0 : 1;
    } else if (d.path == Path::kTail) {
      ++tails;
      ASSERT_GE(std::fabs(z[k]), r) << "counter " << k;
      ASSERT_EQ(std::signbit(z[k]), std::signbit(d.x)) << "counter " << k;
    } else {
      ++wedges;
      // Accepted at once, the candidate itself lies between X[i+1] and X[i]; otherwise the value
      // comes from later draws (a coincidence with the candidate has probability ~2^-52).
      if (z[k] == d.x) {
        ++wedges_accepted;
        ASSERT_GE(std::fabs(z[k]), kZigguratX[d.layer + 1]);
        ASSERT_LT(std::fabs(z[k]), kZigguratX[d.layer]);
      }
    }
  }
  EXPECT_EQ(inner_mismatches, 0U);
  // Expected about 2e6 (1 - r / X[0]) / 256 = 510 tails and 2e6 * 1.46% = 29000 wedges.
  ASSERT_GT(tails, 300U);
  ASSERT_GT(wedges, 20000U);

  // A wedge candidate of layer i is uniform on [X[i+1], X[i]) x [F[i], F[i+1]); the chance it
  // is under the curve is that box's area under f over its whole area. Layer i's wedge comes up
  // with probability proportional to 1 - X[i+1] / X[i].
  long double weight = 0.0L;
  long double accepted = 0.0L;
  for (std::size_t i = 1; i < 256; ++i) {
    const long double x0 = kZigguratX[i + 1];
    const long double x1 = kZigguratX[i];
    const long double under =
        std::sqrt(kPi / 2) * (std::erf(x1 / std::sqrt(2.0L)) - std::erf(x0 / std::sqrt(2.0L))) -
        kZigguratF[i] * (x1 - x0);
    const long double box =
        (x1 - x0) * (static_cast<long double>(kZigguratF[i + 1]) - kZigguratF[i]);
    weight += 1 - x0 / x1;
    accepted += (1 - x0 / x1) * under / box;
  }
  const auto p = static_cast<double>(accepted / weight);
  const auto n = static_cast<double>(wedges);
  // 5 binomial standard errors of the fraction accepted at once.
  EXPECT_NEAR(static_cast<double>(wedges_accepted) / n, p, 5.0 * std::sqrt(p * (1 - p) / n));
}

// One-sided tail probability P(Z > t) of the standard normal.
double upper_tail(double t) { return 0.5 * std::erfc(t / std::sqrt(2.0)); }

TEST(Rng, TenMillionNormalsMatchTheNormalIncludingTails) {
  constexpr std::uint64_t kCount = 10000000;
  std::vector<double> z(kCount);
  fill_normal(stream_key(2024, 7, StreamPurpose::kWeights), 3, kCount, z.data());
  const auto n = static_cast<double>(kCount);

  // Each side's tail beyond 3, r (where the ziggurat's tail method takes over), 4 and 4.5,
  // against 5 binomial standard errors.
  for (double t : {3.0, kZigguratX[1], 4.0, 4.5}) {
    const double p = upper_tail(t);
    const double tolerance = 5.0 * std::sqrt(p * (1.0 - p) / n);
    const auto above =
        static_cast<double>(std::count_if(z.begin(), z.end(), [t](double v) { return v > t; }));
    const auto below =
        static_cast<double>(std::count_if(z.begin(), z.end(), [t](double v) { return v < -t; }));
    EXPECT_NEAR(above / n, p, tolerance) << "Z > " << t;
    EXPECT_NEAR(below / n, p, tolerance) << "Z < -" << t;
  }

  // Pearson's chi-square over 36 bins: width 1/4 on [-4, 4], then [4, 4.5), [4.5, inf) and
  // their mirror images; the smallest expects 34 draws.
  std::vector<double> edges = {-4.5};
  for (int e = -16; e <= 16; ++e) edges.push_back(0.25 * e);
  edges.push_back(4.5);
  std::vector<double> counts(edges.size() + 1, 0.0);
  for (double v : z) {
    counts[static_cast<std::size_t>(std::upper_bound(edges.begin(), edges.end(), v) -
                                    edges.begin())] += 1.0;
  }
  double chi2 = 0.0;
  for (std::size_t b = 0; b < counts.size(); ++b) {
    const double low = b == 0 ? 1.0 : upper_tail(edges[b - 1]);
    const double high = b == edges.size() ? 0.0 : upper_tail(edges[b]);
    const double expected = n * (low - high);
    chi2 += (counts[b] - expected) * (counts[b] - expected) / expected;
  }
  // The chi-square distribution's 0.999 quantile for 35 degrees of freedom, by Wilson and
  // Hilferty's cube-root approximation (good to 1% here): 66.6.
  const auto df = static_cast<double>(counts.size() - 1);
  const double c = 2.0 / (9.0 * df);
  EXPECT_LT(chi2, df * std::pow(1.0 - c + 3.0902 * std::sqrt(c), 3.0));
}

struct Moments {
  double mean = 0.0;
  double variance = 0.0;
  double skewness = 0.0;
  double excess_kurtosis = 0.0;
};

Moments moments(const std::vector<double>& x) {
  const auto n = static_cast<double>(x.size());
  double sum = 0.0;
  for (double v : x) sum += v;
  Moments m;
  m.mean = sum / n;
  double m2 = 0.0;
  double m3 = 0.0;
  double m4 = 0.0;
  for (double v : x) {
    const double d = v - m.mean;
    m2 += d * d;
    m3 += d * d * d;
    m4 += d * d * d * d;
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  m.variance = m2;
  m.skewness = m3 / std::pow(m2, 1.5);
  m.excess_kurtosis = m4 / (m2 * m2) - 3.0;
  return m;
}

constexpr std::uint64_t kDraws = 1000000;

TEST(Rng, UniformRangeAndMoments) {
  std::vector<double> u(kDraws);
  fill_uniform(kKey, 0, kDraws, 0.0, 1.0, u.data());
  EXPECT_GE(*std::min_element(u.begin(), u.end()), 0.0);
  EXPECT_LT(*std::max_element(u.begin(), u.end()), 1.0);
  const Moments m = moments(u);
  const auto n = static_cast<double>(kDraws);
  // 5 standard errors (CLT): the mean's is sqrt(1/12 / N) = 2.9e-4.
  EXPECT_NEAR(m.mean, 0.5, 5.0 * std::sqrt(1.0 / 12.0 / n));
  // 5 standard errors: a sample variance's is sqrt((mu4 - sigma^4) / N), mu4 = 1/80 for U(0,1).
  EXPECT_NEAR(m.variance, 1.0 / 12.0, 5.0 * std::sqrt((1.0 / 80.0 - 1.0 / 144.0) / n));
}

TEST(Rng, UniformOpen0IsInsideZeroOne) {
  double lowest = 1.0;
  double highest = 0.0;
  for (std::uint64_t i = 0; i < kDraws; ++i) {
    const double u = uniform01_open0(kKey, i);
    lowest = std::min(lowest, u);
    highest = std::max(highest, u);
  }
  EXPECT_GT(lowest, 0.0);
  EXPECT_LE(highest, 1.0);
}

TEST(Rng, NormalMoments) {
  std::vector<double> z(kDraws);
  fill_normal(kKey, 0, kDraws, z.data());
  const Moments m = moments(z);
  const auto n = static_cast<double>(kDraws);
  // Each bound is 5 standard errors of the statistic for N(0, 1) samples: sqrt(1/N) for the
  // mean, sqrt(2/N) for the variance, sqrt(6/N) for the skewness, sqrt(24/N) for the kurtosis.
  EXPECT_NEAR(m.mean, 0.0, 5.0 * std::sqrt(1.0 / n));
  EXPECT_NEAR(m.variance, 1.0, 5.0 * std::sqrt(2.0 / n));
  EXPECT_NEAR(m.skewness, 0.0, 5.0 * std::sqrt(6.0 / n));
  EXPECT_NEAR(m.excess_kurtosis, 0.0, 5.0 * std::sqrt(24.0 / n));
}

TEST(Rng, NormalDistributionPassesKolmogorovSmirnov) {
  std::vector<double> z(kDraws);
  fill_normal(kKey, 7, kDraws, z.data());
  std::sort(z.begin(), z.end());
  const auto n = static_cast<double>(kDraws);
  double d = 0.0;
  for (std::size_t i = 0; i < z.size(); ++i) {
    const double cdf = 0.5 * std::erfc(-z[i] / std::sqrt(2.0));
    d = std::max({d, static_cast<double>(i + 1) / n - cdf, cdf - static_cast<double>(i) / n});
  }
  // 1.95 / sqrt(N): the Kolmogorov distribution's critical value at significance 0.001.
  EXPECT_LT(d, 1.95 / std::sqrt(n));
  // P(|Z| > 3) = 0.0026998; 5 binomial standard errors.
  const auto tail = static_cast<double>(
      std::count_if(z.begin(), z.end(), [](double v) { return std::fabs(v) > 3.0; }));
  const double p = 0.0026997960632601866;
  EXPECT_NEAR(tail / n, p, 5.0 * std::sqrt(p * (1.0 - p) / n));
}

TEST(Rng, FillNormalMatchesNormalPair) {
  std::vector<double> z(301);
  fill_normal(kKey, 0, z.size(), z.data());
  for (std::uint64_t j = 0; j < 150; ++j) {
    double z0 = 0.0;
    double z1 = 0.0;
    normal_pair(kKey, j, z0, z1);
    EXPECT_EQ(z[2 * j], z0);
    EXPECT_EQ(z[2 * j + 1], z1);
  }
}

// Cut points with odd starts and odd lengths, crossing fill_normal's internal blocks of 256.
const std::vector<std::uint64_t> kCuts = {0, 1, 4, 11, 12, 77, 128, 129, 130, 257, 600, 1001};

TEST(Rng, FillNormalIsIndependentOfChunking) {
  const std::uint64_t first = 5;  // an odd start of the whole range too
  std::vector<double> whole(kCuts.back());
  fill_normal(kKey, first, whole.size(), whole.data());
  std::vector<double> pieces(whole.size());
  for (std::size_t c = 0; c + 1 < kCuts.size(); ++c) {
    fill_normal(kKey, first + kCuts[c], kCuts[c + 1] - kCuts[c], pieces.data() + kCuts[c]);
  }
  for (std::size_t i = 0; i < whole.size(); ++i) ASSERT_EQ(pieces[i], whole[i]) << "index " << i;
  // And every value made on its own, the ~15 rejected draws among them included.
  for (std::size_t i = 0; i < whole.size(); ++i) {
    double one = 0.0;
    fill_normal(kKey, first + i, 1, &one);
    ASSERT_EQ(one, whole[i]) << "index " << i;
  }
}

TEST(Rng, FillUniformIsIndependentOfChunkingAndScaled) {
  const std::uint64_t first = 3;
  const double low = -2.5;
  const double high = 4.0;
  std::vector<double> whole(kCuts.back());
  fill_uniform(kKey, first, whole.size(), low, high, whole.data());
  std::vector<double> pieces(whole.size());
  for (std::size_t c = 0; c + 1 < kCuts.size(); ++c) {
    fill_uniform(kKey, first + kCuts[c], kCuts[c + 1] - kCuts[c], low, high,
                 pieces.data() + kCuts[c]);
  }
  for (std::size_t i = 0; i < whole.size(); ++i) {
    ASSERT_EQ(pieces[i], whole[i]) << "index " << i;
    ASSERT_EQ(whole[i], low + (high - low) * uniform01(kKey, first + i));
    ASSERT_GE(whole[i], low);
    ASSERT_LT(whole[i], high);
  }
}

TEST(Rng, FillWithZeroCountWritesNothing) {
  double sentinel = 12.5;
  fill_normal(kKey, 3, 0, &sentinel);
  fill_uniform(kKey, 3, 0, 0.0, 1.0, &sentinel);
  EXPECT_EQ(sentinel, 12.5);
}

TEST(Rng, StreamKeysDifferForEverySeedLayerAndPurpose) {
  const std::vector<StreamPurpose> purposes = {StreamPurpose::kWeights, StreamPurpose::kBias,
                                               StreamPurpose::kInput,   StreamPurpose::kProbe,
                                               StreamPurpose::kTargets, StreamPurpose::kDropout};
  std::set<std::uint64_t> keys;
  std::set<std::uint64_t> first_values;
  std::size_t streams = 0;
  for (std::uint64_t seed : {0ULL, 1ULL, 2ULL, 12345ULL}) {
    for (std::uint64_t layer : {0ULL, 1ULL, 2ULL, 255ULL, 256ULL, 100000ULL}) {
      for (StreamPurpose purpose : purposes) {
        const std::uint64_t key = stream_key(seed, layer, purpose);
        keys.insert(key);
        for (std::uint64_t i = 0; i < 100; ++i) first_values.insert(random_bits(key, i));
        ++streams;
      }
    }
  }
  EXPECT_EQ(keys.size(), streams);
  // The symmetric pair that an XOR of two hashes of (seed) and (layer, purpose) would merge.
  EXPECT_NE(stream_key(1, 0, StreamPurpose::kWeights), stream_key(2, 0, StreamPurpose::kBias));
  // No two of these streams share any of their first 100 values.
  EXPECT_EQ(first_values.size(), 100 * streams);
}

TEST(Rng, NeighbouringStreamsAreUncorrelated) {
  const std::uint64_t a = stream_key(7, 10, StreamPurpose::kWeights);
  const std::uint64_t b = stream_key(7, 11, StreamPurpose::kWeights);
  const std::uint64_t c = stream_key(7, 10, StreamPurpose::kBias);
  std::vector<double> za(kDraws);
  std::vector<double> zb(kDraws);
  std::vector<double> zc(kDraws);
  fill_normal(a, 0, kDraws, za.data());
  fill_normal(b, 0, kDraws, zb.data());
  fill_normal(c, 0, kDraws, zc.data());
  double ab = 0.0;
  double ac = 0.0;
  for (std::size_t i = 0; i < kDraws; ++i) {
    ab += za[i] * zb[i];
    ac += za[i] * zc[i];
  }
  const auto n = static_cast<double>(kDraws);
  // The sample correlation of independent normals has standard error 1/sqrt(N); 5 of them.
  EXPECT_NEAR(ab / n, 0.0, 5.0 / std::sqrt(n));
  EXPECT_NEAR(ac / n, 0.0, 5.0 / std::sqrt(n));
}

}  // namespace
}  // namespace gradscope
