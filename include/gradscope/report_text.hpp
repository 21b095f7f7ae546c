// The text report: a per-layer table that fits 120 columns, with a bar for the gradient magnitude,
// then the summary.
#pragma once

#include <string>

#include "gradscope/report.hpp"

namespace gradscope {

struct TextOptions {
  bool color = false;  // ANSI colours; the CLI sets it only on a terminal without NO_COLOR
  int max_rows = 40;   // deeper stacks elide the middle, keeping first, last and sharp changes
};

std::string report_to_text(const Report& report, const TextOptions& options = {});

}  // namespace gradscope
