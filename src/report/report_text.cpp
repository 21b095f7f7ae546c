// The text report put together: the header block, then the sections in order, each from a file of
// its own (report_text_table.cpp, report_text_summary.cpp, report_text_sequence.cpp,
// report_text_diagnosis.cpp), and the fitting and wrapping of text they share. Values beyond
// double's range are printed from their log10.
#include "gradscope/report/report_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gradscope/core/activation.hpp"
#include "gradscope/core/init.hpp"
#include "gradscope/version.hpp"
#include "report/report_text_detail.hpp"
#include "report/text_format.hpp"

namespace gradscope {

namespace report_text_detail {

using namespace text_format;

// Display columns of UTF-8 text: one per code point (run names may hold non-ASCII).
std::size_t display_width(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// Cuts `s` to at most `width` display columns, ending in "..." when cut.
std::string fit(std::string_view s, std::size_t width) {
  if (display_width(s) <= width) return std::string(s);
  if (width < 3) return std::string(width, '.');
  std::string out;
  std::size_t cols = 0;
  for (const char c : s) {
    const bool starts_code_point = (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    if (starts_code_point && ++cols > width - 3) break;
    out += c;
  }
  return out + "...";
}

// A user-supplied name must not carry control characters (an ESC would be an injected colour).
std::string sanitize(std::string_view s) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7F) ? '?' : c;
  }
  return out;
}

// Keeps a table cell within its column whatever the value.
std::string cell(std::string s, int width) { return fit(s, static_cast<std::size_t>(width)); }

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  const std::size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double upper = v[mid];
  if (v.size() % 2 == 1) return upper;
  const double lower = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
  return 0.5 * (lower + upper);
}

void append_line(std::string& out, std::string_view line) {
  out += line;
  out += '\n';
}

// Greedy word wrap into lines of at most `width` display columns. A word longer than a line (a
// JSON value in a --set) is cut across lines rather than let overflow: the JSON report has it
// whole.
std::vector<std::string> wrap(std::string_view text, std::size_t width) {
  std::vector<std::string> lines;
  std::string line;
  std::size_t line_w = 0;
  const auto flush = [&] {
    if (!line.empty()) lines.push_back(line);
    line.clear();
    line_w = 0;
  };
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = std::min(text.find(' ', at), text.size());
    std::string_view word = text.substr(at, end - at);
    at = end + 1;
    std::size_t w = display_width(word);
    while (w > width) {
      // The cut word starts on the current line, so "--set path=" stays with its value.
      if (line_w > 0 && line_w + 1 < width) {
        line += ' ';
        ++line_w;
      } else {
        flush();
      }
      std::size_t cut = 0;
      for (std::size_t cols = line_w; cut < word.size(); ++cut) {
        const bool starts_code_point = (static_cast<unsigned char>(word[cut]) & 0xC0) != 0x80;
        if (starts_code_point && ++cols > width) break;
      }
      line += word.substr(0, cut);
      flush();
      word.remove_prefix(cut);
      w = display_width(word);
    }
    if (w == 0) continue;
    if (line_w > 0 && line_w + 1 + w > width) flush();
    if (line_w > 0) {
      line += ' ';
      ++line_w;
    }
    line += word;
    line_w += w;
  }
  flush();
  return lines;
}

// `text` wrapped within 120 columns: the first line after `first`, the others after `rest` (plain
// indents; `first` no wider than `rest`).
void append_wrapped(std::string& out, std::string_view first, std::string_view rest,
                    std::string_view text) {
  const std::vector<std::string> lines = wrap(sanitize(text), kLineWidth - display_width(rest));
  for (std::size_t i = 0; i < lines.size(); ++i) {
    append_line(out, std::string(i == 0 ? first : rest) + lines[i]);
  }
}

}  // namespace report_text_detail

namespace {

using namespace report_text_detail;
using namespace text_format;

std::string activation_label(const ActivationSpec& spec) {
  const ActivationInfo& info = activation_info(spec.kind);
  if (info.param_name.empty()) return std::string(info.name);
  return fmt::format("{}({}={:g})", info.name, info.param_name, spec.param);
}

// The header's census of op kinds: norms by their name, since which norm matters.
std::string kind_census_name(const LayerReport& l) {
  switch (l.kind) {
    case OpKind::kNorm:
      return std::string(norm_name(l.norm.kind));
    case OpKind::kResidualBegin:
    case OpKind::kResidualEnd:
      return "residual";
    default:
      return std::string(op_kind_name(l.kind));
  }
}

// "dense x49, layer_norm x24, residual x24": each kind's count, in order of first appearance.
std::string kinds_label(const std::vector<LayerReport>& layers) {
  std::vector<std::pair<std::string, int>> counts;
  for (const LayerReport& l : layers) {
    const std::string name = kind_census_name(l);
    const auto it =
        std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == name; });
    if (it == counts.end()) {
      counts.emplace_back(name, 1);
    } else {
      ++it->second;
    }
  }
  std::vector<std::string> parts;
  for (const auto& [name, count] : counts) parts.push_back(fmt::format("{} x{}", name, count));
  return fmt::format("{}", fmt::join(parts, ", "));
}

// Distinct values in order of first appearance, joined by `separator`.
std::string distinct_joined(const std::vector<std::string>& values, std::string_view separator) {
  std::vector<std::string> seen;
  for (const std::string& v : values) {
    if (std::find(seen.begin(), seen.end(), v) == seen.end()) seen.push_back(v);
  }
  return seen.empty() ? "none" : fmt::format("{}", fmt::join(seen, separator));
}

std::string init_label(const InitSpec& init, const BiasInitSpec& bias) {
  std::string out(init_info(init.kind).name);
  std::vector<std::string> params;
  if (init.gain != 1.0) params.push_back(fmt::format("gain={:g}", init.gain));
  switch (init.kind) {
    case Init::kNormal:
      params.push_back(fmt::format("std={:g}", init.std));
      break;
    case Init::kUniform:
      params.push_back(fmt::format("limit={:g}", init.limit));
      break;
    case Init::kHeNormal:
    case Init::kHeUniform:
      if (init.mode == FanMode::kFanOut) params.emplace_back("mode=fan_out");
      break;
    case Init::kVariance:
      params.push_back(fmt::format("weight_var={:g}", init.weight_var));
      break;
    default:
      break;
  }
  if (!params.empty()) out += fmt::format("({})", fmt::join(params, ", "));
  out += fmt::format(", bias {}", bias_init_table()[static_cast<std::size_t>(bias.kind)].name);
  if (bias.kind == BiasInit::kConstant) out += fmt::format("({:g})", bias.value);
  if (bias.kind == BiasInit::kNormal) out += fmt::format("(std={:g})", bias.std);
  return out;
}

// "16 -> 32 (x2) -> 4": the input width, then runs of equal layer widths.
std::string widths_label(const std::vector<LayerReport>& layers) {
  if (layers.empty()) return "no layers";
  std::string out = std::to_string(layers.front().fan_in);
  for (std::size_t i = 0; i < layers.size();) {
    std::size_t j = i;
    while (j < layers.size() && layers[j].width == layers[i].width) ++j;
    out += fmt::format(" -> {}", layers[i].width);
    if (j - i > 1) out += fmt::format(" (x{})", j - i);
    i = j;
  }
  return out;
}

// A "layers" architecture's widths: the runs when they fit, else the input, range and output.
std::string op_widths_label(const std::vector<LayerReport>& layers, std::size_t room) {
  std::string runs = widths_label(layers);
  if (layers.empty() || display_width(runs) <= room) return runs;
  int lo = layers.front().width;
  int hi = lo;
  for (const LayerReport& l : layers) {
    lo = std::min(lo, l.width);
    hi = std::max(hi, l.width);
  }
  return fmt::format("{} -> {}..{} -> {} (input, range over the ops, output)",
                     layers.front().fan_in, lo, hi, layers.back().width);
}

std::string header_block(const Report& r, const Painter& paint) {
  const RunSpec& spec = r.spec;
  std::string out;
  append_line(out, paint(fit(fmt::format("gradscope {} | run: {}", kVersion, sanitize(spec.name)),
                             kLineWidth),
                         kBold));
  const auto row = [&](std::string_view key, const std::string& value) {
    append_line(out, fit(fmt::format("  {:<12}{}", key, value), kLineWidth));
  };
  if (spec.layers.empty()) {
    std::string depth = fmt::format("{} layers", r.layers.size());
    if (spec.output && r.layers.size() == static_cast<std::size_t>(spec.stack.depth) + 1) {
      depth += fmt::format(" ({} stack + 1 output)", spec.stack.depth);
    }
    row("depth", depth);
    row("widths", widths_label(r.layers));
    std::string act = activation_label(spec.stack.layer.activation);
    std::string init = init_label(spec.stack.layer.init, spec.stack.layer.bias);
    if (spec.output) {
      act += "; output " + activation_label(spec.output->activation);
      init += "; output " + init_label(spec.output->init, spec.output->bias);
    }
    row("activation", act);
    row("init", init);
  } else {
    // A "layers" list can be long and irregular: summarise it from the ops actually reported.
    const auto dense = std::count_if(r.layers.begin(), r.layers.end(),
                                     [](const LayerReport& l) { return l.kind == OpKind::kDense; });
    const auto convs = std::count_if(r.layers.begin(), r.layers.end(),
                                     [](const LayerReport& l) { return l.kind == OpKind::kConv; });
    std::string depth =
        fmt::format("{} ops, {} dense layer{}", r.layers.size(), dense, dense == 1 ? "" : "s");
    if (convs > 0) depth += fmt::format(", {} conv layer{}", convs, convs == 1 ? "" : "s");
    row("depth", depth);
    row("widths", op_widths_label(r.layers, kLineWidth - 14));
    row("ops", kinds_label(r.layers));
    std::vector<std::string> acts;
    std::vector<std::string> inits;
    for (const LayerReport& l : r.layers) {
      if (l.kind == OpKind::kDense || l.kind == OpKind::kActivation || l.kind == OpKind::kConv) {
        acts.push_back(activation_label(l.activation));
      }
      if (l.kind == OpKind::kDense || l.kind == OpKind::kConv) {
        inits.push_back(init_label(l.init, l.bias));
      }
    }
    row("activation", distinct_joined(acts, ", "));
    row("init", distinct_joined(inits, "; "));  // an init label holds a comma itself
  }
  // A stack config shows the loss only when it is not the default probe, so its header reads as
  // it always has.
  if (!spec.layers.empty() || spec.loss.kind != LossKind::kProbe ||
      spec.optimizer.kind != OptimizerKind::kNone) {
    std::string loss(loss_name(spec.loss.kind));
    if (spec.optimizer.kind != OptimizerKind::kNone) {
      loss += fmt::format(" | optimizer {} (lr {:g})", optimizer_name(spec.optimizer.kind),
                          spec.optimizer.learning_rate);
    }
    row("loss", loss);
  }
  row("precision", fmt::format("{} | seed {} | batch {}", precision_name(spec.precision), spec.seed,
                               batch_label(spec.input)));
  row("parameters", group_thousands(r.parameters));
  row("memory",
      fmt::format("{} estimated (weights {}, cache {}, work {}, statistics and report {})",
                  format_bytes(r.memory.estimate_bytes()), format_bytes(r.memory.weights_bytes),
                  format_bytes(r.memory.cache_bytes), format_bytes(r.memory.work_bytes),
                  format_bytes(r.memory.report_bytes)));
  const MemoryPlan& plan = r.memory.plan;
  if (plan.weights == WeightStorage::kRegenerated || plan.checkpointed()) {
    std::string text = plan.weights == WeightStorage::kRegenerated ? "weights drawn again" : "";
    if (plan.checkpointed()) {
      text += fmt::format("{}checkpoints every {} ops ({} segments, {} ops computed again)",
                          text.empty() ? "" : ", ", plan.checkpoint_every, plan.segments,
                          group_thousands(plan.recomputed_ops));
    }
    row("memory plan", fmt::format("{}; {} expected at peak", text, format_bytes(plan.peak_bytes)));
  }
  return out;
}

}  // namespace

std::vector<bool> rows_to_show(const Report& report, int max_rows) {
  return select_rows(flag_rows(report.layers, report.summary), max_rows);
}

std::string report_to_text(const Report& report, const TextOptions& options) {
  const Painter paint{options.color};
  std::string out = header_block(report, paint);
  out += '\n';
  // First, what to do; the evidence follows.
  if (report.remedy) out += remedy_block(report, paint) + '\n';
  RowSelection rows;
  rows.flags = flag_rows(report.layers, report.summary);
  rows.keep = select_rows(rows.flags, options.max_rows);
  out += table_block(report, rows, paint);
  const std::string theory = theory_table_block(report, rows, paint);
  if (!theory.empty()) out += '\n' + theory;
  const std::string attention = attention_block(report, options.max_rows, paint);
  if (!attention.empty()) out += '\n' + attention;
  const std::string channels = signal_propagation_block(report, options.max_rows, paint);
  if (!channels.empty()) out += '\n' + channels;
  const std::string parameters = parameters_block(report, options.max_rows, paint);
  if (!parameters.empty()) out += '\n' + parameters;
  out += '\n';
  out += summary_block(report, paint);
  if (report.jacobian) out += jacobian_block(*report.jacobian);
  if (report.criticality) out += criticality_block(*report.criticality);
  // Last, where a terminal leaves it in view: what the measurements above add up to.
  out += '\n';
  out += diagnosis_block(report, paint);
  return out;
}

}  // namespace gradscope
