// The network's shape and the measured quantities the diagnosis tests (measures.hpp).
#include "diagnosis/measures.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace gradscope::diagnosis_detail {

const double kFp16MinNormalLog10 = -14.0 * std::log10(2.0);
const double kFp16MaxLog10 = std::log10(65504.0);
const double kBf16MinNormalLog10 = -126.0 * std::log10(2.0);
const double kBf16MaxLog10 = std::log10(3.3895313892515355e38);

bool is_bounded(Activation a) {
  return a == Activation::kSigmoid || a == Activation::kTanh || a == Activation::kHardTanh;
}

bool same_activation(const ActivationSpec& a, const ActivationSpec& b) {
  return a.kind == b.kind && a.param == b.param;
}

double weight_sw2(const InitSpec& init, int fan_in, int fan_out) {
  return init_weight_variance(init, fan_in, fan_out) * fan_in;
}

namespace {

// The input as measured (a loaded file's, or the generated sample's); reports built without a
// measurement fall back on the spec. hypot and ratios keep 1e200 or 1e-200 inputs finite.
void set_input(const Report& r, Shape& s) {
  const InputSpec& in = r.spec.input;
  double mean = in.mean;
  double rms = std::hypot(in.mean, in.std);
  double std_dev = in.std;
  if (in.distribution == InputDistribution::kUniform) {
    mean = 0.5 * (in.low + in.high);
    std_dev = (in.high - in.low) / std::sqrt(12.0);
    rms = std::hypot(mean, std_dev);
  }
  if (r.input.finite > 0 && std::isfinite(r.input.rms)) {
    mean = r.input.mean;
    rms = r.input.rms;
    std_dev = r.input.std;
  }
  s.input_rms = rms;
  s.input_mean = mean;
  s.input_std = std_dev;
  s.input_second_moment = rms * rms;
  s.input_correlation = rms > 0 ? (mean / rms) * (mean / rms) : 0.0;
}

// Mirrors expand_ops: each reported op counts one (residual begins are not reported).
void walk_residuals(const std::vector<LayerItem>& items, const std::string& prefix,
                    const LayerItem* holder, int& index, std::vector<ResidualSite>& out) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const LayerItem& item = items[i];
    const std::string path = item.path.empty() ? prefix + "[" + std::to_string(i) + "]" : item.path;
    if (item.block.empty()) {
      ++index;
      continue;
    }
    for (int k = 0; k < item.repeat; ++k) {
      walk_residuals(item.block, path + ".block", &item, index, out);
      if (!item.residual) continue;
      ResidualSite site;
      site.layer = ++index;
      site.post_norm = item.post_norm.has_value();
      site.pre_norm =
          item.block.front().block.empty() && item.block.front().op.kind == OpKind::kNorm;
      site.skip = item.residual->skip;
      site.scale = item.residual->scale;
      site.path = path;
      if (holder != nullptr) {
        site.stack_path = holder->path;
        site.repeat = holder->repeat;
      }
      out.push_back(std::move(site));
      if (item.post_norm) ++index;
    }
  }
}

}  // namespace

std::vector<ResidualSite> residual_sites(const Report& r) {
  std::vector<ResidualSite> out;
  int index = 0;
  walk_residuals(r.spec.layers, "layers", nullptr, index, out);
  // A report that does not match its spec (built by hand) has no sites to speak of.
  for (const ResidualSite& s : out) {
    if (s.layer < 1 || s.layer > static_cast<int>(r.layers.size()) ||
        r.layers[static_cast<std::size_t>(s.layer - 1)].kind != OpKind::kResidualEnd) {
      return {};
    }
  }
  return out;
}

double uniform_attention_entropy(int tokens, bool causal) {
  if (!causal) return std::log(static_cast<double>(tokens));
  return std::lgamma(static_cast<double>(tokens) + 1.0) / static_cast<double>(tokens);
}

namespace {

// Shape::zero_by_design from the ops (residual begins included): each branch between a begin and
// its end that holds a dense or conv op with zero init marks its reported ops, the end excluded
// (the sum carries the skip path).
std::vector<char> zero_init_branches(const std::vector<OpSpec>& ops, std::size_t reported) {
  std::vector<int> number(ops.size(), -1);  // the reported index of each op, -1 for begins
  int n = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].kind != OpKind::kResidualBegin) number[i] = n++;
  }
  std::vector<char> out(reported, 0);
  std::vector<std::size_t> open;
  std::vector<char> zero;  // per open branch: it holds a zero-initialised layer
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const OpSpec& op = ops[i];
    if (op.kind == OpKind::kResidualBegin) {
      open.push_back(i);
      zero.push_back(0);
      continue;
    }
    const bool zero_init = (op.kind == OpKind::kDense && op.dense.init.kind == Init::kZeros) ||
                           (op.kind == OpKind::kConv && op.conv.init.kind == Init::kZeros);
    if (zero_init && !zero.empty()) zero.back() = 1;
    if (op.kind != OpKind::kResidualEnd || open.empty()) continue;
    if (zero.back() != 0) {
      for (std::size_t k = open.back() + 1; k < i; ++k) {
        if (number[k] >= 0 && static_cast<std::size_t>(number[k]) < reported) {
          out[static_cast<std::size_t>(number[k])] = 1;
        }
      }
    }
    open.pop_back();
    zero.pop_back();
  }
  return out;
}

}  // namespace

Shape shape_of(const Report& r) {
  Shape s;
  const std::vector<OpSpec> ops = expand_ops(r.spec);
  const std::vector<std::string> op_paths = op_config_paths(r.spec);
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].kind != OpKind::kResidualBegin) s.paths.push_back(op_paths[i]);
  }
  s.paths.resize(r.layers.size());
  s.zero_by_design = zero_init_branches(ops, r.layers.size());
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const LayerReport& l = r.layers[i];
    switch (l.kind) {
      case OpKind::kDense:
        s.dense.push_back(static_cast<int>(i));
        break;
      case OpKind::kNorm:
        s.has_norm = true;
        if (l.norm.kind == NormKind::kBatchNorm) s.has_batch_norm = true;
        break;
      case OpKind::kResidualEnd:
        s.has_residual = true;
        break;
      case OpKind::kActivation:
      case OpKind::kDropout:
      case OpKind::kAttention:
      case OpKind::kGlu:
      // A conv's init rules read its own fans (C_in / groups k_h k_w), which the dense rules do
      // not know: it counts as another op until they do.
      case OpKind::kConv:
      case OpKind::kPool:
      case OpKind::kFlatten:
        s.has_other_ops = true;
        break;
      case OpKind::kResidualBegin:
        break;
    }
  }
  s.hidden = s.dense;
  if (s.dense.size() >= 2) {
    // The last dense layer is the output layer when it differs from the one before it; a uniform
    // stack without an output layer is hidden layers all the way.
    const LayerReport& last = r.layers[static_cast<std::size_t>(s.dense.back())];
    const LayerReport& prev = r.layers[static_cast<std::size_t>(s.dense[s.dense.size() - 2])];
    if (!same_activation(last.activation, prev.activation) || last.width != prev.width ||
        r.spec.output) {
      s.hidden.pop_back();
    }
  }
  s.stack_config = r.spec.layers.empty();
  if (!s.hidden.empty()) {
    const LayerReport& h0 = r.layers[static_cast<std::size_t>(s.hidden.front())];
    s.hidden_activation = h0.activation;
    s.uniform_hidden = true;
    for (int i : s.hidden) {
      const LayerReport& h = r.layers[static_cast<std::size_t>(i)];
      if (!same_activation(h.activation, h0.activation) || h.init.kind != h0.init.kind ||
          h.init.gain != h0.init.gain || h.bias.kind != h0.bias.kind) {
        s.uniform_hidden = false;
      }
    }
  }
  set_input(r, s);
  s.pool_share.assign(r.layers.size(), 0.0);
  double share = 0.0;
  for (std::size_t i = r.layers.size(); i-- > 0;) {
    // A pool's statistic is dL/d(its input): its own share is in it, and in every layer's below.
    const LayerReport& l = r.layers[i];
    if (l.kind == OpKind::kPool && i + 1 < r.layers.size()) {
      share += pool_gradient_log10_share(l.pool);
    }
    s.pool_share[i] = share;
  }
  // The probe's dL/dy has rms 1 per entry; a loss averaged over the batch gives each example's
  // output about 1/batch of that, which is what a half-precision gradient would have to hold.
  if (r.spec.loss.kind == LossKind::kProbe) {
    s.grad_scale_log10 = -std::log10(static_cast<double>(std::max(1, input_columns(r.spec.input))));
  }
  return s;
}

double grad_log10(const LayerReport& l) { return l.backward.grad_preact_rms.log10; }

double pool_gradient_log10_share(const PoolSpec& pool) {
  const double inputs = static_cast<double>(pool.in.height) * pool.in.width;
  const ImageShape out = pool.out();
  const double outputs = static_cast<double>(out.height) * out.width;
  if (!(inputs > 0.0) || !(outputs > 0.0)) return 0.0;
  switch (pool.kind) {
    case PoolKind::kMax:
      return 0.5 * std::log10(outputs / inputs);
    case PoolKind::kGlobalAverage:
      return -std::log10(inputs);
    case PoolKind::kAverage:
      break;
  }
  // sum_i n_i: every window's entries inside the image (padding holds no input).
  const auto covered = [](int in, int kernel, int stride, int pad, int count) {
    double total = 0.0;
    for (int o = 0; o < count; ++o) {
      const int begin = o * stride - pad;
      total += std::max(0, std::min(begin + kernel, in) - std::max(begin, 0));
    }
    return total;
  };
  const double rows = covered(pool.in.height, pool.kernel_h, pool.stride_h, pool.pad_h, out.height);
  const double cols = covered(pool.in.width, pool.kernel_w, pool.stride_w, pool.pad_w, out.width);
  const double window = static_cast<double>(pool.kernel_h) * pool.kernel_w;
  return 0.5 * std::log10(rows * cols / inputs) - std::log10(window);
}

double act_log10_rel_input(const LayerReport& l, const Shape& s) {
  const double rms = l.forward.act.rms;
  if (std::isnan(rms) || !(s.input_rms > 0) || !std::isfinite(s.input_rms)) return kNaN;
  return (rms > 0 ? std::log10(rms) : -kInf) - std::log10(s.input_rms);
}

double input_scale_excess(const Shape& s) {
  if (!(s.input_rms > 0) || !std::isfinite(s.input_rms)) return kInf;
  const double scale = std::abs(std::log10(s.input_rms)) - 2.0;
  const double offset = s.input_std > 0 ? std::log10(std::abs(s.input_mean) / s.input_std) - 1.0
                                        : (s.input_mean != 0.0 ? kInf : -kInf);
  return std::max(scale, offset);
}

bool forward_valid(const Report& r, const LayerReport& l) {
  return !(r.summary.nonfinite_in_forward && l.index >= r.summary.first_nonfinite_layer);
}

bool gradient_valid(const LayerReport& l) {
  return l.backward.nonfinite == 0 && !std::isnan(l.backward.grad_preact_rms.log10);
}

double max_abs_act(const LayerReport& l) {
  return std::max({std::abs(l.forward.act.min), std::abs(l.forward.act.max),
                   std::abs(l.forward.preact.min), std::abs(l.forward.preact.max)});
}

UpdateScan update_scan(const Report& r) {
  UpdateScan u;
  const DiagnosisSpec& d = r.spec.diagnosis;
  for (const LayerReport& l : r.layers) {
    if (!l.backward.has_update || !gradient_valid(l)) continue;
    const double v = l.backward.update_to_weight.log10;
    if (!std::isfinite(v)) continue;
    if (v > u.log10_max) {
      u.log10_max = v;
      u.layer_max = l.index;
    }
    if (v < u.log10_min) {
      u.log10_min = v;
      u.layer_min = l.index;
    }
  }
  if (u.layer_max == 0) return u;
  const double high = u.log10_max - std::log10(d.update_ratio_max);
  const double low = std::log10(d.update_ratio_min) - u.log10_min;
  u.too_large = high >= low;
  u.excess = std::max(high, low);
  u.layer = u.too_large ? u.layer_max : u.layer_min;
  return u;
}

double bounded_output_loss_floor(const Report& r, const Shape& s) {
  if (r.spec.loss.kind != LossKind::kSoftmaxCrossEntropy || s.dense.empty()) return 0.0;
  const LayerReport& out = r.layers[static_cast<std::size_t>(s.dense.back())];
  if (out.index != r.layers.back().index) return 0.0;
  double lo = 0.0;
  double hi = 0.0;
  switch (out.activation.kind) {
    case Activation::kSigmoid:
      lo = 0.0;
      hi = 1.0;
      break;
    case Activation::kTanh:
    case Activation::kHardTanh:
      lo = -1.0;
      hi = 1.0;
      break;
    default:
      return 0.0;
  }
  const double c = static_cast<double>(out.width);
  if (c < 2) return 0.0;
  // -log softmax at the best: log(1 + (C - 1) e^{lo - hi}).
  return std::log1p((c - 1.0) * std::exp(lo - hi));
}

const char* format_word(Precision p) { return p == Precision::kFloat32 ? "float32" : "float64"; }

double format_max_log10(Precision p) {
  return p == Precision::kFloat32 ? std::log10(static_cast<double>(FLT_MAX)) : std::log10(DBL_MAX);
}
}  // namespace gradscope::diagnosis_detail
