// Gaussian and uniform streams on top of the counter-based generator in rng.hpp. The normal
// transform is written out in plain IEEE double arithmetic so that it is fast and its values do
// not depend on which libm the binary meets.
#include "gradscope/rng.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <bit>
#include <cstdint>

namespace gradscope {
namespace {

// Why not std::log / std::sin / std::cos: glibc's versions cost ~12.5 ns per normal here, two and
// a half times the budget, and Eigen 3.4 has no vectorised double sin/cos (psin/pcos exist for
// float only). The kernels below are FreeBSD msun's (fdlibm's successors) e_log.c, k_sin.c and
// k_cos.c, whose polynomials are accurate to < 1 ulp, made branch-free. Only +, -, *, / and
// int<->double conversions are used, all correctly rounded, so the values are the same on every
// IEEE-754 machine compiled without floating-point contraction (x86-64 generic has no FMA; a
// build with -mfma and GCC's default -ffp-contract=fast changes last bits). Each normal is within
// 4 ulp of a long-double Box-Muller (test_rng); fill_normal runs at ~3.5 ns per normal here.

// log(x) for x in [2^-53, 1] (always a normal double): e_log.c without the special cases that
// this domain cannot reach.
inline double log_unit(double x) {
  constexpr double ln2_hi = 6.93147180369123816490e-01;  // 0x3fe62e42fee00000
  constexpr double ln2_lo = 1.90821492927058770002e-10;  // 0x3dea39ef35793c76
  constexpr double lg1 = 6.666666666666735130e-01;
  constexpr double lg2 = 3.999999999940941908e-01;
  constexpr double lg3 = 2.857142874366239149e-01;
  constexpr double lg4 = 2.222219843214978396e-01;
  constexpr double lg5 = 1.818357216161805012e-01;
  constexpr double lg6 = 1.531383769920937332e-01;
  constexpr double lg7 = 1.479819860511658591e-01;

  const std::uint64_t bits = std::bit_cast<std::uint64_t>(x);
  const std::uint64_t mant = bits & 0x000fffffffffffffULL;
  // Mantissa above sqrt(2) (top 20 bits >= 0x6a09c): halve it into [sqrt(2)/2, 1) and add one to
  // the exponent, so that f = m - 1 stays in [-0.29, 0.41].
  const std::uint64_t up = (mant + (0x95f64ULL << 32)) & (1ULL << 52);
  const double m = std::bit_cast<double>(mant | (up ^ (0x3ffULL << 52)));
  const double f = m - 1.0;
  // The exponent as a double without an int64 -> double conversion (which SSE2 cannot
  // vectorise): the biased exponent (< 2^11) placed in the mantissa of 2^52, then 2^52 + 1023
  // taken away, all exactly.
  const double dk =
      std::bit_cast<double>(((bits >> 52) + (up >> 52)) | (0x433ULL << 52)) - (0x1.0p52 + 1023.0);

  // log(1 + f) = 2 atanh(s) with s = f / (2 + f) = f - f^2/2 + s (f^2/2 + R), R a minimax
  // polynomial in s^2.
  const double s = f / (2.0 + f);
  const double z = s * s;
  const double w = z * z;
  const double t1 = w * (lg2 + w * (lg4 + w * lg6));
  const double t2 = z * (lg1 + w * (lg3 + w * (lg5 + w * lg7)));
  const double r = t2 + t1;
  // e_log.c uses this form only for mantissas near sqrt(2) and f - s (f - R) elsewhere, a branch;
  // using it everywhere measured < 1.0 ulp against a long-double logl on 4e7 arguments spread over
  // (0, 1], near 1 and near powers of two.
  const double hfsq = 0.5 * f * f;
  return dk * ln2_hi - ((hfsq - (s * (hfsq + r) + dk * ln2_lo)) - f);
}

// sin(a) and cos(a) for |a| <= pi/4: k_sin.c and k_cos.c with a zero tail.
inline void sincos_kernel(double a, double& sin_a, double& cos_a) {
  constexpr double s1 = -1.66666666666666324348e-01;
  constexpr double s2 = 8.33333333332248946124e-03;
  constexpr double s3 = -1.98412698298579493134e-04;
  constexpr double s4 = 2.75573137070700676789e-06;
  constexpr double s5 = -2.50507602534068634195e-08;
  constexpr double s6 = 1.58969099521155010221e-10;
  constexpr double c1 = 4.16666666666666019037e-02;
  constexpr double c2 = -1.38888888888741095749e-03;
  constexpr double c3 = 2.48015872894767294178e-05;
  constexpr double c4 = -2.75573143513906633035e-07;
  constexpr double c5 = 2.08757232129817482790e-09;
  constexpr double c6 = -1.13596475577881948265e-11;

  const double z = a * a;
  const double w = z * z;
  const double rs = s2 + z * (s3 + z * s4) + z * w * (s5 + z * s6);
  sin_a = a + (z * a) * (s1 + z * rs);
  const double rc = z * (c1 + z * (c2 + z * c3)) + w * w * (c4 + z * (c5 + z * c6));
  const double hz = 0.5 * z;
  const double one_minus_hz = 1.0 - hz;
  // The correction term recovers the bits of 1 - z/2 lost to rounding.
  cos_a = one_minus_hz + (((1.0 - one_minus_hz) - hz) + z * rc);
}

// Pairs are transformed in blocks: the integer work (hashing, exact angle reduction) per pair
// first, then the floating-point work in a branch-free loop the compiler vectorises.
constexpr std::uint64_t kBlock = 64;

// Standard normals 2j and 2j+1 for j = j0 .. j0+count (count <= kBlock) by Box-Muller, written
// interleaved to out. The angle 2 pi u2 is reduced in integer arithmetic on u2's 53 bits
// (u2 = m / 2^53, a fraction of a turn), which is exact, unlike reducing the rounded product
// 2 pi u2 modulo pi/2.
inline void box_muller_block(std::uint64_t key, std::uint64_t j0, std::uint64_t count,
                             double* out) {
  double u1[kBlock];
  double angle[kBlock];
  std::uint64_t quadrant[kBlock];
  constexpr double pio2_over_2p51 = 1.57079632679489655800e+00 * 0x1.0p-51;
  for (std::uint64_t p = 0; p < count; ++p) {
    const std::uint64_t j = j0 + p;
    // u1 = uniform01_open0(key, 2j) in (0, 1]: never 0, so its logarithm is finite.
    u1[p] = uniform01_open0(key, 2 * j);
    // u2 = uniform01(key, 2j+1) = m / 2^53; the angle is (pi/2) (quadrant + frac) with the
    // nearest quadrant (0..4, 4 meaning 0 again) and frac in [-1/2, 1/2).
    const std::uint64_t shifted = (random_bits(key, 2 * j + 1) >> 11) + (1ULL << 50);
    const auto frac = static_cast<std::int64_t>(shifted & ((1ULL << 51) - 1)) - (1LL << 50);
    angle[p] = static_cast<double>(frac) * pio2_over_2p51;
    quadrant[p] = shifted >> 51;
  }
  double radius[kBlock];
  for (std::uint64_t p = 0; p < count; ++p) {
    radius[p] = -2.0 * log_unit(u1[p]);
  }
  // Eigen's array sqrt is the correctly rounded hardware square root, vectorised; std::sqrt in a
  // loop is not, because it must keep a path that sets errno (gradscope is built without
  // -fno-math-errno).
  Eigen::Map<Eigen::ArrayXd> radius_map(radius, static_cast<Eigen::Index>(count));
  radius_map = radius_map.sqrt();
  for (std::uint64_t p = 0; p < count; ++p) {
    double s = 0.0;
    double c = 0.0;
    sincos_kernel(angle[p], s, c);
    // Rotate by quadrant * pi/2: odd quadrants swap sin and cos; sin is negative in quadrants
    // 2, 3 and cos in quadrants 1, 2. Selections and sign flips are bit operations, no branches.
    const std::uint64_t q = quadrant[p];
    const std::uint64_t odd = 0 - (q & 1U);
    const std::uint64_t sb = std::bit_cast<std::uint64_t>(s);
    const std::uint64_t cb = std::bit_cast<std::uint64_t>(c);
    const double sin_t = std::bit_cast<double>(((cb & odd) | (sb & ~odd)) ^ ((q & 2U) << 62));
    const double cos_t =
        std::bit_cast<double>(((sb & odd) | (cb & ~odd)) ^ (((q + 1U) & 2U) << 62));
    out[2 * p] = radius[p] * cos_t;
    out[2 * p + 1] = radius[p] * sin_t;
  }
}

}  // namespace

void normal_pair(std::uint64_t key, std::uint64_t j, double& z0, double& z1) {
  double pair[2];
  box_muller_block(key, j, 1, pair);
  z0 = pair[0];
  z1 = pair[1];
}

void fill_normal(std::uint64_t key, std::uint64_t first, std::uint64_t n, double* out) {
  if (n == 0) return;
  double z0 = 0.0;
  double z1 = 0.0;
  std::uint64_t done = 0;
  // An odd start takes the second half of its pair.
  if (first % 2 == 1) {
    normal_pair(key, first / 2, z0, z1);
    out[0] = z1;
    done = 1;
  }
  const std::uint64_t pair0 = (first + done) / 2;
  const std::uint64_t pairs = (n - done) / 2;
  for (std::uint64_t p = 0; p < pairs; p += kBlock) {
    box_muller_block(key, pair0 + p, std::min(kBlock, pairs - p), out + done + 2 * p);
  }
  done += 2 * pairs;
  // An odd end takes the first half of its pair.
  if (done < n) {
    normal_pair(key, pair0 + pairs, z0, z1);
    out[done] = z0;
  }
}

void fill_uniform(std::uint64_t key, std::uint64_t first, std::uint64_t n, double low, double high,
                  double* out) {
  const double width = high - low;
  for (std::uint64_t i = 0; i < n; ++i) {
    out[i] = low + width * uniform01(key, first + i);
  }
}

}  // namespace gradscope
