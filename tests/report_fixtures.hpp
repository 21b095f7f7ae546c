// Hand-built reports shared by the writer tests: every statistic follows consistently from a
// list of per-layer log10 gradient magnitudes, so expected outputs can be reasoned about. Dense
// stacks (make_report) and one architecture with an op of every reported kind (mixed_report);
// mean-field predictions are placed beside the measurements by attach_theory, and a diagnosis
// (findings with checked and rejected advice) by attach_findings.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gradscope/core/report.hpp"

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
  // ReLU layers pull two inputs together, so their cosine rises with depth.
  l.forward.correlation = relu ? 1.0 - 0.5 / index : 0.1;
  l.forward.dead_units = relu ? index % 3 : 0;
  l.forward.dead_fraction = static_cast<double>(l.forward.dead_units) / width;
  l.backward.has_weights = true;
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

// The input as a standard-normal sample of 16 x 64 entries would measure.
inline void set_sample_input(Report& r) {
  r.input.mean = 0.0125;
  r.input.std = 0.998;
  r.input.rms = std::hypot(r.input.mean, r.input.std);
  r.input.min = -3.1;
  r.input.max = 3.4;
  r.input.finite = 16 * 64;
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
  set_sample_input(r);
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
  r.memory.report_bytes = 16000 * static_cast<std::int64_t>(r.layers.size());  // about a run's
  r.summary.log10_grad_ratio_first_to_last = log10_grads.front() - log10_grads.back();
  r.summary.mean_log10_gain =
      depth > 1 ? r.summary.log10_grad_ratio_first_to_last / (depth - 1) : 0.0;
  for (const LayerReport& l : r.layers) {
    r.summary.dead_units += l.forward.dead_units;
    r.summary.saturated_units += l.forward.saturated_units;
  }
  return r;
}

// What attach_theory is told about one layer: which directions are predicted (and why not), and
// how far the measurement sits from the prediction. Everything else follows from these.
struct TheoryPlan {
  bool forward = true;
  bool backward = true;
  std::string reason;        // for a direction without prediction: "no prediction: ..."
  double q_offset = 0.0;     // ln(measured q / predicted q)
  double grad_offset = 0.0;  // measured - predicted log10 grad rms relative to the last layer
};

// Fills every layer's theory and summary.theory_flagged_layers the way the engine does
// (attach_predictions in src/theory/prediction.cpp): predictions off from the measurement by the
// plan's offsets, the finite-width spreads of THEORY.md (Hanin 2018: 5 sum 1/n over the dense
// layers passed, plus 2 / (n B) of sampling noise), chi from consecutive predictions, and a flag
// beyond 3 spreads.
inline void attach_theory(Report& r, const std::vector<TheoryPlan>& plans) {
  constexpr double kHanin = 5.0;
  constexpr double kFlagSpreads = 3.0;
  const std::size_t n = r.layers.size();
  const double batch = r.spec.input.batch;
  const auto inverse_width = [&](std::size_t i) {
    return r.layers[i].kind == OpKind::kDense ? 1.0 / r.layers[i].width : 0.0;
  };
  std::vector<double> beta_back(n, 0.0);  // sum of 1/n over the dense layers from i to the output
  for (std::size_t i = n; i-- > 0;) {
    beta_back[i] = inverse_width(i) + (i + 1 < n ? beta_back[i + 1] : 0.0);
  }
  double last_measured = std::nan("");  // the anchor: the last layer with a gradient prediction
  for (std::size_t i = n; i-- > 0;) {
    if (plans[i].backward) {
      last_measured = r.layers[i].backward.grad_preact_rms.log10;
      break;
    }
  }
  r.summary.theory_flagged_layers.clear();
  double beta = 0.0;  // sum of 1/n over the dense layers up to i
  for (std::size_t i = 0; i < n; ++i) {
    LayerReport& l = r.layers[i];
    const TheoryPlan& plan = plans[i];
    LayerTheory& t = l.theory;
    t = LayerTheory{};
    t.forward = plan.forward;
    t.backward = plan.backward;
    t.reason = plan.reason;
    beta += inverse_width(i);
    const double sampling = 2.0 / (l.width * batch);
    bool flag = false;
    if (plan.forward) {
      const double measured_q = l.forward.preact.rms * l.forward.preact.rms;
      t.q = measured_q * std::exp(-plan.q_offset);
      t.act_second_moment = l.forward.act.rms * l.forward.act.rms * std::exp(-plan.q_offset);
      t.correlation = 0.98 * l.forward.correlation;
      t.log_q_deviation = std::log(measured_q / t.q);
      t.log_q_spread = std::sqrt(kHanin * beta + sampling);
      flag = std::abs(t.log_q_deviation) > kFlagSpreads * t.log_q_spread;
    }
    if (plan.backward) {
      t.measured_log10_grad_rel_last = l.backward.grad_preact_rms.log10 - last_measured;
      t.log10_grad_rel_last = t.measured_log10_grad_rel_last - plan.grad_offset;
      t.log10_grad_deviation = t.measured_log10_grad_rel_last - t.log10_grad_rel_last;
      t.log10_grad_spread = std::sqrt(kHanin * beta_back[i] + sampling) / (2.0 * std::log(10.0));
      flag = flag || std::abs(t.log10_grad_deviation) > kFlagSpreads * t.log10_grad_spread;
    }
    t.flagged = flag;
    if (flag) r.summary.theory_flagged_layers.push_back(l.index);
  }
  // chi: predicted E[g^2] over that of the next layer; the last layer's over E[(dL/dy)^2], and
  // unknown (NaN) below a layer without a prediction.
  for (std::size_t i = 0; i < n; ++i) {
    LayerTheory& t = r.layers[i].theory;
    if (!t.backward) continue;
    if (i + 1 == n) {
      t.grad_factor =
          std::pow(10.0, 2.0 * (t.log10_grad_rel_last + last_measured - r.output_grad_rms.log10));
    } else if (r.layers[i + 1].theory.backward) {
      t.grad_factor = std::pow(
          10.0, 2.0 * (t.log10_grad_rel_last - r.layers[i + 1].theory.log10_grad_rel_last));
    } else {
      t.grad_factor = std::nan("");
    }
  }
}

// Activation histograms summing to each layer's finite entries: the zeros in the first bin when
// they are the minimum (ReLU), the rest spread evenly, the remainder in the last bin (act.max).
inline void attach_histograms(Report& r) {
  for (LayerReport& l : r.layers) {
    const std::int64_t n = l.forward.act.finite;
    const auto zeros =
        l.forward.act.min == 0.0
            ? static_cast<std::int64_t>(l.forward.zero_fraction * static_cast<double>(n))
            : 0;
    std::vector<std::int64_t>& h = l.forward.act_histogram;
    h.assign(kActHistogramBins, (n - zeros) / kActHistogramBins);
    h.front() += zeros;
    h.back() += (n - zeros) % kActHistogramBins;
  }
}

// The three-layer stack most tests start from: predicted everywhere, close to the measurement.
inline Report small_report() {
  Report r = make_report("small", {-1.25, -0.875, -0.5}, {32, 32, 4}, -0.3, true);
  // The last layer is the anchor of the gradient predictions: its offset is 0 by definition.
  attach_theory(r, {{true, true, "", 0.12, 0.05}, {true, true, "", -0.08, -0.03}, {}});
  attach_histograms(r);
  return r;
}

// The small stack with a softmax output, as the engine reports it: no forward prediction at the
// softmax (mean-field theory is for elementwise activations), and so no gradient prediction
// anywhere, since the backward pass starts from the output.
inline Report softmax_output_report() {
  Report r = make_report("softmax", {-1.25, -0.875, -0.5}, {32, 32, 4}, -0.3, true);
  r.spec.output->activation.kind = Activation::kSoftmax;
  r.layers.back().activation.kind = Activation::kSoftmax;
  const std::string stopped = "no prediction: the forward prediction stopped here";
  attach_theory(r, {{true, false, stopped, 0.12, 0.0},
                    {true, false, stopped, -0.08, 0.0},
                    {false, false,
                     "no prediction: softmax couples the units of a layer; mean-field theory here "
                     "is for elementwise activations",
                     0.0, 0.0}});
  return r;
}

// What make_op builds: the op and the widths around it.
struct OpShape {
  OpSpec op;
  int width = 0;
  int fan_in = 0;
};

// One op of a mixed architecture: make_layer's statistics, then changed to what the op's kind
// measures (see the kind description in schema/report.schema.json), with the update-to-weight
// ratio of one `optimizer` step from zero state for dense layers (as the engine reports it).
inline LayerReport make_op(int index, const OpShape& shape, double log10_grad,
                           double log10_next_grad, int batch, const OptimizerSpec& optimizer) {
  const OpSpec& op = shape.op;
  const Activation phi = op.kind == OpKind::kDense        ? op.dense.activation.kind
                         : op.kind == OpKind::kActivation ? op.activation.kind
                                                          : Activation::kLinear;
  LayerReport l =
      make_layer(index, shape.width, shape.fan_in, phi, log10_grad, log10_next_grad, batch);
  l.kind = op.kind;
  std::int64_t parameters = 0;  // the entries of W, for the step's norm
  switch (op.kind) {
    case OpKind::kDense:
      l.activation = op.dense.activation;
      l.init = op.dense.init;
      l.bias = op.dense.bias;
      parameters = std::int64_t{shape.width} * shape.fan_in;
      break;
    case OpKind::kActivation:
      l.activation = op.activation;
      break;
    case OpKind::kNorm: {
      l.norm = op.norm;
      // dgamma_i = sum_a g_ia y_ia and dbeta_i = sum_a g_ia, over width x batch entries.
      const double entries = static_cast<double>(shape.width) * batch;
      l.backward.grad_weight_norm = magnitude_from_log10(log10_grad + 0.5 * std::log10(entries));
      l.backward.grad_bias_norm =
          op.norm.kind == NormKind::kRmsNorm
              ? magnitude_from_scaled(0.0, 0)
              : magnitude_from_log10(log10_grad + 0.5 * std::log10(entries));
      l.backward.weight_norm = std::sqrt(static_cast<double>(shape.width));  // ||gamma = 1||
      l.backward.grad_weight_to_weight = magnitude_ratio(
          l.backward.grad_weight_norm, magnitude_from_scaled(l.backward.weight_norm, 0));
      break;
    }
    case OpKind::kDropout:
      l.dropout = op.dropout;
      l.forward.zero_fraction = op.dropout;
      break;
    case OpKind::kResidualBegin:
    case OpKind::kResidualEnd:
      l.residual = op.residual;
      break;
    case OpKind::kAttention:
    case OpKind::kGlu:
    case OpKind::kConv:
    case OpKind::kPool:
    case OpKind::kFlatten:
      break;  // the fixtures build dense networks
  }
  if (op.kind != OpKind::kDense && op.kind != OpKind::kNorm) {
    l.backward.has_weights = false;
    l.backward.grad_weight_norm = {};
    l.backward.grad_bias_norm = {};
    l.backward.weight_norm = 0.0;
    l.backward.grad_weight_to_weight = {};
  }
  if (op.kind != OpKind::kDense && op.kind != OpKind::kActivation) {
    l.forward.dead_units = 0;  // no derivative statistic
    l.forward.dead_fraction = 0.0;
  }
  if (parameters > 0 && optimizer.kind != OptimizerKind::kNone) {
    const Magnitude w = magnitude_from_scaled(l.backward.weight_norm, 0);
    l.backward.has_update = true;
    if (optimizer.kind == OptimizerKind::kSgd) {
      // From zero momentum the first step is lr * grad.
      l.backward.update_to_weight =
          magnitude_ratio(magnitude_from_log10(std::log10(optimizer.learning_rate) +
                                               l.backward.grad_weight_norm.log10),
                          w);
    } else {
      // Adam's first step moves every parameter by about lr: ||step|| = lr sqrt(count).
      l.backward.update_to_weight = magnitude_ratio(
          magnitude_from_scaled(
              optimizer.learning_rate * std::sqrt(static_cast<double>(parameters)), 0),
          w);
    }
  }
  return l;
}

inline LayerItem single(const OpSpec& op) {
  LayerItem item;
  item.op = op;
  return item;
}

inline OpSpec dense_spec(int width, Activation phi) {
  OpSpec op;
  op.kind = OpKind::kDense;
  op.dense.width = width;
  op.dense.activation.kind = phi;
  if (phi != Activation::kRelu) op.dense.init.kind = Init::kXavierNormal;
  return op;
}

// A "layers" architecture with an op of every reported kind, an mse loss and `optimizer`:
//   dense 32 relu, layer_norm,
//   residual x0.5 { dense 32 linear, act:gelu, dropout 0.1 },
//   dense 32 relu,
//   residual with projection { dense 64 tanh }, rms_norm, dense 4 linear.
// Flattened, the two residual begins take indices 3 and 9 and are not reported.
inline Report mixed_report(OptimizerKind optimizer) {
  Report r;
  r.spec.name = "mixed";
  r.spec.seed = 11;
  r.spec.input.width = 16;
  r.spec.input.batch = 64;
  set_sample_input(r);
  r.spec.loss.kind = LossKind::kMse;
  r.spec.optimizer.kind = optimizer;
  r.spec.optimizer.learning_rate = optimizer == OptimizerKind::kSgd ? 0.01 : 1e-3;

  OpSpec layer_norm;
  layer_norm.kind = OpKind::kNorm;
  layer_norm.norm.kind = NormKind::kLayerNorm;
  OpSpec rms_norm = layer_norm;
  rms_norm.norm.kind = NormKind::kRmsNorm;
  OpSpec gelu;
  gelu.kind = OpKind::kActivation;
  gelu.activation.kind = Activation::kGelu;
  OpSpec dropout;
  dropout.kind = OpKind::kDropout;
  dropout.dropout = 0.1;
  ResidualSpec half;
  half.scale = 0.5;
  ResidualSpec projected;
  projected.projection = true;

  LayerItem block1;
  block1.block = {single(dense_spec(32, Activation::kLinear)), single(gelu), single(dropout)};
  block1.residual = half;
  LayerItem block2;
  block2.block = {single(dense_spec(64, Activation::kTanh))};
  block2.residual = projected;
  r.spec.layers = {single(dense_spec(32, Activation::kRelu)),
                   single(layer_norm),
                   block1,
                   single(dense_spec(32, Activation::kRelu)),
                   block2,
                   single(rms_norm),
                   single(dense_spec(4, Activation::kLinear))};

  OpSpec end_half;
  end_half.kind = OpKind::kResidualEnd;
  end_half.residual = half;
  OpSpec end_projected = end_half;
  end_projected.residual = projected;
  // (index, op, width): the reported ops, input side first.
  const std::vector<std::pair<int, OpSpec>> ops = {{1, dense_spec(32, Activation::kRelu)},
                                                   {2, layer_norm},
                                                   {4, dense_spec(32, Activation::kLinear)},
                                                   {5, gelu},
                                                   {6, dropout},
                                                   {7, end_half},
                                                   {8, dense_spec(32, Activation::kRelu)},
                                                   {10, dense_spec(64, Activation::kTanh)},
                                                   {11, end_projected},
                                                   {12, rms_norm},
                                                   {13, dense_spec(4, Activation::kLinear)}};
  // The gradient shrinks towards the input, less so across the residual ends.
  const std::vector<double> log10_grads = {-2.2, -2.0, -1.9, -1.85, -1.8, -1.75,
                                           -1.5, -1.3, -1.2, -1.1,  -1.0};
  const double log10_output_grad = std::log10(std::sqrt(2.0) / r.spec.input.batch);

  int fan_in = r.spec.input.width;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const OpSpec& op = ops[i].second;
    const int width = op.kind == OpKind::kDense ? op.dense.width : fan_in;
    const double next = i + 1 < ops.size() ? log10_grads[i + 1] : log10_output_grad;
    r.layers.push_back(make_op(ops[i].first, {op, width, fan_in}, log10_grads[i], next,
                               r.spec.input.batch, r.spec.optimizer));
    if (op.kind == OpKind::kDense) r.parameters += std::int64_t{width} * fan_in + width;
    if (op.kind == OpKind::kNorm) {
      r.parameters += op.norm.kind == NormKind::kRmsNorm ? width : 2 * width;
    }
    r.memory.cache_bytes += 2 * 4 * std::int64_t{width} * r.spec.input.batch;
    fan_in = width;
  }
  r.memory.weights_bytes = 4 * r.parameters;
  r.memory.work_bytes = 4096;
  r.memory.report_bytes = 16000 * static_cast<std::int64_t>(r.layers.size());  // about a run's
  r.output_grad_rms = magnitude_from_log10(log10_output_grad);
  // mse against standard-normal targets: L = (1/B) sum ||y - t||^2 / 2 ~ width (rms(y)^2 + 1) / 2.
  const LayerReport& last = r.layers.back();
  r.loss = 0.5 * last.width * (last.forward.act.rms * last.forward.act.rms + 1.0);
  r.summary.log10_grad_ratio_first_to_last = log10_grads.front() - log10_grads.back();
  r.summary.mean_log10_gain =
      r.summary.log10_grad_ratio_first_to_last / static_cast<double>(ops.size() - 1);
  for (const LayerReport& l : r.layers) {
    r.summary.dead_units += l.forward.dead_units;
    r.summary.saturated_units += l.forward.saturated_units;
  }
  attach_histograms(r);
  // Theory: the first two ops have no gradient prediction (the predicted E[g^2] is not finite
  // below layer 4), and layer 8's measured gradient is 1.2 decades off the prediction, beyond
  // 3 spreads of 0.26 (the other offsets stay well within theirs).
  const std::string unknown = "no prediction: the predicted gradient is zero or not finite";
  attach_theory(r, {{true, false, unknown, 0.1, 0.0},
                    {true, false, unknown, -0.05, 0.0},
                    {true, true, "", 0.2, 0.1},
                    {true, true, "", 0.05, 0.08},
                    {true, true, "", -0.1, 0.05},
                    {true, true, "", 0.15, 0.04},
                    {true, true, "", -0.2, 1.2},
                    {true, true, "", 0.1, -0.05},
                    {true, true, "", 0.05, -0.02},
                    {true, true, "", -0.05, 0.01},
                    {true, true, "", 0.02, 0.0}});
  return r;
}

// All layers of `width`, except an output layer of width 4 when `with_output`.
inline std::vector<int> uniform_widths(std::size_t depth, int width, bool with_output) {
  std::vector<int> widths(depth, width);
  if (with_output && depth > 0) widths.back() = 4;
  return widths;
}

// Three findings the way the diagnosis writes them, their numbers taken from the report: the
// gradient shrink over the whole network (one advice checked and helping, one checked and
// rejected, a context evidence with a NaN threshold), the layer with the largest dead fraction
// (unchecked advice), and an info on the first layer without advice. Sets the verdict to match.
inline void attach_findings(Report& r) {
  constexpr double kContext = std::numeric_limits<double>::quiet_NaN();
  const DiagnosisSpec& d = r.spec.diagnosis;
  const double shrink = -r.summary.log10_grad_ratio_first_to_last;
  const auto most_dead = std::max_element(
      r.layers.begin(), r.layers.end(), [](const LayerReport& a, const LayerReport& b) {
        return a.forward.dead_fraction < b.forward.dead_fraction;
      });

  Finding vanishing;
  vanishing.code = "vanishing_gradients";
  vanishing.severity = Severity::kWarning;
  vanishing.layer = 0;
  vanishing.evidence = {
      {"log10_grad_ratio_first_to_last", -shrink, "<=", -d.gradient_warning_decades, 0},
      {"mean_log10_gain", r.summary.mean_log10_gain, "", kContext, 0}};
  vanishing.explanation =
      "The gradient shrinks from the last layer to the first by more than the threshold allows, "
      "so the layers near the input receive almost no signal and barely learn.";
  Advice he;
  he.text =
      "Initialise the ReLU layers with he_normal, whose weight variance of 2 / fan_in keeps the "
      "gradient's scale from one layer to the next.";
  he.changes = {{"stack.init", "he_normal"}};
  he.addresses = "vanishing_gradients";
  he.check = AdviceCheck{"gradient_shrink_decades", shrink, 0.25, true, Verdict::kHealthy,
                         {"mismatched_init (info)"}};
  vanishing.advice = {he};
  Advice tanh;
  tanh.text = "Switch the hidden activation to tanh, whose derivative is 1 at 0.";
  tanh.changes = {{"stack.activation", "tanh"}, {"stack.init", "xavier_normal"}};
  tanh.addresses = "vanishing_gradients";
  tanh.check = AdviceCheck{"gradient_shrink_decades",
                           shrink,
                           shrink + 0.5,
                           false,
                           Verdict::kWarning,
                           {"vanishing_gradients (warning)", "saturated_units (warning)"}};
  vanishing.rejected_advice = {tanh};

  Finding dead;
  dead.code = "dead_units";
  dead.severity = Severity::kWarning;
  dead.layer = most_dead->index;
  dead.evidence = {
      {"dead_fraction", most_dead->forward.dead_fraction, ">=", d.dead_fraction, most_dead->index}};
  dead.explanation =
      "Some units of this ReLU layer output zero for every example of the batch, so they pass no "
      "gradient back and stop learning.";
  Advice leaky;
  leaky.text =
      "Use leaky_relu, whose small negative slope keeps a gradient flowing through units "
      "that would otherwise be dead.";
  leaky.changes = {{"stack.activation", "\"leaky_relu\""}};
  leaky.addresses = "dead_units";
  dead.advice = {leaky};

  // A consequence of the vanishing gradient: folded under it, with no advice of its own.
  Finding fp16;
  fp16.code = "fp16_gradient_underflow";
  fp16.severity = Severity::kWarning;
  fp16.layer = 1;
  fp16.cause = "vanishing_gradients";
  fp16.evidence = {{"log10_grad_rms_scaled", -5.5, "<", -4.21, 1}};
  fp16.explanation = "The first layer's gradient is below float16's smallest normal number.";
  vanishing.consequences = {"fp16_gradient_underflow"};

  Finding init;
  init.code = "mismatched_init";
  init.severity = Severity::kInfo;
  init.layer = r.layers.front().index;
  init.evidence = {{"sw2_over_signal_preserving", 0.5, "<=", 1.0 / d.init_mismatch_factor,
                    r.layers.front().index}};
  init.explanation = "The init's weight variance is half of what ReLU needs to keep the signal.";

  r.findings = {vanishing, fp16, dead, init};
  // The remedy: the two fixes together, each change once, checked as a whole.
  Remedy remedy;
  remedy.pieces = {{he.text, he.changes, {"vanishing_gradients"}},
                   {leaky.text, leaky.changes, {"dead_units"}}};
  remedy.addresses = {"vanishing_gradients", "dead_units"};
  remedy.changes = {he.changes.front(), leaky.changes.front()};
  remedy.check =
      RemedyCheck{Verdict::kWarning, Verdict::kHealthy, {"mismatched_init (info)"}, {}, {}};
  r.remedy = remedy;
  r.verdict = Verdict::kHealthy;
  for (const Finding& f : r.findings) {
    if (f.severity == Severity::kError) r.verdict = Verdict::kError;
    if (f.severity == Severity::kWarning && r.verdict == Verdict::kHealthy) {
      r.verdict = Verdict::kWarning;
    }
  }
}

// Six dense layers (five ReLU of width 32 with a xavier init, a linear output of 4) whose gradient
// shrinks by 3 decades towards the input, with a quarter of layer 3's units dead; predicted
// everywhere, and diagnosed by attach_findings.
inline Report diagnosed_report() {
  Report r = make_report("diagnosed", {-3.5, -2.9, -2.3, -1.7, -1.1, -0.5},
                         uniform_widths(6, 32, true), -0.3, true);
  r.spec.stack.layer.init.kind = Init::kXavierNormal;
  for (std::size_t i = 0; i + 1 < r.layers.size(); ++i) r.layers[i].init.kind = Init::kXavierNormal;
  LayerReport& third = r.layers[2];
  third.forward.dead_units = 8;
  third.forward.dead_fraction = 8.0 / third.width;
  r.summary.dead_units = 0;
  for (const LayerReport& l : r.layers) r.summary.dead_units += l.forward.dead_units;
  attach_theory(r, std::vector<TheoryPlan>(r.layers.size()));
  attach_histograms(r);
  // The thresholds the findings quote, pinned so that tuning the defaults does not change them.
  r.spec.diagnosis.gradient_warning_decades = 2.0;
  r.spec.diagnosis.dead_fraction = 0.1;
  r.spec.diagnosis.init_mismatch_factor = 1.5;
  attach_findings(r);
  return r;
}

}  // namespace gradscope::testing
