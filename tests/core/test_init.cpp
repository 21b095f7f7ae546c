// Tests of the weight and bias initialisers: each scheme's variance against its paper's formula,
// bounds, exact gain scaling, draw order, orthogonality and the registry tables.
#include <gtest/gtest.h>

#include <Eigen/Core>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "gradscope/core/init.hpp"
#include "gradscope/core/rng.hpp"

namespace gradscope {
namespace {

const std::uint64_t kKey = stream_key(2024, 5, StreamPurpose::kWeights);

// A (fan_out x fan_in) = (out x in) matrix, as the network stores W.
Eigen::MatrixXd weights(const InitSpec& spec, int out, int in, std::uint64_t key = kKey) {
  Eigen::MatrixXd W(out, in);
  init_weights(spec, key, W);
  return W;
}

InitSpec spec_of(Init kind) {
  InitSpec spec;
  spec.kind = kind;
  return spec;
}

// One scheme with its parameters, the variance its paper prescribes (written out here from the
// formulas, not taken from the library) and, for uniform schemes, the half-width b.
struct Case {
  std::string label;
  InitSpec spec;
  double variance;
  bool uniform;
  double bound;
};

constexpr int kOut = 512;
constexpr int kIn = 768;

std::vector<Case> cases() {
  const double fi = kIn;
  const double fo = kOut;
  std::vector<Case> c;
  InitSpec s = spec_of(Init::kNormal);
  s.std = 0.3;
  s.gain = 1.5;
  c.push_back({"normal", s, (1.5 * 0.3) * (1.5 * 0.3), false, 0.0});
  s = spec_of(Init::kUniform);
  s.limit = 0.2;
  s.gain = 1.5;
  c.push_back({"uniform", s, 0.3 * 0.3 / 3.0, true, 0.3});
  // Glorot & Bengio 2010.
  c.push_back({"xavier_normal", spec_of(Init::kXavierNormal), 2.0 / (fi + fo), false, 0.0});
  c.push_back({"xavier_uniform", spec_of(Init::kXavierUniform), 2.0 / (fi + fo), true,
               std::sqrt(6.0 / (fi + fo))});
  // He et al. 2015, both fan modes.
  c.push_back({"he_normal fan_in", spec_of(Init::kHeNormal), 2.0 / fi, false, 0.0});
  s = spec_of(Init::kHeNormal);
  s.mode = FanMode::kFanOut;
  c.push_back({"he_normal fan_out", s, 2.0 / fo, false, 0.0});
  c.push_back(
      {"he_uniform fan_in", spec_of(Init::kHeUniform), 2.0 / fi, true, std::sqrt(6.0 / fi)});
  s = spec_of(Init::kHeUniform);
  s.mode = FanMode::kFanOut;
  c.push_back({"he_uniform fan_out", s, 2.0 / fo, true, std::sqrt(6.0 / fo)});
  // LeCun et al. 1998.
  c.push_back({"lecun_normal", spec_of(Init::kLecunNormal), 1.0 / fi, false, 0.0});
  c.push_back({"lecun_uniform", spec_of(Init::kLecunUniform), 1.0 / fi, true, std::sqrt(3.0 / fi)});
  // Saxe et al. 2014: gain^2 min(out, in) spread over out * in entries.
  c.push_back({"orthogonal", spec_of(Init::kOrthogonal), fo / (fo * fi), false, 0.0});
  // PyTorch nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  c.push_back(
      {"torch_default", spec_of(Init::kTorchDefault), 1.0 / (3.0 * fi), true, 1.0 / std::sqrt(fi)});
  // Poole et al. 2016 / Schoenholz et al. 2017: sw2 / fan_in, with gain^2 on top.
  s = spec_of(Init::kVariance);
  s.weight_var = 1.7;
  s.gain = 0.5;
  c.push_back({"variance", s, 0.25 * 1.7 / fi, false, 0.0});
  return c;
}

double mean_square(const Eigen::MatrixXd& W) { return W.array().square().mean(); }

TEST(Init, SampleVarianceMatchesThePapersFormula) {
  const double n = static_cast<double>(kOut) * kIn;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.label);
    const Eigen::MatrixXd W = weights(c.spec, kOut, kIn);
    // The mean is known (0), so the mean square estimates the variance. Its relative standard
    // error is sqrt((kurtosis - 1) / N): sqrt(2/N) for a normal, sqrt(0.8/N) for a uniform;
    // 5 of them. Orthogonal matrices have an exact sum of squares: rounding only.
    const double tolerance =
        c.spec.kind == Init::kOrthogonal ? 1e-12 : 5.0 * std::sqrt((c.uniform ? 0.8 : 2.0) / n);
    EXPECT_NEAR(mean_square(W) / c.variance, 1.0, tolerance);
    // 5 standard errors of the mean, sqrt(variance / N).
    EXPECT_NEAR(W.mean(), 0.0, 5.0 * std::sqrt(c.variance / n));
  }
}

TEST(Init, WeightVarianceFunctionMatchesThePapersFormula) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.label);
    // Both sides are a few roundings of the same closed form.
    EXPECT_NEAR(init_weight_variance(c.spec, kIn, kOut) / c.variance, 1.0, 1e-14);
  }
  EXPECT_EQ(init_weight_variance(spec_of(Init::kZeros), kIn, kOut), 0.0);
}

TEST(Init, WeightVarianceAgreesWithEveryGeneratedMatrix) {
  // Square, tall and wide, so the fan_in / fan_out / max choices are all exercised.
  const std::vector<std::pair<int, int>> shapes = {{300, 300}, {500, 200}, {200, 500}};
  for (const InitInfo& info : init_table()) {
    for (const auto& [out, in] : shapes) {
      SCOPED_TRACE(std::string(info.name) + " " + std::to_string(out) + "x" + std::to_string(in));
      InitSpec spec = spec_of(info.kind);
      spec.gain = 1.3;
      spec.mode = FanMode::kFanOut;
      const Eigen::MatrixXd W = weights(spec, out, in);
      const double expected = init_weight_variance(spec, in, out);
      if (info.kind == Init::kZeros) {
        EXPECT_EQ(W.squaredNorm(), 0.0);
        EXPECT_EQ(expected, 0.0);
        continue;
      }
      // 5 relative standard errors of a mean square of N = 6e4..1e5 normal entries,
      // sqrt(2/N) (uniform entries fluctuate less); orthogonal is exact up to rounding.
      const double n = static_cast<double>(out) * in;
      const double tolerance = info.kind == Init::kOrthogonal ? 1e-12 : 5.0 * std::sqrt(2.0 / n);
      EXPECT_NEAR(mean_square(W) / expected, 1.0, tolerance);
    }
  }
}

TEST(Init, UniformSchemesRespectTheirBounds) {
  for (const Case& c : cases()) {
    if (!c.uniform) continue;
    SCOPED_TRACE(c.label);
    const Eigen::MatrixXd W = weights(c.spec, kOut, kIn);
    EXPECT_LE(W.cwiseAbs().maxCoeff(), c.bound);
    // With 4e5 draws the extremes come within 1e-3 b of the bound (probability 1 - 1e-170).
    EXPECT_GT(W.maxCoeff(), 0.999 * c.bound);
    EXPECT_LT(W.minCoeff(), -0.999 * c.bound);
  }
}

TEST(Init, TorchDefaultBoundIsOneOverSqrtFanIn) {
  for (const int in : {1, 3, 100, 1000}) {
    const Eigen::MatrixXd W = weights(spec_of(Init::kTorchDefault), 200, in);
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    EXPECT_LE(W.cwiseAbs().maxCoeff(), bound);
    // 200 * in >= 200 draws: the largest comes within 5% of the bound (probability > 1 - 1e-4).
    EXPECT_GT(W.cwiseAbs().maxCoeff(), 0.95 * bound);
  }
}

TEST(Init, GainScalesEveryEntryExactly) {
  // Multiplying by a power of two is exact in floating point, so the same stream scaled by gain 2
  // must match bit for bit.
  for (const InitInfo& info : init_table()) {
    SCOPED_TRACE(std::string(info.name));
    for (const auto& [out, in] : std::vector<std::pair<int, int>>{{37, 53}, {53, 37}}) {
      InitSpec one = spec_of(info.kind);
      one.std = 0.7;
      one.limit = 0.4;
      one.weight_var = 1.9;
      InitSpec two = one;
      two.gain = 2.0;
      const Eigen::MatrixXd W1 = weights(one, out, in);
      const Eigen::MatrixXd W2 = weights(two, out, in);
      EXPECT_TRUE((W2.array() == 2.0 * W1.array()).all());
    }
  }
}

TEST(Init, HeFanOutModeUsesTheOutputWidth) {
  InitSpec fan_out = spec_of(Init::kHeNormal);
  fan_out.mode = FanMode::kFanOut;
  EXPECT_DOUBLE_EQ(init_weight_variance(fan_out, 100, 400), 2.0 / 400.0);
  EXPECT_DOUBLE_EQ(init_weight_variance(spec_of(Init::kHeNormal), 100, 400), 2.0 / 100.0);
  // Same stream, so the two modes differ by exactly the ratio of the standard deviations.
  const Eigen::MatrixXd Wout = weights(fan_out, 400, 100);
  const Eigen::MatrixXd Win = weights(spec_of(Init::kHeNormal), 400, 100);
  // The two scale factors are each rounded once: a few ulp.
  EXPECT_NEAR((Wout - 0.5 * Win).cwiseAbs().maxCoeff(), 0.0, 1e-15 * Win.cwiseAbs().maxCoeff());
}

TEST(Init, ElementwiseSchemesDrawTheStreamInColumnMajorOrder) {
  const int out = 7;
  const int in = 5;
  std::vector<double> z(out * in);
  fill_normal(kKey, 0, z.size(), z.data());
  std::vector<double> u(out * in);
  const double b = std::sqrt(6.0 / in);
  fill_uniform(kKey, 0, u.size(), -b, b, u.data());
  const Eigen::MatrixXd Wn = weights(spec_of(Init::kHeNormal), out, in);
  const Eigen::MatrixXd Wu = weights(spec_of(Init::kHeUniform), out, in);
  const double std = std::sqrt(2.0 / in);
  for (int j = 0; j < in; ++j) {
    for (int i = 0; i < out; ++i) {
      const auto k = static_cast<std::size_t>(i + j * out);
      EXPECT_EQ(Wn(i, j), std * z[k]);
      EXPECT_EQ(Wu(i, j), u[k]);
    }
  }
}

TEST(Init, SameKeySameMatrixOtherKeyOtherMatrix) {
  for (const InitInfo& info : init_table()) {
    if (info.kind == Init::kZeros) continue;
    SCOPED_TRACE(std::string(info.name));
    const Eigen::MatrixXd A = weights(spec_of(info.kind), 40, 60);
    const Eigen::MatrixXd B = weights(spec_of(info.kind), 40, 60);
    const Eigen::MatrixXd C =
        weights(spec_of(info.kind), 40, 60, stream_key(2024, 6, StreamPurpose::kWeights));
    EXPECT_TRUE((A.array() == B.array()).all());
    EXPECT_FALSE((A.array() == C.array()).any());
  }
}

TEST(Init, ZerosIsZero) {
  InitSpec spec = spec_of(Init::kZeros);
  spec.gain = 3.0;
  Eigen::MatrixXd W = Eigen::MatrixXd::Constant(4, 6, 9.0);
  init_weights(spec, kKey, W);
  EXPECT_TRUE((W.array() == 0.0).all());
}

// Orthogonality and the sign convention for one shape: W = gain Q or gain Q^T, where A = Q R is
// the QR of the Gaussian (max x min) matrix drawn column-major from the stream and R has a
// positive diagonal.
void check_orthogonal(int out, int in, double gain) {
  SCOPED_TRACE(std::to_string(out) + "x" + std::to_string(in));
  InitSpec spec = spec_of(Init::kOrthogonal);
  spec.gain = gain;
  const Eigen::MatrixXd W = weights(spec, out, in);
  const Eigen::MatrixXd Q =
      out >= in ? Eigen::MatrixXd(W / gain) : Eigen::MatrixXd(W.transpose() / gain);
  const Eigen::Index k = std::min(out, in);
  // 1e-12: Householder QR is backward stable, orthogonality holds to a small multiple of
  // n * machine epsilon (~1e-14 for n in the hundreds).
  EXPECT_LT((Q.transpose() * Q - Eigen::MatrixXd::Identity(k, k)).cwiseAbs().maxCoeff(), 1e-12);

  Eigen::MatrixXd A(std::max(out, in), k);
  fill_normal(kKey, 0, static_cast<std::uint64_t>(A.size()), A.data());
  const Eigen::MatrixXd R = Q.transpose() * A;
  const double scale = A.cwiseAbs().maxCoeff();
  for (Eigen::Index c = 0; c < k; ++c) {
    EXPECT_GT(R(c, c), 0.0) << "column " << c;
    for (Eigen::Index r = c + 1; r < k; ++r) {
      // Q^T A is upper triangular up to the rounding of the factorisation.
      ASSERT_LT(std::fabs(R(r, c)), 1e-12 * scale * static_cast<double>(A.rows()));
    }
  }
  // Q spans the columns of A: A = Q (Q^T A), to rounding.
  EXPECT_LT((Q * R - A).cwiseAbs().maxCoeff(), 1e-12 * scale * static_cast<double>(A.rows()));
}

TEST(Init, OrthogonalSquareTallAndWide) {
  check_orthogonal(64, 64, 1.0);
  check_orthogonal(96, 40, 1.0);
  check_orthogonal(40, 96, 1.0);
  check_orthogonal(120, 120, 2.5);
  check_orthogonal(1, 17, 1.0);
}

TEST(Init, OrthogonalRowsOrColumnsAreOrthonormal) {
  // Wide: rows orthonormal (W W^T = I); tall: columns (W^T W = I).
  const Eigen::MatrixXd wide = weights(spec_of(Init::kOrthogonal), 30, 70);
  const Eigen::MatrixXd tall = weights(spec_of(Init::kOrthogonal), 70, 30);
  // Rounding of Householder QR, as above.
  EXPECT_LT((wide * wide.transpose() - Eigen::MatrixXd::Identity(30, 30)).cwiseAbs().maxCoeff(),
            1e-12);
  EXPECT_LT((tall.transpose() * tall - Eigen::MatrixXd::Identity(30, 30)).cwiseAbs().maxCoeff(),
            1e-12);
}

TEST(Init, TableNamesRoundTripInEnumOrder) {
  const std::vector<std::string_view> expected = {
      "zeros",         "normal",     "uniform",         "xavier_normal", "xavier_uniform",
      "he_normal",     "he_uniform", "lecun_normal",    "lecun_uniform", "orthogonal",
      "torch_default", "variance",   "delta_orthogonal"};
  ASSERT_EQ(init_table().size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const InitInfo& info = init_table()[i];
    EXPECT_EQ(static_cast<std::size_t>(info.kind), i);
    EXPECT_EQ(info.name, expected[i]);
    EXPECT_EQ(init_from_name(info.name), info.kind);
    EXPECT_EQ(init_info(info.kind).name, info.name);
    EXPECT_FALSE(info.description.empty());
  }
  EXPECT_FALSE(init_from_name("he").has_value());
  EXPECT_FALSE(init_from_name("He_Normal").has_value());
  EXPECT_FALSE(init_from_name("").has_value());
}

TEST(Init, EverySchemeCitesItsSource) {
  const std::vector<std::pair<Init, std::vector<std::string_view>>> sources = {
      {Init::kXavierNormal, {"Glorot", "Bengio", "2010"}},
      {Init::kXavierUniform, {"Glorot", "Bengio", "2010"}},
      {Init::kHeNormal, {"He", "2015"}},
      {Init::kHeUniform, {"He", "2015"}},
      {Init::kLecunNormal, {"LeCun", "1998", "Efficient BackProp"}},
      {Init::kLecunUniform, {"LeCun", "1998", "Efficient BackProp"}},
      {Init::kOrthogonal, {"Saxe", "2014"}},
      {Init::kTorchDefault, {"PyTorch", "reset_parameters"}},
      {Init::kVariance, {"Poole", "2016", "Schoenholz", "2017"}},
  };
  for (const auto& [kind, words] : sources) {
    const std::string_view citation = init_info(kind).citation;
    for (std::string_view word : words) {
      EXPECT_NE(citation.find(word), std::string_view::npos)
          << init_info(kind).name << " should cite " << word;
    }
  }
  std::set<Init> uncited = {Init::kZeros, Init::kNormal, Init::kUniform};
  for (const InitInfo& info : init_table()) {
    if (uncited.count(info.kind) == 0) {
      EXPECT_FALSE(info.citation.empty()) << info.name;
    }
  }
}

TEST(Init, ParamsListWhatEachSchemeReads) {
  EXPECT_EQ(init_info(Init::kNormal).params, "std");
  EXPECT_EQ(init_info(Init::kUniform).params, "limit");
  EXPECT_EQ(init_info(Init::kHeNormal).params, "mode");
  EXPECT_EQ(init_info(Init::kHeUniform).params, "mode");
  EXPECT_EQ(init_info(Init::kVariance).params, "weight_var");
  EXPECT_EQ(init_info(Init::kXavierNormal).params, "");
}

const std::uint64_t kBiasKey = stream_key(2024, 5, StreamPurpose::kBias);

Eigen::VectorXd bias(const BiasInitSpec& spec, int fan_in, int width) {
  Eigen::VectorXd b(width);
  init_bias(spec, fan_in, kBiasKey, b);
  return b;
}

TEST(Init, BiasZerosAndConstant) {
  BiasInitSpec spec;
  spec.kind = BiasInit::kZeros;
  EXPECT_TRUE((bias(spec, 10, 33).array() == 0.0).all());
  EXPECT_EQ(bias_second_moment(spec, 10), 0.0);
  spec.kind = BiasInit::kConstant;
  spec.value = -0.25;
  EXPECT_TRUE((bias(spec, 10, 33).array() == -0.25).all());
  EXPECT_EQ(bias_second_moment(spec, 10), 0.0625);
}

TEST(Init, BiasNormalHasVarianceStdSquared) {
  BiasInitSpec spec;
  spec.kind = BiasInit::kNormal;
  spec.std = 0.4;
  const int n = 200000;
  const Eigen::VectorXd b = bias(spec, 10, n);
  EXPECT_DOUBLE_EQ(bias_second_moment(spec, 10), 0.16);
  // 5 relative standard errors of a normal mean square, sqrt(2/N).
  EXPECT_NEAR(b.array().square().mean() / 0.16, 1.0, 5.0 * std::sqrt(2.0 / n));
  // Same stream as a weight of the same key: b = std * z.
  std::vector<double> z(5);
  fill_normal(kBiasKey, 0, z.size(), z.data());
  for (std::size_t i = 0; i < z.size(); ++i) EXPECT_EQ(b(static_cast<Eigen::Index>(i)), 0.4 * z[i]);
}

TEST(Init, BiasTorchDefaultIsUniformOverOneOverSqrtFanIn) {
  BiasInitSpec spec;
  spec.kind = BiasInit::kTorchDefault;
  const int fan_in = 250;
  const int n = 200000;
  const Eigen::VectorXd b = bias(spec, fan_in, n);
  const double bound = 1.0 / std::sqrt(250.0);
  EXPECT_LE(b.cwiseAbs().maxCoeff(), bound);
  // With 2e5 draws the extremes come within 1e-3 of the bound.
  EXPECT_GT(b.cwiseAbs().maxCoeff(), 0.999 * bound);
  EXPECT_DOUBLE_EQ(bias_second_moment(spec, fan_in), 1.0 / 750.0);
  // 5 relative standard errors of a uniform mean square, sqrt(0.8/N).
  EXPECT_NEAR(b.array().square().mean() / bias_second_moment(spec, fan_in), 1.0,
              5.0 * std::sqrt(0.8 / n));
}

TEST(Init, BiasTableNamesRoundTrip) {
  const std::vector<std::string_view> expected = {"zeros", "constant", "normal", "torch_default"};
  ASSERT_EQ(bias_init_table().size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const BiasInitInfo& info = bias_init_table()[i];
    EXPECT_EQ(static_cast<std::size_t>(info.kind), i);
    EXPECT_EQ(info.name, expected[i]);
    EXPECT_EQ(bias_init_from_name(info.name), info.kind);
    EXPECT_FALSE(info.description.empty());
  }
  EXPECT_EQ(bias_init_table()[1].params, "value");
  EXPECT_EQ(bias_init_table()[2].params, "std");
  EXPECT_FALSE(bias_init_from_name("zero").has_value());
}

}  // namespace
}  // namespace gradscope
