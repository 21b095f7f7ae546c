// Numbers in the diagnosis's sentences: a few significant digits, powers of ten beyond double's
// range, percentages and layer names, the same way in every finding and advice.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

namespace gradscope::diagnosis_detail {

inline std::string fmt_num(double x, int sig = 3) {
  if (std::isnan(x)) return "n/a";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", sig, x);
  return buf;
}

// 10^log10 for any log10, also beyond double's range: "0.25", "3.2e+04", "1.6e-31".
inline std::string pow10_text(double log10) {
  if (std::isnan(log10)) return "n/a";
  if (std::isinf(log10)) return log10 > 0 ? "inf" : "0";
  if (std::abs(log10) < 3.0) return fmt_num(std::pow(10.0, log10), 2);
  double e = std::floor(log10);
  double m = std::pow(10.0, log10 - e);
  if (m >= 9.95) {
    m /= 10.0;
    e += 1.0;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1fe%+d", m, static_cast<int>(e));
  return buf;
}

inline std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * fraction);
  return buf;
}

inline std::string layer_word(int index) { return "layer " + std::to_string(index); }

}  // namespace gradscope::diagnosis_detail
