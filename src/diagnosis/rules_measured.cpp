// The measured problems' rules: each reads the report's measurements and its metric, compares
// them with spec.diagnosis's thresholds, and says what it saw in plain words. Why this file is
// long: the sequence findings' rules (tokens, attention, residual streams) sit beside the others,
// so that every measured rule reads the same helpers and says things the same way.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "diagnosis/rules.hpp"
#include "diagnosis/words.hpp"

namespace gradscope::diagnosis_detail {

namespace {

// A healthy unit is inactive for every example of a batch of B with probability about 2^-B:
// below 8 examples "dead for the whole batch" is chance, not a finding.
constexpr int kMinDeadBatch = 8;

// Where the gradient is exactly zero (a layer whose units are all dead cuts it off), it vanishes
// completely: from the highest such layer down. 0 when it does not (or the output's is zero too).
int gradient_cut_off(const RuleContext& c) {
  int zero_from = 0;
  for (std::size_t i = c.r.layers.size(); i-- > 0;) {
    const LayerReport& l = c.r.layers[i];
    // A zero-initialised residual branch (Fixup) passes back exactly 0 by design; the stream
    // around it carries the gradient on.
    if (c.s.is_zero_by_design(l)) continue;
    if (gradient_valid(l) && l.backward.grad_preact_rms.value == 0.0 && std::isinf(grad_log10(l))) {
      zero_from = l.index;
      break;
    }
  }
  return zero_from > 0 && c.r.output_grad_rms.value > 0.0 ? zero_from : 0;
}

Finding gradient_cut_off_finding(const RuleContext& c, int zero_from) {
  Finding f = make(FindingCode::kVanishingGradients, Severity::kError, zero_from);
  int zero_layers = 0;
  for (const LayerReport& l : c.r.layers) {
    zero_layers +=
        gradient_valid(l) && !c.s.is_zero_by_design(l) && l.backward.grad_preact_rms.value == 0.0
            ? 1
            : 0;
  }
  f.evidence.push_back(ev("zero_gradient_layers", zero_layers, ">=", 1.0, zero_from));
  f.explanation =
      "The gradient is exactly zero at " + layer_word(zero_from) +
      (zero_from > 1 ? std::string(" and every layer below it") : std::string()) +
      ": no example passes any gradient back through that point, so " +
      (zero_from > 1 ? std::string("those layers receive") : std::string("it receives")) +
      " nothing to learn from.";
  return f;
}

// The gradient's first-to-last ratio beyond the threshold; `ratio` is the metric, signed back.
Finding gradient_ratio_finding(const RuleContext& c, double ratio, bool vanishing) {
  const bool exploding = !vanishing;
  const LayerReport& last = c.r.layers.back();
  const double last_log10 = grad_log10(last);
  int first_layer = last.index;
  for (std::size_t i = c.r.layers.size(); i-- > 0;) {
    const double rel = grad_log10(c.r.layers[i]) - last_log10 - c.s.pool_share[i];
    if (vanishing ? rel <= -c.d.gradient_warning_decades : rel >= c.d.gradient_warning_decades) {
      first_layer = c.r.layers[i].index;
      break;
    }
  }
  const bool error = std::abs(ratio) >= c.d.gradient_error_decades;
  const FindingCode code =
      vanishing ? FindingCode::kVanishingGradients : FindingCode::kExplodingGradients;
  Finding f = make(code, error ? Severity::kError : Severity::kWarning, first_layer);
  const double threshold = error ? c.d.gradient_error_decades : c.d.gradient_warning_decades;
  f.evidence.push_back(ev("log10_grad_ratio_first_to_last", ratio,
                          vanishing ? "<=" : ">=", vanishing ? -threshold : threshold, 0));
  // Net of pooling's geometric share too, as the ratio is.
  const double pooling_share = c.s.pool_share.front();
  const double gain =
      c.r.summary.mean_log10_gain -
      (c.r.layers.size() > 1 ? pooling_share / static_cast<double>(c.r.layers.size() - 1) : 0.0);
  f.evidence.push_back(context("mean_log10_gain", gain, 0));
  f.evidence.push_back(
      context("log10_grad_rel_last", grad_log10(c.at(first_layer - 1)) - last_log10, first_layer));
  const double pooling = pooling_share;
  if (pooling != 0.0) f.evidence.push_back(context("log10_pooling_share", pooling, 0));
  // In the gain column's unit (the rms of one op's gradient over the next one's), counting ops
  // as the table does, and the dense layers as the config wrote them.
  const int n = static_cast<int>(c.r.layers.size());
  const int dense = static_cast<int>(c.s.dense.size());
  const bool only_dense = dense == n;
  const std::string unit = only_dense ? "layer" : "op";
  const std::string per_step = pow10_text(std::abs(gain));
  const std::string mean_gain = pow10_text(gain);
  f.explanation =
      std::string("The gradient's rms ") + (vanishing ? "shrinks" : "grows") + " about " +
      per_step + "x per " + unit + " on average (a mean gain of " + mean_gain + "): after " +
      std::to_string(n) + " " + unit + "s" +
      (only_dense ? std::string() : " (" + std::to_string(dense) + " dense layers)") +
      " the first layer receives " + pow10_text(ratio) +
      " of the gradient the last one gets (the rms ratio" +
      (pooling != 0.0
           ? " net of the " + pow10_text(pooling) + " that pooling's geometry alone accounts for"
           : std::string()) +
      "; " + layer_word(first_layer) + " is the first " + (vanishing ? "below " : "above ") +
      pow10_text(vanishing ? -c.d.gradient_warning_decades : c.d.gradient_warning_decades) +
      "), so " +
      (vanishing ? "the layers near the input barely learn while the last ones do."
                 : "one learning rate cannot suit both ends: the first layers take steps far "
                   "too large.");
  // How sure: mean-field theory's prediction for the same architecture, when it has one.
  const LayerTheory& t = c.r.layers.front().theory;
  if (t.backward && std::isfinite(t.log10_grad_rel_last)) {
    f.evidence.push_back(context("predicted_log10_grad_ratio", t.log10_grad_rel_last, 0));
    const double spread = std::max(1.0, 3.0 * t.log10_grad_spread);
    if (std::abs(ratio - t.log10_grad_rel_last) <= spread) {
      f.explanation += " Mean-field theory predicts " + pow10_text(t.log10_grad_rel_last) +
                       " for this architecture, so this is the design, not an unlucky seed.";
    } else {
      f.explanation += " Mean-field theory predicts " + pow10_text(t.log10_grad_rel_last) +
                       ": the gap says finite width or the batch shape this run.";
    }
  }
  if (exploding && c.s.has_batch_norm) {
    f.explanation +=
        " Batch norm in training mode couples the examples of a batch, and in a deep stack "
        "without skip connections that coupling makes the gradient grow toward the input "
        "(Yang et al. 2019, A mean field theory of batch normalization).";
  }
  return f;
}

// Each layer's output rms against the input's (log10), over the layers with finite values.
struct ActivationScan {
  int first_low = 0, first_high = 0, worst_low = 0, worst_high = 0, first_zero = 0;
  double low = kInf, high = -kInf;
};

ActivationScan scan_activations(const RuleContext& c) {
  ActivationScan a;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) break;
    if (c.s.is_zero_by_design(l)) continue;  // a zero-initialised branch's zeros (Fixup)
    const double v = act_log10_rel_input(l, c.s);
    if (std::isnan(v)) continue;
    if (v < a.low) {
      a.low = v;
      a.worst_low = l.index;
    }
    if (v > a.high) {
      a.high = v;
      a.worst_high = l.index;
    }
    if (a.first_low == 0 && v <= -c.d.activation_warning_decades) a.first_low = l.index;
    if (a.first_high == 0 && v >= c.d.activation_warning_decades) a.first_high = l.index;
    if (a.first_zero == 0 && std::isinf(v) && v < 0) a.first_zero = l.index;
  }
  return a;
}

// The gradient's rms below a half-precision format's smallest normal number, at its lowest
// layer, and whether one loss scale could lift every layer into the format.
Finding underflow(const RuleContext& c, FindingCode code, const char* format, double min_normal,
                  double max_value) {
  const GradientRange g = gradient_range(c);
  const double lowest = g.lowest, highest = g.highest;
  const int lowest_layer = g.lowest_layer;
  int first = 0;
  for (std::size_t i = c.r.layers.size(); i-- > 0;) {
    const LayerReport& l = c.r.layers[i];
    if (gradient_valid(l) && grad_log10(l) + c.s.grad_scale_log10 < min_normal) {
      first = l.index;
      break;
    }
  }
  const double span = highest - lowest;
  // A loss scale moves every layer by the same factor; with a decade of margin on each side
  // for the entries spread around their rms, this much of the format is left for the span.
  const double room = max_value - min_normal - 2.0 * kLossScaleMarginDecades;
  const bool rescuable = span <= room;
  Finding f = make(code, rescuable ? Severity::kInfo : Severity::kWarning, first);
  f.evidence.push_back(ev("log10_grad_rms_scaled", lowest, "<", min_normal, lowest_layer));
  f.evidence.push_back(context("log10_grad_span", span, 0));
  f.evidence.push_back(context("log10_grad_scale", c.s.grad_scale_log10, 0));
  std::string scale_words;
  if (rescuable) {
    // The smallest power of two that lifts the lowest layer a margin above the smallest normal.
    const double need = (min_normal + kLossScaleMarginDecades - lowest) / std::log10(2.0);
    const int k = static_cast<int>(std::ceil(need));
    f.evidence.push_back(context("loss_scale_log2", k, 0));
    scale_words = "; a loss scale of 2^" + std::to_string(k) +
                  " (what a dynamic loss scaler would settle near) keeps every layer in range, "
                  "since the gradients span " +
                  fmt_num(span, 3) + " decades";
  } else {
    scale_words = "; no single loss scale can rescue it: the gradients span " + fmt_num(span, 3) +
                  " decades, more than the " + fmt_num(room, 3) + " a loss scale can fit in " +
                  format + " (its " + fmt_num(max_value - min_normal, 3) +
                  " decades from smallest normal to largest value, less a decade of margin at "
                  "each end)";
  }
  f.explanation =
      "From " + layer_word(first) + " down, the gradient's rms (" + pow10_text(lowest) + " at " +
      layer_word(lowest_layer) +
      (c.r.spec.loss.kind == LossKind::kProbe ? ", at the scale of a loss averaged over the batch"
                                              : "") +
      ") is below " + format + "'s smallest normal number " + pow10_text(min_normal) +
      ", so mixed-precision training would flush most of it to zero" + scale_words + ".";
  return f;
}

}  // namespace

RuleResult vanishing_gradients(const RuleContext& c, const ProblemMetric& m) {
  if (c.r.layers.size() < 2) return std::nullopt;
  if (const int zero_from = gradient_cut_off(c)) return gradient_cut_off_finding(c, zero_from);
  // The metric: decades of shrink, infinite where a gradient is undefined (no finding then).
  if (!(std::isfinite(m.value) && m.value >= m.threshold)) return std::nullopt;
  return gradient_ratio_finding(c, -m.value, true);
}

RuleResult exploding_gradients(const RuleContext& c, const ProblemMetric& m) {
  if (c.r.layers.size() < 2 || gradient_cut_off(c) != 0) return std::nullopt;
  if (!(std::isfinite(m.value) && m.value >= m.threshold)) return std::nullopt;
  return gradient_ratio_finding(c, m.value, false);
}

RuleResult collapsing_activations(const RuleContext& c, const ProblemMetric& m) {
  // The metric is the largest fall below the input (decades): the rule's own measure.
  if (!(m.value >= m.threshold)) return std::nullopt;
  const ActivationScan a = scan_activations(c);
  const double low = -m.value;
  const bool error = low <= -c.d.activation_error_decades;
  Finding f = make(FindingCode::kCollapsingActivations,
                   error ? Severity::kError : Severity::kWarning, a.first_low);
  f.evidence.push_back(ev(
      "log10_act_rms_rel_input", low,
      "<=", -(error ? c.d.activation_error_decades : c.d.activation_warning_decades), a.worst_low));
  f.evidence.push_back(context("input_rms", c.s.input_rms, 0));
  if (a.first_zero != 0) {
    f.explanation = "The activations are exactly zero from " + layer_word(a.first_zero) +
                    " on (every unit outputs 0 for every example" +
                    (a.first_low < a.first_zero
                         ? ", after falling below " + pow10_text(-c.d.activation_warning_decades) +
                               " of the input's rms at " + layer_word(a.first_low)
                         : std::string()) +
                    "): nothing of the input reaches the layers past it.";
  } else {
    f.explanation = "The activations' rms falls from " + fmt_num(c.s.input_rms) +
                    " at the input to " + pow10_text(low + std::log10(c.s.input_rms)) + " at " +
                    layer_word(a.worst_low) + " (first below " +
                    pow10_text(-c.d.activation_warning_decades) + " of the input at " +
                    layer_word(a.first_low) +
                    "): each layer passes on less signal than it receives, so the deep "
                    "layers see almost nothing of the input.";
  }
  return f;
}

RuleResult exploding_activations(const RuleContext& c, const ProblemMetric&) {
  // Not the metric, which counts an overflow as the furthest an explosion goes: the finding is
  // the rise the finite layers show before it (the overflow is non_finite's).
  const ActivationScan a = scan_activations(c);
  if (a.first_high == 0) return std::nullopt;
  const double high = a.high;
  const bool error = high >= c.d.activation_error_decades;
  Finding f = make(FindingCode::kExplodingActivations,
                   error ? Severity::kError : Severity::kWarning, a.first_high);
  f.evidence.push_back(ev(
      "log10_act_rms_rel_input", high,
      ">=", error ? c.d.activation_error_decades : c.d.activation_warning_decades, a.worst_high));
  f.evidence.push_back(context("input_rms", c.s.input_rms, 0));
  // The growth per layer, from the input to the worst layer.
  const double per_layer = high / static_cast<double>(std::max(1, a.worst_high));
  f.evidence.push_back(context("log10_act_growth_per_layer", per_layer, 0));
  f.explanation = "The activations' rms grows from " + fmt_num(c.s.input_rms) +
                  " at the input to " + pow10_text(high + std::log10(c.s.input_rms)) + " at " +
                  layer_word(a.worst_high) + ", about " + pow10_text(per_layer) +
                  "x per layer (first above " + pow10_text(c.d.activation_warning_decades) +
                  " of the input at " + layer_word(a.first_high) + ")";
  const Summary& sm = c.r.summary;
  if (sm.nonfinite_in_forward && sm.first_nonfinite_layer == a.worst_high + 1) {
    f.explanation += ", and overflows " + std::string(format_word(c.r.spec.precision)) + " at " +
                     layer_word(sm.first_nonfinite_layer) +
                     ": past it every value and every gradient is infinite or NaN.";
  } else {
    f.explanation +=
        ": each layer amplifies the signal, so the outputs and the gradients grow out of "
        "proportion and can overflow.";
  }
  return f;
}

RuleResult non_finite(const RuleContext& c, const ProblemMetric& m) {
  // The metric counts the layers with a non-finite value; the finding is where they begin.
  const Summary& sm = c.r.summary;
  if (sm.first_nonfinite_layer == 0) return std::nullopt;
  const int k = sm.first_nonfinite_layer;
  const LayerReport& l = c.at(k - 1);
  const std::string format = format_word(c.r.spec.precision);
  Finding f = make(FindingCode::kNonFinite, Severity::kError, k);
  if (sm.nonfinite_in_forward) {
    const std::int64_t entries = static_cast<std::int64_t>(l.width) * input_columns(c.r.spec.input);
    f.evidence.push_back(
        ev("nonfinite_output_entries", static_cast<double>(l.forward.act.nonfinite), ">=", 1.0, k));
    f.evidence.push_back(context("nonfinite_layers", m.value, 0));
    // The largest finite value on the way in: near the format's limit, this is an overflow.
    double before = kNaN;
    if (k > 1) {
      const double largest = max_abs_act(c.at(k - 2));
      if (std::isfinite(largest) && largest > 0) before = std::log10(largest);
    }
    const bool overflow =
        std::isfinite(before) && before >= format_max_log10(c.r.spec.precision) - 4.0;
    if (std::isfinite(before)) {
      f.evidence.push_back(context("log10_max_abs_before", before, k - 1));
    }
    f.explanation =
        "Layer " + std::to_string(k) + "'s forward values " +
        (overflow ? "overflow " + format + " (" : "hold NaN or infinity (") +
        std::to_string(l.forward.act.nonfinite) + " of its " + std::to_string(entries) +
        " entries" +
        (overflow ? ", after values reached " + pow10_text(before) + " at " + layer_word(k - 1) +
                        ", within " + fmt_num(format_max_log10(c.r.spec.precision) - before, 2) +
                        " decades of " + format + "'s largest number"
                  : std::string()) +
        "): every later layer's values and every layer's gradient are computed from them, so " +
        std::to_string(sm.nonfinite_layers.size()) + " layers hold NaN or infinity, nothing past " +
        layer_word(k) + " can be measured, and training would fail at the first step.";
  } else {
    f.evidence.push_back(
        ev("nonfinite_gradient_entries", static_cast<double>(l.backward.nonfinite), ">=", 1.0, k));
    f.evidence.push_back(context("nonfinite_layers", m.value, 0));
    f.explanation = "Every forward value is finite, but the backward pass turns non-finite at " +
                    layer_word(k) + " (" + std::to_string(l.backward.nonfinite) +
                    " entries of its gradient are NaN or infinite): the gradients of it and of "
                    "every layer below are undefined, so training would fail at the first "
                    "step.";
  }
  return f;
}

RuleResult dead_units(const RuleContext& c, const ProblemMetric& m) {
  if (c.r.spec.input.batch < kMinDeadBatch) return std::nullopt;
  if (!(m.value >= m.threshold)) return std::nullopt;  // then the scan finds where
  int first = 0, worst = 0;
  double most = -1.0;
  std::int64_t total = 0;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) break;
    if (!(l.kind == OpKind::kDense || l.kind == OpKind::kActivation)) continue;
    if (is_bounded(l.activation.kind)) continue;  // saturation, not death
    if (c.s.is_zero_by_design(l)) continue;       // a zero-initialised branch's zeros (Fixup)
    total += l.forward.dead_units;
    if (l.forward.dead_fraction > most) {
      most = l.forward.dead_fraction;
      worst = l.index;
    }
    if (first == 0 && l.forward.dead_fraction >= c.d.dead_fraction) first = l.index;
  }
  const LayerReport& w = c.at(worst - 1);
  const bool error = most >= 1.0;
  Finding f = make(FindingCode::kDeadUnits, error ? Severity::kError : Severity::kWarning, first);
  f.evidence.push_back(ev("dead_fraction", most, ">=", error ? 1.0 : c.d.dead_fraction, worst));
  f.evidence.push_back(context("dead_units", static_cast<double>(w.forward.dead_units), worst));
  f.evidence.push_back(context("dead_units_total", static_cast<double>(total), 0));
  const double cosine = w.forward.correlation;
  if (std::isfinite(cosine)) f.evidence.push_back(context("correlation", cosine, worst));
  f.explanation = std::to_string(w.forward.dead_units) + " of the " + std::to_string(w.width) +
                  " units of " + layer_word(worst) + " (" + percent(most) +
                  ") output zero for every example of the batch (first " +
                  percent(c.d.dead_fraction) + " or more at " + layer_word(first) + "), so " +
                  (error ? "no gradient passes that layer at all"
                         : "they pass no gradient and do not learn from it");
  if (!error && std::isfinite(cosine)) {
    f.explanation +=
        "; the share grows with depth as the examples' representations grow alike "
        "(mean cosine " +
        fmt_num(cosine) + " there).";
  } else {
    f.explanation += ".";
  }
  return f;
}

RuleResult saturated_units(const RuleContext& c, const ProblemMetric& m) {
  if (!(m.value >= m.threshold)) return std::nullopt;  // then the scan finds where
  int first = 0, worst = 0;
  double most = -1.0;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) break;
    if (!(l.kind == OpKind::kDense || l.kind == OpKind::kActivation)) continue;
    if (!is_bounded(l.activation.kind)) continue;
    if (l.forward.saturated_fraction > most) {
      most = l.forward.saturated_fraction;
      worst = l.index;
    }
    if (first == 0 && l.forward.saturated_fraction >= c.d.saturated_fraction) first = l.index;
  }
  const LayerReport& w = c.at(worst - 1);
  Finding f = make(FindingCode::kSaturatedUnits, Severity::kWarning, first);
  f.evidence.push_back(ev("saturated_fraction", most, ">=", c.d.saturated_fraction, worst));
  f.evidence.push_back(
      context("saturated_units", static_cast<double>(w.forward.saturated_units), worst));
  f.explanation = percent(most) + " of " + layer_word(worst) + "'s " +
                  std::string(activation_info(w.activation.kind).name) +
                  " entries sit on its flat tails (slope below " +
                  percent(c.r.spec.stats.saturation_threshold) +
                  " of its largest), where almost no gradient passes, and " +
                  std::to_string(w.forward.saturated_units) +
                  " units are saturated for the whole batch.";
  return f;
}

RuleResult correlation_collapse(const RuleContext& c, const ProblemMetric& m) {
  // The input already one direction: the network did not collapse it.
  if (c.s.input_correlation >= c.d.correlation) return std::nullopt;
  if (!(m.value >= m.threshold)) return std::nullopt;  // then the scan finds where
  int first = 0, worst = 0;
  double most = -kInf;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) break;
    const double cosine = l.forward.correlation;
    if (!std::isfinite(cosine)) continue;
    if (cosine > most) {
      most = cosine;
      worst = l.index;
    }
    if (first == 0 && cosine >= c.d.correlation) first = l.index;
  }
  Finding f = make(FindingCode::kCorrelationCollapse, Severity::kWarning, first);
  f.evidence.push_back(ev("correlation", most, ">=", c.d.correlation, worst));
  f.evidence.push_back(context("input_correlation", c.s.input_correlation, 0));
  f.explanation = "From " + layer_word(first) +
                  " on, different examples' outputs point in nearly the same direction (mean "
                  "cosine " +
                  fmt_num(most, 4) + " at " + layer_word(worst) + ", against " +
                  fmt_num(c.s.input_correlation, 2) +
                  " for the inputs): the network maps its inputs toward one point, so what "
                  "tells them apart is a shrinking sliver of each representation.";
  return f;
}

RuleResult fp16_activation_overflow(const RuleContext& c, const ProblemMetric&) {
  // Not the metric, which counts a non-finite layer as the largest value: the finding is about
  // the finite values before it. The largest |value| of any layer.
  int first = 0, worst = 0;
  double largest = -kInf;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) break;
    const double v = max_abs_act(l);
    if (!std::isfinite(v) || v <= 0) continue;
    const double lg = std::log10(v);
    if (lg > largest) {
      largest = lg;
      worst = l.index;
    }
    if (first == 0 && lg >= kFp16MaxLog10) first = l.index;
  }
  if (first == 0) return std::nullopt;
  Finding f = make(FindingCode::kFp16ActivationOverflow, Severity::kWarning, first);
  f.evidence.push_back(ev("log10_max_abs_activation", largest, ">=", kFp16MaxLog10, worst));
  f.explanation = "From " + layer_word(first) +
                  " on, values exceed 65504, the largest float16 number (up to " +
                  pow10_text(largest) + " at " + layer_word(worst) +
                  "): in mixed-precision training they would overflow to infinity, and a "
                  "loss scale cannot help, since it scales only the gradients.";
  return f;
}

// The metric is the decades below the smallest normal: any at all is the finding.
RuleResult fp16_gradient_underflow(const RuleContext& c, const ProblemMetric& m) {
  if (!(m.value > m.threshold)) return std::nullopt;
  return underflow(c, FindingCode::kFp16GradientUnderflow, "float16", kFp16MinNormalLog10,
                   kFp16MaxLog10);
}

RuleResult bf16_gradient_underflow(const RuleContext& c, const ProblemMetric& m) {
  if (!(m.value > m.threshold)) return std::nullopt;
  return underflow(c, FindingCode::kBf16GradientUnderflow, "bfloat16", kBf16MinNormalLog10,
                   kBf16MaxLog10);
}

RuleResult update_ratio(const RuleContext& c, const ProblemMetric& m) {
  if (c.r.spec.optimizer.kind == OptimizerKind::kNone) return std::nullopt;
  if (!(m.value >= m.threshold)) return std::nullopt;  // the metric is the scan's excess
  const UpdateScan u = update_scan(c.r);
  if (u.layer == 0) return std::nullopt;
  Finding f = make(FindingCode::kUpdateRatio, Severity::kWarning, u.layer);
  if (u.too_large) {
    f.evidence.push_back(ev("log10_update_to_weight", u.log10_max,
                            ">=", std::log10(c.d.update_ratio_max), u.layer_max));
    f.explanation = "The first " + std::string(optimizer_name(c.r.spec.optimizer.kind)) +
                    " step would change " + layer_word(u.layer_max) + "'s weights by " +
                    percent(std::pow(10.0, u.log10_max)) + " of their size (learning rate " +
                    fmt_num(c.r.spec.optimizer.learning_rate) +
                    "): steps that large tend to make training diverge.";
  } else {
    f.evidence.push_back(ev("log10_update_to_weight", u.log10_min,
                            "<=", std::log10(c.d.update_ratio_min), u.layer_min));
    f.explanation = "The first " + std::string(optimizer_name(c.r.spec.optimizer.kind)) +
                    " step would change " + layer_word(u.layer_min) + "'s weights by only " +
                    pow10_text(u.log10_min) + " of their size (learning rate " +
                    fmt_num(c.r.spec.optimizer.learning_rate) +
                    "): that layer would effectively not train.";
  }
  f.evidence.push_back(context("log10_update_to_weight_max", u.log10_max, u.layer_max));
  f.evidence.push_back(context("log10_update_to_weight_min", u.log10_min, u.layer_min));
  return f;
}

// ---- Sequences: tokens, attention, residual streams

namespace {

// The first layer from which every later (valid) layer with token statistics is at or above the
// threshold: where the collapse sets in for good.
int persistent_from(const RuleContext& c, double threshold) {
  int from = 0;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) break;
    if (!l.forward.has_tokens || !std::isfinite(l.forward.token_mean_cosine)) continue;
    if (l.forward.token_mean_cosine >= threshold) {
      if (from == 0) from = l.index;
    } else {
      from = 0;
    }
  }
  return from;
}

// Each attention op's mean entropy as a fraction of the uniform rows'.
struct EntropyScan {
  int ops = 0;
  double lowest = kInf, highest = -kInf;
  int lowest_layer = 0, highest_layer = 0;
  int first_low = 0;  // the first at or below the collapse threshold
};

EntropyScan scan_entropy(const RuleContext& c) {
  EntropyScan e;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) break;
    if (!l.forward.has_attention) continue;
    const double u = uniform_attention_entropy(c.r.spec.input.tokens, l.attention.causal);
    const double f = l.forward.attention_entropy / u;
    if (!(u > 0) || !std::isfinite(f)) continue;
    ++e.ops;
    if (f < e.lowest) {
      e.lowest = f;
      e.lowest_layer = l.index;
    }
    if (f > e.highest) {
      e.highest = f;
      e.highest_layer = l.index;
    }
    if (e.first_low == 0 && f <= c.d.attention_entropy_fraction) e.first_low = l.index;
  }
  return e;
}

// The residual sites of one placement, in order (at least two, else none), in a network with
// attention: the thresholds are set on transformers, and the deep residual MLPs the diagnosis
// itself advises grow their streams further and measure healthy.
std::vector<ResidualSite> sites_where(const RuleContext& c, bool post_norm) {
  std::vector<ResidualSite> out;
  const bool attention =
      std::any_of(c.r.layers.begin(), c.r.layers.end(),
                  [](const LayerReport& l) { return l.kind == OpKind::kAttention; });
  if (!attention) return out;
  for (const ResidualSite& s : residual_sites(c.r)) {
    if (post_norm ? s.post_norm : s.pre_norm && !s.post_norm) out.push_back(s);
  }
  if (out.size() < 2) out.clear();
  return out;
}

}  // namespace

ProblemMetric token_cosine_metric(const RuleContext& c) {
  double last = -1.0;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) break;
    if (l.forward.has_tokens && std::isfinite(l.forward.token_mean_cosine)) {
      last = l.forward.token_mean_cosine;
    }
  }
  return {last, c.d.token_cosine};
}

ProblemMetric entropy_collapse_metric(const RuleContext& c) {
  const EntropyScan e = scan_entropy(c);
  return {e.ops > 0 ? 1.0 - e.lowest : -kInf, 1.0 - c.d.attention_entropy_fraction};
}

ProblemMetric entropy_uniform_metric(const RuleContext& c) {
  const EntropyScan e = scan_entropy(c);
  return {e.ops > 0 ? e.lowest : -kInf, c.d.attention_uniform_fraction};
}

ProblemMetric max_logit_metric(const RuleContext& c) {
  double largest = -kInf;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) break;
    if (l.forward.has_attention && std::isfinite(l.forward.attention_max_logit)) {
      largest = std::max(largest, l.forward.attention_max_logit);
    }
  }
  return {largest, c.d.attention_max_logit};
}

ProblemMetric postnorm_metric(const RuleContext& c) {
  const std::vector<ResidualSite> sites = sites_where(c, true);
  if (sites.empty()) return {-kInf, c.d.postnorm_gradient_ratio};
  const LayerReport& first = c.at(sites.front().layer - 1);
  const LayerReport& last = c.at(sites.back().layer - 1);
  if (!gradient_valid(first) || !gradient_valid(last)) return {-kInf, c.d.postnorm_gradient_ratio};
  const double log10_ratio = grad_log10(last) - grad_log10(first);
  return {std::isfinite(log10_ratio) ? std::pow(10.0, log10_ratio) : -kInf,
          c.d.postnorm_gradient_ratio};
}

ProblemMetric residual_growth_metric(const RuleContext& c) {
  const std::vector<ResidualSite> sites = sites_where(c, false);
  if (sites.empty()) return {-kInf, c.d.residual_growth};
  const LayerReport& first = c.at(sites.front().layer - 1);
  const LayerReport& last = c.at(sites.back().layer - 1);
  if (!forward_valid(c.r, last)) return {-kInf, c.d.residual_growth};
  const double ratio = last.forward.act.rms / first.forward.act.rms;
  return {std::isfinite(ratio) ? ratio : -kInf, c.d.residual_growth};
}

// J(last) / J(first) of a residual network whose partial Jacobian norm is exponential in depth
// and grows; -inf otherwise (not measured, a plain network, a power law, or a shrinking one).
ProblemMetric apjn_growth_metric(const RuleContext& c) {
  const double threshold = c.d.partial_jacobian_growth;
  if (!c.r.criticality || !c.r.criticality->measured() || !c.s.has_residual) {
    return {-kInf, threshold};
  }
  const CriticalityStats& k = *c.r.criticality;
  if (k.fit != ApjnFit::kExponential || !(k.exponential_rate > 0.0)) return {-kInf, threshold};
  const double growth = std::pow(10.0, k.growth.log10);
  return {std::isnan(growth) ? -kInf : growth, threshold};
}

RuleResult rank_collapse(const RuleContext& c, const ProblemMetric& m) {
  if (c.r.spec.input.tokens < 2) return std::nullopt;
  // Tokens drawn alike (a large input mean): the network did not collapse them.
  if (c.s.input_correlation >= c.d.token_cosine) return std::nullopt;
  if (!(m.value >= m.threshold)) return std::nullopt;
  const int from = persistent_from(c, c.d.token_cosine);
  int last = 0;
  for (const LayerReport& l : c.r.layers) {
    if (forward_valid(c.r, l) && l.forward.has_tokens) last = l.index;
  }
  Finding f = make(FindingCode::kRankCollapse, Severity::kWarning, from > 0 ? from : last);
  f.evidence.push_back(ev("token_mean_cosine", m.value, ">=", c.d.token_cosine, last));
  f.evidence.push_back(context("input_token_cosine", c.s.input_correlation, 0));
  f.explanation =
      "From " + layer_word(from > 0 ? from : last) +
      " on, the tokens of each example point in nearly the same direction (mean cosine " +
      fmt_num(m.value, 4) + " between an example's tokens at " + layer_word(last) + ", against " +
      fmt_num(c.s.input_correlation, 2) +
      " for the input's): the network maps every position of a sequence to nearly one vector, "
      "so the output, and the gradient back to each token, no longer tells the tokens apart "
      "(rank collapse; Dong et al. 2021).";
  return f;
}

RuleResult attention_entropy_collapse(const RuleContext& c, const ProblemMetric& m) {
  if (!(m.value >= m.threshold)) return std::nullopt;
  const EntropyScan e = scan_entropy(c);
  const LayerReport& w = c.at(e.lowest_layer - 1);
  const int tokens = c.r.spec.input.tokens;
  const double uniform = uniform_attention_entropy(tokens, w.attention.causal);
  Finding f = make(FindingCode::kAttentionEntropyCollapse, Severity::kWarning, e.first_low);
  f.evidence.push_back(ev("attention_entropy_fraction", e.lowest,
                          "<=", c.d.attention_entropy_fraction, e.lowest_layer));
  f.evidence.push_back(context("attention_entropy", w.forward.attention_entropy, e.lowest_layer));
  f.evidence.push_back(context("uniform_attention_entropy", uniform, e.lowest_layer));
  f.evidence.push_back(
      context("attention_peaked_fraction", w.forward.attention_peaked_fraction, e.lowest_layer));
  f.explanation =
      "The attention rows of " + layer_word(e.lowest_layer) + " have a mean entropy of " +
      fmt_num(w.forward.attention_entropy) + " nats, " + percent(e.lowest) + " of the " +
      fmt_num(uniform) + " of uniform weights (first at or below " +
      percent(c.d.attention_entropy_fraction) + " at " + layer_word(e.first_low) +
      "): a row attends to about " + fmt_num(std::exp(w.forward.attention_entropy), 2) +
      " of up to " + std::to_string(tokens) + " keys (" +
      percent(w.forward.attention_peaked_fraction) +
      " of the rows put over 99% on one), and a softmax that close to one-hot passes almost no "
      "gradient to the queries and keys.";
  return f;
}

RuleResult attention_uniform(const RuleContext& c, const ProblemMetric& m) {
  const EntropyScan e = scan_entropy(c);
  // One op may be uniform by chance of its init; every op of a stack is the pattern.
  if (e.ops < 2 || !(m.value >= m.threshold)) return std::nullopt;
  Finding f = make(FindingCode::kAttentionUniform, Severity::kInfo, 0);
  f.evidence.push_back(ev("attention_entropy_fraction", e.lowest,
                          ">=", c.d.attention_uniform_fraction, e.lowest_layer));
  f.evidence.push_back(context("attention_ops", e.ops, 0));
  f.explanation =
      "All " + std::to_string(e.ops) +
      " attention ops weigh their keys almost uniformly (the lowest mean entropy, at " +
      layer_word(e.lowest_layer) + ", is " + percent(e.lowest) +
      " of the uniform rows'): each output is close to the mean of the values its query may "
      "see, so attention averages the tokens rather than selecting among them; small query and "
      "key weights give this at init, and it is harmless while the skip connections keep the "
      "tokens apart.";
  return f;
}

RuleResult exploding_attention_logits(const RuleContext& c, const ProblemMetric& m) {
  if (!(m.value >= m.threshold)) return std::nullopt;
  int first = 0, worst = 0;
  for (const LayerReport& l : c.r.layers) {
    if (!forward_valid(c.r, l)) break;
    if (!l.forward.has_attention) continue;
    if (first == 0 && l.forward.attention_max_logit >= m.threshold) first = l.index;
    if (l.forward.attention_max_logit == m.value) worst = l.index;
  }
  Finding f = make(FindingCode::kExplodingAttentionLogits, Severity::kWarning, first);
  f.evidence.push_back(ev("attention_max_logit", m.value, ">=", m.threshold, worst));
  const LayerReport& w = c.at(worst - 1);
  f.evidence.push_back(context("attention_entropy", w.forward.attention_entropy, worst));
  f.explanation =
      "The largest scaled query-key logit reaches " + fmt_num(m.value) + " at " +
      layer_word(worst) + " (first at or above " + fmt_num(m.threshold) + " at " +
      layer_word(first) + "): a key whose logit trails the row's best by half that gets " +
      pow10_text(-0.5 * m.value / std::log(10.0)) +
      " of its weight, so the softmax saturates to one-hot and the gradient through it "
      "vanishes; in float16, exp of a logit past 11.1 overflows unless the row's largest is "
      "subtracted first.";
  return f;
}

RuleResult postnorm_gradient_imbalance(const RuleContext& c, const ProblemMetric& m) {
  if (!(std::isfinite(m.value) && m.value >= m.threshold)) return std::nullopt;
  const std::vector<ResidualSite> sites = sites_where(c, true);
  const LayerReport& first = c.at(sites.front().layer - 1);
  const LayerReport& last = c.at(sites.back().layer - 1);
  Finding f = make(FindingCode::kPostnormGradientImbalance, Severity::kWarning, last.index);
  f.evidence.push_back(
      ev("branch_grad_ratio_last_to_first", m.value, ">=", m.threshold, last.index));
  f.evidence.push_back(context("log10_branch_grad_first", grad_log10(first), first.index));
  f.evidence.push_back(context("log10_branch_grad_last", grad_log10(last), last.index));
  f.explanation =
      "In this post-norm residual stack the gradient reaching the last residual branch (" +
      layer_word(last.index) + ") is " + fmt_num(m.value, 3) + " times the first one's (" +
      layer_word(first.index) +
      "): the norm after each sum rescales the gradient that passes back through it, so the "
      "blocks near the output take the largest steps, which is why post-norm transformers need a "
      "learning-rate warm-up (Xiong et al. 2020).";
  return f;
}

RuleResult residual_stream_growth(const RuleContext& c, const ProblemMetric& m) {
  if (!(std::isfinite(m.value) && m.value >= m.threshold)) return std::nullopt;
  const std::vector<ResidualSite> sites = sites_where(c, false);
  const LayerReport& first = c.at(sites.front().layer - 1);
  const LayerReport& last = c.at(sites.back().layer - 1);
  Finding f = make(FindingCode::kResidualStreamGrowth, Severity::kWarning, last.index);
  f.evidence.push_back(
      ev("stream_rms_ratio_last_to_first", m.value, ">=", m.threshold, last.index));
  f.evidence.push_back(context("stream_rms_first", first.forward.act.rms, first.index));
  f.evidence.push_back(context("stream_rms_last", last.forward.act.rms, last.index));
  f.evidence.push_back(context("residuals", static_cast<double>(sites.size()), 0));
  f.explanation =
      "The residual stream's rms grows from " + fmt_num(first.forward.act.rms) +
      " after the "
      "first residual (" +
      layer_word(first.index) + ") to " + fmt_num(last.forward.act.rms) + " after the last (" +
      layer_word(last.index) + "), " + fmt_num(m.value, 3) + " times: each of the " +
      std::to_string(sites.size()) +
      " branches adds its output to the stream, so its variance grows about linearly with depth, "
      "while each pre-norm branch sees the stream normalised: the blocks near the output change "
      "it by an ever smaller fraction and act almost like identities.";
  return f;
}

RuleResult exploding_partial_jacobian(const RuleContext& c, const ProblemMetric& m) {
  if (!(m.value >= m.threshold)) return std::nullopt;
  const CriticalityStats& k = *c.r.criticality;
  int first = 0, last = 0;  // the fitted layers' first and last
  for (std::size_t i = 0; i < k.layers.size(); ++i) {
    if (!k.fitted.empty() && (i >= k.fitted.size() || !k.fitted[i])) continue;
    if (first == 0) first = k.layers[i];
    last = k.layers[i];
  }
  Finding f = make(FindingCode::kExplodingPartialJacobian, Severity::kWarning, 0);
  f.evidence.push_back(ev("apjn_growth", m.value, ">=", m.threshold, last));
  f.evidence.push_back(context("apjn_exponential_rate", k.exponential_rate, 0));
  f.evidence.push_back(context("apjn_power_exponent", k.power_exponent, 0));
  f.explanation =
      "The averaged partial Jacobian norm, how much a small change of the input is amplified, "
      "grows exponentially with depth (by " +
      fmt_num(std::exp(k.exponential_rate), 3) + "x per layer, " + pow10_text(k.growth.log10) +
      " from " + layer_word(first) + " to " + layer_word(last) +
      ", which an exponential fits better than a power law): each residual block multiplies it "
      "by 1 plus its branch's gain, so the network is chaotic at init, its gradients grow with "
      "depth and its outputs swing with tiny input changes (Doshi, He & Gromov 2023).";
  return f;
}

}  // namespace gradscope::diagnosis_detail
