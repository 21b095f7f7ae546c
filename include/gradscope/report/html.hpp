// Self-contained HTML pages (inline CSS and SVG, no scripts, no network) for a run, a sweep and a
// comparison: summary, findings, plots and tables in one file a browser opens offline.
#pragma once

#include <string>

#include "gradscope/core/comparison.hpp"
#include "gradscope/core/report.hpp"
#include "gradscope/core/sweep.hpp"

namespace gradscope {

std::string report_to_html(const Report& report);
std::string sweep_to_html(const SweepResult& sweep);
std::string comparison_to_html(const Comparison& comparison);

// HTML-escapes text (&, <, >, ", ').
std::string html_escape(std::string_view text);

// The page around a body: <!DOCTYPE html>, the title, the shared style sheet.
std::string html_page(std::string_view title, std::string_view body);

}  // namespace gradscope
