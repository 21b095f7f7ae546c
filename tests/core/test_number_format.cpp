// The one number formatter: its spellings, and agreement with fmt's precision formats (which the
// writers used before), so that moving a writer onto it changes no report byte.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "gradscope/core/number_format.hpp"
#include "gradscope/core/rng.hpp"

namespace gradscope {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Values across the whole range of double, with both signs, subnormals, and round-up cases.
std::vector<double> samples() {
  std::vector<double> xs = {0.0,    -0.0,   1.0,    0.5,       0.25,    9.995,
                            9.9949, 99.95,  1e-300, 4.9e-324,  1e300,   1e15,
                            1e16,   123456, 0.1,    1.0 / 3.0, -2.5e-7, 1.7976931348623157e308};
  for (std::uint64_t i = 0; i < 2000; ++i) {
    const double e = 600.0 * uniform01(7, 2 * i) - 300.0;
    xs.push_back((uniform01(7, 2 * i + 1) < 0.5 ? -1.0 : 1.0) * std::pow(10.0, e));
  }
  return xs;
}

TEST(NumberFormat, NonFiniteValuesReadAsWords) {
  EXPECT_EQ(nonfinite_word(kNaN), "n/a");
  EXPECT_EQ(format_significant(kInf, 3), "inf");
  EXPECT_EQ(format_fixed(-kInf, 2), "-inf");
  EXPECT_EQ(format_shortest(kNaN), "n/a");
}

TEST(NumberFormat, SignificantAndFixedAgreeWithFmtEverywhere) {
  for (const double x : samples()) {
    for (const int d : {1, 2, 3, 6, 17}) {
      ASSERT_EQ(format_significant(x, d), fmt::format("{:.{}g}", x, d)) << x << " " << d;
    }
    if (std::abs(x) < 1e20) {
      for (const int d : {0, 1, 2, 4}) {
        ASSERT_EQ(format_fixed(x, d), fmt::format("{:.{}f}", x, d)) << x << " " << d;
      }
    }
  }
  EXPECT_EQ(format_fixed(1e300, 1).size(), 303u);  // a long %f is not cut at a buffer's end
}

TEST(NumberFormat, ShortestReadsBackAsTheSameDouble) {
  EXPECT_EQ(format_shortest(0.1), "0.1");
  EXPECT_EQ(format_shortest(3.0), "3");
  EXPECT_EQ(format_shortest(1e-7), "1e-07");
  EXPECT_EQ(format_shortest(2.0 / 3.0), "0.6666666666666666");
  for (const double x : samples()) {
    ASSERT_EQ(std::strtod(format_shortest(x).c_str(), nullptr), x) << x;
  }
}

TEST(NumberFormat, Pow10SpellsEveryDecadeAndRoundsUpIntoTheNext) {
  EXPECT_EQ(format_pow10(-600.5, 2), "3.16e-601");
  EXPECT_EQ(format_pow10(4.5, 1), "3.2e+4");
  EXPECT_EQ(format_pow10(std::log10(9.996), 2), "1.00e+1");  // not "10.00e+0"
  EXPECT_EQ(format_pow10(std::log10(9.96), 1), "1.0e+1");
  EXPECT_EQ(format_pow10(std::log10(9.94), 1), "9.9e+0");
  EXPECT_EQ(format_pow10(-kInf, 2), "0");
  EXPECT_EQ(format_pow10(kInf, 2), "inf");
  EXPECT_EQ(format_pow10(kNaN, 2), "n/a");
}

TEST(NumberFormat, Pow10PastABillionDecadesSpellsThePowerNotAWrappedExponent) {
  // e^-7.65e37 (half a float32 logit gap of 1.53e38): the exponent overflows an int.
  EXPECT_EQ(format_pow10(-3.3223e37, 1), "10^-3.32e+37");
  EXPECT_EQ(format_pow10(2.5e9, 2), "10^2.5e+09");
  EXPECT_EQ(format_pow10(-999999999.5, 1), "3.2e-1000000000");
}

TEST(NumberFormat, BytesTakeTheLargestBinaryUnitBelowTheCount) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1024), "1.0 KiB");
  EXPECT_EQ(format_bytes(std::int64_t{3} << 29), "1.5 GiB");
  EXPECT_EQ(format_bytes(std::numeric_limits<std::int64_t>::max()), "8.0 EiB");
}

}  // namespace
}  // namespace gradscope
