// `gradscope compare`: two reports compared, layer by layer and finding by finding, and whether
// the proposed one is a regression (the criteria are at Comparison::regression).
#pragma once

#include <string>

#include "gradscope/core/comparison.hpp"
#include "gradscope/core/report.hpp"

namespace gradscope {

// Compares two reports as their JSON states them (a report read back with report_from_json gives
// what a comparison of the files gives); the paths are only named in the output.
Comparison compare_reports(const Report& base, const Report& proposed, const std::string& base_path,
                           const std::string& proposed_path);

// Reads two JSON reports (their text, and the paths to name in errors and output) with
// report_from_json and compares them. Throws gradscope::Error naming the file (and the JSON path)
// when a text is not JSON, not a gradscope report, or of another schema_version; its hint says
// how to write the reports compare takes.
Comparison compare_report_json(const std::string& base_json, const std::string& proposed_json,
                               const std::string& base_path, const std::string& proposed_path);

}  // namespace gradscope
