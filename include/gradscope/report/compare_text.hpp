// A comparison of two reports as text and Markdown.
#pragma once

#include <string>

#include "gradscope/core/comparison.hpp"

namespace gradscope {

// The comparison for a terminal, within 120 columns: the verdicts, the gradient ratio, the
// findings that appeared, disappeared, changed or persisted (those in both with their metric
// before -> after), and a table of the layers that changed.
std::string comparison_to_text(const Comparison& comparison);

// The same for a pull request: the verdict first, the layer table folded in <details>, text from
// the reports escaped. Deterministic, so that a diff means a change.
std::string comparison_to_markdown(const Comparison& comparison);

}  // namespace gradscope
