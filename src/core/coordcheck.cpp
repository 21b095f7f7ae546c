// Coordinate checks: names, the parametrizations as a config rewritten at one width and depth
// plus per-tensor multipliers, and the slope fits and verdicts.
#include "gradscope/core/coordcheck.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <string>

#include "gradscope/core/error.hpp"

namespace gradscope {

namespace {

constexpr std::array<std::string_view, kParametrizationCount> kParametrizationNames = {
    "sp", "mup", "depth_mup", "completep"};
constexpr std::array<std::string_view, 4> kRoleNames = {"input", "hidden", "output", "vector"};
constexpr std::array<std::string_view, 3> kOptimizerNames = {"sgd", "adam", "adamw"};
constexpr std::array<std::string_view, 3> kQuantityNames = {"size", "change", "update"};
constexpr std::array<std::string_view, 3> kVerdictNames = {"FLAT", "GROWS", "SHRINKS"};

template <class Names>
std::optional<int> index_of(const Names& names, std::string_view name) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<int>(i);
  }
  return std::nullopt;
}

int scaled(int w, double mult) {
  return std::max(1, static_cast<int>(std::lround(static_cast<double>(w) * mult)));
}

bool reads_input_through_dense(const RunSpec& spec) {
  if (spec.layers.empty()) return true;
  const std::vector<OpSpec> ops = expand_ops(spec);
  return !ops.empty() && ops.front().kind == OpKind::kDense;
}

// The first dense item's width, in config order.
const LayerItem* first_dense(const std::vector<LayerItem>& items) {
  for (const LayerItem& item : items) {
    if (item.block.empty()) {
      if (item.op.kind == OpKind::kDense) return &item;
    } else if (const LayerItem* d = first_dense(item.block)) {
      return d;
    }
  }
  return nullptr;
}

// Whether the last item of "layers" is a plain dense readout (its width stays).
bool ends_in_readout(const RunSpec& spec) {
  return !spec.layers.empty() && spec.layers.back().block.empty() &&
         spec.layers.back().op.kind == OpKind::kDense;
}

// Scales every dense width and GLU hidden width of `items`; checks attention heads divide the
// width that reaches them.
void scale_items(std::vector<LayerItem>& items, double mult) {
  for (LayerItem& item : items) {
    if (!item.block.empty()) {
      scale_items(item.block, mult);
      continue;
    }
    if (item.op.kind == OpKind::kDense) item.op.dense.width = scaled(item.op.dense.width, mult);
    if (item.op.kind == OpKind::kGlu) item.op.glu.hidden = scaled(item.op.glu.hidden, mult);
  }
}

// The residual branch scale of every residual inside the repeated item, times `factor`.
void scale_residuals(LayerItem& item, double factor) {
  if (item.residual) item.residual->scale *= factor;
  for (LayerItem& b : item.block) scale_residuals(b, factor);
}

LayerItem* repeated_item(std::vector<LayerItem>& layers) {
  LayerItem* found = nullptr;
  for (LayerItem& item : layers) {
    if (item.repeat > 1 || (!item.block.empty() && item.residual)) {
      if (found != nullptr && found->repeat > 1 && item.repeat > 1) return nullptr;  // ambiguous
      if (found == nullptr || item.repeat > 1) found = &item;
    }
  }
  return found;
}

}  // namespace

std::string_view parametrization_name(Parametrization p) {
  return kParametrizationNames[static_cast<std::size_t>(p)];
}
std::optional<Parametrization> parametrization_from_name(std::string_view name) {
  if (const auto i = index_of(kParametrizationNames, name)) return static_cast<Parametrization>(*i);
  return std::nullopt;
}
double depth_alpha(Parametrization p) {
  switch (p) {
    case Parametrization::kDepthMup:
      return 0.5;
    case Parametrization::kCompleteP:
      return 1.0;
    default:
      return 0.0;
  }
}
std::string_view tensor_role_name(TensorRole r) { return kRoleNames[static_cast<std::size_t>(r)]; }
std::string_view train_optimizer_name(TrainOptimizer o) {
  return kOptimizerNames[static_cast<std::size_t>(o)];
}
std::optional<TrainOptimizer> train_optimizer_from_name(std::string_view name) {
  if (const auto i = index_of(kOptimizerNames, name)) return static_cast<TrainOptimizer>(*i);
  return std::nullopt;
}
std::string_view coord_quantity_name(CoordQuantity q) {
  return kQuantityNames[static_cast<std::size_t>(q)];
}
std::string_view slope_verdict_name(SlopeVerdict v) {
  return kVerdictNames[static_cast<std::size_t>(v)];
}

int config_model_width(const RunSpec& spec) {
  if (spec.layers.empty()) return spec.stack.layer.width;
  if (reads_input_through_dense(spec)) {
    const LayerItem* d = first_dense(spec.layers);
    if (d != nullptr) return d->op.dense.width;
  }
  return spec.input.width;
}

int config_depth(const RunSpec& spec) {
  if (spec.layers.empty()) return spec.stack.depth;
  std::vector<LayerItem> copy = spec.layers;
  const LayerItem* item = repeated_item(copy);
  return item != nullptr ? item->repeat : 0;
}

ScaledConfig scale_config(const RunSpec& base, const CoordCheckSpec& check, int base_width,
                          int base_depth, int width, int depth) {
  for (const OpSpec& op : expand_ops(base)) {
    if (op.kind == OpKind::kConv || op.kind == OpKind::kPool || op.kind == OpKind::kFlatten) {
      throw Error(
          "coordcheck: scaling a network with conv, pool or flatten ops (their channels "
          "as its width) is not supported yet",
          "check a network of dense, norm, attention and GLU ops");
    }
  }
  ScaledConfig out;
  out.spec = base;
  out.width = width;
  out.depth = depth;
  out.width_mult = static_cast<double>(width) / static_cast<double>(base_width);
  out.depth_mult = static_cast<double>(depth) / static_cast<double>(base_depth);
  const double m = out.width_mult;
  const Parametrization param = check.parametrization;
  const bool mup = param != Parametrization::kSp;
  const double alpha = depth_alpha(param);
  RunSpec& s = out.spec;
  const bool input_is_data = reads_input_through_dense(base);
  bool readout = false;

  // Widths and depth.
  if (s.layers.empty()) {
    s.stack.layer.width = scaled(s.stack.layer.width, m);
    s.stack.depth = depth;
    readout = s.output.has_value();
  } else {
    readout = ends_in_readout(base);
    const std::size_t scaled_items = s.layers.size() - (readout ? 1 : 0);
    std::vector<LayerItem> head(s.layers.begin(),
                                s.layers.begin() + static_cast<std::ptrdiff_t>(scaled_items));
    scale_items(head, m);
    std::copy(head.begin(), head.end(), s.layers.begin());
    if (!input_is_data) s.input.width = scaled(s.input.width, m);
    if (depth != base_depth || alpha != 0.0) {
      LayerItem* rep = repeated_item(s.layers);
      if (rep == nullptr) {
        throw Error("coordcheck: the config has no repeated block whose count --depths could set",
                    "give one item of \"layers\" a \"repeat\" (or use a transformer item's "
                    "\"blocks\"), or leave out --depths");
      }
      rep->repeat = depth;
      out.residual_scale = std::pow(out.depth_mult, -alpha);
      if (alpha != 0.0) scale_residuals(*rep, out.residual_scale);
    }
  }

  // Per op: roles, init multipliers, attention scales; then the tensors' multipliers.
  const std::vector<OpSpec> ops = expand_ops(s);
  const std::vector<int> widths = op_widths(s, ops);
  int last_dense = -1;
  for (std::size_t l = 0; l < ops.size(); ++l) {
    if (ops[l].kind == OpKind::kDense) last_dense = static_cast<int>(l);
  }
  const bool adam = check.train.optimizer != TrainOptimizer::kSgd;
  // Depth: the hidden weights' learning rate times m_L^(alpha - 1) under Adam, m_L^(2 alpha - 1)
  // under SGD (each of L blocks moves the stream by lr L^-alpha (Adam) or lr L^-2alpha (SGD)).
  const double depth_lr =
      alpha == 0.0 ? 1.0 : std::pow(out.depth_mult, adam ? alpha - 1.0 : 2.0 * alpha - 1.0);
  const double eps_mult =
      param == Parametrization::kCompleteP ? std::pow(out.depth_mult, -alpha) / m : 1.0;
  auto lr_for = [&](TensorRole role) {
    if (!mup) return 1.0;
    switch (role) {
      case TensorRole::kInput:
        return adam ? 1.0 : m;
      case TensorRole::kHidden:
        return (adam ? 1.0 / m : 1.0) * depth_lr;
      case TensorRole::kOutput:
        return 1.0 / m;
      case TensorRole::kVector:
        return adam ? 1.0 : m;
    }
    return 1.0;
  };
  auto add = [&](int op, std::string name, TensorRole role, double init_std, bool grows = true) {
    // A vector whose size stays (the readout's bias) is a scalar to μP: its learning rate stays.
    const double lr = role == TensorRole::kVector && !grows ? 1.0 : lr_for(role);
    out.tensors.push_back({op, std::move(name), role, init_std, lr, mup ? eps_mult : 1.0});
  };
  // The rewritten ops are written back into the spec through the items they came from: dense
  // inits and attention scales are rewritten in the items themselves, in expand order.
  std::vector<OpSpec*> item_ops;
  std::function<void(std::vector<LayerItem>&)> collect = [&](std::vector<LayerItem>& items) {
    for (LayerItem& item : items) {
      if (item.block.empty()) {
        item_ops.push_back(&item.op);
      } else {
        collect(item.block);
      }
    }
  };
  collect(s.layers);
  for (std::size_t l = 0; l < ops.size(); ++l) {
    const OpSpec& op = ops[l];
    const std::string prefix = "ops." + std::to_string(l) + ".";
    const int li = static_cast<int>(l);
    switch (op.kind) {
      case OpKind::kDense: {
        TensorRole role = TensorRole::kHidden;
        if (l == 0 && input_is_data) role = TensorRole::kInput;
        if (readout && li == last_dense) role = TensorRole::kOutput;
        const double init = mup && role == TensorRole::kOutput ? 1.0 / std::sqrt(m) : 1.0;
        add(li, prefix + "weight", role, init);
        add(li, prefix + "bias", TensorRole::kVector, 1.0, role != TensorRole::kOutput);
        break;
      }
      case OpKind::kNorm:
        add(li, prefix + "weight", TensorRole::kVector, 1.0);
        if (op.norm.kind != NormKind::kRmsNorm) add(li, prefix + "bias", TensorRole::kVector, 1.0);
        break;
      case OpKind::kAttention:
        for (int j = 0; j < (op.attention.output_projection ? 4 : 3); ++j) {
          add(li,
              prefix + std::string(kAttentionProjections[static_cast<std::size_t>(j)]) + ".weight",
              TensorRole::kHidden, 1.0);
        }
        if (op.attention.bias) add(li, prefix + "bias", TensorRole::kVector, 1.0);
        if (widths[l] % op.attention.heads != 0) {
          throw Error("coordcheck: width " + std::to_string(widths[l]) + " at op " +
                          std::to_string(l) + " is not divisible by its " +
                          std::to_string(op.attention.heads) + " attention heads",
                      "choose --widths that are multiples of the heads");
        }
        break;
      case OpKind::kGlu:
        for (const std::string_view name : kGluProjections) {
          add(li, prefix + std::string(name) + ".weight", TensorRole::kHidden, 1.0);
        }
        if (op.glu.bias) add(li, prefix + "bias", TensorRole::kVector, 1.0);
        break;
      default:
        break;
    }
  }
  if (!mup) return out;

  // μP's init and attention-scale rewrites, in the spec.
  if (s.layers.empty()) {
    if (readout) s.output->init.gain /= std::sqrt(m);
  } else {
    if (readout) s.layers.back().op.dense.init.gain /= std::sqrt(m);
    // Attention: the query-key scale proportional to 1/d_head (Tensor Programs V), equal to the
    // config's at the base width; attention reads the model width.
    for (OpSpec* op : item_ops) {
      if (op->kind != OpKind::kAttention) continue;
      AttentionSpec& a = op->attention;
      const double heads = static_cast<double>(std::max(a.heads, 1));
      const double dh_base = static_cast<double>(base_width) / heads;
      const double dh = static_cast<double>(width) / heads;
      if (a.scale_kind == AttentionScaleKind::kInvSqrtHead) {
        a.scale_kind = AttentionScaleKind::kConstant;
        a.scale = std::sqrt(dh_base) / dh;
      } else if (a.scale_kind == AttentionScaleKind::kConstant) {
        a.scale *= dh_base / dh;
      }
    }
  }
  return out;
}

std::optional<double> fit_slope(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 2) return std::nullopt;
  double mx = 0.0;
  double my = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) return std::nullopt;
    mx += x[i];
    my += y[i];
  }
  const double n = static_cast<double>(x.size());
  mx /= n;
  my /= n;
  double sxx = 0.0;
  double sxy = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
  }
  if (!(sxx > 0.0)) return std::nullopt;
  return sxy / sxx;
}

SlopeVerdict judge_slope(double slope, double spread, double low, double high, double tolerance) {
  const double band = std::max(tolerance, 2.0 * spread);
  if (slope - band > high) return SlopeVerdict::kGrows;
  if (slope + band < low) return SlopeVerdict::kShrinks;
  return SlopeVerdict::kFlat;
}

}  // namespace gradscope
