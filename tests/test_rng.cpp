// Tests of the counter-based generator: pinned values, distribution moments, accuracy of the
// normal transform, independence of how a stream is cut, and separation of streams.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

#include "gradscope/rng.hpp"

namespace gradscope {
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
  EXPECT_EQ(z0, -0x1.35a4d7d67ac38p-2);
  EXPECT_EQ(z1, 0x1.765d306075a63p-1);
  normal_pair(kKey, 1, z0, z1);
  EXPECT_EQ(z0, -0x1.54ce21da6ae2ep+0);
  EXPECT_EQ(z1, 0x1.7fe82a36be2efp+0);
  normal_pair(kKey, 123456789, z0, z1);
  EXPECT_EQ(z0, 0x1.67ae8cabd3243p-3);
  EXPECT_EQ(z1, 0x1.3485181b9587ap-6);
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

TEST(Rng, NormalPairAtExtremeRadiiIsFinite) {
  double z0 = 0.0;
  double z1 = 0.0;
  // u1 = 2^-53, the smallest: the largest radius Box-Muller can produce, sqrt(106 ln 2).
  normal_pair(key_with_first_bits(0), 0, z0, z1);
  const double max_radius = std::sqrt(-2.0 * std::log(0x1.0p-53));
  ASSERT_TRUE(std::isfinite(z0) && std::isfinite(z1));
  // 1e-14 relative: the radius goes through a log and a square root, each good to about 1 ulp.
  EXPECT_NEAR(std::hypot(z0, z1), max_radius, 1e-14 * max_radius);
  // u1 = 1: log(1) = 0 exactly, so both normals are zero.
  normal_pair(key_with_first_bits(~0ULL), 0, z0, z1);
  EXPECT_EQ(z0, 0.0);
  EXPECT_EQ(z1, 0.0);
}

// Distance in units in the last place of the double nearest to `reference`.
double ulp_error(double value, long double reference) {
  const auto nearest = static_cast<double>(reference);
  const double ulp = std::nextafter(std::fabs(nearest), std::numeric_limits<double>::infinity()) -
                     std::fabs(nearest);
  return static_cast<double>(std::fabs(static_cast<long double>(value) - reference)) / ulp;
}

TEST(Rng, NormalPairMatchesLongDoubleBoxMuller) {
  if (std::numeric_limits<long double>::digits < 64) {
    GTEST_SKIP() << "long double is no more precise than double here";
  }
  const long double pi_over_2 = 1.570796326794896619231321691639751442L;
  double worst = 0.0;
  for (std::uint64_t j = 0; j < 100000; ++j) {
    double z0 = 0.0;
    double z1 = 0.0;
    normal_pair(kKey, j, z0, z1);
    const long double u1 = uniform01_open0(kKey, 2 * j);
    const long double radius = std::sqrt(-2.0L * std::log(u1));
    // 2 pi u2 = (pi/2) (q + f), with 4 u2 split exactly into its nearest integer q and the rest
    // f, so that the reference is accurate near the zeros of sin and cos as well.
    const long double four_u2 = 4.0L * uniform01(kKey, 2 * j + 1);
    const long double q = std::nearbyint(four_u2);
    const long double angle = pi_over_2 * (four_u2 - q);
    const long double s = std::sin(angle);
    const long double c = std::cos(angle);
    long double sin_t = s;
    long double cos_t = c;
    switch (static_cast<int>(q) % 4) {
      case 1:
        sin_t = c;
        cos_t = -s;
        break;
      case 2:
        sin_t = -s;
        cos_t = -c;
        break;
      case 3:
        sin_t = -c;
        cos_t = s;
        break;
      default:
        break;
    }
    worst = std::max({worst, ulp_error(z0, radius * cos_t), ulp_error(z1, radius * sin_t)});
  }
  // 4 ulp: budget of the double pipeline: log (< 1 ulp, halved by the square root), sqrt (0.5),
  // the angle's product with pi/2 (0.5), sin/cos kernels (< 1), the final product (0.5).
  EXPECT_LE(worst, 4.0);
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

// Cut points with odd starts and odd lengths, crossing internal block boundaries.
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
  // The single values at both ends, too.
  double one = 0.0;
  fill_normal(kKey, first + 600, 1, &one);
  EXPECT_EQ(one, whole[600]);
  fill_normal(kKey, first + 77, 1, &one);
  EXPECT_EQ(one, whole[77]);
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
