// Number formatting shared by the text and Markdown writers (private to the gradscope_text
// target): fixed significant digits through fmt, the same on every platform, and magnitudes
// rebuilt from their log10 beyond double's range.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "gradscope/report.hpp"

namespace gradscope::text_format {

inline std::string nonfinite_name(double v) {
  if (std::isnan(v)) return "nan";
  return v > 0 ? "inf" : "-inf";
}

// Three significant digits; "nan", "inf", "-inf" otherwise.
inline std::string format_number(double v) {
  if (!std::isfinite(v)) return nonfinite_name(v);
  return fmt::format("{:.3g}", v);
}

// A Magnitude with three significant digits. Beyond double's range (and in the subnormal range,
// where the value has lost digits) it is rebuilt from its log10: 10^-600.5 -> "3.16e-601".
inline std::string format_magnitude(const Magnitude& m) {
  if (std::isnan(m.log10) || std::isnan(m.value)) return "nan";
  if (std::isinf(m.log10)) return m.log10 > 0 ? "inf" : "0";
  if (std::isnormal(m.value)) return fmt::format("{:.3g}", m.value);
  double exponent = std::floor(m.log10);
  double mantissa = std::pow(10.0, m.log10 - exponent);
  if (mantissa >= 9.995) {  // would print as "10.00"
    mantissa /= 10.0;
    exponent += 1.0;
  }
  return fmt::format("{:.2f}e{:+.0f}", mantissa, exponent);
}

// log10 values with two decimals, "-inf" for an exact zero.
inline std::string format_log10(double v) {
  if (!std::isfinite(v)) return nonfinite_name(v);
  return fmt::format("{:.2f}", v);
}

// A fraction as a percentage with one decimal (no % sign).
inline std::string format_percent(double fraction) {
  if (!std::isfinite(fraction)) return nonfinite_name(fraction);
  return fmt::format("{:.1f}", 100.0 * fraction);
}

inline std::string group_thousands(std::int64_t n) {
  const std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

}  // namespace gradscope::text_format
