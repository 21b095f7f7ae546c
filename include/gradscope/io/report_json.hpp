// The JSON report: stable key order, a schema_version, the resolved config, no timestamps, so the
// same config and seed give byte-identical files. Schema: schema/report.schema.json.
#pragma once

#include <string>

#include "gradscope/core/report.hpp"

namespace gradscope {

std::string report_to_json(const Report& report);

}  // namespace gradscope
