// How long a run will take on this machine: its work (estimate_run_work) over the speed of one
// thread's matrix products, measured in a few milliseconds. Printed on stderr only: a report is
// the same bytes on every machine, so no speed, estimate or time ever goes into one.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "gradscope/core/spec.hpp"
#include "gradscope/engine/engine.hpp"

namespace gradscope {

// Runs estimated at least this long are announced on stderr before they start...
inline constexpr double kAnnounceSeconds = 5.0;
// ...and runs this long get a progress bar on a terminal.
inline constexpr double kProgressSeconds = 2.0;
// One thread of a slow machine (no vector units to speak of): a run that would take less than
// the thresholds even there needs no measurement at all.
inline constexpr double kSlowProductFlops = 2e9;

// Flops per second of one thread's matrix products in `precision`: 256 x 256 products, repeated
// for about 20 ms.
double measure_product_speed(Precision precision);

// The share of that speed a run sustains (its products are cut into row blocks, its Grams are
// symmetric products, and the work between products waits on memory): measured from 0.53 to 0.65
// over stacks of width 64 to 2048 with the release build, one thread.
inline constexpr double kSustainedFraction = 0.6;

// Seconds for `work` (its critical path) at `flops_per_second` per thread.
double estimate_seconds(const RunWork& work, double flops_per_second);

// "90s", "10m", "10min", "1h30m", "1.5h", "2d", or a bare number of seconds: seconds. Nothing when
// the text is not a positive duration.
std::optional<double> parse_duration(std::string_view text);

// "4.2 s", "38 s", "3 min 20 s", "1 h 33 min", "3.5 days".
std::string format_duration(double seconds);

}  // namespace gradscope
