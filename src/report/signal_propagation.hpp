// The signal-propagation plot of image networks (Brock et al. 2021), for the text, Markdown and
// HTML reports: the average squared channel mean, the average channel variance, and the variance
// of each residual branch, one row per residual block (per image op when there is none).
#pragma once

#include <string>
#include <vector>

#include "gradscope/core/report.hpp"

namespace gradscope::signal_propagation {

// The rows: the residual ends of image blocks, input side first; without any, every image op.
struct Rows {
  std::vector<const LayerReport*> ops;
  bool per_block = false;
};
Rows rows(const Report& r);

// "16 x 8 x 8".
std::string shape_text(const ImageShape& image);

// The Markdown section (heading, table, definitions); empty without image ops.
std::string markdown(const Report& r);

// The HTML table and definitions (the heading and chart are the page's); empty without image ops.
std::string html_table(const Report& r);

// The chart: log10 of the three quantities against the block (or layer) index.
std::string svg(const Report& r);

}  // namespace gradscope::signal_propagation
