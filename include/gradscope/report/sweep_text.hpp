// A sweep's summary as text and Markdown, and its gradient picture.
#pragma once

#include <string>

#include "gradscope/core/sweep.hpp"

namespace gradscope {

std::string sweep_to_text(const SweepResult& result);
std::string sweep_to_markdown(const SweepResult& result);
// Gradient rms per layer, one line per point (the mean over seeds, with the seeds' range as a
// band), theory dashed beside it for the first seed.
std::string sweep_gradient_svg(const SweepResult& result);

}  // namespace gradscope
