// The JSON report both ways: stable key order, a schema_version, the resolved config, no
// timestamps, so the same config and seed give byte-identical files; and the Report read back from
// such a file. Schema: schema/report.schema.json.
#pragma once

#include <string>
#include <string_view>

#include "gradscope/core/report.hpp"

namespace gradscope {

std::string report_to_json(const Report& report);

// The hint of report_from_json's errors about a document that is not a report, or not a whole one.
inline constexpr std::string_view kReportFileHint =
    "a report is the JSON file that gradscope run writes: `gradscope run CONFIG --out DIR` "
    "writes DIR/<name>.json (<name>: the config's name, or --name)";

// The Report that report_to_json wrote as `text`: report_to_json(report_from_json(x)) == x for
// every report this version writes. Numbers written as null come back as what their
// "<key>_status" says: NaN ("nan", "no_finite_values", "not_applicable"), +-inf ("inf", "-inf",
// "overflow"), 0 ("underflow"). The config section is read as a config (parse_run_spec), except
// that the run's name is taken as it is.
//
// What the JSON does not carry stays default, or is derived as stated:
//   - MomentStats::finite: width x batch minus the non-finite count (the input's: input.width x
//     input.batch), at least 1, and 0 where the moments say "no_finite_values";
//   - LayerReport::init and ::bias, the parameter of ::activation (only its name is written) and
//     ResidualSpec::projection_init: from the config section's ops, as the run took them, where
//     those ops are the reported layers (the same kinds and stated settings); else default;
//   - MemoryEstimate::per_thread_bytes; Remedy::compositions and ::composition_texts: empty/0;
//   - ForwardStats::saturated_units where saturation does not apply: 0;
//   - BackwardStats's weight fields of an op without weights: 0.
// Keys derived from others (network.depth, network.precision, memory.estimate_bytes, the
// activations plan, log10_weight_norm, geometric_mean_gain, the histogram's range, set_arguments,
// loss.name, tool.version) are not read back.
//
// Throws gradscope::Error (exit code 2) naming `source` and the JSON path of the first problem:
// "<source>:<line>:<column>: not JSON: ...", "<source>: not a gradscope report ...",
// "<source>: schema_version: N, but this gradscope reads M", "<source>: <path>: missing",
// "<source>: <path>: expected ..., got ...". The hint is kReportFileHint where the document is not
// a whole report, or what to run instead (a config, a comparison, another schema_version).
Report report_from_json(const std::string& text, const std::string& source);

}  // namespace gradscope
