// The text report: a per-layer table that fits 120 columns, with a bar for the gradient magnitude,
// then the summary and the diagnosis.
#pragma once

#include <string>
#include <vector>

#include "gradscope/core/report.hpp"

namespace gradscope {

struct TextOptions {
  bool color = false;  // ANSI colours; the CLI sets it only on a terminal without NO_COLOR
  int max_rows = 40;   // deeper stacks elide the middle, keeping first, last and sharp changes
};

std::string report_to_text(const Report& report, const TextOptions& options = {});

// Which of report.layers the table shows (one flag each): all of them up to max_rows, else the
// first, the last, the first non-finite and the sharpest changes (report_text.cpp has the rule).
// The Markdown report elides the same way.
std::vector<bool> rows_to_show(const Report& report, int max_rows);

// Which of report.parameter_list the parameter tables show: all of them up to max_rows, else the
// first, the last, the first with a non-finite gradient, the largest and smallest ratios of
// gradient norm to parameter norm, and the rest of the budget from both ends of the list.
std::vector<bool> parameters_to_show(const Report& report, int max_rows);

}  // namespace gradscope
