// A coordinate check's charts: each row's size against width (and the final stream's against
// depth) on log2-log2 axes, where a row the parametrization keeps stable is a flat line and the
// fitted slope is the line's rise per doubling.
#pragma once

#include <string>

#include "gradscope/core/coordcheck.hpp"

namespace gradscope {

// log2 of each op's output size (the rows of quantity size at `step`: l1 = mean |x|, the mean over
// seeds) against log2 of the width, one line per row named by its label in the legend. A width
// whose size is not finite or not positive (an overflow, or an exact 0) is not drawn and breaks
// the line there. A step without such rows gives a chart that says so.
std::string coordcheck_width_chart_svg(const CoordCheckResult& result, int step);

// The same for each op's change since init (the rows of quantity change at `step`; every change
// is 0 at step 0, which the chart says instead of drawing).
std::string coordcheck_change_chart_svg(const CoordCheckResult& result, int step);

// log2 of the final residual stream's rms against log2 of the depth (at the base width), one line
// per step. A result without a depth check gives a chart that says so.
std::string coordcheck_depth_chart_svg(const CoordCheckResult& result);

}  // namespace gradscope
