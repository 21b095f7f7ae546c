// Tests for the activation registry, the double scalar references (against finite differences and
// independently written formulas) and the float/double kernels (against the scalar references).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/error.hpp"
#include "gradscope/core/rng.hpp"
#include "test_support.hpp"

namespace gradscope {
namespace {

using testing::elementwise_specs;

constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr double kPi = 3.14159265358979323846;
// PyTorch's SELU constants, spelled out independently of the implementation.
constexpr double kAlpha = 1.6732632423543772848170429916717;
constexpr double kScale = 1.0507009873554804934193349852946;

std::string label(const ActivationSpec& spec) {
  return std::string(activation_info(spec.kind).name) + "(" + std::to_string(spec.param) + ")";
}

bool near_kink(const ActivationSpec& spec, double x, double radius) {
  for (double k : kinks(spec)) {
    if (std::abs(x - k) <= radius) return true;
  }
  return false;
}

// A grid over the interesting range, with a step that never lands on a kink, plus extreme inputs.
std::vector<double> fd_grid() {
  std::vector<double> xs;
  for (double x = -12.0; x <= 12.0; x += 0.0173) xs.push_back(x);
  for (double x : {30.0, 50.0, 100.0, 1000.0}) {
    xs.push_back(x);
    xs.push_back(-x);
  }
  return xs;
}

using Fn = double (*)(const ActivationSpec&, double);

// Checks f' = df/dx by fourth-order central differences over the grid, away from kinks. The step
// is a power of two, so x +- h and x +- 2h are exact for these |x|.
void expect_matches_central_differences(const ActivationSpec& spec, Fn f, Fn df, const char* what) {
  SCOPED_TRACE(label(spec) + " " + what);
  const double h = 0x1p-13;  // 1.2e-4
  int failures = 0;
  for (double x : fd_grid()) {
    if (near_kink(spec, x, 3.0 * h)) continue;
    const double f2m = f(spec, x - 2.0 * h);
    const double f1m = f(spec, x - h);
    const double f1p = f(spec, x + h);
    const double f2p = f(spec, x + 2.0 * h);
    const double fd = (f2m - 8.0 * f1m + 8.0 * f1p - f2p) / (12.0 * h);
    const double exact = df(spec, x);
    const double f_max = std::max({std::abs(f2m), std::abs(f1m), std::abs(f1p), std::abs(f2p)});
    // Relative part: the truncation error h^4 |f^(5)| / 30 is below 1e-12 relative even in the
    // Gaussian tails of gelu (where it is about (h x)^4 / 30 at |x| <= 30).
    // Absolute part: rounding of the differences, 1.5 eps |f| / h, with a factor of 40 for the
    // few-ulp error of each evaluation; it only matters where f' is tiny next to f (a saturated
    // tail, or near a zero of f'), which TailDerivativesKeepRelativeAccuracy checks relatively.
    const double tol = 1e-8 * (std::abs(exact) + std::abs(fd)) + 64.0 * kEps * f_max / h;
    if (!(std::abs(exact - fd) <= tol) && ++failures <= 5) {
      ADD_FAILURE() << "x = " << x << ": exact " << exact << ", central difference " << fd;
    }
  }
}

TEST(ActivationScalar, DerivativeMatchesCentralDifferences) {
  for (const ActivationSpec& spec : elementwise_specs()) {
    expect_matches_central_differences(spec, activation_value, activation_derivative, "phi'");
  }
}

TEST(ActivationScalar, SecondDerivativeMatchesCentralDifferencesOfDerivative) {
  for (const ActivationSpec& spec : elementwise_specs()) {
    expect_matches_central_differences(spec, activation_derivative, activation_second_derivative,
                                       "phi''");
  }
}

// At a kink the derivative must be one of the one-sided derivatives, namely the one PyTorch's
// backward uses; phi'' is 0 there by the header's convention.
TEST(ActivationScalar, KinkDerivativesAreOneSidedAndFollowPyTorch) {
  struct Case {
    ActivationSpec spec;
    double kink;
    double torch_slope;
  };
  const std::vector<Case> cases = {
      {default_spec(Activation::kRelu), 0.0, 0.0},
      {default_spec(Activation::kLeakyRelu), 0.0, 0.01},
      {{Activation::kLeakyRelu, 0.2}, 0.0, 0.2},
      {default_spec(Activation::kElu), 0.0, 1.0},
      {{Activation::kElu, 0.5}, 0.0, 0.5},
      {{Activation::kElu, 2.0}, 0.0, 2.0},
      {default_spec(Activation::kSelu), 0.0, kScale * kAlpha},
      {default_spec(Activation::kHardTanh), -1.0, 0.0},
      {default_spec(Activation::kHardTanh), 1.0, 0.0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(label(c.spec) + " at " + std::to_string(c.kink));
    const double delta = 1e-7;
    const double f0 = activation_value(c.spec, c.kink);
    const double left = (f0 - activation_value(c.spec, c.kink - delta)) / delta;
    const double right = (activation_value(c.spec, c.kink + delta) - f0) / delta;
    const double slope = activation_derivative(c.spec, c.kink);
    // One-sided differences carry an O(delta |phi''|) truncation error, below 1e-6 here.
    const double tol = 1e-6;
    EXPECT_TRUE(std::abs(slope - left) <= tol || std::abs(slope - right) <= tol)
        << "slope " << slope << " is neither side: left " << left << ", right " << right;
    EXPECT_EQ(slope, c.torch_slope);
    EXPECT_EQ(activation_second_derivative(c.spec, c.kink), 0.0);
  }
}

TEST(ActivationScalar, KinksListedForKinkedActivationsOnly) {
  using V = std::vector<double>;
  EXPECT_EQ(kinks(default_spec(Activation::kRelu)), V{0.0});
  EXPECT_EQ(kinks(default_spec(Activation::kLeakyRelu)), V{0.0});
  EXPECT_EQ(kinks(default_spec(Activation::kElu)), V{0.0});
  EXPECT_EQ(kinks(default_spec(Activation::kSelu)), V{0.0});
  EXPECT_EQ(kinks(default_spec(Activation::kHardTanh)), (V{-1.0, 1.0}));
  for (Activation kind : {Activation::kLinear, Activation::kGelu, Activation::kGeluTanh,
                          Activation::kSilu, Activation::kMish, Activation::kSoftplus,
                          Activation::kSigmoid, Activation::kTanh, Activation::kSoftmax}) {
    EXPECT_TRUE(kinks(default_spec(kind)).empty()) << activation_info(kind).name;
  }
}

// Values from the defining formulas, written here independently of the implementation.
TEST(ActivationScalar, KnownValuesFromDefiningFormulas) {
  const auto spec = [](Activation kind) { return default_spec(kind); };
  const double k0 = std::sqrt(2.0 / kPi);
  const auto gelu = [](double x) { return x * 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); };
  const auto gelu_tanh = [k0](double x) {
    return 0.5 * x * (1.0 + std::tanh(k0 * (x + 0.044715 * x * x * x)));
  };
  const auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  struct Case {
    ActivationSpec spec;
    double x;
    double want;
  };
  const std::vector<Case> cases = {
      {spec(Activation::kLinear), 3.5, 3.5},
      {spec(Activation::kRelu), -2.0, 0.0},
      {spec(Activation::kRelu), 2.0, 2.0},
      {spec(Activation::kLeakyRelu), -2.0, -0.02},
      {{Activation::kLeakyRelu, 0.2}, -2.0, -0.4},
      {spec(Activation::kElu), -1.0, std::exp(-1.0) - 1.0},
      {{Activation::kElu, 0.5}, -2.0, 0.5 * (std::exp(-2.0) - 1.0)},
      {spec(Activation::kElu), 1.5, 1.5},
      {spec(Activation::kSelu), -1.0, kScale * kAlpha * (std::exp(-1.0) - 1.0)},
      {spec(Activation::kSelu), 2.0, 2.0 * kScale},
      {spec(Activation::kGelu), 1.0, gelu(1.0)},
      {spec(Activation::kGelu), -2.0, gelu(-2.0)},
      {spec(Activation::kGelu), 0.5, gelu(0.5)},
      {spec(Activation::kGeluTanh), 1.0, gelu_tanh(1.0)},
      {spec(Activation::kGeluTanh), -1.5, gelu_tanh(-1.5)},
      {spec(Activation::kSilu), 1.0, sigmoid(1.0)},
      {spec(Activation::kSilu), -3.0, -3.0 * sigmoid(-3.0)},
      {spec(Activation::kMish), 1.0, std::tanh(std::log1p(std::exp(1.0)))},
      {spec(Activation::kMish), -2.0, -2.0 * std::tanh(std::log1p(std::exp(-2.0)))},
      {spec(Activation::kSoftplus), 0.0, std::log(2.0)},
      {spec(Activation::kSoftplus), 2.0, std::log1p(std::exp(2.0))},
      {spec(Activation::kSoftplus), -3.0, std::log1p(std::exp(-3.0))},
      {spec(Activation::kSigmoid), 0.0, 0.5},
      {spec(Activation::kSigmoid), 2.0, sigmoid(2.0)},
      {spec(Activation::kSigmoid), -4.0, sigmoid(-4.0)},
      {spec(Activation::kTanh), 0.5, std::tanh(0.5)},
      {spec(Activation::kHardTanh), 2.0, 1.0},
      {spec(Activation::kHardTanh), -5.0, -1.0},
      {spec(Activation::kHardTanh), -0.3, -0.3},
  };
  for (const Case& c : cases) {
    // Equivalent double formulas round differently: a few ulps apart.
    EXPECT_NEAR(activation_value(c.spec, c.x), c.want, 8.0 * kEps * std::abs(c.want))
        << label(c.spec) << " at " << c.x;
  }
  // PyTorch: torch.nn.functional.gelu(torch.tensor(1.0, dtype=torch.float64)).
  EXPECT_NEAR(activation_value(spec(Activation::kGelu), 1.0), 0.8413447460685429, 2e-16);

  // Slopes at 0, from the formulas: Phi(0) = 1/2, sigmoid(0) = 1/2, tanh(softplus 0) = 3/5.
  EXPECT_NEAR(activation_derivative(spec(Activation::kGelu), 0.0), 0.5, kEps);
  EXPECT_NEAR(activation_derivative(spec(Activation::kGeluTanh), 0.0), 0.5, kEps);
  EXPECT_NEAR(activation_derivative(spec(Activation::kSilu), 0.0), 0.5, kEps);
  EXPECT_NEAR(activation_derivative(spec(Activation::kMish), 0.0), 0.6, kEps);
  EXPECT_NEAR(activation_derivative(spec(Activation::kSoftplus), 0.0), 0.5, kEps);
  EXPECT_NEAR(activation_derivative(spec(Activation::kSigmoid), 0.0), 0.25, kEps);
  EXPECT_NEAR(activation_derivative(spec(Activation::kTanh), 0.0), 1.0, kEps);
  EXPECT_EQ(activation_derivative(spec(Activation::kHardTanh), 0.5), 1.0);
  EXPECT_EQ(activation_derivative(spec(Activation::kRelu), 3.0), 1.0);
}

// Far in the tails a finite difference only sees rounding noise, so compare with tail formulas
// that have no cancellation, written from the definitions: the derivative must stay relatively
// accurate where it is tiny (sigmoid'(30) is 9.4e-14, not 0), as a vanishing-gradient diagnosis
// relies on it.
TEST(ActivationScalar, TailDerivativesKeepRelativeAccuracy) {
  const auto spec = [](Activation kind) { return default_spec(kind); };
  const auto sigmoid_slope = [](double x) {
    const double e = std::exp(-std::abs(x));
    return e / ((1.0 + e) * (1.0 + e));
  };
  const double k0 = std::sqrt(2.0 / kPi);
  struct Case {
    ActivationSpec spec;
    double x;
    double want;
  };
  std::vector<Case> cases;
  for (double x : {30.0, 50.0, 100.0, 300.0, 700.0}) {
    for (double sx : {x, -x}) {
      cases.push_back({spec(Activation::kSigmoid), sx, sigmoid_slope(sx)});
      cases.push_back({spec(Activation::kSoftplus), sx,
                       sx > 0 ? 1.0 / (1.0 + std::exp(-sx)) : std::exp(sx) / (1.0 + std::exp(sx))});
      // tanh'(x) ~ 4 e^{-2|x|} underflows past |x| = 372.
      if (x < 350.0) cases.push_back({spec(Activation::kTanh), sx, 4.0 * sigmoid_slope(2.0 * sx)});
    }
    cases.push_back({spec(Activation::kElu), -x, std::exp(-x)});
    cases.push_back({spec(Activation::kSelu), -x, kScale * kAlpha * std::exp(-x)});
    // silu'(x) = s (1 + x (1 - s)) with s = e^x / (1 + e^x) for x < 0.
    const double s = std::exp(-x) / (1.0 + std::exp(-x));
    cases.push_back({spec(Activation::kSilu), -x, s * (1.0 - x * (1.0 - s))});
  }
  for (double x : {5.0, 10.0, 20.0}) {
    // gelu'(-x) = Phi(-x) - x pdf(x), Phi from erfc; the terms differ in size by a factor x^2.
    const double cdf = 0.5 * std::erfc(x / std::sqrt(2.0));
    const double pdf = std::exp(-0.5 * x * x) / std::sqrt(2.0 * kPi);
    cases.push_back({spec(Activation::kGelu), -x, cdf - x * pdf});
    // gelu_tanh'(-x) = s + (-x) 2 u' s (1 - s), s = 1 / (1 + e^{-2u}) = e^{2u} / (1 + e^{2u}).
    const double u = -k0 * (x + 0.044715 * x * x * x);
    const double du = k0 * (1.0 + 3.0 * 0.044715 * x * x);
    const double st = std::exp(2.0 * u) / (1.0 + std::exp(2.0 * u));
    cases.push_back({spec(Activation::kGeluTanh), -x, st - x * 2.0 * du * st * (1.0 - st)});
    // mish'(-x) = T + (-x) (1 - T^2) s with w = e^{-x}, T = w (w + 2) / (w (w + 2) + 2).
    const double w = std::exp(-x);
    const double t = w * (w + 2.0) / (w * (w + 2.0) + 2.0);
    cases.push_back({spec(Activation::kMish), -x, t - x * (1.0 - t * t) * (w / (1.0 + w))});
  }
  for (const Case& c : cases) {
    ASSERT_NE(c.want, 0.0) << label(c.spec) << " at " << c.x;
    // Both sides are sums and products of a few correctly rounded terms without cancellation,
    // except gelu's and gelu_tanh's two terms, of ratio about x^2: 1e-12 allows for that.
    EXPECT_NEAR(activation_derivative(c.spec, c.x), c.want, 1e-12 * std::abs(c.want))
        << label(c.spec) << " at " << c.x;
  }
}

std::vector<double> extreme_inputs() {
  std::vector<double> xs = {0.0, -0.0, 1e-300, -1e-300, 5e-324, 1e-40, -1e-40};
  for (double x : {0.5, 1.0, 20.0, 30.0, 50.0, 88.0, 89.0, 100.0, 104.0, 700.0, 710.0, 745.0, 746.0,
                   1000.0, 1234.5, 1e4}) {
    xs.push_back(x);
    xs.push_back(-x);
  }
  return xs;
}

TEST(ActivationScalar, FiniteForFiniteInputsUpTo1e4) {
  for (const ActivationSpec& spec : elementwise_specs()) {
    for (double x : extreme_inputs()) {
      EXPECT_TRUE(std::isfinite(activation_value(spec, x))) << label(spec) << " at " << x;
      EXPECT_TRUE(std::isfinite(activation_derivative(spec, x))) << label(spec) << " at " << x;
      EXPECT_TRUE(std::isfinite(activation_second_derivative(spec, x)))
          << label(spec) << " at " << x;
    }
  }
}

TEST(ActivationScalar, NanInputGivesNanValue) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const ActivationSpec& spec : elementwise_specs()) {
    EXPECT_TRUE(std::isnan(activation_value(spec, nan))) << label(spec);
  }
}

TEST(ActivationScalar, SoftmaxHasNoScalarForm) {
  const ActivationSpec spec = default_spec(Activation::kSoftmax);
  EXPECT_THROW(activation_value(spec, 0.0), gradscope::Error);
  EXPECT_THROW(activation_derivative(spec, 0.0), gradscope::Error);
  EXPECT_THROW(activation_second_derivative(spec, 0.0), gradscope::Error);
}

// ---- max_slope, recomputed ----------------------------------------------------------------------

double abs_slope(const ActivationSpec& spec, double x) {
  return std::abs(activation_derivative(spec, x));
}

// sup |phi'| by a dense scan (kinks included) and golden-section refinement around the best point.
double scanned_max_slope(const ActivationSpec& spec, double* argmax) {
  const double step = 1e-3;
  double best_x = 0.0;
  double best = -1.0;
  std::vector<double> xs;
  for (int i = -40000; i <= 40000; ++i) xs.push_back(i * step);
  for (double k : kinks(spec)) xs.push_back(k);
  for (double x : xs) {
    const double v = abs_slope(spec, x);
    if (v > best) {
      best = v;
      best_x = x;
    }
  }
  const double invphi = (std::sqrt(5.0) - 1.0) / 2.0;
  double a = best_x - step;
  double b = best_x + step;
  double c = b - invphi * (b - a);
  double d = a + invphi * (b - a);
  while (b - a > 1e-12) {
    if (abs_slope(spec, c) > abs_slope(spec, d)) {
      b = d;
    } else {
      a = c;
    }
    c = b - invphi * (b - a);
    d = a + invphi * (b - a);
  }
  const double refined = abs_slope(spec, 0.5 * (a + b));
  if (refined > best) {
    best = refined;
    best_x = 0.5 * (a + b);
  }
  *argmax = best_x;
  return best;
}

TEST(ActivationMaxSlope, MatchesDenseScanWithRefinement) {
  for (const ActivationSpec& spec : elementwise_specs()) {
    double argmax = 0.0;
    const double scanned = scanned_max_slope(spec, &argmax);
    // The brief's bar: the refined scan agrees to 1e-9 (relative).
    EXPECT_NEAR(max_slope(spec), scanned, 1e-9 * scanned)
        << label(spec) << ", scan's argmax " << argmax;
    // max_slope is a supremum: no point of the scan may exceed it beyond rounding.
    EXPECT_LE(scanned, max_slope(spec) * (1.0 + 4.0 * kEps)) << label(spec);
  }
  EXPECT_EQ(max_slope(default_spec(Activation::kSoftmax)), 0.25);
}

// The hard-coded constants without closed form carry 15+ digits: Newton on phi'' from the scan's
// argmax (phi''' by central differences of phi'') lands on the maximum, where phi' must equal them.
TEST(ActivationMaxSlope, HardCodedMaximaAgreeWithNewtonOnSecondDerivative) {
  for (Activation kind : {Activation::kGelu, Activation::kGeluTanh, Activation::kSilu,
                          Activation::kMish, Activation::kSigmoid, Activation::kTanh}) {
    const ActivationSpec spec = default_spec(kind);
    SCOPED_TRACE(label(spec));
    double x = 0.0;
    scanned_max_slope(spec, &x);
    for (int it = 0; it < 50; ++it) {
      const double h = 1e-5;
      const double f2 = activation_second_derivative(spec, x);
      const double f3 =
          (activation_second_derivative(spec, x + h) - activation_second_derivative(spec, x - h)) /
          (2.0 * h);
      if (f3 == 0.0) break;
      const double step = f2 / f3;
      x -= step;
      if (std::abs(step) < 1e-14) break;
    }
    // At the maximum phi'' vanishes up to its rounding (its terms are O(1)).
    EXPECT_NEAR(activation_second_derivative(spec, x), 0.0, 1e-14);
    // phi' at the maximum, evaluated with a few ulps of error; its first-order dependence on x
    // vanishes there.
    EXPECT_NEAR(activation_derivative(spec, x), max_slope(spec), 8.0 * kEps);
  }
  // gelu's maximum has a closed form: gelu'(sqrt 2) = Phi(sqrt 2) + sqrt(2) pdf(sqrt 2).
  const double r2 = std::sqrt(2.0);
  EXPECT_NEAR(max_slope(default_spec(Activation::kGelu)),
              0.5 * std::erfc(-1.0) + r2 * std::exp(-1.0) / std::sqrt(2.0 * kPi), 4.0 * kEps);
  EXPECT_NEAR(max_slope(default_spec(Activation::kSelu)), kScale * kAlpha, 2.0 * kEps);
}

// ---- Registry
// ------------------------------------------------------------------------------------

TEST(ActivationRegistry, TableIsIndexedByKindWithUniqueNames) {
  const auto& table = activation_table();
  ASSERT_EQ(static_cast<int>(table.size()), kActivationCount);
  std::set<std::string_view> names;
  for (int i = 0; i < kActivationCount; ++i) {
    const ActivationInfo& info = table[static_cast<std::size_t>(i)];
    EXPECT_EQ(static_cast<int>(info.kind), i);
    EXPECT_EQ(&activation_info(info.kind), &info);
    EXPECT_FALSE(info.name.empty());
    EXPECT_FALSE(info.description.empty()) << info.name;
    EXPECT_FALSE(info.formula.empty()) << info.name;
    EXPECT_EQ(info.description.find('\n'), std::string_view::npos) << info.name;
    EXPECT_TRUE(names.insert(info.name).second) << "duplicate name " << info.name;
  }
}

TEST(ActivationRegistry, NamesRoundTripAndAliasesResolve) {
  for (const ActivationInfo& info : activation_table()) {
    EXPECT_EQ(activation_from_name(info.name), info.kind) << info.name;
  }
  EXPECT_EQ(activation_from_name("swish"), Activation::kSilu);
  EXPECT_EQ(activation_from_name("nonsense"), std::nullopt);
  EXPECT_EQ(activation_from_name(""), std::nullopt);
  EXPECT_EQ(activation_from_name("ReLU"), std::nullopt);  // case-sensitive

  const std::vector<std::string_view> all = activation_names_and_aliases();
  const std::set<std::string_view> unique(all.begin(), all.end());
  EXPECT_EQ(unique.size(), all.size());
  EXPECT_EQ(all.size(), activation_table().size() + 1);
  for (std::string_view name : all) {
    EXPECT_TRUE(activation_from_name(name).has_value()) << name;
  }
  EXPECT_TRUE(unique.count("swish"));
}

TEST(ActivationRegistry, ParametersAndOutputOnlyFlags) {
  EXPECT_EQ(activation_info(Activation::kLeakyRelu).param_name, "slope");
  EXPECT_EQ(default_spec(Activation::kLeakyRelu).param, 0.01);
  EXPECT_EQ(activation_info(Activation::kElu).param_name, "alpha");
  EXPECT_EQ(default_spec(Activation::kElu).param, 1.0);
  for (const ActivationInfo& info : activation_table()) {
    EXPECT_EQ(default_spec(info.kind).kind, info.kind);
    if (info.kind != Activation::kLeakyRelu && info.kind != Activation::kElu) {
      EXPECT_TRUE(info.param_name.empty()) << info.name;
      EXPECT_EQ(info.param_default, 0.0) << info.name;
    }
    EXPECT_EQ(info.output_only, info.kind == Activation::kSoftmax) << info.name;
  }
}

// ---- Kernels ---------------------------------------------------------------------------------

// Random inputs: uniform on [-8, 8], log-uniform magnitudes up to 1e4 with random signs, and the
// extremes and kinks.
Mat<double> kernel_inputs(Eigen::Index rows, Eigen::Index cols) {
  const std::uint64_t key = mix64(20240611);
  Mat<double> h(rows, cols);
  std::uint64_t k = 0;
  for (Eigen::Index i = 0; i < h.size(); ++i) {
    const double u = uniform01(key, k++);
    const double v = uniform01(key, k++);
    h.data()[i] =
        (i % 3 == 2) ? (v < 0.5 ? -1.0 : 1.0) * std::pow(10.0, -3.0 + 7.0 * u) : -8.0 + 16.0 * u;
  }
  const std::vector<double> special = {0.0,  -0.0,  1.0,   -1.0,   30.0,   -30.0,
                                       50.0, -50.0, 100.0, -100.0, 1000.0, -1000.0,
                                       1e4,  -1e4,  88.5,  -88.5,  1e-30,  -1e-30};
  for (std::size_t i = 0; i < special.size() && static_cast<Eigen::Index>(i) < h.size(); ++i) {
    h.data()[static_cast<Eigen::Index>(i) * 7 % h.size()] = special[i];
  }
  return h;
}

// Compares a kernel's output with the double reference at the same (exactly converted) input.
// The allowance rtol * (|want| + |x * want'|) is what a relative perturbation of x by rtol alone
// would cause: it keeps relative accuracy demanded of tiny tails and is only wider near zeros of
// the function, where no formula can be relatively accurate.
template <class T>
void expect_close(const char* what, const ActivationSpec& spec, double x, T got, double want,
                  double want_slope, double rtol, double atol, int* failures) {
  const double err = std::abs(static_cast<double>(got) - want);
  const double tol = rtol * (std::abs(want) + std::abs(x * want_slope)) + atol;
  if (!(err <= tol) && ++*failures <= 5) {
    ADD_FAILURE() << label(spec) << " " << what << " at x = " << x << ": kernel " << got
                  << ", reference " << want << ", error/tolerance " << err / tol;
  }
}

template <class T>
void check_kernels_against_reference(double rtol, double atol) {
  const Eigen::Index rows = 257;  // odd, so vectorised loops also run their scalar remainder
  const Eigen::Index cols = 40;
  const Mat<T> h = kernel_inputs(rows, cols).template cast<T>();
  for (const ActivationSpec& spec : elementwise_specs()) {
    // Outputs as blocks of larger matrices: an outer stride different from the row count.
    Mat<T> y_store = Mat<T>::Constant(rows + 5, cols, T(-7));
    Mat<T> d_store = Mat<T>::Constant(rows + 3, cols, T(-7));
    activation_forward<T>(spec, h, y_store.block(2, 0, rows, cols),
                          d_store.block(1, 0, rows, cols));
    int failures = 0;
    for (Eigen::Index j = 0; j < cols; ++j) {
      for (Eigen::Index i = 0; i < rows; ++i) {
        const double x = static_cast<double>(h(i, j));
        const double v = activation_value(spec, x);
        const double d1 = activation_derivative(spec, x);
        const double d2 = activation_second_derivative(spec, x);
        expect_close("value", spec, x, y_store(i + 2, j), v, d1, rtol, atol, &failures);
        expect_close("slope", spec, x, d_store(i + 1, j), d1, d2, rtol, atol, &failures);
      }
    }
    // Rows outside the blocks are untouched.
    EXPECT_EQ(y_store(0, 0), T(-7));
    EXPECT_EQ(y_store(rows + 4, cols - 1), T(-7));
    EXPECT_EQ(d_store(0, 0), T(-7));
    EXPECT_EQ(d_store(rows + 2, cols - 1), T(-7));
  }
}

TEST(ActivationKernel, DoubleMatchesScalarReference) {
  // The double kernels use the reference's formulas with Eigen's vectorised exp (within an ulp
  // or two of std::exp) in place of std::exp: the worst seen over 2e5 random inputs is 7e-16, so
  // 1e-14 leaves room for other Eigen builds. Past Eigen's exp clamp they take the reference
  // itself, so results that underflow are subnormals or 0 as they should be: absolute 2 smallest
  // subnormals (the clamp used to leave 5.6e-309 times |x| there).
  check_kernels_against_reference<double>(1e-14, 2.0 * std::numeric_limits<double>::denorm_min());
}

TEST(ActivationKernel, FloatMatchesScalarReference) {
  // float has eps 6e-8; the kernels chain a handful of float operations (gelu's erfc fit adds
  // 1.2e-7): the worst seen over 2e5 random inputs is 4.8e-7 of the allowance's scale, so 2e-6.
  // Absolute 2 smallest float subnormals: one rounding of the reference into float's subnormal
  // range and a little room (the clamp of Eigen's exp used to leave 3e-39 times |x| here).
  check_kernels_against_reference<float>(2e-6, 2.0 * std::numeric_limits<float>::denorm_min());
}

template <class T>
void check_finite_through_kernels() {
  std::vector<double> xs = extreme_inputs();
  Mat<T> h(static_cast<Eigen::Index>(xs.size()), 1);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    h(static_cast<Eigen::Index>(i), 0) = static_cast<T>(xs[i]);
  }
  Mat<T> y(h.rows(), 1);
  Mat<T> d(h.rows(), 1);
  for (const ActivationSpec& spec : elementwise_specs()) {
    activation_forward<T>(spec, h, y, d);
    for (Eigen::Index i = 0; i < h.rows(); ++i) {
      EXPECT_TRUE(std::isfinite(y(i, 0))) << label(spec) << " at " << h(i, 0);
      EXPECT_TRUE(std::isfinite(d(i, 0))) << label(spec) << " at " << h(i, 0);
    }
  }
}

TEST(ActivationKernel, FiniteForFiniteInputsUpTo1e4) {
  check_finite_through_kernels<float>();
  check_finite_through_kernels<double>();
}

template <class T>
void check_nan_propagates() {
  Mat<T> h = Mat<T>::Constant(9, 2, T(0.5));
  h(4, 1) = std::numeric_limits<T>::quiet_NaN();
  h(0, 0) = std::numeric_limits<T>::quiet_NaN();
  Mat<T> y(9, 2);
  Mat<T> d(9, 2);
  for (const ActivationSpec& spec : elementwise_specs()) {
    activation_forward<T>(spec, h, y, d);
    EXPECT_TRUE(std::isnan(y(4, 1))) << label(spec);
    EXPECT_TRUE(std::isnan(y(0, 0))) << label(spec);
    EXPECT_FALSE(std::isnan(y(3, 1))) << label(spec);
  }
}

TEST(ActivationKernel, NanInputGivesNanOutput) {
  check_nan_propagates<float>();
  check_nan_propagates<double>();
}

template <class T>
void check_elementwise_backward() {
  const Mat<T> h = kernel_inputs(13, 4).template cast<T>();
  Mat<T> y(13, 4);
  Mat<T> d(13, 4);
  const ActivationSpec spec = default_spec(Activation::kTanh);
  activation_forward<T>(spec, h, y, d);
  Mat<T> g(13, 4);
  for (Eigen::Index i = 0; i < g.size(); ++i)
    g.data()[i] = static_cast<T>(0.1 * static_cast<double>(i) - 2.0);
  Mat<T> dh(13, 4);
  activation_backward<T>(spec, y, d, g, dh);
  EXPECT_TRUE(dh.array().cwiseEqual(g.array() * d.array()).all());
  Mat<T> g_in_place = g;
  activation_backward<T>(spec, y, d, g_in_place, g_in_place);  // dh aliases g
  EXPECT_TRUE(g_in_place.cwiseEqual(dh).all());
}

TEST(ActivationKernel, ElementwiseBackwardIsGradientTimesSlope) {
  check_elementwise_backward<float>();
  check_elementwise_backward<double>();
}

TEST(ActivationKernel, RejectsMismatchedShapesAndInPlaceForward) {
  Mat<double> h = Mat<double>::Zero(4, 3);
  Mat<double> y(4, 3);
  Mat<double> d(4, 2);
  const ActivationSpec spec = default_spec(Activation::kRelu);
  EXPECT_THROW(activation_forward<double>(spec, h, y, d), gradscope::Error);
  Mat<double> d_ok(4, 3);
  EXPECT_THROW(activation_forward<double>(spec, h, h, d_ok), gradscope::Error);
  EXPECT_THROW(activation_backward<double>(spec, y, d_ok, y, d), gradscope::Error);
}

// ---- Softmax ---------------------------------------------------------------------------------

template <class T>
void check_softmax_columns_sum_to_one() {
  const Mat<T> h = kernel_inputs(50, 7).template cast<T>();
  Mat<T> y(50, 7);
  Mat<T> d(50, 7);
  activation_forward<T>(default_spec(Activation::kSoftmax), h, y, d);
  for (Eigen::Index j = 0; j < h.cols(); ++j) {
    // 50 positive terms, each rounded, summed: at most about 50 eps.
    EXPECT_NEAR(static_cast<double>(y.col(j).sum()), 1.0, 64.0 * std::numeric_limits<T>::epsilon());
    EXPECT_TRUE((y.col(j).array() >= T(0)).all());
    EXPECT_TRUE(d.col(j).cwiseEqual((y.col(j).array() * (T(1) - y.col(j).array())).matrix()).all());
  }
}

TEST(Softmax, ColumnsSumToOneAndDiagonalIsYTimesOneMinusY) {
  check_softmax_columns_sum_to_one<float>();
  check_softmax_columns_sum_to_one<double>();
}

template <class T>
void check_softmax_stable_for_huge_inputs() {
  Mat<T> h(5, 2);
  h.col(0) << T(1e4), T(-1e4), T(0), T(1e4 - 1), T(9999.5);
  h.col(1) << T(-1e4), T(-1e4), T(-1e4), T(-1e4 + 2), T(-1e4);
  Mat<T> y(5, 2);
  Mat<T> d(5, 2);
  activation_forward<T>(default_spec(Activation::kSoftmax), h, y, d);
  ASSERT_TRUE(y.allFinite());
  ASSERT_TRUE(d.allFinite());
  for (Eigen::Index j = 0; j < 2; ++j) {
    for (Eigen::Index i = 0; i < 5; ++i) {
      // y_i = 1 / sum_k exp(x_k - x_i), a different arrangement of the same quantity, in double.
      double denom = 0.0;
      for (Eigen::Index k = 0; k < 5; ++k) {
        denom += std::exp(static_cast<double>(h(k, j)) - static_cast<double>(h(i, j)));
      }
      // A few roundings of T on values <= 1.
      EXPECT_NEAR(static_cast<double>(y(i, j)), 1.0 / denom,
                  16.0 * std::numeric_limits<T>::epsilon());
    }
  }
}

TEST(Softmax, StableForInputsOf1e4) {
  check_softmax_stable_for_huge_inputs<float>();
  check_softmax_stable_for_huge_inputs<double>();
}

// The backward pass must be the Jacobian-vector product: with g = c it is the gradient of the
// scalar loss L(h) = sum_i c_i softmax(h)_i, checked by central differences in double.
TEST(Softmax, BackwardIsJacobianVectorProduct) {
  const Eigen::Index n = 6;
  const Eigen::Index cols = 3;
  const Mat<double> h =
      kernel_inputs(n, cols).unaryExpr([](double v) { return std::clamp(v, -6.0, 6.0); });
  Mat<double> c(n, cols);
  for (Eigen::Index i = 0; i < c.size(); ++i)
    c.data()[i] = std::sin(1.0 + 0.7 * static_cast<double>(i));
  const ActivationSpec spec = default_spec(Activation::kSoftmax);
  Mat<double> y(n, cols);
  Mat<double> d(n, cols);
  activation_forward<double>(spec, h, y, d);
  Mat<double> dh(n, cols);
  activation_backward<double>(spec, y, d, c, dh);

  const auto loss = [&](const Mat<double>& hh) {
    Mat<double> yy(n, cols);
    Mat<double> dd(n, cols);
    activation_forward<double>(spec, hh, yy, dd);
    return (c.array() * yy.array()).sum();
  };
  const double step = 1e-6;
  for (Eigen::Index i = 0; i < h.size(); ++i) {
    Mat<double> hp = h;
    Mat<double> hm = h;
    hp.data()[i] += step;
    hm.data()[i] -= step;
    const double fd = (loss(hp) - loss(hm)) / (2.0 * step);
    // Truncation step^2 |L'''| ~ 1e-12 and rounding eps |L| / step ~ 1e-10.
    EXPECT_NEAR(dh.data()[i], fd, 1e-8) << "entry " << i;
  }

  Mat<double> g_in_place = c;
  activation_backward<double>(spec, y, d, g_in_place, g_in_place);  // dh aliases g
  EXPECT_TRUE(g_in_place.cwiseEqual(dh).all());

  Mat<float> yf = y.cast<float>();
  Mat<float> df = d.cast<float>();
  Mat<float> dhf(n, cols);
  activation_backward<float>(spec, yf, df, c.cast<float>(), dhf);
  // The same product in float: a few float roundings on O(1) values.
  EXPECT_LE((dhf.cast<double>() - dh).cwiseAbs().maxCoeff(), 1e-6);
}

// ---- Far tails -------------------------------------------------------------------------------
// Eigen's vectorised exp clamps arguments below about -88.4 (float) and -709.4 (double) to a tiny
// normal number (3e-39, 6e-309) where the truth is a subnormal or 0. These tests hold the
// reference to high-precision values there, and every kernel to the reference.

// Within `ulps` units in the last place of want; a subnormal's ulp (and 0's) is the smallest
// subnormal of T.
template <class T>
bool within_ulps(double got, double want, double ulps) {
  const double ulp = std::max(std::numeric_limits<T>::epsilon() * std::abs(want),
                              static_cast<double>(std::numeric_limits<T>::denorm_min()));
  return std::abs(got - want) <= ulps * ulp;
}

// Values computed with mpmath at 80 digits and rounded to the nearest double (subnormals included).
TEST(ActivationScalar, FarTailsMatchHighPrecisionValues) {
  const auto spec = [](Activation kind) { return default_spec(kind); };
  struct Case {
    ActivationSpec spec;
    double x;
    double value;  // NaN: not checked
    double slope;
  };
  const double skip = std::numeric_limits<double>::quiet_NaN();
  const std::vector<Case> cases = {
      {spec(Activation::kGelu), -14.0, -1.091095154686992e-43, -1.527455646325367e-42},
      {spec(Activation::kGelu), -20.0, skip, -1.1014360483133464e-86},
      {spec(Activation::kGelu), -37.5, -1.7270073785932332e-306, -6.476271143055812e-305},
      {spec(Activation::kGelu), -38.0, -1.096462777e-314, -4.1665545693e-313},
      {spec(Activation::kGeluTanh), -21.3, -1.26335442077e-313, -1.2465230094397e-311},
      {spec(Activation::kGeluTanh), -21.4, -6.26041e-318, -6.2342417e-316},
      {spec(Activation::kSilu), -712.0, -4.313292185103229e-307, -4.30723419046123e-307},
      {spec(Activation::kSilu), -720.0, -1.46320617774547e-310, -1.46117394694305e-310},
      {spec(Activation::kMish), -712.0, -4.313292185103229e-307, -4.30723419046123e-307},
      {spec(Activation::kMish), -720.0, -1.46320617774547e-310, -1.46117394694305e-310},
      {spec(Activation::kSigmoid), -100.0, 3.720075976020836e-44, skip},
      {spec(Activation::kSigmoid), -740.0, 4.2e-322, 4.2e-322},
      {spec(Activation::kSigmoid), 740.0, 1.0, 4.2e-322},
      {spec(Activation::kSoftplus), -740.0, 4.2e-322, 4.2e-322},
      {spec(Activation::kTanh), 354.5, 1.0, 4.867123002493693e-308},
      {spec(Activation::kTanh), -360.0, -1.0, 8.12892320967e-313},
      {{Activation::kElu, 2.0}, -720.0, -2.0, 4.06446160484e-313},
      {spec(Activation::kSelu), -720.0, skip, 3.5728636342e-313},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(label(c.spec) + " at " + std::to_string(c.x));
    // The tail forms round a handful of times (one exp, a few products); the gelu_tanh argument
    // 2u ~ -730 carries a few ulps of its own, 1e-13 relative: below a subnormal's ulp here.
    if (!std::isnan(c.value)) {
      EXPECT_TRUE(within_ulps<double>(activation_value(c.spec, c.x), c.value, 4.0))
          << activation_value(c.spec, c.x) << " vs " << c.value;
    }
    if (!std::isnan(c.slope)) {
      EXPECT_TRUE(within_ulps<double>(activation_derivative(c.spec, c.x), c.slope, 4.0))
          << activation_derivative(c.spec, c.x) << " vs " << c.slope;
    }
  }
  // Closed forms: sigmoid(-100) = e^-100 / (1 + e^-100), and e^x where it is a subnormal.
  const double e100 = std::exp(-100.0);
  EXPECT_TRUE(within_ulps<double>(activation_value(spec(Activation::kSigmoid), -100.0),
                                  e100 / (1.0 + e100), 2.0));
  EXPECT_TRUE(within_ulps<double>(activation_derivative(spec(Activation::kSigmoid), -720.0),
                                  std::exp(-720.0), 1.0));
  EXPECT_TRUE(within_ulps<double>(activation_derivative(spec(Activation::kElu), -730.0),
                                  std::exp(-730.0), 1.0));
  // e^-746 is below half the smallest subnormal: these are exactly 0.
  EXPECT_EQ(activation_value(spec(Activation::kSoftplus), -746.0), 0.0);
  EXPECT_EQ(activation_derivative(spec(Activation::kSoftplus), -746.0), 0.0);
  EXPECT_EQ(activation_derivative(spec(Activation::kSigmoid), 746.0), 0.0);
}

// The limits at +-inf, for the reference and for both kernels.
TEST(ActivationKernel, InfiniteInputsGiveTheLimits) {
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    ActivationSpec spec;
    double y_pos, d_pos, y_neg, d_neg;
  };
  const auto spec = [](Activation kind) { return default_spec(kind); };
  const std::vector<Case> cases = {
      {spec(Activation::kLinear), inf, 1.0, -inf, 1.0},
      {spec(Activation::kRelu), inf, 1.0, 0.0, 0.0},
      {{Activation::kLeakyRelu, 0.25}, inf, 1.0, -inf, 0.25},
      {{Activation::kElu, 0.5}, inf, 1.0, -0.5, 0.0},
      {spec(Activation::kSelu), inf, kScale, -kScale * kAlpha, 0.0},
      {spec(Activation::kGelu), inf, 1.0, 0.0, 0.0},
      {spec(Activation::kGeluTanh), inf, 1.0, 0.0, 0.0},
      {spec(Activation::kSilu), inf, 1.0, 0.0, 0.0},
      {spec(Activation::kMish), inf, 1.0, 0.0, 0.0},
      {spec(Activation::kSoftplus), inf, 1.0, 0.0, 0.0},
      {spec(Activation::kSigmoid), 1.0, 0.0, 0.0, 0.0},
      {spec(Activation::kTanh), 1.0, 0.0, -1.0, 0.0},
      {spec(Activation::kHardTanh), 1.0, 0.0, -1.0, 0.0},
  };
  Mat<float> hf(2, 1);
  hf << std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity();
  const Mat<double> hd = hf.cast<double>();
  for (const Case& c : cases) {
    SCOPED_TRACE(label(c.spec));
    EXPECT_EQ(activation_value(c.spec, inf), c.y_pos);
    EXPECT_EQ(activation_derivative(c.spec, inf), c.d_pos);
    EXPECT_EQ(activation_value(c.spec, -inf), c.y_neg);
    EXPECT_EQ(activation_derivative(c.spec, -inf), c.d_neg);
    Mat<float> yf(2, 1), df(2, 1);
    activation_forward<float>(c.spec, hf, yf, df);
    EXPECT_EQ(yf(0), static_cast<float>(c.y_pos));
    EXPECT_EQ(df(0), static_cast<float>(c.d_pos));
    EXPECT_EQ(yf(1), static_cast<float>(c.y_neg));
    EXPECT_EQ(df(1), static_cast<float>(c.d_neg));
    Mat<double> yd(2, 1), dd(2, 1);
    activation_forward<double>(c.spec, hd, yd, dd);
    EXPECT_EQ(yd(0), c.y_pos);
    EXPECT_EQ(dd(0), c.d_pos);
    EXPECT_EQ(yd(1), c.y_neg);
    EXPECT_EQ(dd(1), c.d_neg);
  }
}

// +-x for the points where an exp of some kernel leaves the precision's normal range (about 87 and
// 708, 43.5 and 354 for tanh's exp(2x), 13 for float gelu's exp(-x^2/2), 9.5 and 21 for
// gelu_tanh's exp(-2u)), on both sides, then far out to the largest finite value.
template <class T>
std::vector<T> far_tail_points() {
  std::vector<T> xs;
  for (double x : {9.4,   9.6,   12.9,  13.1,  14.2,  15.0,   20.9,  21.1,  21.4,  30.0,
                   37.5,  38.0,  43.4,  43.6,  50.0,  52.0,   86.9,  87.1,  88.5,  90.0,
                   100.0, 104.0, 200.0, 353.9, 354.1, 360.0,  372.0, 700.0, 707.9, 708.1,
                   709.5, 710.0, 720.0, 745.0, 746.0, 1000.0, 1e4,   1e30,  1e300}) {
    if (x > static_cast<double>(std::numeric_limits<T>::max())) continue;
    xs.push_back(static_cast<T>(x));
    xs.push_back(static_cast<T>(-x));
  }
  xs.push_back(std::numeric_limits<T>::max());
  xs.push_back(std::numeric_limits<T>::lowest());
  return xs;
}

// The kernels against the reference at far_tail_points, and at +-inf and NaN. The points sit in
// one column between ordinary inputs, so a column's fast path and its far-tail entries meet.
template <class T>
void expect_far_tails_match_reference() {
  std::vector<T> xs = far_tail_points<T>();
  xs.push_back(std::numeric_limits<T>::infinity());
  xs.push_back(-std::numeric_limits<T>::infinity());
  xs.push_back(std::numeric_limits<T>::quiet_NaN());
  const auto count = static_cast<Eigen::Index>(xs.size());
  Mat<T> h(2 * count + 1, 2);
  for (Eigen::Index i = 0; i < h.rows(); ++i) {
    const auto di = static_cast<double>(i);
    h(i, 0) = (i % 2 == 1) ? xs[static_cast<std::size_t>(i / 2)] : static_cast<T>(0.37 * di - 9.0);
    h(i, 1) = static_cast<T>(0.11 * di - 4.0);  // an ordinary column next to it
  }
  const T eps = std::numeric_limits<T>::epsilon();
  const auto tiny = static_cast<double>(std::numeric_limits<T>::denorm_min());
  for (const ActivationSpec& spec : elementwise_specs()) {
    SCOPED_TRACE(label(spec));
    Mat<T> y(h.rows(), h.cols());
    Mat<T> d(h.rows(), h.cols());
    activation_forward<T>(spec, h, y, d);
    int failures = 0;
    for (Eigen::Index k = 0; k < h.size(); ++k) {
      const double x = static_cast<double>(h(k));
      const double want[2] = {activation_value(spec, x), activation_derivative(spec, x)};
      const double got[2] = {static_cast<double>(y(k)), static_cast<double>(d(k))};
      const double want_slope[2] = {want[1], activation_second_derivative(spec, x)};
      for (int q = 0; q < 2; ++q) {
        // The reference rounded to T always passes (that covers results that overflow T).
        bool ok = got[q] == static_cast<double>(static_cast<T>(want[q]));
        if (!ok && !std::isfinite(x)) {
          // +-inf must give the reference's limits in T; NaN must stay NaN where it does there.
          ok = std::isnan(want[q]) && std::isnan(got[q]);
        } else if (!ok) {
          // As expect_close: a few T roundings, scaled by what a relative change of x by one
          // rounding alone would do (|x phi'|; inf * 0 where phi' underflows counts as 0), and
          // two smallest subnormals of T for results that underflow (one rounding of the
          // reference into T's subnormals, one of the kernel).
          double slope_term = std::abs(x * want_slope[q]);
          if (!(slope_term < std::numeric_limits<double>::infinity())) slope_term = 0.0;
          const double tol = 8.0 * eps * (std::abs(want[q]) + slope_term) + 2.0 * tiny;
          ok = std::abs(got[q] - want[q]) <= tol;
        }
        if (!ok && ++failures <= 8) {
          ADD_FAILURE() << (q == 0 ? "value" : "slope") << " at x = " << x << ": kernel " << got[q]
                        << ", reference " << want[q];
        }
      }
    }
  }
}

TEST(ActivationKernel, FarTailsMatchReferenceInFloat) { expect_far_tails_match_reference<float>(); }

TEST(ActivationKernel, FarTailsMatchReferenceInDouble) {
  expect_far_tails_match_reference<double>();
}

// The reported failure: gelu'(h) for h < -13.3 came out near -1e-38 in float (Eigen's clamped
// exp), and a 1e37 upstream gradient turned it into a spurious gradient of order 0.1.
TEST(ActivationKernel, GeluFloatSlopeBelowMinus14IsZeroOrACorrectlyRoundedSubnormal) {
  std::vector<float> hs;
  for (int k = 0; k <= 500; ++k) hs.push_back(-14.2f - 0.05f * static_cast<float>(k));
  for (float x : {-50.0f, -100.0f, -1e4f, -1e30f, std::numeric_limits<float>::lowest()}) {
    hs.push_back(x);
  }
  Mat<float> h(static_cast<Eigen::Index>(hs.size()), 1);
  for (std::size_t i = 0; i < hs.size(); ++i) h(static_cast<Eigen::Index>(i)) = hs[i];
  Mat<float> y(h.rows(), 1), d(h.rows(), 1), dh(h.rows(), 1);
  const ActivationSpec gelu = default_spec(Activation::kGelu);
  activation_forward<float>(gelu, h, y, d);
  const Mat<float> g = Mat<float>::Constant(h.rows(), 1, 1e37f);
  activation_backward<float>(gelu, y, d, g, dh);
  for (Eigen::Index i = 0; i < h.rows(); ++i) {
    SCOPED_TRACE("h = " + std::to_string(h(i)));
    // The reference is good to 1e-13 relative here, so rounding it to float is correct unless it
    // lies within 1e-13 of a tie.
    const auto want = static_cast<float>(activation_derivative(gelu, static_cast<double>(h(i))));
    EXPECT_EQ(d(i), want);
    EXPECT_LT(std::abs(d(i)), std::numeric_limits<float>::min());  // 0 or a subnormal
    EXPECT_EQ(dh(i), 1e37f * want);
    // gelu'(h) ~ h pdf(h) is below half float's smallest subnormal from about h = -14.55 on.
    if (h(i) <= -14.6f) {
      EXPECT_EQ(dh(i), 0.0f);
    }
  }
}

TEST(ActivationKernel, SoftplusOfMinus746InDoubleIsExactlyZero) {
  const ActivationSpec softplus = default_spec(Activation::kSoftplus);
  Mat<double> h(4, 1);
  h << -746.0, -740.0, -1000.0, -std::numeric_limits<double>::infinity();
  Mat<double> y(4, 1), d(4, 1);
  activation_forward<double>(softplus, h, y, d);
  // e^-746 is below half the smallest subnormal; e^-740 = 85 smallest subnormals (mpmath).
  EXPECT_EQ(y(0), 0.0);
  EXPECT_EQ(d(0), 0.0);
  EXPECT_EQ(y(1), 0x0.0000000000055p-1022);
  EXPECT_EQ(d(1), 0x0.0000000000055p-1022);
  EXPECT_EQ(y(2), 0.0);
  EXPECT_EQ(d(2), 0.0);
  EXPECT_EQ(y(3), 0.0);
  EXPECT_EQ(d(3), 0.0);
}

// Softmax entries far below their column's max: e^(x - max) is a subnormal or 0, not Eigen's
// clamp (3e-39 in float, 6e-309 in double).
template <class T>
void check_softmax_far_below_max() {
  const double lowest = static_cast<double>(std::numeric_limits<T>::lowest());
  std::vector<double> col = {0.0,    -1.0,   -50.0,  -88.5,  -90.0,  -100.0,  -104.0, -200.0,
                             -700.0, -709.5, -710.0, -745.0, -746.0, -1000.0, -1e30,  lowest};
  col.push_back(-std::numeric_limits<double>::infinity());
  const auto n = static_cast<Eigen::Index>(col.size());
  Mat<T> h(n, 2);
  for (Eigen::Index i = 0; i < n; ++i) {
    h(i, 0) = static_cast<T>(col[static_cast<std::size_t>(i)]);
    h(i, 1) = static_cast<T>(col[static_cast<std::size_t>(i)] + 30.0);  // max 30, not 0
  }
  Mat<T> y(n, 2), d(n, 2);
  activation_forward<T>(default_spec(Activation::kSoftmax), h, y, d);
  for (Eigen::Index j = 0; j < 2; ++j) {
    const double m = static_cast<double>(h.col(j).maxCoeff());
    double s = 0.0;
    for (Eigen::Index i = 0; i < n; ++i) s += std::exp(static_cast<double>(h(i, j)) - m);
    for (Eigen::Index i = 0; i < n; ++i) {
      const double want = std::exp(static_cast<double>(h(i, j)) - m) / s;
      SCOPED_TRACE("x = " + std::to_string(static_cast<double>(h(i, j))));
      // One exp and one division in T; two smallest subnormals where the result underflows.
      EXPECT_TRUE(within_ulps<T>(static_cast<double>(y(i, j)), want, 4.0))
          << y(i, j) << " vs " << want;
      EXPECT_TRUE(within_ulps<T>(static_cast<double>(d(i, j)), want * (1.0 - want), 6.0))
          << d(i, j) << " vs " << want * (1.0 - want);
    }
  }
}

TEST(Softmax, EntriesFarBelowTheMaxAreSubnormalsOrZero) {
  check_softmax_far_below_max<float>();
  check_softmax_far_below_max<double>();
}

}  // namespace
}  // namespace gradscope

namespace gradscope {
namespace {

// The backward pass keeps only y for these kinds, so d recovered from y must be exactly the d the
// forward pass wrote, kinks and extremes included.
template <class Scalar>
void expect_derivative_from_output_matches_forward(const ActivationSpec& spec) {
  const std::vector<double> points = {-1e4,  -100, -1.5, -1.0, -0.5, -1e-30, 0.0,
                                      1e-30, 0.5,  1.0,  1.5,  100,  1e4};
  Mat<Scalar> h(static_cast<Eigen::Index>(points.size()), 2);
  for (std::size_t i = 0; i < points.size(); ++i) {
    h(static_cast<Eigen::Index>(i), 0) = static_cast<Scalar>(points[i]);
    h(static_cast<Eigen::Index>(i), 1) = static_cast<Scalar>(-points[i] * 0.37);
  }
  Mat<Scalar> y(h.rows(), h.cols()), d(h.rows(), h.cols()), d2(h.rows(), h.cols());
  activation_forward<Scalar>(spec, h, y, d);
  activation_derivative_from_output<Scalar>(spec, y, d2);
  EXPECT_EQ(d, d2) << activation_info(spec.kind).name;
}

TEST(ActivationDerivativeFromOutput, MatchesTheForwardDerivativeExactly) {
  for (const ActivationSpec spec :
       {ActivationSpec{Activation::kLinear, 0}, ActivationSpec{Activation::kRelu, 0},
        ActivationSpec{Activation::kLeakyRelu, 0.01}, ActivationSpec{Activation::kLeakyRelu, 0.0},
        ActivationSpec{Activation::kHardTanh, 0}}) {
    ASSERT_TRUE(derivative_from_output(spec));
    expect_derivative_from_output_matches_forward<float>(spec);
    expect_derivative_from_output_matches_forward<double>(spec);
  }
}

TEST(ActivationDerivativeFromOutput, OnlyWhereYDeterminesTheDerivativeExactly) {
  // Negative leaky slopes make y > 0 ambiguous; smooth kinds would lose their tails in float.
  EXPECT_FALSE(derivative_from_output({Activation::kLeakyRelu, -0.5}));
  for (Activation a : {Activation::kSigmoid, Activation::kTanh, Activation::kElu, Activation::kSelu,
                       Activation::kGelu, Activation::kSoftplus, Activation::kSoftmax}) {
    EXPECT_FALSE(derivative_from_output(default_spec(a)));
  }
  Mat<float> y(2, 2), d(2, 2);
  y.setZero();
  EXPECT_THROW(activation_derivative_from_output<float>(default_spec(Activation::kTanh), y, d),
               gradscope::Error);
}

}  // namespace
}  // namespace gradscope
