// `gradscope coordcheck`: the config at every width (and depth) of the check, under its
// parametrization, trained a few steps over several seeds; the sizes gathered into rows, each
// row's slope fitted and judged against the band the parametrization should give.
#pragma once

#include <functional>
#include <string>

#include "gradscope/core/coordcheck.hpp"
#include "gradscope/core/spec.hpp"

namespace gradscope {

// Progress: (runs done, runs in all, "width 256, seed 2").
using CoordCheckProgress = std::function<void(int, int, const std::string&)>;

// Runs the check. The width check runs at the config's depth, the depth check at the base width.
// Throws gradscope::Error (exit code 2) before anything runs when the check is malformed: fewer
// than two distinct widths (or depths), a width or depth below 1, --depths on a config with no
// repeated block, widths the attention heads do not divide.
CoordCheckResult run_coordcheck(const RunSpec& base, const CoordCheckSpec& check, int threads,
                                const CoordCheckProgress& progress = nullptr);

}  // namespace gradscope
