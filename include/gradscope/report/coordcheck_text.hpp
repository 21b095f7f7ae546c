// A coordinate check's result for people: a terminal table (text) and the same tables in Markdown,
// each ending with the verdict that names the worst row.
#pragma once

#include <string>

#include "gradscope/core/coordcheck.hpp"

namespace gradscope {

// Lines of at most 100 columns: the check (name, parametrization, widths, depths, seeds,
// optimizer, steps, tolerance); the multipliers at the largest width (tensor, role, init std x,
// lr x, eps x); per step a table of the rows (label, role, quantity, l1 at the smallest and the
// largest width, slope +- spread, expected band, verdict); the depth check when there is one; and
// the verdict: "FAIL: ops.5 dense change at step 1 grows with slope +0.98 (expected 0 ± 0.1)"
// for the worst row (and the worst depth row), or "PASS: every row is flat within its band".
// Numbers that are not finite read "n/a", "inf", "-inf" as in the reports; a label too long for
// its column is cut in the middle ("ops.12.atten...ry.weight").
std::string coordcheck_text(const CoordCheckResult& result);

// The same content as Markdown: a heading, the verdict in bold, then pipe tables (settings,
// multipliers, one per step, depth), every label escaped so it cannot break a table.
std::string coordcheck_markdown(const CoordCheckResult& result);

}  // namespace gradscope
