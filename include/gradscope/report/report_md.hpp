// The Markdown report, for a pull request or a CI summary: the verdict first, the findings with
// their advice, then the per-layer table folded away. Deterministic, so that a diff means a change.
#pragma once

#include <string>

#include "gradscope/core/report.hpp"

namespace gradscope {

struct MarkdownOptions {
  int max_rows = 200;  // deeper stacks elide the middle of the table, as the text report does
};

std::string report_to_markdown(const Report& report, const MarkdownOptions& options = {});

}  // namespace gradscope
