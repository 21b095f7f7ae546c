// Charts of gradscope's reports, built on the plain-data charts of svg.hpp: this file only decides
// what is plotted (which statistic, which units, which labels).
#include "gradscope/report/plots.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/spec.hpp"
#include "gradscope/report/svg.hpp"
#include "report/text_format.hpp"

namespace gradscope {

namespace {

using text_format::op_label;

using Runs = std::vector<std::pair<std::string, const Report*>>;

// "Gradient magnitude per layer" for several runs; ": name" appended for a single one.
std::string run_title(std::string_view what, const Runs& runs) {
  if (runs.size() == 1) return fmt::format("{}: {}", what, runs.front().first);
  return std::string(what);
}

// The marker of each kind of op, where a chart mixes kinds, and what the legend calls it.
struct OpMark {
  OpKind kind;
  Marker marker;
  std::string_view name;
};
// Six shapes for seven kinds: a GLU shares the dense layer's circle (a transformer has one or the
// other in its MLP), and the legend names it apart.
constexpr std::array<OpMark, 7> kOpMarks = {{
    {OpKind::kDense, Marker::kCircle, "dense layer"},
    {OpKind::kNorm, Marker::kSquare, "norm"},
    {OpKind::kActivation, Marker::kTriangle, "activation (no weights)"},
    {OpKind::kDropout, Marker::kTriangleDown, "dropout"},
    {OpKind::kResidualEnd, Marker::kDiamond, "residual add"},
    {OpKind::kAttention, Marker::kPlus, "attention"},
    {OpKind::kGlu, Marker::kCircle, "GLU (gated MLP)"},
}};

Marker op_marker(OpKind kind) {
  for (const OpMark& m : kOpMarks) {
    if (m.kind == kind) return m.marker;
  }
  return Marker::kCircle;
}

// What the gradient chart says when it has no point to draw: why, in the reader's words. Zero
// cannot sit on a log scale, and NaN or infinity nowhere; where the values turn non-finite is
// the table's first question, so the note names it.
std::string undrawn_gradient_note(const Runs& runs) {
  std::size_t zero = 0, nonfinite = 0;
  for (const auto& [name, report] : runs) {
    for (const LayerReport& l : report->layers) {
      const double g = l.backward.grad_preact_rms.log10;
      if (g == -std::numeric_limits<double>::infinity())
        ++zero;
      else if (!std::isfinite(g))
        ++nonfinite;
    }
  }
  if (nonfinite == 0 && zero > 0)
    return "every gradient is exactly 0, which a log scale cannot show (see the table)";
  if (zero == 0 && nonfinite > 0) {
    if (runs.size() == 1 && runs.front().second->summary.first_nonfinite_layer > 0) {
      const Summary& s = runs.front().second->summary;
      // Short enough to fit the plot area: the forward origin explains every layer's NaN.
      return fmt::format(
          "no finite gradient at any layer (the {} pass is non-finite from layer {})",
          s.nonfinite_in_forward ? "forward" : "backward", s.first_nonfinite_layer);
    }
    return "no finite gradient: every one is NaN or infinite (see the table)";
  }
  return "no gradient to draw: each is exactly 0 or non-finite (see the table)";
}

}  // namespace

// A residual network's per-op gradient is a saw-tooth: the ops inside a block see a smaller
// gradient than the stream around it. So where the ops are of several kinds, each point's marker
// says its kind (a tooltip names the op), the per-op line is thin, and a bold line joins the
// residual adds: one point per block.
std::string gradient_plot_svg(const Runs& runs, bool with_theory) {
  LineChart chart;
  chart.title = run_title("Gradient magnitude per layer", runs);
  chart.x_label = "layer (input side first)";
  chart.y_label = "rms of dL/dh (log scale)";
  chart.log10_y = true;
  std::vector<bool> kinds_seen(kOpMarks.size(), false);
  for (const auto& [name, report] : runs) {
    for (const LayerReport& l : report->layers) {
      for (std::size_t k = 0; k < kOpMarks.size(); ++k) {
        kinds_seen[k] = kinds_seen[k] || kOpMarks[k].kind == l.kind;
      }
    }
  }
  const bool mixed = std::count(kinds_seen.begin(), kinds_seen.end(), true) > 1;
  bool any_theory = false;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    const auto& [name, report] = runs[r];
    const int colour = static_cast<int>(r);
    Series measured;
    measured.label = name;
    measured.colour = colour;
    Series stream;
    stream.label = name + ": residual stream, one point per block";
    stream.colour = colour;
    stream.marker = Marker::kDiamond;
    stream.line_width = 2.5;
    for (const LayerReport& l : report->layers) {
      measured.x.push_back(l.index);
      measured.y.push_back(l.backward.grad_preact_rms.log10);
      if (!mixed) continue;
      measured.point_markers.push_back(op_marker(l.kind));
      measured.point_notes.push_back(fmt::format("layer {}: {}, rms of dL/dh 10^{:.2f}", l.index,
                                                 op_label(l), l.backward.grad_preact_rms.log10));
      if (l.kind == OpKind::kResidualEnd) {
        stream.x.push_back(l.index);
        stream.y.push_back(l.backward.grad_preact_rms.log10);
      }
    }
    if (mixed) measured.line_width = 1.0;
    chart.series.push_back(std::move(measured));
    if (stream.x.size() >= 2) chart.series.push_back(std::move(stream));
    if (!with_theory) continue;
    // The predictions are relative to the last layer that has one (prediction.cpp's reference):
    // anchoring there puts the dashed line on the measured point it is relative to.
    double anchor = std::numeric_limits<double>::quiet_NaN();
    for (auto it = report->layers.rbegin(); it != report->layers.rend(); ++it) {
      if (it->theory.backward) {
        anchor = it->backward.grad_preact_rms.log10;
        break;
      }
    }
    Series theory;
    theory.label = name + " (theory)";
    theory.dashed = true;
    theory.colour = colour;
    theory.in_legend = false;  // one key for every run's dashed line
    for (const LayerReport& l : report->layers) {
      if (!l.theory.backward) continue;
      theory.x.push_back(l.index);
      theory.y.push_back(anchor + l.theory.log10_grad_rel_last);
    }
    any_theory = any_theory || std::any_of(theory.y.begin(), theory.y.end(),
                                           [](double y) { return std::isfinite(y); });
    chart.series.push_back(std::move(theory));
  }
  if (mixed) {
    for (std::size_t k = 0; k < kOpMarks.size(); ++k) {
      if (kinds_seen[k])
        chart.keys.push_back(
            {std::string(kOpMarks[k].name), kOpMarks[k].marker, false, false, false});
    }
  }
  if (any_theory) {
    chart.keys.push_back({"dashed, hollow markers: the mean-field prediction (theory)",
                          Marker::kCircle, true, true, true});
  }
  chart.empty_note = undrawn_gradient_note(runs);
  return line_chart_svg(chart);
}

std::string activation_histogram_svg(const Report& report) {
  HistogramStack stack;
  stack.title = fmt::format("Activation distribution per layer: {}", report.spec.name);
  stack.x_label = "output value of the layer";
  stack.y_label = "layer (input side at the top)";
  for (const LayerReport& l : report.layers) {
    stack.rows.push_back({static_cast<double>(l.index), fmt::format("{} {}", l.index, op_label(l)),
                          l.forward.act.min, l.forward.act.max, l.forward.act_histogram});
  }
  return histogram_stack_svg(stack);
}

std::string unit_fraction_plot_svg(const Runs& runs) {
  LineChart chart;
  chart.title = run_title("Dead and saturated units per layer", runs);
  chart.x_label = "layer (input side first)";
  chart.y_label = "dead: % of units; saturated: % of entries";
  for (std::size_t r = 0; r < runs.size(); ++r) {
    const auto& [name, report] = runs[r];
    // Dead is a share of units, saturated a share of entries (units x examples): the axis says so.
    Series dead;
    dead.label = name + ": dead";
    dead.colour = static_cast<int>(r);
    Series saturated;
    saturated.label = name + ": saturated";
    saturated.colour = static_cast<int>(r);
    saturated.dashed = true;
    for (const LayerReport& l : report->layers) {
      dead.x.push_back(l.index);
      dead.y.push_back(100.0 * l.forward.dead_fraction);
      saturated.x.push_back(l.index);
      saturated.y.push_back(100.0 * l.forward.saturated_fraction);
    }
    chart.series.push_back(std::move(dead));
    chart.series.push_back(std::move(saturated));
  }
  return line_chart_svg(chart);
}

std::string token_cosine_plot_svg(const Report& report) {
  LineChart chart;
  chart.title = fmt::format("Token similarity per layer: {}", report.spec.name);
  chart.x_label = "layer (input side first)";
  chart.y_label = "mean cosine between tokens";
  chart.y_include = {0.0, 1.0};
  Series cosine;
  cosine.label = "mean cosine between two tokens of one example (1: rank collapse)";
  cosine.colour = 0;
  std::vector<bool> kinds_seen(kOpMarks.size(), false);
  for (const LayerReport& l : report.layers) {
    if (!l.forward.has_tokens) continue;
    cosine.x.push_back(l.index);
    cosine.y.push_back(l.forward.token_mean_cosine);
    cosine.point_markers.push_back(op_marker(l.kind));
    cosine.point_notes.push_back(fmt::format("layer {}: {}, mean token cosine {:.3f}", l.index,
                                             op_label(l), l.forward.token_mean_cosine));
    for (std::size_t k = 0; k < kOpMarks.size(); ++k) {
      kinds_seen[k] = kinds_seen[k] || kOpMarks[k].kind == l.kind;
    }
  }
  cosine.line_width = 1.5;
  chart.series.push_back(std::move(cosine));
  for (std::size_t k = 0; k < kOpMarks.size(); ++k) {
    if (kinds_seen[k]) {
      chart.keys.push_back(
          {std::string(kOpMarks[k].name), kOpMarks[k].marker, false, false, false});
    }
  }
  chart.empty_note = "no op has a finite token cosine";
  return line_chart_svg(chart);
}

std::string attention_entropy_plot_svg(const Report& report) {
  LineChart chart;
  chart.title = fmt::format("Attention entropy per attention op: {}", report.spec.name);
  chart.x_label = "layer (input side first)";
  chart.y_label = "mean entropy of a row (nats)";
  chart.y_include = {0.0};
  const int tokens = report.spec.input.tokens;
  Series measured;
  measured.label = "measured entropy";
  measured.colour = 0;
  measured.marker = Marker::kPlus;
  Series uniform;
  uniform.label = fmt::format("uniform rows: ln T = ln {}", tokens);
  uniform.colour = 1;
  uniform.dashed = true;
  bool causal = false, full = false;
  for (const LayerReport& l : report.layers) {
    if (l.kind != OpKind::kAttention) continue;
    causal = causal || l.attention.causal;
    full = full || !l.attention.causal;
    measured.x.push_back(l.index);
    measured.y.push_back(l.forward.attention_entropy);
    uniform.x.push_back(l.index);
    uniform.y.push_back(text_format::uniform_attention_entropy(tokens, l.attention.causal));
  }
  if (causal) {
    uniform.label =
        full ? fmt::format(
                   "uniform rows: ln T = ln {}, or causal: mean over t of "
                   "ln(t + 1)",
                   tokens)
             : fmt::format("uniform rows (causal): mean over t of ln(t + 1), T = {}", tokens);
  }
  chart.series = {std::move(measured), std::move(uniform)};
  chart.empty_note = "no attention op has a finite entropy";
  return line_chart_svg(chart);
}

std::string phase_diagram_svg(const TheoryReport& report) {
  PhaseChart chart;
  const ActivationInfo& info = activation_info(report.query.activation.kind);
  std::string act(info.name);
  if (!info.param_name.empty()) {
    act += fmt::format(" ({}={:g})", info.param_name, report.query.activation.param);
  }
  chart.title = fmt::format("Mean-field phase diagram: {}", act);
  if (!report.grid.empty()) {
    for (const PhaseSample& s : report.grid.front().samples) chart.sw2_samples.push_back(s.sw2);
  }
  for (const PhasePoint& p : report.grid) {
    chart.sb2.push_back(p.sb2);
    std::vector<std::string> row;
    for (const PhaseSample& s : p.samples) row.emplace_back(phase_name(s.phase));
    chart.phase.push_back(std::move(row));
    chart.critical_sw2.push_back(p.critical.exists ? p.critical.sw2
                                                   : std::numeric_limits<double>::quiet_NaN());
  }
  return phase_chart_svg(chart);
}

}  // namespace gradscope
