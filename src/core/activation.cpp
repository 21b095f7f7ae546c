// Activation functions: the registry, scalar references in double (value, phi', phi''), and the
// network's float/double kernels, with derivatives following PyTorch's backward conventions. Why
// this file is long: every activation's value and derivatives sit side by side, one table each.
#include "gradscope/core/activation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "gradscope/core/error.hpp"

namespace gradscope {
namespace {

using Eigen::Index;

// SELU's constants, as PyTorch spells them (Klambauer et al. 2017).
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kInvSqrt2 = 0.70710678118654752440084436210485;
constexpr double kInvSqrt2Pi = 0.39894228040143267793994605993438;  // 1 / sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535587989211986876;
constexpr double kGeluTanhCubic = 0.044715;

// sup |phi'| where it has no closed form: the argmax solves phi''(x) = 0, found with 40-digit
// arithmetic (mpmath) and re-derived by the test's scan + Newton refinement.
constexpr double kGeluTanhMaxSlope = 1.128993068658771765;  // at x = 1.418504008790828
constexpr double kSiluMaxSlope = 1.099839320128866917;      // at x = 2.399357280515468
constexpr double kMishMaxSlope = 1.088498161251727861;      // at x = 1.490571179485428

constexpr std::array<ActivationInfo, kActivationCount> kTable = {{
    {Activation::kLinear, "linear",
     "identity; a deep linear stack scales gradients only through its weights", "x", "", 0.0,
     false},
    {Activation::kRelu, "relu",
     "max(0, x); fast, but units can die (zero gradient for every input)", "max(0, x)", "", 0.0,
     false},
    {Activation::kLeakyRelu, "leaky_relu",
     "relu with a small negative slope, so no unit's gradient is ever exactly zero",
     "x if x > 0 else slope * x", "slope", 0.01, false},
    {Activation::kElu, "elu",
     "smooth negative branch saturating at -alpha; pulls mean activations toward zero",
     "x if x > 0 else alpha * (exp(x) - 1)", "alpha", 1.0, false},
    {Activation::kSelu, "selu",
     "scaled elu; with LeCun-normal weights keeps mean 0 and variance 1 (self-normalising)",
     "scale * (x if x > 0 else alpha * (exp(x) - 1)), alpha = 1.6733, scale = 1.0507", "", 0.0,
     false},
    {Activation::kGelu, "gelu",
     "x * Phi(x) with the exact erf; smooth relu of transformers, slope peaks at 1.129",
     "x * 0.5 * (1 + erf(x / sqrt(2)))", "", 0.0, false},
    {Activation::kGeluTanh, "gelu_tanh",
     "tanh approximation of gelu (GPT-2, BERT); within 5e-4 of the exact one",
     "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))", "", 0.0, false},
    {Activation::kSilu, "silu",
     "x * sigmoid(x), also called swish; smooth, dips to -0.278, slope peaks at 1.100",
     "x / (1 + exp(-x))", "", 0.0, false},
    {Activation::kMish, "mish", "x * tanh(softplus(x)); smooth and non-monotonic, close to silu",
     "x * tanh(log(1 + exp(x)))", "", 0.0, false},
    {Activation::kSoftplus, "softplus",
     "log(1 + e^x); a smooth relu whose gradient is never exactly zero, slope < 1",
     "log(1 + exp(x))", "", 0.0, false},
    {Activation::kSigmoid, "sigmoid",
     "1/(1+e^-x); for binary outputs; slope <= 1/4 makes gradients vanish in deep hidden layers",
     "1 / (1 + exp(-x))", "", 0.0, false},
    {Activation::kTanh, "tanh",
     "zero-centred squashing; slope 1 at 0, saturates for |x| > 3 where gradients vanish",
     "tanh(x)", "", 0.0, false},
    {Activation::kHardTanh, "hard_tanh",
     "clamp to [-1, 1]; zero gradient outside, so a saturated unit stops learning",
     "min(1, max(-1, x))", "", 0.0, false},
    {Activation::kSoftmax, "softmax",
     "normalised exponentials over a layer's units; output layer only (classification)",
     "exp(x_i) / sum_j exp(x_j)", "", 0.0, true},
}};

// A missing entry would be value-initialised as kLinear, so checking every index catches it.
constexpr bool table_is_indexed_by_kind() {
  for (int i = 0; i < kActivationCount; ++i) {
    if (static_cast<int>(kTable[static_cast<std::size_t>(i)].kind) != i) return false;
  }
  return true;
}
static_assert(kTable.size() == kActivationCount);
static_assert(static_cast<int>(Activation::kSoftmax) + 1 == kActivationCount,
              "kActivationCount must follow the last enumerator");
static_assert(table_is_indexed_by_kind(), "kTable must list every activation in enum order");

// ---- Pointwise formulas shared by the scalar reference and the kernels ------------------------
// Each takes its transcendental pieces precomputed (in the kernels by a vectorised Eigen pass) and
// is plain arithmetic without sign branches: the compiler then vectorises the kernels' loops, and
// every intermediate stays finite, so large |x| never meets inf * 0.

template <class T>
struct ValueSlope {
  T y;  // phi(x)
  T d;  // phi'(x)
};

// sigmoid = 1 / (1 + E), sigmoid' = 1 / (E + 2 + 1/E) with E = exp(-x): a sum of positive terms,
// so the saturated side keeps its relative accuracy (sigmoid'(30) ~ 9e-14, not 1 - 1 = 0), and
// E = inf or E = 0 give the limits (0, 0) and (1, 0).
template <class T>
ValueSlope<T> sigmoid_from_exp(T exp_neg_x) {
  const T e = exp_neg_x;
  return {T(1) / (T(1) + e), T(1) / (e + T(2) + T(1) / e)};
}

// silu = x sigmoid(x), silu' = sigmoid + x sigmoid'.
template <class T>
ValueSlope<T> silu_from_exp(T x, T exp_neg_x) {
  const ValueSlope<T> s = sigmoid_from_exp(exp_neg_x);
  return {x * s.y, s.y + x * s.d};
}

// tanh' = 1 - tanh^2 = 4 / (E + 2 + 1/E) with E = exp(2x) (or exp(-2x)): no cancellation where
// tanh -> +-1.
template <class T>
T tanh_slope_from_exp(T exp_2x) {
  return T(4) / (exp_2x + T(2) + T(1) / exp_2x);
}

// Past x = 40 mish(x) = x and mish'(x) = 1 to double precision (the correction is 4x e^-2x), so
// w = exp(min(x, 40)) loses nothing and keeps w^2 finite even in float.
constexpr double kMishClamp = 40.0;

// mish = x T with T = tanh(softplus x) = n / (n + 2), n = w (w + 2), w = e^x; then
// 1 - T^2 = 4 (n + 1) / (n + 2)^2 without cancellation and mish' = T + x (1 - T^2) sigmoid(x).
// xc = min(x, 40) stands in for x in the correction term, which is below rounding there anyway.
template <class T>
ValueSlope<T> mish_from_exp(T x, T xc, T w) {
  const T n = w * (w + T(2));
  const T r = T(1) / (n + T(2));
  const T t = n * r;
  const T sech2 = T(4) * ((n + T(1)) * r) * r;
  const T sig = w / (T(1) + w);
  return {x * t, t + xc * sech2 * sig};
}

// Past |x| = 1000, exp(-2u) is 0 or inf in float and double alike, so clamping x there changes no
// result and keeps x^3 from overflowing.
constexpr double kGeluTanhClamp = 1000.0;

// Clamps x to [-bound, bound], keeping NaN.
double clamp_nan_safe(double x, double bound) {
  return x < -bound ? -bound : (x > bound ? bound : x);
}

// The gelu_tanh kernels keep their fast path for x >= -kGeluTanhFast, where exp(-2u) stays below
// e^-kExpFloor: 2u(9.5) = 76.3 and 2u(21) = 694.4 (the reference takes over below).
template <class T>
constexpr T kGeluTanhFast = std::is_same_v<T, float> ? T(9.5) : T(21);

// u = sqrt(2/pi) (x + 0.044715 x^3) and u'.
template <class T>
T gelu_tanh_u(T xc) {
  return T(kSqrt2OverPi) * (xc + T(kGeluTanhCubic) * xc * xc * xc);
}
template <class T>
T gelu_tanh_du(T xc) {
  return T(kSqrt2OverPi) * (T(1) + T(3 * kGeluTanhCubic) * xc * xc);
}

// gelu_tanh = x s with s = (1 + tanh u) / 2 = sigmoid(2u), so the negative side has no 1 + tanh
// cancellation; gelu_tanh' = s + x * 2 u' sigmoid'(2u). E = exp(-2u).
template <class T>
ValueSlope<T> gelu_tanh_from_exp(T x, T xc, T exp_neg_2u) {
  const ValueSlope<T> s = sigmoid_from_exp(exp_neg_2u);
  return {x * s.y, s.y + T(2) * xc * gelu_tanh_du(xc) * s.d};
}

// gelu = x Phi(x), gelu' = Phi(x) + x pdf(x).
template <class T>
ValueSlope<T> gelu_from_cdf(T x, T cdf, T pdf) {
  return {x * cdf, cdf + x * pdf};
}

// Phi(x) = erfc(-x / sqrt(2)) / 2: erfc keeps the relative accuracy of the lower tail, where
// 1 + erf(x / sqrt(2)) cancels.
double normal_cdf(double x) { return 0.5 * std::erfc(-x * kInvSqrt2); }
double normal_pdf(double x) { return kInvSqrt2Pi * std::exp(-0.5 * x * x); }

// ---- Far tails ---------------------------------------------------------------------------------
// Eigen 3.4's vectorised exp clamps its argument from below: anything under about -88.38 (float)
// or -709.4 (double) gives e^-88.38 ~ 2.9e-39 or e^-709.4 ~ 5.6e-309, where the true value is a
// subnormal or 0. Above kExpFloor e^x is a normal number and Eigen's exp is accurate, so each
// kernel keeps its fast path while its exp arguments stay above kExpFloor, and takes the double
// reference, rounded once, for the inputs beyond (fix_below, fix_beyond). The reference itself
// switches to tail forms where e^x stops being a normal double: 1 / e^x overflows there, and
// c * e^x would scale an already rounded subnormal.
template <class T>
constexpr T kExpFloor = std::is_same_v<T, float> ? T(-87) : T(-708);  // e^floor > FLT/DBL_MIN
constexpr double kFar = 708.0;                                        // -kExpFloor<double>

// c e^x where e^x may be subnormal: (c e^{x/2}) e^{x/2} rounds once into the subnormal range.
// c must be finite; e^{x/2} = 0 gives 0.
double times_exp(double c, double x) {
  const double h = std::exp(0.5 * x);
  return (c * h) * h;
}

// x as a factor of times_exp: at x = -inf the exponential is 0 and the product must be 0, not NaN.
double finite_or_lowest(double x) { return std::max(x, std::numeric_limits<double>::lowest()); }

// Past |x| = 708, E = exp(-x) overflows or 1/E does; there e = exp(-|x|) < 1e-307, e^2 is below
// rounding, and sigmoid = 1 or e, sigmoid' = e (e = 0 at +-inf gives the limits).
ValueSlope<double> sigmoid_scalar(double x) {
  if (!(std::abs(x) > kFar)) return sigmoid_from_exp(std::exp(-x));
  const double e = std::exp(-std::abs(x));
  return {x > 0.0 ? 1.0 : e, e};
}

// Past |x| = 354, tanh' = 4 e^-2|x| / (1 + e^-2|x|)^2 = 4 e^-2|x| to rounding, a subnormal.
double tanh_slope_scalar(double x) {
  if (!(std::abs(x) > 0.5 * kFar)) return tanh_slope_from_exp(std::exp(2.0 * x));
  return times_exp(4.0, -2.0 * std::abs(x));
}

// silu = x s(x) with s(x) = e^x (1 - e^x + ...), so below -708 silu = x e^x and
// silu' = s + x s' = (1 + x) e^x to rounding. Above 708, x e^-x is below x's rounding.
ValueSlope<double> silu_scalar(double x) {
  if (x < -kFar) {
    const double xf = finite_or_lowest(x);
    return {times_exp(xf, x), times_exp(1.0 + xf, x)};
  }
  if (x > kFar) return {x, 1.0};
  return silu_from_exp(x, std::exp(-x));
}

// Below -708, tanh(softplus x) = e^x to rounding, so mish = x e^x and mish' = (1 + x) e^x as silu.
ValueSlope<double> mish_scalar(double x) {
  if (x < -kFar) {
    const double xf = finite_or_lowest(x);
    return {times_exp(xf, x), times_exp(1.0 + xf, x)};
  }
  const double xc = std::min(x, kMishClamp);
  return mish_from_exp(x, xc, std::exp(xc));
}

// Below 2u = -708, sigmoid(2u) = e^{2u} to rounding: gelu_tanh = x e^{2u} and
// gelu_tanh' = e^{2u} (1 + 2 x u'). (x < -1000 stands as xc: e^{2u} is 0 there.)
ValueSlope<double> gelu_tanh_scalar(double x) {
  const double xc = clamp_nan_safe(x, kGeluTanhClamp);
  const double u = gelu_tanh_u(xc);
  if (2.0 * u < -kFar) {
    return {times_exp(xc, 2.0 * u), times_exp(1.0 + 2.0 * xc * gelu_tanh_du(xc), 2.0 * u)};
  }
  return gelu_tanh_from_exp(x, xc, std::exp(-2.0 * u));
}

// Past |x| = 37, Phi(-|x|) and pdf(x) leave the normal doubles (pdf(37.6) ~ DBL_MIN), and erfc's
// result, already rounded to a subnormal, would then be scaled by x. Above 37, 1 - Phi(x) < 1e-299
// is below rounding: gelu = x, gelu' = 1.
constexpr double kGeluFar = 37.0;

// Below -37, with z = -x: Phi(-z) = pdf(z) S / z, S = sum_k (-1)^k (2k-1)!! / z^(2k) (Abramowitz
// and Stegun 26.2.12; the terms kept leave 2e-21 at z = 37), so gelu = -pdf(z) S and
// gelu' = Phi(-z) - z pdf(z) = -pdf(z) (z - S / z). z^2 = p + q exactly (fma): pdf(z) =
// e^{-p/2} (1 - q/2) / sqrt(2 pi), free of the rounding of z^2 (1e-13 relative in e^{-z^2/2}).
ValueSlope<double> gelu_lower_tail(double x) {
  const double z = std::min(-x, 64.0);  // both results are 0 past z = 39; 64 keeps z^2 finite
  const double r = 1.0 / (z * z);
  double s = 1.0;  // 1 - r (1 - 3 r (1 - 5 r (... (1 - 15 r)))), from the innermost factor out
  for (int k = 15; k >= 1; k -= 2) s = 1.0 - k * r * s;
  const double p = z * z;
  const double q = std::fma(z, z, -p);
  const double c = kInvSqrt2Pi * (1.0 - 0.5 * q);  // |q| < 1e-12: e^{-q/2} = 1 - q/2 to rounding
  return {times_exp(-c * s, -0.5 * p), times_exp(-c * (z - s / z), -0.5 * p)};
}

ValueSlope<double> gelu_scalar(double x) {
  if (x > kGeluFar) return {x, 1.0};
  if (x < -kGeluFar) return gelu_lower_tail(x);
  return gelu_from_cdf(x, normal_cdf(x), normal_pdf(x));
}

// ---- Scalar reference in double ---------------------------------------------------------------

[[noreturn]] void throw_softmax_not_elementwise(const char* what) {
  throw contract_error(std::string(what) +
                       ": softmax couples a layer's units and has no scalar form");
}

// elu (times scale; selu is scale * elu_alpha) = scale (max(x, 0) + alpha expm1(min(x, 0))), with
// expm1 accurate near 0 where exp(x) - 1 cancels. PyTorch takes the x <= 0 branch at 0, so
// elu'(0) = alpha. Below -708 the slope goes through times_exp, as e^x is subnormal there.
ValueSlope<double> elu_scalar(double x, double alpha, double scale) {
  const double xn = std::min(x, 0.0);
  const double slope_neg = xn < -kFar ? times_exp(scale * alpha, xn) : scale * alpha * std::exp(xn);
  return {scale * (std::max(x, 0.0) + alpha * std::expm1(xn)), x > 0.0 ? scale : slope_neg};
}

ValueSlope<double> scalar_value_slope(const ActivationSpec& spec, double x) {
  const double p = spec.param;
  switch (spec.kind) {
    case Activation::kLinear:
      return {x, 1.0};
    case Activation::kRelu:
      // x <= 0 ? 0 : x rather than max(x, 0), so a NaN input stays NaN; relu'(0) = 0 as PyTorch.
      return {x <= 0.0 ? 0.0 : x, x > 0.0 ? 1.0 : 0.0};
    case Activation::kLeakyRelu:
      return {x > 0.0 ? x : p * x, x > 0.0 ? 1.0 : p};
    case Activation::kElu:
      return elu_scalar(x, p, 1.0);
    case Activation::kSelu:
      return elu_scalar(x, kSeluAlpha, kSeluScale);
    case Activation::kGelu:
      return gelu_scalar(x);
    case Activation::kGeluTanh:
      return gelu_tanh_scalar(x);
    case Activation::kSilu:
      return silu_scalar(x);
    case Activation::kMish:
      return mish_scalar(x);
    case Activation::kSoftplus:
      // max(x, 0) + log1p(exp(-|x|)): no overflow, and log1p keeps the tail's relative accuracy.
      return {std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x))), sigmoid_scalar(x).y};
    case Activation::kSigmoid:
      return sigmoid_scalar(x);
    case Activation::kTanh:
      return {std::tanh(x), tanh_slope_scalar(x)};
    case Activation::kHardTanh:
      // PyTorch's hardtanh_backward passes the gradient only strictly inside (-1, 1).
      return {x < -1.0 ? -1.0 : (x > 1.0 ? 1.0 : x), (x > -1.0 && x < 1.0) ? 1.0 : 0.0};
    case Activation::kSoftmax:
      throw_softmax_not_elementwise("activation_value/derivative");
  }
  throw contract_error("unknown activation kind");
}

// ---- Kernels ----------------------------------------------------------------------------------
// Per column: Eigen array passes for the transcendental functions (vectorised, results parked in
// y and d), then one arithmetic loop that the compiler vectorises. A sign test inside such a loop
// would stop GCC from vectorising it (its default -ftrapping-math forbids executing a branch's
// arithmetic unconditionally), so the loops only select between ready values, or not at all.

template <class T>
using ColumnMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstColumnMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// Runs column(x, y, d, n) on every column: each column is contiguous (inner stride 1) even when
// the matrices have an outer stride, and its working set stays in L1 across the passes a column
// kernel makes, so the whole call reads h and writes y and d once from memory.
template <class T, class Column>
void for_each_column(const Eigen::Ref<const Mat<T>>& h, Eigen::Ref<Mat<T>>& y,
                     Eigen::Ref<Mat<T>>& d, Column column) {
  const Index n = h.rows();
  for (Index j = 0; j < h.cols(); ++j) {
    column(h.data() + j * h.outerStride(), y.data() + j * y.outerStride(),
           d.data() + j * d.outerStride(), n);
  }
}

// Far-tail fix-ups: fix(i) for every entry with x[i] < lo (fix_below) or |x[i]| > bound
// (fix_beyond); NaN is neither, so it keeps the fast path's NaN. The test is one vectorised Eigen
// reduction over the column (PropagateNumbers: a NaN entry can neither hide a far one nor count as
// one), a few percent of a kernel's cost; only a column that holds a far entry pays for the
// branching loop, and only those entries for fix.
template <class T, class Fix>
void fix_below(const T* x, Index n, T lo, Fix fix) {
  if (n == 0 || !(ConstColumnMap<T>(x, n).template minCoeff<Eigen::PropagateNumbers>() < lo)) {
    return;
  }
  for (Index i = 0; i < n; ++i) {
    if (x[i] < lo) fix(i);
  }
}

template <class T, class Fix>
void fix_beyond(const T* x, Index n, T bound, Fix fix) {
  if (n == 0 ||
      !(ConstColumnMap<T>(x, n).abs().template maxCoeff<Eigen::PropagateNumbers>() > bound)) {
    return;
  }
  for (Index i = 0; i < n; ++i) {
    if (std::abs(x[i]) > bound) fix(i);
  }
}

// The double reference at x, rounded once to T: correctly rounded but for near-ties in float.
template <class T>
void set_from_reference(const ActivationSpec& spec, T x, T& y, T& d) {
  const ValueSlope<double> r = scalar_value_slope(spec, static_cast<double>(x));
  y = static_cast<T>(r.y);
  d = static_cast<T>(r.d);
}

// erfc(z) for z >= 0 as t exp(-z^2 + erfc_poly(t)), t = 1 / (1 + z/2): Numerical Recipes'
// Chebyshev fit (Press et al. 1992, section 6.2, erfcc), relative error below 1.2e-7 for every
// z >= 0, about one float ulp.
inline float erfc_poly(float t) {
  return -1.26551223f +
         t * (1.00002368f +
              t * (0.37409196f +
                   t * (0.09678418f +
                        t * (-0.18628806f +
                             t * (0.27886807f +
                                  t * (-1.13520398f +
                                       t * (1.48851587f +
                                            t * (-0.82215223f + t * 0.17087277f))))))));
}

// Past |x| = 13 the float gelu kernel takes the reference: its exp arguments, -x^2/2 and
// -x^2/2 + erfc_poly(t) >= -x^2/2 - 1.27, stay above kExpFloor<float> = -87 up to there.
constexpr float kGeluFastFloat = 13.0f;

// Exact gelu in float. std::erfc is not vectorised and 1 + erf cancels in the lower tail, so this
// uses the erfc fit above: two vectorised exps per element.
void gelu_column(const ActivationSpec& spec, const float* x, float* y, float* d, Index n) {
  constexpr float kHalfInvSqrt2 = static_cast<float>(0.5 * kInvSqrt2);
  for (Index i = 0; i < n; ++i) {
    const float t = 1.0f / (1.0f + kHalfInvSqrt2 * std::abs(x[i]));
    const float a = -0.5f * x[i] * x[i];  // -z^2 with z = |x| / sqrt(2)
    d[i] = a;
    y[i] = a + erfc_poly(t);
  }
  ColumnMap<float>(d, n) = ColumnMap<float>(d, n).exp();
  ColumnMap<float>(y, n) = ColumnMap<float>(y, n).exp();
  for (Index i = 0; i < n; ++i) {
    const float xi = x[i];
    const float t = 1.0f / (1.0f + kHalfInvSqrt2 * std::abs(xi));
    const float tail = 0.5f * t * y[i];  // Phi(-|x|) = erfc(|x| / sqrt(2)) / 2, in (0, 1/2]
    // Phi(x) = tail for x < 0 and 1 - tail for x >= 0, written as arithmetic (see above).
    const float upper = 0.5f + std::copysign(0.5f, xi);
    const float cdf = tail + upper * (1.0f - 2.0f * tail);
    const ValueSlope<float> r = gelu_from_cdf(xi, cdf, static_cast<float>(kInvSqrt2Pi) * d[i]);
    y[i] = r.y;
    d[i] = r.d;
  }
  fix_beyond(x, n, kGeluFastFloat, [&](Index i) { set_from_reference(spec, x[i], y[i], d[i]); });
}

// In double the reference's std::erfc is accurate and the kernel is the reference itself.
void gelu_column(const ActivationSpec&, const double* x, double* y, double* d, Index n) {
  for (Index i = 0; i < n; ++i) {
    const ValueSlope<double> r = gelu_scalar(x[i]);
    y[i] = r.y;
    d[i] = r.d;
  }
}

// The value needs no far-tail care: expm1 and tanh saturate at -1 exactly, as they should.
template <class T>
void elu_column(const ActivationSpec& spec, const T* x, T* y, T* d, Index n, T alpha, T scale) {
  const ConstColumnMap<T> xs(x, n);
  ColumnMap<T> ys(y, n);
  if constexpr (std::is_same_v<T, float>) {
    // expm1(x) = 2 tanh(x/2) / (1 - tanh(x/2)), an identity; for x <= 0 the denominator lies in
    // [1, 2), so Eigen's vectorised float tanh keeps its few-ulp accuracy, at a sixth of the cost
    // of Eigen's float expm1 (an exp, a log and a division).
    ys = (T(0.5) * xs.min(T(0))).tanh();
    ys = scale * (xs.max(T(0)) + alpha * (T(2) * ys / (T(1) - ys)));
  } else {
    ys = scale * (xs.max(T(0)) + alpha * xs.min(T(0)).expm1());
  }
  ColumnMap<T>(d, n) = (scale * alpha) * xs.min(T(0)).exp();
  for (Index i = 0; i < n; ++i) d[i] = x[i] > T(0) ? scale : d[i];
  fix_below(x, n, kExpFloor<T>, [&](Index i) {
    d[i] = static_cast<T>(scalar_value_slope(spec, static_cast<double>(x[i])).d);
  });
}

template <class T>
void softmax_column(const T* x, T* y, T* d, Index n) {
  if (n == 0) return;
  const ConstColumnMap<T> xs(x, n);
  ColumnMap<T> ys(y, n);
  // Subtracting the column max keeps every exponent <= 0: no overflow for inputs of 1e4.
  const T m = xs.maxCoeff();
  ys = (xs - m).exp();
  // Entries far below the column's max, whose exponent is below kExpFloor, take std::exp instead
  // of Eigen's clamp: the subnormal or 0 they should be. The test uses min(x - m) = min(x) - m
  // (rounding is monotonic); PropagateNumbers skips NaN entries.
  if (xs.template minCoeff<Eigen::PropagateNumbers>() - m < kExpFloor<T>) {
    for (Index i = 0; i < n; ++i) {
      const T e = x[i] - m;
      if (e < kExpFloor<T>) y[i] = std::exp(e);
    }
  }
  ys /= ys.sum();
  ColumnMap<T>(d, n) = ys * (T(1) - ys);
}

template <class T>
void forward_impl(const ActivationSpec& spec, const Eigen::Ref<const Mat<T>>& h,
                  Eigen::Ref<Mat<T>>& y, Eigen::Ref<Mat<T>>& d) {
  const T p = static_cast<T>(spec.param);
  switch (spec.kind) {
    case Activation::kLinear:
      return for_each_column(h, y, d, [](const T* x, T* yc, T* dc, Index n) {
        ColumnMap<T>(yc, n) = ConstColumnMap<T>(x, n);
        ColumnMap<T>(dc, n).setOnes();
      });
    case Activation::kRelu:
      return for_each_column(h, y, d, [](const T* x, T* yc, T* dc, Index n) {
        for (Index i = 0; i < n; ++i) {
          yc[i] = x[i] <= T(0) ? T(0) : x[i];
          dc[i] = x[i] > T(0) ? T(1) : T(0);
        }
      });
    case Activation::kLeakyRelu:
      return for_each_column(h, y, d, [p](const T* x, T* yc, T* dc, Index n) {
        const ConstColumnMap<T> xs(x, n);
        ColumnMap<T>(yc, n) = xs.max(T(0)) + p * xs.min(T(0));
        // Selecting from a stored value (not a constant pair) is the form GCC vectorises here.
        ColumnMap<T>(dc, n).setConstant(p);
        for (Index i = 0; i < n; ++i) dc[i] = x[i] > T(0) ? T(1) : dc[i];
      });
    case Activation::kElu:
      return for_each_column(h, y, d, [&spec, p](const T* x, T* yc, T* dc, Index n) {
        elu_column(spec, x, yc, dc, n, p, T(1));
      });
    case Activation::kSelu:
      return for_each_column(h, y, d, [&spec](const T* x, T* yc, T* dc, Index n) {
        elu_column(spec, x, yc, dc, n, static_cast<T>(kSeluAlpha), static_cast<T>(kSeluScale));
      });
    case Activation::kGelu:
      return for_each_column(
          h, y, d, [&spec](const T* x, T* yc, T* dc, Index n) { gelu_column(spec, x, yc, dc, n); });
    case Activation::kGeluTanh:
      return for_each_column(h, y, d, [&spec](const T* x, T* yc, T* dc, Index n) {
        const T c = static_cast<T>(kGeluTanhClamp);
        // xc in y as scratch, then exp(-2 u(xc)) in d.
        ColumnMap<T>(yc, n) = ConstColumnMap<T>(x, n).max(-c).min(c);
        const ColumnMap<T> xc(yc, n);
        ColumnMap<T>(dc, n) =
            (T(-2) * (T(kSqrt2OverPi) * (xc + T(kGeluTanhCubic) * xc.cube()))).exp();
        for (Index i = 0; i < n; ++i) {
          const ValueSlope<T> r = gelu_tanh_from_exp(x[i], yc[i], dc[i]);
          yc[i] = r.y;
          dc[i] = r.d;
        }
        // Only the lower side: above, the clamped e is far below rounding next to 1 in y and d.
        fix_below(x, n, -kGeluTanhFast<T>,
                  [&](Index i) { set_from_reference(spec, x[i], yc[i], dc[i]); });
      });
    case Activation::kSilu:
      return for_each_column(h, y, d, [&spec](const T* x, T* yc, T* dc, Index n) {
        ColumnMap<T>(dc, n) = (-ConstColumnMap<T>(x, n)).exp();
        for (Index i = 0; i < n; ++i) {
          const ValueSlope<T> r = silu_from_exp(x[i], dc[i]);
          yc[i] = r.y;
          dc[i] = r.d;
        }
        fix_beyond(x, n, -kExpFloor<T>,
                   [&](Index i) { set_from_reference(spec, x[i], yc[i], dc[i]); });
      });
    case Activation::kMish:
      return for_each_column(h, y, d, [&spec](const T* x, T* yc, T* dc, Index n) {
        ColumnMap<T>(yc, n) = ConstColumnMap<T>(x, n).min(static_cast<T>(kMishClamp));
        ColumnMap<T>(dc, n) = ColumnMap<T>(yc, n).exp();
        for (Index i = 0; i < n; ++i) {
          const ValueSlope<T> r = mish_from_exp(x[i], yc[i], dc[i]);
          yc[i] = r.y;
          dc[i] = r.d;
        }
        fix_below(x, n, kExpFloor<T>,
                  [&](Index i) { set_from_reference(spec, x[i], yc[i], dc[i]); });
      });
    case Activation::kSoftplus:
      return for_each_column(h, y, d, [&spec](const T* x, T* yc, T* dc, Index n) {
        // softplus = max(x, 0) + log1p(e) and softplus' = sigmoid(x) from one e = exp(-|x|).
        const ConstColumnMap<T> xs(x, n);
        ColumnMap<T>(dc, n) = (-xs.abs()).exp();
        ColumnMap<T>(yc, n) = xs.max(T(0)) + ColumnMap<T>(dc, n).log1p();
        for (Index i = 0; i < n; ++i) dc[i] = (x[i] >= T(0) ? T(1) : dc[i]) / (T(1) + dc[i]);
        // Only the lower side: for x > -kExpFloor the clamped e is still below rounding next to
        // x and 1, as the true one is.
        fix_below(x, n, kExpFloor<T>,
                  [&](Index i) { set_from_reference(spec, x[i], yc[i], dc[i]); });
      });
    case Activation::kSigmoid:
      return for_each_column(h, y, d, [&spec](const T* x, T* yc, T* dc, Index n) {
        ColumnMap<T>(dc, n) = (-ConstColumnMap<T>(x, n)).exp();
        for (Index i = 0; i < n; ++i) {
          const ValueSlope<T> r = sigmoid_from_exp(dc[i]);
          yc[i] = r.y;
          dc[i] = r.d;
        }
        fix_beyond(x, n, -kExpFloor<T>,
                   [&](Index i) { set_from_reference(spec, x[i], yc[i], dc[i]); });
      });
    case Activation::kTanh:
      return for_each_column(h, y, d, [&spec](const T* x, T* yc, T* dc, Index n) {
        // Eigen's float tanh is a rational fit accurate to a few ulps; the slope comes from
        // exp(2x) rather than 1 - y^2, which cancels to 0 long before tanh' underflows.
        ColumnMap<T>(yc, n) = ConstColumnMap<T>(x, n).tanh();
        ColumnMap<T>(dc, n) = (T(2) * ConstColumnMap<T>(x, n)).exp();
        for (Index i = 0; i < n; ++i) dc[i] = tanh_slope_from_exp(dc[i]);
        fix_beyond(x, n, -kExpFloor<T> / 2,
                   [&](Index i) { set_from_reference(spec, x[i], yc[i], dc[i]); });
      });
    case Activation::kHardTanh:
      return for_each_column(h, y, d, [](const T* x, T* yc, T* dc, Index n) {
        for (Index i = 0; i < n; ++i) {
          yc[i] = x[i] < T(-1) ? T(-1) : (x[i] > T(1) ? T(1) : x[i]);
          dc[i] = (x[i] > T(-1) && x[i] < T(1)) ? T(1) : T(0);
        }
      });
    case Activation::kSoftmax:
      return for_each_column(h, y, d, softmax_column<T>);
  }
  throw contract_error("activation_forward: unknown activation kind");
}

void check_same_shape(const char* what, Index rows, Index cols, Index other_rows,
                      Index other_cols) {
  if (rows != other_rows || cols != other_cols) {
    throw contract_error(std::string(what) + ": shape " + std::to_string(other_rows) + "x" +
                         std::to_string(other_cols) + " does not match " + std::to_string(rows) +
                         "x" + std::to_string(cols));
  }
}

}  // namespace

const std::array<ActivationInfo, kActivationCount>& activation_table() { return kTable; }

const ActivationInfo& activation_info(Activation kind) {
  const int i = static_cast<int>(kind);
  if (i < 0 || i >= kActivationCount) throw contract_error("activation_info: bad kind");
  return kTable[static_cast<std::size_t>(i)];
}

std::optional<Activation> activation_from_name(std::string_view name) {
  for (const ActivationInfo& info : kTable) {
    if (info.name == name) return info.kind;
  }
  if (name == "swish") return Activation::kSilu;
  return std::nullopt;
}

std::vector<std::string_view> activation_names_and_aliases() {
  std::vector<std::string_view> names;
  names.reserve(kTable.size() + 1);
  for (const ActivationInfo& info : kTable) names.push_back(info.name);
  names.push_back("swish");
  return names;
}

ActivationSpec default_spec(Activation kind) { return {kind, activation_info(kind).param_default}; }

double max_slope(const ActivationSpec& spec) {
  switch (spec.kind) {
    case Activation::kLinear:
    case Activation::kRelu:
    case Activation::kSoftplus:  // approached as x -> inf
    case Activation::kTanh:
    case Activation::kHardTanh:
      return 1.0;
    case Activation::kLeakyRelu:
    case Activation::kElu:  // elu' = alpha e^x on x <= 0: sup |alpha|, reached at 0
      return std::max(1.0, std::abs(spec.param));
    case Activation::kSelu:
      return kSeluScale * kSeluAlpha;
    case Activation::kGelu:
      // gelu'' = pdf(x) (2 - x^2) vanishes at sqrt(2): gelu'(sqrt 2) = Phi(sqrt 2) + sqrt(2) pdf.
      return 0.5 * (1.0 + std::erf(1.0)) + std::sqrt(2.0) * kInvSqrt2Pi * std::exp(-1.0);
    case Activation::kGeluTanh:
      return kGeluTanhMaxSlope;
    case Activation::kSilu:
      return kSiluMaxSlope;
    case Activation::kMish:
      return kMishMaxSlope;
    case Activation::kSigmoid:
    case Activation::kSoftmax:  // y (1 - y) <= 1/4
      return 0.25;
  }
  throw contract_error("max_slope: unknown activation kind");
}

std::vector<double> kinks(const ActivationSpec& spec) {
  switch (spec.kind) {
    case Activation::kRelu:
    case Activation::kLeakyRelu:
    case Activation::kElu:
    case Activation::kSelu:
      return {0.0};
    case Activation::kHardTanh:
      return {-1.0, 1.0};
    case Activation::kLinear:
    case Activation::kGelu:
    case Activation::kGeluTanh:
    case Activation::kSilu:
    case Activation::kMish:
    case Activation::kSoftplus:
    case Activation::kSigmoid:
    case Activation::kTanh:
    case Activation::kSoftmax:
      return {};
  }
  throw contract_error("kinks: unknown activation kind");
}

double activation_value(const ActivationSpec& spec, double x) {
  return scalar_value_slope(spec, x).y;
}

double activation_derivative(const ActivationSpec& spec, double x) {
  return scalar_value_slope(spec, x).d;
}

double activation_second_derivative(const ActivationSpec& spec, double x) {
  switch (spec.kind) {
    case Activation::kLinear:
    case Activation::kRelu:
    case Activation::kLeakyRelu:
    case Activation::kHardTanh:
      return 0.0;
    case Activation::kElu:
      return x < 0.0 ? spec.param * std::exp(x) : 0.0;  // 0 at the kink by convention
    case Activation::kSelu:
      return x < 0.0 ? kSeluScale * kSeluAlpha * std::exp(x) : 0.0;
    case Activation::kGelu:
      return normal_pdf(x) * (2.0 - x * x);
    case Activation::kGeluTanh: {
      // With S = sigmoid(2u): phi'' = 2 S' + x S'', S' = 2 u' q, q = sigmoid'(2u), and
      // S'' = 2 u'' q - 4 u'^2 q tanh(u), since 1 - 2 S = -tanh u.
      const double xc = clamp_nan_safe(x, kGeluTanhClamp);
      const double u = gelu_tanh_u(xc);
      const double du = gelu_tanh_du(xc);
      const double ddu = kSqrt2OverPi * 6.0 * kGeluTanhCubic * xc;
      const double q = sigmoid_scalar(2.0 * u).d;
      return 4.0 * du * q + xc * (2.0 * ddu * q - 4.0 * du * du * q * std::tanh(u));
    }
    case Activation::kSilu:
      // silu'' = sigmoid' (2 - x tanh(x/2)), as sigmoid'' = -sigmoid' tanh(x/2).
      return sigmoid_scalar(x).d * (2.0 - x * std::tanh(0.5 * x));
    case Activation::kMish: {
      // With T = tanh(softplus x), s = sigmoid(x): T' = (1 - T^2) s and
      // mish'' = (1 - T^2) s (2 + x ((1 - s) - 2 T s)).
      const double xc = std::min(x, kMishClamp);
      const double w = std::exp(xc);
      const double n = w * (w + 2.0);
      const double t = n / (n + 2.0);
      const double sech2 = 4.0 * ((n + 1.0) / (n + 2.0)) / (n + 2.0);
      const double s = w / (1.0 + w);
      return sech2 * s * (2.0 + xc * (1.0 / (1.0 + w) - 2.0 * t * s));
    }
    case Activation::kSoftplus:
      return sigmoid_scalar(x).d;
    case Activation::kSigmoid:
      return -sigmoid_scalar(x).d * std::tanh(0.5 * x);
    case Activation::kTanh:
      return -2.0 * std::tanh(x) * tanh_slope_scalar(x);
    case Activation::kSoftmax:
      throw_softmax_not_elementwise("activation_second_derivative");
  }
  throw contract_error("activation_second_derivative: unknown activation kind");
}

template <class Scalar>
void activation_forward(const ActivationSpec& spec, const Eigen::Ref<const Mat<Scalar>>& h,
                        Eigen::Ref<Mat<Scalar>> y, Eigen::Ref<Mat<Scalar>> d) {
  check_same_shape("activation_forward: y", h.rows(), h.cols(), y.rows(), y.cols());
  check_same_shape("activation_forward: d", h.rows(), h.cols(), d.rows(), d.cols());
  // The column kernels use y and d as scratch before their last read of h.
  if (h.size() > 0 && (y.data() == h.data() || d.data() == h.data() || y.data() == d.data())) {
    throw contract_error("activation_forward: h, y and d must be distinct buffers");
  }
  forward_impl<Scalar>(spec, h, y, d);
}

template <class Scalar>
void activation_backward(const ActivationSpec& spec, const Eigen::Ref<const Mat<Scalar>>& y,
                         const Eigen::Ref<const Mat<Scalar>>& d,
                         const Eigen::Ref<const Mat<Scalar>>& g, Eigen::Ref<Mat<Scalar>> dh) {
  check_same_shape("activation_backward: d", y.rows(), y.cols(), d.rows(), d.cols());
  check_same_shape("activation_backward: g", y.rows(), y.cols(), g.rows(), g.cols());
  check_same_shape("activation_backward: dh", y.rows(), y.cols(), dh.rows(), dh.cols());
  // Both forms read g(i, j) before writing dh(i, j) and nothing else at (i, j), so dh may alias g.
  if (spec.kind == Activation::kSoftmax) {
    for (Index j = 0; j < y.cols(); ++j) {
      const Scalar gy = (g.col(j).array() * y.col(j).array()).sum();
      dh.col(j).array() = y.col(j).array() * (g.col(j).array() - gy);
    }
  } else {
    for (Index j = 0; j < y.cols(); ++j) {
      dh.col(j).array() = g.col(j).array() * d.col(j).array();
    }
  }
}

bool saturates(const ActivationSpec& spec) {
  switch (spec.kind) {
    case Activation::kLinear:
    case Activation::kRelu:
    case Activation::kLeakyRelu:
      return false;
    default:
      return true;
  }
}

bool derivative_from_output(const ActivationSpec& spec) {
  switch (spec.kind) {
    case Activation::kLinear:
    case Activation::kRelu:
    case Activation::kHardTanh:
      return true;
    case Activation::kLeakyRelu:
      // y > 0 exactly when h > 0 only if the negative side does not flip the sign.
      return spec.param >= 0.0;
    default:
      return false;
  }
}

template <class Scalar>
void activation_derivative_from_output(const ActivationSpec& spec,
                                       const Eigen::Ref<const Mat<Scalar>>& y,
                                       Eigen::Ref<Mat<Scalar>> d) {
  check_same_shape("activation_derivative_from_output: d", y.rows(), y.cols(), d.rows(), d.cols());
  if (!derivative_from_output(spec)) {
    throw contract_error("activation_derivative_from_output: phi' is not a function of y here");
  }
  const Scalar one(1);
  const Scalar zero(0);
  const Scalar slope = static_cast<Scalar>(spec.param);
  // Plain conditional moves: they vectorise, and pick exactly the constants forward writes.
  for (Index j = 0; j < y.cols(); ++j) {
    const Scalar* yc = y.col(j).data();
    Scalar* dc = d.col(j).data();
    const Index n = y.rows();
    switch (spec.kind) {
      case Activation::kLinear:
        for (Index i = 0; i < n; ++i) dc[i] = one;
        break;
      case Activation::kRelu:  // relu'(0) = 0, and y = 0 there
        for (Index i = 0; i < n; ++i) dc[i] = yc[i] > zero ? one : zero;
        break;
      case Activation::kLeakyRelu:  // leaky'(0) = slope, and y = 0 there
        for (Index i = 0; i < n; ++i) dc[i] = yc[i] > zero ? one : slope;
        break;
      case Activation::kHardTanh:  // 1 strictly inside (-1, 1), where |y| < 1
        for (Index i = 0; i < n; ++i) dc[i] = (yc[i] < one && yc[i] > -one) ? one : zero;
        break;
      default:
        break;
    }
  }
}

template void activation_derivative_from_output<float>(const ActivationSpec&,
                                                       const Eigen::Ref<const Mat<float>>&,
                                                       Eigen::Ref<Mat<float>>);
template void activation_derivative_from_output<double>(const ActivationSpec&,
                                                        const Eigen::Ref<const Mat<double>>&,
                                                        Eigen::Ref<Mat<double>>);

template void activation_forward<float>(const ActivationSpec&, const Eigen::Ref<const Mat<float>>&,
                                        Eigen::Ref<Mat<float>>, Eigen::Ref<Mat<float>>);
template void activation_forward<double>(const ActivationSpec&,
                                         const Eigen::Ref<const Mat<double>>&,
                                         Eigen::Ref<Mat<double>>, Eigen::Ref<Mat<double>>);
template void activation_backward<float>(const ActivationSpec&, const Eigen::Ref<const Mat<float>>&,
                                         const Eigen::Ref<const Mat<float>>&,
                                         const Eigen::Ref<const Mat<float>>&,
                                         Eigen::Ref<Mat<float>>);
template void activation_backward<double>(const ActivationSpec&,
                                          const Eigen::Ref<const Mat<double>>&,
                                          const Eigen::Ref<const Mat<double>>&,
                                          const Eigen::Ref<const Mat<double>>&,
                                          Eigen::Ref<Mat<double>>);

}  // namespace gradscope
