// Tests for the normalisation kernels: the statistical facts each norm guarantees, gradients
// against central differences, and the block, aliasing and precision contracts the network uses.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gradscope/core/error.hpp"
#include "gradscope/core/norm.hpp"
#include "gradscope/core/rng.hpp"
#include "gradscope/core/spec.hpp"

namespace gradscope {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

constexpr NormKind kKinds[] = {NormKind::kBatchNorm, NormKind::kLayerNorm, NormKind::kRmsNorm};

std::string label(NormKind kind) { return std::string(norm_name(kind)); }

MatrixXd normals(Index rows, Index cols, std::uint64_t seed) {
  MatrixXd m(rows, cols);
  fill_normal(stream_key(seed, 7, StreamPurpose::kInput), 0, static_cast<std::uint64_t>(m.size()),
              m.data());
  return m;
}

bool per_example(NormKind kind) { return kind != NormKind::kBatchNorm; }

// The normalisation groups of a (width, batch) matrix: its columns, or its rows for batch_norm.
Index group_count(NormKind kind, const MatrixXd& m) {
  return per_example(kind) ? m.cols() : m.rows();
}
VectorXd group(NormKind kind, const MatrixXd& m, Index k) {
  if (per_example(kind)) return m.col(k);
  return m.row(k).transpose();
}

// Plain two-pass moments in double, written independently of the kernels.
double mean_of(const VectorXd& v) { return v.sum() / static_cast<double>(v.size()); }
double variance_of(const VectorXd& v) {
  const double mu = mean_of(v);
  return (v.array() - mu).square().sum() / static_cast<double>(v.size());
}
double mean_square_of(const VectorXd& v) {
  return v.array().square().sum() / static_cast<double>(v.size());
}

template <class Scalar>
struct Forward {
  Mat<Scalar> y;
  VectorXd rstd;
};

template <class Scalar>
Forward<Scalar> forward(const NormSpec& spec, const Mat<Scalar>& x) {
  Forward<Scalar> f;
  f.y.resize(x.rows(), x.cols());
  f.rstd.resize(norm_stat_count(spec.kind, x.rows(), x.cols()));
  norm_forward<Scalar>(spec, x, f.y, f.rstd);
  return f;
}

template <class Scalar>
Mat<Scalar> backward(const NormSpec& spec, const Forward<Scalar>& f, const Mat<Scalar>& g) {
  Mat<Scalar> dx(g.rows(), g.cols());
  norm_backward<Scalar>(spec, f.y, f.rstd, g, dx);
  return dx;
}

// Checks the facts each norm guarantees for its groups, against the moments of the input (as
// stored, in Scalar) computed here in double: batch/layer norm: mean 0 and variance v / (v + eps),
// where v is the group's input variance; rms norm: mean square ms / (ms + eps). Also rstd.
// `tol` bounds the effect of rounding y to Scalar.
template <class Scalar>
void expect_forward_facts(const NormSpec& spec, const MatrixXd& x_in, double tol) {
  const Mat<Scalar> x = x_in.cast<Scalar>();
  const Forward<Scalar> f = forward<Scalar>(spec, x);
  const MatrixXd xd = x.template cast<double>();
  const MatrixXd yd = f.y.template cast<double>();
  ASSERT_TRUE(yd.allFinite());
  for (Index k = 0; k < group_count(spec.kind, xd); ++k) {
    SCOPED_TRACE("group " + std::to_string(k));
    const VectorXd xg = group(spec.kind, xd, k);
    const VectorXd yg = group(spec.kind, yd, k);
    if (spec.kind == NormKind::kRmsNorm) {
      const double ms = mean_square_of(xg);
      EXPECT_NEAR(mean_square_of(yg), ms / (ms + spec.eps), tol);
      EXPECT_NEAR(f.rstd(k) * std::sqrt(ms + spec.eps), 1.0, 1e-14);  // a few double roundings
    } else {
      const double v = variance_of(xg);
      EXPECT_NEAR(mean_of(yg), 0.0, tol);
      EXPECT_NEAR(variance_of(yg), v / (v + spec.eps), tol);
      EXPECT_NEAR(f.rstd(k) * std::sqrt(v + spec.eps), 1.0, 1e-14);  // a few double roundings
    }
  }
}

// y is good to a few ulps of double (mean error well below 1e-13 for |y| <= sqrt(n)); in float
// each y_k is rounded once, relative error 2^-24 = 6e-8, so means of squares move by <= 3e-7.
constexpr double kFactsTolDouble = 1e-13;
constexpr double kFactsTolFloat = 1e-6;

TEST(NormForward, EachNormGivesZeroMeanAndShrunkUnitVarianceOrUnitMeanSquarePerGroup) {
  const MatrixXd x = (normals(23, 17, 1).array() * 2.5 + 0.7).matrix();
  for (NormKind kind : kKinds) {
    // eps = 0.25 makes the v / (v + eps) shrink far larger than the tolerances.
    for (double eps : {1e-5, 0.25}) {
      SCOPED_TRACE(label(kind) + " eps " + std::to_string(eps));
      const NormSpec spec{kind, eps};
      expect_forward_facts<double>(spec, x, kFactsTolDouble);
      expect_forward_facts<float>(spec, x, kFactsTolFloat);
    }
  }
}

TEST(NormForward, LargeCommonOffsetStillNormalisesAccurately) {
  // 1e4 + N(0, 1): a one-pass E[x^2] - E[x]^2 in float would lose every digit of the variance.
  const MatrixXd x = (normals(31, 27, 2).array() + 1e4).matrix();
  for (NormKind kind : {NormKind::kBatchNorm, NormKind::kLayerNorm}) {
    SCOPED_TRACE(label(kind));
    const NormSpec spec{kind, 1e-5};
    expect_forward_facts<double>(spec, x, kFactsTolDouble);
    expect_forward_facts<float>(spec, x, kFactsTolFloat);
  }
}

TEST(NormForward, ConstantGroupsGiveExactZerosAndNoNaN) {
  for (double c : {0.0, 1.0, -3.7, 1e4, 1e30}) {
    for (NormKind kind : {NormKind::kBatchNorm, NormKind::kLayerNorm}) {
      SCOPED_TRACE(label(kind) + " c = " + std::to_string(c));
      const NormSpec spec{kind, 1e-5};
      const MatrixXd x = MatrixXd::Constant(9, 7, c);
      const Forward<double> fd = forward<double>(spec, x);
      const Forward<float> ff = forward<float>(spec, x.cast<float>());
      EXPECT_TRUE((fd.y.array() == 0.0).all());
      EXPECT_TRUE((ff.y.array() == 0.0f).all());
      for (Index k = 0; k < fd.rstd.size(); ++k) {
        EXPECT_DOUBLE_EQ(fd.rstd(k), 1.0 / std::sqrt(spec.eps));
        EXPECT_DOUBLE_EQ(ff.rstd(k), 1.0 / std::sqrt(spec.eps));
      }
    }
  }
  // rms_norm does not centre: a constant c maps to c / sqrt(c^2 + eps), and 0 to exactly 0.
  const NormSpec rms{NormKind::kRmsNorm, 1e-5};
  for (double c : {0.0, 1e-3, -2.0, 1e30}) {
    SCOPED_TRACE("rms_norm c = " + std::to_string(c));
    const Forward<double> f = forward<double>(rms, MatrixXd::Constant(9, 7, c));
    const double expected = c / std::sqrt(c * c + rms.eps);
    for (Index k = 0; k < f.y.size(); ++k) {
      EXPECT_NEAR(f.y(k), expected, 4e-16 * std::abs(expected));  // a few double roundings
    }
  }
}

TEST(NormForward, ExtremeFiniteInputsNormaliseWithoutNaN) {
  constexpr double kMax = std::numeric_limits<double>::max();
  for (NormKind kind : kKinds) {
    SCOPED_TRACE(label(kind));
    const NormSpec spec{kind, 1e-5};
    // Huge groups: sums of squares would overflow without the power-of-two rescaling. Their
    // variance dwarfs eps, so y must equal the normalisation of the same values scaled down by
    // 2^-1000 (exact) with a negligible eps.
    MatrixXd huge = (normals(12, 10, 3) * 0x1p1000).eval();
    huge(3, 4) = kMax;
    huge(5, 4) = -kMax;
    huge(3, 2) = kMax;
    const Forward<double> fh = forward<double>(spec, huge);
    ASSERT_TRUE(fh.y.allFinite());
    ASSERT_TRUE((fh.rstd.array() > 0.0).all());
    const Forward<double> fs = forward<double>({kind, 1e-300}, (huge * 0x1p-1000).eval());
    // Both are the eps-free normalisation up to eps / var < 1e-300 and a few roundings.
    EXPECT_LT((fh.y - fs.y).cwiseAbs().maxCoeff(), 1e-14 * fs.y.cwiseAbs().maxCoeff());
    for (Index k = 0; k < fh.rstd.size(); ++k) {
      EXPECT_NEAR(fh.rstd(k) * 0x1p1000 / fs.rstd(k), 1.0, 1e-14);  // a few roundings
    }
    // Tiny groups: every entry far below sqrt(eps), so y is tiny but finite and rstd = eps^-1/2.
    const MatrixXd tiny = normals(12, 10, 4) * 1e-300;
    const Forward<double> ft = forward<double>(spec, tiny);
    EXPECT_TRUE(ft.y.allFinite());
    EXPECT_LT(ft.y.cwiseAbs().maxCoeff(), 1e-290);
    // Float near its own limit: computed in double, so no overflow either.
    const MatrixXd big_float = normals(12, 10, 5) * 3e37;
    expect_forward_facts<float>(spec, big_float.cwiseMax(-3e38).cwiseMin(3e38), kFactsTolFloat);
  }
}

// Constant groups beyond the rescaling threshold (2^480 = 3.1e144, double only), including groups
// of one entry (width 1 for layer_norm, batch 1 for batch_norm): the variance is 0, so y = 0 and
// rstd = 1 / sqrt(eps), whatever the scaling does to eps.
TEST(NormForward, ConstantHugeDoubleGroupsGiveZerosNotNaN) {
  constexpr double kMax = std::numeric_limits<double>::max();
  for (double c : {4e144, 1e160, 1e300, kMax, -kMax}) {
    for (NormKind kind : {NormKind::kBatchNorm, NormKind::kLayerNorm}) {
      for (auto [rows, cols] : {std::pair<Index, Index>{9, 7}, {1, 5}, {5, 1}}) {
        SCOPED_TRACE(label(kind) + " c = " + std::to_string(c) + " shape " + std::to_string(rows) +
                     "x" + std::to_string(cols));
        const NormSpec spec{kind, 1e-5};
        const Forward<double> f = forward<double>(spec, MatrixXd::Constant(rows, cols, c));
        EXPECT_TRUE((f.y.array() == 0.0).all()) << f.y;
        for (Index k = 0; k < f.rstd.size(); ++k) EXPECT_EQ(f.rstd(k), 1.0 / std::sqrt(spec.eps));
        // With y = 0, dx = rstd (g - mean(g)): finite, and exactly 0 for a group of one.
        const MatrixXd g = normals(rows, cols, 21);
        const MatrixXd dx = backward<double>(spec, f, g);
        EXPECT_TRUE(dx.allFinite());
        for (Index k = 0; k < group_count(kind, g); ++k) {
          const VectorXd gk = group(kind, g, k);
          const VectorXd want = (gk.array() - mean_of(gk)) / std::sqrt(spec.eps);
          // A few roundings of values of order 1e3.
          EXPECT_LT((group(kind, dx, k) - want).cwiseAbs().maxCoeff(), 1e-12);
        }
      }
    }
  }
}

// Not defects, kept as facts: every reduction runs in double, so float entries up to 3.4e38 and
// down to 1e-30 square without overflow or underflow; tiny double entries square to 0 only where
// their variance is far below any normal eps (e.g. 1e-300 with eps 1e-300: y = x / sqrt(eps)).
TEST(NormForward, TinyAndHugeEntriesKeepTheirVarianceNextToEps) {
  for (NormKind kind : kKinds) {
    SCOPED_TRACE(label(kind));
    // float: variance 1e-60 next to eps = 1e-60, and 1e40 or 1e74 next to eps = 1e-5.
    expect_forward_facts<float>({kind, 1e-60}, normals(12, 10, 22) * 1e-30, kFactsTolFloat);
    expect_forward_facts<float>({kind, 1e-5}, normals(12, 10, 23) * 1e20, kFactsTolFloat);
    expect_forward_facts<float>({kind, 1e-5}, normals(12, 10, 24) * 1e37, kFactsTolFloat);
    // double: variance 1e-300 next to eps = 1e-300.
    expect_forward_facts<double>({kind, 1e-300}, normals(12, 10, 25) * 1e-150, kFactsTolDouble);
    const MatrixXd tiny = normals(12, 10, 26) * 1e-300;
    const Forward<double> f = forward<double>({kind, 1e-300}, tiny);
    // var ~ 1e-600 underflows to 0 and is 1e-300 times below eps anyway: y = x / sqrt(eps) and
    // x - mean(x), up to a few roundings.
    const MatrixXd centred =
        kind == NormKind::kRmsNorm
            ? tiny
            : (kind == NormKind::kLayerNorm ? (tiny.rowwise() - tiny.colwise().mean()).eval()
                                            : (tiny.colwise() - tiny.rowwise().mean()).eval());
    EXPECT_LT((f.y - centred * 1e150).cwiseAbs().maxCoeff(), 1e-14 * f.y.cwiseAbs().maxCoeff());
  }
}

TEST(NormForward, NaNInputPropagatesToItsOwnGroupOnly) {
  for (NormKind kind : kKinds) {
    SCOPED_TRACE(label(kind));
    const NormSpec spec{kind, 1e-5};
    const MatrixXd x = normals(8, 6, 6);
    MatrixXd bad = x;
    bad(2, 3) = std::numeric_limits<double>::quiet_NaN();
    const Forward<double> clean = forward<double>(spec, x);
    const Forward<double> dirty = forward<double>(spec, bad);
    const Index poisoned = per_example(kind) ? 3 : 2;
    for (Index k = 0; k < group_count(kind, x); ++k) {
      const VectorXd yc = group(kind, clean.y, k);
      const VectorXd yd = group(kind, dirty.y, k);
      if (k == poisoned) {
        EXPECT_TRUE(yd.array().isNaN().all()) << "group " << k;
      } else {
        EXPECT_TRUE((yd.array() == yc.array()).all()) << "group " << k;
      }
    }
  }
}

TEST(NormForward, FloatMatchesDoubleOnTheSameInputsWithinOneRounding) {
  const MatrixXd x = normals(19, 13, 8) * 3.0;
  const MatrixXd g = normals(19, 13, 9);
  for (NormKind kind : kKinds) {
    SCOPED_TRACE(label(kind));
    const NormSpec spec{kind, 1e-5};
    const Mat<float> xf = x.cast<float>();
    const Mat<float> gf = g.cast<float>();
    const Forward<float> ff = forward<float>(spec, xf);
    const Forward<double> fd = forward<double>(spec, xf.cast<double>());
    // Both compute in double from the same values; float rounds y once (2^-24 relative).
    const MatrixXd yf = ff.y.cast<double>();
    EXPECT_LE(((yf - fd.y).array().abs() - 0x1p-24 * fd.y.array().abs()).maxCoeff(), 0.0);
    for (Index k = 0; k < fd.rstd.size(); ++k) EXPECT_DOUBLE_EQ(ff.rstd(k), fd.rstd(k));
    const MatrixXd dxf = backward<float>(spec, ff, gf).cast<double>();
    const MatrixXd dxd = backward<double>(spec, fd, gf.cast<double>());
    // The float y differs from the double one by 2^-24 relative, which moves dx through
    // y * mean(g y) by about that much times |dx|'s scale; 1e-6 leaves a wide margin.
    EXPECT_LE((dxf - dxd).cwiseAbs().maxCoeff(), 1e-6 * dxd.cwiseAbs().maxCoeff());
  }
}

// L = sum(c * norm(x)) in double.
double weighted_output(const NormSpec& spec, const MatrixXd& x, const MatrixXd& c) {
  return (c.array() * forward<double>(spec, x).y.array()).sum();
}

TEST(NormBackward, MatchesFourthOrderCentralDifferences) {
  const MatrixXd x = (normals(6, 5, 10).array() * 1.5 + 0.3).matrix();
  const MatrixXd c = normals(6, 5, 11);
  const double h = 1e-4;
  for (NormKind kind : kKinds) {
    for (double eps : {1e-5, 0.5}) {
      SCOPED_TRACE(label(kind) + " eps " + std::to_string(eps));
      const NormSpec spec{kind, eps};
      const MatrixXd dx = backward<double>(spec, forward<double>(spec, x), c);
      double worst = 0.0;
      for (Index k = 0; k < x.size(); ++k) {
        auto at = [&](double step) {
          MatrixXd xs = x;
          xs(k) += step;
          return weighted_output(spec, xs, c);
        };
        const double fd = (at(-2 * h) - 8 * at(-h) + 8 * at(h) - at(2 * h)) / (12 * h);
        worst = std::max(worst, std::abs(fd - dx(k)) / (1.0 + std::abs(dx(k))));
      }
      // Rounding: 1e-16 * |L| (< 30) / h = 3e-11; truncation h^4 / 30 * |L^(5)| ~ 1e-17 for
      // groups of unit scale. 1e-9 catches any wrong term (they are O(1)).
      EXPECT_LT(worst, 1e-9);
    }
  }
}

TEST(NormBackward, ParameterGradientsMatchCentralDifferences) {
  const MatrixXd x = normals(7, 5, 12) * 2.0;
  const MatrixXd c = normals(7, 5, 13);
  const double h = 1e-4;
  for (NormKind kind : kKinds) {
    SCOPED_TRACE(label(kind));
    const NormSpec spec{kind, 1e-5};
    const MatrixXd y = forward<double>(spec, x).y;
    // L(gamma, beta) = sum_ia c_ia (gamma_i y_ia + beta_i), around gamma = 1, beta = 0.
    auto loss = [&](const VectorXd& gamma, const VectorXd& beta) {
      return (c.array() * ((gamma.asDiagonal() * y).colwise() + beta).array()).sum();
    };
    const VectorXd ones = VectorXd::Ones(x.rows());
    const VectorXd zeros = VectorXd::Zero(x.rows());
    VectorXd fd_gamma(x.rows());
    VectorXd fd_beta(x.rows());
    for (Index i = 0; i < x.rows(); ++i) {
      auto along = [&](bool gamma, double step) {
        VectorXd gm = ones;
        VectorXd bt = zeros;
        (gamma ? gm : bt)(i) += step;
        return loss(gm, bt);
      };
      for (bool gamma : {true, false}) {
        const double fd = (along(gamma, -2 * h) - 8 * along(gamma, -h) + 8 * along(gamma, h) -
                           along(gamma, 2 * h)) /
                          (12 * h);
        (gamma ? fd_gamma : fd_beta)(i) = fd;
      }
    }
    VectorXd dgamma = VectorXd::Zero(x.rows());
    VectorXd dbeta = VectorXd::Zero(x.rows());
    norm_param_grad_sums<double>(spec, y, c, dgamma, dbeta);
    // L is linear in gamma and beta: only rounding, 1e-16 * |L| (< 30) / h = 3e-11.
    EXPECT_LT((dgamma - fd_gamma).cwiseAbs().maxCoeff(), 1e-9);
    if (norm_has_beta(kind)) {
      EXPECT_LT((dbeta - fd_beta).cwiseAbs().maxCoeff(), 1e-9);
    } else {
      EXPECT_TRUE(dbeta.isZero(0.0));  // rms_norm has no beta: dbeta is left untouched
    }
    double dgamma_sq = -1.0;
    double dbeta_sq = -1.0;
    norm_param_grad_squares<double>(spec, y, c, dgamma_sq, dbeta_sq);
    // Squares of values that agree to 1e-9 absolute (each |value| < 10).
    EXPECT_NEAR(dgamma_sq, fd_gamma.squaredNorm(), 1e-7);
    if (norm_has_beta(kind)) {
      EXPECT_NEAR(dbeta_sq, fd_beta.squaredNorm(), 1e-7);
    } else {
      EXPECT_EQ(dbeta_sq, 0.0);
    }
  }
}

TEST(NormBackward, HugeDoubleGradientsScaleExactlyWithoutOverflow) {
  // Groups of 64 and rstd = 2^-10, so dx stays about 2^-10 |g| while the sums of 64 entries of
  // g = 2^1022 N(0, 1) (and of g * y) are far beyond double's range without the rescaling.
  const MatrixXd x = normals(64, 64, 14) * 1024.0;
  const MatrixXd g = normals(64, 64, 15);
  for (NormKind kind : kKinds) {
    SCOPED_TRACE(label(kind));
    const NormSpec spec{kind, 1e-5};
    const Forward<double> f = forward<double>(spec, x);
    const MatrixXd dx = backward<double>(spec, f, g);
    const MatrixXd dx_huge = backward<double>(spec, f, (g * 0x1p1022).eval());
    ASSERT_TRUE(dx_huge.allFinite());
    // Scaling g by a power of two scales dx by it: the rescaled path differs from the plain one
    // only in rounding order, a few ulps of the largest term.
    EXPECT_LT((dx_huge * 0x1p-1022 - dx).cwiseAbs().maxCoeff(), 1e-14 * dx.cwiseAbs().maxCoeff());
  }
}

// Runs forward, backward and the parameter gradients on the whole matrix and on two blocks cut
// where the caller cuts tasks (rows for batch_norm, columns otherwise), at an unaligned offset.
template <class Scalar>
void expect_blocks_bit_identical(NormKind kind) {
  const NormSpec spec{kind, 1e-5};
  const Index rows = 37;
  const Index cols = 29;
  const Index cut = 13;
  const Mat<Scalar> x = (normals(rows, cols, 16).array() * 2.0 + 5.0).matrix().cast<Scalar>();
  const Mat<Scalar> g = normals(rows, cols, 17).cast<Scalar>();
  const Forward<Scalar> whole = forward<Scalar>(spec, x);
  const Mat<Scalar> dx_whole = backward<Scalar>(spec, whole, g);
  VectorXd dgamma_whole = VectorXd::Zero(rows);
  VectorXd dbeta_whole = VectorXd::Zero(rows);
  norm_param_grad_sums<Scalar>(spec, whole.y, g, dgamma_whole, dbeta_whole);

  Mat<Scalar> y(rows, cols);
  Mat<Scalar> dx(rows, cols);
  VectorXd rstd(norm_stat_count(kind, rows, cols));
  VectorXd dgamma = VectorXd::Zero(rows);
  VectorXd dbeta = VectorXd::Zero(rows);
  const Index total = per_example(kind) ? cols : rows;
  for (auto [first, n] : {std::pair<Index, Index>{0, cut}, {cut, total - cut}}) {
    if (per_example(kind)) {
      norm_forward<Scalar>(spec, x.middleCols(first, n), y.middleCols(first, n),
                           rstd.segment(first, n));
      norm_backward<Scalar>(spec, y.middleCols(first, n), rstd.segment(first, n),
                            g.middleCols(first, n), dx.middleCols(first, n));
      norm_param_grad_sums<Scalar>(spec, y.middleCols(first, n), g.middleCols(first, n), dgamma,
                                   dbeta);
    } else {
      norm_forward<Scalar>(spec, x.middleRows(first, n), y.middleRows(first, n),
                           rstd.segment(first, n));
      norm_backward<Scalar>(spec, y.middleRows(first, n), rstd.segment(first, n),
                            g.middleRows(first, n), dx.middleRows(first, n));
      norm_param_grad_sums<Scalar>(spec, y.middleRows(first, n), g.middleRows(first, n),
                                   dgamma.segment(first, n), dbeta.segment(first, n));
    }
  }
  EXPECT_TRUE((y.array() == whole.y.array()).all());
  EXPECT_TRUE((rstd.array() == whole.rstd.array()).all());
  EXPECT_TRUE((dx.array() == dx_whole.array()).all());
  EXPECT_TRUE((dgamma.array() == dgamma_whole.array()).all());
  EXPECT_TRUE((dbeta.array() == dbeta_whole.array()).all());
}

TEST(NormBlocks, BlockwiseCallsAreBitIdenticalToWholeMatrixCalls) {
  for (NormKind kind : kKinds) {
    SCOPED_TRACE(label(kind));
    expect_blocks_bit_identical<float>(kind);
    expect_blocks_bit_identical<double>(kind);
  }
}

TEST(NormBlocks, OutputMayAliasInput) {
  const MatrixXd x = normals(11, 9, 18);
  const MatrixXd g = normals(11, 9, 19);
  for (NormKind kind : kKinds) {
    SCOPED_TRACE(label(kind));
    const NormSpec spec{kind, 1e-5};
    const Forward<double> f = forward<double>(spec, x);
    const MatrixXd dx = backward<double>(spec, f, g);

    MatrixXd in_place = x;
    VectorXd rstd(f.rstd.size());
    norm_forward<double>(spec, in_place, in_place, rstd);
    EXPECT_TRUE((in_place.array() == f.y.array()).all());

    MatrixXd g_in_place = g;
    norm_backward<double>(spec, f.y, f.rstd, g_in_place, g_in_place);
    EXPECT_TRUE((g_in_place.array() == dx.array()).all());
  }
}

TEST(NormChecks, RejectsBadShapesAndNonPositiveEps) {
  const MatrixXd x = normals(4, 3, 20);
  MatrixXd y(4, 3);
  VectorXd rstd_rows(4);
  VectorXd rstd_cols(3);
  EXPECT_THROW(norm_forward<double>({NormKind::kLayerNorm, 1e-5}, x, y, rstd_rows),
               gradscope::Error);
  EXPECT_THROW(norm_forward<double>({NormKind::kBatchNorm, 1e-5}, x, y, rstd_cols),
               gradscope::Error);
  EXPECT_THROW(norm_forward<double>({NormKind::kLayerNorm, 0.0}, x, y, rstd_cols),
               gradscope::Error);
  MatrixXd wrong(3, 4);
  EXPECT_THROW(norm_forward<double>({NormKind::kLayerNorm, 1e-5}, x, wrong, rstd_cols),
               gradscope::Error);
  EXPECT_THROW(norm_backward<double>({NormKind::kLayerNorm, 1e-5}, x, rstd_cols, wrong, y),
               gradscope::Error);
  EXPECT_EQ(norm_stat_count(NormKind::kBatchNorm, 4, 3), 4);
  EXPECT_EQ(norm_stat_count(NormKind::kRmsNorm, 4, 3), 3);
}

}  // namespace
}  // namespace gradscope
