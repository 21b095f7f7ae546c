// Numbers as people read them, in one place: every message, reason and report spells a number
// through these, so a value reads the same in an error, a finding and a table.
#pragma once

#include <cstdint>
#include <string>

namespace gradscope {

// NaN as "n/a" (undefined), infinities as "inf" / "-inf": the words of the reports.
std::string nonfinite_word(double x);

// `digits` significant digits as printf's %.{digits}g ("0.25", "3.2e+04"); non-finite as
// nonfinite_word.
std::string format_significant(double x, int digits);

// `decimals` digits after the point as printf's %.{decimals}f; non-finite as nonfinite_word.
std::string format_fixed(double x, int decimals);

// The shortest spelling that reads back as the same double ("0.1", "1e-07", "3"): config values
// in advice, which should read like a person wrote them.
std::string format_shortest(double x);

// 10^log10 as "m.mme+E" (e.g. "3.2e+4") with `decimals` decimals in the mantissa, for any log10,
// also beyond double's range: log10 = -600.5, decimals 2 -> "3.16e-601". Non-finite log10:
// nonfinite_word of 10^log10 ("0" for -inf).
std::string format_pow10(double log10, int decimals);

// A byte count with a binary unit: "512 B", "1.5 KiB", ..., "2.0 EiB".
std::string format_bytes(std::int64_t bytes);

}  // namespace gradscope
