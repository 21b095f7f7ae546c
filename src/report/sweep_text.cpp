// The sweep's tables (text and Markdown) and its gradient plot.
#include "gradscope/report/sweep_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "gradscope/report/svg.hpp"
#include "report/text_format.hpp"

namespace gradscope {

namespace {

using namespace text_format;

// The codes of warnings and errors over a point's runs, each once, most severe first.
std::string findings_cell(const SweepPointSummary& p) {
  std::map<std::string, int> worst;
  for (const SweepRun& run : p.runs) {
    for (const SweepFinding& f : run.findings) {
      const int rank = f.severity == "error" ? 2 : (f.severity == "warning" ? 1 : 0);
      if (rank == 0) continue;
      worst[f.code] = std::max(worst[f.code], rank);
    }
  }
  std::vector<std::pair<int, std::string>> order;
  for (const auto& [code, rank] : worst) order.emplace_back(-rank, code);
  std::sort(order.begin(), order.end());
  std::string out;
  for (const auto& [rank, code] : order) out += (out.empty() ? "" : ", ") + code;
  return out.empty() ? "-" : out;
}

std::string ratio_cell(const SweepPointSummary& p) {
  if (p.runs.size() <= 1) return format_log10(p.ratio_mean);
  return fmt::format("{} [{}, {}]", format_log10(p.ratio_mean), format_log10(p.ratio_min),
                     format_log10(p.ratio_max));
}

std::string axes_line(const SweepResult& r) {
  std::string out;
  for (const SweepAxis& a : r.axes) {
    std::string values;
    for (const std::string& v : a.values) values += (values.empty() ? "" : ",") + v;
    out += (out.empty() ? "" : " x ") + a.key + "=" + values;
  }
  return out.empty() ? "(nothing varied)" : out;
}

}  // namespace

std::string sweep_to_text(const SweepResult& r) {
  std::string out = fmt::format("gradscope sweep: {}\n", r.name);
  out += fmt::format("  config  {}\n  vary    {}\n  seeds   {} per point, {} points, {} runs\n\n",
                     r.config, axes_line(r), r.seeds, r.points.size(),
                     r.points.size() * static_cast<std::size_t>(r.seeds));
  std::size_t label_width = 5;
  for (const SweepPointSummary& p : r.points) {
    label_width = std::max(label_width, p.point.label.size());
  }
  label_width = std::min<std::size_t>(label_width, 48);
  out += fmt::format("{:>5}  {:<{}}  {:<8}  {:>26}  {}\n", "point", "label", label_width, "verdict",
                     "log10 grad first/last", "warnings and errors");
  for (const SweepPointSummary& p : r.points) {
    std::string label = p.point.label;
    if (label.size() > label_width) label = label.substr(0, label_width - 3) + "...";
    out += fmt::format("{:>5}  {:<{}}  {:<8}  {:>26}  {}\n", p.point.index, label, label_width,
                       p.worst_verdict, ratio_cell(p), findings_cell(p));
  }
  if (r.seeds > 1) {
    out +=
        fmt::format("\nlog10 grad first/last: mean over {} seeds [smallest, largest]\n", r.seeds);
  }
  out += "verdict: the worst over the point's seeds; each run's report is in runs/\n";
  return out;
}

std::string sweep_to_markdown(const SweepResult& r) {
  int counts[3] = {0, 0, 0};
  for (const SweepPointSummary& p : r.points) {
    ++counts[p.worst_verdict == "error" ? 2 : (p.worst_verdict == "warning" ? 1 : 0)];
  }
  std::string out = fmt::format("# gradscope sweep: {}\n\n", markdown_escape(r.name));
  out += fmt::format("**{} healthy, {} warning, {} error** of {} points ({} seed{} each)\n\n",
                     counts[0], counts[1], counts[2], r.points.size(), r.seeds,
                     r.seeds == 1 ? "" : "s");
  // A code span shows its text as it is: escaping inside it would show the escapes.
  out += fmt::format("Config {}, varying {}.\n\n", markdown_code(r.config),
                     markdown_escape(axes_line(r)));
  out += "| point | settings | verdict | log10 grad first/last | warnings and errors |\n";
  out += "|---:|:---|:---|---:|:---|\n";
  for (const SweepPointSummary& p : r.points) {
    out +=
        fmt::format("| {} | {} | {} | {} | {} |\n", p.point.index, markdown_escape(p.point.label),
                    p.worst_verdict, ratio_cell(p), markdown_escape(findings_cell(p)));
  }
  out += "\n![gradient rms per layer](gradients.svg)\n";
  return out;
}

std::string sweep_gradient_svg(const SweepResult& r) {
  LineChart chart;
  chart.title = "Gradient rms per layer: " + r.name;
  chart.x_label = "layer (input side first)";
  chart.y_label = "rms of dL/dh";
  chart.log10_y = true;
  bool any_theory = false;
  for (const SweepPointSummary& p : r.points) {
    if (p.runs.empty()) continue;
    Series measured;
    measured.label = p.point.label;
    // A point's theory line shares its style (colour and marker shape).
    measured.colour = p.point.index;
    const std::size_t n = p.runs.front().log10_grad.size();
    for (std::size_t i = 0; i < n; ++i) {
      double sum = 0.0, lo = INFINITY, hi = -INFINITY;
      int count = 0;
      for (const SweepRun& run : p.runs) {
        if (i >= run.log10_grad.size()) continue;
        sum += run.log10_grad[i];
        lo = std::min(lo, run.log10_grad[i]);
        hi = std::max(hi, run.log10_grad[i]);
        ++count;
      }
      measured.x.push_back(static_cast<double>(i + 1));
      measured.y.push_back(count > 0 ? sum / count : NAN);
      if (p.runs.size() > 1) {
        measured.y_low.push_back(lo);
        measured.y_high.push_back(hi);
      }
    }
    chart.series.push_back(std::move(measured));
    const SweepRun& first = p.runs.front();
    Series theory;
    theory.label = p.point.label + " (theory)";
    theory.dashed = true;
    theory.colour = p.point.index;
    theory.in_legend = false;  // the key below explains every dashed line at once
    bool any = false;
    for (std::size_t i = 0; i < first.predicted_log10_grad.size(); ++i) {
      theory.x.push_back(static_cast<double>(i + 1));
      theory.y.push_back(first.predicted_log10_grad[i]);
      any = any || std::isfinite(first.predicted_log10_grad[i]);
    }
    if (any) chart.series.push_back(std::move(theory));
    any_theory = any_theory || any;
  }
  if (any_theory) {
    chart.keys.push_back({"dashed, hollow markers: the mean-field prediction (theory)",
                          Marker::kCircle, true, true, true});
  }
  return line_chart_svg(chart);
}

}  // namespace gradscope
