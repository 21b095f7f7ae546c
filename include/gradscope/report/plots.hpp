// SVG charts of gradscope's reports: gradient magnitude per layer (beside the mean-field
// prediction), activation distributions by depth, dead and saturated units, and the phase diagram.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "gradscope/core/report.hpp"
#include "gradscope/theory/theory_report.hpp"

namespace gradscope {

// log10 rms(dL/dh) against the layer index, one line per (name, report). With theory, a dashed
// line per run at the layers with a gradient prediction: the measured log10 at the last layer
// with a prediction (the reference the theory is relative to) plus theory.log10_grad_rel_last;
// one legend key explains every dashed line. Where the ops are of several kinds (norms, residual
// ends, ...), each point's marker shows its op's kind, with a tooltip naming the op, the per-op
// line is thin, and a bold line "NAME: residual stream, one point per block" joins the residual
// ends of each run that has two or more.
std::string gradient_plot_svg(const std::vector<std::pair<std::string, const Report*>>& runs,
                              bool with_theory);

// The layers' activation histograms (forward.act_histogram over act.min..act.max), stacked by
// depth. Layers without a histogram keep their row, empty.
std::string activation_histogram_svg(const Report& report);

// dead_fraction (solid) and saturated_fraction (dashed) per layer in percent, one colour per run.
std::string unit_fraction_plot_svg(const std::vector<std::pair<std::string, const Report*>>& runs);

// Sequence inputs (tokens > 1): each op's tokens.mean_cosine against the layer index, on a 0..1
// axis (1: the tokens have collapsed into one vector). Markers show the op's kind.
std::string token_cosine_plot_svg(const Report& report);

// Attention ops: each one's mean attention entropy (nats) against the layer index, and dashed
// beside it the entropy of a uniform row (ln T, or for causal attention the mean over queries t of
// ln(t + 1)), down to 0 on the axis.
std::string attention_entropy_plot_svg(const Report& report);

// The report's grid (compute_theory with query.grid): phases over (sw2, sb2) and the edge of
// chaos. A report without a grid gives a chart that says so.
std::string phase_diagram_svg(const TheoryReport& report);

}  // namespace gradscope
