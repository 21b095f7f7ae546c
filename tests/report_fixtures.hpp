// Hand-built reports shared by the writer tests: every statistic follows consistently from a
// list of per-layer log10 gradient magnitudes, so expected outputs can be reasoned about.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gradscope/report.hpp"

namespace gradscope::testing {

// A layer whose statistics follow from its gradient's log10 and the next layer's, consistently:
// gain = rms(dL/dh^l) / rms(dL/dh^{l+1}).
inline LayerReport make_layer(int index, int width, int fan_in, Activation kind, double log10_grad,
                              double log10_next_grad, int batch) {
  LayerReport l;
  l.index = index;
  l.width = width;
  l.fan_in = fan_in;
  l.activation.kind = kind;
  const std::int64_t entries = static_cast<std::int64_t>(width) * batch;
  l.forward.preact = {0.01 * index,
                      1.0 + 0.1 * index,
                      std::hypot(0.01 * index, 1.0 + 0.1 * index),
                      -3.5,
                      3.25,
                      entries,
                      0};
  const bool relu = kind == Activation::kRelu;
  l.forward.act = {relu ? 0.4 : 0.01 * index,
                   relu ? 0.6 : 1.0,
                   relu ? std::sqrt(0.52) : 1.0,
                   relu ? 0.0 : -3.5,
                   3.25,
                   entries,
                   0};
  l.forward.zero_fraction = relu ? 0.5 : 0.0;
  l.forward.dead_units = relu ? index % 3 : 0;
  l.forward.dead_fraction = static_cast<double>(l.forward.dead_units) / width;
  l.backward.grad_preact_rms = magnitude_from_log10(log10_grad);
  // ||dL/dW||_F over width x fan_in entries and ||dL/db|| over width entries, from the rms.
  l.backward.grad_weight_norm = magnitude_from_log10(log10_grad + 0.5 * std::log10(width * fan_in));
  l.backward.grad_bias_norm = magnitude_from_log10(log10_grad + 0.5 * std::log10(width));
  l.backward.weight_norm = std::sqrt(2.0 * width);
  l.backward.grad_weight_to_weight = magnitude_ratio(
      l.backward.grad_weight_norm, magnitude_from_scaled(l.backward.weight_norm, 0));
  l.backward.gain =
      magnitude_ratio(l.backward.grad_preact_rms, magnitude_from_log10(log10_next_grad));
  return l;
}

// A report over layers with the given log10 gradient rms (input side first) and widths; the
// summary is computed from the layers as the engine would.
inline Report make_report(const std::string& name, const std::vector<double>& log10_grads,
                          const std::vector<int>& widths, double log10_output_grad,
                          bool with_output) {
  Report r;
  r.spec.name = name;
  r.spec.seed = 7;
  r.spec.input.width = 16;
  r.spec.input.batch = 64;
  const int depth = static_cast<int>(log10_grads.size());
  r.spec.stack.depth = with_output ? depth - 1 : depth;
  r.spec.stack.layer.width = widths.front();
  r.spec.stack.layer.activation.kind = Activation::kRelu;
  if (with_output) {
    LayerSpec out;
    out.width = widths.back();
    out.activation.kind = Activation::kLinear;
    out.init.kind = Init::kXavierNormal;
    r.spec.output = out;
  }
  int fan_in = r.spec.input.width;
  for (int i = 0; i < depth; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const bool is_output = with_output && i == depth - 1;
    const double next = i + 1 < depth ? log10_grads[u + 1] : log10_output_grad;
    r.layers.push_back(make_layer(i + 1, widths[u], fan_in,
                                  is_output ? Activation::kLinear : Activation::kRelu,
                                  log10_grads[u], next, r.spec.input.batch));
    r.parameters += static_cast<std::int64_t>(widths[u]) * fan_in + widths[u];
    fan_in = widths[u];
  }
  r.output_grad_rms = magnitude_from_log10(log10_output_grad);
  r.memory.weights_bytes = 4 * r.parameters;
  // Activations and derivatives of every layer in float32.
  for (const int w : widths) r.memory.cache_bytes += 2 * 4 * std::int64_t{w} * r.spec.input.batch;
  r.memory.work_bytes = 4096;
  r.summary.log10_grad_ratio_first_to_last = log10_grads.front() - log10_grads.back();
  r.summary.mean_log10_gain =
      depth > 1 ? r.summary.log10_grad_ratio_first_to_last / (depth - 1) : 0.0;
  for (const LayerReport& l : r.layers) {
    r.summary.dead_units += l.forward.dead_units;
    r.summary.saturated_units += l.forward.saturated_units;
  }
  return r;
}

// All layers of `width`, except an output layer of width 4 when `with_output`.
inline std::vector<int> uniform_widths(std::size_t depth, int width, bool with_output) {
  std::vector<int> widths(depth, width);
  if (with_output && depth > 0) widths.back() = 4;
  return widths;
}

}  // namespace gradscope::testing
