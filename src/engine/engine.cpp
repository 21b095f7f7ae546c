// One run from spec to report: refuse what will not fit, then build, pass, and summarise.
#include "gradscope/engine/engine.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "gradscope/core/error.hpp"
#include "gradscope/core/loss.hpp"
#include "gradscope/core/network.hpp"
#include "gradscope/core/parallel.hpp"
#include "gradscope/core/stats.hpp"
#include "gradscope/diagnosis/diagnosis.hpp"
#include "gradscope/theory/apjn.hpp"
#include "gradscope/theory/jacobian.hpp"
#include "gradscope/theory/prediction.hpp"

namespace gradscope {

namespace {

// The process besides the plan's data: code, libraries, thread stacks, the report being built.
constexpr std::int64_t kProcessOverheadBytes = std::int64_t{64} << 20;
// What the allocator holds beyond the live data when buffers come and go by the thousand: peak
// resident memory measured 5% (depth 10,000) to 9% (depth 2,000) above the plan's data.
constexpr double kAllocatorSlack = 0.10;

// The learned tensors of op l (0-based) as PyTorch's named_parameters() would list them, named
// "ops.l.<role>" (loaded weights are renamed after their source by the caller).
void append_parameters(std::size_t l, const LayerReport& lr, double bias_norm,
                       std::vector<ParameterReport>& out) {
  const std::string prefix = "ops." + std::to_string(l) + ".";
  const BackwardStats& b = lr.backward;
  const auto add = [&](ParamStats s) { out.push_back({prefix + s.role, lr.index, std::move(s)}); };
  if (!b.params.empty()) {
    for (const ParamStats& s : b.params) add(s);
    return;
  }
  const std::int64_t width = lr.width;
  if (lr.kind == OpKind::kDense) {
    add({"weight",
         {width, lr.fan_in},
         b.weight_norm,
         b.grad_weight_norm,
         b.grad_weight_nonfinite,
         b.has_update,
         b.update_to_weight});
    // A bias's update is not measured (biases usually start at 0, where the ratio is infinite).
    add({"bias", {width}, bias_norm, b.grad_bias_norm, b.grad_bias_nonfinite, false, {}});
  } else if (lr.kind == OpKind::kConv) {
    // PyTorch's Conv2d shapes: weight (C_out, C_in / groups, k_h, k_w), bias (C_out).
    const ConvSpec& c = lr.conv;
    add({"weight",
         {c.channels, c.in.channels / std::max(c.groups, 1), c.kernel_h, c.kernel_w},
         b.weight_norm,
         b.grad_weight_norm,
         b.grad_weight_nonfinite,
         b.has_update,
         b.update_to_weight});
    if (c.bias) {
      add({"bias", {c.channels}, bias_norm, b.grad_bias_norm, b.grad_bias_nonfinite, false, {}});
    }
  } else if (lr.kind == OpKind::kNorm) {
    // An image's batch norm has one gamma and beta per channel.
    const std::int64_t n = lr.image.is_image() && lr.norm.kind == NormKind::kBatchNorm
                               ? std::int64_t{lr.image.channels}
                               : width;
    add({"weight", {n}, b.weight_norm, b.grad_weight_norm, b.grad_weight_nonfinite, false, {}});
    if (lr.norm.kind != NormKind::kRmsNorm) {
      add({"bias", {n}, 0.0, b.grad_bias_norm, b.grad_bias_nonfinite, false, {}});
    }
  }
}

Summary summarise(const std::vector<LayerReport>& layers, std::int64_t batch) {
  Summary s;
  const LayerReport& first = layers.front();
  const LayerReport& last = layers.back();
  s.log10_grad_ratio_first_to_last =
      first.backward.grad_preact_rms.log10 - last.backward.grad_preact_rms.log10;
  s.mean_log10_gain =
      layers.size() > 1 ? s.log10_grad_ratio_first_to_last / static_cast<double>(layers.size() - 1)
                        : 0.0;
  double saturated_entries = 0.0;
  double entries = 0.0;
  for (const LayerReport& l : layers) {
    s.dead_units += l.forward.dead_units;
    s.saturated_units += l.forward.saturated_units;
    // Over the layers whose activation saturates (NaN marks the others).
    if (!std::isnan(l.forward.saturated_fraction)) {
      const double n = static_cast<double>(l.width) * static_cast<double>(batch);
      saturated_entries += l.forward.saturated_fraction * n;
      entries += n;
    }
    if (l.forward.nonfinite > 0 || l.backward.nonfinite > 0) s.nonfinite_layers.push_back(l.index);
  }
  // Blame the layer where the values first turn non-finite: NaN from a forward overflow flows
  // down the whole backward pass, so the lowest layer holding one is rarely where it began.
  for (const LayerReport& l : layers) {
    if (l.forward.nonfinite > 0) {
      s.first_nonfinite_layer = l.index;
      s.nonfinite_in_forward = true;
      break;
    }
  }
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    if (it->backward.nonfinite == 0) continue;
    if (s.nonfinite_in_forward) {
      s.backward_nonfinite_above = it->index > s.first_nonfinite_layer;
    } else {
      s.first_nonfinite_layer = it->index;
    }
    break;
  }
  s.saturated_fraction =
      entries > 0 ? saturated_entries / entries : std::numeric_limits<double>::quiet_NaN();
  return s;
}

// Why this is long: the run in the order a reader checks it (plan, pass, statistics, theory,
// Jacobian, partial Jacobian norms, diagnosis), each step a call, with the plan's fallbacks and
// progress between them.
template <class Scalar>
Report run_in(const RunSpec& spec, const RunOptions& options, Report report) {
  ThreadPool pool(options.threads);
  Network<Scalar> net = build_network<Scalar>(spec, pool, report.memory.plan.weights);
  const ExternalData* ext = options.external;
  if (ext != nullptr) {
    for (std::size_t l = 0; l < net.ops.size(); ++l) {
      if (l < ext->weight.size() && ext->weight[l].size() > 0) {
        net.weight[l] = ext->weight[l].cast<Scalar>();
        // The norm of the weights as stored, summed exactly as the generated path does.
        net.weight_norm[l] = weight_frobenius(net.weight[l]);
      }
      if (l < ext->bias.size() && ext->bias[l].size() > 0)
        net.bias[l] = ext->bias[l].cast<Scalar>();
    }
  }
  const Mat<Scalar> input = ext != nullptr && ext->input ? Mat<Scalar>(ext->input->cast<Scalar>())
                                                         : make_input<Scalar>(spec);
  const int output_width = net.widths.back();
  PassOptions pass;
  pass.saturation_threshold = spec.stats.saturation_threshold;
  pass.seed = spec.seed;
  pass.loss = spec.loss;
  pass.optimizer = spec.optimizer;
  pass.checkpoint_every = report.memory.plan.checkpoint_every;
  pass.kept_from = report.memory.plan.recomputed_ops;
  pass.on_progress = options.on_progress;
  Mat<Scalar> probe;
  LossTargets targets;
  if (spec.loss.kind == LossKind::kProbe) {
    probe = make_probe<Scalar>(spec, output_width);
  } else {
    targets = ext != nullptr && ext->targets
                  ? *ext->targets
                  : make_targets(spec.loss, spec.seed, output_width, input_columns(spec.input));
    pass.targets = &targets;
  }
  if (options.save != nullptr) {
    RunData& d = *options.save;
    d.weight.assign(net.ops.size(), {});
    d.bias.assign(net.ops.size(), {});
    Mat<Scalar> scratch;
    for (std::size_t l = 0; l < net.ops.size(); ++l) {
      const Mat<Scalar>& w = weight_of(net, l, scratch, pool);
      if (w.size() > 0) d.weight[l] = w.template cast<double>();
      if (net.bias[l].size() > 0) d.bias[l] = net.bias[l].template cast<double>();
    }
    d.input = input.template cast<double>();
    if (probe.size() > 0) d.probe = probe.template cast<double>();
    d.targets = targets;
  }
  PassResult r = forward_backward(net, input, probe, pass, pool);

  report.output_grad_rms = r.output_grad_rms;
  report.loss = r.loss;
  report.input = r.input;
  int fan_in = spec.input.width;
  for (std::size_t l = 0; l < net.ops.size(); ++l) {
    const OpSpec& op = net.ops[l];
    if (op.kind == OpKind::kResidualBegin) continue;
    LayerReport lr;
    // Numbered 1.. over the reported ops (residual-begin markers are not reported).
    lr.index = static_cast<int>(report.layers.size()) + 1;
    lr.kind = op.kind;
    lr.width = net.widths[l];
    lr.fan_in = fan_in;
    if (op.kind == OpKind::kDense) {
      lr.activation = op.dense.activation;
      lr.init = op.dense.init;
      lr.bias = op.dense.bias;
    }
    if (op.kind == OpKind::kActivation) lr.activation = op.activation;
    if (op.kind == OpKind::kConv) {
      lr.activation = op.conv.activation;
      lr.init = op.conv.init;
      lr.bias = op.conv.bias_init;
    }
    lr.conv = op.conv;
    lr.pool = op.pool;
    lr.image = op.image;
    lr.norm = op.norm;
    lr.dropout = op.dropout;
    lr.residual = op.residual;
    lr.attention = op.attention;
    lr.glu = op.glu;
    lr.forward = r.forward[l];
    lr.backward = r.backward[l];
    report.layers.push_back(lr);
    const double bias_norm =
        net.bias[l].size() > 0 ? net.bias[l].template cast<double>().norm() : 0.0;
    append_parameters(l, report.layers.back(), bias_norm, report.parameter_list);
    fan_in = net.widths[l];
  }
  report.summary = summarise(report.layers, input_columns(spec.input));
  attach_predictions(spec, report.layers, report.summary);
  if (spec.stats.jacobian_examples > 0) {
    report.jacobian = jacobian_spectrum(spec, net, input, spec.stats.jacobian_examples);
  }
  report.criticality = partial_jacobian_norms(spec, net, input, pool);
  diagnose(report);
  return report;
}

}  // namespace

Report run_diagnostic(const RunSpec& spec, const RunOptions& options) {
  Report report;
  report.spec = spec;
  check_jacobian_request(spec);
  report.memory = estimate_memory(spec);
  // What the report states it keeps: from the spec alone (see MemoryEstimate::report_bytes).
  report.memory.report_bytes = estimate_kept_memory(spec).report_bytes;
  std::vector<bool> loaded;
  if (options.external != nullptr) {
    for (const Eigen::MatrixXd& w : options.external->weight) loaded.push_back(w.size() > 0);
  }
  if (options.plan) {
    report.memory.plan = plan_with(
        spec, report.memory, loaded, options.plan->weights, options.plan->checkpoint_every,
        options.plan->recomputed_ops > 0 ? options.plan->recomputed_ops : -1);
  } else {
    const std::int64_t limit = options.memory_limit_bytes > 0    ? options.memory_limit_bytes
                               : options.memory_limit_bytes == 0 ? available_memory_bytes()
                                                                 : -1;
    const int threads = options.threads > 0 ? options.threads : hardware_threads();
    // In double: each part may be near int64's limit for an absurd config.
    const double scratch =
        static_cast<double>(threads) * static_cast<double>(report.memory.per_thread_bytes);
    const auto overhead = static_cast<std::int64_t>(
        std::min(3.0e18, scratch + static_cast<double>(kProcessOverheadBytes)));
    // What every plan keeps besides: each op's statistics and share of the reports, an input
    // file's copies, and what --save-weights copies in double (the weights and the input).
    const ExternalData* ext = options.external;
    const auto file_input = ext != nullptr && ext->input ? ext->input->size() : Eigen::Index{0};
    const double saved =
        options.save == nullptr
            ? 0.0
            : static_cast<double>(report.memory.weights_bytes) *
                      (spec.precision == Precision::kFloat32 ? 2.0 : 1.0) +
                  8.0 * spec.input.width * static_cast<double>(input_columns(spec.input));
    const KeptEstimate kept =
        estimate_kept_memory(spec, file_input, static_cast<std::int64_t>(std::min(3.0e18, saved)));
    report.memory.plan =
        choose_memory_plan(spec, report.memory, loaded, limit, overhead, kAllocatorSlack, kept);
  }
  const std::vector<OpSpec> ops = expand_ops(spec);
  const std::vector<int> widths = op_widths(spec, ops);
  std::int64_t fan_in = spec.input.width;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    // Parameters a training run would learn: dense W and b, the norms' gamma (and beta), the
    // projections of attention and GLU ops, a learned residual projection and its norm.
    const std::int64_t width = widths[i];
    if (ops[i].kind == OpKind::kDense) report.parameters += width * fan_in + width;
    if (ops[i].kind == OpKind::kConv) {
      const ConvSpec& c = ops[i].conv;
      report.parameters += std::int64_t{c.channels} * c.fan_in() + (c.bias ? c.channels : 0);
    }
    if (ops[i].kind == OpKind::kNorm) {
      const std::int64_t n = ops[i].image.is_image() && ops[i].norm.kind == NormKind::kBatchNorm
                                 ? std::int64_t{ops[i].image.channels}
                                 : width;
      report.parameters += ops[i].norm.kind == NormKind::kRmsNorm ? n : 2 * n;
    }
    if (ops[i].kind == OpKind::kResidualEnd && ops[i].residual.conv_projection()) {
      // The learned 1x1 convolution (C_out, C_in) and its norm's gamma and beta per channel.
      const std::int64_t c_out = ops[i].image.channels;
      report.parameters += c_out * ops[i].residual.skip_image.channels +
                           (ops[i].residual.projection_norm ? 2 * c_out : 0);
    }
    if (ops[i].kind == OpKind::kAttention) {
      const AttentionSpec& a = ops[i].attention;
      const std::int64_t projections = a.output_projection ? 4 : 3;
      report.parameters += projections * (width * fan_in + (a.bias ? width : 0));
    }
    if (ops[i].kind == OpKind::kGlu) {
      const GluSpec& g = ops[i].glu;
      report.parameters +=
          3 * std::int64_t{g.hidden} * fan_in + (g.bias ? 2 * std::int64_t{g.hidden} + width : 0);
    }
    if (ops[i].kind != OpKind::kResidualBegin) fan_in = width;
  }
  if (options.on_planned) options.on_planned(report);
  if (spec.precision == Precision::kFloat32) return run_in<float>(spec, options, std::move(report));
  return run_in<double>(spec, options, std::move(report));
}

}  // namespace gradscope
