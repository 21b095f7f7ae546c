// A coordinate check's result as JSON: the check as run, the multipliers the parametrization set,
// every row's sizes per width with its fitted slope, band and verdict, the depth check, and the
// worst row. Keys in a fixed order, numbers as the reports write them (a number that is not
// finite is null, with "<key>_status" beside it), so the same result gives the same bytes.
#pragma once

#include <string>

#include "gradscope/core/coordcheck.hpp"

namespace gradscope {

// The document, indented by two, ending in a newline:
//   "kind": "coordcheck", "schema_version", "tool" {name, version}, "name",
//   "check" {widths, depths, seeds, parametrization, base_width, base_depth,
//            optimizer {name, learning_rate, momentum, beta1, beta2, eps, weight_decay},
//            steps, tolerance},
//   "multipliers" {width, tensors [{op, name, role, init_std, lr, eps}]},
//   "rows" [{op, label, role, quantity, step, l1 [], rms [], slope, spread,
//            expected [low, high], verdict}],
//   "depth" {residual_scale, rows [{op, label, stream, quantity, step, l1 [], rms [], slope,
//            spread, expected, verdict}]}
//            (only with depth rows),
//   "verdict" {passed, worst {row, op, label, role, quantity, step, slope, spread, expected,
//              verdict} or null, worst_depth {row, op, label, stream, quantity, step, slope,
//              spread, expected, verdict} or null}.
// base_width and base_depth are the resolved ones (the result's), not the request's 0.
// A scalar that is not finite is null followed by "<key>_status": "nan", "inf" or "-inf". An
// array (l1, rms, expected) holding one is written with null there, and followed by
// "<key>_status": an array of the same length, null where the entry is finite and its status
// where it is not.
std::string coordcheck_json_text(const CoordCheckResult& result);

}  // namespace gradscope
