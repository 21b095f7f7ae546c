// Numbers in the diagnosis's sentences: a few significant digits, powers of ten beyond double's
// range, percentages and layer names, the same way in every finding and advice (through
// core/number_format.hpp, as every layer spells numbers).
#pragma once

#include <cmath>
#include <string>

#include "gradscope/core/number_format.hpp"

namespace gradscope::diagnosis_detail {

inline std::string fmt_num(double x, int sig = 3) { return format_significant(x, sig); }

// 10^log10 for any log10, also beyond double's range: "0.25", "3.2e+4", "1.6e-31".
inline std::string pow10_text(double log10) {
  if (std::isfinite(log10) && std::abs(log10) < 3.0) return fmt_num(std::pow(10.0, log10), 2);
  return format_pow10(log10, 1);
}

inline std::string percent(double fraction) { return format_fixed(100.0 * fraction, 1) + "%"; }

inline std::string layer_word(int index) { return "layer " + std::to_string(index); }

}  // namespace gradscope::diagnosis_detail
