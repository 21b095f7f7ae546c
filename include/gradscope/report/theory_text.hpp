// `gradscope theory` for a terminal.
#pragma once

#include <string>

#include "gradscope/theory/theory_report.hpp"

namespace gradscope {

std::string theory_to_text(const TheoryReport& report);

}  // namespace gradscope
