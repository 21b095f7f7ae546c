// `gradscope compare`: two JSON reports read and compared, and the comparison as JSON.
#pragma once

#include <string>

#include "gradscope/core/comparison.hpp"

namespace gradscope {

// Reads two JSON reports (their text and the paths to name in errors and output) and compares
// them. Throws gradscope::Error naming the file (and the JSON path) when a text is not JSON, not a
// gradscope report, or of another schema_version.
Comparison compare_reports(const std::string& base_json, const std::string& proposed_json,
                           const std::string& base_path, const std::string& proposed_path);

// Everything in the Comparison as one ordered JSON document; non-finite numbers as null with a
// "<key>_status" sibling, as in the run report. comparison_version 2 added findings.persisted and,
// on each side of every finding, "metric": {quantity, value, relation, threshold, layer} (null
// without evidence). comparison_version 3 added each finding's "cause": the code of the root it
// is a consequence of, or null for a root.
std::string comparison_to_json(const Comparison& comparison);

}  // namespace gradscope
