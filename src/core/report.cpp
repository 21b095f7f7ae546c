// Magnitudes known through their log10: the arithmetic that lets a report carry 1e-600 exactly
// while the value itself underflows double.
#include "gradscope/core/report.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

namespace gradscope {

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kLog10Of2 = 0.301029995663981195213738894724493026768189881462108541310;

// A positive, finite, normal double: its own log10 is the most accurate one available.
bool is_normal_positive(double x) { return std::isnormal(x) && x > 0.0; }

}  // namespace

Magnitude magnitude_from_scaled(double mantissa, std::int64_t exp2) {
  if (std::isnan(mantissa) || mantissa < 0.0) return {kNan, kNan};
  if (std::isinf(mantissa)) return {kInf, kInf};
  if (mantissa == 0.0) return {0.0, -kInf};

  // Normalise first (m in [0.5, 1)) so the exponent sum is exact and log10(m) is well conditioned.
  int e = 0;
  const double m = std::frexp(mantissa, &e);
  const std::int64_t total = exp2 + e;
  // ldexp takes an int; beyond +-4096 every mantissa in [0.5, 1) is 0 or inf anyway.
  const std::int64_t clamped = total < -4096 ? -4096 : (total > 4096 ? 4096 : total);
  Magnitude out;
  out.value = std::ldexp(m, static_cast<int>(clamped));
  out.log10 = is_normal_positive(out.value)
                  ? std::log10(out.value)
                  : std::log10(m) + static_cast<double>(total) * kLog10Of2;
  return out;
}

Magnitude magnitude_from_log10(double log10) {
  if (std::isnan(log10)) return {kNan, kNan};
  // pow gives 0 below double's range and inf above it, and 0 / inf for log10 = -inf / +inf.
  return {std::pow(10.0, log10), log10};
}

Magnitude magnitude_ratio(const Magnitude& a, const Magnitude& b) {
  if (std::isnan(a.log10) || std::isnan(b.log10)) return {kNan, kNan};
  // Where both values and their quotient are ordinary doubles, divide: that is exact to one
  // rounding, while 10^(difference of logs) loses a few digits for large logs.
  if (is_normal_positive(a.value) && is_normal_positive(b.value)) {
    const double q = a.value / b.value;
    if (is_normal_positive(q)) return {q, std::log10(q)};
  }
  // inf - inf (0/0, inf/inf) is NaN, as the ratio is undefined.
  return magnitude_from_log10(a.log10 - b.log10);
}

std::string_view apjn_fit_name(ApjnFit fit) {
  switch (fit) {
    case ApjnFit::kPowerLaw:
      return "power_law";
    case ApjnFit::kExponential:
      return "exponential";
    case ApjnFit::kNone:
      break;
  }
  return "none";
}

std::string_view layer_kind_name(OpKind kind) {
  if (kind == OpKind::kResidualEnd) return "residual";
  return op_kind_name(kind);
}

}  // namespace gradscope
