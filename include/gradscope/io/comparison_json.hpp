// `gradscope compare`'s comparison as JSON; the comparing itself is app/compare.hpp.
#pragma once

#include <string>

#include "gradscope/core/comparison.hpp"

namespace gradscope {

// Everything in the Comparison as one ordered JSON document; non-finite numbers as null with a
// "<key>_status" sibling, as in the run report. comparison_version 2 added findings.persisted and,
// on each side of every finding, "metric": {quantity, value, relation, threshold, layer} (null
// without evidence). comparison_version 3 added each finding's "cause": the code of the root it
// is a consequence of, or null for a root.
std::string comparison_to_json(const Comparison& comparison);

}  // namespace gradscope
