// `gradscope theory` as JSON.
#pragma once

#include <string>

#include "gradscope/theory/theory_report.hpp"

namespace gradscope {

std::string theory_to_json(const TheoryReport& report);

}  // namespace gradscope
