// Numbers as people read them (see number_format.hpp). printf's formats are the reference: they
// round correctly in glibc, and fmt's precision formats agree with them digit for digit.
#include "gradscope/core/number_format.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace gradscope {

namespace {

// printf into a string; every format here fits in 64 characters (%.17g, %.*f of a double below
// 1e300 with at most 17 decimals is under 330 characters, so the buffer is grown for %f).
template <class... Args>
std::string print(const char* format, Args... args) {
  std::array<char, 64> small{};
  const int n = std::snprintf(small.data(), small.size(), format, args...);
  if (n < 0) return {};
  if (static_cast<std::size_t>(n) < small.size()) return small.data();
  std::string big(static_cast<std::size_t>(n) + 1, '\0');
  std::snprintf(big.data(), big.size(), format, args...);
  big.resize(static_cast<std::size_t>(n));
  return big;
}

}  // namespace

std::string nonfinite_word(double x) {
  if (std::isnan(x)) return "n/a";
  return x > 0 ? "inf" : "-inf";
}

std::string format_significant(double x, int digits) {
  if (!std::isfinite(x)) return nonfinite_word(x);
  return print("%.*g", digits, x);
}

std::string format_fixed(double x, int decimals) {
  if (!std::isfinite(x)) return nonfinite_word(x);
  return print("%.*f", decimals, x);
}

std::string format_shortest(double x) {
  if (!std::isfinite(x)) return nonfinite_word(x);
  if (x == std::trunc(x) && std::abs(x) < 1e15) return print("%.0f", x);
  for (int digits = 1; digits <= 17; ++digits) {
    std::string shorter = print("%.*g", digits, x);
    if (std::strtod(shorter.c_str(), nullptr) == x) return shorter;
  }
  return print("%.17g", x);
}

std::string format_pow10(double log10, int decimals) {
  if (std::isnan(log10)) return "n/a";
  if (std::isinf(log10)) return log10 > 0 ? "inf" : "0";
  // Past a billion decades the mantissa has no digits left and the exponent no int: the power
  // itself, e.g. 10^-6.65e+37 (a softmax weight behind a logit gap of 1.5e38).
  if (std::abs(log10) >= 1e9) return print("10^%.3g", log10);
  double exponent = std::floor(log10);
  double mantissa = std::pow(10.0, log10 - exponent);
  // A mantissa that would round up to "10.0" moves to the next decade.
  if (mantissa >= 10.0 - 0.5 * std::pow(10.0, -decimals)) {
    mantissa /= 10.0;
    exponent += 1.0;
  }
  return print("%.*fe%+d", decimals, mantissa, static_cast<int>(exponent));
}

std::string format_bytes(std::int64_t bytes) {
  constexpr std::array<const char*, 7> kUnits = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (v >= 1024.0 && unit + 1 < kUnits.size()) {
    v /= 1024.0;
    ++unit;
  }
  if (unit == 0) return print("%lld B", static_cast<long long>(bytes));
  return print("%.1f %s", v, kUnits[unit]);
}

}  // namespace gradscope
